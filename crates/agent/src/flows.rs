//! Flow setup, re-evaluation and aging.
//!
//! A `FLOW_MISS` trap names the hold entry the datapath made (index in
//! `param`, generation in `param_5`; `param_2..4` carry the entry's
//! statistics as upstream's datapath sends them). A `FLOW_ACTION_HOLD`
//! trap (an entry that is not new, set back to hold) is decided the same
//! way. The key is read from the shared flow
//! table (it is authoritative: ICMP errors and fragments are keyed by the
//! datapath), the policy and security groups decide, and two `vr_flow_req`
//! FLOW_SETs go out in one write:
//!
//! 1. the reverse entry is created (`fr_index -1`) with the same action,
//!    so the answer is allowed with the request (rules are stateful);
//! 2. the forward (held) entry is set, finding the reverse entry by its
//!    key; the datapath then releases the held packets.
//!
//! Many misses are batched into one write. Aging reads each tracked
//! entry's packet counter from the shared table, a slice of the tracked
//! flows per tick (all of them once per [`FlowEngine::age_sweep`]): idle
//! for the configured timeout, or closed by TCP FIN/RST for the short
//! close timeout, and both entries are deleted (FLOW_SET without ACTIVE). On a policy or security
//! group change every tracked flow is decided again and changed in place.
//! A restarted agent adopts the active flows it finds in the table.

use crate::ksync::{KsyncClient, KsyncError};
use crate::model::{Model, Port};
use crate::program::Ids;
use channels::FlowShm;
use dp_core::agent::AgentHdr;
use dp_core::flow::table::{
    FlowKey, AF_INET6, VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD,
    VR_FLOW_FLAG_ACTIVE, VR_FLOW_FLAG_RFLOW_VALID, VR_FLOW_TCP_FIN, VR_FLOW_TCP_FIN_R,
    VR_FLOW_TCP_RST,
};
use ksync::convert;
use sandesh::{FlowOp, Message, VrFlowReq};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ICMPV6: u8 = 58;
const EEXIST: i32 = 17;
/// Most ksync writes of flow requests outstanding at once: with two, the
/// agent builds and sends a batch while the datapath answers the last one.
pub const IN_FLIGHT: usize = 2;

#[derive(Clone, Copy, Debug)]
pub struct FlowConfig {
    /// Idle time after which a flow is removed (upstream
    /// `flow_cache_timeout`, 180 s).
    pub idle_timeout: Duration,
    /// Time a TCP flow is kept after both FINs or a RST.
    pub tcp_close_timeout: Duration,
    /// Most requests sent in one ksync write (misses are drained from
    /// pkt0 until this many are queued).
    pub max_batch: usize,
    /// The hold audit's period: the whole shared table is read once per
    /// period (a slice per call of [`FlowEngine::audit`], once a second),
    /// and an entry found on HOLD, unchanged, by two visits in a row is
    /// decided as if its trap had arrived (the trap was lost: pkt0 full, a
    /// clone failure). Keep it below the datapath's `--hold-timeout`.
    pub audit_period: Duration,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout: Duration::from_secs(180),
            tcp_close_timeout: Duration::from_secs(2),
            max_batch: 512,
            audit_period: Duration::from_secs(4),
        }
    }
}

