//! The extension's portable state: the forwarding core, the ksync handler,
//! the port table, held packets and the pkt0 queue, and every decision the
//! NDIS shim executes.
//!
//! The shim calls in under its lock with what NDIS gave it, already turned
//! into plain Rust values ([`NblIn`], [`Frame`], [`NicInfo`], byte slices),
//! and gets plain answers back ([`Fate`]s, [`Plan`]s, held packets to
//! re-inject or complete). The only thing the extension asks of the switch
//! while deciding is to make a copy of a packet ([`Switch::originate`]):
//! floods, and packets the agent injects on pkt0.

use alloc::vec::Vec;

use dp_core::flow::table::FlowTable;
use dp_core::{Action, Actions, Packet, Router, RouterConfig, VifConfig, VifType};
use ksync::{Handler, HostInfo, HostOps};
use sandesh::frame::Framing;
use sandesh::VrInterfaceReq;

use crate::holds::{Held, Holds};
use crate::pkt0::{Pkt0Queue, QueueError, PKT0_MAX_FRAME};
use crate::plan::{plan, CopyReason, Fate, Plan};
use crate::ports::{Dest, NicInfo, PortNic, Ports, Source, VifWant};
use crate::session::{Session, WriteError};
use crate::stats::Stats;

/// What the extension needs from the switch while it decides.
pub trait Switch {
    /// Send a new packet made of `parts` (concatenated) to `dst`. `like` is
    /// the index, in the current batch, of the list whose switch metadata
    /// (source port and NIC, VLAN, priority) the copy inherits; `None` for
    /// packets the extension makes itself (pkt0 injections), which leave
    /// from the switch's default port. False if it could not be sent.
    fn originate(&mut self, like: Option<u32>, parts: &[&[u8]], dst: PortNic) -> bool;
}

/// Sizes and timeouts, fixed when the extension starts.
#[derive(Clone, Debug)]
pub struct ExtConfig {
    pub router: RouterConfig,
    /// Packets held for the agent, in total and per flow.
    pub hold_total: u32,
    pub hold_per_flow: u32,
    /// Seconds a held packet waits for the agent.
    pub hold_timeout: u32,
    /// The pkt0 ring: bytes and frames.
    pub pkt0_bytes: usize,
    pub pkt0_frames: usize,
    /// Frames per core run (the shim hands chains over in batches of at
    /// most this many).
    pub max_batch: usize,
}

impl ExtConfig {
    /// The agent vif's index and MAC (the Linux host's, upstream's layout).
    pub const AGENT_VIF: u16 = 2;
    pub const AGENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];

    /// Windows defaults: upstream's table sizes where they are cheap, a
    /// smaller flow table than upstream's 512K, with upstream's overflow
    /// rule (the section's pages are locked: (128K + 26K) entries x 256
    /// bytes = 38.5 MiB).
    pub fn windows() -> Self {
        ExtConfig {
            router: RouterConfig {
                max_vifs: dp_core::sizing::DEFAULT_INTERFACES,
                max_nexthops: 65536,
                // Two labels per vif (the agent checks it at connect).
                max_labels: dp_core::sizing::labels(dp_core::sizing::DEFAULT_INTERFACES),
                max_vrfs: dp_core::sizing::DEFAULT_VRFS,
                max_vxlans: 16384,
                bridge_entries: 65536,
                flow_entries: 128 * 1024,
                oflow_entries: dp_core::sizing::oflow_for(128 * 1024),
                frag_entries: 1024,
                ..RouterConfig::default()
            },
            hold_total: 16 * 1024,
            hold_per_flow: 3,
            hold_timeout: 10,
            pkt0_bytes: 4 << 20,
            pkt0_frames: 16 * 1024,
            max_batch: 256,
        }
    }

    /// Small tables for tests.
    pub fn small() -> Self {
        ExtConfig {
            router: RouterConfig::small(),
            hold_total: 256,
            hold_per_flow: 3,
            hold_timeout: 10,
            pkt0_bytes: 256 * 1024,
            pkt0_frames: 1024,
            max_batch: 64,
        }
    }
}

/// One frame handed to the core: `buf[head..head + len]`, with the bytes
/// before `head` free for encapsulation.
#[derive(Debug)]
pub struct Frame<'a> {
    pub buf: &'a mut [u8],
    pub head: usize,
    pub len: usize,
}

