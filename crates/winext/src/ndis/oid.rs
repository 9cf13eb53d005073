//! OID requests: the switch's port and NIC notifications on their way down
//! (every OID is passed down as a clone and completed back, as NDIS
//! requires of a filter), and the extension's own queries of the switch
//! (`OID_SWITCH_PARAMETERS`, `OID_SWITCH_NIC_ARRAY`) to learn the NICs
//! that existed before it attached.
//!
//! NIC state rules (Microsoft's "Hyper-V Extensible Switch Port and Network
//! Adapter States"): a NIC is a destination only after
//! `OID_SWITCH_NIC_CONNECT` *completed* successfully, and not any more once
//! the extension has seen `OID_SWITCH_NIC_DISCONNECT` (handled before it is
//! passed down). Upstream's extension acted on NIC_CONNECT alone and never
//! noticed a NIC going away.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{self, null_mut};

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use super::api::NdisApi;
use super::driver::{Driver, Out};
use super::types::*;
use crate::ports::{NicInfo, NicKind, PortNic};

/// Pool tag of the extension's NDIS allocations ("vRtr").
pub const POOL_TAG: u32 = u32::from_le_bytes(*b"vRtr");

/// A NIC's parameters, from an OID's information buffer.
///
/// # Safety
/// `buf` points to `len` readable bytes.
pub unsafe fn nic_params(buf: *const c_void, len: u32) -> Option<NDIS_SWITCH_NIC_PARAMETERS> {
    if buf.is_null() || (len as usize) < size_of::<NDIS_SWITCH_NIC_PARAMETERS>() {
        return None;
    }
    // SAFETY: the caller's buffer holds at least one structure; unaligned
    // read because nothing promises alignment.
    Some(unsafe { ptr::read_unaligned(buf.cast::<NDIS_SWITCH_NIC_PARAMETERS>()) })
}

/// The portable view of a NIC's parameters.
pub fn nic_info(p: &NDIS_SWITCH_NIC_PARAMETERS) -> NicInfo {
    let mut mac = [0u8; 6];
    let cur = p.CurrentMacAddress;
    let src = if cur.iter().take(6).any(|b| *b != 0) {
        cur
    } else {
        p.PermanentMacAddress
    };
    if let Some(s) = src.get(..6) {
        mac.copy_from_slice(s);
    }
    NicInfo {
        id: PortNic::new(p.PortId, p.NicIndex),
        kind: NicKind::from_raw(p.NicType),
        name: p.NicName.to_text(),
        friendly_name: p.NicFriendlyName.to_text(),
        vm_name: p.VmName.to_text(),
        netcfg_instance_id: p.NetCfgInstanceId,
        mac,
        mtu: p.MTU,
    }
}

/// `FilterOidRequest`: note switch OIDs, pass the request down as a clone.
///
/// # Safety
/// `req` is a valid request NDIS handed the filter.
pub unsafe fn request<A: NdisApi>(d: &Driver<A>, req: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
    let Some(m) = d.lock().module().map(|m| m.r) else {
        return NDIS_STATUS_FAILURE;
    };
    // SAFETY: the caller's request.
    let (ty, oid, qs) = unsafe { ((*req).RequestType, (*req).oid(), (*req).query_set()) };
    if ty == NDIS_REQUEST_SET_INFORMATION {
        // SAFETY: a set request's buffer holds `InformationBufferLength`
        // bytes.
        unsafe { before_set(d, oid, qs.InformationBuffer, qs.InformationBufferLength) };
    }
    let mut clone: *mut NDIS_OID_REQUEST = null_mut();
    // SAFETY: NDIS clones a valid request.
    let st = unsafe { A::allocate_clone_oid_request(m.filter, req, POOL_TAG, &mut clone) };
    if st != NDIS_STATUS_SUCCESS || clone.is_null() {
        return if st == NDIS_STATUS_SUCCESS {
            NDIS_STATUS_RESOURCES
        } else {
            st
        };
    }
    // SAFETY: our clone.
    unsafe {
        (*clone).SourceReserved[0] = req.cast();
        (*clone).SourceReserved[1] = null_mut();
        let st = A::f_oid_request(m.filter, clone);
        if st != NDIS_STATUS_PENDING {
            complete(d, clone, st);
        }
    }
    NDIS_STATUS_PENDING
}

