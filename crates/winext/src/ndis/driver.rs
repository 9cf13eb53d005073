//! The driver's shared state and the work behind every callback: one
//! [`Driver`] per loaded driver, holding the [`Extension`] and the attached
//! filter module under one NDIS spin lock.
//!
//! Every entry point (the filter callbacks, the ksync and pkt0 devices)
//! takes the lock, lets the portable layer decide, executes the decisions
//! on the lists (moving data starts, adding destinations, splitting,
//! holding) and collects what must go to NDIS in an [`Out`]; the lock is
//! released *before* [`Out::flush`] calls `NdisFSendNetBufferLists` /
//! `NdisFSendNetBufferListsComplete`, because NDIS may complete a send
//! synchronously into our own completion handler, which takes the lock.
//!
//! One lock for everything is the simple choice: dp-core's `Router` is
//! mutated per packet (counters, flow state), and a batch holds it for the
//! time of one core run. See docs/windows.md for what that costs.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::null_mut;
use core::sync::atomic::{AtomicUsize, Ordering};

use alloc::vec::Vec;

use super::api::NdisApi;
use super::nbl::{self, Chain, ModuleRef, RawFrame};
use super::types::*;
use crate::ext::{Extension, Frame, InjectError, NblIn, Switch};
use crate::holds::Held;
use crate::pkt0::QueueError;
use crate::plan::{access, Access, CopyReason, Fate, Plan};
use crate::ports::{PortNic, Source};
use crate::session::{Session, WriteError};
use crate::vlan;
use dp_core::HEADROOM;

/// A held packet: a list with one NB (the switch's, or one of ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldNbl(pub *mut NET_BUFFER_LIST);

// SAFETY: a list handle, used only under the driver's lock.
unsafe impl Send for HeldNbl {}
// SAFETY: as above.
unsafe impl Sync for HeldNbl {}

/// The filter module's run state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    Paused,
    Running,
    /// Pause returned PENDING: waiting for our own lists to come back.
    Pausing,
}

/// Parents of split lists, waiting for their children.
#[derive(Debug)]
pub struct Splits {
    slots: Vec<Option<(*mut NET_BUFFER_LIST, u32)>>,
    free: Vec<u32>,
}

impl Splits {
    fn new(n: u32) -> Self {
        let mut slots = Vec::with_capacity(n as usize);
        slots.resize(n as usize, None);
        Splits {
            slots,
            free: (0..n).rev().collect(),
        }
    }

    fn open(&mut self, parent: *mut NET_BUFFER_LIST) -> Option<u32> {
        let i = self.free.pop()?;
        if let Some(s) = self.slots.get_mut(i as usize) {
            *s = Some((parent, 1));
        }
        Some(i)
    }

    fn add(&mut self, i: u32) {
        if let Some(Some((_, n))) = self.slots.get_mut(i as usize) {
            *n += 1;
        }
    }

    /// One child (or the opener's own reference) done: the parent when it
    /// was the last.
    fn done(&mut self, i: u32) -> Option<*mut NET_BUFFER_LIST> {
        let slot = self.slots.get_mut(i as usize)?;
        let (parent, n) = slot.as_mut()?;
        *n -= 1;
        if *n > 0 {
            return None;
        }
        let p = *parent;
        *slot = None;
        self.free.push(i);
        Some(p)
    }

