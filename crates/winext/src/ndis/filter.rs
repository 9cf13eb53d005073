//! The filter driver's callbacks and its registration data.
//!
//! Registered handlers: attach, detach, restart, pause, send, send
//! complete, OID request / complete / cancel and NetPnPEvent. Receive and
//! return are left NULL, as upstream's extension did: a forwarding
//! extension decides on the ingress (send) path, and NDIS skips a filter
//! without receive handlers on the egress path, so it costs nothing there.
//! Status indications pass through NDIS untouched for the same reason.
//!
//! The filter module context NDIS passes to every callback is the
//! [`Driver`] itself: the extension serves one switch (the devices are
//! global, as upstream's were); a second attach is refused.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::null_mut;

use super::api::NdisApi;
use super::driver::{Driver, Module, Out, Run};
use super::nbl::ModuleRef;
use super::oid;
use super::types::*;

/// The filter's friendly name (upstream's; the INF's display name, which
/// `Enable-VMSwitchExtension -Name` takes, is "vRouter forwarding
/// extension").
pub const FRIENDLY_NAME: &str = "OpenContrail's vRouter forwarding extension";
/// The filter's unique name (`NetCfgInstanceId` in the INF; the
/// `ExtensionID` of the Docker driver's HNS `VSwitchExtension` policy).
pub const UNIQUE_NAME: &str = "{56553588-1538-4BE6-B8E0-CB46402DC205}";
/// The driver's service name.
pub const SERVICE_NAME: &str = "vRouter";

static FRIENDLY_W: [u16; 44] = utf16z(FRIENDLY_NAME);
static UNIQUE_W: [u16; 39] = utf16z(UNIQUE_NAME);
static SERVICE_W: [u16; 8] = utf16z(SERVICE_NAME);

const _: () = {
    assert!(FRIENDLY_NAME.len() + 1 == FRIENDLY_W.len());
    assert!(UNIQUE_NAME.len() + 1 == UNIQUE_W.len());
    assert!(SERVICE_NAME.len() + 1 == SERVICE_W.len());
};

/// What `NdisFRegisterFilterDriver` gets: NDIS 6.30, revision 2.
pub fn characteristics<A: NdisApi>() -> NDIS_FILTER_DRIVER_CHARACTERISTICS {
    NDIS_FILTER_DRIVER_CHARACTERISTICS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
            NDIS_FILTER_CHARACTERISTICS_REVISION_2,
            NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2,
        ),
        MajorNdisVersion: 6,
        MinorNdisVersion: 30,
        MajorDriverVersion: 1,
        MinorDriverVersion: 0,
        Flags: 0,
        FriendlyName: UNICODE_STRING::from_static(&FRIENDLY_W),
        UniqueName: UNICODE_STRING::from_static(&UNIQUE_W),
        ServiceName: UNICODE_STRING::from_static(&SERVICE_W),
        SetOptionsHandler: None,
        SetFilterModuleOptionsHandler: None,
        AttachHandler: Some(filter_attach::<A>),
        DetachHandler: Some(filter_detach::<A>),
        RestartHandler: Some(filter_restart::<A>),
        PauseHandler: Some(filter_pause::<A>),
        SendNetBufferListsHandler: Some(filter_send::<A>),
        SendNetBufferListsCompleteHandler: Some(filter_send_complete::<A>),
        CancelSendNetBufferListsHandler: None,
        ReceiveNetBufferListsHandler: None,
        ReturnNetBufferListsHandler: None,
        OidRequestHandler: Some(filter_oid_request::<A>),
        OidRequestCompleteHandler: Some(filter_oid_request_complete::<A>),
        CancelOidRequestHandler: Some(filter_cancel_oid_request::<A>),
        DevicePnPEventNotifyHandler: None,
        NetPnPEventHandler: Some(filter_net_pnp_event::<A>),
        StatusHandler: None,
        DirectOidRequestHandler: None,
        DirectOidRequestCompleteHandler: None,
        CancelDirectOidRequestHandler: None,
    }
}

/// # Safety
/// `ctx` is the `Driver` handed to NDIS.
unsafe fn driver<'a, A: NdisApi>(ctx: NDIS_HANDLE) -> &'a Driver<A> {
    // SAFETY: the caller's contract.
    unsafe { &*(ctx as *const Driver<A>) }
}