/// A flow pair the agent set up.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub fwd: u32,
    pub fgen: u8,
    pub fkey: FlowKey,
    pub rev: Option<(u32, u8)>,
    pub rkey: Option<FlowKey>,
    pub action: u16,
    pub why: String,
    packets: u64,
    last_change: Instant,
    closing_since: Option<Instant>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FlowStats {
    pub misses: u64,
    /// FLOW_ACTION_HOLD traps (a held flow that is not new).
    pub action_holds: u64,
    pub setups: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Of `denied`: by a rule that applies a service chain (not supported:
    /// such rules deny).
    pub service_chain_denied: u64,
    pub stale: u64,
    pub aged: u64,
    pub closed: u64,
    pub reevaluated: u64,
    pub adopted: u64,
    /// Entries on HOLD whose trap never came, decided by the audit.
    pub audited: u64,
    pub errors: u64,
}

/// Work for one ksync write: requests plus what each answer means.
/// Flow requests, not [`Message`]s: a `Message` is a kilobyte (its largest
/// variant, `vr_interface_req`), a `vr_flow_req` 168 bytes, and every
/// request is moved into the batch and out of it once per new flow.
#[derive(Default)]
pub struct Batch {
    pub msgs: Vec<VrFlowReq>,
    notes: Vec<Note>,
}

enum Note {
    /// Reverse entry creation for the flow whose forward index is given.
    Reverse(u32),
    /// Forward set of a flow.
    Forward(u32),
    /// Update or delete: answer only checked.
    Other,
    /// Decision of a reverse hold entry found by an EEXIST answer: a
    /// refusal counts as an error.
    Follow,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }
    pub fn len(&self) -> usize {
        self.msgs.len()
    }
    fn push(&mut self, m: VrFlowReq, n: Note) {
        self.msgs.push(m);
        self.notes.push(n);
    }
    /// The batch cut into writes of at most `step` requests, in order: a
    /// burst (the audit deciding thousands of lost traps, adoption after a
    /// restart) must not become one unbounded write. Cut from the back, so
    /// the first write (the only one, usually) keeps the batch's buffers.
    fn into_writes(mut self, step: usize) -> Vec<Batch> {
        let step = step.max(1);
        let mut writes = Vec::new();
        while self.msgs.len() > step {
            let at = (self.msgs.len() - 1) / step * step;
            writes.push(Batch {
                msgs: self.msgs.split_off(at),
                notes: self.notes.split_off(at),
            });
        }
        if !self.is_empty() {
            writes.push(self);
        }
        writes.reverse();
        writes
    }
}

pub struct FlowEngine {
    cfg: FlowConfig,
    ids: Ids,
    /// By forward index: ordered, so that aging walks it a slice at a time
    /// from a cursor and introspect lists the lowest indices unsorted.
    pub tracked: BTreeMap<u32, Tracked>,
    /// Reverse key -> forward index (answers that raced the setup).
    by_rkey: HashMap<FlowKey, u32>,
    shm_path: std::path::PathBuf,
    shm: Option<FlowShm>,
    pub stats: FlowStats,
    /// The audit: entries it found on HOLD (index -> generation and the
    /// datapath's `last_seen`, which it sets when the entry goes on hold),
    /// and where its next slice starts.
    hold_seen: HashMap<u32, (u8, u32)>,
    audit_cursor: u32,
    /// The forward index aging visits next, and how many flows it visits
    /// per call in the current sweep.
    age_cursor: u32,
    age_slice: usize,
    /// Writes sent whose answers are not recorded yet, oldest first.
    inflight: VecDeque<Batch>,
}

fn addr(family: u8, a: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    }
}

/// The key of the answer to `k`, arriving from `nh_id`'s interface.
pub fn reverse_key(k: &FlowKey, nh_id: u32) -> Option<FlowKey> {
    let (sport, dport) = match k.proto {
        // Echo: the identifier is in sport both ways; other ICMP has no
        // answer flow.
        IPPROTO_ICMP | IPPROTO_ICMPV6 if k.dport() == 0 => (k.sport(), 0),
        IPPROTO_ICMP | IPPROTO_ICMPV6 => return None,
        _ => (k.dport(), k.sport()),
    };
    Some(FlowKey::new(
        k.family,
        k.proto,
        sport,
        dport,
        nh_id,
        k.dst(),
        k.src(),
    ))
}

fn flow_req(index: i32, gen: u8, key: &FlowKey, action: u16, flags: u16) -> VrFlowReq {
    let mut r = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: index,
        fr_gen_id: gen,
        fr_action: action as i16,
        fr_flags: flags as i16,
        fr_rindex: -1,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    convert::set_flow_key(&mut r, key);
    r
}

