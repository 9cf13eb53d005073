//! The datapath loop and its control handle.
//!
//! One thread owns the [`Router`], every [`Port`] and the [`HoldStore`]
//! (together: [`Core`]). It waits on all ports with a [`Poller`], reads up to
//! `batch` frames from each ready port, runs them through
//! [`Router::process`] and executes the actions. Control requests (the future
//! ksync server, tests, the bin) are closures sent over a channel with
//! [`Datapath::call`]; the loop runs them between batches, after a
//! [`Waker`] interrupted its wait. So the forwarding path takes no lock and
//! the router needs no `Sync`; a request costs one channel round trip
//! (measured ~20-60 µs here, dominated by the thread wake-up), which is
//! irrelevant next to the agent's own latency. A `Mutex<Router>` taken per
//! batch would save that round trip but not the hand-off of ports and held
//! frames, which must live in the loop thread anyway.
//!
//! # Sending
//!
//! A port may queue what it is given ([`Port::send`]) instead of writing it
//! at once; the loop remembers which ports it sent to and calls
//! [`Port::flush`] on each after every batch (received, injected or
//! re-injected), so a batch leaves in one system call per port and nothing
//! waits longer than the batch that produced it. The AF_PACKET port uses
//! this for `sendmmsg` and to merge tunnel datagrams into UDP GSO
//! super-packets (`linux::AfPacketPort`).
//!
//! # Offloads (see [`crate::vnet`])
//!
//! * A frame with a partial checksum and no GSO is finished at once (one
//!   pass over at most an MTU of bytes) and then forwarded like any frame.
//! * A GSO super-packet is *classified* by running a probe through the core:
//!   its first segment, with the super-packet's TCP flags. If the core's only
//!   verdict is a plain transmit to a port that accepts GSO (another veth or
//!   TAP) and the rewrite is one the super-packet can take (same header
//!   length, addresses and L4 header: MACs, TTL, DSCP), the rewritten headers
//!   are grafted on the super-packet, which leaves whole with its
//!   virtio-net header: the receiving kernel segments it, as it would for a
//!   routed veth path. Anything else (tunnel encapsulation, a trap to the
//!   agent, a hold, NAT, a flood) discards the probe's actions and runs the
//!   real segments through the core one by one. The core's counters then
//!   count a grafted super-packet as one packet of one segment's size, the
//!   way Linux counts a GSO skb as one packet.
//! * Plain frames the core sends to a GSO-capable port go through
//!   [`crate::gro`]: a run of segments of one TCP flow in a batch leaves as
//!   one super-packet (decapsulated overlay traffic to a container).

use crate::gro::{Gro, Offer};
use crate::hold::HoldStore;
use crate::offload::{FastPath, OffloadStats, Offloader};
use crate::port::{Offloads, Poller, Port, PortOpener, PortStats, RxSlot, Waker, MAX_BATCH};
use crate::vnet::{self, Gso, VnetHdr};
use dp_core::{
    Action, Actions, ConfigChange, ConfigError, DropStats, FlowSet, FlowSetOutcome, Nexthop,
    Packet, Prefix, RouteData, Router, Vif, VifConfig, VifType, HEADROOM,
};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tuning of the loop.
#[derive(Clone, Debug)]
pub struct DatapathConfig {
    /// Frames read from one port per turn (at most [`MAX_BATCH`]).
    pub batch: usize,
    /// Frames held per flow and in total (the core bounds per flow too).
    pub hold_per_flow: usize,
    pub hold_max_total: usize,
    /// Bytes held in total (a GSO super-packet is held whole).
    pub hold_max_bytes: usize,
    /// Held frames older than this are dropped (the agent never answered),
    /// and a flow entry on HOLD this long is removed (its trap was lost, or
    /// the agent is gone): the flow's next packet traps again.
    pub hold_timeout: Duration,
    /// Longest wait when idle (timers: router clock, hold expiry).
    pub idle_wait: Duration,
    /// GSO super-packets with more segments are dropped (a tiny `gso_size`
    /// would make one frame cost thousands of core runs).
    pub max_segments: usize,
    /// Fault injection for tests of what supervises the process.
    pub fault: Option<Fault>,
}

/// A fault the loop injects into itself once its trigger file exists
/// (`vrouter` reads it from `VROUTER_FAULT_INJECT=<fault>:<file>`; tests
/// use it to show that a dead loop takes the process down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub trigger: std::path::PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The loop thread panics.
    Panic,
    /// The poller's wait fails.
    PollError,
}

impl Fault {
    /// `panic:<file>` or `poll-error:<file>`.
    pub fn parse(s: &str) -> Option<Fault> {
        let (kind, file) = s.split_once(':')?;
        let kind = match kind {
            "panic" => FaultKind::Panic,
            "poll-error" => FaultKind::PollError,
            _ => return None,
        };
        (!file.is_empty()).then(|| Fault {
            kind,
            trigger: file.into(),
        })
    }
}

/// Why the loop thread ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoopExit {
    /// [`Datapath::stop`] (or the handle was dropped).
    Stopped,
    /// Waiting on the ports failed.
    PollFailed(String),
    /// The thread panicked.
    Panicked,
}

impl std::fmt::Display for LoopExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoopExit::Stopped => f.write_str("stopped"),
            LoopExit::PollFailed(e) => write!(f, "waiting on the ports failed: {e}"),
            LoopExit::Panicked => f.write_str("the loop thread panicked"),
        }
    }
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            batch: MAX_BATCH,
            hold_per_flow: 8,
            hold_max_total: 16 * 1024,
            hold_max_bytes: 64 << 20,
            hold_timeout: Duration::from_secs(10),
            idle_wait: Duration::from_millis(100),
            max_segments: 256,
            fault: None,
        }
    }
}