    /// Parents still waiting.
    pub fn open_count(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The attached filter module.
#[derive(Debug)]
pub struct Module {
    pub r: ModuleRef,
    pub run: Run,
    /// Our lists sent down and not yet back.
    pub outstanding: usize,
    pub splits: Splits,
    /// Internal OID requests in flight.
    pub oids: usize,
}

#[derive(Clone, Copy, Debug)]
struct BatchNbl {
    nbl: *mut NET_BUFFER_LIST,
    src: PortNic,
    frames: u32,
    vif: Option<u16>,
    /// The list's out-of-band 802.1Q tag.
    tci: u16,
}

/// Vectors reused by every batch (allocated at start, never grown on the
/// packet path as long as batches respect `max_batch`).
#[derive(Debug)]
struct Scratch {
    batch: Vec<BatchNbl>,
    raw: Vec<RawFrame>,
    nbl_in: Vec<NblIn>,
    frames: Vec<Frame<'static>>,
    held: Vec<Held<HeldNbl>>,
    fates: Vec<Fate>,
    plans: Vec<Plan>,
}

/// Everything behind the lock.
pub struct State {
    pub ext: Extension<HeldNbl>,
    pub module: Option<Module>,
    scratch: Scratch,
}

/// The driver (see the module docs).
pub struct Driver<A: NdisApi> {
    lock: UnsafeCell<NDIS_SPIN_LOCK>,
    st: UnsafeCell<State>,
    /// Called (lock released) when trapped frames wait on pkt0: the kernel
    /// completes a waiting read with it.
    wake: AtomicUsize,
    _api: PhantomData<fn() -> A>,
}

// SAFETY: `st` is only reached through `Guard`, which holds the spin lock.
unsafe impl<A: NdisApi> Sync for Driver<A> {}
// SAFETY: as above.
unsafe impl<A: NdisApi> Send for Driver<A> {}

/// Exclusive access to the driver's state while the spin lock is held.
pub struct Guard<'a, A: NdisApi> {
    d: &'a Driver<A>,
}

impl<A: NdisApi> Deref for Guard<'_, A> {
    type Target = State;
    fn deref(&self) -> &State {
        // SAFETY: the lock is held for the guard's lifetime.
        unsafe { &*self.d.st.get() }
    }
}

impl<A: NdisApi> DerefMut for Guard<'_, A> {
    fn deref_mut(&mut self) -> &mut State {
        // SAFETY: the lock is held for the guard's lifetime, and the guard
        // is the only way to the state.
        unsafe { &mut *self.d.st.get() }
    }
}

impl<A: NdisApi> Drop for Guard<'_, A> {
    fn drop(&mut self) {
        // SAFETY: acquired in `Driver::lock`.
        unsafe { A::release_spin_lock(self.d.lock.get()) };
    }
}

/// What to hand NDIS once the lock is released.
#[derive(Debug, Default)]
pub struct Out {
    pub m: Option<ModuleRef>,
    pub send: Chain,
    pub complete: Chain,
    pub pause_complete: bool,
    /// Trapped frames wait on pkt0.
    pub pkt0: bool,
}

impl Out {
    /// Hand everything to NDIS. `dispatch`: the caller runs at
    /// DISPATCH_LEVEL (the send and completion paths say so in their
    /// flags; the devices run at PASSIVE_LEVEL).
    ///
    /// # Safety
    /// The driver's lock is not held; the lists are valid and ours to pass.
    pub unsafe fn flush<A: NdisApi>(mut self, dispatch: bool) {
        let Some(m) = self.m else {
            return;
        };
        let send = self.send.take();
        let complete = self.complete.take();
        // SAFETY: the caller's contract.
        unsafe {
            if !send.is_empty() {
                let flags = if dispatch {
                    NDIS_SEND_FLAGS_DISPATCH_LEVEL
                } else {
                    0
                };
                A::f_send_net_buffer_lists(m.filter, send.head, NDIS_DEFAULT_PORT_NUMBER, flags);
            }
            if !complete.is_empty() {
                let flags = if dispatch {
                    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
                } else {
                    0
                };
                A::f_send_net_buffer_lists_complete(m.filter, complete.head, flags);
            }
            if self.pause_complete {
                A::f_pause_complete(m.filter);
            }
        }
    }
}

/// Splits a parent list can wait for at once (a bound, not a cost).
const MAX_SPLITS: u32 = 4096;

impl<A: NdisApi> Driver<A> {
    /// A driver around `ext`. Call [`Self::init`] once it sits at its final
    /// address (the NDIS spin lock must not move once allocated).
    pub fn new(ext: Extension<HeldNbl>) -> Self {
        let batch = ext.max_batch();
        Driver {
            lock: UnsafeCell::new(NDIS_SPIN_LOCK::default()),
            st: UnsafeCell::new(State {
                ext,
                module: None,
                scratch: Scratch {
                    batch: Vec::with_capacity(batch),
                    raw: Vec::with_capacity(batch),
                    nbl_in: Vec::with_capacity(batch),
                    frames: Vec::with_capacity(batch),
                    held: Vec::with_capacity(64),
                    fates: Vec::with_capacity(batch),
                    plans: Vec::with_capacity(batch),
                },
            }),
            wake: AtomicUsize::new(0),
            _api: PhantomData,
        }
    }

