//! The packet pipeline.
//!
//! Every path first *decides* (parse, look up, check the flow) without
//! touching the frame, then *applies* the rewrites. So a packet held for a
//! flow is still the frame as received, and the host re-injects it through
//! [`Router::process`] on its original vif once the agent has decided.
//!
//! One file per stage of the walk: [`Router::process`] and the
//! dispositions (drop, transmit, trap) here; where a packet enters in
//! `vm` (from a container), `fabric` (overlay decapsulation) and
//! `agent_rx` (from pkt0); the lookups in `route` (L3) and `bridge` (L2);
//! the flow verdict in `flow`; and the way out in `output` (rewrites, MTU,
//! encapsulation, floods, fragments) with the header writers in `tunnel`.

mod agent_rx;
mod bridge;
mod check;
mod fabric;
mod flow;
mod mss;
mod output;
mod route;
mod route_cache;
#[cfg(test)]
mod tests;
mod tunnel;
mod vlan;
mod vm;

use crate::agent::{cmd, AgentHdr, AGENT_HDR_LEN, TRAP_HEADROOM};
use crate::buf::{Action, Actions, Packet, Prepend};
use crate::drop::DropReason;
use crate::flow::table::{
    FlowKey, FlowTable, VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD,
    VR_FLOW_ACTION_NAT, VR_FLOW_FLAG_DNAT, VR_FLOW_FLAG_DPAT, VR_FLOW_FLAG_NEW_FLOW,
    VR_FLOW_FLAG_SNAT, VR_FLOW_FLAG_SPAT, VR_FLOW_FLAG_VRFT, VR_FLOW_TCP_ESTABLISHED,
    VR_FLOW_TCP_FIN, VR_FLOW_TCP_RST, VR_FLOW_TCP_SYN,
};
use crate::flow::{icmp_error_key, icmp_is_error, make_key};
use crate::frag::FragKey;
use crate::nexthop::{NhFlags, NhKind, TunnelKind, AF_BRIDGE};
use crate::route::{rt_flags, RouteData};
use crate::vif::{VifFlags, VifType};
use crate::{NewFlowPolicy, Router};
use packet::checksum;
use packet::parse::{Family, PacketInfo};
pub(crate) use route_cache::RouteCache;
use tunnel::{decrement_ttl, ecmp_hash, set_macs, tunnel_ip_overhead, write_tunnel};

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const MPLS_LEN: usize = 4;
/// Bottom-of-stack bit of an MPLS label stack entry.
const MPLS_BOS: u32 = 0x100;
/// Upstream's "no label" label value (`VR_MPLS_LABEL_MASK`).
const MPLS_NO_LABEL: u32 = 0xfffff;
const GRE_LEN: usize = 4;
const VXLAN_LEN: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_MPLS: u16 = 0x8847;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
const PROTO_ICMPV6: u8 = 58;
const PORT_MPLS: u16 = 6635;
const PORT_VXLAN: u16 = 4789;
const BROADCAST: [u8; 6] = [0xff; 6];
/// Bound on VRF-translate / composite chains, against configuration loops.
const MAX_NH_CHAIN: usize = 4;
/// Packets parsed and prefetched ahead of processing (one vRouter batch).
const PREFETCH_BATCH: usize = 32;

// ---- small bounds-checked byte helpers (no input may panic the core) ----

use packet::be::{put_u16 as wr16, put_u32 as wr32, u16_at as rd16, u32_at as rd32};

#[inline]
fn mac_at(b: &[u8], o: usize) -> Option<[u8; 6]> {
    b.get(o..o + 6)?.try_into().ok()
}
#[inline]
fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// The parts of the input vif the pipeline needs, copied once per batch.
#[derive(Clone, Copy)]
struct InVif {
    idx: u16,
    vif_type: VifType,
    mac: [u8; 6],
    vrf: u16,
    flags: VifFlags,
    nh_id: u32,
    cross_connect: Option<u16>,
}

