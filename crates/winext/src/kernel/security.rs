//! The security descriptor of the devices and the flow section: a DACL
//! granting SYSTEM (S-1-5-18) and the Administrators group (S-1-5-32-544)
//! full access, and nobody else anything (the agent runs as a service;
//! upstream's devices let every user read and write ksync and pkt0). The
//! same policy as `channels::WINDOWS_SDDL` (`D:P(A;;GA;;;SY)(A;;GA;;;BA)`)
//! for the named pipes.

use alloc::vec;
use alloc::vec::Vec;
use core::ffi::c_void;

use super::imports::*;
use crate::wdm::*;

/// S-1-5-18.
const LOCAL_SYSTEM: [u8; 12] = [1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0];
/// S-1-5-32-544.
const ADMINISTRATORS: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];
/// `SECURITY_DESCRIPTOR` (absolute form) on x64.
const SD_LEN: usize = 40;

/// An absolute security descriptor and its ACL and SIDs, in one buffer.
pub struct Descriptor {
    buf: Vec<u64>,
}

impl Descriptor {
    /// SYSTEM and Administrators get `mask`; nobody else anything.
    pub fn system_and_admins(mask: u32) -> Option<Descriptor> {
        // SD | ACL (8 + 2 ACEs of 8 + SID) | the SIDs.
        let acl_len = 8 + (8 + LOCAL_SYSTEM.len()) + (8 + ADMINISTRATORS.len());
        let total = SD_LEN + acl_len + LOCAL_SYSTEM.len() + ADMINISTRATORS.len();
        let mut d = Descriptor {
            buf: vec![0u64; total.div_ceil(8)],
        };
        let base = d.buf.as_mut_ptr().cast::<u8>();
        // SAFETY: every pointer is inside `buf` (sizes computed above); the
        // Rtl functions write only within the lengths given.
        unsafe {
            let sd = base.cast::<c_void>();
            let acl = base.add(SD_LEN).cast::<c_void>();
            let sys = base.add(SD_LEN + acl_len);
            let adm = sys.add(LOCAL_SYSTEM.len());
            core::ptr::copy_nonoverlapping(LOCAL_SYSTEM.as_ptr(), sys, LOCAL_SYSTEM.len());
            core::ptr::copy_nonoverlapping(ADMINISTRATORS.as_ptr(), adm, ADMINISTRATORS.len());
            let ok = RtlCreateSecurityDescriptor(sd, SECURITY_DESCRIPTOR_REVISION)
                == STATUS_SUCCESS
                && RtlCreateAcl(acl, acl_len as u32, ACL_REVISION) == STATUS_SUCCESS
                && RtlAddAccessAllowedAce(acl, ACL_REVISION, mask, sys.cast()) == STATUS_SUCCESS
                && RtlAddAccessAllowedAce(acl, ACL_REVISION, mask, adm.cast()) == STATUS_SUCCESS
                && RtlSetDaclSecurityDescriptor(sd, 1, acl, 0) == STATUS_SUCCESS;
            ok.then_some(d)
        }
    }

    pub fn as_ptr(&mut self) -> *mut c_void {
        self.buf.as_mut_ptr().cast()
    }
}

/// Replace `device`'s DACL with SYSTEM + Administrators.
///
/// # Safety
/// `device` is a device object of this driver.
pub unsafe fn protect_device(device: *mut DEVICE_OBJECT) -> NTSTATUS {
    let Some(mut sd) = Descriptor::system_and_admins(FILE_ALL_ACCESS) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let mut h: *mut c_void = core::ptr::null_mut();
    // SAFETY: a valid device object; a kernel handle, closed below.
    unsafe {
        let st = ObOpenObjectByPointer(
            device.cast(),
            OBJ_KERNEL_HANDLE,
            core::ptr::null_mut(),
            WRITE_DAC,
            core::ptr::null_mut(),
            KERNEL_MODE,
            &mut h,
        );
        if st != STATUS_SUCCESS {
            return st;
        }
        let st = ZwSetSecurityObject(h, DACL_SECURITY_INFORMATION, sd.as_ptr());
        ZwClose(h);
        st
    }
}