    /// Have `f` called when trapped frames wait on pkt0.
    pub fn set_pkt0_wake(&self, f: fn(&Driver<A>)) {
        self.wake.store(f as usize, Ordering::Release);
    }

    /// After a flush: wake the pkt0 reader if frames wait.
    fn wake_pkt0(&self, out: &Out) {
        if !out.pkt0 {
            return;
        }
        let f = self.wake.load(Ordering::Acquire);
        if f != 0 {
            // SAFETY: stored by `set_pkt0_wake` from a `fn(&Driver<A>)`.
            let f: fn(&Driver<A>) = unsafe { core::mem::transmute::<usize, fn(&Driver<A>)>(f) };
            f(self);
        }
    }

    /// Allocate the spin lock.
    ///
    /// # Safety
    /// Called once, before any other method, with `self` at its final
    /// address.
    pub unsafe fn init(&self) {
        // SAFETY: the caller's contract.
        unsafe { A::allocate_spin_lock(self.lock.get()) };
    }

    /// Release the spin lock (driver unload).
    ///
    /// # Safety
    /// Nothing uses the driver any more.
    pub unsafe fn fini(&self) {
        // SAFETY: the caller's contract.
        unsafe { A::free_spin_lock(self.lock.get()) };
    }

    pub fn lock(&self) -> Guard<'_, A> {
        // SAFETY: initialised by `init`; released by the guard.
        unsafe { A::acquire_spin_lock(self.lock.get()) };
        Guard { d: self }
    }

    // ---- the data path (FilterSendNetBufferLists and its completion) ------

    /// `FilterSendNetBufferLists`: decide every list of `chain`.
    ///
    /// # Safety
    /// `chain` is a valid chain of switch lists handed to the filter.
    pub unsafe fn send(&self, chain: *mut NET_BUFFER_LIST, flags: u32) {
        let dispatch = flags & NDIS_SEND_FLAGS_DISPATCH_LEVEL != 0;
        let mut out = Out::default();
        {
            let mut g = self.lock();
            let st = &mut *g;
            let Some(m) = st.module.as_ref().map(|m| (m.r, m.run)) else {
                return;
            };
            out.m = Some(m.0);
            if m.1 != Run::Running {
                // Paused: give everything back at once.
                let mut nbl = chain;
                while !nbl.is_null() {
                    // SAFETY: the caller's chain.
                    unsafe {
                        let next = (*nbl).Next;
                        nbl::set_status(nbl, NDIS_STATUS_PAUSED);
                        out.complete.push(nbl);
                        nbl = next;
                    }
                    st.ext.stats_mut().paused_drops += 1;
                }
            } else {
                st.ext.tick(A::now_secs());
                // SAFETY: the caller's chain.
                unsafe { self.ingress_chain(st, m.0, chain, &mut out) };
                self.settle(st, &mut out);
                out.pkt0 = st.ext.pkt0_pending() > 0;
            }
        }
        let wake = Out {
            pkt0: out.pkt0,
            ..Out::default()
        };
        // SAFETY: the lock is released; the lists are ours to pass on.
        unsafe { out.flush::<A>(dispatch) };
        self.wake_pkt0(&wake);
    }

    /// `FilterSendNetBufferListsComplete`: our lists are freed (and their
    /// split parents completed when they were the last child), the
    /// switch's go back up.
    ///
    /// # Safety
    /// `chain` is a valid chain NDIS completed to the filter.
    pub unsafe fn send_complete(&self, chain: *mut NET_BUFFER_LIST, flags: u32) {
        let dispatch = flags & NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL != 0;
        let mut out = Out::default();
        {
            let mut g = self.lock();
            let st = &mut *g;
            let Some(m) = st.module.as_ref().map(|m| m.r) else {
                return;
            };
            out.m = Some(m);
            let mut nbl = chain;
            while !nbl.is_null() {
                // SAFETY: the caller's chain.
                unsafe {
                    let next = (*nbl).Next;
                    if nbl::is_ours(&m, nbl) {
                        if let Some(module) = st.module.as_mut() {
                            module.outstanding = module.outstanding.saturating_sub(1);
                        }
                        Self::done(st, &m, nbl, &mut out);
                    } else {
                        out.complete.push(nbl);
                    }
                    nbl = next;
                }
            }
            Self::check_pause(st, &mut out);
        }
        // SAFETY: lock released.
        unsafe { out.flush::<A>(dispatch) };
    }

    /// The pause finished if it was waiting for our last list.
    pub(crate) fn check_pause(st: &mut State, out: &mut Out) {
        if let Some(module) = st.module.as_mut() {
            if module.run == Run::Pausing && module.outstanding == 0 {
                module.run = Run::Paused;
                out.pause_complete = true;
            }
        }
    }

    // ---- the devices ----------------------------------------------------

    /// One write on a ksync handle.
    pub fn ksync_write(&self, session: &mut Session, input: &[u8]) -> Result<(), WriteError> {
        let mut out = Out::default();
        let r = {
            let mut g = self.lock();
            let st = &mut *g;
            out.m = st.module.as_ref().map(|m| m.r);
            st.ext.tick(A::now_secs());
            let r = st.ext.ksync(session, input);
            self.settle(st, &mut out);
            out.pkt0 = st.ext.pkt0_pending() > 0;
            r
        };
        let wake = Out {
            pkt0: out.pkt0,
            ..Out::default()
        };
        // SAFETY: lock released.
        unsafe { out.flush::<A>(false) };
        self.wake_pkt0(&wake);
        r
    }

    /// A frame the agent wrote on pkt0.
    pub fn pkt0_write(&self, frame: &[u8]) -> Result<(), InjectError> {
        let mut out = Out::default();
        let r = {
            let mut g = self.lock();
            let st = &mut *g;
            match st.module.as_ref().map(|m| (m.r, m.run)) {
                Some((r, Run::Running)) => {
                    out.m = Some(r);
                    let State { ext, module, .. } = st;
                    let mut sw = Sw::<A> {
                        m: &r,
                        batch: &[],
                        send: &mut out.send,
                        outstanding: module.as_mut().map(|m| &mut m.outstanding),
                        _api: PhantomData,
                    };
                    ext.pkt0_write(&mut sw, frame)
                }
                _ => {
                    st.ext.stats_mut().paused_drops += 1;
                    Err(InjectError::Paused)
                }
            }
        };
        let wake = Out {
            pkt0: self.lock().ext.pkt0_pending() > 0,
            ..Out::default()
        };
        // SAFETY: lock released.
        unsafe { out.flush::<A>(false) };
        self.wake_pkt0(&wake);
        r
    }

    /// The next trapped frame for the agent.
    pub fn pkt0_read(&self, buf: &mut [u8]) -> Result<usize, QueueError> {
        self.lock().ext.pkt0_read(buf)
    }

    /// Frames waiting on pkt0.
    pub fn pkt0_pending(&self) -> usize {
        self.lock().ext.pkt0_pending()
    }

    /// The agent closed pkt0.
    pub fn pkt0_reset(&self) {
        self.lock().ext.pkt0_reset();
    }

    // ---- decisions into list operations -----------------------------------

    /// Complete or free every held packet the extension gave up, and
    /// re-inject those the agent released. Called under the lock after
    /// anything that can release or drop.
    pub(crate) fn settle(&self, st: &mut State, out: &mut Out) {
        let Some(m) = st.module.as_ref().map(|m| (m.r, m.run)) else {
            return;
        };
        for _ in 0..8 {
            let mut held = core::mem::take(&mut st.scratch.held);
            st.ext.take_dropped(&mut held);
            for h in held.drain(..) {
                // SAFETY: held lists are valid and the extension's to give.
                unsafe { Self::done(st, &m.0, h.token.0, out) };
            }
            st.ext.take_released(&mut held);
            if held.is_empty() {
                st.scratch.held = held;
                return;
            }
            if m.1 != Run::Running {
                for h in held.drain(..) {
                    // SAFETY: as above.
                    unsafe { Self::done(st, &m.0, h.token.0, out) };
                }
                st.scratch.held = held;
                continue;
            }
            // Re-inject on the vif each was received on, in batches.
            let max = st.ext.max_batch();
            let mut i = 0;
            while i < held.len() {
                st.scratch.batch.clear();
                st.scratch.raw.clear();
                while let Some(h) = held.get(i) {
                    if st.scratch.raw.len() >= max {
                        break;
                    }
                    i += 1;
                    let nbl = h.token.0;
                    // SAFETY: a held list is valid with one NB.
                    let (shape, raw) = unsafe { nbl::shape::<A>(nbl::first_nb(nbl), None) };
                    match raw {
                        Some(r) if access(&shape) == Access::Direct => {
                            st.scratch.batch.push(BatchNbl {
                                nbl,
                                src: h.src,
                                frames: 1,
                                vif: Some(h.vif),
                                // Still the switch's: a held frame is kept
                                // as received.
                                tci: unsafe { nbl::vlan(nbl) },
                            });
                            st.scratch.raw.push(r);
                        }
                        // SAFETY: as above.
                        _ => unsafe { Self::done(st, &m.0, nbl, out) },
                    }
                }
                // SAFETY: the batch holds valid lists.
                unsafe { Self::run_batch(st, &m.0, out) };
            }
            held.clear();
            st.scratch.held = held;
        }
    }

    /// Turn `chain` into batches and decide them.
    ///
    /// # Safety
    /// `chain` is a valid chain of switch lists.
    unsafe fn ingress_chain(
        &self,
        st: &mut State,
        m: ModuleRef,
        chain: *mut NET_BUFFER_LIST,
        out: &mut Out,
    ) {
        let max = st.ext.max_batch();
        st.scratch.batch.clear();
        st.scratch.raw.clear();
        let mut nbl = chain;
        while !nbl.is_null() {
            // SAFETY: the caller's chain.
            let (next, nbs) = unsafe { ((*nbl).Next, nbl::nb_count(nbl)) };
            // SAFETY: as above; `Next` is ours to rewrite now.
            unsafe { (*nbl).Next = null_mut() };
            // SAFETY: as above.
            if unsafe { nbl::detail(nbl) }.native_forwarding_required() {
                // The switch forwards it (HNV): not ours to decide, and a
                // forwarding extension must not add destinations to it.
                st.ext.stats_mut().native_forwarded += 1;
                // SAFETY: a valid, unlinked switch list, passed on.
                unsafe { out.send.push(nbl) };
                nbl = next;
                continue;
            }
            if nbs == 0 || nbs > max {
                // SAFETY: a valid switch list.
                unsafe { Self::done(st, &m, nbl, out) };
                nbl = next;
                continue;
            }
            if st.scratch.raw.len() + nbs > max {
                // SAFETY: the batch holds valid lists.
                unsafe { Self::run_batch(st, &m, out) };
                st.scratch.batch.clear();
                st.scratch.raw.clear();
            }
            // SAFETY: as above.
            unsafe { Self::add_nbl(st, &m, nbl, nbs, out) };
            nbl = next;
        }
        if !st.scratch.batch.is_empty() {
            // SAFETY: the batch holds valid lists.
            unsafe { Self::run_batch(st, &m, out) };
        }
    }

    /// Put one switch list into the batch: in place when all its NBs can
    /// be, else as one copy per NB (the original completes at once).
    ///
    /// # Safety
    /// `nbl` is a valid switch list with `nbs` NBs, unlinked.
    unsafe fn add_nbl(
        st: &mut State,
        m: &ModuleRef,
        nbl: *mut NET_BUFFER_LIST,
        nbs: usize,
        out: &mut Out,
    ) {
        // SAFETY: the caller's list.
        let (src, det, tci) = unsafe { (nbl::source(nbl), nbl::detail(nbl), nbl::vlan(nbl)) };
        let safe = (!det.is_packet_data_safe()).then(|| det.safe_packet_data_size() as usize);
        let first = st.scratch.raw.len();
        let mut copy: Option<CopyReason> = None;
        let mut prev_mdl: *mut MDL = null_mut();
        // SAFETY: the caller's list.
        let mut nb = unsafe { nbl::first_nb(nbl) };
        while !nb.is_null() {
            // SAFETY: a valid NB of the list.
            let (mut shape, raw) = unsafe { nbl::shape::<A>(nb, safe) };
            // SAFETY: as above.
            let cur = unsafe { (*nb).CurrentMdl };
            shape.shared = !cur.is_null() && cur == prev_mdl;
            prev_mdl = cur;
            match (access(&shape), raw) {
                (Access::Direct, Some(r)) => st.scratch.raw.push(r),
                (Access::Copy(reason), _) => copy = copy.or(Some(reason)),
                (Access::Direct, None) => copy = copy.or(Some(CopyReason::Fragmented)),
            }
            // SAFETY: as above.
            nb = unsafe { (*nb).Next };
        }
        let Some(reason) = copy else {
            st.ext.stats_mut().zero_copy += nbs as u64;
            st.scratch.batch.push(BatchNbl {
                nbl,
                src,
                frames: nbs as u32,
                vif: None,
                tci,
            });
            return;
        };
        // Copy every NB into a list of its own.
        st.scratch.raw.truncate(first);
        // SAFETY: the caller's list.
        let mut nb = unsafe { nbl::first_nb(nbl) };
        while !nb.is_null() {
            // SAFETY: a valid NB.
            let len = unsafe { (*nb).DataLength } as usize;
            // SAFETY: `m` is the attached module's.
            let made = unsafe { nbl::alloc_copy::<A>(m, len) };
            match made {
                Some((copy_nbl, bytes)) => {
                    let buf = bytes.as_mut_ptr();
                    // SAFETY: valid NB and a buffer of its length; the copy
                    // takes the original's switch metadata.
                    let ok = unsafe {
                        nbl::copy_out::<A>(nb, bytes) && nbl::attach_context(m, copy_nbl, Some(nbl))
                    };
                    if ok {
                        st.ext.count_copy(reason);
                        st.scratch.batch.push(BatchNbl {
                            nbl: copy_nbl,
                            src,
                            frames: 1,
                            vif: None,
                            tci,
                        });
                        st.scratch.raw.push(RawFrame {
                            // SAFETY: the copy has one NB.
                            nb: unsafe { nbl::first_nb(copy_nbl) },
                            // SAFETY: the frame sits HEADROOM into the buffer.
                            buf: unsafe { buf.sub(HEADROOM) },
                            cap: HEADROOM + len,
                            head: HEADROOM,
                            len,
                        });
                    } else {
                        st.ext.stats_mut().copy_failed += 1;
                        // SAFETY: our list, never sent.
                        unsafe { nbl::free_raw::<A>(m, copy_nbl) };
                    }
                }
                None => st.ext.stats_mut().copy_failed += 1,
            }
            // SAFETY: a valid NB.
            nb = unsafe { (*nb).Next };
        }
        // SAFETY: the original is done with.
        unsafe { Self::done(st, m, nbl, out) };
    }

    /// Run the batch in `scratch` through the extension and execute the
    /// plans.
    ///
    /// # Safety
    /// The batch holds valid lists the filter owns, and `raw` their frames.
    unsafe fn run_batch(st: &mut State, m: &ModuleRef, out: &mut Out) {
        let State {
            ext,
            module,
            scratch,
        } = st;
        scratch.nbl_in.clear();
        scratch.nbl_in.extend(scratch.batch.iter().map(|b| NblIn {
            src: b.src,
            frames: b.frames,
            vif: b.vif,
            tci: b.tci,
        }));
        let mut frames = recycle(core::mem::take(&mut scratch.frames));
        for r in &scratch.raw {
            // SAFETY: each frame's MDL maps `cap` bytes at `buf`, locked
            // while the list is ours; distinct NBs of the batch have
            // distinct buffers (a shared MDL is copied first).
            let buf = unsafe { core::slice::from_raw_parts_mut(r.buf, r.cap) };
            frames.push(Frame {
                buf,
                head: r.head,
                len: r.len,
            });
        }
        {
            let mut sw = Sw::<A> {
                m,
                batch: &scratch.batch,
                send: &mut out.send,
                outstanding: module.as_mut().map(|m| &mut m.outstanding),
                _api: PhantomData,
            };
            ext.ingress(&mut sw, &scratch.nbl_in, &mut frames);
        }
        scratch.frames = recycle(frames);
        scratch.fates.clear();
        scratch.fates.extend_from_slice(ext.fates());
        scratch.plans.clear();
        scratch.plans.extend_from_slice(ext.plans());

        let mut at = 0usize;
        for (k, b) in scratch.batch.iter().enumerate() {
            let n = b.frames as usize;
            let plan = scratch.plans.get(k).copied().unwrap_or(Plan::Complete);
            let raws = scratch.raw.get(at..at + n).unwrap_or_default();
            let fates = scratch.fates.get(at..at + n).unwrap_or_default();
            at += n;
            let Some(module) = module.as_mut() else {
                continue;
            };
            // SAFETY: the batch's lists and frames (the caller's contract).
            unsafe { execute::<A>(ext, module, m, b, plan, raws, fates, out) };
        }
    }

    /// Give back a list the extension is done with: complete a switch list
    /// up, free one of ours (and complete its split parent when it was the
    /// last child).
    ///
    /// # Safety
    /// `nbl` is a valid list the filter owns, not in NDIS's hands.
    pub(crate) unsafe fn done(
        st: &mut State,
        m: &ModuleRef,
        nbl: *mut NET_BUFFER_LIST,
        out: &mut Out,
    ) {
        // SAFETY: the caller's contract.
        unsafe { done_in::<A>(st.module.as_mut(), m, nbl, out) }
    }
}