/// Datapath counters (the core keeps per-vif and drop counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DpStats {
    pub rx_frames: u64,
    pub rx_truncated: u64,
    pub rx_errors: u64,
    pub tx_frames: u64,
    pub tx_errors: u64,
    /// Transmits to a vif that has no port.
    pub tx_no_port: u64,
    /// Partial checksums finished in software.
    pub csum_completed: u64,
    /// Frames with offload metadata we could not honour (dropped).
    pub offload_errors: u64,
    pub gso_frames: u64,
    /// Of those, tunnel super-packets from the fabric (an overlay frame
    /// whose inner TCP packet is GSO: the sender's kernel kept tunnel GSO).
    pub gso_tunnel: u64,
    /// GSO super-packets forwarded whole.
    pub gso_whole: u64,
    /// GSO super-packets segmented in software, and their segments.
    pub gso_segmented: u64,
    pub gso_segments: u64,
    pub held: u64,
    /// GSO super-packets held whole (each one of its flow's held packets).
    pub gso_held: u64,
    pub hold_overflow: u64,
    /// New flows neither trapped nor held because the hold store was
    /// full (their entries removed; counted in `hold_overflow` too).
    pub shed: u64,
    pub hold_expired: u64,
    /// Flow entries removed after `hold_timeout` on HOLD.
    pub hold_flows_expired: u64,
    pub hold_dropped: u64,
    pub reinjected: u64,
    /// Segments merged by software GRO, and the super-packets sent.
    pub gro_absorbed: u64,
    pub gro_frames: u64,
    pub commands: u64,
}

/// A vif and its port, for dumps.
#[derive(Clone, Debug)]
pub struct VifInfo {
    pub vif: Vif,
    pub port: Option<(String, PortStats)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("vif {0} has no interface name")]
    NoName(u16),
    #[error("no port opener configured: pass the port explicitly")]
    NoOpener,
    #[error("the datapath thread has stopped")]
    Stopped,
}

impl DpError {
    /// Negative errno for a `vr_response`.
    pub fn errno(&self) -> i32 {
        match self {
            DpError::Config(c) => c.errno(),
            DpError::Io(e) => -e.raw_os_error().unwrap_or(5),
            DpError::NoName(_) => -22,
            DpError::NoOpener => -95,
            DpError::Stopped => -108,
        }
    }
}

struct PortEntry {
    port: Box<dyn Port>,
    /// What the device takes, as the port last said (read again after
    /// every flush: a port that fell back to plain segments says so).
    offloads: Offloads,
    /// Frames may be queued in the port: flush after the batch.
    dirty: bool,
    /// Transmits that failed, for rate-limited warnings.
    tx_failures: u64,
}

/// How a frame of a batch entered the core.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    /// A probe for the super-packet `supers[.1]`.
    Probe(Gso, usize),
}

/// Everything the loop thread owns. Control closures get `&mut Core`.
pub struct Core {
    router: Router,
    ports: Vec<Option<PortEntry>>,
    poller: Box<dyn Poller>,
    holds: HoldStore,
    stats: DpStats,
    cfg: DatapathConfig,
    slots: Vec<RxSlot>,
    probes: Vec<Vec<u8>>,
    segs: Vec<u8>,
    gro: Gro,
    actions: Actions,
    /// Ports sent to since the last flush.
    dirty: Vec<u16>,
    epoch: Instant,
    last_expiry: Instant,
    /// Next port whose offloads [`Core::tick`] reads again.
    refresh_cursor: usize,
    /// The kernel fast path, if on ([`Core::enable_fast_path`]).
    offload: Option<Offloader>,
    /// The running command only reads: offloaded flows stay.
    read_only_cmd: bool,
}

/// The parts of [`Core`] that executing actions touches.
struct Exec<'a> {
    router: &'a mut Router,
    ports: &'a mut [Option<PortEntry>],
    holds: &'a mut HoldStore,
    stats: &'a mut DpStats,
    gro: &'a mut Gro,
    dirty: &'a mut Vec<u16>,
    now: Instant,
}

/// What [`raw_send`] touches besides the frame.
struct TxCtx<'a> {
    ports: &'a mut [Option<PortEntry>],
    router: &'a mut Router,
    stats: &'a mut DpStats,
    dirty: &'a mut Vec<u16>,
}

fn raw_send(cx: TxCtx<'_>, vif: u16, vnet: &VnetHdr, head: &[u8], body: &[u8]) {
    let TxCtx {
        ports,
        router,
        stats,
        dirty,
    } = cx;
    match ports.get_mut(vif as usize) {
        Some(Some(pe)) => match pe.port.send(vnet, head, body) {
            Ok(()) => {
                stats.tx_frames += 1;
                if !pe.dirty {
                    pe.dirty = true;
                    dirty.push(vif);
                }
            }
            Err(e) => {
                pe.tx_failures += 1;
                if pe.tx_failures.is_power_of_two() {
                    tracing::warn!(vif, port = pe.port.name(), error = %e, failures = pe.tx_failures, "transmit failed");
                }
                stats.tx_errors += 1;
                // Sent to the port as is: a port that refuses it may have
                // lost offloads; it reads them again before the next one.
                if !pe.dirty {
                    pe.dirty = true;
                    dirty.push(vif);
                }
                router.vif_tx_error(vif);
            }
        },
        _ => {
            stats.tx_no_port += 1;
            router.vif_tx_error(vif);
        }
    }
}