fn set_rflow_key(r: &mut VrFlowReq, key: &FlowKey) {
    let mut tmp = VrFlowReq::default();
    convert::set_flow_key(&mut tmp, key);
    r.fr_rflow_sip_u = tmp.fr_flow_sip_u;
    r.fr_rflow_sip_l = tmp.fr_flow_sip_l;
    r.fr_rflow_dip_u = tmp.fr_flow_dip_u;
    r.fr_rflow_dip_l = tmp.fr_flow_dip_l;
    r.fr_rflow_sport = tmp.fr_flow_sport;
    r.fr_rflow_dport = tmp.fr_flow_dport;
    r.fr_rflow_nh_id = tmp.fr_flow_nh_id;
}

/// The decision for a flow: action, a reason for introspect, the
/// destination vif, and whether a service-chain rule denied it (counted).
pub fn decide(
    model: &Model,
    vrf: u16,
    in_vif: u16,
    k: &FlowKey,
) -> (u16, String, Option<u16>, bool) {
    let src_ip = addr(k.family, &k.src());
    let dst_ip = addr(k.family, &k.dst());
    let src_port: Option<&Port> = model.ports.get(&in_vif);
    let dst_port: Option<&Port> = model.port_by_addr(vrf, dst_ip);
    let vrf_vn = model.vn_by_vrf(vrf);
    // Addresses behind other compute nodes: what their routes say.
    let src_remote = src_port
        .is_none()
        .then(|| model.endpoint(vrf, src_ip))
        .flatten();
    let dst_remote = dst_port
        .is_none()
        .then(|| model.endpoint(vrf, dst_ip))
        .flatten();
    let src_vn = src_port
        .and_then(|p| model.vns.get(&p.vn))
        .map(|v| v.fq_name.as_str())
        .or(src_remote.map(|(vn, _)| vn))
        .or(vrf_vn.map(|v| v.fq_name.as_str()));
    // A destination that is no port but lies in the VRF's own subnets
    // (gateway, DNS) belongs to that VN.
    let dst_vn = match dst_port {
        Some(p) => model.vns.get(&p.vn).map(|v| v.fq_name.as_str()),
        None => dst_remote.map(|(vn, _)| vn).or(vrf_vn
            .filter(|v| v.subnets.iter().any(|s| s.contains(dst_ip)))
            .map(|v| v.fq_name.as_str())),
    };
    let no_sgs: Vec<String> = Vec::new();
    let src = policy::Endpoint {
        vn: src_vn,
        sgs: src_port.map_or(src_remote.map_or(&no_sgs[..], |(_, s)| s), |p| &p.sgs),
    };
    let dst = policy::Endpoint {
        vn: dst_vn,
        sgs: dst_port.map_or(dst_remote.map_or(&no_sgs[..], |(_, s)| s), |p| &p.sgs),
    };
    let t = policy::FlowTuple {
        proto: k.proto,
        src: src_ip,
        dst: dst_ip,
        sport: k.sport(),
        dport: k.dport(),
    };
    let dst_vif = dst_port.map(|p| p.vif);
    match &model.policy {
        Some(p) => {
            let v = p.evaluate(&src, &dst, &t);
            let action = if v.allow {
                VR_FLOW_ACTION_FORWARD
            } else {
                VR_FLOW_ACTION_DROP
            };
            let chain = matches!(v.why, policy::Why::ServiceChainRule { .. });
            (action, v.to_string(), dst_vif, chain)
        }
        None => (
            VR_FLOW_ACTION_DROP,
            "no policy loaded".into(),
            dst_vif,
            false,
        ),
    }
}

