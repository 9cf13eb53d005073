//! From the fabric: overlay decapsulation (MPLSoGRE, MPLSoUDP, VXLAN)
//! and delivery to local vifs.

use super::*;

impl Router {
    // ---- from the fabric -------------------------------------------------------

    pub(super) fn rx_fabric(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        info: Result<&PacketInfo, packet::ParseError>,
    ) -> Action {
        let info = match info {
            Ok(i) => i,
            // Upstream `vr_fabric_input`: `vr_pkt_type() < 0` drops.
            Err(packet::ParseError::TruncatedL2) => {
                return self.drop_input(cx, iv.idx, DropReason::InterfaceDrop)
            }
            Err(e) => {
                // A broken IPv4 header addressed to us is our drop to count;
                // anything else is the host's business.
                return match self.broken_ipv4_for_us(iv, pkt.data()) {
                    true => self.drop(cx, check::parse_drop(e)),
                    false => self.pass_through(iv, pkt, cx),
                };
            }
        };
        if info.family != Family::Ipv4 || !self.is_ours(iv, &info.dst_v4()) {
            return self.pass_through(iv, pkt, cx);
        }
        let tunnel_proto = matches!(info.proto, PROTO_GRE | PROTO_UDP);
        if !tunnel_proto || info.frag.is_fragment {
            return self.pass_through(iv, pkt, cx);
        }
        if !check::ipv4_header_ok(pkt.data(), info) {
            return self.drop(cx, DropReason::CksumErr);
        }
        if info.l4_offset == 0 {
            // The GRE or UDP header is cut short.
            return self.drop(cx, DropReason::Pull);
        }
        pkt.truncate(info.l3_offset as usize + info.l3_len as usize);
        let l4 = info.l4_offset as usize;
        match info.proto {
            PROTO_GRE => {
                let d = pkt.data();
                let (Some(flags), Some(proto)) = (rd16(d, l4), rd16(d, l4 + 2)) else {
                    return self.drop(cx, DropReason::Pull);
                };
                if proto != ETHERTYPE_MPLS || flags & 0x0007 != 0 {
                    return self.pass_through(iv, pkt, cx);
                }
                // Optional checksum/key/sequence words (RFC 2784/2890).
                let opt = 4
                    * ((flags & 0x8000 != 0) as usize
                        + (flags & 0x2000 != 0) as usize
                        + (flags & 0x1000 != 0) as usize);
                cx.tun = self.hints.enabled.then_some(RxTunnel {
                    kind: crate::TunnelKind::MplsOverGre,
                    dst: info.dst_v4(),
                    label: 0,
                    inner: 0,
                });
                self.mpls_in(iv, pkt, cx, l4 + GRE_LEN + opt)
            }
            PROTO_UDP if matches!(info.dport, PORT_MPLS | PORT_VXLAN) => {
                if let Err(r) = check::check_outer_udp(pkt, info) {
                    return self.drop(cx, r);
                }
                cx.tun = self.hints.enabled.then_some(RxTunnel {
                    kind: if info.dport == PORT_MPLS {
                        crate::TunnelKind::MplsOverUdp
                    } else {
                        crate::TunnelKind::Vxlan
                    },
                    dst: info.dst_v4(),
                    label: 0,
                    inner: 0,
                });
                if info.dport == PORT_MPLS {
                    self.mpls_in(iv, pkt, cx, l4 + UDP_LEN)
                } else {
                    self.vxlan_in(iv, pkt, cx, l4 + UDP_LEN)
                }
            }
            _ => self.pass_through(iv, pkt, cx),
        }
    }

