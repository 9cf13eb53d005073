//! The kernel: `DriverEntry`, the allocator, the devices, the flow
//! section, and [`Kernel`], the [`NdisApi`] that calls `ndis.sys`.
//! Windows only (feature `kernel`); `driver/` links it into `vrouter.sys`.
//!
//! `DriverEntry`:
//! 1. creates the flow table's sections (records and companion) and lays
//!    the table out in them ([`section`], [`crate::flow_mapping`]);
//! 2. builds the [`Extension`] and its [`Driver`] (non-paged pool, never
//!    freed before unload);
//! 3. creates the ksync and pkt0 devices ([`device`]);
//! 4. registers the NDIS filter driver (`NdisFRegisterFilterDriver` with
//!    [`filter::characteristics`]) — except in the device-only variant
//!    (feature `devtest`, for Wine, which has no NDIS 6), which instead
//!    serves a test IOCTL that runs a frame through the core ([`devtest`]).

use alloc::boxed::Box;
use alloc::string::ToString;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

pub mod alloc_pool;
pub mod device;
#[cfg(feature = "devtest")]
pub mod devtest;
pub mod imports;
pub mod section;
pub mod security;

pub use alloc_pool::PoolAllocator;

use imports::*;
use ksync::HostInfo;

use crate::ext::{ExtConfig, Extension};
use crate::ndis::api::NdisApi;
use crate::ndis::driver::Driver;
use crate::ndis::filter;
use crate::ndis::types::*;
use crate::wdm::*;

/// NDIS as the kernel provides it.
pub struct Kernel;

impl NdisApi for Kernel {
    unsafe fn f_set_attributes(
        f: NDIS_HANDLE,
        c: NDIS_HANDLE,
        a: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFSetAttributes(f, c, a) }
    }
    unsafe fn f_get_optional_switch_handlers(
        f: NDIS_HANDLE,
        c: *mut NDIS_SWITCH_CONTEXT,
        h: *mut NDIS_SWITCH_OPTIONAL_HANDLERS,
    ) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFGetOptionalSwitchHandlers(f, c, h) }
    }
    unsafe fn f_send_net_buffer_lists(f: NDIS_HANDLE, n: *mut NET_BUFFER_LIST, p: u32, fl: u32) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFSendNetBufferLists(f, n, p, fl) }
    }
    unsafe fn f_send_net_buffer_lists_complete(f: NDIS_HANDLE, n: *mut NET_BUFFER_LIST, fl: u32) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFSendNetBufferListsComplete(f, n, fl) }
    }
    unsafe fn f_oid_request(f: NDIS_HANDLE, r: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFOidRequest(f, r) }
    }
    unsafe fn f_oid_request_complete(f: NDIS_HANDLE, r: *mut NDIS_OID_REQUEST, s: NDIS_STATUS) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFOidRequestComplete(f, r, s) }
    }
    unsafe fn f_cancel_oid_request(f: NDIS_HANDLE, id: *mut c_void) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFCancelOidRequest(f, id) }
    }
    unsafe fn allocate_clone_oid_request(
        f: NDIS_HANDLE,
        r: *mut NDIS_OID_REQUEST,
        t: u32,
        c: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisAllocateCloneOidRequest(f, r, t, c) }
    }
    unsafe fn free_clone_oid_request(f: NDIS_HANDLE, c: *mut NDIS_OID_REQUEST) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFreeCloneOidRequest(f, c) }
    }
    unsafe fn f_pause_complete(f: NDIS_HANDLE) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFPauseComplete(f) }
    }
    unsafe fn f_net_pnp_event(f: NDIS_HANDLE, e: *mut NET_PNP_EVENT_NOTIFICATION) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFNetPnPEvent(f, e) }
    }
    unsafe fn allocate_net_buffer_list_pool(
        h: NDIS_HANDLE,
        p: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisAllocateNetBufferListPool(h, p) }
    }
    unsafe fn free_net_buffer_list_pool(p: NDIS_HANDLE) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFreeNetBufferListPool(p) }
    }
    unsafe fn allocate_net_buffer_and_net_buffer_list(
        p: NDIS_HANDLE,
        cs: u16,
        cb: u16,
        m: *mut MDL,
        o: u32,
        l: usize,
    ) -> *mut NET_BUFFER_LIST {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisAllocateNetBufferAndNetBufferList(p, cs, cb, m, o, l) }
    }
    unsafe fn free_net_buffer_list(n: *mut NET_BUFFER_LIST) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFreeNetBufferList(n) }
    }
    unsafe fn allocate_mdl(h: NDIS_HANDLE, va: *mut c_void, len: u32) -> *mut MDL {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisAllocateMdl(h, va, len) }
    }
    unsafe fn free_mdl(m: *mut MDL) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisFreeMdl(m) }
    }
    unsafe fn retreat_net_buffer_data_start(
        nb: *mut NET_BUFFER,
        d: u32,
        b: u32,
        a: *mut c_void,
    ) -> NDIS_STATUS {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisRetreatNetBufferDataStart(nb, d, b, a) }
    }
    unsafe fn advance_net_buffer_data_start(nb: *mut NET_BUFFER, d: u32, f: u8, h: *mut c_void) {
        // SAFETY: forwarded to NDIS.
        unsafe { NdisAdvanceNetBufferDataStart(nb, d, f, h) }
    }
    unsafe fn mdl_system_address(mdl: *mut MDL) -> *mut u8 {
        // MmGetSystemAddressForMdlSafe(mdl, LowPagePriority | MdlMappingNoExecute).
        // SAFETY: a valid MDL of a locked buffer.
        unsafe {
            if (*mdl).MdlFlags & (MDL_MAPPED_TO_SYSTEM_VA | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
                (*mdl).MappedSystemVa.cast()
            } else {
                const MM_CACHED: u32 = 1;
                const LOW_PAGE_PRIORITY: u32 = 0;
                const MDL_MAPPING_NO_EXECUTE: u32 = 0x4000_0000;
                MmMapLockedPagesSpecifyCache(
                    mdl,
                    KERNEL_MODE,
                    MM_CACHED,
                    null_mut(),
                    0,
                    LOW_PAGE_PRIORITY | MDL_MAPPING_NO_EXECUTE,
                )
                .cast()
            }
        }
    }
    unsafe fn allocate_spin_lock(l: *mut NDIS_SPIN_LOCK) {
        // KeInitializeSpinLock: a zero KSPIN_LOCK.
        // SAFETY: the caller's lock.
        unsafe { (*l).SpinLock = 0 };
    }
    unsafe fn acquire_spin_lock(l: *mut NDIS_SPIN_LOCK) {
        // SAFETY: the caller's initialised lock.
        unsafe {
            let irql = KeAcquireSpinLockRaiseToDpc(&mut (*l).SpinLock);
            (*l).OldIrql = irql;
        }
    }
    unsafe fn release_spin_lock(l: *mut NDIS_SPIN_LOCK) {
        // SAFETY: the caller holds it.
        unsafe { KeReleaseSpinLock(&mut (*l).SpinLock, (*l).OldIrql) };
    }
    unsafe fn free_spin_lock(_l: *mut NDIS_SPIN_LOCK) {}
    fn now_secs() -> u32 {
        let mut freq = 0i64;
        // SAFETY: an out-parameter.
        let t = unsafe { KeQueryPerformanceCounter(&mut freq) };
        if freq <= 0 {
            return 0;
        }
        (t / freq) as u32
    }
}

