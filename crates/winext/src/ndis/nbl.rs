//! NET_BUFFER_LIST, NET_BUFFER and MDL handling: reading a frame's shape,
//! moving its data start, copying it, and the lists the extension makes
//! (copies and split children), all through [`NdisApi`].
//!
//! Lists the extension allocates carry `SourceHandle` = its filter handle
//! (how NDIS routes their completion back, and how the completion handler
//! tells them from the switch's) and, in `ProtocolReserved` (theirs to use:
//! the extension is their protocol), what they are: a copy owning a data
//! buffer, or a split child of a switch list.

use core::ffi::c_void;
use core::ptr::{self, addr_of, addr_of_mut, null_mut};

use alloc::alloc::{alloc, dealloc, Layout};

use super::api::NdisApi;
use super::types::*;
use crate::plan::Shape;
use crate::ports::PortNic;
use dp_core::HEADROOM;

/// `ProtocolReserved[0]` of the extension's lists.
pub const KIND_COPY: usize = 0x5652_4331; // "VRC1"
pub const KIND_CHILD: usize = 0x5652_4332; // "VRC2"

/// The filter's constants, copied out of the lock for NDIS calls.
#[derive(Clone, Copy, Debug)]
pub struct ModuleRef {
    pub filter: NDIS_HANDLE,
    pub switch_ctx: NDIS_SWITCH_CONTEXT,
    pub handlers: NDIS_SWITCH_OPTIONAL_HANDLERS,
    pub pool: NDIS_HANDLE,
}

// SAFETY: handles and function pointers NDIS hands out for use from any
// thread of the driver.
unsafe impl Send for ModuleRef {}
// SAFETY: as above (read-only).
unsafe impl Sync for ModuleRef {}

/// A chain of lists linked through `Next`, built without allocating.
#[derive(Debug, Default)]
pub struct Chain {
    pub head: *mut NET_BUFFER_LIST,
    tail: *mut NET_BUFFER_LIST,
    pub len: usize,
}

impl Chain {
    /// Append `nbl` (its `Next` is overwritten).
    ///
    /// # Safety
    /// `nbl` and the chain's lists are valid lists the caller owns.
    pub unsafe fn push(&mut self, nbl: *mut NET_BUFFER_LIST) {
        // SAFETY: the caller's lists are valid.
        unsafe {
            (*nbl).Next = null_mut();
            if self.tail.is_null() {
                self.head = nbl;
            } else {
                (*self.tail).Next = nbl;
            }
        }
        self.tail = nbl;
        self.len += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    pub fn take(&mut self) -> Chain {
        core::mem::take(self)
    }
}

/// The forwarding detail of a list.
///
/// # Safety
/// `nbl` is a valid list.
pub unsafe fn detail(nbl: *mut NET_BUFFER_LIST) -> ForwardingDetail {
    // SAFETY: the caller's list is valid; the slot is inside the declared
    // array (index 19 < 24).
    ForwardingDetail(unsafe { (*nbl).NetBufferListInfo[SWITCH_FORWARDING_DETAIL] } as u64)
}

/// # Safety
/// `nbl` is a valid list the caller may modify.
pub unsafe fn set_detail(nbl: *mut NET_BUFFER_LIST, d: ForwardingDetail) {
    // SAFETY: as `detail`.
    unsafe { (*nbl).NetBufferListInfo[SWITCH_FORWARDING_DETAIL] = d.0 as usize as *mut c_void };
}

/// A list's out-of-band 802.1Q tag as a TCI (0: none).
///
/// # Safety
/// `nbl` is a valid list.
pub unsafe fn vlan(nbl: *mut NET_BUFFER_LIST) -> u16 {
    // SAFETY: the caller's list; index 4 < 24.
    crate::vlan::tci_from_oob(
        unsafe { (*nbl).NetBufferListInfo[IEEE_8021Q_NET_BUFFER_LIST_INFO] } as usize,
    )
}

/// Set a list's out-of-band 802.1Q tag (0 clears it).
///
/// # Safety
/// `nbl` is a valid list the caller may modify.
pub unsafe fn set_vlan(nbl: *mut NET_BUFFER_LIST, tci: u16) {
    // SAFETY: as `vlan`.
    unsafe {
        (*nbl).NetBufferListInfo[IEEE_8021Q_NET_BUFFER_LIST_INFO] =
            crate::vlan::oob_from_tci(tci) as *mut c_void
    };
}

/// The (port, NIC) a list came from.
///
/// # Safety
/// `nbl` is a valid list.
pub unsafe fn source(nbl: *mut NET_BUFFER_LIST) -> PortNic {
    // SAFETY: forwarded.
    let d = unsafe { detail(nbl) };
    PortNic::new(d.source_port_id(), d.source_nic_index())
}

/// NBs of a list.
///
/// # Safety
/// `nbl` is a valid list.
pub unsafe fn nb_count(nbl: *mut NET_BUFFER_LIST) -> usize {
    let mut n = 0;
    // SAFETY: a valid list's NBs form a null-terminated chain.
    let mut nb = unsafe { (*nbl).FirstNetBuffer };
    while !nb.is_null() {
        n += 1;
        // SAFETY: as above.
        nb = unsafe { (*nb).Next };
    }
    n
}

/// A frame that lies in one mapped MDL: the MDL's bytes and where the
/// frame is in them.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame {
    pub nb: *mut NET_BUFFER,
    pub buf: *mut u8,
    pub cap: usize,
    pub head: usize,
    pub len: usize,
}