/// Age one tracked flow: refresh its packet count and close state from
/// the shared table, and say whether it goes (`Some((fwd, delete))`:
/// `delete` false when the datapath's entry is gone or reused already).
fn age_one(
    shm: &FlowShm,
    cfg: &FlowConfig,
    stats: &mut FlowStats,
    now: Instant,
    t: &mut Tracked,
) -> Option<(u32, bool)> {
    // Only the fields aging needs, not a copy of each 256-byte record: the
    // sweep visits every flow every `age_sweep` (2 s by default), and the
    // copies were a fifth of the flow thread's time under a flood of new
    // flows.
    let e = shm.activity(t.fwd)?;
    if !e.valid || e.gen_id != t.fgen {
        return Some((t.fwd, false));
    }
    let re = t
        .rev
        .and_then(|(r, g)| shm.activity(r).filter(|e| e.valid && e.gen_id == g));
    let packets = e.packets + re.map_or(0, |r| r.packets);
    let tcp = e.tcp_flags | re.map_or(0, |r| r.tcp_flags);
    let closed = t.fkey.proto == IPPROTO_TCP
        && (tcp & VR_FLOW_TCP_RST != 0
            || (tcp & VR_FLOW_TCP_FIN != 0 && tcp & VR_FLOW_TCP_FIN_R != 0)
            || (e.tcp_flags & VR_FLOW_TCP_FIN != 0
                && re.is_some_and(|r| r.tcp_flags & VR_FLOW_TCP_FIN != 0)));
    if packets != t.packets {
        t.packets = packets;
        t.last_change = now;
    }
    if closed && t.closing_since.is_none() {
        t.closing_since = Some(now);
    }
    let idle = now.duration_since(t.last_change) >= cfg.idle_timeout;
    let close = t
        .closing_since
        .is_some_and(|c| now.duration_since(c) >= cfg.tcp_close_timeout);
    if !(idle || close) {
        return None;
    }
    if close && !idle {
        stats.closed += 1;
    } else {
        stats.aged += 1;
    }
    Some((t.fwd, true))
}

impl FlowEngine {
    pub fn new(cfg: FlowConfig, ids: Ids, shm_path: std::path::PathBuf) -> Self {
        FlowEngine {
            cfg,
            ids,
            tracked: BTreeMap::new(),
            by_rkey: HashMap::new(),
            shm_path,
            shm: None,
            stats: FlowStats::default(),
            hold_seen: HashMap::new(),
            audit_cursor: 0,
            age_cursor: 0,
            age_slice: 0,
            inflight: VecDeque::new(),
        }
    }

    /// The hold audit (upstream's agent audits its flow table the same
    /// way): read the next slice of the shared table (`capacity / period`
    /// records, the whole table per period at one call a second) and
    /// decide every entry that was on HOLD, unchanged, at its previous
    /// visit too: its FLOW_MISS never reached us. Returns how many.
    pub fn audit(&mut self, model: &Model, batch: &mut Batch) -> u32 {
        let secs = self.cfg.audit_period.as_secs().max(1);
        if self.shm().is_none() {
            return 0;
        }
        let FlowEngine {
            shm: Some(shm),
            hold_seen,
            audit_cursor,
            ..
        } = self
        else {
            return 0;
        };
        let cap = shm.capacity();
        if cap == 0 {
            return 0;
        }
        let budget = u32::try_from(u64::from(cap).div_ceil(secs)).unwrap_or(cap);
        let mut lost = Vec::new();
        for _ in 0..budget.min(cap) {
            let i = *audit_cursor % cap;
            *audit_cursor = (i + 1) % cap;
            // Most of the table is free: one cache line tells, not the
            // entry's four and a checked copy.
            let held = shm
                .is_valid_hint(i)
                .then(|| shm.entry(i))
                .flatten()
                .filter(|e| e.is_valid() && e.is_hold())
                .map(|e| (e, (e.gen_id, e.last_seen)));
            match held {
                Some((e, mark)) => {
                    if hold_seen.insert(i, mark) == Some(mark) {
                        hold_seen.remove(&i);
                        lost.push((i, e));
                    }
                }
                None => {
                    if !hold_seen.is_empty() {
                        hold_seen.remove(&i);
                    }
                }
            }
        }
        let n = lost.len() as u32;
        for (i, e) in lost {
            let hdr = AgentHdr {
                param: i,
                param_5: e.gen_id,
                vrf: e.vrf,
                ..AgentHdr::default()
            };
            self.miss_with_key(model, &hdr, e.key(), e.vrf, batch);
        }
        if n > 0 {
            self.stats.audited += u64::from(n);
            tracing::warn!(
                entries = n,
                "flow entries on hold without a trap (lost on pkt0?) decided by the audit"
            );
        }
        n
    }

