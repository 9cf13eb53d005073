//! The NDIS functions the shim calls, as a trait: the kernel implements it
//! with `ndis.sys` imports (`kernel::imports`), the harness with a fake
//! switch (`fake`). Each method is the NDIS export of the same name; the
//! shim's callbacks are generic over the implementation, so the harness
//! runs exactly the code the driver runs.

use core::ffi::c_void;

use super::types::*;

/// NDIS as the shim sees it (see the module docs). All methods have the
/// contract of the NDIS function they are named after.
#[allow(clippy::missing_safety_doc)]
pub trait NdisApi: 'static {
    unsafe fn f_set_attributes(
        filter: NDIS_HANDLE,
        context: NDIS_HANDLE,
        attributes: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS;
    unsafe fn f_get_optional_switch_handlers(
        filter: NDIS_HANDLE,
        switch_context: *mut NDIS_SWITCH_CONTEXT,
        handlers: *mut NDIS_SWITCH_OPTIONAL_HANDLERS,
    ) -> NDIS_STATUS;
    unsafe fn f_send_net_buffer_lists(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        port: NDIS_PORT_NUMBER,
        flags: u32,
    );
    unsafe fn f_send_net_buffer_lists_complete(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        flags: u32,
    );
    unsafe fn f_oid_request(filter: NDIS_HANDLE, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS;
    unsafe fn f_oid_request_complete(
        filter: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    );
    unsafe fn f_cancel_oid_request(filter: NDIS_HANDLE, request_id: *mut c_void);
    unsafe fn allocate_clone_oid_request(
        filter: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
        tag: u32,
        clone: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    unsafe fn free_clone_oid_request(filter: NDIS_HANDLE, clone: *mut NDIS_OID_REQUEST);
    unsafe fn f_pause_complete(filter: NDIS_HANDLE);
    unsafe fn f_net_pnp_event(
        filter: NDIS_HANDLE,
        event: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS;
    unsafe fn allocate_net_buffer_list_pool(
        handle: NDIS_HANDLE,
        params: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    unsafe fn free_net_buffer_list_pool(pool: NDIS_HANDLE);
    unsafe fn allocate_net_buffer_and_net_buffer_list(
        pool: NDIS_HANDLE,
        context_size: u16,
        context_backfill: u16,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER_LIST;
    unsafe fn free_net_buffer_list(nbl: *mut NET_BUFFER_LIST);
    unsafe fn allocate_mdl(handle: NDIS_HANDLE, va: *mut c_void, length: u32) -> *mut MDL;
    unsafe fn free_mdl(mdl: *mut MDL);
    unsafe fn retreat_net_buffer_data_start(
        nb: *mut NET_BUFFER,
        delta: u32,
        backfill: u32,
        allocate_mdl: *mut c_void,
    ) -> NDIS_STATUS;
    unsafe fn advance_net_buffer_data_start(
        nb: *mut NET_BUFFER,
        delta: u32,
        free_mdl: u8,
        free_mdl_handler: *mut c_void,
    );
    /// `MmGetSystemAddressForMdlSafe`: the system address of the MDL's
    /// first byte (`MappedSystemVa`), mapping it if needed; null if it
    /// cannot be mapped.
    unsafe fn mdl_system_address(mdl: *mut MDL) -> *mut u8;
    unsafe fn allocate_spin_lock(lock: *mut NDIS_SPIN_LOCK);
    unsafe fn acquire_spin_lock(lock: *mut NDIS_SPIN_LOCK);
    unsafe fn release_spin_lock(lock: *mut NDIS_SPIN_LOCK);
    unsafe fn free_spin_lock(lock: *mut NDIS_SPIN_LOCK);
    /// Seconds since boot (the router clock).
    fn now_secs() -> u32;
}