/// `FilterAttach`: only a Hyper-V switch stack (802.3 with the switch's
/// optional handlers) and only one.
///
/// # Safety
/// Called by NDIS with the driver context given at registration.
pub unsafe extern "system" fn filter_attach<A: NdisApi>(
    filter: NDIS_HANDLE,
    driver_ctx: NDIS_HANDLE,
    params: *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(driver_ctx) };
    // SAFETY: NDIS passes valid parameters.
    if params.is_null() || unsafe { (*params).MiniportMediaType } != NDIS_MEDIUM_802_3 {
        return NDIS_STATUS_INVALID_PARAMETER;
    }
    if d.lock().module().is_some() {
        return NDIS_STATUS_FAILURE;
    }
    let mut ctx: NDIS_SWITCH_CONTEXT = null_mut();
    let mut handlers = NDIS_SWITCH_OPTIONAL_HANDLERS::empty();
    // SAFETY: out-parameters of the right types.
    if unsafe { A::f_get_optional_switch_handlers(filter, &mut ctx, &mut handlers) }
        != NDIS_STATUS_SUCCESS
    {
        return NDIS_STATUS_FAILURE;
    }
    let mut pool = NET_BUFFER_LIST_POOL_PARAMETERS {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
            size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>(),
        ),
        ProtocolId: NDIS_PROTOCOL_ID_DEFAULT,
        fAllocateNetBuffer: 1,
        ContextSize: 0,
        PoolTag: oid::POOL_TAG,
        DataSize: 0,
    };
    // SAFETY: valid parameters.
    let pool = unsafe { A::allocate_net_buffer_list_pool(filter, &mut pool) };
    if pool.is_null() {
        return NDIS_STATUS_RESOURCES;
    }
    let mut attrs = NDIS_FILTER_ATTRIBUTES {
        Header: NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
            NDIS_FILTER_ATTRIBUTES_REVISION_1,
            size_of::<NDIS_FILTER_ATTRIBUTES>(),
        ),
        Flags: 0,
    };
    // SAFETY: valid attributes; the context is the driver, which outlives
    // every module.
    let st = unsafe { A::f_set_attributes(filter, driver_ctx, &mut attrs) };
    if st != NDIS_STATUS_SUCCESS {
        // SAFETY: our pool, unused.
        unsafe { A::free_net_buffer_list_pool(pool) };
        return st;
    }
    let mut g = d.lock();
    g.module = Some(Module::new(ModuleRef {
        filter,
        switch_ctx: ctx,
        handlers,
        pool,
    }));
    NDIS_STATUS_SUCCESS
}

/// `FilterDetach` (after a completed pause): forget the switch.
///
/// # Safety
/// Called by NDIS with the module context.
pub unsafe extern "system" fn filter_detach<A: NdisApi>(ctx: NDIS_HANDLE) {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(ctx) };
    let mut out = Out::default();
    let pool = {
        let mut g = d.lock();
        let st = &mut *g;
        out.m = st.module().map(|m| m.r);
        st.ext.detach();
        d.settle(st, &mut out);
        st.module.take().map(|m| m.r.pool)
    };
    // SAFETY: lock released; nothing of the pool is in use after a pause.
    unsafe {
        out.flush::<A>(false);
        if let Some(p) = pool {
            A::free_net_buffer_list_pool(p);
        }
    }
}

/// `FilterRestart`: ask the overlying drivers for backfill (the core
/// encapsulates in place), start forwarding, and learn the NICs.
///
/// # Safety
/// Called by NDIS with the module context.
pub unsafe extern "system" fn filter_restart<A: NdisApi>(
    ctx: NDIS_HANDLE,
    params: *mut NDIS_FILTER_RESTART_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(ctx) };
    if !params.is_null() {
        // SAFETY: NDIS's restart attribute list.
        unsafe { request_backfill((*params).RestartAttributes) };
    }
    {
        let mut g = d.lock();
        let st = &mut *g;
        let Some(m) = st.module.as_mut() else {
            return NDIS_STATUS_FAILURE;
        };
        m.run = Run::Running;
        st.ext.restart();
    }
    oid::query_parameters(d);
    NDIS_STATUS_SUCCESS
}

/// Add the core's headroom to the general restart attributes'
/// `DataBackFillSize`, so that drivers above leave room in front of their
/// frames.
///
/// # Safety
/// `a` is null or NDIS's list of restart attributes.
unsafe fn request_backfill(mut a: *mut NDIS_RESTART_ATTRIBUTES) {
    // SAFETY: NDIS's list; the general attributes are checked for size.
    unsafe {
        while !a.is_null() {
            if (*a).Oid == OID_GEN_MINIPORT_RESTART_ATTRIBUTES
                && (*a).DataLength as usize >= size_of::<NDIS_RESTART_GENERAL_ATTRIBUTES>()
            {
                let g =
                    core::ptr::addr_of_mut!((*a).Data).cast::<NDIS_RESTART_GENERAL_ATTRIBUTES>();
                let cur = core::ptr::read_unaligned(core::ptr::addr_of!((*g).DataBackFillSize));
                core::ptr::write_unaligned(
                    core::ptr::addr_of_mut!((*g).DataBackFillSize),
                    cur.saturating_add(dp_core::HEADROOM as u32),
                );
            }
            a = (*a).Next;
        }
    }
}