/// The shape of `nb`'s frame and, when it lies in its current MDL and that
/// maps, the raw frame.
///
/// # Safety
/// `nb` is a valid NB of a list the caller owns; its MDLs describe locked
/// memory (NDIS guarantees both for lists in the data path).
pub unsafe fn shape<A: NdisApi>(
    nb: *mut NET_BUFFER,
    safe_len: Option<usize>,
) -> (Shape, Option<RawFrame>) {
    // SAFETY: the caller's NB is valid.
    let (mdl, off, len) = unsafe {
        (
            (*nb).CurrentMdl,
            (*nb).CurrentMdlOffset as usize,
            (*nb).DataLength as usize,
        )
    };
    let mut s = Shape {
        len,
        contiguous: false,
        shared: false,
        backfill: off,
        safe_len,
    };
    if mdl.is_null() {
        return (s, None);
    }
    // SAFETY: a valid NB's current MDL is valid.
    let count = unsafe { (*mdl).ByteCount } as usize;
    if off.checked_add(len).is_none_or(|end| end > count) {
        return (s, None);
    }
    // SAFETY: as above.
    let va = unsafe { A::mdl_system_address(mdl) };
    if va.is_null() {
        return (s, None);
    }
    s.contiguous = true;
    (
        s,
        Some(RawFrame {
            nb,
            buf: va,
            cap: count,
            head: off,
            len,
        }),
    )
}

/// Copy `nb`'s frame (however many MDLs it spans) into `dst`; false if it
/// does not fit or an MDL does not map.
///
/// # Safety
/// As [`shape`].
pub unsafe fn copy_out<A: NdisApi>(nb: *mut NET_BUFFER, dst: &mut [u8]) -> bool {
    // SAFETY: the caller's NB is valid, and so is its MDL chain.
    unsafe {
        let mut left = (*nb).DataLength as usize;
        if left > dst.len() {
            return false;
        }
        let mut mdl = (*nb).CurrentMdl;
        let mut off = (*nb).CurrentMdlOffset as usize;
        let mut at = 0usize;
        while left > 0 {
            if mdl.is_null() {
                return false;
            }
            let count = (*mdl).ByteCount as usize;
            let n = count.saturating_sub(off).min(left);
            if n > 0 {
                let va = A::mdl_system_address(mdl);
                if va.is_null() {
                    return false;
                }
                let Some(d) = dst.get_mut(at..at + n) else {
                    return false;
                };
                ptr::copy_nonoverlapping(va.add(off), d.as_mut_ptr(), n);
                at += n;
                left -= n;
            }
            mdl = (*mdl).Next;
            off = 0;
        }
        true
    }
}

/// Move `nb`'s frame from `old_head` to `head` in its current MDL and set
/// its length: what the core did in place (pushed or pulled headers).
///
/// # Safety
/// `nb` is a valid NB the caller owns whose frame the core saw in its
/// current MDL at `old_head`, with `head` inside that MDL.
pub unsafe fn set_frame<A: NdisApi>(nb: *mut NET_BUFFER, old_head: usize, head: usize, len: usize) {
    // SAFETY: the caller's NB; the core kept `head` inside the buffer, in
    // the current MDL's unused space when it moved forward, so NDIS needs
    // no new MDL (no allocate handler is given).
    unsafe {
        if head < old_head {
            let _ = A::retreat_net_buffer_data_start(nb, (old_head - head) as u32, 0, null_mut());
        } else if head > old_head {
            A::advance_net_buffer_data_start(nb, (head - old_head) as u32, 0, null_mut());
        }
        (*nb).DataLength = len as u32;
    }
}