/// [`Driver::done`] on the module alone (so callers holding other parts of
/// the state can use it).
///
/// # Safety
/// As [`Driver::done`].
unsafe fn done_in<A: NdisApi>(
    module: Option<&mut Module>,
    m: &ModuleRef,
    nbl: *mut NET_BUFFER_LIST,
    out: &mut Out,
) {
    // SAFETY: the caller's contract.
    unsafe {
        if nbl::is_ours(m, nbl) {
            let split = nbl::child_split(nbl);
            nbl::free_raw::<A>(m, nbl);
            if let (Some(i), Some(module)) = (split, module) {
                if let Some(parent) = module.splits.done(i) {
                    nbl::set_status(parent, NDIS_STATUS_SUCCESS);
                    out.complete.push(parent);
                }
            }
        } else {
            nbl::set_status(nbl, NDIS_STATUS_SUCCESS);
            out.complete.push(nbl);
        }
    }
}

/// Send a list down (counted when it is ours).
///
/// # Safety
/// `nbl` is valid, with destinations, the filter's to send.
unsafe fn send_down(module: &mut Module, m: &ModuleRef, nbl: *mut NET_BUFFER_LIST, out: &mut Out) {
    // SAFETY: the caller's contract.
    unsafe {
        if nbl::is_ours(m, nbl) {
            module.outstanding += 1;
        }
        out.send.push(nbl);
    }
}

