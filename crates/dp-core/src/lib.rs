//! The portable vRouter forwarding engine.
//!
//! `#![no_std]` + `alloc`: the same code runs inside the Windows Hyper-V
//! extensible-switch forwarding extension (kernel mode) and in the Linux
//! user-space datapath host. It keeps upstream vRouter's `dp-core` object
//! model and ids (vif, nexthop, route, mpls, vxlan, flow, vrf, drop stats)
//! so ksync requests map one to one onto [`Router`]'s configuration API.
//!
//! The core never does I/O. A host calls [`Router::process`] with a batch of
//! frames received on one vif and executes the [`Action`]s it gets back.
//! Tables are sized at creation ([`RouterConfig`]); after that, forwarding
//! allocates nothing (a test checks this with a counting allocator).
//!
//! Written by hand because no crate implements vRouter forwarding; the wire
//! formats come from the `packet` crate (smoltcp's views plus the overlay
//! headers smoltcp lacks).

#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;

pub mod agent;
mod buf;
pub mod drop;
mod error;
pub mod flow;
pub mod frag;
pub mod nexthop;
pub mod offload;
mod pipeline;
pub mod route;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod vif;

pub use buf::{Action, Actions, Packet, PrependRef, HEADROOM, PREPEND_MAX};
pub use drop::{DropReason, DropStats};
pub use error::ConfigError;
pub use flow::table::{FlowEntry, FlowKey, FlowTable};
pub use nexthop::{Component, Nexthop, NhFlags, NhKind, TunnelKind};
pub use offload::{ConfigChange, OffloadDecap, OffloadHint, OffloadTunnel, OFFLOAD_HINTS_MAX};
pub use route::{BridgeEntry, Prefix, RouteData};
pub use vif::{SubIf, Vif, VifConfig, VifFlags, VifStats, VifType};

use frag::FragTable;
use nexthop::NhTable;
use route::{MplsTable, RouteTables, VxlanTable};
use vif::VifTable;

/// The vRouter's own MAC, upstream's `VR_MAC` (also the gateway MAC the
/// agent answers ARP with).
pub const VROUTER_MAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];

/// What the datapath does with the first packet of a flow it has no entry
/// for, on a vif with the policy flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewFlowPolicy {
    /// Create a HOLD entry, queue the packet and ask the agent (upstream).
    Hold,
    /// Drop new flows (an agent is not connected and the operator chose
    /// to fail closed).
    Drop,
}

/// Table sizes that fit the agent's id layout (`vrouter-agent`'s
/// `program.rs`: vif `v` has the next hops and MPLS labels `16 + 2v` and
/// `17 + 2v`; VRF `r` has the next hop `16 + 2·interfaces + r`). The
/// `vrouter` host derives its default label and next-hop table sizes from
/// its interface and VRF counts with these, and the agent checks a
/// datapath's limits (`vrouter_ops`) against them when it connects, so the
/// two never disagree silently.
pub mod sizing {
    /// The first id the agent gives to ports' next hops and labels (ids
    /// below are the datapath's and the agent's fixed ones).
    pub const FIRST_PORT_ID: u32 = 16;
    /// Interfaces (and so vifs the agent may use) by default.
    pub const DEFAULT_INTERFACES: u16 = 4096;
    /// VRFs by default (upstream's `vr_vrfs`).
    pub const DEFAULT_VRFS: u16 = 4096;

    /// Overflow records for a flow table of `entries` hash entries:
    /// upstream's default (`vr_flow_table_init`: a fifth of the table,
    /// rounded up to a multiple of 1024), at least 64: enough for the
    /// buckets' spill up to a full table. With 1/64 (upstream's older 8K
    /// for 512K) a table about half full refused inserts ("Flow Table
    /// Full", docs/performance.md).
    pub const fn oflow_for(entries: u32) -> u32 {
        let o = (entries / 5 + 1023) & !1023;
        if o < 64 {
            64
        } else {
            o
        }
    }

    // Upstream's figures: 105 472 for its default 512K, 26 624 for 128K.
    const _: () = assert!(oflow_for(512 * 1024) == 105_472 && oflow_for(128 * 1024) == 26_624);
    const _: () = assert!(oflow_for(4) == 64);

    /// MPLS labels needed for `interfaces` vifs.
    pub const fn labels(interfaces: u16) -> u32 {
        FIRST_PORT_ID + 2 * interfaces as u32
    }