/// Add destination `dst` to a list, growing its destination array first
/// when it has no free element.
///
/// # Safety
/// `nbl` is a valid list with a forwarding context the caller owns.
pub unsafe fn add_destination(m: &ModuleRef, nbl: *mut NET_BUFFER_LIST, dst: PortNic) -> bool {
    let h = &m.handlers;
    // SAFETY: the caller's list; the handlers come from the switch.
    unsafe {
        if detail(nbl).num_available_destinations() == 0 {
            let Some(grow) = h.GrowNetBufferListDestinations else {
                return false;
            };
            let mut arr: *mut NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY = null_mut();
            if grow(m.switch_ctx, nbl, 1, &mut arr) != NDIS_STATUS_SUCCESS {
                return false;
            }
        }
        let Some(add) = h.AddNetBufferListDestination else {
            return false;
        };
        let mut d = NDIS_SWITCH_PORT_DESTINATION {
            PortId: dst.port,
            NicIndex: dst.nic,
            Flags: 0,
        };
        add(m.switch_ctx, nbl, &mut d) == NDIS_STATUS_SUCCESS
    }
}

fn copy_layout(cap: usize) -> Option<Layout> {
    Layout::from_size_align(cap.max(1), 16).ok()
}

/// A list of the extension's own with one NB of `len` bytes at
/// [`HEADROOM`] in a fresh buffer, and a forwarding context: returns the
/// list and the frame's bytes.
///
/// # Safety
/// `m` is the attached filter's.
pub unsafe fn alloc_copy<'a, A: NdisApi>(
    m: &ModuleRef,
    len: usize,
) -> Option<(*mut NET_BUFFER_LIST, &'a mut [u8])> {
    let cap = HEADROOM.checked_add(len)?;
    let layout = copy_layout(cap)?;
    let cap32 = u32::try_from(cap).ok()?;
    // SAFETY: non-zero size; freed in `free_ours` with the same layout.
    let buf = unsafe { alloc(layout) };
    if buf.is_null() {
        return None;
    }
    // SAFETY: NDIS allocations with our handles; each failure undoes the
    // steps before it.
    unsafe {
        let mdl = A::allocate_mdl(m.filter, buf.cast(), cap32);
        if mdl.is_null() {
            dealloc(buf, layout);
            return None;
        }
        let nbl =
            A::allocate_net_buffer_and_net_buffer_list(m.pool, 0, 0, mdl, HEADROOM as u32, len);
        if nbl.is_null() {
            A::free_mdl(mdl);
            dealloc(buf, layout);
            return None;
        }
        (*nbl).SourceHandle = m.filter;
        (*nbl).ProtocolReserved[0] = KIND_COPY as *mut c_void;
        (*nbl).ProtocolReserved[1] = buf.cast();
        (*nbl).ProtocolReserved[2] = cap as *mut c_void;
        let ok = m
            .handlers
            .AllocateNetBufferListForwardingContext
            .is_some_and(|f| f(m.switch_ctx, nbl) == NDIS_STATUS_SUCCESS);
        if !ok {
            (*nbl).ProtocolReserved[3] = null_mut();
            free_raw::<A>(m, nbl);
            return None;
        }
        (*nbl).ProtocolReserved[3] = core::ptr::dangling_mut::<c_void>(); // has a context
        Some((nbl, core::slice::from_raw_parts_mut(buf.add(HEADROOM), len)))
    }
}

/// A list of the extension's own holding `nb`'s frame by reference (its
/// MDLs, not a copy), with `parent`'s switch metadata: a split child.
///
/// # Safety
/// `m` is the attached filter's; `parent` is a valid switch list owning
/// `nb`, and outlives the child.
pub unsafe fn alloc_child<A: NdisApi>(
    m: &ModuleRef,
    parent: *mut NET_BUFFER_LIST,
    nb: *mut NET_BUFFER,
    split: u32,
) -> Option<*mut NET_BUFFER_LIST> {
    // SAFETY: see the function's contract.
    unsafe {
        let nbl = A::allocate_net_buffer_and_net_buffer_list(
            m.pool,
            0,
            0,
            (*nb).MdlChain,
            (*nb).DataOffset,
            (*nb).DataLength as usize,
        );
        if nbl.is_null() {
            return None;
        }
        (*nbl).SourceHandle = m.filter;
        (*nbl).ProtocolReserved[0] = KIND_CHILD as *mut c_void;
        (*nbl).ProtocolReserved[1] = split as usize as *mut c_void;
        (*nbl).ProtocolReserved[2] = null_mut();
        (*nbl).ProtocolReserved[3] = null_mut();
        if !attach_context(m, nbl, Some(parent)) {
            free_raw::<A>(m, nbl);
            return None;
        }
        Some(nbl)
    }
}

