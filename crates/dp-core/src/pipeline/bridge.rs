//! L2: bridge lookup.

use super::*;

impl Router {
    // ---- L2 bridging -----------------------------------------------------------

    pub(super) fn bridge(
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
                    inner_macs: None,
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
            match self.flow_verdict(vrf, info, pkt.data(), iv.nh_id, cx.take_key()) {
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
}