    /// Next hops needed for `interfaces` vifs and `vrfs` VRFs.
    pub const fn nexthops(interfaces: u16, vrfs: u16) -> u32 {
        FIRST_PORT_ID + 2 * interfaces as u32 + vrfs as u32
    }

    /// VRF next hops the agent reserves before its tunnel range, whatever
    /// its VRF limit (upstream's default `vr_vrfs`).
    pub const VRF_NEXTHOPS: u32 = 4096;
    /// Tunnel next hops (one per remote compute node and encapsulation).
    pub const TUNNEL_NEXTHOPS: u32 = 4096;
    /// ECMP composite next hops (one per distinct set of next hops).
    pub const COMPOSITE_NEXTHOPS: u32 = 8192;

    /// Next hops needed for `interfaces` vifs when a control node's routes
    /// add tunnel and ECMP composite next hops after the VRFs'.
    pub const fn nexthops_with_remote(interfaces: u16) -> u32 {
        FIRST_PORT_ID + 2 * interfaces as u32 + VRF_NEXTHOPS + TUNNEL_NEXTHOPS + COMPOSITE_NEXTHOPS
    }
}

/// Table sizes and behaviour, fixed at creation like upstream's module
/// parameters.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    pub max_vifs: u16,
    pub max_nexthops: u32,
    pub max_labels: u32,
    pub max_vrfs: u16,
    pub max_vxlans: u32,
    pub bridge_entries: u32,
    /// Flow table hash part (a multiple of 4) and overflow area.
    pub flow_entries: u32,
    pub oflow_entries: u32,
    pub frag_entries: u32,
    /// Packets held per flow while the agent decides (upstream: 3).
    pub max_held_per_flow: u32,
    pub new_flow_policy: NewFlowPolicy,
    /// Lower the MSS of TCP SYNs from containers to what fits the fabric
    /// after the overlay (upstream `vr_from_vm_mss_adj`, default on).
    pub from_vm_mss_adj: bool,
    /// The same for SYNs delivered to containers out of a tunnel
    /// (upstream `vr_to_vm_mss_adj`, default on).
    pub to_vm_mss_adj: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_vifs: sizing::DEFAULT_INTERFACES,
            max_nexthops: 65536,
            // Two per vif from 16: every vif index can have its labels.
            max_labels: sizing::labels(sizing::DEFAULT_INTERFACES),
            max_vrfs: sizing::DEFAULT_VRFS,
            max_vxlans: 16384,
            bridge_entries: 262_144,
            flow_entries: 512 * 1024,
            oflow_entries: sizing::oflow_for(512 * 1024),
            frag_entries: 1024,
            max_held_per_flow: 3,
            new_flow_policy: NewFlowPolicy::Hold,
            from_vm_mss_adj: true,
            to_vm_mss_adj: true,
        }
    }
}

impl RouterConfig {
    /// Small tables for tests and examples.
    pub fn small() -> Self {
        RouterConfig {
            max_vifs: 64,
            max_nexthops: 1024,
            max_labels: 1024,
            max_vrfs: 64,
            max_vxlans: 64,
            bridge_entries: 1024,
            flow_entries: 1024,
            oflow_entries: 256,
            frag_entries: 64,
            ..RouterConfig::default()
        }
    }
}

/// Result of applying a flow request from the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSetOutcome {
    pub index: u32,
    pub gen_id: u8,
    /// The entry left HOLD: the host should re-inject the packets it holds
    /// for this flow through [`Router::process`].
    pub release_held: bool,
}

/// What the agent asks for a flow (`vr_flow_req` FLOW_SET subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSet {
    /// `None` creates an entry for `key` (upstream index -1).
    pub index: Option<u32>,
    /// Generation the agent saw; checked when `index` is given.
    pub gen_id: Option<u8>,
    pub key: FlowKey,
    pub action: u16,
    pub flags: u16,
    /// Reverse flow index, if any.
    pub rflow: Option<u32>,
    /// Destination VRF (VRF translation), upstream `fr_flow_dvrf`.
    pub dvrf: Option<u16>,
    pub ecmp_nh_index: i8,
    pub drop_reason: u8,
    pub src_nh_index: u32,
}