/// Execute one list's plan.
///
/// # Safety
/// `b.nbl` is a valid list the filter owns whose NBs' frames are `raws`.
#[allow(clippy::too_many_arguments)]
unsafe fn execute<A: NdisApi>(
    ext: &mut Extension<HeldNbl>,
    module: &mut Module,
    m: &ModuleRef,
    b: &BatchNbl,
    plan: Plan,
    raws: &[RawFrame],
    fates: &[Fate],
    out: &mut Out,
) {
    let nbl = b.nbl;
    // SAFETY: the caller's contract throughout.
    unsafe {
        match plan {
            Plan::Complete => done_in::<A>(Some(module), m, nbl, out),
            Plan::Forward(dst) => {
                for (r, f) in raws.iter().zip(fates) {
                    if let Fate::Forward { head, len, .. } = *f {
                        nbl::set_frame::<A>(r.nb, r.head, head as usize, len as usize);
                    }
                }
                // One tag for the list (the plan's condition).
                if let Some(Fate::Forward { tci: Some(t), .. }) = fates.first() {
                    nbl::set_vlan(nbl, *t);
                }
                if nbl::add_destination(m, nbl, dst) {
                    send_down(module, m, nbl, out);
                } else {
                    ext.stats_mut().no_destination += 1;
                    done_in::<A>(Some(module), m, nbl, out);
                }
            }
            Plan::Hold { flow } => {
                if let (Some(r), Some(Fate::Hold { head, len, .. })) = (raws.first(), fates.first())
                {
                    nbl::set_frame::<A>(r.nb, r.head, *head as usize, *len as usize);
                }
                let vif = match (b.vif, fates.first()) {
                    (Some(v), _) => v,
                    (None, Some(Fate::Hold { vif, .. })) => *vif,
                    _ => match ext.ports().source(b.src) {
                        Source::Vif(v) => v,
                        _ => u16::MAX,
                    },
                };
                if !ext.hold(flow, HeldNbl(nbl), vif, b.src) {
                    done_in::<A>(Some(module), m, nbl, out);
                }
            }
            Plan::Split => {
                if nbl::is_ours(m, nbl) {
                    // Our lists have one NB: never split. Be safe anyway.
                    done_in::<A>(Some(module), m, nbl, out);
                    return;
                }
                let Some(rec) = module.splits.open(nbl) else {
                    ext.stats_mut().copy_failed += 1;
                    done_in::<A>(Some(module), m, nbl, out);
                    return;
                };
                for (r, f) in raws.iter().zip(fates) {
                    match *f {
                        Fate::Done => {}
                        Fate::Forward {
                            dst,
                            head,
                            len,
                            tci,
                        } => {
                            nbl::set_frame::<A>(r.nb, r.head, head as usize, len as usize);
                            let Some(child) = nbl::alloc_child::<A>(m, nbl, r.nb, rec) else {
                                ext.stats_mut().copy_failed += 1;
                                continue;
                            };
                            module.splits.add(rec);
                            if let Some(t) = tci {
                                nbl::set_vlan(child, t);
                            }
                            if nbl::add_destination(m, child, dst) {
                                send_down(module, m, child, out);
                            } else {
                                done_in::<A>(Some(module), m, child, out);
                            }
                        }
                        Fate::Hold {
                            flow,
                            vif,
                            head,
                            len,
                        } => {
                            nbl::set_frame::<A>(r.nb, r.head, head as usize, len as usize);
                            let Some(child) = nbl::alloc_child::<A>(m, nbl, r.nb, rec) else {
                                ext.stats_mut().copy_failed += 1;
                                continue;
                            };
                            module.splits.add(rec);
                            if !ext.hold(flow, HeldNbl(child), vif, b.src) {
                                done_in::<A>(Some(module), m, child, out);
                            }
                        }
                    }
                }
                // The opener's own reference.
                if let Some(parent) = module.splits.done(rec) {
                    nbl::set_status(parent, NDIS_STATUS_SUCCESS);
                    out.complete.push(parent);
                }
            }
        }
    }
}