impl Exec<'_> {
    fn tx_ctx(&mut self) -> TxCtx<'_> {
        TxCtx {
            ports: self.ports,
            router: self.router,
            stats: self.stats,
            dirty: self.dirty,
        }
    }

    /// Send the pending GRO aggregate, if any.
    fn flush(&mut self) {
        let Some((vif, vh, f)) = self.gro.finish() else {
            return;
        };
        if vh.is_gso() {
            self.stats.gro_frames += 1;
        }
        raw_send(
            TxCtx {
                ports: self.ports,
                router: self.router,
                stats: self.stats,
                dirty: self.dirty,
            },
            vif,
            &vh,
            &[],
            f,
        );
    }

    fn send(&mut self, vif: u16, vnet: &VnetHdr, head: &[u8], body: &[u8]) {
        self.flush();
        raw_send(self.tx_ctx(), vif, vnet, head, body);
    }

    /// Send a complete, plain frame: through GRO when the port takes GSO.
    fn send_frame(&mut self, vif: u16, frame: &[u8]) {
        // Merged segments leave as one TCPv4 super-packet.
        let gso_port = matches!(self.ports.get(vif as usize), Some(Some(pe)) if pe.offloads.tso4);
        if !gso_port {
            return self.send(vif, &VnetHdr::NONE, &[], frame);
        }
        // At most: flush, then absorb or send.
        for _ in 0..2 {
            match self.gro.offer(vif, frame) {
                Offer::Absorbed => {
                    self.stats.gro_absorbed += 1;
                    return;
                }
                Offer::FlushFirst => self.flush(),
                Offer::Send => break,
            }
        }
        raw_send(self.tx_ctx(), vif, &VnetHdr::NONE, &[], frame);
    }

    /// Execute one action for a packet that entered the core as itself.
    fn plain(&mut self, in_vif: u16, pkts: &[Packet<'_>], base: usize, a: &Action, acts: &Actions) {
        match *a {
            Action::Tx { pkt, vif } => {
                if let Some(p) = pkts.get(base + pkt as usize) {
                    self.send_frame(vif, p.data());
                }
            }
            Action::TxCopy {
                pkt,
                vif,
                prepend,
                from,
                to,
            } => {
                let body = pkts
                    .get(base + pkt as usize)
                    .and_then(|p| p.data().get(from as usize..to as usize));
                if let Some(body) = body {
                    self.send(vif, &VnetHdr::NONE, acts.prepend(prepend), body);
                }
            }
            Action::Hold { pkt, flow } => {
                if let Some(p) = pkts.get(base + pkt as usize) {
                    if self
                        .holds
                        .hold(flow, in_vif, p.data(), VnetHdr::NONE, self.now)
                    {
                        self.stats.held += 1;
                    } else {
                        self.stats.hold_overflow += 1;
                    }
                }
            }
            Action::Drop { .. } | Action::PassThrough { .. } | Action::Consumed { .. } => {}
        }
    }

    /// Run plain (non-GSO) packets through the core and execute.
    fn run(&mut self, in_vif: u16, pkts: &mut [Packet<'_>], acts: &mut Actions) {
        let mut base = 0;
        while base < pkts.len() {
            acts.clear();
            let Some(rest) = pkts.get_mut(base..) else {
                break;
            };
            let k = self.router.process(in_vif, rest, acts);
            if k == 0 {
                break;
            }
            let list = acts.as_slice();
            let mut a = 0;
            while a < list.len() {
                // A packet's actions: its copies, then its disposition.
                let mut e = a;
                while matches!(list.get(e), Some(Action::TxCopy { .. })) {
                    e += 1;
                }
                let group = list.get(a..=e.min(list.len() - 1)).unwrap_or(&[]);
                a = e + 1;
                if let [_, .., Action::Hold { pkt, flow }] = group {
                    let len = pkts.get(base + *pkt as usize).map_or(0, |p| p.data().len());
                    if !self.holds.has_room(len) {
                        self.shed(*flow);
                        continue;
                    }
                }
                for act in group {
                    self.plain(in_vif, pkts, base, act, acts);
                }
            }
            base += k;
        }
        self.flush();
    }

    /// The first packet of a new flow (trap and hold) while the hold store
    /// is full: neither trap nor hold it, and remove the HOLD entry the
    /// core made, so the agent spends its time on flows whose packets wait
    /// and the sender's retransmission starts the flow again. Trapping it
    /// anyway made the agent decide flows whose first packet was gone:
    /// with 50 000 new flows/s offered (`scripts/perf/run.sh`, path d), 12 000
    /// of the 15 000-20 000 flows/s the agent set up were delivered; shed,
    /// every flow set up is delivered.
    fn shed(&mut self, flow: u32) {
        self.stats.hold_overflow += 1;
        self.stats.shed += 1;
        let _ = self.router.flow_del(flow, None);
    }
}

fn disposition_pkt(a: &Action) -> u16 {
    match *a {
        Action::Tx { pkt, .. }
        | Action::TxCopy { pkt, .. }
        | Action::Hold { pkt, .. }
        | Action::Drop { pkt, .. }
        | Action::PassThrough { pkt }
        | Action::Consumed { pkt } => pkt,
    }
}

impl Core {
    fn new(router: Router, poller: Box<dyn Poller>, cfg: DatapathConfig) -> Core {
        let nvifs = router.config().max_vifs as usize;
        let batch = cfg.batch.clamp(1, MAX_BATCH);
        let mut ports = Vec::with_capacity(nvifs);
        ports.resize_with(nvifs, || None);
        let now = Instant::now();
        Core {
            router,
            ports,
            poller,
            holds: HoldStore::new(cfg.hold_per_flow, cfg.hold_max_total, cfg.hold_max_bytes),
            stats: DpStats::default(),
            slots: (0..batch).map(|_| RxSlot::default()).collect(),
            probes: (0..batch).map(|_| Vec::new()).collect(),
            segs: Vec::new(),
            gro: Gro::default(),
            // Room for a batch plus copies (floods, fragments, trap copies).
            actions: Actions::with_capacity(MAX_BATCH * 8),
            dirty: Vec::new(),
            cfg: DatapathConfig { batch, ..cfg },
            epoch: now,
            last_expiry: now,
            refresh_cursor: 0,
            offload: None,
            read_only_cmd: false,
        }
    }

    /// Turn the kernel fast path on: the VM ports open now and later get
    /// it, and the core reports offloadable flows from now on.
    pub fn enable_fast_path(&mut self, fp: Box<dyn FastPath>) {
        let mut off = Offloader::new(fp);
        for (i, slot) in self.ports.iter().enumerate() {
            if let Some(pe) = slot {
                match self.router.vif(i as u16).map(|v| v.cfg.vif_type) {
                    Some(VifType::Virtual) => off.port_opened(i as u16, pe.port.as_ref()),
                    Some(VifType::Physical) => off.fabric_opened(i as u16, pe.port.as_ref()),
                    _ => {}
                }
            }
        }
        self.router.set_offload_hints(true);
        self.offload = Some(off);
    }

    /// The running command only reads: it leaves offloaded flows in place
    /// (every other command removes them).
    pub fn mark_read_only(&mut self) {
        self.read_only_cmd = true;
    }

    /// The running command changed only the flows `flows` (ksync flow
    /// requests): their offloaded copies go now, every other offloaded
    /// flow stays (no full flush after the command).
    pub fn only_flows_changed(&mut self, flows: &[u32]) {
        self.only_changed(flows, &[]);
    }

    /// The running command changed only the flows `flows`, what
    /// `changes` name (routes, vifs, labels) and objects no decision used:
    /// the offloaded copies of those flows and of the flows the changes
    /// may redirect go now, every other offloaded flow stays.
    pub fn only_changed(&mut self, flows: &[u32], changes: &[ConfigChange]) {
        self.read_only_cmd = true;
        if let Some(off) = &mut self.offload {
            off.forget(&mut self.router, flows);
            off.forget_changed(&mut self.router, changes);
        }
    }

    /// Configuration changed: every offloaded flow goes now (their
    /// counters folded first), not after the command.
    pub fn flush_offloads(&mut self) {
        self.read_only_cmd = true;
        self.offload_flush();
    }

    /// The fast path's counters (`None`: off).
    pub fn offload_stats(&self) -> Option<OffloadStats> {
        self.offload.as_ref().map(Offloader::stats)
    }

    /// Configuration may have changed: no offloaded flow may outlive the
    /// decision it copied (their counters are folded first).
    fn offload_flush(&mut self) {
        if let Some(off) = &mut self.offload {
            off.flush(&mut self.router);
        }
    }

    /// Fold the fast path's counters into the flow table now (the loop
    /// does it once a second).
    pub fn offload_fold(&mut self) {
        if let Some(off) = &mut self.offload {
            off.fold(&mut self.router);
        }
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Direct access for requests without a wrapper here. Flow changes
    /// should go through [`Core::flow_set`]/[`Core::flow_del`], which also
    /// release or drop held frames.
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    pub fn stats(&self) -> DpStats {
        self.stats
    }

    /// Frames currently held.
    pub fn held(&self) -> usize {
        self.holds.len()
    }

    pub fn port_name(&self, idx: u16) -> Option<String> {
        match self.ports.get(idx as usize) {
            Some(Some(pe)) => Some(pe.port.name().to_string()),
            _ => None,
        }
    }

    pub fn port_stats(&self, idx: u16) -> Option<PortStats> {
        match self.ports.get(idx as usize) {
            Some(Some(pe)) => Some(pe.port.stats()),
            _ => None,
        }
    }

    /// [`Port::clear_kernel_drops`] of vif `idx`'s port (`None`: every
    /// port's).
    pub fn port_clear_kernel_drops(&mut self, idx: Option<u16>) {
        for (i, pe) in self.ports.iter_mut().enumerate() {
            if let Some(pe) = pe {
                if idx.is_none_or(|x| usize::from(x) == i) {
                    pe.port.clear_kernel_drops();
                }
            }
        }
    }

    /// Add or change a vif. With `port`, the vif's frames go through it from
    /// now on (a previous port is closed); without, the existing port (if
    /// any) stays.
    pub fn vif_add(&mut self, cfg: VifConfig, port: Option<Box<dyn Port>>) -> Result<(), DpError> {
        let idx = cfg.idx;
        if idx as usize >= self.ports.len() {
            return Err(ConfigError::OutOfRange("vif index").into());
        }
        self.router.vif_add(cfg)?;
        if let Some(port) = port {
            self.close_port(idx);
            self.poller.add(port.as_ref(), idx as u64)?;
            let offloads = port.offloads();
            tracing::info!(vif = idx, port = port.name(), ?offloads, mtu = ?port.mtu(), os_index = ?port.os_index(), "port attached");
            if let Some(slot) = self.ports.get_mut(idx as usize) {
                *slot = Some(PortEntry {
                    port,
                    offloads,
                    dirty: false,
                    tx_failures: 0,
                });
            }
            self.offload_port_opened(idx);
        }
        self.settle_vif(idx);
        Ok(())
    }

    /// Fill what the request left to the device: an MTU of 0 becomes the
    /// port's MTU (1500 without a port), an OS index of 0 the port's
    /// interface index (`vrctl vif --add` and our agent leave both to the
    /// datapath, which opens the interface).
    pub fn settle_vif(&mut self, idx: u16) {
        let Some(v) = self.router.vif(idx) else {
            return;
        };
        if v.cfg.vif_type == dp_core::VifType::VirtualVlan
            && matches!(self.ports.get(idx as usize), Some(Some(_)))
        {
            // A port vif re-added as a VLAN sub-interface: it sends
            // through its parent now; its old port closes.
            self.close_port(idx);
        }
        let Some(v) = self.router.vif(idx) else {
            return;
        };
        if v.cfg.mtu != 0 && v.cfg.os_idx != 0 {
            return;
        }
        let mut cfg = v.cfg.clone();
        let port = match self.ports.get(idx as usize) {
            Some(Some(pe)) => Some(&pe.port),
            _ => None,
        };
        if cfg.mtu == 0 {
            cfg.mtu = port.and_then(|p| p.mtu()).unwrap_or(1500);
        }
        if cfg.os_idx == 0 {
            cfg.os_idx = port.and_then(|p| p.os_index()).unwrap_or(0);
        }
        if cfg != v.cfg {
            // An update of an existing vif: counters stay.
            let _ = self.router.vif_add(cfg);
        }
    }

    /// Hand the port of vif `from` (deleted) to vif `to` (added with the
    /// same interface in the same request buffer).
    pub fn port_move(&mut self, from: u16, to: u16) -> Result<(), DpError> {
        if from == to {
            return Ok(());
        }
        let Some(Some(pe)) = self.ports.get_mut(from as usize).map(Option::take) else {
            return Ok(());
        };
        self.poller.remove(pe.port.as_ref())?;
        self.close_port(to);
        self.poller.add(pe.port.as_ref(), to as u64)?;
        tracing::info!(from, to, port = pe.port.name(), "port moved");
        if let Some(off) = &mut self.offload {
            off.port_closing(&mut self.router, from);
        }
        if let Some(slot) = self.ports.get_mut(to as usize) {
            *slot = Some(pe);
        }
        self.offload_port_opened(to);
        self.settle_vif(to);
        Ok(())
    }

    fn offload_port_opened(&mut self, idx: u16) {
        let Some(off) = &mut self.offload else {
            return;
        };
        let Some(Some(pe)) = self.ports.get(idx as usize) else {
            return;
        };
        match self.router.vif(idx).map(|v| v.cfg.vif_type) {
            Some(VifType::Virtual) => off.port_opened(idx, pe.port.as_ref()),
            Some(VifType::Physical) => off.fabric_opened(idx, pe.port.as_ref()),
            _ => {}
        }
    }

    fn close_port(&mut self, idx: u16) {
        if let Some(off) = &mut self.offload {
            off.port_closing(&mut self.router, idx);
        }
        if let Some(slot) = self.ports.get_mut(idx as usize) {
            if let Some(old) = slot.take() {
                if let Err(e) = self.poller.remove(old.port.as_ref()) {
                    tracing::warn!(vif = idx, error = %e, "poller remove");
                }
                tracing::info!(vif = idx, port = old.port.name(), "port closed");
            }
        }
    }

    /// Delete a vif and close its port.
    pub fn vif_del(&mut self, idx: u16) -> Result<Vif, DpError> {
        let v = self.router.vif_del(idx)?;
        self.close_port(idx);
        Ok(v)
    }

    pub fn vifs(&self) -> Vec<VifInfo> {
        self.router
            .vifs()
            .iter()
            .map(|v| VifInfo {
                vif: v.clone(),
                port: match self.ports.get(v.cfg.idx as usize) {
                    Some(Some(pe)) => Some((pe.port.name().to_string(), pe.port.stats())),
                    _ => None,
                },
            })
            .collect()
    }

    /// Apply the agent's flow decision; frames held for the flow are run
    /// through the core again when it leaves HOLD.
    pub fn flow_set(&mut self, req: &FlowSet) -> Result<FlowSetOutcome, DpError> {
        let out = self.router.flow_set(req)?;
        // As for a ksync flow request: only this flow's and its reverse
        // flow's offloaded copies go, before released frames re-install.
        match req.rflow {
            Some(r) => self.only_flows_changed(&[out.index, r]),
            None => self.only_flows_changed(&[out.index]),
        }
        if out.release_held {
            self.reinject(out.index);
        }
        Ok(out)
    }

    /// Delete a flow; frames held for it are dropped.
    pub fn flow_del(&mut self, index: u32, gen_id: Option<u8>) -> Result<bool, DpError> {
        let had = self.router.flow_del(index, gen_id)?;
        self.only_flows_changed(&[index]);
        self.drop_held(index);
        Ok(had)
    }

    // Host hooks for a ksync handler that changed the router itself
    // (`crate::control`): it tells the host what became of ports and flows.

    /// Close the port of vif `idx`, whose vif the router no longer has.
    pub fn port_close(&mut self, idx: u16) {
        self.close_port(idx);
    }

    /// Flow `flow` left HOLD: run the frames held for it through the core.
    pub fn release_held(&mut self, flow: u32) {
        self.reinject(flow);
    }

    /// Flow `flow` was deleted: drop the frames held for it; how many.
    pub fn drop_held(&mut self, flow: u32) -> usize {
        let n = self.holds.drop_flow(flow);
        self.stats.hold_dropped += n as u64;
        n
    }

    /// Run `frame` through the core as if received on `vif` (agent
    /// injection over another channel, tests).
    pub fn inject(&mut self, vif: u16, frame: &[u8], vnet: VnetHdr) {
        let Some(slot) = self.slots.first_mut() else {
            return;
        };
        if slot.fill(frame, vnet) {
            self.process_slots(vif, 1);
        }
    }

    fn reinject(&mut self, flow: u32) {
        let held = self.holds.take(flow);
        let mut i = 0;
        while let Some(first) = held.get(i) {
            let vif = first.vif;
            let mut n = 0;
            while let Some(h) = held.get(i).filter(|h| h.vif == vif) {
                let Some(slot) = self.slots.get_mut(n) else {
                    break;
                };
                if slot.fill(&h.frame, h.vnet) {
                    n += 1;
                    self.stats.reinjected += 1;
                }
                i += 1;
            }
            self.process_slots(vif, n);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.router
            .set_time(now.duration_since(self.epoch).as_secs() as u32);
        if now.duration_since(self.last_expiry) >= Duration::from_secs(1) {
            self.last_expiry = now;
            if let Some(deadline) = now.checked_sub(self.cfg.hold_timeout) {
                self.stats.hold_expired += self.holds.expire(deadline) as u64;
            }
            self.refresh_some_offloads();
            self.expire_hold_entries();
            self.offload_fold();
        }
    }

    /// Remove flow entries on HOLD for `hold_timeout` and what is held for
    /// them: a sweep of part of the table per second, the whole table in
    /// half the timeout.
    fn expire_hold_entries(&mut self) {
        let max_age = u32::try_from(self.cfg.hold_timeout.as_secs())
            .unwrap_or(u32::MAX)
            .max(1);
        let cap = u64::from(self.router.flows().capacity());
        let budget = u32::try_from((cap * 2).div_ceil(u64::from(max_age))).unwrap_or(u32::MAX);
        let Core {
            router,
            holds,
            stats,
            ..
        } = self;
        let n = router.expire_holds(max_age, budget, |flow| {
            stats.hold_expired += holds.drop_flow(flow) as u64;
        });
        if n > 0 {
            stats.hold_flows_expired += u64::from(n);
            tracing::info!(
                entries = n,
                secs = max_age,
                "flow entries on hold too long removed (trap lost or no agent): their next packet traps again"
            );
        }
    }

    /// Read the offloads of a few ports again (a device's offloads can be
    /// turned on or off at any time): `OFFLOAD_REFRESH` ports a second, in
    /// turn, so a host with thousands of ports pays a few ioctls a second.
    fn refresh_some_offloads(&mut self) {
        const OFFLOAD_REFRESH: usize = 32;
        let n = self.ports.len();
        let mut done = 0;
        for _ in 0..n {
            if done == OFFLOAD_REFRESH {
                break;
            }
            self.refresh_cursor = (self.refresh_cursor + 1) % n.max(1);
            if let Some(Some(pe)) = self.ports.get_mut(self.refresh_cursor) {
                let o = pe.port.refresh_offloads();
                if o != pe.offloads {
                    tracing::info!(vif = self.refresh_cursor, port = pe.port.name(), offloads = ?o, "port offloads changed");
                    pe.offloads = o;
                }
                done += 1;
            }
        }
    }

    /// Read one batch from the port of `vif`; true if the batch was full.
    fn rx_port(&mut self, vif: u16) -> bool {
        let Some(Some(pe)) = self.ports.get_mut(vif as usize) else {
            return false;
        };
        match pe.port.recv_batch(&mut self.slots) {
            Ok(0) => false,
            Ok(n) => {
                self.process_slots(vif, n);
                n == self.slots.len()
            }
            Err(e) => {
                self.stats.rx_errors += 1;
                tracing::debug!(vif, error = %e, "rx failed");
                false
            }
        }
    }

    /// Run slots `0..n` (received on `vif`) through the core, then send
    /// what the ports queued.
    fn process_slots(&mut self, vif: u16, n: usize) {
        self.process_batch(vif, n);
        self.flush_ports();
        if let Some(off) = &mut self.offload {
            off.take_hints(&mut self.router);
        }
    }

    /// Flush every port sent to since the last flush (one `sendmmsg` each
    /// for batching ports); frames a port dropped count as tx errors.
    /// A port left with a backlog (its receiver was not ready) stays on
    /// the list, so the next flush (after the next batch, or within
    /// [`BACKLOG_RETRY`] when idle) tries again.
    fn flush_ports(&mut self) {
        let mut i = 0;
        while i < self.dirty.len() {
            let vif = self.dirty[i];
            let mut keep = false;
            if let Some(Some(pe)) = self.ports.get_mut(vif as usize) {
                let dropped = pe.port.flush();
                // A refusal may have changed what the device takes.
                pe.offloads = pe.port.offloads();
                keep = pe.port.backlog() > 0;
                pe.dirty = keep;
                self.stats.tx_errors += dropped as u64;
                for _ in 0..dropped {
                    self.router.vif_tx_error(vif);
                }
            }
            if keep {
                i += 1;
            } else {
                self.dirty.swap_remove(i);
            }
        }
    }

    fn process_batch(&mut self, vif: u16, n: usize) {
        let Core {
            router,
            ports,
            holds,
            stats,
            cfg,
            slots,
            probes,
            segs,
            gro,
            actions,
            dirty,
            ..
        } = self;
        let mut ex = Exec {
            router,
            ports,
            holds,
            stats,
            gro,
            dirty,
            now: Instant::now(),
        };
        let mut kinds: Vec<Kind> = Vec::with_capacity(n);
        let mut pkts: Vec<Packet<'_>> = Vec::with_capacity(n);
        let mut supers: Vec<&mut RxSlot> = Vec::new();
        for (slot, probe) in slots.iter_mut().zip(probes.iter_mut()).take(n) {
            if slot.len == 0 {
                ex.stats.rx_truncated += 1;
                continue;
            }
            ex.stats.rx_frames += 1;
            let vh = slot.vnet;
            if vh.is_gso() {
                ex.stats.gso_frames += 1;
                let g = match Gso::new(slot.frame(), &vh) {
                    Ok(g) if g.segs <= cfg.max_segments => g,
                    _ => {
                        ex.stats.offload_errors += 1;
                        continue;
                    }
                };
                if g.outer.is_some() {
                    ex.stats.gso_tunnel += 1;
                }
                let plen = g.seg_len(0);
                if probe.len() < HEADROOM + plen {
                    probe.resize(HEADROOM + plen, 0);
                }
                let written = probe
                    .get_mut(HEADROOM..)
                    .and_then(|out| g.write_segment(slot.frame(), 0, true, out).ok());
                let Some(mut p) = written.and_then(|_| Packet::new(probe, HEADROOM, plen)) else {
                    ex.stats.offload_errors += 1;
                    continue;
                };
                // It stands for a GSO packet: a trap of it is cut as
                // upstream cuts one.
                p.set_gso(true);
                kinds.push(Kind::Probe(g, supers.len()));
                supers.push(slot);
                pkts.push(p);
            } else {
                let len = slot.len;
                if vh.needs_csum() {
                    let f = slot.frame_area().get_mut(..len).unwrap_or(&mut []);
                    let end = vnet::l3_end(f);
                    if vnet::complete_csum(f, end, &vh).is_err() {
                        ex.stats.offload_errors += 1;
                        continue;
                    }
                    ex.stats.csum_completed += 1;
                }
                let Some(p) = Packet::new(slot.buf_mut(), HEADROOM, len) else {
                    continue;
                };
                kinds.push(Kind::Plain);
                pkts.push(p);
            }
        }
        if supers.is_empty() {
            ex.run(vif, &mut pkts, actions);
            return;
        }
        // Mixed batch: probes are judged per packet (a packet's actions are
        // contiguous: its copies, then its disposition).
        let mut fallback: Vec<usize> = Vec::new();
        let mut base = 0;
        while base < pkts.len() {
            actions.clear();
            let Some(rest) = pkts.get_mut(base..) else {
                break;
            };
            let k = ex.router.process(vif, rest, actions);
            if k == 0 {
                break;
            }
            let list = actions.as_slice();
            let mut a = 0;
            while a < list.len() {
                let mut e = a;
                while matches!(list.get(e), Some(Action::TxCopy { .. })) {
                    e += 1;
                }
                let group = list.get(a..=e.min(list.len() - 1)).unwrap_or(&[]);
                a = e + 1;
                let Some(last) = group.last() else {
                    continue;
                };
                let p = base + disposition_pkt(last) as usize;
                match kinds.get(p) {
                    Some(Kind::Plain) => {
                        for act in group {
                            ex.plain(vif, &pkts, base, act, actions);
                        }
                    }
                    Some(Kind::Probe(g, si)) => {
                        let (g, si) = (*g, *si);
                        let Some(sup) = supers.get_mut(si) else {
                            continue;
                        };
                        match group {
                            [Action::Tx { vif: out, .. }] => {
                                let gso_ok = matches!(
                                    ex.ports.get(*out as usize),
                                    Some(Some(pe)) if pe.offloads.accepts(&sup.vnet)
                                );
                                let (len, vh) = (sup.len, sup.vnet);
                                let frame = sup.frame_area().get_mut(..len).unwrap_or(&mut []);
                                let probe = pkts.get(p).map(|x| x.data()).unwrap_or(&[]);
                                let grafted = if gso_ok {
                                    g.graft(frame, probe, &vh)
                                } else {
                                    None
                                };
                                match grafted {
                                    Some((start, vh)) => {
                                        ex.stats.gso_whole += 1;
                                        let whole = sup.frame().get(start..g.end).unwrap_or(&[]);
                                        ex.send(*out, &vh, &[], whole);
                                    }
                                    None => fallback.push(si),
                                }
                            }
                            // The whole super-packet shares the verdict.
                            [Action::Drop { .. }] => {}
                            // Its flow is on hold: the core counted one held
                            // packet (and, for the first, trapped the probe
                            // to the agent). Hold the super-packet whole, as
                            // that one packet: re-run, offload header and
                            // all, once the agent decides. Segmenting it
                            // instead would run segment 0 through the core
                            // a second time (the trap gone with the probe's
                            // actions) and overflow the flow's hold queue.
                            [copies @ .., Action::Hold { flow, .. }]
                                if copies.iter().all(|c| matches!(c, Action::TxCopy { .. })) =>
                            {
                                for c in copies {
                                    ex.plain(vif, &pkts, base, c, actions);
                                }
                                ex.flush();
                                if ex.holds.hold(*flow, vif, sup.frame(), sup.vnet, ex.now) {
                                    ex.stats.held += 1;
                                    ex.stats.gso_held += 1;
                                } else {
                                    ex.stats.hold_overflow += 1;
                                }
                            }
                            _ => fallback.push(si),
                        }
                    }
                    None => {}
                }
            }
            base += k;
        }
        ex.flush();
        drop(pkts);
        for si in fallback {
            let Some(sup) = supers.get(si) else {
                continue;
            };
            let Ok(g) = Gso::new(sup.frame(), &sup.vnet) else {
                continue;
            };
            ex.stats.gso_segmented += 1;
            segment_and_run(&mut ex, vif, sup.frame(), &g, segs, actions);
        }
    }
}

/// Cut a super-packet into segments and run them through the core.
fn segment_and_run(
    ex: &mut Exec<'_>,
    vif: u16,
    frame: &[u8],
    g: &Gso,
    segs: &mut Vec<u8>,
    actions: &mut Actions,
) {
    let stride = HEADROOM + g.hdr_len + g.mss;
    // From the fabric, UDP super-packets are overlay datagrams to
    // decapsulate: no outer checksum (see `Gso::write_segment_for_decap`).
    let decap = ex
        .router
        .vif(vif)
        .is_some_and(|v| v.cfg.vif_type == dp_core::VifType::Physical);
    let mut i = 0;
    while i < g.segs {
        let cnt = MAX_BATCH.min(g.segs - i);
        if segs.len() < stride * cnt {
            segs.resize(stride * cnt, 0);
        }
        let mut pkts: Vec<Packet<'_>> = Vec::with_capacity(cnt);
        for (j, chunk) in segs.chunks_mut(stride).take(cnt).enumerate() {
            let len = match chunk.get_mut(HEADROOM..).map(|out| {
                if decap {
                    g.write_segment_for_decap(frame, i + j, out)
                } else {
                    g.write_segment(frame, i + j, false, out)
                }
            }) {
                Some(Ok(len)) => len,
                _ => {
                    ex.stats.offload_errors += 1;
                    continue;
                }
            };
            if let Some(mut p) = Packet::new(chunk, HEADROOM, len) {
                // Upstream cuts what it traps of a GSO packet.
                p.set_gso(true);
                pkts.push(p);
            }
        }
        ex.stats.gso_segments += pkts.len() as u64;
        ex.run(vif, &mut pkts, actions);
        i += cnt;
    }
}

type Cmd = Box<dyn FnOnce(&mut Core) + Send>;

/// Handle on a running datapath thread; usable from any thread (`Sync`:
/// share it in an `Arc`). Dropping it stops the thread.
pub struct Datapath {
    tx: mpsc::Sender<Cmd>,
    waker: Arc<dyn Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    opener: Option<Arc<dyn PortOpener>>,
    exit: tokio::sync::watch::Receiver<Option<LoopExit>>,
}

/// Reports why the loop thread ended, also when it unwinds from a panic.
struct ExitGuard {
    tx: tokio::sync::watch::Sender<Option<LoopExit>>,
    why: Option<LoopExit>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let why = self.why.take().unwrap_or(LoopExit::Panicked);
        if why != LoopExit::Stopped {
            tracing::error!(reason = %why, "the datapath loop has ended: nothing is forwarded");
        }
        self.tx.send_replace(Some(why));
    }
}

impl Datapath {
    /// Start the loop thread over `router` (whose flow table the caller
    /// built: on the heap or in shared memory). `opener` opens ports by
    /// interface name for [`Datapath::vif_add`]; it runs in the calling
    /// thread (so in the caller's network namespace).
    pub fn start(
        router: Router,
        poller: Box<dyn Poller>,
        opener: Option<Arc<dyn PortOpener>>,
        cfg: DatapathConfig,
    ) -> Result<Datapath, DpError> {
        let waker = poller.waker();
        let mut core = Core::new(router, poller, cfg);
        let (tx, rx) = mpsc::channel::<Cmd>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let (exit_tx, exit) = tokio::sync::watch::channel(None);
        let thread = std::thread::Builder::new()
            .name("vrouter-dp".into())
            .spawn(move || {
                let mut guard = ExitGuard {
                    tx: exit_tx,
                    why: None,
                };
                guard.why = Some(run(&mut core, &rx, &stop2));
            })?;
        Ok(Datapath {
            tx,
            waker,
            stop,
            thread: Some(thread),
            opener,
            exit,
        })
    }

    /// Resolves when the loop thread has ended, with why: a host process
    /// must not outlive its loop (it would forward nothing while looking
    /// alive to its supervisor).
    pub async fn ended(&self) -> LoopExit {
        let mut rx = self.exit.clone();
        let why = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        };
        why.unwrap_or(LoopExit::Panicked)
    }

    /// Run `f` on the loop thread between batches and return its result.
    /// Several operations in one closure are applied atomically with
    /// respect to forwarding.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> R + Send + 'static,
    ) -> Result<R, DpError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let cmd: Cmd = Box::new(move |c: &mut Core| {
            let _ = rtx.send(f(c));
        });
        self.tx.send(cmd).map_err(|_| DpError::Stopped)?;
        self.waker.wake();
        rrx.recv().map_err(|_| DpError::Stopped)
    }

    /// Queue `f` to run on the loop thread between batches, after every
    /// command queued before it, and return at once: the caller does not
    /// wait for (or wake up to) its result. `Stopped` if the loop has
    /// ended; a loop that ends before running `f` drops it.
    pub fn post(&self, f: impl FnOnce(&mut Core) + Send + 'static) -> Result<(), DpError> {
        self.tx.send(Box::new(f)).map_err(|_| DpError::Stopped)?;
        self.waker.wake();
        Ok(())
    }

    /// Add or change a vif, opening its port by `cfg.name` unless the vif
    /// already has a port of that name (the agent re-adding a vif).
    /// Agent-less vifs without a name keep no port.
    pub fn vif_add(&self, cfg: VifConfig) -> Result<(), DpError> {
        let idx = cfg.idx;
        let name = cfg.name.as_str().to_string();
        if name.is_empty() {
            return Err(DpError::NoName(idx));
        }
        let current = self.call(move |c| c.port_name(idx))?;
        // A VLAN sub-interface has no port of its own.
        let port = if current.as_deref() == Some(name.as_str())
            || cfg.vif_type == dp_core::VifType::VirtualVlan
        {
            None
        } else {
            let opener = self.opener.as_ref().ok_or(DpError::NoOpener)?;
            Some(opener.open(&cfg)?)
        };
        self.call(move |c| c.vif_add(cfg, port))?
    }

    /// Add or change a vif with a port the caller opened.
    pub fn vif_add_port(&self, cfg: VifConfig, port: Box<dyn Port>) -> Result<(), DpError> {
        self.call(move |c| c.vif_add(cfg, Some(port)))?
    }

    pub fn vif_del(&self, idx: u16) -> Result<Vif, DpError> {
        self.call(move |c| c.vif_del(idx))?
    }

    pub fn nh_add(&self, nh: Nexthop) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.nh_add(nh))??)
    }

    pub fn nh_del(&self, id: u32) -> Result<Nexthop, DpError> {
        Ok(self.call(move |c| c.router.nh_del(id))??)
    }

    pub fn route_add(&self, vrf: u16, prefix: Prefix, data: RouteData) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.route_add(vrf, prefix, data))??)
    }

    pub fn route_del(&self, vrf: u16, prefix: Prefix) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.route_del(vrf, prefix))??)
    }

    pub fn vrf_reset(&self, vrf: u16) -> Result<(), DpError> {
        self.call(move |c| c.router.vrf_reset(vrf))
    }

    pub fn mpls_add(&self, label: u32, nh: u32) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.mpls_add(label, nh))??)
    }

    pub fn mpls_del(&self, label: u32) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.mpls_del(label))??)
    }

    pub fn vxlan_add(&self, vni: u32, nh: u32) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.vxlan_add(vni, nh))??)
    }

    pub fn vxlan_del(&self, vni: u32) -> Result<(), DpError> {
        Ok(self.call(move |c| c.router.vxlan_del(vni))??)
    }

    /// Apply a flow decision; held frames are re-injected when the flow
    /// leaves HOLD.
    pub fn flow_set(&self, req: FlowSet) -> Result<FlowSetOutcome, DpError> {
        self.call(move |c| c.flow_set(&req))?
    }

    /// Delete a flow; held frames are dropped.
    pub fn flow_del(&self, index: u32, gen_id: Option<u8>) -> Result<bool, DpError> {
        self.call(move |c| c.flow_del(index, gen_id))?
    }

    pub fn vifs(&self) -> Result<Vec<VifInfo>, DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.vifs()
        })
    }

    pub fn nexthops(&self) -> Result<Vec<Nexthop>, DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.router.nexthops().cloned().collect()
        })
    }

    pub fn drop_stats(&self) -> Result<DropStats, DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.router.drop_stats().clone()
        })
    }

    /// Turn the kernel fast path on ([`Core::enable_fast_path`]).
    pub fn enable_fast_path(&self, fp: Box<dyn FastPath>) -> Result<(), DpError> {
        self.call(move |c| c.enable_fast_path(fp))
    }

    /// Fold the fast path's counters into the flow table now. A read-only
    /// command: a plain `call` would also remove every offloaded flow (the
    /// loop's rule for commands that may change forwarding state).
    pub fn offload_fold(&self) -> Result<(), DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.offload_fold();
        })
    }

    /// Whether flow `idx` has an entry in the kernel fast path (false
    /// with the fast path off).
    pub fn offloaded(&self, idx: u32) -> Result<bool, DpError> {
        self.call(move |c| {
            c.read_only_cmd = true;
            c.offload.as_ref().is_some_and(|o| o.is_installed(idx))
        })
    }

    /// The fast path's counters, after folding them into the flow table.
    pub fn offload_stats(&self) -> Result<Option<OffloadStats>, DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.offload_fold();
            c.offload_stats()
        })
    }

    pub fn stats(&self) -> Result<DpStats, DpError> {
        self.call(|c| {
            c.read_only_cmd = true;
            c.stats()
        })
    }

    /// Stop the loop and close every port.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("datapath thread panicked");
            }
        }
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How soon a port with a backlog is flushed again when no traffic comes.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// Commands run per wake-up before forwarding resumes.
const CMDS_PER_TURN: usize = 64;