/// The forwarding engine: all tables plus the packet pipeline.
pub struct Router {
    cfg: RouterConfig,
    vifs: VifTable,
    nhs: NhTable,
    routes: RouteTables,
    mpls: MplsTable,
    vxlan: VxlanTable,
    flows: FlowTable,
    frags: FragTable,
    drops: DropStats,
    /// Seconds, set by the host; used for flow aging and fragment timeouts.
    now: u32,
    /// Outer IPv4 identification counter.
    ip_id: u16,
    /// Cached index of the agent vif (pkt0), kept in sync by vif_add/del.
    agent_vif: Option<u16>,
    /// Cached index of the fabric vif (the lowest physical one), for the
    /// TCP MSS adjustment.
    fabric_vif: Option<u16>,
    /// Where [`Router::expire_holds`] goes on scanning.
    hold_cursor: u32,
    /// Entries [`Router::expire_holds`] removed.
    holds_expired: u64,
    /// Flows a host fast path may offload ([`offload`]).
    hints: offload::OffloadHints,
    /// Route lookups and next-hop walks of recent destinations; every
    /// configuration change below invalidates it (`pipeline/route_cache.rs`).
    rcache: pipeline::RouteCache,
}

impl Router {
    /// A router whose flow table lives on the heap.
    pub fn new(cfg: RouterConfig) -> Result<Self, ConfigError> {
        let flows = FlowTable::new(cfg.flow_entries, cfg.oflow_entries)
            .map_err(|_| ConfigError::Invalid("flow table size"))?;
        Ok(Self::with_flow_table(cfg, flows))
    }

