//! The flow table in named sections the agent opens with
//! `OpenFileMappingW("Global\vrouterFlowTable")` and
//! `OpenFileMappingW("Global\vrouterFlowTable.meta")` — the calls
//! `channels::FlowShm::open` makes for the user-space datapath's mappings,
//! so the agent needs no driver-specific code for them.
//!
//! The sections (`\BaseNamedObjects\vrouterFlowTable`, the records, and
//! `\BaseNamedObjects\vrouterFlowTable.meta`, the one-page companion;
//! pagefile-backed, SYSTEM + Administrators only) are mapped into system
//! space. The records' pages are locked, because the forwarding path
//! touches the table at DISPATCH_LEVEL where nothing may fault; the
//! companion is written once, in `DriverEntry`. Upstream's extension allocated
//! the table in pool and mapped it into whichever process opened
//! `\\.\vrouterFlow` (an IOCTL returned the address); a section leaves the
//! mapping's lifetime to the memory manager (a view outlives the driver's
//! unload safely) and applies the security descriptor to every opener.
//!
//! Under Wine (feature `devtest`), `MmMapViewInSystemSpace` does not exist;
//! there the "kernel" is the `winedevice.exe` process, so the view is
//! mapped into the current process instead: the one place the device-only
//! variant differs in code.

use core::ffi::c_void;
use core::ptr::null_mut;

use super::imports::*;
use super::security::Descriptor;
use crate::ndis::types::{utf16z, MDL, UNICODE_STRING};
use crate::wdm::*;

/// The records section's kernel name.
pub const SECTION_NAME: &str = "\\BaseNamedObjects\\vrouterFlowTable";
/// The companion's (`channels::flow_shm::meta_name`).
pub const META_NAME: &str = "\\BaseNamedObjects\\vrouterFlowTable.meta";
/// What user space opens (`OpenFileMappingW`; `.meta` appended for the
/// companion).
pub const USER_NAME: &str = "Global\\vrouterFlowTable";

pub static SECTION_NAME_W: [u16; 35] = utf16z(SECTION_NAME);
const _: () = assert!(SECTION_NAME.len() + 1 == SECTION_NAME_W.len());
pub static META_NAME_W: [u16; 40] = utf16z(META_NAME);
const _: () = assert!(META_NAME.len() + 1 == META_NAME_W.len());

/// A mapped section, locked if asked (the flow table keeps the records'
/// and the companion's: dropping them unmaps).
pub struct Section {
    handle: *mut c_void,
    object: *mut c_void,
    base: *mut u8,
    len: usize,
    mdl: *mut MDL,
}

// SAFETY: kernel handles and a system-space mapping, valid from any
// thread; only the flow table (which owns this) touches the memory.
unsafe impl Send for Section {}
// SAFETY: as above; `&Section` exposes nothing mutable.
unsafe impl Sync for Section {}

impl Section {
    /// Create (or open, if a previous load's section is still referenced
    /// by an agent) the section `name` (NUL-terminated) of `len` bytes, map
    /// it and, if `locked`, lock its pages.
    pub fn create(name: &'static [u16], len: usize, locked: bool) -> Result<Section, NTSTATUS> {
        let mut sd = Descriptor::system_and_admins(SECTION_ALL_ACCESS)
            .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
        let mut name = UNICODE_STRING::from_static(name);
        let mut oa = OBJECT_ATTRIBUTES {
            Length: core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: null_mut(),
            ObjectName: &mut name,
            Attributes: OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE | OBJ_OPENIF,
            SecurityDescriptor: sd.as_ptr(),
            SecurityQualityOfService: null_mut(),
        };
        let mut size = len as i64;
        let mut s = Section {
            handle: null_mut(),
            object: null_mut(),
            base: null_mut(),
            len,
            mdl: null_mut(),
        };
        // SAFETY: valid attributes and out-parameters; on any failure,
        // `Drop` releases what was obtained.
        unsafe {
            let st = ZwCreateSection(
                &mut s.handle,
                SECTION_ALL_ACCESS,
                &mut oa,
                &mut size,
                PAGE_READWRITE,
                SEC_COMMIT,
                null_mut(),
            );
            if st < 0 {
                return Err(st);
            }
            reference(&mut s)?;
            let mut base: *mut c_void = null_mut();
            let mut view = 0usize;
            let st = map(&s, &mut base, &mut view);
            if st < 0 || base.is_null() || view < len {
                if !base.is_null() {
                    s.base = base.cast();
                }
                return Err(if st < 0 {
                    st
                } else {
                    STATUS_INSUFFICIENT_RESOURCES
                });
            }
            s.base = base.cast();
            if locked {
                lock(&mut s)?;
            }
        }
        Ok(s)
    }