fn run(core: &mut Core, rx: &mpsc::Receiver<Cmd>, stop: &AtomicBool) -> LoopExit {
    let mut ready: Vec<u64> = Vec::new();
    let mut busy = false;
    let mut why = LoopExit::Stopped;
    let mut fault_check = Instant::now();
    let mut fault_fired: Option<FaultKind> = None;
    while !stop.load(Ordering::Acquire) {
        if let Some(f) = &core.cfg.fault {
            if fault_fired.is_none() && fault_check.elapsed() >= Duration::from_millis(100) {
                fault_check = Instant::now();
                if f.trigger.exists() {
                    tracing::warn!(fault = ?f.kind, "fault injected (VROUTER_FAULT_INJECT)");
                    fault_fired = Some(f.kind);
                }
            }
        }
        if fault_fired == Some(FaultKind::Panic) {
            panic!("fault injected: the datapath loop panics");
        }
        for _ in 0..CMDS_PER_TURN {
            match rx.try_recv() {
                Ok(cmd) => {
                    core.stats.commands += 1;
                    cmd(core);
                    // Any command may change what an offloaded flow copied.
                    if !std::mem::take(&mut core.read_only_cmd) {
                        core.offload_flush();
                    }
                }
                Err(_) => break,
            }
        }
        ready.clear();
        let wait = if busy {
            Duration::ZERO
        } else if !core.dirty.is_empty() {
            // A port has a backlog: flush it again soon.
            core.flush_ports();
            BACKLOG_RETRY
        } else {
            core.cfg.idle_wait
        };
        let waited = if fault_fired == Some(FaultKind::PollError) {
            Err(io::Error::other("fault injected"))
        } else {
            core.poller.wait(&mut ready, wait)
        };
        if let Err(e) = waited {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "poll failed; datapath stops");
                why = LoopExit::PollFailed(e.to_string());
                break;
            }
        }
        core.tick();
        busy = false;
        for &tok in &ready {
            busy |= core.rx_port(tok as u16);
        }
    }
    // Close ports in the loop thread (their owner).
    for i in 0..core.ports.len() {
        core.close_port(i as u16);
    }
    why
}