/// One NET_BUFFER_LIST of a batch: its source and how many of the batch's
/// frames (consecutive, in order) are its NBs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NblIn {
    pub src: PortNic,
    pub frames: u32,
    /// Re-injection of a held packet: the vif it was received on (the
    /// source NIC may be gone meanwhile).
    pub vif: Option<u16>,
    /// The list's out-of-band 802.1Q tag (TCI; 0: none). A VM port's
    /// tagged frames go to the core with the tag in the frame.
    pub tci: u16,
}

/// Why an agent's pkt0 frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectError {
    Paused,
    BadLength,
    NoAgentVif,
}

/// The extension's state (see the module docs). `T` is the shim's handle of
/// a held packet.
pub struct Extension<T: Copy> {
    router: Router,
    handler: Handler,
    ports: Ports,
    holds: Holds<T>,
    pkt0: Pkt0Queue,
    stats: Stats,
    actions: Actions,
    host_info: HostInfo,
    cfg: ExtConfig,
    running: bool,
    last_tick: u32,
    // Per-batch scratch, allocated once.
    fates: Vec<Fate>,
    plans: Vec<Plan>,
    frame_nbl: Vec<u32>,
    pkts: Vec<Packet<'static>>,
    inject: Vec<u8>,
    released: Vec<Held<T>>,
    dropped: Vec<Held<T>>,
}

impl<T: Copy> core::fmt::Debug for Extension<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Extension")
            .field("running", &self.running)
            .field("held", &self.holds.len())
            .field("pkt0", &self.pkt0.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// `v`, emptied, as a vector of another lifetime: the allocation is reused
/// (in-place collect of a same-layout type), so the packet path allocates
/// nothing per batch.
#[allow(clippy::unnecessary_filter_map)] // the point is the type change
fn recycle<'b>(mut v: Vec<Packet<'_>>) -> Vec<Packet<'b>> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

impl<T: Copy> Extension<T> {
    /// An extension over `flows` (the shared section's table).
    pub fn new(cfg: ExtConfig, flows: FlowTable, host_info: HostInfo) -> Self {
        let router = Router::with_flow_table(cfg.router.clone(), flows);
        let batch = cfg.max_batch.max(1);
        Extension {
            ports: Ports::new(cfg.router.max_vifs),
            holds: Holds::new(cfg.hold_total, cfg.hold_per_flow),
            pkt0: Pkt0Queue::new(cfg.pkt0_bytes, cfg.pkt0_frames),
            stats: Stats::default(),
            // Room for every disposition plus copies (floods).
            actions: Actions::with_capacity(batch * 4),
            // Upstream's Windows driver's framing on its ksync device
            // (padded, NLM_F_MULTI on every part, NLMSG_DONE), on any
            // host: the harness sees what the agent will.
            handler: Handler::new().with_framing(Framing::Windows),
            host_info,
            running: false,
            last_tick: 0,
            fates: Vec::with_capacity(batch),
            plans: Vec::with_capacity(batch),
            frame_nbl: Vec::with_capacity(batch),
            pkts: Vec::with_capacity(batch),
            inject: alloc::vec![0; dp_core::HEADROOM + PKT0_MAX_FRAME],
            released: Vec::with_capacity(64),
            dropped: Vec::with_capacity(64),
            router,
            cfg,
        }
    }

    /// Add the agent vif (pkt0) at start, as the Linux host does: pkt0
    /// works before the agent configures anything (upstream's index 2).
    pub fn add_agent_vif(&mut self, idx: u16, mac: [u8; 6]) -> Result<(), dp_core::ConfigError> {
        let mut c = VifConfig::new(idx, VifType::Agent);
        c.mac = mac;
        c.name = dp_core::vif::heapless_name::Name::new("pkt0").unwrap_or_default();
        self.router.vif_add(c)?;
        self.ports.vif_add(VifWant {
            idx,
            vif_type: VifType::Agent,
            name: "pkt0".into(),
            guid: None,
        });
        Ok(())
    }