    pub fn base(&self) -> *mut u8 {
        self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The section object behind the handle (for `MmMapViewInSystemSpace`).
#[cfg(not(feature = "devtest"))]
unsafe fn reference(s: &mut Section) -> Result<(), NTSTATUS> {
    // SAFETY: a valid section handle; an out-parameter.
    let st = unsafe {
        ObReferenceObjectByHandle(
            s.handle,
            SECTION_ALL_ACCESS,
            null_mut(),
            KERNEL_MODE,
            &mut s.object,
            null_mut(),
        )
    };
    if st < 0 {
        s.object = null_mut();
        return Err(st);
    }
    Ok(())
}

#[cfg(feature = "devtest")]
unsafe fn reference(_s: &mut Section) -> Result<(), NTSTATUS> {
    Ok(())
}

#[cfg(not(feature = "devtest"))]
unsafe fn map(s: &Section, base: &mut *mut c_void, view: &mut usize) -> NTSTATUS {
    // SAFETY: a referenced section object.
    unsafe { MmMapViewInSystemSpace(s.object, base, view) }
}

#[cfg(feature = "devtest")]
unsafe fn map(s: &Section, base: &mut *mut c_void, view: &mut usize) -> NTSTATUS {
    // NtCurrentProcess(): under Wine the driver's own process.
    let current = -1isize as *mut c_void;
    // SAFETY: a valid section handle and out-parameters.
    unsafe {
        ZwMapViewOfSection(
            s.handle,
            current,
            base,
            0,
            0,
            null_mut(),
            view,
            2,
            0,
            PAGE_READWRITE,
        )
    }
}

/// Lock the view's pages (the packet path runs at DISPATCH_LEVEL).
#[cfg(not(feature = "devtest"))]
unsafe fn lock(s: &mut Section) -> Result<(), NTSTATUS> {
    let len = u32::try_from(s.len).map_err(|_| STATUS_INVALID_PARAMETER)?;
    // SAFETY: the system-space view of `len` bytes. MmProbeAndLockPages
    // raises on failure (no physical memory for 16 MiB at driver load):
    // there is no way to catch that without SEH; the driver would stop the
    // machine rather than run with a pageable table.
    unsafe {
        s.mdl = IoAllocateMdl(s.base.cast(), len, 0, 0, null_mut());
        if s.mdl.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        MmProbeAndLockPages(s.mdl, KERNEL_MODE, IO_MODIFY_ACCESS);
    }
    Ok(())
}

#[cfg(feature = "devtest")]
unsafe fn lock(_s: &mut Section) -> Result<(), NTSTATUS> {
    Ok(())
}

impl Drop for Section {
    fn drop(&mut self) {
        // SAFETY: each resource was obtained in `create` and is released
        // once, in reverse order.
        unsafe {
            if !self.mdl.is_null() {
                MmUnlockPages(self.mdl);
                IoFreeMdl(self.mdl);
            }
            if !self.base.is_null() {
                #[cfg(not(feature = "devtest"))]
                MmUnmapViewInSystemSpace(self.base.cast());
                #[cfg(feature = "devtest")]
                ZwUnmapViewOfSection(-1isize as *mut c_void, self.base.cast());
            }
            if !self.object.is_null() {
                ObfDereferenceObject(self.object);
            }
            if !self.handle.is_null() {
                ZwClose(self.handle);
            }
        }
    }
}
