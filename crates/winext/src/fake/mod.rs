//! A fake Hyper-V extensible switch for the user-mode harness (feature
//! `fake`).
//!
//! It plays NDIS and the switch below and above the filter: it fabricates
//! NET_BUFFER_LIST / NET_BUFFER / MDL chains laid out as NDIS lays them out
//! (one or several MDLs per NB, backfill in front of the data, several NBs
//! per list, several lists per call, forwarding details with source port,
//! NIC index and the safe-data fields), calls the filter's real callbacks
//! through the characteristics the shim registers, implements the NDIS
//! exports and the switch's optional handlers the shim calls
//! ([`FakeNdis`]: NdisApi), and records what the shim sends down (bytes and
//! destinations), completes up, frees, and every OID it passes down.
//!
//! It checks NDIS's rules as it goes ([`Violation`]s): a list completed
//! twice or not the switch's, a list sent down without a destination, a
//! destination added without room, a retreat that would need a new MDL,
//! the spin lock taken twice, a pool list or MDL freed twice.
//! [`FakeSwitch::audit`] then checks the books: every list the switch
//! handed over came back exactly once, every list and MDL the shim
//! allocated was freed, every forwarding context it allocated was freed.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::missing_safety_doc
)]

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{self, null_mut};
use std::boxed::Box;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::string::String;
use std::vec;
use std::vec::Vec;

use dp_core::flow::table::FlowTable;
use ksync::HostInfo;

use crate::ext::{ExtConfig, Extension};
use crate::ndis::api::NdisApi;
use crate::ndis::driver::Driver;
use crate::ndis::filter;
use crate::ndis::types::*;
use crate::ports::PortNic;
use crate::session::{Session, WriteError};

// The initializer is `const`; clippy 1.96 (the Windows lane's) still
// reports `missing_const_for_thread_local` for it in this `no_std` crate.
#[allow(clippy::missing_const_for_thread_local)]
mod now {
    use std::cell::Cell;
    std::thread_local! {
        pub static NOW: Cell<u32> = const { Cell::new(1) };
    }
}
use now::NOW;

/// Set the router clock every fake switch of this thread sees.
pub fn set_now(secs: u32) {
    NOW.with(|n| n.set(secs));
}

/// A broken NDIS rule, as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Completed a list that is not an outstanding switch list (twice, or
    /// one of the shim's own).
    CompletedUnknown(usize),
    SentWithoutDestination(usize),
    /// A `NativeForwardingRequired` list sent on with destinations added or
    /// its frames changed.
    NativeTouched(usize),
    NoRoomForDestination(usize),
    RetreatNeedsMdl {
        delta: u32,
        backfill: u32,
    },
    LockHeldTwice,
    DoubleFree(&'static str),
    SentOursTwice(usize),
}

/// One list the shim sent down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The frame of each NB.
    pub frames: Vec<Vec<u8>>,
    pub dests: Vec<PortNic>,
    pub src: PortNic,
    /// A list the shim allocated (a copy, a split child, an injection).
    pub ours: bool,
    /// The switch list it is (forwarded in place), by fabrication number.
    pub original: Option<u64>,
    /// The safe-data flag the shim left on it.
    pub data_safe: bool,
    /// The switch marked it `NativeForwardingRequired`.
    pub native: bool,
    /// Its out-of-band 802.1Q tag (TCI; 0: none).
    pub tci: u16,
}

/// How a fabricated NB lays out its frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One MDL with `backfill` unused bytes in front of the frame.
    Contiguous { backfill: usize },
    /// Several MDLs: the frame cut at these byte counts (the rest in the
    /// last MDL); `backfill` unused bytes in the first.
    Split { backfill: usize, cuts: Vec<usize> },
}

/// One NB to fabricate.
#[derive(Clone, Debug)]
pub struct NbSpec {
    pub frame: Vec<u8>,
    pub layout: Layout,
}

/// One list to fabricate.
#[derive(Clone, Debug)]
pub struct NblSpec {
    pub src: PortNic,
    pub nbs: Vec<NbSpec>,
    /// `None`: all the data is safe; `Some(n)`: only `n` bytes are.
    pub safe_len: Option<u32>,
    /// `NativeForwardingRequired` (the switch must forward it itself).
    pub native: bool,
    /// Its out-of-band 802.1Q tag (TCI; 0: none), as a VM's VLAN interface
    /// sends it.
    pub tci: u16,
}

impl NblSpec {
    /// One contiguous frame with `backfill` bytes of room.
    pub fn frame(src: PortNic, frame: &[u8], backfill: usize) -> Self {
        NblSpec {
            src,
            nbs: vec![NbSpec {
                frame: frame.to_vec(),
                layout: Layout::Contiguous { backfill },
            }],
            safe_len: None,
            native: false,
            tci: 0,
        }
    }
}

/// Lists made once and sent many times (benchmarks): list, frame, backfill,
/// source. Freed with the fake's other lists only when dropped.
pub struct Prepared {
    nbls: Vec<(*mut NET_BUFFER_LIST, Vec<u8>, usize, PortNic)>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for (nbl, ..) in self.nbls.drain(..) {
            // SAFETY: prepared lists are owned here once back from the
            // filter (the caller stops sending before dropping).
            unsafe {
                let b = Box::from_raw(nbl.cast::<SwitchNbl>());
                for m in &b.mdls {
                    drop(Box::from_raw(*m));
                }
                drop(Box::from_raw(b.ctx));
            }
        }
    }
}

/// A MDL with a back pointer to the fake that made it.
#[repr(C)]
struct FakeMdl {
    mdl: MDL,
    owner: *const FakeSwitch,
    /// The MDL's memory when the fake owns it (switch lists).
    mem: Option<Vec<u8>>,
}

/// A fabricated switch list and everything hanging off it.
#[repr(C)]
struct SwitchNbl {
    nbl: NET_BUFFER_LIST,
    id: u64,
    /// A prepared list (benchmarks): not freed when it comes back.
    reusable: bool,
    /// `NativeForwardingRequired`: its frames as fabricated (the shim must
    /// not change them).
    native: Option<Vec<Vec<u8>>>,
    #[allow(clippy::vec_box)] // each NB must keep its address
    nbs: Vec<Box<NET_BUFFER>>,
    mdls: Vec<*mut FakeMdl>,
    ctx: *mut FakeCtx,
}

/// A list from a pool (the shim's).
#[repr(C)]
struct PoolNbl {
    nbl: NET_BUFFER_LIST,
    nb: NET_BUFFER,
    pool: *const FakePool,
}

struct FakePool {
    owner: *const FakeSwitch,
}

/// The switch's forwarding context of a list.
struct FakeCtx {
    dests: Vec<NDIS_SWITCH_PORT_DESTINATION>,
    /// Allocated by the shim (must be freed by it).
    by_shim: bool,
}