/// `FilterOidRequestComplete`: a passed-down clone (copy the results back,
/// finish NIC connects, complete the original) or one of our queries.
///
/// # Safety
/// `req` is a request the filter sent down.
pub unsafe fn complete<A: NdisApi>(d: &Driver<A>, req: *mut NDIS_OID_REQUEST, status: NDIS_STATUS) {
    // SAFETY: the caller's request.
    let orig = unsafe { (*req).SourceReserved[0] }.cast::<NDIS_OID_REQUEST>();
    if orig.is_null() {
        // SAFETY: an internal query (SourceReserved[1] is its box).
        unsafe { internal_complete(d, req, status) };
        return;
    }
    let Some(m) = d.lock().module().map(|m| m.r) else {
        return;
    };
    // SAFETY: the clone and its original are valid until completed.
    unsafe {
        let ty = (*req).RequestType;
        if ty == NDIS_REQUEST_METHOD {
            (*orig).DATA.METHOD = (*req).DATA.METHOD;
        } else {
            let c = (*req).DATA.QUERY_SET;
            let o = &mut (*orig).DATA.QUERY_SET;
            o.BytesWrittenOrRead = c.BytesWrittenOrRead;
            o.BytesNeeded = c.BytesNeeded;
        }
        if ty == NDIS_REQUEST_SET_INFORMATION {
            let qs = (*req).query_set();
            after_set(
                d,
                qs.Oid,
                qs.InformationBuffer,
                qs.InformationBufferLength,
                status,
            );
        }
        (*req).SourceReserved[0] = null_mut();
        A::free_clone_oid_request(m.filter, req);
        A::f_oid_request_complete(m.filter, orig, status);
    }
}

/// A switch set OID on its way down.
///
/// # Safety
/// `buf` holds `len` bytes.
unsafe fn before_set<A: NdisApi>(d: &Driver<A>, oid: NDIS_OID, buf: *mut c_void, len: u32) {
    let mut out = Out::default();
    {
        let mut g = d.lock();
        let st = &mut *g;
        out.m = st.module().map(|m| m.r);
        match oid {
            OID_SWITCH_NIC_CREATE | OID_SWITCH_NIC_CONNECT | OID_SWITCH_NIC_UPDATED => {
                // SAFETY: the caller's buffer.
                let Some(p) = (unsafe { nic_params(buf, len) }) else {
                    return;
                };
                let info = nic_info(&p);
                match oid {
                    OID_SWITCH_NIC_CREATE => st.ext.nic_create(info, false),
                    OID_SWITCH_NIC_CONNECT => st.ext.nic_connecting(info),
                    _ => st.ext.nic_update(info),
                }
            }
            OID_SWITCH_NIC_DISCONNECT | OID_SWITCH_NIC_DELETE => {
                // SAFETY: the caller's buffer.
                let Some(p) = (unsafe { nic_params(buf, len) }) else {
                    return;
                };
                let id = PortNic::new(p.PortId, p.NicIndex);
                if oid == OID_SWITCH_NIC_DISCONNECT {
                    st.ext.nic_disconnect(id);
                } else {
                    st.ext.nic_delete(id);
                }
                d.settle(st, &mut out);
            }
            OID_SWITCH_PORT_DELETE
                if !buf.is_null() && len as usize >= size_of::<NDIS_SWITCH_PORT_PARAMETERS>() =>
            {
                // SAFETY: a whole port parameter structure.
                let p = unsafe { ptr::read_unaligned(buf.cast::<NDIS_SWITCH_PORT_PARAMETERS>()) };
                st.ext.port_delete(p.PortId);
                d.settle(st, &mut out);
            }
            _ => {}
        }
    }
    // SAFETY: the lock is released. OIDs run at PASSIVE_LEVEL.
    unsafe { out.flush::<A>(false) };
}