    /// Prefetch the flow bucket of the inner packet's key, as
    /// [`Self::fabric_flow`] will build it: for a fabric batch's phase 1,
    /// so the flow lookups of decapsulated packets overlap their misses.
    /// Only the plain case (an IPv4 tunnel around an unfragmented IPv4 TCP
    /// or UDP packet) with a few loads, not the walk's full parse;
    /// anything else is not prefetched. Returns the hash prefetched and the
    /// source next hop it hashed with. It decides nothing; the walk takes
    /// the hash and the source next hop ([`FabricHint`]) instead of looking
    /// up and hashing again, and builds the key itself (passing the whole
    /// key on cost more in store-forwarding stalls than hashing again).
    pub(super) fn fabric_prefetch(&mut self, d: &[u8], info: &PacketInfo) -> Option<FabricHint> {
        if info.family != Family::Ipv4 || info.frag.is_fragment || info.l4_offset == 0 {
            return None;
        }
        let l4 = info.l4_offset as usize;
        let (inner, vrf, l2) = match (info.proto, info.dport) {
            (PROTO_UDP, PORT_MPLS) => self.pre_mpls(d, l4 + UDP_LEN)?,
            (PROTO_UDP, PORT_VXLAN) => {
                let vni = rd32(d, l4 + UDP_LEN + 4)? >> 8;
                let nh = self.nhs.get(self.vxlan.get(vni)?)?;
                (l4 + UDP_LEN + VXLAN_LEN, nh.vrf, true)
            }
            (PROTO_GRE, _) => {
                let flags = rd16(d, l4)?;
                if rd16(d, l4 + 2)? != ETHERTYPE_MPLS || flags & 0x0007 != 0 {
                    return None;
                }
                let opt = 4
                    * ((flags & 0x8000 != 0) as usize
                        + (flags & 0x2000 != 0) as usize
                        + (flags & 0x1000 != 0) as usize);
                self.pre_mpls(d, l4 + GRE_LEN + opt)?
            }
            _ => return None,
        };
        let inner = d.get(inner..)?;
        let ip = if l2 {
            if rd16(inner, 12)? != ETHERTYPE_IPV4 {
                return None;
            }
            inner.get(ETH_LEN..)?
        } else {
            inner
        };
        // A few loads, not the full parse the walk does anyway: the key of
        // an unfragmented IPv4 TCP or UDP packet (anything else: `None`).
        let b0 = *ip.first()?;
        let ihl = usize::from(b0 & 0xf) * 4;
        let proto = *ip.get(9)?;
        if b0 >> 4 != 4 || ihl < IPV4_LEN || rd16(ip, 6)? & 0x3fff != 0 {
            return None;
        }
        if !matches!(proto, PROTO_TCP | PROTO_UDP) {
            return None;
        }
        let (sport, dport) = (rd16(ip, ihl)?, rd16(ip, ihl + 2)?);
        let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
        let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
        let src_nh = self.lookup4_cached(vrf, &src).map_or(0, |r| r.nh);
        let hash = crate::flow::hash::flow_hash_v4(proto, sport, dport, src_nh, src, dst);
        self.flows.prefetch(hash);
        Some(FabricHint { hash, src_nh })
    }

    /// The MPLS label at `off` as [`Self::mpls_in`] reads it: the inner
    /// packet's offset, its next hop's VRF and whether it is Ethernet.
    fn pre_mpls(&self, d: &[u8], off: usize) -> Option<(usize, u16, bool)> {
        let mut off = off;
        let mut word = rd32(d, off)?;
        if word & MPLS_BOS == 0 && word >> 12 == MPLS_NO_LABEL {
            off += MPLS_LEN;
            word = rd32(d, off)?;
        }
        if word & MPLS_BOS == 0 || word >> 12 >= self.mpls.capacity() {
            return None;
        }
        let nh = self.nhs.get(self.mpls.get(word >> 12)?)?;
        Some((off + MPLS_LEN, nh.vrf, nh.family == AF_BRIDGE))
    }

    /// `dst` is one of this host's fabric addresses (a receive route).
    #[inline]
    fn is_ours(&mut self, iv: &InVif, dst: &[u8; 4]) -> bool {
        self.rcache.known_ours(iv.vrf, dst) || self.is_ours_lookup(iv, dst)
    }

    #[inline(never)]
    fn is_ours_lookup(&mut self, iv: &InVif, dst: &[u8; 4]) -> bool {
        let ours = self
            .lookup4_cached(iv.vrf, dst)
            .and_then(|rt| self.nhs.get(rt.nh))
            .is_some_and(|nh| matches!(nh.kind, NhKind::Receive));
        if ours {
            self.rcache.note_ours(iv.vrf, dst);
        }
        ours
    }

    /// A frame the parser refused is an IPv4 packet (of some tunnel
    /// protocol) addressed to us: enough of its header is there to tell.
    fn broken_ipv4_for_us(&mut self, iv: &InVif, frame: &[u8]) -> bool {
        let Some((ETHERTYPE_IPV4, l3)) = check::l3_start(frame) else {
            return false;
        };
        let (Some(proto), Some(dst)) = (
            frame.get(l3 + 9).copied(),
            frame
                .get(l3 + 16..l3 + 20)
                .and_then(|d| <[u8; 4]>::try_from(d).ok()),
        ) else {
            return false;
        };
        matches!(proto, PROTO_GRE | PROTO_UDP) && self.is_ours(iv, &dst)
    }

    pub(super) fn pass_through(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
    ) -> Action {
        match iv.cross_connect {
            Some(x) => self.tx(cx, pkt, x),
            None => Action::PassThrough { pkt: cx.i },
        }
    }