struct Books {
    violations: Vec<Violation>,
    sent: Vec<Sent>,
    /// Lists sent down, not yet completed back to the filter.
    below: Vec<*mut NET_BUFFER_LIST>,
    /// Switch lists handed to the filter and not back yet.
    switch_out: HashSet<usize>,
    /// Switch lists that came back, in order (fabrication numbers).
    completed: Vec<u64>,
    pool_nbls: HashSet<usize>,
    mdls: HashSet<usize>,
    shim_ctxs: HashSet<usize>,
    pools: HashSet<usize>,
    oid_completions: Vec<(u32, NDIS_STATUS)>,
    pause_completions: u32,
    clones: HashSet<usize>,
    next_id: u64,
    /// Complete sends inside `NdisFSendNetBufferLists` (else on demand).
    auto_complete: bool,
    module_ctx: NDIS_HANDLE,
    /// The switch's NICs (answers `OID_SWITCH_NIC_ARRAY`).
    nics: BTreeMap<PortNic, NDIS_SWITCH_NIC_PARAMETERS>,
    active: bool,
    /// OIDs the shim sent down, by OID (sets and queries).
    oids_down: Vec<u32>,
    /// Fail NIC connects (their completion status).
    fail_connect: bool,
    /// Benchmark mode: nothing recorded, sends completed at once.
    quiet: bool,
    /// Lists sent down / prepared lists back, in quiet mode.
    quiet_sent: u64,
    quiet_back: u64,
}

/// The fake switch (see the module docs). Its address is the filter handle.
pub struct FakeSwitch {
    pub driver: Box<Driver<FakeNdis>>,
    chars: NDIS_FILTER_DRIVER_CHARACTERISTICS,
    books: RefCell<Books>,
}

impl FakeSwitch {
    /// A switch with an extension of `cfg` whose flow table lives on the
    /// heap (see [`FakeSwitch::with_table`]).
    pub fn new(cfg: ExtConfig) -> Box<FakeSwitch> {
        let table = FlowTable::new(cfg.router.flow_entries, cfg.router.oflow_entries).unwrap();
        Self::with_table(cfg, table, HostInfo::default())
    }

    pub fn with_table(cfg: ExtConfig, table: FlowTable, info: HostInfo) -> Box<FakeSwitch> {
        let mut ext = Extension::new(cfg, table, info);
        ext.add_agent_vif(ExtConfig::AGENT_VIF, ExtConfig::AGENT_MAC)
            .unwrap();
        let driver = Box::new(Driver::<FakeNdis>::new(ext));
        let sw = Box::new(FakeSwitch {
            driver,
            chars: filter::characteristics::<FakeNdis>(),
            books: RefCell::new(Books {
                violations: Vec::new(),
                sent: Vec::new(),
                below: Vec::new(),
                switch_out: HashSet::new(),
                completed: Vec::new(),
                pool_nbls: HashSet::new(),
                mdls: HashSet::new(),
                shim_ctxs: HashSet::new(),
                pools: HashSet::new(),
                oid_completions: Vec::new(),
                pause_completions: 0,
                clones: HashSet::new(),
                next_id: 1,
                auto_complete: true,
                module_ctx: null_mut(),
                nics: BTreeMap::new(),
                active: true,
                oids_down: Vec::new(),
                fail_connect: false,
                quiet: false,
                quiet_sent: 0,
                quiet_back: 0,
            }),
        });
        // SAFETY: the driver is boxed (final address) and new.
        unsafe { sw.driver.init() };
        sw
    }

    fn handle(&self) -> NDIS_HANDLE {
        (self as *const FakeSwitch).cast_mut().cast()
    }

    fn ctx(&self) -> NDIS_HANDLE {
        self.books.borrow().module_ctx
    }

    /// Complete sends at once (default) or when [`Self::complete_below`]
    /// is called.
    pub fn set_auto_complete(&self, on: bool) {
        self.books.borrow_mut().auto_complete = on;
    }

    /// Whether `OID_SWITCH_PARAMETERS` says active.
    pub fn set_active(&self, on: bool) {
        self.books.borrow_mut().active = on;
    }

    /// Make NIC connects fail below the filter.
    pub fn set_fail_connect(&self, on: bool) {
        self.books.borrow_mut().fail_connect = on;
    }

    // ---- the filter's lifecycle -------------------------------------------

    /// `FilterAttach` on an 802.3 switch stack.
    pub fn attach(&self) -> NDIS_STATUS {
        self.attach_media(NDIS_MEDIUM_802_3)
    }

