//! Platform back ends. Each exposes the same items:
//!
//! * `default_paths()`, `paths_in(dir)`;
//! * `ksync::{Stream, Listener, connect}`;
//! * `pkt0::Endpoint` (`bind_datapath`, `bind_agent`, `recv`, `send`);
//! * `shm::Region` (`create`, `publish`, `open`, `as_ptr`, `len`,
//!   `huge_page_bytes`).

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// Fail with [`crate::Error::NoRuntime`] instead of letting tokio panic
/// when an async endpoint is made outside a runtime.
pub(crate) fn require_runtime(op: &'static str) -> crate::Result<()> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| crate::Error::NoRuntime { op })
}