impl InVif {
    fn of(v: &crate::vif::Vif) -> InVif {
        InVif {
            idx: v.cfg.idx,
            vif_type: v.cfg.vif_type,
            mac: v.cfg.mac,
            vrf: v.cfg.vrf,
            flags: v.cfg.flags,
            nh_id: v.cfg.nh_id,
            cross_connect: v.cfg.cross_connect,
        }
    }
}

/// Where a decided packet goes.
#[derive(Clone, Copy)]
enum Out {
    /// L3-routed to a local vif: rewrite L2 from `encap`, decrement TTL.
    Routed { oif: u16, encap: [u8; 14] },
    /// Bridged to a local vif: the frame leaves unchanged.
    Bridged { oif: u16 },
    /// Into a tunnel. `l2` keeps the inner Ethernet header (bridged or
    /// VXLAN); otherwise the IP packet is labelled directly (L3VPN).
    Tunnel {
        oif: u16,
        kind: TunnelKind,
        sip: [u8; 4],
        dip: [u8; 4],
        encap: [u8; 14],
        label: u32,
        l2: bool,
        ttl_dec: bool,
        /// Routed into VXLAN: the inner Ethernet header's new destination
        /// and source MACs (upstream `NH_FLAG_L3_VXLAN`).
        inner_macs: Option<([u8; 6], [u8; 6])>,
    },
    /// Multi-destination next hop: copies to each component.
    Flood { nh: u32 },
}

/// Per-packet context shared by the helpers.
struct Cx<'o> {
    i: u16,
    out: &'o mut Actions,
    /// Dispositions still owed to later packets of the batch.
    reserve: usize,
    /// What the batch's bucket prefetch computed of the packet's flow key;
    /// the flow check takes it instead of hashing again (by reference:
    /// most packets never read it).
    pre: &'o Pre,
    /// From the fabric: the tunnel the packet arrived in (for offload
    /// hints of the decapsulation).
    tun: Option<RxTunnel>,
}

/// What a batch's phase 1 computed of a packet's flow key, for the plain
/// case (not a fragment, not an ICMP error).
#[derive(Clone, Copy)]
enum Pre {
    None,
    /// A VM port's batch: the key and its hash.
    Key(Hashed),
    /// A fabric batch: of the inner packet's key.
    Fabric(FabricHint),
}

/// What a fabric batch's prefetch learnt of a decapsulated packet's flow
/// key: its bucket hash and the source route's next hop (the key's
/// `nh_id`). Only those two words travel to the walk, which builds the key
/// itself (a whole key moved from phase 1 stalled on store forwarding);
/// with them it skips the second source lookup and hash.
#[derive(Clone, Copy)]
struct FabricHint {
    hash: u32,
    src_nh: u32,
}

/// The outer headers a decapsulated packet arrived with.
#[derive(Clone, Copy)]
struct RxTunnel {
    kind: crate::TunnelKind,
    dst: [u8; 4],
    /// MPLS label or VXLAN VNI.
    label: u32,
    /// Offset of the inner packet (or inner Ethernet header) in the frame.
    inner: u16,
}

/// A flow key with its bucket hash ([`FlowTable::hash`]), computed once
/// per packet.
#[derive(Clone, Copy)]
struct Hashed {
    key: FlowKey,
    hash: u32,
}

/// What the walk's flow check gets from the batch's phase 1: the key and
/// its hash (a VM port's batch) or the hash alone (a fabric batch: the
/// walk builds the key, [`Router::flow_key`]).
#[derive(Clone, Copy)]
enum KeyHint<'k> {
    None,
    Key(&'k Hashed),
    Hash(u32),
}

impl Hashed {
    const EMPTY: Hashed = Hashed {
        key: FlowKey::EMPTY,
        hash: 0,
    };

    #[inline]
    fn new(key: FlowKey) -> Hashed {
        Hashed {
            hash: FlowTable::hash(&key),
            key,
        }
    }
}