    pub fn config(&self) -> &ExtConfig {
        &self.cfg
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    pub fn held(&self) -> usize {
        self.holds.len()
    }

    pub fn pkt0_pending(&self) -> usize {
        self.pkt0.len()
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// The largest batch [`Self::ingress`] takes.
    pub fn max_batch(&self) -> usize {
        self.cfg.max_batch.max(1)
    }

    // ---- lifecycle ---------------------------------------------------

    /// FilterRestart: packets flow.
    pub fn restart(&mut self) {
        self.running = true;
    }

    /// FilterPause: no packet may stay with the extension. Every held
    /// packet goes to the dropped list (the shim completes them).
    pub fn pause(&mut self) {
        self.running = false;
        let n = self.holds.len();
        self.holds.drain(&mut self.dropped);
        self.stats.hold_dropped += n as u64;
    }

    /// The router clock (seconds); once a second, held packets older than
    /// the timeout go to the dropped list.
    pub fn tick(&mut self, now: u32) {
        if now == self.last_tick {
            return;
        }
        self.last_tick = now;
        self.router.set_time(now);
        let timeout = self.cfg.hold_timeout;
        let before = self.dropped.len();
        self.holds.take_where(
            |_, h| now.saturating_sub(h.since) >= timeout,
            &mut self.dropped,
        );
        self.stats.hold_expired += (self.dropped.len() - before) as u64;
    }

    // ---- NICs (OIDs) -----------------------------------------------------

    pub fn nic_create(&mut self, info: NicInfo, connected: bool) {
        self.ports.nic_create(info, connected);
    }

    pub fn nic_update(&mut self, info: NicInfo) {
        self.ports.nic_update(info);
    }

    pub fn nic_connecting(&mut self, info: NicInfo) {
        self.ports.nic_connecting(info);
    }

    pub fn nic_connected(&mut self, id: PortNic, ok: bool) {
        self.ports.nic_connected(id, ok);
    }

    /// The NIC goes away: nothing may be sent to it from now on, and the
    /// packets it sent that wait for the agent go back to the switch (the
    /// switch waits for them before it deletes the NIC).
    pub fn nic_disconnect(&mut self, id: PortNic) {
        self.ports.nic_disconnect(id);
        let before = self.dropped.len();
        self.holds.take_where(|_, h| h.src == id, &mut self.dropped);
        self.stats.hold_dropped += (self.dropped.len() - before) as u64;
    }

    pub fn nic_delete(&mut self, id: PortNic) {
        self.nic_disconnect(id);
        self.ports.nic_delete(id);
    }

    pub fn port_delete(&mut self, port: u32) {
        let ids: Vec<PortNic> = self
            .ports
            .nics()
            .map(|(n, _, _)| n.id)
            .filter(|id| id.port == port)
            .collect();
        for id in ids {
            self.nic_delete(id);
        }
    }

    /// FilterDetach: the switch is gone.
    pub fn detach(&mut self) {
        self.pause();
        self.ports.clear_nics();
    }

    // ---- held packets ---------------------------------------------------

    /// Keep packet `token` (from vif `vif`, NIC `src`) until the agent
    /// decides `flow`. False when a bound is hit: the shim completes it.
    pub fn hold(&mut self, flow: u32, token: T, vif: u16, src: PortNic) -> bool {
        let h = Held {
            token,
            vif,
            src,
            since: self.router.now(),
        };
        match self.holds.hold(flow, h) {
            Ok(()) => {
                self.stats.held += 1;
                true
            }
            Err(_) => {
                self.stats.hold_failed += 1;
                false
            }
        }
    }

    /// Held packets the agent released: the shim re-injects them through
    /// [`Self::ingress`] with `NblIn::vif` set.
    pub fn take_released(&mut self, out: &mut Vec<Held<T>>) {
        out.append(&mut self.released);
    }

    /// Held packets to give back to the switch unsent (flow deleted, NIC
    /// gone, timeout, pause).
    pub fn take_dropped(&mut self, out: &mut Vec<Held<T>>) {
        out.append(&mut self.dropped);
    }

    // ---- ksync ---------------------------------------------------------

    /// One write on a ksync handle: handle every request, append the
    /// answers to the session. Held packets the requests release or drop
    /// wait in [`Self::take_released`] / [`Self::take_dropped`].
    pub fn ksync(&mut self, session: &mut Session, input: &[u8]) -> Result<(), WriteError> {
        session.admit(input)?;
        let mut host = ExtHost {
            ports: &mut self.ports,
            holds: &mut self.holds,
            released: &mut self.released,
            dropped: &mut self.dropped,
            info: &self.host_info,
            stats: &mut self.stats,
        };
        let done = self
            .handler
            .handle(&mut self.router, &mut host, input, session.out());
        self.stats.ksync_messages += u64::from(done.messages);
        Ok(())
    }

    // ---- pkt0 ------------------------------------------------------------

    /// The next trapped frame for the agent.
    pub fn pkt0_read(&mut self, out: &mut [u8]) -> Result<usize, QueueError> {
        self.pkt0.pop(out)
    }

    /// Queue a frame for the agent (the device-only test build's injection
    /// uses it; the packet path traps through the core's actions).
    pub fn pkt0_push(&mut self, parts: &[&[u8]]) {
        trap(&mut self.pkt0, &mut self.stats, parts);
    }

    /// The agent closed pkt0: what it did not read is dropped.
    pub fn pkt0_reset(&mut self) {
        self.stats.pkt0_dropped += self.pkt0.len() as u64;
        self.pkt0.clear();
    }

    /// A frame the agent wrote on pkt0 (Ethernet + `agent_hdr` + packet):
    /// run it through the core from the agent vif and send what it says.
    pub fn pkt0_write<S: Switch>(&mut self, sw: &mut S, frame: &[u8]) -> Result<(), InjectError> {
        if !self.running {
            self.stats.paused_drops += 1;
            return Err(InjectError::Paused);
        }
        if frame.is_empty() || frame.len() > PKT0_MAX_FRAME {
            return Err(InjectError::BadLength);
        }
        let Some(agent) = self
            .router
            .vifs()
            .find_type(VifType::Agent)
            .map(|v| v.cfg.idx)
        else {
            return Err(InjectError::NoAgentVif);
        };
        let head = dp_core::HEADROOM;
        let Some(slot) = self.inject.get_mut(head..head + frame.len()) else {
            return Err(InjectError::BadLength);
        };
        slot.copy_from_slice(frame);
        self.stats.pkt0_injected += 1;
        let Extension {
            router,
            actions,
            inject,
            ports,
            pkt0,
            stats,
            ..
        } = self;
        let Some(p) = Packet::new(inject.as_mut_slice(), head, frame.len()) else {
            return Err(InjectError::BadLength);
        };
        let mut pkts = [p];
        actions.clear();
        router.process(agent, &mut pkts, actions);
        for a in actions.as_slice() {
            let [p] = &pkts;
            match *a {
                Action::Tx { vif, .. } => {
                    let data = p.data();
                    send_copy(sw, ports, pkt0, stats, router, None, &[data], vif);
                }
                Action::TxCopy {
                    vif,
                    prepend,
                    from,
                    to,
                    ..
                } => {
                    let body = p.data().get(from as usize..to as usize).unwrap_or_default();
                    send_copy(
                        sw,
                        ports,
                        pkt0,
                        stats,
                        router,
                        None,
                        &[actions.prepend(prepend), body],
                        vif,
                    );
                }
                Action::Hold { .. }
                | Action::Drop { .. }
                | Action::PassThrough { .. }
                | Action::Consumed { .. } => {}
            }
        }
        Ok(())
    }

    // ---- the packet path -------------------------------------------------

    /// Decide a batch: `nbls` in order, their NBs' frames in `frames` (in
    /// the same order). Afterwards [`Self::fates`] has one [`Fate`] per frame
    /// and [`Self::plans`] one [`Plan`] per list; the core may have
    /// rewritten the frames in place (headers pushed into the backfill or
    /// pulled) and copies have been sent through `sw`. At most
    /// [`Self::max_batch`] frames.
    pub fn ingress<S: Switch>(&mut self, sw: &mut S, nbls: &[NblIn], frames: &mut [Frame<'_>]) {
        self.fates.clear();
        self.plans.clear();
        self.frame_nbl.clear();
        for (i, n) in nbls.iter().enumerate() {
            for _ in 0..n.frames {
                self.frame_nbl.push(i as u32);
            }
        }
        self.fates.resize(frames.len(), Fate::Done);
        self.frame_nbl.resize(frames.len(), 0);
        self.stats.nbls_in += nbls.len() as u64;
        self.stats.frames_in += frames.len() as u64;

        let mut at = 0usize; // first frame of nbls[i]
        let mut i = 0usize;
        while i < nbls.len() {
            let Some(n) = nbls.get(i) else { break };
            let source = match n.vif {
                Some(v) => Source::Vif(v),
                None => self.ports.source(n.src),
            };
            // The run of lists from the same vif goes to the core together.
            let mut j = i + 1;
            let mut end = at + n.frames as usize;
            if let Source::Vif(v) = source {
                while let Some(m) = nbls.get(j) {
                    let s = match m.vif {
                        Some(w) => Source::Vif(w),
                        None => self.ports.source(m.src),
                    };
                    if s != Source::Vif(v) {
                        break;
                    }
                    end += m.frames as usize;
                    j += 1;
                }
            }
            let end = end.min(frames.len());
            if let Source::Vif(v) = source {
                self.tags_in(v, at, nbls.get(i..j).unwrap_or_default(), frames);
            }
            let run = frames.get_mut(at..end).unwrap_or_default();
            match source {
                Source::Vif(v) => self.run_core(sw, v, at, nbls, run),
                Source::Unbound(_) | Source::Unknown => {
                    // Not a vif: the host and the external NIC are bridged
                    // (see `Ports::bridge_peer`); anything else is dropped.
                    let peer = self.ports.bridge_peer(n.src);
                    for (k, f) in run.iter().enumerate() {
                        let fate = match peer {
                            Some(dst) => {
                                self.stats.bridged += 1;
                                Fate::Forward {
                                    dst,
                                    head: f.head as u32,
                                    len: f.len as u32,
                                    tci: None,
                                }
                            }
                            None => {
                                self.stats.unknown_source += 1;
                                Fate::Done
                            }
                        };
                        if let Some(slot) = self.fates.get_mut(at + k) {
                            *slot = fate;
                        }
                    }
                }
            }
            at = end;
            i = j;
        }

        let mut at = 0usize;
        for n in nbls {
            let end = (at + n.frames as usize).min(self.fates.len());
            let p = plan(self.fates.get(at..end).unwrap_or_default());
            match p {
                Plan::Forward(_) => self.stats.forwarded += 1,
                Plan::Split => self.stats.split += 1,
                Plan::Complete | Plan::Hold { .. } => {}
            }
            self.plans.push(p);
            at = end;
        }
    }

    /// One [`Fate`] per frame of the last batch.
    pub fn fates(&self) -> &[Fate] {
        &self.fates
    }

    /// One [`Plan`] per list of the last batch.
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// Count a copy the shim made before the core saw a frame.
    pub fn count_copy(&mut self, reason: CopyReason) {
        match reason {
            CopyReason::Fragmented => self.stats.copied_fragmented += 1,
            CopyReason::NoBackfill => self.stats.copied_no_backfill += 1,
            CopyReason::Shared => self.stats.copied_shared += 1,
            CopyReason::Untrusted => self.stats.copied_untrusted += 1,
        }
    }

    /// Move the out-of-band tags of `nbls` (a run of lists from `vif`
    /// whose frames start at `first`) into their frames when they belong
    /// to one of `vif`'s VLAN sub-interfaces: the core demultiplexes them
    /// by the tag in the frame. (A held frame is given back as received,
    /// its tag still out of band: see `run_core`.)
    fn tags_in(&mut self, vif: u16, first: usize, nbls: &[NblIn], frames: &mut [Frame<'_>]) {
        let mut at = first;
        for n in nbls {
            let end = at + n.frames as usize;
            if moves_tag(&self.router, vif, n.tci) {
                for f in frames.get_mut(at..end).unwrap_or_default() {
                    match crate::vlan::push_tag(f.buf, f.head, f.len, n.tci) {
                        Some(head) => {
                            f.head = head;
                            f.len += crate::vlan::TAG_LEN;
                            self.stats.vlan_tag_in += 1;
                        }
                        None => {
                            // An empty packet: the core drops and counts it.
                            f.len = 0;
                            self.stats.vlan_no_room += 1;
                        }
                    }
                }
            }
            at = end;
        }
    }

    /// Frames `first..` of the batch (`run`), all received on `vif`.
    fn run_core<S: Switch>(
        &mut self,
        sw: &mut S,
        vif: u16,
        first: usize,
        nbls: &[NblIn],
        run: &mut [Frame<'_>],
    ) {
        let mut pkts = recycle(core::mem::take(&mut self.pkts));
        let want = run.len();
        for f in run.iter_mut() {
            // A frame outside its buffer (a shim bug) reaches the core as
            // an empty packet, which it drops and counts.
            let fits = f.head.checked_add(f.len).is_some_and(|e| e <= f.buf.len());
            let (h, l) = if fits { (f.head, f.len) } else { (0, 0) };
            pkts.extend(Packet::new(&mut *f.buf, h, l));
        }
        if pkts.len() != want {
            self.pkts = recycle(pkts);
            return;
        }
        let Extension {
            router,
            actions,
            ports,
            pkt0,
            stats,
            fates,
            frame_nbl,
            ..
        } = self;
        let mut base = 0usize;
        while base < pkts.len() {
            actions.clear();
            let Some(rest) = pkts.get_mut(base..) else {
                break;
            };
            let k = router.process(vif, rest, actions);
            if k == 0 {
                break;
            }
            for a in actions.as_slice() {
                let (pkt, fate) = match *a {
                    Action::Tx { pkt, vif: out } => {
                        let i = base + pkt as usize;
                        let Some(p) = pkts.get_mut(i) else { continue };
                        let fate = match ports.dest(out) {
                            Dest::Nic(dst) => {
                                // NDIS carries the tag beside the frame. A
                                // tag the core consumed is cleared; one the
                                // switch set and the core never saw stays.
                                let (tci, skip) = match crate::vlan::pop_tag(p.data_mut()) {
                                    Some(t) => {
                                        stats.vlan_tag_out += 1;
                                        (Some(t), crate::vlan::TAG_LEN)
                                    }
                                    None => {
                                        let n = frame_nbl
                                            .get(first + i)
                                            .and_then(|n| nbls.get(*n as usize));
                                        let consumed =
                                            n.is_some_and(|n| moves_tag(router, vif, n.tci));
                                        (consumed.then_some(0), 0)
                                    }
                                };
                                Fate::Forward {
                                    dst,
                                    head: (p.head() + skip) as u32,
                                    len: (p.len() - skip) as u32,
                                    tci,
                                }
                            }
                            Dest::Agent => {
                                trap(pkt0, stats, &[p.data()]);
                                Fate::Done
                            }
                            Dest::None => {
                                stats.no_destination += 1;
                                router.vif_tx_error(out);
                                Fate::Done
                            }
                        };
                        (pkt, fate)
                    }
                    Action::TxCopy {
                        pkt,
                        vif: out,
                        prepend,
                        from,
                        to,
                    } => {
                        let i = base + pkt as usize;
                        let Some(p) = pkts.get(i) else { continue };
                        let body = p.data().get(from as usize..to as usize).unwrap_or_default();
                        let like = frame_nbl.get(first + i).copied();
                        send_copy(
                            sw,
                            ports,
                            pkt0,
                            stats,
                            router,
                            like,
                            &[actions.prepend(prepend), body],
                            out,
                        );
                        continue;
                    }
                    Action::Hold { pkt, flow } => {
                        let i = base + pkt as usize;
                        let Some(p) = pkts.get_mut(i) else { continue };
                        // The core holds a frame as received; one whose tag
                        // came out of band is kept that way (the tag goes
                        // back into the frame when it is re-injected).
                        let oob = frame_nbl
                            .get(first + i)
                            .and_then(|n| nbls.get(*n as usize))
                            .is_some_and(|n| moves_tag(router, vif, n.tci));
                        let skip = match oob.then(|| crate::vlan::pop_tag(p.data_mut())) {
                            Some(Some(_)) => crate::vlan::TAG_LEN,
                            _ => 0,
                        };
                        let fate = Fate::Hold {
                            flow,
                            vif,
                            head: (p.head() + skip) as u32,
                            len: (p.len() - skip) as u32,
                        };
                        (pkt, fate)
                    }
                    Action::Drop { pkt, .. } | Action::Consumed { pkt } => (pkt, Fate::Done),
                    Action::PassThrough { pkt } => {
                        let i = base + pkt as usize;
                        let Some(p) = pkts.get(i) else { continue };
                        let src = frame_nbl
                            .get(first + i)
                            .and_then(|n| nbls.get(*n as usize))
                            .map(|n| n.src);
                        let fate = match src.and_then(|s| ports.bridge_peer(s)) {
                            Some(dst) => {
                                stats.bridged += 1;
                                Fate::Forward {
                                    dst,
                                    head: p.head() as u32,
                                    len: p.len() as u32,
                                    tci: None,
                                }
                            }
                            None => Fate::Done,
                        };
                        (pkt, fate)
                    }
                };
                if let Some(slot) = fates.get_mut(first + base + pkt as usize) {
                    *slot = fate;
                }
            }
            base += k;
        }
        self.pkts = recycle(pkts);
    }

    /// Packets the agent released, as a batch to re-inject: the shim turns
    /// each into an [`NblIn`] with `vif` set and calls [`Self::ingress`].
    pub fn released_pending(&self) -> bool {
        !self.released.is_empty()
    }
}

/// Whether a list with out-of-band tag `tci` from `vif` goes to the core
/// with the tag in its frames: only for a VLAN one of the VM port's
/// sub-interfaces has. Any other tag is the switch's own (an access-mode
/// port's VLAN, the external NIC's): it stays out of band, and the frame is
/// the port's untagged traffic, as before sub-interfaces existed.
fn moves_tag(router: &Router, vif: u16, tci: u16) -> bool {
    let vid = crate::vlan::vid(tci);
    vid != 0
        && router
            .vif(vif)
            .is_some_and(|v| v.cfg.vif_type == VifType::Virtual)
        && router.vifs().sub_interface(vif, vid).is_some()
}

/// Trap a frame to the agent (copied into the pkt0 ring).
fn trap(pkt0: &mut Pkt0Queue, stats: &mut Stats, parts: &[&[u8]]) {
    match pkt0.push(parts) {
        Ok(()) => stats.pkt0_trapped += 1,
        Err(_) => stats.pkt0_dropped += 1,
    }
}

/// A copy to vif `vif`: into the switch, or onto pkt0 for the agent vif.
#[allow(clippy::too_many_arguments)]
fn send_copy<S: Switch>(
    sw: &mut S,
    ports: &Ports,
    pkt0: &mut Pkt0Queue,
    stats: &mut Stats,
    router: &mut Router,
    like: Option<u32>,
    parts: &[&[u8]],
    vif: u16,
) {
    match ports.dest(vif) {
        Dest::Nic(dst) => {
            if sw.originate(like, parts, dst) {
                stats.originated += 1;
            } else {
                stats.originate_failed += 1;
                router.vif_tx_error(vif);
            }
        }
        Dest::Agent => trap(pkt0, stats, parts),
        Dest::None => {
            stats.no_destination += 1;
            router.vif_tx_error(vif);
        }
    }
}

/// ksync's view of the extension's host side.
struct ExtHost<'a, T> {
    ports: &'a mut Ports,
    holds: &'a mut Holds<T>,
    released: &'a mut Vec<Held<T>>,
    dropped: &'a mut Vec<Held<T>>,
    info: &'a HostInfo,
    stats: &'a mut Stats,
}

impl<T: Copy> HostOps for ExtHost<'_, T> {
    fn vif_add(&mut self, cfg: &VifConfig, req: &VrInterfaceReq) -> Result<(), i32> {
        let guid = <[u8; 16]>::try_from(req.vifr_if_guid.as_slice())
            .ok()
            .filter(|g| g.iter().any(|b| *b != 0));
        self.ports.vif_add(VifWant {
            idx: cfg.idx,
            vif_type: cfg.vif_type,
            name: req.vifr_name.clone(),
            guid,
        });
        Ok(())
    }

    fn vif_del(&mut self, idx: u16) {
        self.ports.vif_del(idx);
    }

    fn flow_released(&mut self, idx: u32) {
        let before = self.released.len();
        self.holds.take(idx, self.released);
        self.stats.released += (self.released.len() - before) as u64;
    }

    fn flow_deleted(&mut self, idx: u32) {
        let before = self.dropped.len();
        self.holds.take(idx, self.dropped);
        self.stats.hold_dropped += (self.dropped.len() - before) as u64;
    }

    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}
