//! The packet pipeline.
//!
//! Every path first *decides* (parse, look up, check the flow) without
//! touching the frame, then *applies* the rewrites. So a packet held for a
//! flow is still the frame as received, and the host re-injects it through
//! [`Router::process`] on its original vif once the agent has decided.

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
use crate::nexthop::{NhKind, TunnelKind, AF_BRIDGE};
use crate::route::{rt_flags, RouteData};
use crate::vif::{VifFlags, VifType};
use crate::{NewFlowPolicy, Router};
use packet::checksum;
use packet::parse::{Family, PacketInfo};

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const MPLS_LEN: usize = 4;
const GRE_LEN: usize = 4;
const VXLAN_LEN: usize = 8;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_MPLS: u16 = 0x8847;
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
}

impl Cx<'_> {
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
        let iv = InVif {
            idx: v.cfg.idx,
            vif_type: v.cfg.vif_type,
            mac: v.cfg.mac,
            vrf: v.cfg.vrf,
            flags: v.cfg.flags,
            nh_id: v.cfg.nh_id,
            cross_connect: v.cfg.cross_connect,
        };
        let mut base = 0;
        let pkts = pkts.get_mut(..n).unwrap_or_default();
        for chunk in pkts.chunks_mut(PREFETCH_BATCH) {
            // Phase 1, VM ports: parse the batch and prefetch the flow
            // buckets, so the cache misses of the lookups overlap instead
            // of adding up (the flow table is far larger than the cache).
            let mut infos: [Option<PacketInfo>; PREFETCH_BATCH] = [None; PREFETCH_BATCH];
            if iv.vif_type == VifType::Virtual {
                let policy = iv.flags.contains(VifFlags::POLICY_ENABLED);
                for (slot, pkt) in infos.iter_mut().zip(chunk.iter()) {
                    let Ok(info) = PacketInfo::parse(pkt.data()) else {
                        continue;
                    };
                    if policy
                        && matches!(info.family, Family::Ipv4 | Family::Ipv6)
                        && !info.frag.is_fragment
                    {
                        let key = make_key(&info, iv.nh_id, None);
                        self.flows.prefetch(FlowTable::hash(&key));
                    }
                    *slot = Some(info);
                }
            }
            // Phase 2: the pipeline proper.
            for (j, (pkt, info)) in chunk.iter_mut().zip(infos.iter()).enumerate() {
                let i = base + j;
                if let Some(v) = self.vifs.get_mut(in_vif) {
                    v.stats.ipackets += 1;
                    v.stats.ibytes += pkt.len() as u64;
                }
                let mut cx = Cx {
                    i: i as u16,
                    out,
                    reserve: n - i - 1,
                };
                let disp = match iv.vif_type {
                    VifType::Virtual => self.rx_vm(&iv, pkt, &mut cx, *info),
                    VifType::Physical => self.rx_fabric(&iv, pkt, &mut cx),
                    VifType::Agent => self.rx_agent(&iv, pkt, &mut cx),
                    VifType::Host => match iv.cross_connect {
                        Some(x) => self.tx(&mut cx, pkt, x),
                        None => self.drop(&mut cx, DropReason::InterfaceRxDiscard),
                    },
                };
                if let Action::Drop { .. } = disp {
                    if let Some(v) = self.vifs.get_mut(in_vif) {
                        v.stats.drops += 1;
                    }
                }
                out.push(disp);
            }
            base += chunk.len();
        }
        n
    }

    // ---- dispositions ---------------------------------------------------

    #[inline]
    fn drop(&mut self, cx: &mut Cx<'_>, reason: DropReason) -> Action {
        self.drops.count(reason);
        Action::Drop { pkt: cx.i, reason }
    }

    #[inline]
    fn tx(&mut self, cx: &mut Cx<'_>, pkt: &Packet<'_>, vif: u16) -> Action {
        match self.vifs.get_mut(vif) {
            Some(v) => {
                v.stats.opackets += 1;
                v.stats.obytes += pkt.len() as u64;
                Action::Tx { pkt: cx.i, vif }
            }
            None => self.drop(cx, DropReason::InvalidIf),
        }
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

    // ---- from a container / VM -------------------------------------------

    fn rx_vm(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        info: Option<PacketInfo>,
    ) -> Action {
        let Some(info) = info else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        match info.family {
            Family::Arp => self.vm_arp(iv, pkt, &info, cx),
            Family::Ipv4 | Family::Ipv6 => {
                // Drop Ethernet padding so lengths below are the IP lengths.
                pkt.truncate(info.l3_offset as usize + info.l3_len as usize);
                self.vm_ip(iv, pkt, &info, cx)
            }
            Family::None => self.bridge(iv, iv.vrf, pkt, &info, cx, 0),
        }
    }

    fn vm_arp(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
    ) -> Action {
        let l3 = info.l3_offset as usize;
        let d = pkt.data();
        let (Some(op), Some(sha), Some(spa), Some(tpa)) = (
            rd16(d, l3 + 6),
            mac_at(d, l3 + 8),
            rd32(d, l3 + 14),
            rd32(d, l3 + 24),
        ) else {
            return self.drop(cx, DropReason::InvalidArp);
        };
        // Gratuitous ARP and replies to the vRouter are for the agent.
        if spa == tpa || (op == 2 && info.dst_mac == iv.mac) {
            return self.trap(cx, pkt, Self::trap_hdr(iv, iv.vrf, cmd::ARP));
        }
        if op != 1 {
            return self.bridge(iv, iv.vrf, pkt, info, cx, 0);
        }
        let Some(rt) = self.routes.lookup4(iv.vrf, &tpa.to_be_bytes()) else {
            return self.drop(cx, DropReason::InvalidArp);
        };
        if rt.flags & rt_flags::ARP_PROXY != 0 && !iv.flags.contains(VifFlags::NO_ARP_PROXY) {
            let mac = if rt.mac == [0; 6] { iv.mac } else { rt.mac };
            let d = pkt.data_mut();
            let ok = (|| {
                d.get_mut(0..6)?.copy_from_slice(&sha);
                d.get_mut(6..12)?.copy_from_slice(&mac);
                wr16(d, l3 + 6, 2)?;
                d.get_mut(l3 + 8..l3 + 14)?.copy_from_slice(&mac);
                wr32(d, l3 + 14, tpa)?;
                d.get_mut(l3 + 18..l3 + 24)?.copy_from_slice(&sha);
                wr32(d, l3 + 24, spa)
            })();
            if ok.is_none() {
                return self.drop(cx, DropReason::InvalidArp);
            }
            return self.tx(cx, pkt, iv.idx);
        }
        if rt.flags & rt_flags::ARP_TRAP != 0 {
            return self.trap(cx, pkt, Self::trap_hdr(iv, iv.vrf, cmd::ARP));
        }
        if rt.flags & rt_flags::ARP_FLOOD != 0 {
            return self.bridge(iv, iv.vrf, pkt, info, cx, 0);
        }
        self.drop(cx, DropReason::InvalidArp)
    }

    fn vm_ip(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
    ) -> Action {
        let v6 = info.family == Family::Ipv6;
        if info.proto == PROTO_UDP && info.l4_offset != 0 {
            let dhcp4 = !v6 && info.dport == 67 && iv.flags.contains(VifFlags::DHCP_ENABLED);
            let dhcp6 = v6 && info.dport == 547;
            if dhcp4 || dhcp6 {
                return self.trap(cx, pkt, Self::trap_hdr(iv, iv.vrf, cmd::L3_PROTOCOLS));
            }
        }
        if v6 && info.proto == PROTO_ICMPV6 && info.l4_offset != 0 {
            match info.icmp_type {
                135 => return self.vm_neighbor_solicit(iv, pkt, info, cx),
                // Router solicitations and advertisements: the agent answers.
                133 | 134 | 136 => {
                    return self.trap(cx, pkt, Self::trap_hdr(iv, iv.vrf, cmd::L3_PROTOCOLS))
                }
                _ => {}
            }
        }
        if info.dst_mac == iv.mac && iv.flags.contains(VifFlags::L3_ENABLED) {
            self.route(iv, iv.vrf, pkt, info, cx, 0)
        } else {
            self.bridge(iv, iv.vrf, pkt, info, cx, 0)
        }
    }

    /// Answer a neighbour solicitation for an address whose route has the
    /// proxy flag (IPv6's proxy ARP).
    fn vm_neighbor_solicit(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
    ) -> Action {
        let l4 = info.l4_offset as usize;
        let Some(target) = pkt
            .data()
            .get(l4 + 8..l4 + 24)
            .and_then(|t| <[u8; 16]>::try_from(t).ok())
        else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        // Duplicate address detection (unspecified source) is not answered.
        if info.src == [0; 16] {
            return self.drop(cx, DropReason::InvalidPacket);
        }
        let rt = match self.routes.lookup6(iv.vrf, &target) {
            Some(rt) if rt.flags & rt_flags::ARP_PROXY != 0 => rt,
            Some(rt) if rt.flags & rt_flags::ARP_FLOOD != 0 => {
                return self.bridge(iv, iv.vrf, pkt, info, cx, 0)
            }
            Some(_) => return self.trap(cx, pkt, Self::trap_hdr(iv, iv.vrf, cmd::L3_PROTOCOLS)),
            None => return self.drop(cx, DropReason::InvalidPacket),
        };
        let mac = if rt.mac == [0; 6] { iv.mac } else { rt.mac };
        let (src_mac, src_ip) = (info.src_mac, info.src);
        // Ethernet + IPv6 + NA (24) + target link-layer address option (8).
        const NA_LEN: usize = 32;
        const FRAME_LEN: usize = ETH_LEN + IPV6_LEN + NA_LEN;
        let mut f = [0u8; FRAME_LEN];
        f[0..6].copy_from_slice(&src_mac);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
        f[20] = PROTO_ICMPV6;
        f[21] = 255;
        f[22..38].copy_from_slice(&target);
        f[38..54].copy_from_slice(&src_ip);
        f[54] = 136;
        // Solicited + Override; Router when answering for the gateway is
        // the agent's business (it sends router advertisements).
        f[58] = 0x60;
        f[62..78].copy_from_slice(&target);
        f[78] = 2; // target link-layer address option, 8 bytes
        f[79] = 1;
        f[80..86].copy_from_slice(&mac);
        let c = checksum::l4_checksum_v6(&target, &src_ip, PROTO_ICMPV6, &f[54..86]);
        f[56..58].copy_from_slice(&c.to_be_bytes());
        match pkt.reset(FRAME_LEN) {
            Some(d) => d.copy_from_slice(&f),
            None => return self.drop(cx, DropReason::Push),
        }
        self.tx(cx, pkt, iv.idx)
    }

    // ---- L3 routing ------------------------------------------------------------

    /// Route an IP packet (Ethernet-framed) received on a VM vif or injected
    /// by the agent, in `vrf`.
    fn route(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        depth: usize,
    ) -> Action {
        let Some(rt) = self.lookup_ip(vrf, info.family, &info.dst) else {
            return self.drop(cx, DropReason::NowhereToGo);
        };
        let out = match self.resolve_l3(iv, vrf, pkt, info, cx, rt, depth) {
            Ok(o) => o,
            Err(a) => return a,
        };
        if info.ttl <= 1 {
            let mut h = Self::trap_hdr(iv, vrf, cmd::ZERO_TTL);
            h.vrf = vrf;
            return self.trap(cx, pkt, h);
        }
        // Upstream checks flows when either end asks for it: the incoming
        // vif, or the destination's next hop (a policy-enabled VM behind a
        // port that is not).
        let policy = iv.flags.contains(VifFlags::POLICY_ENABLED) || self.out_vif_policy(&out);
        let verdict = if policy {
            match self.flow_key(vrf, info, pkt.data(), iv.nh_id) {
                Ok(key) => self.flow_check(&key, info, pkt.len(), vrf),
                Err(r) => Verdict::Drop(r),
            }
        } else {
            Verdict::Forward {
                nat: None,
                dvrf: None,
                flow: u32::MAX,
            }
        };
        let (nat, flow) = match verdict {
            Verdict::Forward {
                nat,
                dvrf: Some(dvrf),
                ..
            } if dvrf != vrf && depth == 0 => {
                // VRF translation by flow: route again in the destination VRF.
                let _ = nat;
                return self.route_in(iv, dvrf, pkt, info, cx);
            }
            Verdict::Forward { nat, flow, .. } => (nat, flow),
            Verdict::Hold { flow, trap } => return self.hold(iv, vrf, pkt, cx, flow, trap),
            Verdict::Drop(r) => return self.drop(cx, r),
        };
        if let Some(rflow) = nat {
            if let Err(r) = self.nat(pkt, info, flow, rflow) {
                return self.drop(cx, r);
            }
        }
        self.emit(iv, vrf, pkt, info, cx, out, flow)
    }

    /// Route without a flow check after a flow-directed VRF change.
    fn route_in(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
    ) -> Action {
        let Some(rt) = self.lookup_ip(vrf, info.family, &info.dst) else {
            return self.drop(cx, DropReason::NowhereToGo);
        };
        match self.resolve_l3(iv, vrf, pkt, info, cx, rt, 1) {
            Ok(out) => self.emit(iv, vrf, pkt, info, cx, out, u32::MAX),
            Err(a) => a,
        }
    }

    #[inline]
    fn lookup_ip(&self, vrf: u16, family: Family, addr: &[u8; 16]) -> Option<RouteData> {
        match family {
            Family::Ipv4 => {
                let a: [u8; 4] = [addr[0], addr[1], addr[2], addr[3]];
                self.routes.lookup4(vrf, &a)
            }
            Family::Ipv6 => self.routes.lookup6(vrf, addr),
            _ => None,
        }
    }

    /// Follow a route's next hop to an output decision.
    #[allow(clippy::too_many_arguments, clippy::result_large_err)]
    fn resolve_l3(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        rt: RouteData,
        depth: usize,
    ) -> Result<Out, Action> {
        let mut nh_id = rt.nh;
        let mut label = rt.label();
        for _ in 0..MAX_NH_CHAIN {
            let Some(nh) = self.nhs.get(nh_id) else {
                return Err(self.drop(cx, DropReason::InvalidNh));
            };
            match &nh.kind {
                NhKind::Encap { oif, encap } => {
                    return Ok(Out::Routed {
                        oif: *oif,
                        encap: *encap,
                    })
                }
                NhKind::Tunnel {
                    oif,
                    kind,
                    sip,
                    dip,
                    encap,
                } => {
                    if *kind == TunnelKind::Vxlan {
                        // VXLAN carries Ethernet frames: routed traffic
                        // over VXLAN needs an L2 rewrite upstream does with
                        // a bridge lookup; not supported here.
                        return Err(self.drop(cx, DropReason::InvalidNh));
                    }
                    let Some(label) = label else {
                        return Err(self.drop(cx, DropReason::InvalidLabel));
                    };
                    return Ok(Out::Tunnel {
                        oif: *oif,
                        kind: *kind,
                        sip: *sip,
                        dip: *dip,
                        encap: *encap,
                        label,
                        l2: false,
                        ttl_dec: true,
                    });
                }
                NhKind::Composite { components } => {
                    if components.is_empty() {
                        return Err(self.drop(cx, DropReason::InvalidNh));
                    }
                    let pick = ecmp_hash(info) as usize % components.len();
                    let Some(c) = components.get(pick).copied() else {
                        return Err(self.drop(cx, DropReason::InvalidNh));
                    };
                    nh_id = c.nh;
                    label = Some(c.label);
                }
                NhKind::VrfTranslate { vrf: v } => {
                    let v = *v;
                    if depth > 0 || v == vrf {
                        return Err(self.drop(cx, DropReason::PktLoop));
                    }
                    let Some(rt) = self.lookup_ip(v, info.family, &info.dst) else {
                        return Err(self.drop(cx, DropReason::NowhereToGo));
                    };
                    nh_id = rt.nh;
                    label = rt.label();
                }
                NhKind::Receive => {
                    // Gateway, DNS and other vRouter addresses: the agent
                    // answers (ICMP echo, DNS, ...).
                    return Err(self.trap(cx, pkt, Self::trap_hdr(iv, vrf, cmd::L3_PROTOCOLS)));
                }
                NhKind::Resolve => {
                    return Err(self.trap(cx, pkt, Self::trap_hdr(iv, vrf, cmd::RESOLVE)));
                }
                NhKind::Discard | NhKind::Dead | NhKind::L2Receive => {
                    return Err(self.drop(cx, DropReason::Discard));
                }
            }
        }
        Err(self.drop(cx, DropReason::PktLoop))
    }

    // ---- L2 bridging -----------------------------------------------------------

    fn bridge(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        depth: usize,
    ) -> Action {
        let dst = if is_multicast(&info.dst_mac) {
            BROADCAST
        } else {
            info.dst_mac
        };
        let Some(be) = self.routes.bridge_lookup(vrf, &dst) else {
            return self.drop(cx, DropReason::L2NoRoute);
        };
        let Some(nh) = self.nhs.get(be.nh) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let out = match &nh.kind {
            NhKind::Encap { oif, .. } => Out::Bridged { oif: *oif },
            NhKind::Tunnel {
                oif,
                kind,
                sip,
                dip,
                encap,
            } => {
                let Some(label) = be.label() else {
                    return self.drop(cx, DropReason::InvalidLabel);
                };
                Out::Tunnel {
                    oif: *oif,
                    kind: *kind,
                    sip: *sip,
                    dip: *dip,
                    encap: *encap,
                    label,
                    l2: true,
                    ttl_dec: false,
                }
            }
            NhKind::Composite { .. } => Out::Flood { nh: be.nh },
            NhKind::L2Receive
                if matches!(info.family, Family::Ipv4 | Family::Ipv6) && depth == 0 =>
            {
                return self.route(iv, vrf, pkt, info, cx, 1);
            }
            _ => return self.drop(cx, DropReason::Discard),
        };
        let mut flow = u32::MAX;
        if matches!(info.family, Family::Ipv4 | Family::Ipv6)
            && (iv.flags.contains(VifFlags::POLICY_ENABLED) || self.out_vif_policy(&out))
            && !matches!(out, Out::Flood { .. })
        {
            let verdict = match self.flow_key(vrf, info, pkt.data(), iv.nh_id) {
                Ok(key) => self.flow_check(&key, info, pkt.len(), vrf),
                Err(r) => Verdict::Drop(r),
            };
            match verdict {
                Verdict::Forward {
                    nat: None, flow: f, ..
                } => flow = f,
                // NAT and VRF translation need an L3 path.
                Verdict::Forward { .. } => return self.drop(cx, DropReason::FlowActionInvalid),
                Verdict::Hold { flow, trap } => return self.hold(iv, vrf, pkt, cx, flow, trap),
                Verdict::Drop(r) => return self.drop(cx, r),
            }
        }
        self.emit(iv, vrf, pkt, info, cx, out, flow)
    }

    // ---- from the fabric -------------------------------------------------------

    fn rx_fabric(&mut self, iv: &InVif, pkt: &mut Packet<'_>, cx: &mut Cx<'_>) -> Action {
        let Ok(info) = PacketInfo::parse(pkt.data()) else {
            return self.pass_through(iv, pkt, cx);
        };
        if info.family != Family::Ipv4 || info.l4_offset == 0 {
            return self.pass_through(iv, pkt, cx);
        }
        let dst4 = [info.dst[0], info.dst[1], info.dst[2], info.dst[3]];
        let ours = self
            .routes
            .lookup4(iv.vrf, &dst4)
            .and_then(|rt| self.nhs.get(rt.nh))
            .is_some_and(|nh| matches!(nh.kind, NhKind::Receive));
        if !ours {
            return self.pass_through(iv, pkt, cx);
        }
        pkt.truncate(info.l3_offset as usize + info.l3_len as usize);
        let l4 = info.l4_offset as usize;
        let d = pkt.data();
        match info.proto {
            PROTO_GRE => {
                let (Some(flags), Some(proto)) = (rd16(d, l4), rd16(d, l4 + 2)) else {
                    return self.drop(cx, DropReason::InvalidPacket);
                };
                if proto != ETHERTYPE_MPLS || flags & 0x0007 != 0 {
                    return self.pass_through(iv, pkt, cx);
                }
                // Optional checksum/key/sequence words (RFC 2784/2890).
                let opt = 4
                    * ((flags & 0x8000 != 0) as usize
                        + (flags & 0x2000 != 0) as usize
                        + (flags & 0x1000 != 0) as usize);
                self.mpls_in(iv, pkt, cx, l4 + GRE_LEN + opt)
            }
            PROTO_UDP if info.dport == PORT_MPLS => self.mpls_in(iv, pkt, cx, l4 + UDP_LEN),
            PROTO_UDP if info.dport == PORT_VXLAN => self.vxlan_in(iv, pkt, cx, l4 + UDP_LEN),
            _ => self.pass_through(iv, pkt, cx),
        }
    }

    fn pass_through(&mut self, iv: &InVif, pkt: &Packet<'_>, cx: &mut Cx<'_>) -> Action {
        match iv.cross_connect {
            Some(x) => self.tx(cx, pkt, x),
            None => Action::PassThrough { pkt: cx.i },
        }
    }

    fn mpls_in(&mut self, iv: &InVif, pkt: &mut Packet<'_>, cx: &mut Cx<'_>, off: usize) -> Action {
        let Some(word) = rd32(pkt.data(), off) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        let label = word >> 12;
        if word & 0x100 == 0 {
            // Label stacks deeper than one are not used by the overlay.
            return self.drop(cx, DropReason::InvalidLabel);
        }
        let Some(nh_id) = self.mpls.get(label) else {
            return self.drop(cx, DropReason::InvalidLabel);
        };
        let Some(nh) = self.nhs.get(nh_id) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let inner = off + MPLS_LEN;
        if nh.family == AF_BRIDGE {
            self.decap_l2(iv, pkt, cx, inner, nh_id, nh.vrf)
        } else {
            self.decap_l3(iv, pkt, cx, inner, nh_id)
        }
    }

    fn vxlan_in(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        off: usize,
    ) -> Action {
        let d = pkt.data();
        let (Some(flags), Some(vni)) = (d.get(off).copied(), rd32(d, off + 4)) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        if flags & 0x08 == 0 {
            return self.drop(cx, DropReason::InvalidVnid);
        }
        let vni = vni >> 8;
        let Some(nh_id) = self.vxlan.get(vni) else {
            return self.drop(cx, DropReason::InvalidVnid);
        };
        let vrf = match self.nhs.get(nh_id) {
            Some(nh) => nh.vrf,
            None => return self.drop(cx, DropReason::InvalidNh),
        };
        self.decap_l2(iv, pkt, cx, off + VXLAN_LEN, nh_id, vrf)
    }

    /// The inner packet of a tunnel is an Ethernet frame: bridge it in
    /// `vrf` (through `nh` unless it is a VRF next hop, which means "look
    /// the inner destination MAC up").
    fn decap_l2(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        inner: usize,
        nh_id: u32,
        vrf: u16,
    ) -> Action {
        let Some(frame) = pkt.data().get(inner..) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        let Ok(info) = PacketInfo::parse(frame) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        let Some(nh) = self.nhs.get(nh_id) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let mut nh_id = nh_id;
        if let NhKind::VrfTranslate { .. } = nh.kind {
            let dst = if is_multicast(&info.dst_mac) {
                BROADCAST
            } else {
                info.dst_mac
            };
            let Some(be) = self.routes.bridge_lookup(vrf, &dst) else {
                return self.drop(cx, DropReason::L2NoRoute);
            };
            nh_id = be.nh;
        }
        let Some(nh) = self.nhs.get(nh_id) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let out = match &nh.kind {
            NhKind::Encap { oif, .. } => Out::Bridged { oif: *oif },
            NhKind::Composite { .. } => Out::Flood { nh: nh_id },
            NhKind::L2Receive => {
                // Routed across the overlay to our MAC: route the inner IP.
                let Some(rt) = self.lookup_ip(vrf, info.family, &info.dst) else {
                    return self.drop(cx, DropReason::NowhereToGo);
                };
                match self.nhs.get(rt.nh).map(|n| &n.kind) {
                    Some(NhKind::Encap { oif, encap }) => Out::Routed {
                        oif: *oif,
                        encap: *encap,
                    },
                    _ => return self.drop(cx, DropReason::InvalidNh),
                }
            }
            _ => return self.drop(cx, DropReason::InvalidNh),
        };
        let policy = nh.policy() || self.out_vif_policy(&out);
        let flow = match self.fabric_flow(policy, vrf, &info, frame_of(pkt, inner)) {
            Ok(f) => f,
            Err(a) => return self.fabric_verdict(iv, vrf, pkt, cx, a),
        };
        if !pkt.pull(inner) {
            return self.drop(cx, DropReason::Pull);
        }
        self.deliver_decapped(iv, vrf, pkt, &info, cx, out, flow)
    }

    /// The inner packet is IP (L3VPN label): deliver through an interface
    /// next hop, or route in the next hop's VRF.
    fn decap_l3(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        inner: usize,
        nh_id: u32,
    ) -> Action {
        let Some(ip) = pkt.data().get(inner..) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        let ethertype = match ip.first().map(|b| b >> 4) {
            Some(4) => ETHERTYPE_IPV4,
            Some(6) => ETHERTYPE_IPV6,
            _ => return self.drop(cx, DropReason::InvalidProtocol),
        };
        let Ok(info) = PacketInfo::parse_l3(ip, ethertype) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        let Some(nh) = self.nhs.get(nh_id) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let vrf = nh.vrf;
        let mut policy = nh.policy();
        let out = match &nh.kind {
            NhKind::Encap { oif, encap } => Out::Routed {
                oif: *oif,
                encap: *encap,
            },
            NhKind::VrfTranslate { vrf: v } => {
                let Some(rt) = self.lookup_ip(*v, info.family, &info.dst) else {
                    return self.drop(cx, DropReason::NowhereToGo);
                };
                match self.nhs.get(rt.nh) {
                    Some(n) => {
                        policy |= n.policy();
                        match n.kind {
                            NhKind::Encap { oif, encap } => Out::Routed { oif, encap },
                            _ => return self.drop(cx, DropReason::InvalidNh),
                        }
                    }
                    None => return self.drop(cx, DropReason::InvalidNh),
                }
            }
            _ => return self.drop(cx, DropReason::InvalidNh),
        };
        let policy = policy || self.out_vif_policy(&out);
        let flow = match self.fabric_flow(policy, vrf, &info, frame_of(pkt, inner)) {
            Ok(f) => f,
            Err(a) => return self.fabric_verdict(iv, vrf, pkt, cx, a),
        };
        let Out::Routed { oif, encap } = out else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        // Replace everything up to the inner IP header by the next hop's
        // Ethernet header: pull the outer headers, push 14 bytes.
        if !pkt.pull(inner) {
            return self.drop(cx, DropReason::Pull);
        }
        match pkt.push(ETH_LEN) {
            Some(h) => {
                // The next hop's MACs; the ethertype follows the inner IP
                // version (an interface next hop serves IPv4 and IPv6).
                let mut e = encap;
                e[12..14].copy_from_slice(&ethertype.to_be_bytes());
                h.copy_from_slice(&e);
            }
            None => return self.drop(cx, DropReason::Push),
        }
        let mut info = info;
        info.l3_offset = ETH_LEN as u16;
        if info.l4_offset != 0 {
            info.l4_offset += ETH_LEN as u16;
        }
        self.finish_local(cx, pkt, &info, oif, flow, vrf, iv)
    }

    fn out_vif_policy(&self, out: &Out) -> bool {
        let oif = match out {
            Out::Routed { oif, .. } | Out::Bridged { oif } => *oif,
            _ => return false,
        };
        self.vifs
            .get(oif)
            .is_some_and(|v| v.cfg.flags.contains(VifFlags::POLICY_ENABLED))
    }

    /// Flow check for a decapsulated packet; the key's next hop is the
    /// source's route next hop in the VRF, as upstream.
    fn fabric_flow(
        &mut self,
        policy: bool,
        vrf: u16,
        info: &PacketInfo,
        frame: &[u8],
    ) -> Result<u32, Verdict> {
        if !policy || !matches!(info.family, Family::Ipv4 | Family::Ipv6) {
            return Ok(u32::MAX);
        }
        let src_nh = self
            .lookup_ip(vrf, info.family, &info.src)
            .map_or(0, |r| r.nh);
        let key = self
            .flow_key(vrf, info, frame, src_nh)
            .map_err(Verdict::Drop)?;
        match self.flow_check(&key, info, frame.len(), vrf) {
            Verdict::Forward {
                nat: None, flow, ..
            } => Ok(flow),
            // NAT toward a VM from the fabric is done by the sending side.
            Verdict::Forward { .. } => Err(Verdict::Drop(DropReason::FlowActionInvalid)),
            v => Err(v),
        }
    }

    fn fabric_verdict(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        v: Verdict,
    ) -> Action {
        match v {
            Verdict::Hold { flow, trap } => self.hold(iv, vrf, pkt, cx, flow, trap),
            Verdict::Drop(r) => self.drop(cx, r),
            Verdict::Forward { .. } => self.drop(cx, DropReason::FlowActionInvalid),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_decapped(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        out: Out,
        flow: u32,
    ) -> Action {
        match out {
            Out::Bridged { oif } => self.finish_local(cx, pkt, info, oif, flow, vrf, iv),
            Out::Routed { oif, encap } => {
                if let Some(h) = pkt.data_mut().get_mut(0..12) {
                    h.copy_from_slice(&encap[0..12]);
                }
                self.finish_local(cx, pkt, info, oif, flow, vrf, iv)
            }
            Out::Flood { nh } => self.flood(iv, vrf, pkt, info, cx, nh, true),
            Out::Tunnel { .. } => self.drop(cx, DropReason::InvalidNh),
        }
    }

    // ---- from the agent ------------------------------------------------------------

    fn rx_agent(&mut self, iv: &InVif, pkt: &mut Packet<'_>, cx: &mut Cx<'_>) -> Action {
        let Some(hdr) = pkt.data().get(ETH_LEN..).and_then(AgentHdr::parse) else {
            return self.drop(cx, DropReason::InvalidPacket);
        };
        if !pkt.pull(TRAP_HEADROOM) {
            return self.drop(cx, DropReason::Pull);
        }
        match hdr.cmd {
            cmd::SWITCH => self.tx(cx, pkt, hdr.ifindex),
            cmd::ROUTE => {
                let Ok(info) = PacketInfo::parse(pkt.data()) else {
                    return self.drop(cx, DropReason::InvalidPacket);
                };
                let Some(rt) = self.lookup_ip(hdr.vrf, info.family, &info.dst) else {
                    return self.drop(cx, DropReason::NowhereToGo);
                };
                // Agent-originated packets are routed without a flow check
                // and without a TTL decrement (they were not forwarded).
                let agent = InVif {
                    flags: VifFlags::empty(),
                    ..*iv
                };
                match self.resolve_l3(&agent, hdr.vrf, pkt, &info, cx, rt, 0) {
                    Ok(Out::Tunnel {
                        oif,
                        kind,
                        sip,
                        dip,
                        encap,
                        label,
                        ..
                    }) => {
                        let out = Out::Tunnel {
                            oif,
                            kind,
                            sip,
                            dip,
                            encap,
                            label,
                            l2: false,
                            ttl_dec: false,
                        };
                        self.emit(&agent, hdr.vrf, pkt, &info, cx, out, u32::MAX)
                    }
                    Ok(Out::Routed { oif, encap }) => {
                        if let Some(h) = pkt.data_mut().get_mut(0..12) {
                            h.copy_from_slice(&encap[0..12]);
                        }
                        self.tx(cx, pkt, oif)
                    }
                    Ok(_) => self.drop(cx, DropReason::InvalidNh),
                    Err(a) => a,
                }
            }
            _ => self.drop(cx, DropReason::InvalidPacket),
        }
    }

    // ---- flows ---------------------------------------------------------------------

    /// The flow key of a frame, with fragment and ICMP-error handling.
    fn flow_key(
        &mut self,
        vrf: u16,
        info: &PacketInfo,
        frame: &[u8],
        nh_id: u32,
    ) -> Result<FlowKey, DropReason> {
        if info.frag.is_fragment {
            let fk = FragKey {
                family: info.family as u8,
                vrf,
                id: info.frag.id,
                src: info.src,
                dst: info.dst,
            };
            if info.frag.offset == 0 {
                if info.l4_offset == 0 {
                    return Err(DropReason::FragErr);
                }
                let key = make_key(info, nh_id, None);
                self.frags.insert(&fk, key.sport(), key.dport(), self.now);
                return Ok(key);
            }
            let Some(ports) = self.frags.lookup(&fk, self.now) else {
                return Err(DropReason::NoFragEntry);
            };
            if !info.frag.more {
                self.frags.remove(&fk);
            }
            return Ok(make_key(info, nh_id, Some(ports)));
        }
        if info.l4_offset == 0 {
            return Err(DropReason::InvalidPacket);
        }
        if matches!(info.proto, 1 | PROTO_ICMPV6) && icmp_is_error(info.family, info.icmp_type) {
            let inner_off = info.l4_offset as usize + 8;
            let et = if info.family == Family::Ipv6 {
                ETHERTYPE_IPV6
            } else {
                ETHERTYPE_IPV4
            };
            let inner = frame
                .get(inner_off..)
                .and_then(|b| PacketInfo::parse_l3(b, et).ok())
                .ok_or(DropReason::IcmpError)?;
            return Ok(icmp_error_key(&inner, nh_id));
        }
        Ok(make_key(info, nh_id, None))
    }

    fn flow_check(&mut self, key: &FlowKey, info: &PacketInfo, len: usize, vrf: u16) -> Verdict {
        let idx = match self.flows.lookup(key) {
            Some(i) => i,
            None => {
                if self.cfg.new_flow_policy == NewFlowPolicy::Drop {
                    return Verdict::Drop(DropReason::DropNewFlow);
                }
                let Ok((idx, _)) = self.flows.insert(key) else {
                    return Verdict::Drop(DropReason::FlowTableFull);
                };
                let Some(fe) = self.flows.get_mut(idx) else {
                    return Verdict::Drop(DropReason::FlowUnusable);
                };
                fe.write_begin();
                fe.vrf = vrf;
                fe.dvrf = vrf;
                fe.last_seen = self.now;
                fe.write_end();
                idx
            }
        };
        let now = self.now;
        let max_held = self.cfg.max_held_per_flow;
        let Some(fe) = self.flows.get_mut(idx) else {
            return Verdict::Drop(DropReason::FlowUnusable);
        };
        match fe.action {
            VR_FLOW_ACTION_HOLD => {
                if fe.hold_count >= max_held {
                    return Verdict::Drop(DropReason::FlowQueueLimitExceeded);
                }
                // Upstream `vr_enqueue_flow`: the first packet held traps.
                let trap = (fe.hold_count == 0).then(|| {
                    let stats = (fe.stats_bytes, fe.stats_packets, fe.stats_oflow());
                    let code = if fe.flags & VR_FLOW_FLAG_NEW_FLOW != 0 {
                        // A new flow: its statistics so far travel in the
                        // trap and start again (`vr_do_flow_action`).
                        fe.flags &= !VR_FLOW_FLAG_NEW_FLOW;
                        fe.stats_bytes = 0;
                        fe.stats_packets = 0;
                        fe.stats_bytes_oflow = 0;
                        fe.stats_packets_oflow = 0;
                        cmd::FLOW_MISS
                    } else {
                        cmd::FLOW_ACTION_HOLD
                    };
                    FlowTrap {
                        cmd: code,
                        nh: fe.key.nh_id(),
                        gen: fe.gen_id,
                        bytes: stats.0,
                        packets: stats.1,
                        oflow: stats.2,
                    }
                });
                fe.hold_count += 1;
                Verdict::Hold { flow: idx, trap }
            }
            VR_FLOW_ACTION_DROP => {
                fe.add_stats(len as u32);
                Verdict::Drop(DropReason::FlowActionDrop)
            }
            a @ (VR_FLOW_ACTION_FORWARD | VR_FLOW_ACTION_NAT) => {
                fe.add_stats(len as u32);
                fe.last_seen = now;
                if info.proto == PROTO_TCP {
                    let f = info.tcp_flags;
                    let mut t = fe.tcp_flags;
                    if f & 0x02 != 0 {
                        t |= VR_FLOW_TCP_SYN;
                    }
                    if f & 0x10 != 0 && t & VR_FLOW_TCP_SYN != 0 {
                        t |= VR_FLOW_TCP_ESTABLISHED;
                    }
                    if f & 0x01 != 0 {
                        t |= VR_FLOW_TCP_FIN;
                    }
                    if f & 0x04 != 0 {
                        t |= VR_FLOW_TCP_RST;
                    }
                    fe.tcp_flags = t;
                }
                let dvrf = (fe.flags & VR_FLOW_FLAG_VRFT != 0).then_some(fe.dvrf);
                if a == VR_FLOW_ACTION_NAT {
                    if fe.rflow < 0 {
                        return Verdict::Drop(DropReason::FlowNatNoRflow);
                    }
                    Verdict::Forward {
                        nat: Some(fe.rflow as u32),
                        dvrf,
                        flow: idx,
                    }
                } else {
                    Verdict::Forward {
                        nat: None,
                        dvrf,
                        flow: idx,
                    }
                }
            }
            _ => Verdict::Drop(DropReason::FlowActionInvalid),
        }
    }

    fn hold(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &Packet<'_>,
        cx: &mut Cx<'_>,
        flow: u32,
        trap: Option<FlowTrap>,
    ) -> Action {
        if let Some(t) = trap {
            let mut h = Self::trap_hdr(iv, vrf, t.cmd);
            h.param = flow;
            h.param_1 = t.nh;
            h.param_2 = t.bytes;
            h.param_3 = t.packets;
            h.param_4 = t.oflow;
            h.param_5 = t.gen;
            self.trap_copy(cx, pkt, h);
        }
        Action::Hold { pkt: cx.i, flow }
    }

    /// Rewrite addresses/ports from the reverse flow's key (upstream NAT).
    fn nat(
        &mut self,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        flow: u32,
        rflow: u32,
    ) -> Result<(), DropReason> {
        let flags = self.flows.get(flow).map_or(0, |f| f.flags);
        let rkey = *self
            .flows
            .get_valid(rflow)
            .ok_or(DropReason::FlowNatNoRflow)?
            .key();
        let d = pkt.data_mut();
        let l3 = info.l3_offset as usize;
        let l4 = info.l4_offset as usize;
        let v4 = info.family == Family::Ipv4;
        let alen = if v4 { 4 } else { 16 };
        let (src_off, dst_off) = if v4 {
            (l3 + 12, l3 + 16)
        } else {
            (l3 + 8, l3 + 24)
        };
        // L4 checksum offset (0 = none to fix).
        let csum_off = match info.proto {
            PROTO_TCP if l4 != 0 => l4 + 16,
            PROTO_UDP if l4 != 0 => l4 + 6,
            PROTO_ICMPV6 if l4 != 0 => l4 + 2,
            _ => 0,
        };
        let mut rewrite = |off: usize, new: &[u8], pseudo: bool| -> Option<()> {
            let old: [u8; 16] = {
                let mut o = [0u8; 16];
                o.get_mut(..new.len())?
                    .copy_from_slice(d.get(off..off + new.len())?);
                o
            };
            let old = old.get(..new.len())?;
            if v4 && (off == src_off || off == dst_off) {
                let c = rd16(d, l3 + 10)?;
                wr16(d, l3 + 10, checksum::update_bytes(c, old, new))?;
            }
            if pseudo && csum_off != 0 {
                let c = rd16(d, csum_off)?;
                if !(info.proto == PROTO_UDP && c == 0) {
                    wr16(d, csum_off, checksum::update_bytes(c, old, new))?;
                }
            }
            d.get_mut(off..off + new.len())?.copy_from_slice(new);
            Some(())
        };
        let ok = (|| {
            if flags & VR_FLOW_FLAG_SNAT != 0 {
                rewrite(src_off, rkey.dst().get(..alen)?, true)?;
            }
            if flags & VR_FLOW_FLAG_DNAT != 0 {
                rewrite(dst_off, rkey.src().get(..alen)?, true)?;
            }
            if l4 != 0 && matches!(info.proto, PROTO_TCP | PROTO_UDP) {
                if flags & VR_FLOW_FLAG_SPAT != 0 {
                    rewrite(l4, &rkey.dport().to_be_bytes(), true)?;
                }
                if flags & VR_FLOW_FLAG_DPAT != 0 {
                    rewrite(l4 + 2, &rkey.sport().to_be_bytes(), true)?;
                }
            }
            Some(())
        })();
        ok.ok_or(DropReason::RewriteFail)
    }

    // ---- output --------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        out: Out,
        flow: u32,
    ) -> Action {
        match out {
            Out::Routed { oif, encap } => {
                let d = pkt.data_mut();
                if let Some(h) = d.get_mut(0..12) {
                    h.copy_from_slice(&encap[0..12]);
                }
                if decrement_ttl(d, info).is_none() {
                    return self.drop(cx, DropReason::InvalidPacket);
                }
                self.finish_local(cx, pkt, info, oif, flow, vrf, iv)
            }
            Out::Bridged { oif } => {
                if oif == iv.idx && iv.vif_type == VifType::Virtual {
                    // Never hairpin a bridged frame back to its sender.
                    return self.drop(cx, DropReason::InvalidSource);
                }
                self.finish_local(cx, pkt, info, oif, flow, vrf, iv)
            }
            Out::Tunnel { .. } => self.encap(iv, vrf, pkt, info, cx, out, flow),
            Out::Flood { nh } => self.flood(iv, vrf, pkt, info, cx, nh, false),
        }
    }

    /// Transmit on a local vif after the MTU check.
    #[allow(clippy::too_many_arguments)]
    fn finish_local(
        &mut self,
        cx: &mut Cx<'_>,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        oif: u16,
        flow: u32,
        vrf: u16,
        iv: &InVif,
    ) -> Action {
        let Some(mtu) = self.vifs.get(oif).map(|v| v.cfg.mtu as usize) else {
            return self.drop(cx, DropReason::InvalidIf);
        };
        let ip_len = pkt.len().saturating_sub(info.l3_offset as usize);
        if matches!(info.family, Family::Ipv4 | Family::Ipv6) && ip_len > mtu {
            return self.too_big(iv, vrf, pkt, info, cx, mtu, flow, Out::Bridged { oif });
        }
        self.tx(cx, pkt, oif)
    }

    /// Push the overlay headers and send out of the fabric.
    #[allow(clippy::too_many_arguments)]
    fn encap(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        out: Out,
        flow: u32,
    ) -> Action {
        let Out::Tunnel {
            oif,
            kind,
            sip,
            dip,
            encap,
            label,
            l2,
            ttl_dec,
        } = out
        else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let Some(mtu) = self.vifs.get(oif).map(|v| v.cfg.mtu as usize) else {
            return self.drop(cx, DropReason::InvalidIf);
        };
        let inner_len = if l2 {
            pkt.len()
        } else {
            pkt.len().saturating_sub(info.l3_offset as usize)
        };
        let overhead = tunnel_ip_overhead(kind);
        if inner_len + overhead > mtu && matches!(info.family, Family::Ipv4 | Family::Ipv6) {
            let room = mtu.saturating_sub(overhead + if l2 { info.l3_offset as usize } else { 0 });
            return self.too_big(iv, vrf, pkt, info, cx, room, flow, out);
        }
        if ttl_dec && decrement_ttl(pkt.data_mut(), info).is_none() {
            return self.drop(cx, DropReason::InvalidPacket);
        }
        if !l2 && !pkt.pull(info.l3_offset as usize) {
            return self.drop(cx, DropReason::Pull);
        }
        let entropy = ecmp_hash(info);
        let id = self.next_ip_id();
        let total = pkt.len();
        let Some(h) = pkt.push(ETH_LEN + overhead) else {
            return self.drop(cx, DropReason::HeadAllocFail);
        };
        if write_tunnel(h, kind, &sip, &dip, &encap, label, total, entropy, id).is_none() {
            return self.drop(cx, DropReason::RewriteFail);
        }
        self.tx(cx, pkt, oif)
    }

    fn next_ip_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }

    /// Multi-destination: a copy to every component except the sender.
    /// From the fabric (`from_fabric`), only local components get a copy:
    /// the sender already replicated to the other hosts.
    #[allow(clippy::too_many_arguments)]
    fn flood(
        &mut self,
        iv: &InVif,
        _vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        nh: u32,
        from_fabric: bool,
    ) -> Action {
        let _ = info;
        let Some(NhKind::Composite { components }) = self.nhs.get(nh).map(|n| &n.kind) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let mut sent = 0u32;
        let len = pkt.len();
        let entropy = ecmp_hash(info);
        for c in components.iter() {
            let Some(cnh) = self.nhs.get(c.nh) else {
                continue;
            };
            let (vif, prepend) = match &cnh.kind {
                NhKind::Encap { oif, .. } => {
                    if *oif == iv.idx {
                        continue;
                    }
                    (*oif, Prepend::EMPTY)
                }
                NhKind::Tunnel {
                    oif,
                    kind,
                    sip,
                    dip,
                    encap,
                } if !from_fabric => {
                    let overhead = tunnel_ip_overhead(*kind);
                    let mut p = Prepend::EMPTY;
                    let id = self.ip_id;
                    self.ip_id = self.ip_id.wrapping_add(1);
                    let ok = p.extend(ETH_LEN + overhead).and_then(|h| {
                        write_tunnel(h, *kind, sip, dip, encap, c.label, len, entropy, id)
                    });
                    if ok.is_none() {
                        continue;
                    }
                    (*oif, p)
                }
                _ => continue,
            };
            if cx.copy(vif, &prepend, 0, len as u16) {
                sent += 1;
                if let Some(v) = self.vifs.get_mut(vif) {
                    v.stats.opackets += 1;
                    v.stats.obytes += (len + prepend.as_slice().len()) as u64;
                }
            } else {
                self.drops.count(DropReason::McastCloneFail);
            }
        }
        if sent == 0 {
            return self.drop(cx, DropReason::NowhereToGo);
        }
        Action::Consumed { pkt: cx.i }
    }

    /// A packet bigger than the path MTU `room` (bytes of inner IP packet
    /// that fit). DF set or IPv6: the agent sends the ICMP error
    /// (HANDLE_DF, as upstream). IPv4 without DF: fragment it here.
    #[allow(clippy::too_many_arguments)]
    fn too_big(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        room: usize,
        flow: u32,
        target: Out,
    ) -> Action {
        if info.family == Family::Ipv6 || info.frag.df {
            let mut h = Self::trap_hdr(iv, vrf, cmd::HANDLE_DF);
            h.param = room as u32;
            h.param_1 = flow;
            return self.trap(cx, pkt, h);
        }
        self.fragment(pkt, info, cx, room, target)
    }

    /// Fragment an IPv4 packet into copies of at most `room` IP bytes each
    /// (RFC 791), each with its own headers in the copy's prepend.
    fn fragment(
        &mut self,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        room: usize,
        target: Out,
    ) -> Action {
        let l3 = info.l3_offset as usize;
        let d = pkt.data();
        let Some(ihl) = d.get(l3).map(|b| ((b & 0x0f) as usize) * 4) else {
            return self.drop(cx, DropReason::FragErr);
        };
        let payload_start = l3 + ihl;
        let end = pkt.len();
        let step = room.saturating_sub(ihl) & !7;
        if step == 0 || payload_start > end {
            return self.drop(cx, DropReason::FragErr);
        }
        let (Some(orig_frag), Some(eth_ip)) = (rd16(d, l3 + 6), d.get(..payload_start)) else {
            return self.drop(cx, DropReason::FragErr);
        };
        let mut hdr = [0u8; 14 + 60];
        let Some(hdr) = hdr.get_mut(..payload_start) else {
            return self.drop(cx, DropReason::FragErr);
        };
        hdr.copy_from_slice(eth_ip);
        if let Out::Tunnel { ttl_dec: true, .. } = target {
            if decrement_ttl(hdr, info).is_none() {
                return self.drop(cx, DropReason::FragErr);
            }
        }
        let base_off = (orig_frag & 0x1fff) as usize * 8;
        let orig_more = orig_frag & 0x2000 != 0;
        let mut off = payload_start;
        while off < end {
            let chunk = step.min(end - off);
            let last = off + chunk == end;
            let frag_field = (((base_off + off - payload_start) / 8) as u16)
                | if last && !orig_more { 0 } else { 0x2000 };
            let mut p = Prepend::EMPTY;
            let ok = (|| {
                let ip_total = ihl + chunk;
                let (vif, inner_hdr_start) = match target {
                    Out::Tunnel {
                        oif,
                        kind,
                        sip,
                        dip,
                        encap,
                        label,
                        l2,
                        ..
                    } => {
                        let inner = if l2 { payload_start } else { ihl };
                        let overhead = tunnel_ip_overhead(kind);
                        let id = self.next_ip_id();
                        let h = p.extend(ETH_LEN + overhead)?;
                        write_tunnel(
                            h,
                            kind,
                            &sip,
                            &dip,
                            &encap,
                            label,
                            inner + chunk,
                            ecmp_hash(info),
                            id,
                        )?;
                        (oif, if l2 { 0 } else { l3 })
                    }
                    Out::Routed { oif, .. } | Out::Bridged { oif } => (oif, 0),
                    Out::Flood { .. } => return None,
                };
                let ih = p.extend(payload_start - inner_hdr_start)?;
                ih.copy_from_slice(hdr.get(inner_hdr_start..)?);
                let ipo = l3 - inner_hdr_start;
                wr16(ih, ipo + 2, ip_total as u16)?;
                wr16(ih, ipo + 6, frag_field)?;
                wr16(ih, ipo + 10, 0)?;
                let c = checksum::ipv4_header_checksum(ih.get(ipo..ipo + ihl)?);
                wr16(ih, ipo + 10, c)?;
                Some(vif)
            })();
            let Some(vif) = ok else {
                return self.drop(cx, DropReason::FragErr);
            };
            if !cx.copy(vif, &p, off as u16, (off + chunk) as u16) {
                return self.drop(cx, DropReason::FragmentQueueFail);
            }
            self.count_tx(vif, p.as_slice().len() + chunk);
            off += chunk;
        }
        Action::Consumed { pkt: cx.i }
    }
}