    /// `FilterAttach` on a stack of medium `media` (`NDIS_MEDIUM`).
    pub fn attach_media(&self, media: u32) -> NDIS_STATUS {
        // SAFETY: all-zero is valid for every field (pointers, integers).
        let mut p: NDIS_FILTER_ATTACH_PARAMETERS = unsafe { core::mem::zeroed() };
        p.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS,
            3,
            size_of::<NDIS_FILTER_ATTACH_PARAMETERS>(),
        );
        p.MiniportMediaType = media;
        let f = self.chars.AttachHandler.unwrap();
        let drv = (&*self.driver as *const Driver<FakeNdis>).cast_mut().cast();
        // SAFETY: the shim's own callback with the context it registered.
        unsafe { f(self.handle(), drv, &mut p) }
    }

    /// `FilterRestart` with restart attributes asking for `backfill`; returns
    /// the status and the backfill the filter asked for.
    pub fn restart(&self) -> (NDIS_STATUS, u32) {
        #[repr(C)]
        struct Attr {
            a: NDIS_RESTART_ATTRIBUTES,
            _more: [u8; 128],
        }
        // SAFETY: all-zero is valid for every field.
        let mut attr: Attr = unsafe { core::mem::zeroed() };
        attr.a.Oid = OID_GEN_MINIPORT_RESTART_ATTRIBUTES;
        attr.a.DataLength = size_of::<NDIS_RESTART_GENERAL_ATTRIBUTES>() as u32;
        // SAFETY: all-zero is valid.
        let mut p: NDIS_FILTER_RESTART_PARAMETERS = unsafe { core::mem::zeroed() };
        p.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS,
            1,
            size_of::<NDIS_FILTER_RESTART_PARAMETERS>(),
        );
        p.RestartAttributes = &mut attr.a;
        let f = self.chars.RestartHandler.unwrap();
        // SAFETY: the shim's callback and its module context.
        let st = unsafe { f(self.ctx(), &mut p) };
        // SAFETY: the data area holds the general attributes.
        let g = unsafe {
            ptr::read_unaligned(
                ptr::addr_of!(attr.a.Data).cast::<NDIS_RESTART_GENERAL_ATTRIBUTES>(),
            )
        };
        (st, g.DataBackFillSize)
    }

    /// `FilterPause`.
    pub fn pause(&self) -> NDIS_STATUS {
        let mut p = NDIS_FILTER_PAUSE_PARAMETERS {
            Header: NDIS_OBJECT_HEADER::new(NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS, 1, 12),
            Flags: 0,
            PauseReason: 0,
        };
        let f = self.chars.PauseHandler.unwrap();
        // SAFETY: the shim's callback and its module context.
        unsafe { f(self.ctx(), &mut p) }
    }

    /// `FilterDetach`.
    pub fn detach(&self) {
        let f = self.chars.DetachHandler.unwrap();
        // SAFETY: the shim's callback and its module context.
        unsafe { f(self.ctx()) };
    }

    /// `NdisFPauseComplete` calls so far.
    pub fn pause_completions(&self) -> u32 {
        self.books.borrow().pause_completions
    }

    /// Deliver `NetEventSwitchActivate`.
    pub fn switch_activate(&self) -> NDIS_STATUS {
        // SAFETY: all-zero is valid.
        let mut ev: NET_PNP_EVENT_NOTIFICATION = unsafe { core::mem::zeroed() };
        ev.NetPnPEvent.NetEvent = NET_EVENT_SWITCH_ACTIVATE;
        let f = self.chars.NetPnPEventHandler.unwrap();
        // SAFETY: the shim's callback.
        unsafe { f(self.ctx(), &mut ev) }
    }

    // ---- ports and NICs (OIDs) ---------------------------------------------

    /// The parameters of a NIC.
    pub fn nic(id: PortNic, kind: u32, friendly: &str) -> NDIS_SWITCH_NIC_PARAMETERS {
        // SAFETY: all-zero is valid.
        let mut p: NDIS_SWITCH_NIC_PARAMETERS = unsafe { core::mem::zeroed() };
        p.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_DEFAULT,
            NDIS_SWITCH_NIC_PARAMETERS_REVISION_1,
            size_of::<NDIS_SWITCH_NIC_PARAMETERS>(),
        );
        p.PortId = id.port;
        p.NicIndex = id.nic;
        p.NicType = kind;
        p.NicFriendlyName = NDIS_IF_COUNTED_STRING::of(friendly);
        p.NicName = NDIS_IF_COUNTED_STRING::of(&std::format!("nic-{}-{}", id.port, id.nic));
        p.MTU = 1500;
        p.NicState = NDIS_SWITCH_NIC_STATE_CREATED;
        p
    }

    /// A query OID through the filter: (status, bytes written, bytes
    /// needed) as completed to the requester.
    pub fn query_oid(&self, oid: NDIS_OID, buf: &mut [u8]) -> (NDIS_STATUS, u32, u32) {
        let mut req = NDIS_OID_REQUEST::zeroed();
        req.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_OID_REQUEST,
            NDIS_OID_REQUEST_REVISION_1,
            NDIS_SIZEOF_OID_REQUEST_REVISION_1,
        );
        req.RequestType = NDIS_REQUEST_QUERY_INFORMATION;
        req.DATA.QUERY_SET = OID_QUERY_SET {
            Oid: oid,
            InformationBuffer: buf.as_mut_ptr().cast(),
            InformationBufferLength: buf.len() as u32,
            BytesWrittenOrRead: 0,
            BytesNeeded: 0,
        };
        let f = self.chars.OidRequestHandler.unwrap();
        let before = self.books.borrow().oid_completions.len();
        // SAFETY: the shim's callback with a valid request.
        let mut st = unsafe { f(self.ctx(), &mut req) };
        if st == NDIS_STATUS_PENDING {
            let b = self.books.borrow();
            st = b
                .oid_completions
                .get(before..)
                .and_then(|c| c.iter().find(|(o, _)| *o == oid))
                .map_or(NDIS_STATUS_PENDING, |(_, s)| *s);
        }
        let q = req.query_set();
        (st, q.BytesWrittenOrRead, q.BytesNeeded)
    }

    /// A set OID through the filter (passed down to the fake's miniport
    /// edge, which records it): the status the filter completed it with.
    pub fn set_oid<T: Copy>(&self, oid: NDIS_OID, info: &T) -> NDIS_STATUS {
        let mut buf = *info;
        let mut req = NDIS_OID_REQUEST::zeroed();
        req.Header = NDIS_OBJECT_HEADER::new(
            NDIS_OBJECT_TYPE_OID_REQUEST,
            NDIS_OID_REQUEST_REVISION_1,
            NDIS_SIZEOF_OID_REQUEST_REVISION_1,
        );
        req.RequestType = NDIS_REQUEST_SET_INFORMATION;
        req.DATA.QUERY_SET = OID_QUERY_SET {
            Oid: oid,
            InformationBuffer: (&mut buf as *mut T).cast(),
            InformationBufferLength: size_of::<T>() as u32,
            BytesWrittenOrRead: 0,
            BytesNeeded: 0,
        };
        let f = self.chars.OidRequestHandler.unwrap();
        let before = self.books.borrow().oid_completions.len();
        // SAFETY: the shim's callback with a valid request.
        let st = unsafe { f(self.ctx(), &mut req) };
        if st != NDIS_STATUS_PENDING {
            return st;
        }
        let b = self.books.borrow();
        b.oid_completions
            .get(before..)
            .and_then(|c| c.iter().find(|(o, _)| *o == oid))
            .map_or(NDIS_STATUS_PENDING, |(_, s)| *s)
    }

    /// The switch's whole NIC sequence: create, connect. Returns the
    /// connect's completion status.
    pub fn add_nic(&self, p: &NDIS_SWITCH_NIC_PARAMETERS) -> NDIS_STATUS {
        let mut p = *p;
        let st = self.set_oid(OID_SWITCH_NIC_CREATE, &p);
        if st != NDIS_STATUS_SUCCESS {
            return st;
        }
        p.NicState = NDIS_SWITCH_NIC_STATE_CONNECTED;
        let st = self.set_oid(OID_SWITCH_NIC_CONNECT, &p);
        if st == NDIS_STATUS_SUCCESS {
            self.books
                .borrow_mut()
                .nics
                .insert(PortNic::new(p.PortId, p.NicIndex), p);
        }
        st
    }

    /// Disconnect then delete.
    pub fn remove_nic(&self, id: PortNic) {
        let p = self
            .books
            .borrow_mut()
            .nics
            .remove(&id)
            .unwrap_or_else(|| Self::nic(id, 1, ""));
        self.set_oid(OID_SWITCH_NIC_DISCONNECT, &p);
        self.set_oid(OID_SWITCH_NIC_DELETE, &p);
    }

    /// A NIC the switch has but the filter was never told about (it
    /// existed before the filter attached): it answers `OID_SWITCH_NIC_ARRAY`.
    pub fn preexisting_nic(&self, p: &NDIS_SWITCH_NIC_PARAMETERS) {
        let mut p = *p;
        p.NicState = NDIS_SWITCH_NIC_STATE_CONNECTED;
        self.books
            .borrow_mut()
            .nics
            .insert(PortNic::new(p.PortId, p.NicIndex), p);
    }

    /// OIDs the filter sent down so far.
    pub fn oids_down(&self) -> Vec<u32> {
        self.books.borrow().oids_down.clone()
    }

    // ---- packets -------------------------------------------------------------

    /// Fabricate `lists` and hand them to `FilterSendNetBufferLists` in one
    /// chain. Returns their fabrication numbers.
    pub fn send(&self, lists: &[NblSpec]) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut head: *mut NET_BUFFER_LIST = null_mut();
        let mut tail: *mut NET_BUFFER_LIST = null_mut();
        for l in lists {
            let (nbl, id) = self.fabricate(l);
            ids.push(id);
            if tail.is_null() {
                head = nbl;
            } else {
                // SAFETY: our own fabricated list.
                unsafe { (*tail).Next = nbl };
            }
            tail = nbl;
        }
        if head.is_null() {
            return ids;
        }
        let f = self.chars.SendNetBufferListsHandler.unwrap();
        // SAFETY: the shim's callback with a chain of valid lists.
        unsafe { f(self.ctx(), head, 0, NDIS_SEND_FLAGS_DISPATCH_LEVEL) };
        ids
    }

    fn fabricate(&self, spec: &NblSpec) -> (*mut NET_BUFFER_LIST, u64) {
        let id = {
            let mut b = self.books.borrow_mut();
            b.next_id += 1;
            b.next_id
        };
        let ctx = Box::into_raw(Box::new(FakeCtx {
            dests: Vec::new(),
            by_shim: false,
        }));
        let mut s = Box::new(SwitchNbl {
            nbl: NET_BUFFER_LIST::zeroed(),
            id,
            reusable: false,
            native: spec
                .native
                .then(|| spec.nbs.iter().map(|n| n.frame.clone()).collect()),
            nbs: Vec::new(),
            mdls: Vec::new(),
            ctx,
        });
        let mut prev: *mut NET_BUFFER = null_mut();
        for nb in &spec.nbs {
            let (backfill, cuts) = match &nb.layout {
                Layout::Contiguous { backfill } => (*backfill, Vec::new()),
                Layout::Split { backfill, cuts } => (*backfill, cuts.clone()),
            };
            // Pieces of the frame; the first MDL starts with the backfill.
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            let mut at = 0;
            for c in cuts {
                let end = (at + c).min(nb.frame.len());
                pieces.push(nb.frame[at..end].to_vec());
                at = end;
            }
            pieces.push(nb.frame[at..].to_vec());
            let mut first: *mut MDL = null_mut();
            let mut last: *mut MDL = null_mut();
            for (k, p) in pieces.iter().enumerate() {
                let mut mem = if k == 0 {
                    vec![0xEE; backfill]
                } else {
                    Vec::new()
                };
                mem.extend_from_slice(p);
                // Poison beyond the end: reading it is a bug.
                let count = mem.len() as u32;
                let mut fm = Box::new(FakeMdl {
                    mdl: MDL {
                        Next: null_mut(),
                        Size: 0,
                        MdlFlags: MDL_SOURCE_IS_NONPAGED_POOL,
                        Process: null_mut(),
                        MappedSystemVa: null_mut(),
                        StartVa: null_mut(),
                        ByteCount: count,
                        ByteOffset: 0,
                    },
                    owner: self,
                    mem: Some(mem),
                });
                let va = fm.mem.as_mut().unwrap().as_mut_ptr();
                fm.mdl.MappedSystemVa = va.cast();
                fm.mdl.StartVa = va.cast();
                let raw = Box::into_raw(fm);
                s.mdls.push(raw);
                // SAFETY: `raw` just made.
                let m = unsafe { ptr::addr_of_mut!((*raw).mdl) };
                if first.is_null() {
                    first = m;
                } else {
                    // SAFETY: the previous MDL of this chain.
                    unsafe { (*last).Next = m };
                }
                last = m;
            }
            let mut b = Box::new(NET_BUFFER::zeroed());
            b.MdlChain = first;
            b.CurrentMdl = first;
            b.DataOffset = backfill as u32;
            b.CurrentMdlOffset = backfill as u32;
            b.DataLength = nb.frame.len() as u32;
            let bp: *mut NET_BUFFER = &mut *b;
            if prev.is_null() {
                s.nbl.FirstNetBuffer = bp;
            } else {
                // SAFETY: the previous NB of this list.
                unsafe { (*prev).Next = bp };
            }
            prev = bp;
            s.nbs.push(b);
        }
        let mut d = ForwardingDetail::default()
            .with_source(spec.src.port, spec.src.nic)
            .with_num_available_destinations(4)
            .with_native_forwarding_required(spec.native);
        d = match spec.safe_len {
            None => d.with_packet_data_safe(true, 0),
            Some(n) => d.with_packet_data_safe(false, n),
        };
        s.nbl.NetBufferListInfo[SWITCH_FORWARDING_DETAIL] = d.0 as usize as *mut c_void;
        s.nbl.NetBufferListInfo[SWITCH_FORWARDING_RESERVED] = ctx.cast();
        s.nbl.NetBufferListInfo[IEEE_8021Q_NET_BUFFER_LIST_INFO] =
            crate::vlan::oob_from_tci(spec.tci) as *mut c_void;
        s.nbl.SourceHandle = 0x0515_71c4 as *mut c_void; // the switch's
        let raw = Box::into_raw(s);
        self.books.borrow_mut().switch_out.insert(raw as usize);
        (raw.cast(), id)
    }

    /// Benchmark mode (see `Prepared`): nothing is recorded, every send
    /// is completed at once.
    pub fn set_quiet(&self, on: bool) {
        self.books.borrow_mut().quiet = on;
    }

    /// (lists sent down, prepared lists back) in quiet mode.
    pub fn quiet_counts(&self) -> (u64, u64) {
        let b = self.books.borrow();
        (b.quiet_sent, b.quiet_back)
    }

    /// Fabricate single-NB contiguous lists once, to be sent many times
    /// with `send_prepared` (benchmarks).
    pub fn prepare(&self, lists: &[NblSpec]) -> Prepared {
        let mut p = Prepared { nbls: Vec::new() };
        for l in lists {
            assert_eq!(l.nbs.len(), 1, "prepared lists have one NB");
            let Layout::Contiguous { backfill } = l.nbs[0].layout else {
                panic!("prepared lists are contiguous");
            };
            let (nbl, _) = self.fabricate(l);
            self.books.borrow_mut().switch_out.remove(&(nbl as usize));
            // SAFETY: just fabricated.
            unsafe { (*nbl.cast::<SwitchNbl>()).reusable = true };
            p.nbls.push((nbl, l.nbs[0].frame.clone(), backfill, l.src));
        }
        p
    }

    /// Restore the prepared lists (frame bytes, offsets, destinations) and
    /// hand them over in one chain.
    pub fn send_prepared(&self, p: &Prepared) {
        let mut head: *mut NET_BUFFER_LIST = null_mut();
        for (nbl, frame, backfill, src) in p.nbls.iter().rev() {
            // SAFETY: a prepared list, back from the filter.
            unsafe {
                let s = nbl.cast::<SwitchNbl>();
                let nb = (**nbl).FirstNetBuffer;
                let m = (&(*s).mdls)[0];
                let mem = (*m).mem.as_mut().unwrap();
                mem[*backfill..*backfill + frame.len()].copy_from_slice(frame);
                (*nb).CurrentMdl = (*nb).MdlChain;
                (*nb).CurrentMdlOffset = *backfill as u32;
                (*nb).DataOffset = *backfill as u32;
                (*nb).DataLength = frame.len() as u32;
                (*(*s).ctx).dests.clear();
                let d = ForwardingDetail::default()
                    .with_source(src.port, src.nic)
                    .with_num_available_destinations(4)
                    .with_packet_data_safe(true, 0);
                (**nbl).NetBufferListInfo[SWITCH_FORWARDING_DETAIL] = d.0 as usize as *mut c_void;
                (**nbl).Status = 0;
                (**nbl).Next = head;
            }
            head = *nbl;
        }
        let f = self.chars.SendNetBufferListsHandler.unwrap();
        // SAFETY: the shim's callback with a chain of valid lists.
        unsafe { f(self.ctx(), head, 0, NDIS_SEND_FLAGS_DISPATCH_LEVEL) };
    }

    /// Complete every list the filter sent down (deferred mode).
    pub fn complete_below(&self) {
        let below: Vec<*mut NET_BUFFER_LIST> = core::mem::take(&mut self.books.borrow_mut().below);
        if below.is_empty() {
            return;
        }
        let mut head: *mut NET_BUFFER_LIST = null_mut();
        for nbl in below.iter().rev() {
            // SAFETY: lists the filter sent down, still valid.
            unsafe {
                (**nbl).Next = head;
                (**nbl).Status = NDIS_STATUS_SUCCESS;
            }
            head = *nbl;
        }
        let f = self.chars.SendNetBufferListsCompleteHandler.unwrap();
        // SAFETY: the shim's callback with lists it sent.
        unsafe { f(self.ctx(), head, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL) };
    }

    /// Lists the filter sent down since the last call.
    pub fn take_sent(&self) -> Vec<Sent> {
        core::mem::take(&mut self.books.borrow_mut().sent)
    }

    /// Fabrication numbers of switch lists completed back, in order.
    pub fn completed(&self) -> Vec<u64> {
        self.books.borrow().completed.clone()
    }

    /// Lists sent down and not completed yet.
    pub fn below(&self) -> usize {
        self.books.borrow().below.len()
    }

    /// Rules broken so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.books.borrow().violations.clone()
    }

    /// The books balance: nothing broken, every switch list back exactly
    /// once, every shim allocation freed. Call after the last completion.
    pub fn audit(&self) -> Result<(), String> {
        let b = self.books.borrow();
        let mut errs = Vec::new();
        if !b.violations.is_empty() {
            errs.push(std::format!("violations: {:?}", b.violations));
        }
        if !b.switch_out.is_empty() {
            errs.push(std::format!(
                "{} switch lists never came back",
                b.switch_out.len()
            ));
        }
        if !b.below.is_empty() {
            errs.push(std::format!("{} lists still below", b.below.len()));
        }
        if !b.pool_nbls.is_empty() {
            errs.push(std::format!("{} pool lists not freed", b.pool_nbls.len()));
        }
        if !b.mdls.is_empty() {
            errs.push(std::format!("{} MDLs not freed", b.mdls.len()));
        }
        if !b.shim_ctxs.is_empty() {
            errs.push(std::format!(
                "{} forwarding contexts not freed",
                b.shim_ctxs.len()
            ));
        }
        if !b.clones.is_empty() {
            errs.push(std::format!("{} OID clones not freed", b.clones.len()));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }

    /// Pool lists the shim holds (copies, children, held ones).
    pub fn pool_nbls(&self) -> usize {
        self.books.borrow().pool_nbls.len()
    }

    /// Switch lists the filter still owns.
    pub fn switch_out(&self) -> usize {
        self.books.borrow().switch_out.len()
    }

    // ---- the devices -----------------------------------------------------------

    pub fn ksync(&self, session: &mut Session, input: &[u8]) -> Result<(), WriteError> {
        self.driver.ksync_write(session, input)
    }
}