impl<'o> Cx<'o> {
    /// The VM batch's key and hash, once.
    #[inline]
    fn take_key(&mut self) -> KeyHint<'o> {
        match core::mem::replace(&mut self.pre, &Pre::None) {
            Pre::Key(h) => KeyHint::Key(h),
            _ => KeyHint::None,
        }
    }

    /// The fabric batch's hint, once.
    #[inline]
    fn take_fabric(&mut self) -> Option<FabricHint> {
        match core::mem::replace(&mut self.pre, &Pre::None) {
            Pre::Fabric(f) => Some(*f),
            _ => None,
        }
    }

    #[inline]
    fn copy(&mut self, vif: u16, prepend: &Prepend, from: u16, to: u16) -> bool {
        self.out.room() > self.reserve + 1 && self.out.push_copy(self.i, vif, prepend, from, to)
    }
}

/// The flow table's verdict for one packet.
enum Verdict {
    Forward {
        nat: Option<u32>,
        dvrf: Option<u16>,
        flow: u32,
    },
    Hold {
        flow: u32,
        trap: Option<FlowTrap>,
    },
    Drop(DropReason),
}

/// The trap a held packet sends when it is the first one held (upstream
/// `vr_trap_flow`): FLOW_MISS for a new entry, FLOW_ACTION_HOLD for a flow
/// the agent had decided and set back to hold; the entry's generation and
/// statistics go in `param_2..5`.
#[derive(Clone, Copy)]
struct FlowTrap {
    cmd: u16,
    nh: u32,
    gen: u8,
    bytes: u32,
    packets: u32,
    oflow: u32,
}