/// The Ethernet frame starting at `inner` (for flow-key ICMP parsing).
fn frame_of<'p>(pkt: &'p Packet<'_>, inner: usize) -> &'p [u8] {
    pkt.data().get(inner..).unwrap_or(&[])
}

/// Outer IP + UDP/GRE + label/VNI bytes of a tunnel (without Ethernet).
#[inline]
fn tunnel_ip_overhead(kind: TunnelKind) -> usize {
    match kind {
        TunnelKind::MplsOverGre => IPV4_LEN + GRE_LEN + MPLS_LEN,
        TunnelKind::MplsOverUdp => IPV4_LEN + UDP_LEN + MPLS_LEN,
        TunnelKind::Vxlan => IPV4_LEN + UDP_LEN + VXLAN_LEN,
    }
}

/// Write outer Ethernet, IPv4, UDP/GRE and MPLS/VXLAN into `h` (exactly
/// `ETH_LEN + tunnel_ip_overhead(kind)` bytes) for `inner_len` bytes of
/// payload.
#[allow(clippy::too_many_arguments)]
fn write_tunnel(
    h: &mut [u8],
    kind: TunnelKind,
    sip: &[u8; 4],
    dip: &[u8; 4],
    encap: &[u8; 14],
    label: u32,
    inner_len: usize,
    entropy: u32,
    ip_id: u16,
) -> Option<()> {
    let overhead = tunnel_ip_overhead(kind);
    let ip_total = u16::try_from(overhead + inner_len).ok()?;
    h.get_mut(0..ETH_LEN)?.copy_from_slice(encap);
    let ip: &mut [u8; IPV4_LEN] = h.get_mut(ETH_LEN..ETH_LEN + IPV4_LEN)?.try_into().ok()?;
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0, 0]);
    ip[8] = 64;
    ip[9] = if kind == TunnelKind::MplsOverGre {
        PROTO_GRE
    } else {
        PROTO_UDP
    };
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(sip);
    ip[16..20].copy_from_slice(dip);
    let c = checksum::ipv4_header_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let l4 = ETH_LEN + IPV4_LEN;
    match kind {
        TunnelKind::MplsOverGre => {
            wr32(h, l4, ETHERTYPE_MPLS as u32)?;
            wr32(h, l4 + GRE_LEN, mpls_word(label))?;
        }
        TunnelKind::MplsOverUdp | TunnelKind::Vxlan => {
            // Source port from the inner flow hash, in 49152..65535, for
            // underlay ECMP entropy (RFC 7510 / RFC 7348).
            let sport = 0xc000 | (entropy as u16 & 0x3fff);
            let dport = if kind == TunnelKind::Vxlan {
                PORT_VXLAN
            } else {
                PORT_MPLS
            };
            wr16(h, l4, sport)?;
            wr16(h, l4 + 2, dport)?;
            wr16(h, l4 + 4, (ip_total as usize - IPV4_LEN) as u16)?;
            wr16(h, l4 + 6, 0)?;
            if kind == TunnelKind::Vxlan {
                wr32(h, l4 + UDP_LEN, 0x0800_0000)?;
                wr32(h, l4 + UDP_LEN + 4, (label & 0x00ff_ffff) << 8)?;
            } else {
                wr32(h, l4 + UDP_LEN, mpls_word(label))?;
            }
        }
    }
    Some(())
}