impl Drop for FakeSwitch {
    fn drop(&mut self) {
        // SAFETY: nothing uses the driver any more.
        unsafe { self.driver.fini() };
    }
}

/// # Safety
/// `h` is a fake switch's handle.
unsafe fn sw<'a>(h: NDIS_HANDLE) -> &'a FakeSwitch {
    // SAFETY: the caller's contract.
    unsafe { &*(h as *const FakeSwitch) }
}

fn frames_of(nbl: *mut NET_BUFFER_LIST) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // SAFETY: a valid list with valid NBs and MDLs.
    unsafe {
        let mut nb = (*nbl).FirstNetBuffer;
        while !nb.is_null() {
            let mut v = vec![0u8; (*nb).DataLength as usize];
            if !crate::ndis::nbl::copy_out::<FakeNdis>(nb, &mut v) {
                v = b"<unreadable>".to_vec();
            }
            out.push(v);
            nb = (*nb).Next;
        }
    }
    out
}

/// The fake NDIS (see the module docs).
pub struct FakeNdis;

impl NdisApi for FakeNdis {
    unsafe fn f_set_attributes(
        filter: NDIS_HANDLE,
        context: NDIS_HANDLE,
        _attributes: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS {
        // SAFETY: the shim passes the handle the fake gave it.
        unsafe { sw(filter) }.books.borrow_mut().module_ctx = context;
        NDIS_STATUS_SUCCESS
    }

    unsafe fn f_get_optional_switch_handlers(
        filter: NDIS_HANDLE,
        switch_context: *mut NDIS_SWITCH_CONTEXT,
        handlers: *mut NDIS_SWITCH_OPTIONAL_HANDLERS,
    ) -> NDIS_STATUS {
        // SAFETY: the shim's out-parameters.
        unsafe {
            *switch_context = filter;
            let h = &mut *handlers;
            h.AllocateNetBufferListForwardingContext = Some(sw_alloc_ctx);
            h.FreeNetBufferListForwardingContext = Some(sw_free_ctx);
            h.SetNetBufferListSource = Some(sw_set_source);
            h.AddNetBufferListDestination = Some(sw_add_dest);
            h.GrowNetBufferListDestinations = Some(sw_grow);
            h.CopyNetBufferListInfo = Some(sw_copy_info);
        }
        NDIS_STATUS_SUCCESS
    }

    unsafe fn f_send_net_buffer_lists(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        _port: u32,
        flags: u32,
    ) {
        // SAFETY: the shim passes our handle and valid lists.
        let s = unsafe { sw(filter) };
        if s.books.borrow().quiet {
            let mut n = 0;
            let mut p = nbls;
            while !p.is_null() {
                n += 1;
                // SAFETY: valid lists.
                p = unsafe { (*p).Next };
            }
            s.books.borrow_mut().quiet_sent += n;
            let f = s.chars.SendNetBufferListsCompleteHandler.unwrap();
            // SAFETY: the shim's callback with the lists it sent.
            unsafe { f(s.ctx(), nbls, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL) };
            return;
        }
        let mut nbl = nbls;
        let mut list = Vec::new();
        while !nbl.is_null() {
            // SAFETY: valid lists.
            unsafe {
                let next = (*nbl).Next;
                let d = crate::ndis::nbl::detail(nbl);
                let ctx = (*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED].cast::<FakeCtx>();
                let dests: Vec<PortNic> = if ctx.is_null() {
                    Vec::new()
                } else {
                    (*ctx)
                        .dests
                        .iter()
                        .map(|d| PortNic::new(d.PortId, d.NicIndex))
                        .collect()
                };
                let ours = (*nbl).SourceHandle == filter;
                let (original, native) = {
                    let b = s.books.borrow();
                    if b.switch_out.contains(&(nbl as usize)) {
                        let sn = nbl.cast::<SwitchNbl>();
                        (Some((*sn).id), (*sn).native.clone())
                    } else {
                        (None, None)
                    }
                };
                let frames = frames_of(nbl);
                let mut b = s.books.borrow_mut();
                match &native {
                    Some(f) if !dests.is_empty() || *f != frames => {
                        b.violations.push(Violation::NativeTouched(nbl as usize));
                    }
                    Some(_) => {}
                    None if dests.is_empty() => {
                        b.violations
                            .push(Violation::SentWithoutDestination(nbl as usize));
                    }
                    None => {}
                }
                if b.below.contains(&nbl) {
                    b.violations.push(Violation::SentOursTwice(nbl as usize));
                }
                b.sent.push(Sent {
                    frames,
                    dests,
                    src: PortNic::new(d.source_port_id(), d.source_nic_index()),
                    ours,
                    original,
                    data_safe: d.is_packet_data_safe(),
                    native: native.is_some(),
                    // SAFETY: a valid list.
                    tci: crate::ndis::nbl::vlan(nbl),
                });
                b.below.push(nbl);
                list.push(nbl);
                nbl = next;
            }
        }
        let _ = flags;
        if s.books.borrow().auto_complete {
            s.complete_below();
        }
    }

    unsafe fn f_send_net_buffer_lists_complete(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        _flags: u32,
    ) {
        // SAFETY: the shim passes our handle.
        let s = unsafe { sw(filter) };
        let mut nbl = nbls;
        while !nbl.is_null() {
            // SAFETY: valid lists.
            let next = unsafe { (*nbl).Next };
            let key = nbl as usize;
            if s.books.borrow().quiet {
                // SAFETY: in quiet mode every switch list is a prepared one.
                if unsafe { (*nbl.cast::<SwitchNbl>()).reusable } {
                    s.books.borrow_mut().quiet_back += 1;
                }
                nbl = next;
                continue;
            }
            let known = s.books.borrow_mut().switch_out.remove(&key);
            if known {
                // SAFETY: a fabricated list, back for good: free it.
                unsafe {
                    let b = Box::from_raw(nbl.cast::<SwitchNbl>());
                    s.books.borrow_mut().completed.push(b.id);
                    for m in &b.mdls {
                        drop(Box::from_raw(*m));
                    }
                    drop(Box::from_raw(b.ctx));
                }
            } else {
                s.books
                    .borrow_mut()
                    .violations
                    .push(Violation::CompletedUnknown(key));
            }
            nbl = next;
        }
    }

    unsafe fn f_oid_request(filter: NDIS_HANDLE, request: *mut NDIS_OID_REQUEST) -> NDIS_STATUS {
        // SAFETY: our handle and a valid request.
        let s = unsafe { sw(filter) };
        // SAFETY: a valid request.
        let (ty, qs) = unsafe { ((*request).RequestType, (*request).query_set()) };
        s.books.borrow_mut().oids_down.push(qs.Oid);
        let b = s.books.borrow();
        if ty == NDIS_REQUEST_QUERY_INFORMATION {
            match qs.Oid {
                OID_SWITCH_PARAMETERS => {
                    let mut p = NDIS_SWITCH_PARAMETERS {
                        Header: NDIS_OBJECT_HEADER::new(
                            NDIS_OBJECT_TYPE_DEFAULT,
                            1,
                            size_of::<NDIS_SWITCH_PARAMETERS>(),
                        ),
                        Flags: 0,
                        SwitchName: NDIS_IF_COUNTED_STRING::of("fake"),
                        SwitchFriendlyName: NDIS_IF_COUNTED_STRING::of("fake switch"),
                        NumSwitchPorts: b.nics.len() as u32,
                        IsActive: u8::from(b.active),
                    };
                    // SAFETY: the request's buffer.
                    return unsafe {
                        answer(
                            request,
                            &mut p as *mut _ as *const u8,
                            size_of::<NDIS_SWITCH_PARAMETERS>(),
                        )
                    };
                }
                OID_SWITCH_NIC_ARRAY => {
                    let hdr = size_of::<NDIS_SWITCH_NIC_ARRAY>();
                    let first = hdr.next_multiple_of(8);
                    let el = size_of::<NDIS_SWITCH_NIC_PARAMETERS>();
                    let mut v = vec![0u8; first + el * b.nics.len()];
                    let a = NDIS_SWITCH_NIC_ARRAY {
                        Header: NDIS_OBJECT_HEADER::new(NDIS_OBJECT_TYPE_DEFAULT, 1, hdr),
                        Flags: 0,
                        FirstElementOffset: first as u16,
                        NumElements: b.nics.len() as u32,
                        ElementSize: el as u32,
                    };
                    // SAFETY: plain bytes of plain structures.
                    unsafe {
                        ptr::copy_nonoverlapping(&a as *const _ as *const u8, v.as_mut_ptr(), hdr);
                        for (i, n) in b.nics.values().enumerate() {
                            ptr::copy_nonoverlapping(
                                n as *const _ as *const u8,
                                v.as_mut_ptr().add(first + i * el),
                                el,
                            );
                        }
                        return answer(request, v.as_ptr(), v.len());
                    }
                }
                _ => return NDIS_STATUS_NOT_SUPPORTED,
            }
        }
        if qs.Oid == OID_SWITCH_NIC_CONNECT && b.fail_connect {
            return NDIS_STATUS_FAILURE;
        }
        drop(b);
        // SAFETY: a valid request.
        unsafe { (*request).DATA.QUERY_SET.BytesWrittenOrRead = qs.InformationBufferLength };
        NDIS_STATUS_SUCCESS
    }

    unsafe fn f_oid_request_complete(
        filter: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    ) {
        // SAFETY: our handle and the original request.
        let s = unsafe { sw(filter) };
        // SAFETY: a valid request.
        let oid = unsafe { (*request).oid() };
        s.books.borrow_mut().oid_completions.push((oid, status));
    }

    unsafe fn f_cancel_oid_request(_filter: NDIS_HANDLE, _request_id: *mut c_void) {}

    unsafe fn allocate_clone_oid_request(
        filter: NDIS_HANDLE,
        request: *mut NDIS_OID_REQUEST,
        _tag: u32,
        clone: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS {
        // SAFETY: our handle; a valid request, copied bit for bit.
        unsafe {
            let c = Box::into_raw(Box::new(ptr::read(request)));
            (*c).SourceReserved = [null_mut(); 2];
            sw(filter).books.borrow_mut().clones.insert(c as usize);
            *clone = c;
        }
        NDIS_STATUS_SUCCESS
    }

    unsafe fn free_clone_oid_request(filter: NDIS_HANDLE, clone: *mut NDIS_OID_REQUEST) {
        // SAFETY: our handle.
        let s = unsafe { sw(filter) };
        if s.books.borrow_mut().clones.remove(&(clone as usize)) {
            // SAFETY: a clone made above.
            drop(unsafe { Box::from_raw(clone) });
        } else {
            s.books
                .borrow_mut()
                .violations
                .push(Violation::DoubleFree("OID clone"));
        }
    }

    unsafe fn f_pause_complete(filter: NDIS_HANDLE) {
        // SAFETY: our handle.
        unsafe { sw(filter) }.books.borrow_mut().pause_completions += 1;
    }

    unsafe fn f_net_pnp_event(
        _filter: NDIS_HANDLE,
        _event: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS {
        NDIS_STATUS_SUCCESS
    }

    unsafe fn allocate_net_buffer_list_pool(
        handle: NDIS_HANDLE,
        _params: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE {
        let p = Box::into_raw(Box::new(FakePool {
            owner: handle as *const FakeSwitch,
        }));
        // SAFETY: our handle.
        unsafe { sw(handle) }
            .books
            .borrow_mut()
            .pools
            .insert(p as usize);
        p.cast()
    }

    unsafe fn free_net_buffer_list_pool(pool: NDIS_HANDLE) {
        let p = pool.cast::<FakePool>();
        // SAFETY: a pool made above.
        let s = unsafe { &*(*p).owner };
        s.books.borrow_mut().pools.remove(&(p as usize));
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(p) });
    }

    unsafe fn allocate_net_buffer_and_net_buffer_list(
        pool: NDIS_HANDLE,
        _context_size: u16,
        _context_backfill: u16,
        mdl_chain: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER_LIST {
        let p = pool.cast::<FakePool>();
        let mut b = Box::new(PoolNbl {
            nbl: NET_BUFFER_LIST::zeroed(),
            nb: NET_BUFFER::zeroed(),
            pool: p,
        });
        b.nb.MdlChain = mdl_chain;
        b.nb.DataOffset = data_offset;
        b.nb.DataLength = data_length as u32;
        // The current MDL and offset follow DataOffset through the chain.
        let mut m = mdl_chain;
        let mut off = data_offset;
        // SAFETY: the caller's MDL chain.
        unsafe {
            while !m.is_null() && off >= (*m).ByteCount && !(*m).Next.is_null() {
                off -= (*m).ByteCount;
                m = (*m).Next;
            }
        }
        b.nb.CurrentMdl = m;
        b.nb.CurrentMdlOffset = off;
        b.nbl.NdisPoolHandle = pool;
        let raw = Box::into_raw(b);
        // SAFETY: `raw` is fresh; the NB is inside it.
        unsafe {
            (*raw).nbl.FirstNetBuffer = ptr::addr_of_mut!((*raw).nb);
            let s = &*(*p).owner;
            s.books.borrow_mut().pool_nbls.insert(raw as usize);
        }
        raw.cast()
    }

    unsafe fn free_net_buffer_list(nbl: *mut NET_BUFFER_LIST) {
        let b = nbl.cast::<PoolNbl>();
        // SAFETY: a pool list (checked against the books).
        unsafe {
            let s = &*(*(*b).pool).owner;
            if !s.books.borrow_mut().pool_nbls.remove(&(b as usize)) {
                s.books
                    .borrow_mut()
                    .violations
                    .push(Violation::DoubleFree("pool list"));
                return;
            }
            if !(*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED].is_null() {
                s.books
                    .borrow_mut()
                    .violations
                    .push(Violation::DoubleFree("list freed with its context"));
            }
            drop(Box::from_raw(b));
        }
    }

    unsafe fn allocate_mdl(handle: NDIS_HANDLE, va: *mut c_void, length: u32) -> *mut MDL {
        let fm = Box::new(FakeMdl {
            mdl: MDL {
                Next: null_mut(),
                Size: 0,
                MdlFlags: MDL_SOURCE_IS_NONPAGED_POOL,
                Process: null_mut(),
                MappedSystemVa: va,
                StartVa: va,
                ByteCount: length,
                ByteOffset: 0,
            },
            owner: handle as *const FakeSwitch,
            mem: None,
        });
        let raw = Box::into_raw(fm);
        // SAFETY: our handle.
        unsafe { sw(handle) }
            .books
            .borrow_mut()
            .mdls
            .insert(raw as usize);
        raw.cast()
    }

    unsafe fn free_mdl(mdl: *mut MDL) {
        let fm = mdl.cast::<FakeMdl>();
        // SAFETY: an MDL made by `allocate_mdl` (checked).
        unsafe {
            let s = &*(*fm).owner;
            if s.books.borrow_mut().mdls.remove(&(fm as usize)) {
                drop(Box::from_raw(fm));
            } else {
                s.books
                    .borrow_mut()
                    .violations
                    .push(Violation::DoubleFree("MDL"));
            }
        }
    }

    unsafe fn retreat_net_buffer_data_start(
        nb: *mut NET_BUFFER,
        delta: u32,
        _backfill: u32,
        _alloc: *mut c_void,
    ) -> NDIS_STATUS {
        // SAFETY: a valid NB.
        unsafe {
            if (*nb).CurrentMdlOffset < delta {
                // NDIS would need a new MDL: the shim promised never to.
                let owner = owner_of_nb(nb);
                if let Some(s) = owner {
                    s.books
                        .borrow_mut()
                        .violations
                        .push(Violation::RetreatNeedsMdl {
                            delta,
                            backfill: (*nb).CurrentMdlOffset,
                        });
                }
                return NDIS_STATUS_RESOURCES;
            }
            (*nb).CurrentMdlOffset -= delta;
            (*nb).DataOffset -= delta;
            (*nb).DataLength += delta;
        }
        NDIS_STATUS_SUCCESS
    }

    unsafe fn advance_net_buffer_data_start(
        nb: *mut NET_BUFFER,
        delta: u32,
        _free_mdl: u8,
        _h: *mut c_void,
    ) {
        // SAFETY: a valid NB whose data is at least `delta` long.
        unsafe {
            (*nb).DataOffset += delta;
            (*nb).DataLength = (*nb).DataLength.saturating_sub(delta);
            let mut off = (*nb).CurrentMdlOffset + delta;
            let mut m = (*nb).CurrentMdl;
            while !m.is_null() && off >= (*m).ByteCount && !(*m).Next.is_null() {
                off -= (*m).ByteCount;
                m = (*m).Next;
            }
            (*nb).CurrentMdl = m;
            (*nb).CurrentMdlOffset = off;
        }
    }

    unsafe fn mdl_system_address(mdl: *mut MDL) -> *mut u8 {
        // SAFETY: a valid MDL.
        unsafe { (*mdl).MappedSystemVa.cast() }
    }

    unsafe fn allocate_spin_lock(lock: *mut NDIS_SPIN_LOCK) {
        // SAFETY: the caller's lock.
        unsafe { (*lock).SpinLock = 0 };
    }

    unsafe fn acquire_spin_lock(lock: *mut NDIS_SPIN_LOCK) {
        // SAFETY: the caller's lock. Single-threaded: a second acquire is a
        // deadlock on a real system.
        unsafe {
            assert!(
                (*lock).SpinLock == 0,
                "spin lock acquired twice: a deadlock in the kernel"
            );
            (*lock).SpinLock = 1;
        }
    }

    unsafe fn release_spin_lock(lock: *mut NDIS_SPIN_LOCK) {
        // SAFETY: the caller's lock.
        unsafe { (*lock).SpinLock = 0 };
    }

    unsafe fn free_spin_lock(_lock: *mut NDIS_SPIN_LOCK) {}

    fn now_secs() -> u32 {
        NOW.with(|n| n.get())
    }
}

/// Answer a query from `src` (`len` bytes), as a miniport does: too small a
/// buffer gets INVALID_LENGTH and `BytesNeeded`.
///
/// # Safety
/// `request` is valid; `src` holds `len` bytes.
unsafe fn answer(request: *mut NDIS_OID_REQUEST, src: *const u8, len: usize) -> NDIS_STATUS {
    // SAFETY: the caller's contract.
    unsafe {
        let q = &mut (*request).DATA.QUERY_SET;
        if (q.InformationBufferLength as usize) < len {
            q.BytesNeeded = len as u32;
            q.BytesWrittenOrRead = 0;
            return NDIS_STATUS_INVALID_LENGTH;
        }
        ptr::copy_nonoverlapping(src, q.InformationBuffer.cast::<u8>(), len);
        q.BytesWrittenOrRead = len as u32;
        NDIS_STATUS_SUCCESS
    }
}

/// The fake that owns an NB's first MDL, if it is one of ours.
///
/// # Safety
/// `nb` is valid.
unsafe fn owner_of_nb<'a>(nb: *mut NET_BUFFER) -> Option<&'a FakeSwitch> {
    // SAFETY: every MDL in the harness is a `FakeMdl`.
    unsafe {
        let m = (*nb).MdlChain;
        if m.is_null() {
            return None;
        }
        let o = (*m.cast::<FakeMdl>()).owner;
        (!o.is_null()).then(|| &*o)
    }
}

// ---- the switch's optional handlers ------------------------------------------

unsafe extern "system" fn sw_alloc_ctx(
    ctx: NDIS_SWITCH_CONTEXT,
    nbl: *mut NET_BUFFER_LIST,
) -> NDIS_STATUS {
    // SAFETY: the fake's context and a valid list.
    unsafe {
        let c = Box::into_raw(Box::new(FakeCtx {
            dests: Vec::new(),
            by_shim: true,
        }));
        (*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED] = c.cast();
        let d = crate::ndis::nbl::detail(nbl).with_num_available_destinations(1);
        crate::ndis::nbl::set_detail(nbl, d);
        sw(ctx).books.borrow_mut().shim_ctxs.insert(c as usize);
    }
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn sw_free_ctx(ctx: NDIS_SWITCH_CONTEXT, nbl: *mut NET_BUFFER_LIST) {
    // SAFETY: as above.
    unsafe {
        let c = (*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED].cast::<FakeCtx>();
        let s = sw(ctx);
        if c.is_null() || !(*c).by_shim || !s.books.borrow_mut().shim_ctxs.remove(&(c as usize)) {
            s.books
                .borrow_mut()
                .violations
                .push(Violation::DoubleFree("forwarding context"));
            return;
        }
        drop(Box::from_raw(c));
        (*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED] = null_mut();
    }
}

unsafe extern "system" fn sw_set_source(
    _ctx: NDIS_SWITCH_CONTEXT,
    nbl: *mut NET_BUFFER_LIST,
    port: NDIS_SWITCH_PORT_ID,
    nic: NDIS_SWITCH_NIC_INDEX,
) -> NDIS_STATUS {
    // SAFETY: a valid list.
    unsafe {
        let d = crate::ndis::nbl::detail(nbl).with_source(port, nic);
        crate::ndis::nbl::set_detail(nbl, d);
    }
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn sw_add_dest(
    ctx: NDIS_SWITCH_CONTEXT,
    nbl: *mut NET_BUFFER_LIST,
    dest: *mut NDIS_SWITCH_PORT_DESTINATION,
) -> NDIS_STATUS {
    // SAFETY: valid list and destination.
    unsafe {
        let d = crate::ndis::nbl::detail(nbl);
        let c = (*nbl).NetBufferListInfo[SWITCH_FORWARDING_RESERVED].cast::<FakeCtx>();
        if c.is_null() || d.num_available_destinations() == 0 {
            sw(ctx)
                .books
                .borrow_mut()
                .violations
                .push(Violation::NoRoomForDestination(nbl as usize));
            return NDIS_STATUS_RESOURCES;
        }
        (*c).dests.push(*dest);
        crate::ndis::nbl::set_detail(
            nbl,
            d.with_num_available_destinations(d.num_available_destinations() - 1),
        );
    }
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn sw_grow(
    _ctx: NDIS_SWITCH_CONTEXT,
    nbl: *mut NET_BUFFER_LIST,
    n: u32,
    _out: *mut *mut NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY,
) -> NDIS_STATUS {
    // SAFETY: a valid list.
    unsafe {
        let d = crate::ndis::nbl::detail(nbl);
        crate::ndis::nbl::set_detail(
            nbl,
            d.with_num_available_destinations(d.num_available_destinations() + n),
        );
    }
    NDIS_STATUS_SUCCESS
}

unsafe extern "system" fn sw_copy_info(
    _ctx: NDIS_SWITCH_CONTEXT,
    dst: *mut NET_BUFFER_LIST,
    src: *mut NET_BUFFER_LIST,
    _flags: u32,
) -> NDIS_STATUS {
    // SAFETY: valid lists; the destination's context stays its own.
    unsafe {
        for i in 0..MAX_NET_BUFFER_LIST_INFO {
            if i != SWITCH_FORWARDING_RESERVED && i != SWITCH_FORWARDING_DETAIL {
                (*dst).NetBufferListInfo[i] = (*src).NetBufferListInfo[i];
            }
        }
        let s = crate::ndis::nbl::detail(src);
        let d = crate::ndis::nbl::detail(dst)
            .with_source(s.source_port_id(), s.source_nic_index())
            .with_packet_data_safe(s.is_packet_data_safe(), s.safe_packet_data_size());
        crate::ndis::nbl::set_detail(dst, d);
    }
    NDIS_STATUS_SUCCESS
}