    /// The shared table, opened on first use. Whether it is still the
    /// datapath's is checked by [`Self::check_table`] (once a second): the
    /// check maps the file again, far too slow for every miss.
    fn shm(&mut self) -> Option<&FlowShm> {
        if self.shm.is_none() {
            match FlowShm::open(&self.shm_path) {
                Ok(s) => self.shm = Some(s),
                Err(e) => {
                    tracing::debug!(error = %e, "flow table not open yet");
                    return None;
                }
            }
        }
        self.shm.as_ref()
    }

    /// Forget the table (and the flows in it) if the datapath replaced it.
    pub fn check_table(&mut self) {
        let stale = self.shm.as_ref().is_some_and(|s| !s.is_current());
        if stale {
            tracing::info!("flow table replaced by the datapath: forgetting tracked flows");
            self.shm = None;
            self.tracked.clear();
            self.by_rkey.clear();
            self.hold_seen.clear();
        }
    }

    fn forget(&mut self, t: &Tracked) {
        if let Some(k) = &t.rkey {
            self.by_rkey.remove(k);
        }
    }

    /// Forget everything (the datapath restarted).
    pub fn reset(&mut self) {
        self.shm = None;
        self.tracked.clear();
        self.by_rkey.clear();
        self.hold_seen.clear();
        self.inflight.clear();
    }

    /// Adopt the active flow pairs already in the table (agent restart),
    /// and queue decisions for entries still on hold.
    pub fn adopt(&mut self, model: &Model, batch: &mut Batch) {
        let Some(shm) = self.shm() else { return };
        let entries: HashMap<u32, dp_core::FlowEntry> = shm.iter_valid().collect();
        let now = Instant::now();
        let mut holds = Vec::new();
        for (i, e) in &entries {
            if e.is_hold() {
                holds.push((*i, *e));
                continue;
            }
            let Some(r) = e.rflow() else { continue };
            // Track each pair once, from its lower index.
            if r < *i && entries.contains_key(&r) {
                continue;
            }
            let rev = entries.get(&r).map(|re| (r, re.gen_id, *re.key()));
            self.tracked.insert(
                *i,
                Tracked {
                    fwd: *i,
                    fgen: e.gen_id,
                    fkey: *e.key(),
                    rev: rev.map(|(r, g, _)| (r, g)),
                    rkey: rev.map(|(_, _, k)| k),
                    action: e.action,
                    why: "adopted".into(),
                    packets: e.packets(),
                    last_change: now,
                    closing_since: None,
                },
            );
            if let Some((_, _, k)) = rev {
                self.by_rkey.insert(k, *i);
            }
            self.stats.adopted += 1;
        }
        for (i, e) in holds {
            let hdr = AgentHdr {
                param: i,
                param_5: e.gen_id,
                vrf: e.vrf,
                ..AgentHdr::default()
            };
            self.miss_with_key(model, &hdr, e.key(), e.vrf, batch);
        }
        // Re-decide adopted flows against the current config.
        self.reevaluate(model, batch);
    }

    /// A FLOW_ACTION_HOLD trap: upstream's datapath sends it instead of
    /// FLOW_MISS for the first packet held by an entry that is not new (a
    /// decided flow set back to hold). The entry is decided afresh, exactly
    /// as a miss (a tracked pair is re-linked or replaced).
    pub fn action_hold(&mut self, model: &Model, hdr: &AgentHdr, batch: &mut Batch) {
        self.stats.action_holds += 1;
        self.decide_held(model, hdr, batch);
    }

    /// A FLOW_MISS trap: queue the requests that decide it.
    pub fn miss(&mut self, model: &Model, hdr: &AgentHdr, batch: &mut Batch) {
        self.stats.misses += 1;
        self.decide_held(model, hdr, batch);
    }

    fn decide_held(&mut self, model: &Model, hdr: &AgentHdr, batch: &mut Batch) {
        let Some(shm) = self.shm() else {
            self.stats.errors += 1;
            return;
        };
        let Some(e) = shm.entry(hdr.param) else {
            self.stats.stale += 1;
            return;
        };
        if !e.is_valid() || e.gen_id != hdr.param_5 || !e.is_hold() {
            // Decided meanwhile (a batch earlier), or reused.
            self.stats.stale += 1;
            return;
        }
        let key = *e.key();
        self.miss_with_key(model, hdr, &key, hdr.vrf, batch);
    }

