//! The plugin API on a byte-mode named pipe, one pipe instance per Docker
//! connection, each served by the crate's `serve_connection`.

use std::ffi::c_void;
use std::future::Future;
use std::io;

use tokio::net::windows::named_pipe::{NamedPipeServer, PipeMode, ServerOptions};
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};

/// Upstream's pipe, the one Docker finds through the spec file.
pub const PIPE_NAME: &str = r"\\.\pipe\Contrail";

/// A SECURITY_ATTRIBUTES with [`channels::WINDOWS_SDDL`] (SYSTEM and
/// Administrators, nothing inherited): Docker runs as SYSTEM. Upstream's
/// driver also let in the local service accounts; nothing needs them.
struct Security {
    sd: PSECURITY_DESCRIPTOR,
    sa: SECURITY_ATTRIBUTES,
}

// SAFETY: the descriptor is heap memory owned by this value, read-only
// after creation.
unsafe impl Send for Security {}
// SAFETY: as above.
unsafe impl Sync for Security {}

impl Security {
    fn new() -> io::Result<Self> {
        let sddl: Vec<u16> = channels::WINDOWS_SDDL
            .encode_utf16()
            .chain(Some(0))
            .collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: NUL-terminated UTF-16 in; `sd` gets a LocalAlloc'd
        // descriptor freed by Drop.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            sd,
            sa: SECURITY_ATTRIBUTES {
                nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: sd,
                bInheritHandle: 0,
            },
        })
    }
}

impl Drop for Security {
    fn drop(&mut self) {
        // SAFETY: LocalAlloc'd by the conversion above, freed once.
        unsafe { LocalFree(self.sd) };
    }
}

/// The listening side of the pipe: always one instance waiting.
pub struct PipeListener {
    name: String,
    next: NamedPipeServer,
    security: Security,
}

impl std::fmt::Debug for PipeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeListener")
            .field("name", &self.name)
            .finish()
    }
}

impl PipeListener {
    /// Creates the first instance of `name`. Fails if another process
    /// serves the name already (`FILE_FLAG_FIRST_PIPE_INSTANCE`).
    pub fn bind(name: &str) -> io::Result<Self> {
        let mut security = Security::new()?;
        let next = Self::instance(name, &mut security, true)?;
        Ok(Self {
            name: name.to_owned(),
            next,
            security,
        })
    }

    fn instance(name: &str, sec: &mut Security, first: bool) -> io::Result<NamedPipeServer> {
        let mut opts = ServerOptions::new();
        opts.pipe_mode(PipeMode::Byte)
            .first_pipe_instance(first)
            .reject_remote_clients(true);
        let sa: *mut SECURITY_ATTRIBUTES = &mut sec.sa;
        // SAFETY: `sa` points at a valid SECURITY_ATTRIBUTES whose
        // descriptor lives as long as `sec`; only read during the call.
        unsafe { opts.create_with_security_attributes_raw(name, sa.cast::<c_void>()) }
    }

    /// Waits for a client; returns its connected instance, or `None` if
    /// the client went away while connecting (the waiting instance is
    /// replaced). An error means no new instance could be created.
    pub async fn accept(&mut self) -> io::Result<Option<NamedPipeServer>> {
        let connected = self.next.connect().await;
        // The next client's instance exists before this one is handed out.
        let fresh = Self::instance(&self.name, &mut self.security, false)?;
        let conn = std::mem::replace(&mut self.next, fresh);
        match connected {
            Ok(()) => Ok(Some(conn)),
            Err(e) => {
                tracing::debug!(error = %e, pipe = %self.name, "client left while connecting");
                Ok(None)
            }
        }
    }
}

/// Serves `app` on every connection of `listener` until `shutdown`.
/// Connections in flight when `shutdown` fires are dropped with the
/// runtime; Docker retries plugin calls.
pub async fn serve_pipe(
    mut listener: PipeListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            conn = listener.accept() => {
                let Some(conn) = conn? else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::serve_connection(conn, app).await {
                        tracing::debug!(error = %e, "plugin pipe connection ended");
                    }
                });
            }
        }
    }
}
