//! The flow table as a pagefile-backed named file mapping.

use std::ffi::c_void;
use std::io;
use std::path::Path;

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ALREADY_EXISTS, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, VirtualQuery,
    FILE_MAP_READ, FILE_MAP_WRITE, MEMORY_BASIC_INFORMATION, MEMORY_MAPPED_VIEW_ADDRESS,
    PAGE_READWRITE,
};

use super::security::SecurityAttributes;
use super::{not_found, wide};
use crate::error::{AsDisplay, Error, Result};

#[derive(Debug)]
pub(crate) struct Region {
    handle: HANDLE,
    view: *mut c_void,
    len: usize,
}

// SAFETY: the view is plain shared memory, valid until `Drop`; access
// goes through raw pointers under the flow table's concurrency contract.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Create the mapping, or open it if it exists (an agent still holds
    /// the previous table); its real size is reported by `len`.
    pub(crate) fn create(name: &Path, len: usize) -> Result<Self> {
        let mut sa = SecurityAttributes::new()?;
        let wname = wide(name.as_os_str());
        let len64 = len as u64;
        // SAFETY: `sa` and `wname` outlive the call; INVALID_HANDLE_VALUE
        // asks for pagefile backing of `len` bytes.
        let handle = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                sa.as_ptr(),
                PAGE_READWRITE,
                (len64 >> 32) as u32,
                len64 as u32,
                wname.as_ptr(),
            )
        };
        if handle.is_null() {
            return Err(Error::io(
                "CreateFileMapping",
                name,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: plain call, right after the one it reports on.
        if unsafe { GetLastError() } == ERROR_ALREADY_EXISTS {
            tracing::info!(name = %name.display(), "reusing a flow table mapping still held open");
        }
        Self::map(handle, name)
    }

    pub(crate) fn publish(&mut self) -> Result<()> {
        Ok(())
    }

    /// Map the existing mapping `name`; the caller checks its size against
    /// what it needs (a view is whole pages).
    pub(crate) fn open(name: &Path, _min_len: usize) -> Result<Self> {
        let wname = wide(name.as_os_str());
        // SAFETY: `wname` is NUL-terminated and outlives the call.
        let handle = unsafe { OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, 0, wname.as_ptr()) };
        if handle.is_null() {
            let e = io::Error::last_os_error();
            return Err(if not_found(&e) {
                Error::ShmNotFound {
                    name: name.as_display(),
                }
            } else {
                Error::io("OpenFileMapping", name, e)
            });
        }
        Self::map(handle, name)
    }

    /// Map all of `handle` (which the result owns) and learn its size.
    fn map(handle: HANDLE, name: &Path) -> Result<Self> {
        let close = |e: io::Error, op| {
            // SAFETY: `handle` is a mapping handle we own, closed once.
            unsafe { CloseHandle(handle) };
            Error::io(op, name, e)
        };
        // SAFETY: a valid mapping handle; size 0 maps the whole section.
        let view = unsafe { MapViewOfFile(handle, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0) }.Value;
        if view.is_null() {
            return Err(close(io::Error::last_os_error(), "MapViewOfFile"));
        }
        let mut info: MEMORY_BASIC_INFORMATION = MEMORY_BASIC_INFORMATION::default();
        // SAFETY: `view` is mapped; `info` is a writable out-parameter of
        // the size passed.
        let got = unsafe {
            VirtualQuery(
                view,
                &mut info,
                std::mem::size_of::<MEMORY_BASIC_INFORMATION>(),
            )
        };
        let region = Self {
            handle,
            view,
            // The view's size, rounded up to whole pages.
            len: if got == 0 { 0 } else { info.RegionSize },
        };
        if got == 0 {
            return Err(Error::io("VirtualQuery", name, io::Error::last_os_error()));
        }
        Ok(region)
    }

    /// Start of the view, page-aligned.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.view.cast()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Large pages of a file mapping need `SEC_LARGE_PAGES` and the lock
    /// memory privilege, which the mapping does not ask for: never known.
    pub(crate) fn huge_page_bytes(&self) -> Option<u64> {
        None
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the view and handle are ours, released once; the mapping
        // object goes away when its last handle in any process closes.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: self.view });
            CloseHandle(self.handle);
        }
    }
}