/// A switch set OID completed below.
///
/// # Safety
/// `buf` holds `len` bytes.
unsafe fn after_set<A: NdisApi>(
    d: &Driver<A>,
    oid: NDIS_OID,
    buf: *mut c_void,
    len: u32,
    status: NDIS_STATUS,
) {
    if !matches!(oid, OID_SWITCH_NIC_CONNECT | OID_SWITCH_NIC_CREATE) {
        return;
    }
    // SAFETY: the caller's buffer.
    let Some(p) = (unsafe { nic_params(buf, len) }) else {
        return;
    };
    let id = PortNic::new(p.PortId, p.NicIndex);
    let mut g = d.lock();
    match oid {
        OID_SWITCH_NIC_CONNECT => g.ext.nic_connected(id, status == NDIS_STATUS_SUCCESS),
        _ if status != NDIS_STATUS_SUCCESS => g.ext.nic_delete(id),
        _ => {}
    }
}

// ---- the extension's own queries ---------------------------------------------

const QUERY_PARAMETERS: u32 = 1;
const QUERY_NIC_ARRAY: u32 = 2;
/// Retries of a query whose buffer was too small (the array grew between
/// the size query and the real one).
const MAX_QUERY_TRIES: u32 = 4;

/// One query in flight: the request NDIS holds and its buffer.
#[repr(C)]
struct Query {
    req: NDIS_OID_REQUEST,
    kind: u32,
    tries: u32,
    buf: Vec<u8>,
}

/// Ask the switch whether it is active (FilterRestart); the answer leads to
/// the NIC array query when it is.
pub fn query_parameters<A: NdisApi>(d: &Driver<A>) {
    issue(
        d,
        QUERY_PARAMETERS,
        OID_SWITCH_PARAMETERS,
        size_of::<NDIS_SWITCH_PARAMETERS>(),
        0,
    );
}

/// Ask for every NIC (the switch became active, or restart found it
/// active).
pub fn query_nic_array<A: NdisApi>(d: &Driver<A>) {
    issue(
        d,
        QUERY_NIC_ARRAY,
        OID_SWITCH_NIC_ARRAY,
        size_of::<NDIS_SWITCH_NIC_ARRAY>(),
        0,
    );
}

fn issue<A: NdisApi>(d: &Driver<A>, kind: u32, oid: NDIS_OID, len: usize, tries: u32) {
    let filter = {
        let mut g = d.lock();
        let Some(m) = g.module.as_mut() else {
            return;
        };
        m.oids += 1;
        m.r.filter
    };
    let mut q = Box::new(Query {
        req: NDIS_OID_REQUEST::zeroed(),
        kind,
        tries,
        buf: vec![0u8; len.max(size_of::<NDIS_SWITCH_NIC_ARRAY>())],
    });
    let blen = q.buf.len();
    // The array's header says which revision and how much room we give.
    let hdr = NDIS_OBJECT_HEADER::new(NDIS_OBJECT_TYPE_DEFAULT, 1, blen.min(u16::MAX as usize));
    if let Some(h) = q.buf.get_mut(..4) {
        h.copy_from_slice(&[
            hdr.Type,
            hdr.Revision,
            hdr.Size as u8,
            (hdr.Size >> 8) as u8,
        ]);
    }
    q.req.Header = NDIS_OBJECT_HEADER::new(
        NDIS_OBJECT_TYPE_OID_REQUEST,
        NDIS_OID_REQUEST_REVISION_1,
        NDIS_SIZEOF_OID_REQUEST_REVISION_1,
    );
    q.req.RequestType = NDIS_REQUEST_QUERY_INFORMATION;
    q.req.RequestId = POOL_TAG as usize as *mut c_void;
    q.req.DATA.QUERY_SET = OID_QUERY_SET {
        Oid: oid,
        InformationBuffer: q.buf.as_mut_ptr().cast(),
        InformationBufferLength: blen as u32,
        BytesWrittenOrRead: 0,
        BytesNeeded: 0,
    };
    let raw = Box::into_raw(q);
    // SAFETY: `raw` stays alive until `internal_complete` takes it back;
    // `req` is its first field (repr(C)), so the request NDIS completes is
    // the box's address.
    unsafe {
        (*raw).req.SourceReserved[0] = null_mut();
        (*raw).req.SourceReserved[1] = raw.cast();
        let req = ptr::addr_of_mut!((*raw).req);
        let st = A::f_oid_request(filter, req);
        if st != NDIS_STATUS_PENDING {
            internal_complete(d, req, st);
        }
    }
}