    pub(super) fn mpls_in(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        off: usize,
    ) -> Action {
        let mut off = off;
        let Some(mut word) = rd32(pkt.data(), off) else {
            return self.drop(cx, DropReason::Pull);
        };
        // Upstream `vr_mpls_input`: an outer label 0xFFFFF that is not the
        // bottom of the stack means "no label"; the one under it counts.
        if word & MPLS_BOS == 0 && word >> 12 == MPLS_NO_LABEL {
            off += MPLS_LEN;
            let Some(w) = rd32(pkt.data(), off) else {
                return self.drop(cx, DropReason::Pull);
            };
            word = w;
        }
        let label = word >> 12;
        if label >= self.mpls.capacity() {
            return self.drop(cx, DropReason::InvalidLabel);
        }
        // The label's TTL goes down by one here, and must stay above 0.
        if word & 0xff <= 1 {
            return self.drop(cx, DropReason::TtlExceeded);
        }
        let Some(nh_id) = self.mpls.get(label) else {
            return self.drop(cx, DropReason::InvalidLabel);
        };
        let Some(nh) = self.nhs.get(nh_id) else {
            return self.drop(cx, DropReason::InvalidNh);
        };
        let inner = off + MPLS_LEN;
        if let Some(t) = cx.tun.as_mut() {
            t.label = label;
            t.inner = inner as u16;
        }
        if word & MPLS_BOS == 0 {
            // Another label follows, where upstream expects the packet:
            // not IP for an L3 label, not a frame worth forwarding for L2
            // (upstream would bridge the label bytes as Ethernet).
            return self.drop(
                cx,
                if nh.family == AF_BRIDGE {
                    DropReason::InvalidPacket
                } else {
                    DropReason::InvalidProtocol
                },
            );
        }
        if nh.family == AF_BRIDGE {
            self.decap_l2(iv, pkt, cx, inner, nh_id, nh.vrf)
        } else {
            self.decap_l3(iv, pkt, cx, inner, nh_id)
        }
    }

    pub(super) fn vxlan_in(
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
        if let Some(t) = cx.tun.as_mut() {
            t.label = vni;
            t.inner = (off + VXLAN_LEN) as u16;
        }
        self.decap_l2(iv, pkt, cx, off + VXLAN_LEN, nh_id, vrf)
    }