    /// A router over a host-provided flow table (a shared mapping the agent
    /// also maps).
    pub fn with_flow_table(cfg: RouterConfig, flows: FlowTable) -> Self {
        Router {
            vifs: VifTable::new(cfg.max_vifs),
            nhs: NhTable::new(cfg.max_nexthops),
            routes: RouteTables::new(cfg.max_vrfs, cfg.bridge_entries),
            mpls: MplsTable::new(cfg.max_labels),
            vxlan: VxlanTable::new(cfg.max_vxlans),
            frags: FragTable::new(cfg.frag_entries),
            flows,
            drops: DropStats::default(),
            now: 0,
            ip_id: 1,
            agent_vif: None,
            fabric_vif: None,
            hold_cursor: 0,
            holds_expired: 0,
            hints: offload::OffloadHints::new(),
            rcache: pipeline::RouteCache::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Advance the router clock (seconds, monotonic).
    pub fn set_time(&mut self, now_secs: u32) {
        self.now = now_secs;
    }

    pub fn now(&self) -> u32 {
        self.now
    }

    /// Change what happens to new flows, e.g. fail closed while the agent
    /// is disconnected and back to holding once it returns.
    pub fn set_new_flow_policy(&mut self, policy: NewFlowPolicy) {
        self.cfg.new_flow_policy = policy;
    }

    /// Turn the TCP MSS adjustment of SYNs from and to containers on or off
    /// (upstream `vrouter_ops` `vo_from_vm_mss_adj` / `vo_to_vm_mss_adj`).
    pub fn set_mss_adjust(&mut self, from_vm: bool, to_vm: bool) {
        self.cfg.from_vm_mss_adj = from_vm;
        self.cfg.to_vm_mss_adj = to_vm;
    }

    // ---- interfaces --------------------------------------------------

    /// Add or change a vif (`vr_interface_req` ADD).
    pub fn vif_add(&mut self, cfg: VifConfig) -> Result<(), ConfigError> {
        if cfg.vif_type == VifType::Agent {
            if let Some(a) = self.agent_vif.filter(|a| *a != cfg.idx) {
                let _ = a;
                return Err(ConfigError::Invalid("a second agent vif"));
            }
        }
        let idx = cfg.idx;
        let is_agent = cfg.vif_type == VifType::Agent;
        self.rcache.invalidate();
        self.vifs.set(cfg)?;
        if is_agent {
            self.agent_vif = Some(idx);
        } else if self.agent_vif == Some(idx) {
            self.agent_vif = None;
        }
        self.fabric_vif = self.vifs.find_type(VifType::Physical).map(|v| v.cfg.idx);
        Ok(())
    }

    /// Delete a vif (`vr_interface_req` DEL).
    pub fn vif_del(&mut self, idx: u16) -> Result<Vif, ConfigError> {
        self.rcache.invalidate();
        let v = self.vifs.remove(idx)?;
        if self.agent_vif == Some(idx) {
            self.agent_vif = None;
        }
        self.fabric_vif = self.vifs.find_type(VifType::Physical).map(|v| v.cfg.idx);
        Ok(v)
    }

    pub fn vif(&self, idx: u16) -> Option<&Vif> {
        self.vifs.get(idx)
    }

    pub fn vifs(&self) -> &VifTable {
        &self.vifs
    }

    /// Zero the counters of vif `idx`, or of every vif (`vr_interface_req`
    /// RESET). False if `idx` names no vif.
    pub fn vif_stats_reset(&mut self, idx: Option<u16>) -> bool {
        match idx {
            Some(i) => match self.vifs.get_mut(i) {
                Some(v) => {
                    v.stats = vif::VifStats::default();
                    true
                }
                None => false,
            },
            None => {
                for i in 0..self.vifs.capacity() {
                    if let Some(v) = self.vifs.get_mut(i) {
                        v.stats = vif::VifStats::default();
                    }
                }
                true
            }
        }
    }

    /// The host reports that a transmit the core asked for failed: an
    /// output error of the vif and a drop (upstream counts a failed
    /// `vif_tx` as `vds_interface_tx_discard`).
    pub fn vif_tx_error(&mut self, idx: u16) {
        if let Some(v) = self.vifs.get_mut(idx) {
            v.stats.oerrors += 1;
            v.stats.opackets = v.stats.opackets.saturating_sub(1);
        }
        self.drops.count(DropReason::InterfaceTxDiscard);
    }

    // ---- next hops ---------------------------------------------------

    /// Add or change a next hop (`vr_nexthop_req` ADD).
    pub fn nh_add(&mut self, nh: Nexthop) -> Result<(), ConfigError> {
        self.rcache.invalidate();
        self.nhs.set(nh)
    }

    pub fn nh_del(&mut self, id: u32) -> Result<Nexthop, ConfigError> {
        self.rcache.invalidate();
        self.nhs.remove(id)
    }

    /// The router MAC behind a VXLAN tunnel next hop for routed traffic
    /// (upstream `NH_FLAG_L3_VXLAN` with `nhr_rw_dst_mac`): routed packets
    /// leave with that destination MAC and the fabric vif's MAC as source
    /// in their inner Ethernet header. Set after [`Router::nh_add`] (which
    /// forgets it); the next hop must be a VXLAN tunnel and the MAC not
    /// zero, as upstream requires.
    pub fn nh_set_l3_vxlan_mac(&mut self, id: u32, mac: [u8; 6]) -> Result<(), ConfigError> {
        self.rcache.invalidate();
        self.nhs.set_l3_mac(id, mac)
    }

    /// See [`Router::nh_set_l3_vxlan_mac`].
    pub fn nh_l3_vxlan_mac(&self, id: u32) -> Option<[u8; 6]> {
        self.nhs.l3_mac(id)
    }

    pub fn nh(&self, id: u32) -> Option<&Nexthop> {
        self.nhs.get(id)
    }

    /// Whether a lookup can reach next hop `id`: a route, an MPLS label, a
    /// VXLAN VNI or a composite next hop leads to it. The only ways the
    /// core resolves a next hop (a vif's `nh_id` is a number in the flow
    /// key, never resolved).
    pub fn nh_in_use(&self, id: u32) -> bool {
        self.routes.nh_users(id) > 0
            || self.mpls.iter().any(|(_, nh)| nh == id)
            || self.vxlan.iter().any(|(_, nh)| nh == id)
            || self.nhs.iter().any(|n| match &n.kind {
                NhKind::Composite { components } => components.iter().any(|c| c.nh == id),
                _ => false,
            })
    }

    pub fn nexthops(&self) -> impl Iterator<Item = &Nexthop> {
        self.nhs.iter()
    }

    // ---- routes ------------------------------------------------------

    /// Add or replace a route (`vr_route_req` ADD). A `Prefix::Mac` adds a
    /// bridge entry.
    pub fn route_add(
        &mut self,
        vrf: u16,
        prefix: Prefix,
        data: RouteData,
    ) -> Result<(), ConfigError> {
        if data.nh >= self.nhs.capacity() {
            return Err(ConfigError::OutOfRange("route next hop"));
        }
        self.rcache.invalidate();
        self.routes.add(vrf, prefix, data)
    }

    pub fn route_del(&mut self, vrf: u16, prefix: Prefix) -> Result<(), ConfigError> {
        self.rcache.invalidate();
        self.routes.delete(vrf, prefix)
    }

    /// Exact-match read (`vr_route_req` GET).
    pub fn route_get(&self, vrf: u16, prefix: Prefix) -> Option<RouteData> {
        self.routes.get(vrf, prefix)
    }

    pub fn routes(&self) -> &RouteTables {
        &self.routes
    }

    /// Delete a VRF and all its routes (`vr_vrf_req` DEL).
    pub fn vrf_reset(&mut self, vrf: u16) {
        self.rcache.invalidate();
        self.routes.reset_vrf(vrf);
    }

    // ---- labels ------------------------------------------------------

    pub fn mpls_add(&mut self, label: u32, nh: u32) -> Result<(), ConfigError> {
        if nh >= self.nhs.capacity() {
            return Err(ConfigError::OutOfRange("mpls next hop"));
        }
        self.rcache.invalidate();
        self.mpls.set(label, nh)
    }

    pub fn mpls_del(&mut self, label: u32) -> Result<(), ConfigError> {
        self.rcache.invalidate();
        self.mpls.remove(label)
    }

    pub fn mpls(&self) -> &MplsTable {
        &self.mpls
    }

    pub fn vxlan_add(&mut self, vni: u32, nh: u32) -> Result<(), ConfigError> {
        if nh >= self.nhs.capacity() {
            return Err(ConfigError::OutOfRange("vxlan next hop"));
        }
        self.rcache.invalidate();
        self.vxlan.set(vni, nh)
    }

    pub fn vxlan_del(&mut self, vni: u32) -> Result<(), ConfigError> {
        self.rcache.invalidate();
        self.vxlan.remove(vni)
    }

    pub fn vxlan(&self) -> &VxlanTable {
        &self.vxlan
    }

    // ---- flows -------------------------------------------------------

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Apply the agent's decision for a flow (`vr_flow_req` FLOW_SET).
    pub fn flow_set(&mut self, req: &FlowSet) -> Result<FlowSetOutcome, ConfigError> {
        let out = flow::apply_set(&mut self.flows, req)?;
        if req.action == flow::VR_FLOW_ACTION_HOLD {
            // Set (back) to hold now: the HOLD bound counts from here.
            if let Some(fe) = self.flows.get_mut(out.index) {
                fe.last_seen = self.now;
            }
        }
        Ok(out)
    }

    /// The datapath's bound on how long an entry may stay on HOLD: remove
    /// entries held for `max_age` seconds or more (since they were created
    /// or set back to hold), scanning at most `budget` records from where
    /// the previous call stopped (a host calls it every second with a
    /// budget that sweeps the table well within `max_age`). `expired` gets
    /// each removed index: the host drops the packets it holds for it.
    /// Returns how many entries went.
    ///
    /// A HOLD entry whose trap was lost (pkt0 full, agent gone) would
    /// otherwise black-hole its 5-tuple for good; removed, the flow's next
    /// packet makes a new entry and traps again. The agent's own audit
    /// (which decides such entries) normally acts first.
    pub fn expire_holds(&mut self, max_age: u32, budget: u32, mut expired: impl FnMut(u32)) -> u32 {
        let cap = self.flows.capacity();
        if cap == 0 {
            return 0;
        }
        let now = self.now;
        let mut n = 0;
        for _ in 0..budget.min(cap) {
            let i = self.hold_cursor % cap;
            self.hold_cursor = (i + 1) % cap;
            let old = self
                .flows
                .get_valid(i)
                .is_some_and(|e| e.is_hold() && now.wrapping_sub(e.last_seen) >= max_age);
            if old && self.flows.remove(i) {
                n += 1;
                expired(i);
            }
        }
        self.holds_expired += u64::from(n);
        n
    }

    /// Entries [`Router::expire_holds`] removed since the router started.
    pub fn holds_expired(&self) -> u64 {
        self.holds_expired
    }

    /// Delete a flow (`vr_flow_req` FLOW_SET with action DROP and the
    /// delete flag, or aging by the agent). Returns whether the host held
    /// packets for it, which it must now drop.
    pub fn flow_del(&mut self, index: u32, gen_id: Option<u8>) -> Result<bool, ConfigError> {
        flow::delete(&mut self.flows, index, gen_id)
    }

    // ---- statistics --------------------------------------------------

    /// Output decisions the route cache answered and those it did not
    /// (`pipeline/route_cache.rs`), since the router started.
    pub fn route_cache_stats(&self) -> (u64, u64) {
        self.rcache.stats()
    }

    pub fn drop_stats(&self) -> &DropStats {
        &self.drops
    }

    pub fn drop_stats_reset(&mut self) {
        self.drops.reset();
    }
}