/// One of our queries finished.
///
/// # Safety
/// `req` is the request of a [`Query`] made by `issue`.
unsafe fn internal_complete<A: NdisApi>(
    d: &Driver<A>,
    req: *mut NDIS_OID_REQUEST,
    status: NDIS_STATUS,
) {
    // SAFETY: `issue` put the box's address there.
    let raw = unsafe { (*req).SourceReserved[1] }.cast::<Query>();
    if raw.is_null() {
        return;
    }
    // SAFETY: the box `issue` leaked, taken back once.
    let q = unsafe { Box::from_raw(raw) };
    if let Some(m) = d.lock().module.as_mut() {
        m.oids = m.oids.saturating_sub(1);
    }
    let qs = q.req.query_set();
    match (q.kind, status) {
        (QUERY_PARAMETERS, NDIS_STATUS_SUCCESS) => {
            if let Some(p) = q.buf.get(..size_of::<NDIS_SWITCH_PARAMETERS>()) {
                // SAFETY: a whole structure's bytes.
                let p = unsafe { ptr::read_unaligned(p.as_ptr().cast::<NDIS_SWITCH_PARAMETERS>()) };
                if p.IsActive != 0 {
                    query_nic_array(d);
                }
            }
        }
        (QUERY_NIC_ARRAY, NDIS_STATUS_INVALID_LENGTH | NDIS_STATUS_BUFFER_TOO_SHORT)
            if q.tries < MAX_QUERY_TRIES && qs.BytesNeeded as usize > q.buf.len() =>
        {
            issue(
                d,
                QUERY_NIC_ARRAY,
                OID_SWITCH_NIC_ARRAY,
                qs.BytesNeeded as usize,
                q.tries + 1,
            );
        }
        (QUERY_NIC_ARRAY, NDIS_STATUS_SUCCESS) => {
            let written = (qs.BytesWrittenOrRead as usize).min(q.buf.len());
            let nics = parse_nic_array(q.buf.get(..written).unwrap_or_default());
            let mut g = d.lock();
            for (info, connected) in nics {
                g.ext.nic_create(info, connected);
            }
        }
        _ => {}
    }
}

/// The NICs of an `NDIS_SWITCH_NIC_ARRAY` buffer, with whether each is
/// connected. Elements outside the buffer or too small are skipped.
pub fn parse_nic_array(buf: &[u8]) -> Vec<(NicInfo, bool)> {
    let mut out = Vec::new();
    let Some(h) = buf.get(..size_of::<NDIS_SWITCH_NIC_ARRAY>()) else {
        return out;
    };
    // SAFETY: a whole header's bytes.
    let a = unsafe { ptr::read_unaligned(h.as_ptr().cast::<NDIS_SWITCH_NIC_ARRAY>()) };
    let first = usize::from(a.FirstElementOffset);
    let size = a.ElementSize as usize;
    if size < size_of::<NDIS_SWITCH_NIC_PARAMETERS>() {
        return out;
    }
    for i in 0..a.NumElements as usize {
        let Some(at) = i.checked_mul(size).and_then(|o| o.checked_add(first)) else {
            break;
        };
        let Some(e) = buf.get(at..at + size_of::<NDIS_SWITCH_NIC_PARAMETERS>()) else {
            break;
        };
        // SAFETY: a whole element's bytes.
        let p = unsafe { ptr::read_unaligned(e.as_ptr().cast::<NDIS_SWITCH_NIC_PARAMETERS>()) };
        out.push((nic_info(&p), p.NicState == NDIS_SWITCH_NIC_STATE_CONNECTED));
    }
    out
}