/// `FilterPause`: give every held packet back; finish now if none of our
/// lists is below us, else when the last comes back.
///
/// # Safety
/// Called by NDIS with the module context.
pub unsafe extern "system" fn filter_pause<A: NdisApi>(
    ctx: NDIS_HANDLE,
    _params: *mut NDIS_FILTER_PAUSE_PARAMETERS,
) -> NDIS_STATUS {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(ctx) };
    let mut out = Out::default();
    let status = {
        let mut g = d.lock();
        let st = &mut *g;
        out.m = st.module().map(|m| m.r);
        st.ext.pause();
        if let Some(m) = st.module.as_mut() {
            m.run = Run::Pausing;
        }
        d.settle(st, &mut out);
        match st.module.as_mut() {
            Some(m) if m.outstanding > 0 => NDIS_STATUS_PENDING,
            Some(m) => {
                m.run = Run::Paused;
                NDIS_STATUS_SUCCESS
            }
            None => NDIS_STATUS_SUCCESS,
        }
    };
    // SAFETY: lock released. Pause runs at PASSIVE_LEVEL.
    unsafe { out.flush::<A>(false) };
    status
}

/// `FilterSendNetBufferLists`.
///
/// # Safety
/// Called by NDIS with the module context and a valid chain.
pub unsafe extern "system" fn filter_send<A: NdisApi>(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    _port: NDIS_PORT_NUMBER,
    flags: u32,
) {
    // SAFETY: NDIS's contract.
    unsafe { driver::<A>(ctx).send(nbls, flags) };
}

/// `FilterSendNetBufferListsComplete`.
///
/// # Safety
/// Called by NDIS with the module context and a valid chain.
pub unsafe extern "system" fn filter_send_complete<A: NdisApi>(
    ctx: NDIS_HANDLE,
    nbls: *mut NET_BUFFER_LIST,
    flags: u32,
) {
    // SAFETY: NDIS's contract.
    unsafe { driver::<A>(ctx).send_complete(nbls, flags) };
}

/// `FilterOidRequest`.
///
/// # Safety
/// Called by NDIS with the module context and a valid request.
pub unsafe extern "system" fn filter_oid_request<A: NdisApi>(
    ctx: NDIS_HANDLE,
    req: *mut NDIS_OID_REQUEST,
) -> NDIS_STATUS {
    // SAFETY: NDIS's contract.
    unsafe { oid::request(driver::<A>(ctx), req) }
}

/// `FilterOidRequestComplete`.
///
/// # Safety
/// Called by NDIS with the module context and a request the filter sent.
pub unsafe extern "system" fn filter_oid_request_complete<A: NdisApi>(
    ctx: NDIS_HANDLE,
    req: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    // SAFETY: NDIS's contract.
    unsafe { oid::complete(driver::<A>(ctx), req, status) };
}

/// `FilterCancelOidRequest`: pass the cancellation down (our clones carry
/// the original's `RequestId`).
///
/// # Safety
/// Called by NDIS with the module context.
pub unsafe extern "system" fn filter_cancel_oid_request<A: NdisApi>(
    ctx: NDIS_HANDLE,
    id: *mut c_void,
) {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(ctx) };
    let filter = d.lock().module().map(|m| m.r.filter);
    if let Some(f) = filter {
        // SAFETY: our filter handle.
        unsafe { A::f_cancel_oid_request(f, id) };
    }
}

/// `FilterNetPnPEvent`: the switch became active, learn its NICs; then
/// pass the event on.
///
/// # Safety
/// Called by NDIS with the module context and a valid event.
pub unsafe extern "system" fn filter_net_pnp_event<A: NdisApi>(
    ctx: NDIS_HANDLE,
    ev: *mut NET_PNP_EVENT_NOTIFICATION,
) -> NDIS_STATUS {
    // SAFETY: NDIS's contract.
    let d = unsafe { driver::<A>(ctx) };
    // SAFETY: a valid event.
    if !ev.is_null() && unsafe { (*ev).NetPnPEvent.NetEvent } == NET_EVENT_SWITCH_ACTIVATE {
        oid::query_nic_array(d);
    }
    let filter = d.lock().module().map(|m| m.r.filter);
    match filter {
        // SAFETY: our filter handle and NDIS's event.
        Some(f) => unsafe { A::f_net_pnp_event(f, ev) },
        None => NDIS_STATUS_SUCCESS,
    }
}
