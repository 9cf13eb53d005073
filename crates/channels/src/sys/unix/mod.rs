//! Linux (unix) back end: unix sockets and a `mmap`ed file.

pub(crate) mod ksync;
pub(crate) mod pkt0;
pub(crate) mod shm;

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{AsDisplay, Error, Result};
use crate::ChannelPaths;

/// Upstream's DPDK vRouter socket directory.
const SOCK_DIR: &str = "/var/run/vrouter";
/// Our flow table file when no socket directory is given.
const FLOW_SHM: &str = "/dev/shm/vrouter-rs/flow";

pub(crate) fn default_paths() -> ChannelPaths {
    ChannelPaths {
        flow_shm: PathBuf::from(FLOW_SHM),
        ..paths_in(Path::new(SOCK_DIR))
    }
}

pub(crate) fn paths_in(dir: &Path) -> ChannelPaths {
    ChannelPaths {
        ksync: dir.join(ChannelPaths::KSYNC_NAME),
        pkt0_datapath: dir.join(ChannelPaths::PKT0_DATAPATH_NAME),
        pkt0_agent: dir.join(ChannelPaths::PKT0_AGENT_NAME),
        flow_shm: dir.join(ChannelPaths::FLOW_SHM_NAME),
    }
}

/// Device and inode of a file we created, to remove it on drop only if it
/// is still ours (a successor may have replaced it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId(u64, u64);

impl FileId {
    pub(crate) fn of(path: &Path) -> Option<Self> {
        fs::symlink_metadata(path)
            .ok()
            .map(|m| Self(m.dev(), m.ino()))
    }

    /// Remove `path` if it is still this file.
    pub(crate) fn remove_if_same(self, path: &Path) {
        if Self::of(path) == Some(self) {
            match fs::remove_file(path) {
                Ok(()) => tracing::debug!(path = %path.display(), "removed"),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove"),
            }
        }
    }
}

/// Is `e` "nobody there" for a unix socket path?
pub(crate) fn peer_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ECONNREFUSED | libc::ENOTCONN)
    ) || matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// Make `path` bindable: create its directory; remove a stale socket file
/// (`probe` — a connect of the right socket type — is refused); refuse a
/// live socket or any other kind of file.
pub(crate) fn prepare_socket_path(
    path: &Path,
    probe: impl Fn(&Path) -> io::Result<()>,
) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", &dir.to_owned(), e))?;
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::io(
            "bind",
            path,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not removing it",
            ),
        ));
    }
    match probe(path) {
        Ok(()) => Err(Error::AddrInUse {
            addr: path.as_display(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            tracing::info!(path = %path.display(), "removing stale socket");
            match fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("remove stale socket", path, e)),
            }
        }
        Err(e) => Err(Error::io("probe existing socket", path, e)),
    }
}

/// Owner-only access, the Linux counterpart of the Windows SDDL.
pub(crate) fn restrict(path: &Path) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod 0600", path, e))
}
