//! The security descriptor of our pipes and mapping, from
//! [`crate::WINDOWS_SDDL`].

use std::ffi::c_void;
use std::io;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES};

use crate::error::{Error, Result};

/// SECURITY_ATTRIBUTES pointing at a descriptor that allows SYSTEM and
/// Administrators only. Owns the descriptor (freed with `LocalFree`).
/// Public (as `channels::WindowsSecurity`) for the other pipes of the node,
/// such as the Docker driver's plugin pipe.
pub struct SecurityAttributes {
    sd: PSECURITY_DESCRIPTOR,
    sa: SECURITY_ATTRIBUTES,
}

impl std::fmt::Debug for SecurityAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::WINDOWS_SDDL)
    }
}

// SAFETY: the descriptor is heap memory owned by this value and never
// mutated after creation; Windows only reads it.
unsafe impl Send for SecurityAttributes {}
// SAFETY: as above.
unsafe impl Sync for SecurityAttributes {}

impl SecurityAttributes {
    pub fn new() -> Result<Self> {
        let sddl = super::wide(crate::WINDOWS_SDDL.as_ref());
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `sddl` is NUL-terminated UTF-16; `sd` receives a
        // LocalAlloc'd descriptor that `Drop` frees.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(Error::io(
                "build security descriptor",
                crate::WINDOWS_SDDL,
                io::Error::last_os_error(),
            ));
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

    /// For APIs taking `*mut c_void` (tokio) or `*const SECURITY_ATTRIBUTES`.
    /// Valid while `self` lives.
    pub fn as_ptr(&mut self) -> *mut SECURITY_ATTRIBUTES {
        &mut self.sa
    }

    pub fn as_void(&mut self) -> *mut c_void {
        self.as_ptr().cast()
    }
}

impl Drop for SecurityAttributes {
    fn drop(&mut self) {
        // SAFETY: `sd` came from ConvertStringSecurityDescriptor..., which
        // allocates with LocalAlloc; freed once.
        unsafe { LocalFree(self.sd) };
    }
}
