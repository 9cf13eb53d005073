//! From the agent (pkt0): packets it sends out.

use super::*;

impl Router {
    // ---- from the agent ------------------------------------------------------------

    pub(super) fn rx_agent(&mut self, iv: &InVif, pkt: &mut Packet<'_>, cx: &mut Cx<'_>) -> Action {
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
                        l2,
                        inner_macs,
                        ..
                    }) => {
                        let out = Out::Tunnel {
                            oif,
                            kind,
                            sip,
                            dip,
                            encap,
                            label,
                            l2,
                            ttl_dec: false,
                            inner_macs,
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
}