/// `v`, emptied, with another lifetime (the allocation is reused).
#[allow(clippy::unnecessary_filter_map)] // the point is the type change
fn recycle<'b>(mut v: Vec<Frame<'_>>) -> Vec<Frame<'b>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// The extension's view of the switch during one batch.
struct Sw<'a, A: NdisApi> {
    m: &'a ModuleRef,
    batch: &'a [BatchNbl],
    send: &'a mut Chain,
    outstanding: Option<&'a mut usize>,
    _api: PhantomData<fn() -> A>,
}

impl<A: NdisApi> Switch for Sw<'_, A> {
    fn originate(&mut self, like: Option<u32>, parts: &[&[u8]], dst: PortNic) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let like = like.and_then(|i| self.batch.get(i as usize)).map(|b| b.nbl);
        // SAFETY: the attached module's handles; `like` is a valid list of
        // the batch.
        unsafe {
            let Some((nbl, bytes)) = nbl::alloc_copy::<A>(self.m, len) else {
                return false;
            };
            let mut at = 0;
            for p in parts {
                if let Some(d) = bytes.get_mut(at..at + p.len()) {
                    d.copy_from_slice(p);
                }
                at += p.len();
            }
            if !nbl::attach_context(self.m, nbl, like) || !nbl::add_destination(self.m, nbl, dst) {
                nbl::free_raw::<A>(self.m, nbl);
                return false;
            }
            // A copy out of a VLAN sub-interface: NDIS carries the tag
            // beside the frame (after attach_context, which may copy the
            // original's).
            let tci = vlan::pop_tag(bytes);
            if tci.is_some() {
                let nb = nbl::first_nb(nbl);
                nbl::set_frame::<A>(nb, HEADROOM, HEADROOM + vlan::TAG_LEN, len - vlan::TAG_LEN);
            }
            nbl::set_vlan(nbl, tci.unwrap_or(0));
            self.send.push(nbl);
        }
        if let Some(o) = self.outstanding.as_deref_mut() {
            *o += 1;
        }
        true
    }
}

impl State {
    /// The attached module, if any.
    pub fn module(&self) -> Option<&Module> {
        self.module.as_ref()
    }
}

/// Attach bookkeeping used by the filter callbacks.
impl Module {
    pub fn new(r: ModuleRef) -> Self {
        Module {
            r,
            run: Run::Paused,
            outstanding: 0,
            splits: Splits::new(MAX_SPLITS),
            oids: 0,
        }
    }
}