    /// The inner packet of a tunnel is an Ethernet frame: bridge it in
    /// `vrf` (through `nh` unless it is a VRF next hop, which means "look
    /// the inner destination MAC up").
    pub(super) fn decap_l2(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        inner: usize,
        nh_id: u32,
        vrf: u16,
    ) -> Action {
        let Some(frame) = pkt.data().get(inner..) else {
            return self.drop(cx, DropReason::Pull);
        };
        // Upstream `vr_pkt_type() < 0` after decapsulation.
        let mut info = PacketInfo::default();
        if info.parse_from(frame).is_err() {
            return self.drop(cx, DropReason::InvalidPacket);
        }
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
                // Routed across the overlay to our MAC: route the inner IP
                // (upstream `vr_forward`, which drops a dead TTL).
                if info.ttl == 0 && matches!(info.family, Family::Ipv4 | Family::Ipv6) {
                    return self.drop(cx, DropReason::TtlExceeded);
                }
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
        let flow =
            match self.fabric_flow(policy, vrf, &info, frame_of(pkt, inner), cx.take_fabric()) {
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
    pub(super) fn decap_l3(
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
        // Parsed in place: see `PacketInfo::parse_from`.
        let mut info = PacketInfo::default();
        if info.parse_l3_from(ip, ethertype).is_err() {
            return self.drop(cx, DropReason::InvalidPacket);
        }
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
        let flow =
            match self.fabric_flow(policy, vrf, &info, frame_of(pkt, inner), cx.take_fabric()) {
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
        info.l3_offset = ETH_LEN as u16;
        if info.l4_offset != 0 {
            info.l4_offset += ETH_LEN as u16;
        }
        self.to_vm_mss(pkt, &info, mss::OVERLAY_LEN);
        let a = self.finish_local(cx, pkt, &info, oif, flow, vrf, iv);
        if flow != u32::MAX && matches!(a, Action::Tx { .. }) {
            if let Some(t) = cx.tun {
                let d = crate::OffloadDecap {
                    kind: t.kind,
                    dst: t.dst,
                    label: t.label,
                    outer_len: t.inner,
                    l2: false,
                    eth: Some({
                        let mut e = encap;
                        e[12..14].copy_from_slice(&ethertype.to_be_bytes());
                        e
                    }),
                    ttl_dec: false,
                };
                self.note_offload_decap(&info, iv.idx, oif, flow, None, d);
            }
        }
        a
    }

    /// Upstream `vr_to_vm_mss_adj`: a SYN out of a tunnel gets the MSS that
    /// fits the overlay on its way back.
    fn to_vm_mss(&self, pkt: &mut Packet<'_>, info: &PacketInfo, overlay: usize) {
        if self.cfg.to_vm_mss_adj && info.proto == PROTO_TCP && info.tcp_flags & mss::TCP_SYN != 0 {
            self.adjust_mss(pkt, info, overlay);
        }
    }

    pub(super) fn out_vif_policy(&self, out: &Out) -> bool {
        let oif = match out {
            Out::Routed { oif, .. } | Out::Bridged { oif } => *oif,
            _ => return false,
        };
        self.vifs
            .get(oif)
            .is_some_and(|v| v.cfg.flags.contains(VifFlags::POLICY_ENABLED))
    }

    /// Flow check for a decapsulated packet; the key's next hop is the
    /// source's route next hop in the VRF, as upstream. `hint` is what the
    /// batch's prefetch computed for this packet (in the same VRF, the
    /// label's or VNI's next hop's, and no route changes within a batch).
    pub(super) fn fabric_flow(
        &mut self,
        policy: bool,
        vrf: u16,
        info: &PacketInfo,
        frame: &[u8],
        hint: Option<FabricHint>,
    ) -> Result<u32, Verdict> {
        if !policy || !matches!(info.family, Family::Ipv4 | Family::Ipv6) {
            return Ok(u32::MAX);
        }
        let (src_nh, pre) = match (hint, info.family) {
            (Some(h), Family::Ipv4) => (h.src_nh, KeyHint::Hash(h.hash)),
            (_, Family::Ipv4) => (
                self.lookup4_cached(vrf, &info.src_v4()).map_or(0, |r| r.nh),
                KeyHint::None,
            ),
            _ => (
                self.lookup_ip(vrf, info.family, &info.src)
                    .map_or(0, |r| r.nh),
                KeyHint::None,
            ),
        };
        match self.flow_verdict(vrf, info, frame, src_nh, pre) {
            Verdict::Forward {
                nat: None, flow, ..
            } => Ok(flow),
            // NAT toward a VM from the fabric is done by the sending side.
            Verdict::Forward { .. } => Err(Verdict::Drop(DropReason::FlowActionInvalid)),
            v => Err(v),
        }
    }

    pub(super) fn fabric_verdict(
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
    pub(super) fn deliver_decapped(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        out: Out,
        flow: u32,
    ) -> Action {
        self.to_vm_mss(pkt, info, mss::L2_OVERLAY_LEN);
        match out {
            Out::Bridged { oif } => {
                let a = self.finish_local(cx, pkt, info, oif, flow, vrf, iv);
                self.note_decap_l2(cx, info, iv, oif, flow, &a, None);
                a
            }
            Out::Routed { oif, encap } => {
                if let Some(h) = pkt.data_mut().get_mut(0..12) {
                    h.copy_from_slice(&encap[0..12]);
                }
                if decrement_ttl(pkt.data_mut(), info).is_none() {
                    return self.drop(cx, DropReason::InvalidPacket);
                }
                let a = self.finish_local(cx, pkt, info, oif, flow, vrf, iv);
                let mut macs = [0u8; 12];
                macs.copy_from_slice(&encap[0..12]);
                self.note_decap_l2(cx, info, iv, oif, flow, &a, Some(macs));
                a
            }
            Out::Flood { nh } => self.flood(iv, vrf, pkt, info, cx, nh, true),
            Out::Tunnel { .. } => self.drop(cx, DropReason::InvalidNh),
        }
    }
}

impl Router {
    /// Offload hint for a frame decapsulated with its Ethernet header
    /// (VXLAN, L2 MPLS) and delivered to a local vif.
    #[allow(clippy::too_many_arguments)]
    fn note_decap_l2(
        &mut self,
        cx: &Cx<'_>,
        info: &PacketInfo,
        iv: &InVif,
        oif: u16,
        flow: u32,
        a: &Action,
        macs: Option<[u8; 12]>,
    ) {
        let Some(t) = cx.tun else {
            return;
        };
        if flow == u32::MAX || !matches!(a, Action::Tx { .. }) {
            return;
        }
        let d = crate::OffloadDecap {
            kind: t.kind,
            dst: t.dst,
            label: t.label,
            outer_len: t.inner,
            l2: true,
            eth: None,
            ttl_dec: macs.is_some(),
        };
        self.note_offload_decap(info, iv.idx, oif, flow, macs, d);
    }
}

/// The Ethernet frame starting at `inner` (for flow-key ICMP parsing).
pub(super) fn frame_of<'p>(pkt: &'p Packet<'_>, inner: usize) -> &'p [u8] {
    pkt.data().get(inner..).unwrap_or(&[])
}