/// What unload must undo.
struct Loaded {
    driver: *mut Driver<Kernel>,
    devices: device::Devices,
    filter: NDIS_HANDLE,
}

static LOADED: AtomicPtr<Loaded> = AtomicPtr::new(null_mut());

/// Print to the kernel debugger (`DbgPrint`); `msg` must end with `\0`.
pub fn debug(msg: &str) {
    // SAFETY: a NUL-terminated string passed as the format with no
    // conversions ("%s" is not needed: our messages contain no '%').
    unsafe { DbgPrint(msg.as_ptr()) };
}

/// The driver's entry point (called by the `DriverEntry` export of the
/// driver crate).
///
/// # Safety
/// Called once by the I/O manager.
pub unsafe fn driver_entry(drv: *mut DRIVER_OBJECT, _registry: *mut UNICODE_STRING) -> NTSTATUS {
    debug("vrouter: DriverEntry\n\0");
    let cfg = ExtConfig::windows();
    let (entries, oflow) = (cfg.router.flow_entries, cfg.router.oflow_entries);
    let Some(len) = crate::flow_mapping::mapping_len(entries, oflow) else {
        return STATUS_INVALID_PARAMETER;
    };
    // The table in the shared sections; if they cannot be made, in
    // pool: forwarding works, but the agent cannot map the table (it says
    // so loudly), so this is a degraded mode, logged. (Under Wine the full
    // image takes this path: Wine cannot reference section objects.)
    let mut freq = 0i64;
    // SAFETY: an out-parameter.
    let generation = unsafe { KeQueryPerformanceCounter(&mut freq) } as u64;
    let shared = (|| {
        let records = section::Section::create(&section::SECTION_NAME_W, len, true).ok()?;
        let meta =
            section::Section::create(&section::META_NAME_W, crate::flow_mapping::META_SIZE, false)
                .ok()?;
        let r = crate::flow_mapping::Regions {
            records: records.base(),
            records_len: records.len(),
            meta: meta.base(),
            meta_len: meta.len(),
        };
        // SAFETY: the sections' views are writable, page-aligned and of
        // the lengths given, kept mapped by the two `Section`s, which the
        // table owns from here on.
        unsafe {
            crate::flow_mapping::create_table(
                r,
                entries,
                oflow,
                0,
                generation,
                Box::new((records, meta)),
            )
        }
        .ok()
    })();
    let (table, path) = match shared {
        Some(t) => (t, section::USER_NAME.to_string()),
        None => {
            debug("vrouter: flow section unavailable: flow table in pool, not shared with the agent\n\0");
            match dp_core::flow::table::FlowTable::new(entries, oflow) {
                Ok(t) => (t, alloc::string::String::new()),
                Err(_) => return STATUS_INSUFFICIENT_RESOURCES,
            }
        }
    };
    let info = HostInfo {
        flow_table_path: path,
        flow_table_size: len as u32,
        ..HostInfo::default()
    };
    let mut ext = Extension::new(cfg, table, info);
    if ext
        .add_agent_vif(ExtConfig::AGENT_VIF, ExtConfig::AGENT_MAC)
        .is_err()
    {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let driver = Box::into_raw(Box::new(Driver::<Kernel>::new(ext)));
    // SAFETY: boxed: its final address.
    unsafe { (*driver).init() };
    // SAFETY: our driver object and state.
    let devices = match unsafe { device::create(drv, driver) } {
        Ok(d) => d,
        Err(st) => {
            debug("vrouter: devices failed\n\0");
            // SAFETY: never exposed.
            drop(unsafe { Box::from_raw(driver) });
            return st;
        }
    };
    #[allow(unused_mut)] // written only by the NDIS registration
    let mut filter: NDIS_HANDLE = null_mut();
    #[cfg(not(feature = "devtest"))]
    {
        let mut chars = filter::characteristics::<Kernel>();
        debug("vrouter: NdisFRegisterFilterDriver\n\0");
        // SAFETY: valid characteristics; the context is the driver state,
        // which lives until unload.
        let st = unsafe { NdisFRegisterFilterDriver(drv, driver.cast(), &mut chars, &mut filter) };
        if st != NDIS_STATUS_SUCCESS {
            let mut d = devices;
            // SAFETY: no handle can be open yet... but one could: close
            // them by unloading everything we made.
            unsafe {
                device::destroy(&mut d);
                drop(Box::from_raw(driver));
            }
            return st;
        }
    }
    #[cfg(feature = "devtest")]
    {
        let _ = filter::characteristics::<Kernel>;
        debug("vrouter: device-only build, no NDIS registration\n\0");
    }
    let loaded = Box::into_raw(Box::new(Loaded {
        driver,
        devices,
        filter,
    }));
    LOADED.store(loaded, Ordering::Release);
    // SAFETY: our driver object.
    unsafe { (*drv).DriverUnload = Some(driver_unload) };
    STATUS_SUCCESS
}

/// `DriverUnload`: deregister (NDIS detaches every module first), remove
/// the devices, free the state (the section is unmapped with the table).
///
/// # Safety
/// Called once by the I/O manager.
pub unsafe extern "system" fn driver_unload(_drv: *mut DRIVER_OBJECT) {
    let l = LOADED.swap(null_mut(), Ordering::AcqRel);
    if l.is_null() {
        return;
    }
    // SAFETY: stored by `driver_entry`, taken once.
    unsafe {
        let mut l = Box::from_raw(l);
        if !l.filter.is_null() {
            NdisFDeregisterFilterDriver(l.filter);
        }
        device::destroy(&mut l.devices);
        (*l.driver).fini();
        drop(Box::from_raw(l.driver));
    }
    debug("vrouter: unloaded\n\0");
}

/// The panic handler's action: stop the machine with a recognisable code
/// (`0xE0E0_0001`, "vrouter panic"). No panic is reachable from packets:
/// the core and the shim index with checked accessors; what remains are
/// allocator failures in control paths.
pub fn bugcheck(line: u32) -> ! {
    // SAFETY: the documented way for a driver to stop the system.
    unsafe { KeBugCheckEx(0xE0E0_0001, line as usize, 0, 0, 0) }
}