    fn miss_with_key(
        &mut self,
        model: &Model,
        hdr: &AgentHdr,
        key: &FlowKey,
        vrf: u16,
        batch: &mut Batch,
    ) {
        let idx = hdr.param;
        let in_vif = self
            .ids
            .vif_of_nh(key.nh_id())
            .filter(|v| model.ports.contains_key(v))
            .unwrap_or(hdr.ifindex);
        // The answer of a flow we set up already (its reverse entry was
        // made by a packet before our FLOW_SET): same action, linked.
        let raced = self
            .by_rkey
            .get(key)
            .and_then(|f| self.tracked.get(f))
            .filter(|t| t.rev.is_none_or(|(r, _)| r == idx));
        if let Some(fwd) = raced {
            let fwd_idx = fwd.fwd;
            let action = fwd.action;
            let fkey = fwd.fkey;
            let mut r = flow_req(
                idx as i32,
                hdr.param_5,
                key,
                action,
                VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_RFLOW_VALID,
            );
            r.fr_rindex = fwd_idx as i32;
            set_rflow_key(&mut r, &fkey);
            if let Some(t) = self.tracked.get_mut(&fwd_idx) {
                t.rev = Some((idx, hdr.param_5));
            }
            batch.push(r, Note::Other);
            return;
        }
        let (action, why, dst_vif, chain) = decide(model, vrf, in_vif, key);
        if action == VR_FLOW_ACTION_FORWARD {
            self.stats.allowed += 1;
        } else {
            self.stats.denied += 1;
        }
        if chain {
            self.stats.service_chain_denied += 1;
        }
        let rkey = dst_vif.and_then(|v| reverse_key(key, self.ids.l3_nh(v)));
        let mut flags = VR_FLOW_FLAG_ACTIVE;
        if let Some(rk) = &rkey {
            flags |= VR_FLOW_FLAG_RFLOW_VALID;
            let mut r = flow_req(-1, 0, rk, action, flags);
            r.fr_rindex = idx as i32;
            batch.push(r, Note::Reverse(idx));
        }
        let mut f = flow_req(idx as i32, hdr.param_5, key, action, flags);
        if let Some(rk) = &rkey {
            set_rflow_key(&mut f, rk);
        }
        batch.push(f, Note::Forward(idx));
        if let Some(rk) = rkey {
            self.by_rkey.insert(rk, idx);
        }
        self.tracked.insert(
            idx,
            Tracked {
                fwd: idx,
                fgen: hdr.param_5,
                fkey: *key,
                rev: None,
                rkey,
                action,
                why,
                packets: 0,
                last_change: Instant::now(),
                closing_since: None,
            },
        );
    }

    /// Send `batch`, one write per `max_batch` requests, without waiting
    /// for its answers: they are recorded when [`IN_FLIGHT`] writes are
    /// outstanding and another is due, or by [`Self::settle`]. The agent
    /// builds its next batch while the datapath works on this one.
    pub async fn flush(
        &mut self,
        k: &mut KsyncClient,
        batch: &mut Batch,
    ) -> Result<(), KsyncError> {
        let writes = std::mem::take(batch).into_writes(self.cfg.max_batch.max(2));
        for w in writes {
            while self.inflight.len() >= IN_FLIGHT {
                self.complete_oldest(k).await?;
            }
            k.send_flows(&w.msgs).await?;
            self.inflight.push_back(w);
        }
        Ok(())
    }