#[inline]
fn mpls_word(label: u32) -> u32 {
    ((label & 0x000f_ffff) << 12) | 0x100 | 64
}

/// Decrement the IPv4 TTL (with an incremental checksum update) or the
/// IPv6 hop limit of the packet at `info.l3_offset`.
#[inline]
fn decrement_ttl(d: &mut [u8], info: &PacketInfo) -> Option<()> {
    let l3 = info.l3_offset as usize;
    match info.family {
        Family::Ipv4 => {
            let ttl_proto = rd16(d, l3 + 8)?;
            let new = ttl_proto.wrapping_sub(0x100);
            wr16(d, l3 + 8, new)?;
            let c = rd16(d, l3 + 10)?;
            wr16(d, l3 + 10, checksum::update_u16(c, ttl_proto, new))
        }
        Family::Ipv6 => {
            let h = d.get_mut(l3 + 7)?;
            *h = h.saturating_sub(1);
            Some(())
        }
        _ => Some(()),
    }
}

/// Hash of the 5-tuple for ECMP choice and tunnel source ports.
#[inline]
fn ecmp_hash(info: &PacketInfo) -> u32 {
    let mut h: u64 = ((info.sport as u64) << 16 | info.dport as u64) ^ ((info.proto as u64) << 40);
    for c in info.src.chunks_exact(8).chain(info.dst.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 31;
    }
    (h ^ (h >> 32)) as u32
}