impl Router {
    /// Run a batch of frames received on `in_vif` through the pipeline and
    /// append the host's actions to `out`. Returns how many packets were
    /// processed: all of them unless `out` had less room than `pkts.len()`;
    /// the host keeps the rest for the next call.
    pub fn process(&mut self, in_vif: u16, pkts: &mut [Packet<'_>], out: &mut Actions) -> usize {
        let n = pkts.len().min(out.room()).min(u16::MAX as usize);
        let Some(v) = self.vifs.get(in_vif) else {
            for i in 0..n {
                self.drops.count(DropReason::InvalidIf);
                out.push(Action::Drop {
                    pkt: i as u16,
                    reason: DropReason::InvalidIf,
                });
            }
            return n;
        };
        let iv = InVif::of(v);
        // Tagged frames of a parent with sub-interfaces are theirs.
        let demux = iv.vif_type == VifType::Virtual && self.vifs.has_sub_interfaces(in_vif);
        let mut base = 0;
        // The input vif's packets, bytes and drops, counted once per call.
        let mut rx = (0u64, 0u64, 0u64);
        let pkts = pkts.get_mut(..n).unwrap_or_default();
        for chunk in pkts.chunks_mut(PREFETCH_BATCH) {
            // Phase 1, VM ports: parse the batch and prefetch the flow
            // buckets, so the cache misses of the lookups overlap instead
            // of adding up (the flow table is far larger than the cache).
            // The key and hash are kept for the flow check (the same key
            // the check would build: not a fragment, not an ICMP error).
            // Each packet is parsed in place into its slot (moving a
            // summary the parser has just written field by field stalls
            // on store forwarding); `parsed` holds the outcome.
            let mut infos = [PacketInfo::default(); PREFETCH_BATCH];
            let mut parsed: [Result<(), packet::ParseError>; PREFETCH_BATCH] =
                [Err(packet::ParseError::TruncatedL2); PREFETCH_BATCH];
            let mut pres: [Pre; PREFETCH_BATCH] = [Pre::None; PREFETCH_BATCH];
            if iv.vif_type == VifType::Virtual {
                let policy = iv.flags.contains(VifFlags::POLICY_ENABLED);
                for (((info, ok), pre), pkt) in infos
                    .iter_mut()
                    .zip(parsed.iter_mut())
                    .zip(pres.iter_mut())
                    .zip(chunk.iter())
                {
                    *ok = info.parse_from(pkt.data());
                    if ok.is_err() {
                        continue;
                    }
                    if info.family == Family::Ipv4 && info.dst_mac == iv.mac {
                        self.rcache.prefetch_out(iv.vrf, &info.dst_v4());
                    }
                    if policy
                        && matches!(info.family, Family::Ipv4 | Family::Ipv6)
                        && !info.frag.is_fragment
                        && info.l4_offset != 0
                        && !(matches!(info.proto, 1 | PROTO_ICMPV6)
                            && icmp_is_error(info.family, info.icmp_type))
                    {
                        let h = Hashed::new(make_key(info, iv.nh_id, None));
                        self.flows.prefetch(h.hash);
                        *pre = Pre::Key(h);
                    }
                }
            } else if iv.vif_type == VifType::Physical {
                // The fabric's batch: the same for the inner packets of
                // the tunnels (without it, a decapsulated packet's flow
                // lookup missed alone: 60% of cold decap's time).
                for (((info, ok), pre), pkt) in infos
                    .iter_mut()
                    .zip(parsed.iter_mut())
                    .zip(pres.iter_mut())
                    .zip(chunk.iter())
                {
                    *ok = info.parse_from(pkt.data());
                    if ok.is_ok() {
                        if let Some(h) = self.fabric_prefetch(pkt.data(), info) {
                            *pre = Pre::Fabric(h);
                        }
                    }
                }
            }
            // Phase 2: the pipeline proper.
            for (j, (((pkt, info), ok), pre)) in chunk
                .iter_mut()
                .zip(infos.iter())
                .zip(parsed.iter())
                .zip(pres.iter())
                .enumerate()
            {
                let info = (*ok).map(|()| info);
                let i = base + j;
                let mut cx = Cx {
                    i: i as u16,
                    out,
                    reserve: n - i - 1,
                    pre,
                    tun: None,
                };
                if demux {
                    if let Some(vlan) = vlan::outer_vlan(pkt.data()) {
                        let disp = self.rx_tagged(in_vif, vlan, pkt, &mut cx);
                        out.push(disp);
                        continue;
                    }
                }
                rx.0 += 1;
                rx.1 += pkt.len() as u64;
                let disp = match iv.vif_type {
                    VifType::Virtual | VifType::VirtualVlan => self.rx_vm(&iv, pkt, &mut cx, info),
                    VifType::Physical => self.rx_fabric(&iv, pkt, &mut cx, info),
                    VifType::Agent => self.rx_agent(&iv, pkt, &mut cx),
                    VifType::Host => match iv.cross_connect {
                        Some(x) => self.tx(&mut cx, pkt, x),
                        None => self.drop(&mut cx, DropReason::InterfaceRxDiscard),
                    },
                };
                if let Action::Drop { .. } = disp {
                    rx.2 += 1;
                }
                out.push(disp);
            }
            base += chunk.len();
        }
        if let Some(v) = self.vifs.get_mut(in_vif) {
            v.stats.ipackets += rx.0;
            v.stats.ibytes += rx.1;
            v.stats.drops += rx.2;
        }
        n
    }

    // ---- dispositions ---------------------------------------------------

    #[inline]
    fn drop(&mut self, cx: &mut Cx<'_>, reason: DropReason) -> Action {
        self.drops.count(reason);
        Action::Drop { pkt: cx.i, reason }
    }

    /// Drop a frame the input vif could not parse at L2 (upstream
    /// `vif_drop_pkt`: counted as an input error of the vif too).
    fn drop_input(&mut self, cx: &mut Cx<'_>, vif: u16, reason: DropReason) -> Action {
        if let Some(v) = self.vifs.get_mut(vif) {
            v.stats.ierrors += 1;
        }
        self.drop(cx, reason)
    }

    /// Send the packet out of `vif`; out of a VLAN sub-interface, that is
    /// its parent's port with the sub-interface's tag pushed (upstream
    /// `vlan_tx`), counted on the sub-interface only.
    #[inline]
    fn tx(&mut self, cx: &mut Cx<'_>, pkt: &mut Packet<'_>, vif: u16) -> Action {
        let port = match self.vifs.tx_port(vif) {
            Some((port, tag)) => {
                if let Some(t) = tag.filter(|t| *t != 0) {
                    if vlan::push_tag(pkt, t).is_none() {
                        return self.tx_fail(cx, vif, DropReason::Push);
                    }
                }
                port
            }
            None if self.vifs.get(vif).is_some() => {
                // A sub-interface whose parent is gone: upstream's parent
                // is left with a discarding transmit.
                return self.tx_fail(cx, vif, DropReason::InterfaceTxDiscard);
            }
            None => return self.drop(cx, DropReason::InvalidIf),
        };
        match self.vifs.get_mut(vif) {
            Some(v) => {
                v.stats.opackets += 1;
                v.stats.obytes += pkt.len() as u64;
                Action::Tx {
                    pkt: cx.i,
                    vif: port,
                }
            }
            None => self.drop(cx, DropReason::InvalidIf),
        }
    }

    fn tx_fail(&mut self, cx: &mut Cx<'_>, vif: u16, reason: DropReason) -> Action {
        if let Some(v) = self.vifs.get_mut(vif) {
            v.stats.oerrors += 1;
        }
        self.drop(cx, reason)
    }

    fn count_tx(&mut self, vif: u16, len: usize) -> bool {
        match self.vifs.get_mut(vif) {
            Some(v) => {
                v.stats.opackets += 1;
                v.stats.obytes += len as u64;
                true
            }
            None => false,
        }
    }

    /// The Ethernet header + `agent_hdr` that front a trapped frame.
    fn trap_header(&self, hdr: &AgentHdr) -> Option<(u16, [u8; TRAP_HEADROOM])> {
        let av = self.agent_vif?;
        let mac = self.vifs.get(av)?.cfg.mac;
        let mut h = [0u8; TRAP_HEADROOM];
        h[0..6].copy_from_slice(&mac);
        h[6..12].copy_from_slice(&mac);
        h[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let mut a = [0u8; AGENT_HDR_LEN];
        hdr.emit(&mut a);
        h[ETH_LEN..].copy_from_slice(&a);
        Some((av, h))
    }

    /// Send the frame itself to the agent, cut as upstream cuts a trap of
    /// this kind ([`crate::agent::trap_len`]).
    fn trap(&mut self, cx: &mut Cx<'_>, pkt: &mut Packet<'_>, hdr: AgentHdr) -> Action {
        let Some((av, h)) = self.trap_header(&hdr) else {
            return self.drop(cx, DropReason::TrapNoIf);
        };
        pkt.truncate(crate::agent::trap_len(hdr.cmd, pkt.len(), pkt.is_gso()));
        match pkt.push(TRAP_HEADROOM) {
            Some(front) => front.copy_from_slice(&h),
            None => return self.drop(cx, DropReason::Push),
        }
        self.tx(cx, pkt, av)
    }

    /// Send a copy of the frame to the agent (cut as [`Self::trap`] cuts),
    /// keeping the frame.
    fn trap_copy(&mut self, cx: &mut Cx<'_>, pkt: &Packet<'_>, hdr: AgentHdr) {
        let Some((av, h)) = self.trap_header(&hdr) else {
            self.drops.count(DropReason::TrapNoIf);
            return;
        };
        let mut p = Prepend::EMPTY;
        if let Some(b) = p.extend(TRAP_HEADROOM) {
            b.copy_from_slice(&h);
        }
        let to =
            crate::agent::trap_len(hdr.cmd, pkt.len(), pkt.is_gso()).min(u16::MAX as usize) as u16;
        if cx.copy(av, &p, 0, to) {
            self.count_tx(av, TRAP_HEADROOM + to as usize);
        } else {
            self.drops.count(DropReason::CloneFail);
        }
    }

    fn trap_hdr(iv: &InVif, vrf: u16, c: u16) -> AgentHdr {
        AgentHdr {
            ifindex: iv.idx,
            vrf,
            cmd: c,
            ..AgentHdr::default()
        }
    }
}