/// Give one of the extension's lists a forwarding context, with the
/// switch metadata of `like` (or the default port when `None`).
///
/// # Safety
/// `nbl` is the extension's; `like` a valid list.
pub unsafe fn attach_context(
    m: &ModuleRef,
    nbl: *mut NET_BUFFER_LIST,
    like: Option<*mut NET_BUFFER_LIST>,
) -> bool {
    let h = &m.handlers;
    // SAFETY: see the function's contract.
    unsafe {
        if (*nbl).ProtocolReserved[3].is_null() {
            let ok = h
                .AllocateNetBufferListForwardingContext
                .is_some_and(|f| f(m.switch_ctx, nbl) == NDIS_STATUS_SUCCESS);
            if !ok {
                return false;
            }
            (*nbl).ProtocolReserved[3] = core::ptr::dangling_mut::<c_void>();
        }
        let ok = match like {
            Some(src) => h
                .CopyNetBufferListInfo
                .is_some_and(|f| f(m.switch_ctx, nbl, src, 0) == NDIS_STATUS_SUCCESS),
            None => h.SetNetBufferListSource.is_some_and(|f| {
                f(m.switch_ctx, nbl, crate::ports::DEFAULT_PORT_ID, 0) == NDIS_STATUS_SUCCESS
            }),
        };
        if ok {
            // The copy lives in the extension's memory: all of it is safe.
            set_detail(nbl, detail(nbl).with_packet_data_safe(true, 0));
        }
        ok
    }
}

/// Is this one of the extension's lists?
///
/// # Safety
/// `nbl` is a valid list.
pub unsafe fn is_ours(m: &ModuleRef, nbl: *mut NET_BUFFER_LIST) -> bool {
    // SAFETY: the caller's list is valid.
    unsafe {
        (*nbl).SourceHandle == m.filter
            && matches!((*nbl).ProtocolReserved[0] as usize, KIND_COPY | KIND_CHILD)
    }
}

/// The split record of a child list.
///
/// # Safety
/// `nbl` is one of the extension's lists.
pub unsafe fn child_split(nbl: *mut NET_BUFFER_LIST) -> Option<u32> {
    // SAFETY: the caller's list.
    unsafe {
        ((*nbl).ProtocolReserved[0] as usize == KIND_CHILD)
            .then(|| (*nbl).ProtocolReserved[1] as usize as u32)
    }
}

/// Free one of the extension's lists: its forwarding context, its buffer
/// (copies) and the list. A child's parent is the caller's business
/// ([`child_split`] first).
///
/// # Safety
/// `nbl` is one of the extension's lists, no longer in NDIS's hands.
pub unsafe fn free_raw<A: NdisApi>(m: &ModuleRef, nbl: *mut NET_BUFFER_LIST) {
    // SAFETY: see the function's contract.
    unsafe {
        if !(*nbl).ProtocolReserved[3].is_null() {
            if let Some(f) = m.handlers.FreeNetBufferListForwardingContext {
                f(m.switch_ctx, nbl);
            }
            (*nbl).ProtocolReserved[3] = null_mut();
        }
        if (*nbl).ProtocolReserved[0] as usize == KIND_COPY {
            let nb = (*nbl).FirstNetBuffer;
            let buf = (*nbl).ProtocolReserved[1].cast::<u8>();
            let cap = (*nbl).ProtocolReserved[2] as usize;
            let mdl = if nb.is_null() {
                null_mut()
            } else {
                (*nb).MdlChain
            };
            if !nb.is_null() {
                // The list's NB must not outlive its MDL.
                (*nb).MdlChain = null_mut();
                (*nb).CurrentMdl = null_mut();
            }
            if !mdl.is_null() {
                A::free_mdl(mdl);
            }
            if let (false, Some(l)) = (buf.is_null(), copy_layout(cap)) {
                dealloc(buf, l);
            }
        }
        (*nbl).ProtocolReserved[0] = null_mut();
        A::free_net_buffer_list(nbl);
    }
}

/// Read a field of a list without making a reference to it.
///
/// # Safety
/// `nbl` is valid.
pub unsafe fn first_nb(nbl: *mut NET_BUFFER_LIST) -> *mut NET_BUFFER {
    // SAFETY: the caller's list.
    unsafe { ptr::read(addr_of!((*nbl).FirstNetBuffer)) }
}

/// Set a list's status.
///
/// # Safety
/// `nbl` is valid and the caller's.
pub unsafe fn set_status(nbl: *mut NET_BUFFER_LIST, status: NDIS_STATUS) {
    // SAFETY: the caller's list.
    unsafe { ptr::write(addr_of_mut!((*nbl).Status), status) };
}