    /// Whether writes are waiting for their answers.
    pub fn in_flight(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// Wait for every outstanding answer and record it (follow-ups
    /// included).
    pub async fn settle(&mut self, k: &mut KsyncClient) -> Result<(), KsyncError> {
        while !self.inflight.is_empty() {
            self.complete_oldest(k).await?;
        }
        Ok(())
    }

    /// Record the answers to the oldest outstanding write, and send the
    /// follow-ups they call for (outstanding in turn).
    async fn complete_oldest(&mut self, k: &mut KsyncClient) -> Result<(), KsyncError> {
        let Some(b) = self.inflight.pop_front() else {
            return Ok(());
        };
        let replies = k.take(b.msgs.len()).await?;
        let mut follow = Batch::default();
        for ((note, reply), msg) in b.notes.iter().zip(replies).zip(&b.msgs) {
            let resp = reply.objects.iter().find_map(|o| match o {
                Message::FlowResponse(r) => Some(r),
                _ => None,
            });
            match note {
                Note::Reverse(fwd) => {
                    if let Some(r) = resp {
                        let ok = reply.code >= 0 || reply.code == -EEXIST;
                        if ok {
                            if let Some(t) = self.tracked.get_mut(fwd) {
                                t.rev = Some((r.fresp_index, r.fresp_gen_id));
                            }
                        }
                        if reply.code == -EEXIST {
                            // A packet of the answer made a hold entry
                            // first: decide it like the forward flow.
                            if let Some(t) = self.tracked.get(fwd) {
                                let mut u = msg.clone();
                                u.fr_index = r.fresp_index as i32;
                                u.fr_gen_id = r.fresp_gen_id;
                                u.fr_rindex = *fwd as i32;
                                u.fr_action = t.action as i16;
                                follow.push(u, Note::Follow);
                            }
                        }
                    }
                    if reply.code < 0 && reply.code != -EEXIST {
                        self.stats.errors += 1;
                        tracing::debug!(code = reply.code, fwd, "reverse flow refused");
                    }
                }
                Note::Forward(fwd) => {
                    if reply.code < 0 {
                        self.stats.errors += 1;
                        tracing::debug!(code = reply.code, fwd, "flow set refused");
                        if let Some(t) = self.tracked.remove(fwd) {
                            self.forget(&t);
                        }
                    } else {
                        self.stats.setups += 1;
                    }
                }
                Note::Follow => {
                    if reply.code < 0 {
                        self.stats.errors += 1;
                    }
                }
                Note::Other => {
                    if reply.code < 0 {
                        tracing::debug!(code = reply.code, "flow update refused");
                    }
                }
            }
        }
        // Follow-ups answer with no further follow-up: this ends.
        for w in follow.into_writes(self.cfg.max_batch.max(2)) {
            k.send_flows(&w.msgs).await?;
            self.inflight.push_back(w);
        }
        Ok(())
    }

    /// How long one aging sweep of every tracked flow takes: short enough
    /// that a closed TCP flow goes within about twice the close timeout and
    /// an idle one within the idle timeout plus a sweep.
    pub fn age_sweep(&self) -> Duration {
        self.cfg
            .idle_timeout
            .min(self.cfg.tcp_close_timeout)
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }

    /// Queue deletions of idle and closed flows, visiting the next slice of
    /// the tracked flows: called every `tick`, it walks all of them once
    /// per [`Self::age_sweep`]. A whole-table pass every tick cost the flow
    /// task a quarter of its time under a flood of new flows (two checked
    /// copies of 256-byte entries per tracked flow, growing with the flows,
    /// not with the work).
    pub fn age(&mut self, now: Instant, tick: Duration, batch: &mut Batch) {
        if self.shm().is_none() {
            return;
        }
        let n = self.tracked.len();
        if n == 0 {
            return;
        }
        let sweep = self.age_sweep().as_nanos().max(1);
        let budget = (n as u128 * tick.as_nanos()).div_ceil(sweep);
        let want = usize::try_from(budget).unwrap_or(n).clamp(1, n);
        // Never less than the slice this sweep began with: flows removed on
        // the way must not stretch the sweep.
        let budget = want.max(self.age_slice).min(n);
        let FlowEngine {
            shm: Some(shm),
            tracked,
            stats,
            cfg,
            age_cursor,
            age_slice,
            ..
        } = self
        else {
            return;
        };
        let mut gone = Vec::new();
        let mut visit = |t: &mut Tracked| {
            if let Some(g) = age_one(shm, cfg, stats, now, t) {
                gone.push(g);
            }
            t.fwd
        };
        let cursor = *age_cursor;
        let mut last = None;
        let mut seen = 0;
        for (_, t) in tracked.range_mut(cursor..).take(budget) {
            last = Some(visit(t));
            seen += 1;
        }
        *age_slice = budget;
        if seen < budget {
            // Wrapped: a new sweep, on from the lowest index.
            *age_slice = want;
            for (_, t) in tracked.range_mut(..cursor).take(budget - seen) {
                last = Some(visit(t));
            }
        }
        *age_cursor = last.map_or(0, |l| l.wrapping_add(1));
        for (fwd, delete) in gone {
            let Some(t) = self.tracked.remove(&fwd) else {
                continue;
            };
            self.forget(&t);
            if !delete {
                continue;
            }
            // Reverse first: the forward entry's delete would otherwise
            // leave a dangling rflow index for a moment.
            if let (Some((r, g)), Some(rk)) = (t.rev, t.rkey) {
                batch.push(flow_req(r as i32, g, &rk, t.action, 0), Note::Other);
            }
            batch.push(
                flow_req(t.fwd as i32, t.fgen, &t.fkey, t.action, 0),
                Note::Other,
            );
        }
    }

    /// Decide every tracked flow again (config changed).
    pub fn reevaluate(&mut self, model: &Model, batch: &mut Batch) {
        let ids = self.ids;
        for t in self.tracked.values_mut() {
            let in_vif = ids
                .vif_of_nh(t.fkey.nh_id())
                .and_then(|v| model.ports.get(&v))
                .map(|p| (p.vif, p.vrf));
            let Some((vif, vrf)) = in_vif else { continue };
            let (action, why, _, _) = decide(model, vrf, vif, &t.fkey);
            if action == t.action || t.action == VR_FLOW_ACTION_HOLD {
                continue;
            }
            self.stats.reevaluated += 1;
            tracing::info!(flow = t.fwd, from = t.action, to = action, %why, "flow decided again");
            t.action = action;
            t.why = why;
            let flags = VR_FLOW_FLAG_ACTIVE
                | if t.rev.is_some() {
                    VR_FLOW_FLAG_RFLOW_VALID
                } else {
                    0
                };
            if let (Some((r, g)), Some(rk)) = (t.rev, t.rkey) {
                let mut u = flow_req(r as i32, g, &rk, action, flags);
                u.fr_rindex = t.fwd as i32;
                batch.push(u, Note::Other);
            }
            let mut u = flow_req(t.fwd as i32, t.fgen, &t.fkey, action, flags);
            if let Some((r, _)) = t.rev {
                u.fr_rindex = r as i32;
            }
            batch.push(u, Note::Other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Batch {
        let mut b = Batch::default();
        for i in 0..n {
            let r = VrFlowReq {
                fr_index: i as i32,
                ..Default::default()
            };
            b.push(r, Note::Forward(i as u32));
        }
        b
    }

    /// Writes of at most `step` requests, every request once, in order,
    /// each with its own note.
    #[test]
    fn a_batch_is_cut_into_writes_in_order() {
        for (n, step, sizes) in [
            (0, 512, vec![]),
            (1, 512, vec![1]),
            (512, 512, vec![512]),
            (513, 512, vec![512, 1]),
            (1025, 512, vec![512, 512, 1]),
            (1024, 512, vec![512, 512]),
            (3, 1, vec![1, 1, 1]),
            (3, 0, vec![1, 1, 1]),
        ] {
            let writes = batch(n).into_writes(step);
            let got: Vec<usize> = writes.iter().map(Batch::len).collect();
            assert_eq!(got, sizes, "{n} requests, step {step}");
            let mut next = 0;
            for w in &writes {
                assert_eq!(w.msgs.len(), w.notes.len());
                for (m, note) in w.msgs.iter().zip(&w.notes) {
                    assert_eq!(m.fr_index, next);
                    assert!(matches!(note, Note::Forward(i) if *i == next as u32));
                    next += 1;
                }
            }
            assert_eq!(next as usize, n);
        }
    }
}
