//! L3: route lookup and next-hop resolution.

use super::*;

impl Router {
    // ---- L3 routing ------------------------------------------------------------

    /// Route an IP packet (Ethernet-framed) received on a VM vif or injected
    /// by the agent, in `vrf`.
    pub(super) fn route(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        depth: usize,
    ) -> Action {
        // Upstream `vr_forward`: an IPv4 packet that arrives with TTL 0 was
        // already dead (TTL 1 is the agent's, for an ICMP time exceeded).
        if info.ttl == 0 {
            return self.drop(cx, DropReason::TtlExceeded);
        }
        let (out, out_policy) = match self.route_out(iv, vrf, pkt, info, cx, depth) {
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
        let policy = iv.flags.contains(VifFlags::POLICY_ENABLED) || out_policy;
        let verdict = if policy {
            self.flow_verdict(vrf, info, pkt.data(), iv.nh_id, cx.take_key())
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
    pub(super) fn route_in(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
    ) -> Action {
        match self.route_out(iv, vrf, pkt, info, cx, 1) {
            Ok((out, _)) => self.emit(iv, vrf, pkt, info, cx, out, u32::MAX),
            Err(a) => a,
        }
    }

    /// The output decision for `info.dst` in `vrf` and the output vif's
    /// policy flag: from the route cache, or the route lookup and next-hop
    /// walk (then cached when the answer depends on the destination only).
    /// Always inlined: returned through a call, the decision was copied
    /// with wide loads over narrow stores (a store-forwarding stall that
    /// was half of `route`'s samples).
    #[inline(always)]
    pub(super) fn route_out(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        depth: usize,
    ) -> Result<(Out, bool), Action> {
        let v4 = (info.family == Family::Ipv4).then(|| info.dst_v4());
        if let Some(dst) = &v4 {
            if let Some(hit) = self.rcache.out(vrf, dst) {
                return Ok(hit);
            }
        }
        let Some(rt) = self.lookup_ip(vrf, info.family, &info.dst) else {
            return Err(self.drop(cx, DropReason::NowhereToGo));
        };
        let mut plain = true;
        let out = self.resolve_l3_with(iv, vrf, pkt, info, cx, rt, depth, &mut plain)?;
        let out_policy = self.out_vif_policy(&out);
        if let (Some(dst), true) = (&v4, plain) {
            self.rcache.put_out(vrf, dst, out, out_policy);
        }
        Ok((out, out_policy))
    }

    /// [`RouteTables::lookup4`] through the route cache.
    #[inline]
    pub(super) fn lookup4_cached(&mut self, vrf: u16, addr: &[u8; 4]) -> Option<RouteData> {
        if let Some(rt) = self.rcache.route(vrf, addr) {
            return rt;
        }
        let rt = self.routes.lookup4(vrf, addr);
        self.rcache.put_route(vrf, addr, rt);
        rt
    }

    #[inline]
    pub(super) fn lookup_ip(&self, vrf: u16, family: Family, addr: &[u8; 16]) -> Option<RouteData> {
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
    pub(super) fn resolve_l3(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        rt: RouteData,
        depth: usize,
    ) -> Result<Out, Action> {
        let mut plain = true;
        self.resolve_l3_with(iv, vrf, pkt, info, cx, rt, depth, &mut plain)
    }

    /// [`Self::resolve_l3`], clearing `plain` when the walk went through a
    /// next hop whose choice depends on more than the destination (ECMP,
    /// VRF translation): such an answer must not be cached.
    #[allow(clippy::too_many_arguments, clippy::result_large_err)]
    pub(super) fn resolve_l3_with(
        &mut self,
        iv: &InVif,
        vrf: u16,
        pkt: &mut Packet<'_>,
        info: &PacketInfo,
        cx: &mut Cx<'_>,
        rt: RouteData,
        depth: usize,
        plain: &mut bool,
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
                    let Some(label) = label else {
                        return Err(self.drop(cx, DropReason::InvalidLabel));
                    };
                    // VXLAN carries Ethernet frames. Routed into it, the
                    // frame keeps its Ethernet header (upstream
                    // `nh_vxlan_tunnel` after `vr_preset`), rewritten to
                    // the remote router's MAC from our fabric MAC when the
                    // next hop says so (NH_FLAG_L3_VXLAN, EVPN type 5).
                    let vxlan = *kind == TunnelKind::Vxlan;
                    let mut inner_macs = None;
                    if vxlan && nh.flags.contains(NhFlags::L3_VXLAN) {
                        let Some(dmac) = self.nhs.l3_mac(nh_id) else {
                            return Err(self.drop(cx, DropReason::InvalidNh));
                        };
                        let smac = self.vifs.get(*oif).map_or([0; 6], |v| v.cfg.mac);
                        if smac == [0; 6] {
                            return Err(self.drop(cx, DropReason::InterfaceDrop));
                        }
                        inner_macs = Some((dmac, smac));
                    }
                    return Ok(Out::Tunnel {
                        oif: *oif,
                        kind: *kind,
                        sip: *sip,
                        dip: *dip,
                        encap: *encap,
                        label,
                        l2: vxlan,
                        ttl_dec: true,
                        inner_macs,
                    });
                }
                NhKind::Composite { components } => {
                    if components.is_empty() {
                        return Err(self.drop(cx, DropReason::InvalidNh));
                    }
                    *plain = false;
                    let pick = ecmp_hash(info) as usize % components.len();
                    let Some(c) = components.get(pick).copied() else {
                        return Err(self.drop(cx, DropReason::InvalidNh));
                    };
                    nh_id = c.nh;
                    label = Some(c.label);
                }
                NhKind::VrfTranslate { vrf: v } => {
                    let v = *v;
                    *plain = false;
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
}
