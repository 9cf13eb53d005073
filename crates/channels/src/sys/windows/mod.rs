//! Windows back end: named pipes (through tokio) and a named file mapping.

pub(crate) mod device;
pub(crate) mod ksync;
pub(crate) mod pkt0;
pub(crate) mod security;
pub(crate) mod shm;

use std::io;
use std::path::{Path, PathBuf};

use windows_sys::Win32::Foundation::{
    ERROR_BROKEN_PIPE, ERROR_FILE_NOT_FOUND, ERROR_NO_DATA, ERROR_PIPE_NOT_CONNECTED,
    ERROR_SEM_TIMEOUT,
};
use windows_sys::Win32::System::Pipes::WaitNamedPipeW;

use crate::ChannelPaths;

const KSYNC_PIPE: &str = r"\\.\pipe\vrouterKsync";
/// The kernel extension's devices and flow section (upstream's device
/// names; `crates/winext`).
const KSYNC_DEVICE: &str = r"\\.\vrouterKsync";
const PKT0_DEVICE: &str = r"\\.\vrouterPkt0";
const FLOW_SECTION: &str = r"Global\vrouterFlowTable";
const PKT0_PIPE: &str = r"\\.\pipe\vrouterPkt0";
const FLOW_MAPPING: &str = r"Local\vrouterFlowTable";

fn names(suffix: &str) -> ChannelPaths {
    let pkt0 = PathBuf::from(format!("{PKT0_PIPE}{suffix}"));
    ChannelPaths {
        ksync: PathBuf::from(format!("{KSYNC_PIPE}{suffix}")),
        pkt0_datapath: pkt0.clone(),
        pkt0_agent: pkt0,
        flow_shm: PathBuf::from(format!("{FLOW_MAPPING}{suffix}")),
    }
}

/// The datapath on Windows is the Hyper-V forwarding extension.
pub(crate) fn default_paths() -> ChannelPaths {
    kernel_paths()
}

pub(crate) fn kernel_paths() -> ChannelPaths {
    ChannelPaths {
        ksync: PathBuf::from(KSYNC_DEVICE),
        pkt0_datapath: PathBuf::from(PKT0_DEVICE),
        pkt0_agent: PathBuf::from(PKT0_DEVICE),
        flow_shm: PathBuf::from(FLOW_SECTION),
    }
}

/// Pipe and mapping names cannot hold `\` after their prefix: the
/// directory becomes a sanitised suffix.
pub(crate) fn paths_in(dir: &Path) -> ChannelPaths {
    let text: Vec<char> = dir
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tail: String = text[text.len().saturating_sub(96)..].iter().collect();
    names(&format!(".{tail}"))
}

fn os_error(e: &io::Error) -> Option<u32> {
    e.raw_os_error().and_then(|c| u32::try_from(c).ok())
}

/// The pipe's other end went away.
pub(crate) fn pipe_gone(e: &io::Error) -> bool {
    matches!(
        os_error(e),
        Some(ERROR_BROKEN_PIPE | ERROR_NO_DATA | ERROR_PIPE_NOT_CONNECTED)
    ) || e.kind() == io::ErrorKind::BrokenPipe
}

/// No such pipe / mapping.
pub(crate) fn not_found(e: &io::Error) -> bool {
    os_error(e) == Some(ERROR_FILE_NOT_FOUND) || e.kind() == io::ErrorKind::NotFound
}

/// `s` as a NUL-terminated UTF-16 string.
pub(crate) fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    s.encode_wide().chain(Some(0)).collect()
}

/// Does a server already serve pipe `name`? `WaitNamedPipeW` answers
/// without taking an instance: success (one is free) or a timeout (all are
/// busy) both mean yes. This backs up `FILE_FLAG_FIRST_PIPE_INSTANCE`,
/// which is the race-free check on Windows but which Wine ignores.
pub(crate) fn pipe_served(name: &Path) -> bool {
    let w = wide(name.as_os_str());
    // SAFETY: `w` is NUL-terminated UTF-16 and outlives the call.
    if unsafe { WaitNamedPipeW(w.as_ptr(), 1) } != 0 {
        return true;
    }
    os_error(&io::Error::last_os_error()) == Some(ERROR_SEM_TIMEOUT)
}
