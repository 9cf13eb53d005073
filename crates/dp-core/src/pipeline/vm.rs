//! From a container or VM: ARP, DHCP and neighbour discovery traps, then
//! routing or bridging.

use super::*;

impl Router {
    // ---- from a container / VM -------------------------------------------

    pub(super) fn rx_vm(
        &mut self,
        iv: &InVif,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
        info: Result<&PacketInfo, packet::ParseError>,
    ) -> Action {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                let r = check::parse_drop(e);
                return if r == DropReason::InterfaceDrop {
                    self.drop_input(cx, iv.idx, r)
                } else {
                    self.drop(cx, r)
                };
            }
        };
        match info.family {
            Family::Arp => self.vm_arp(iv, pkt, info, cx),
            Family::Ipv4 | Family::Ipv6 => {
                // Drop Ethernet padding so lengths below are the IP lengths.
                pkt.truncate(info.l3_offset as usize + info.l3_len as usize);
                if let Err(r) = check::check_ip(pkt.data(), info, pkt.is_csum_partial()) {
                    return self.drop(cx, r);
                }
                self.vm_ip(iv, pkt, info, cx)
            }
            Family::None => self.bridge(iv, iv.vrf, pkt, info, cx, 0),
        }
    }

    pub(super) fn vm_arp(
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

    pub(super) fn vm_ip(
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
        let routed = info.dst_mac == iv.mac && iv.flags.contains(VifFlags::L3_ENABLED);
        if info.proto == PROTO_TCP && info.tcp_flags & mss::TCP_SYN != 0 && self.cfg.from_vm_mss_adj
        {
            // Upstream `vr_pkt_from_vm_tcp_mss_adj`: room for the overlay
            // whatever the destination turns out to be.
            let overlay = if routed {
                mss::OVERLAY_LEN
            } else {
                mss::L2_OVERLAY_LEN
            };
            self.adjust_mss(pkt, info, overlay);
        }
        if routed {
            self.route(iv, iv.vrf, pkt, info, cx, 0)
        } else {
            self.bridge(iv, iv.vrf, pkt, info, cx, 0)
        }
    }

    /// Answer a neighbour solicitation for an address whose route has the
    /// proxy flag (IPv6's proxy ARP).
    pub(super) fn vm_neighbor_solicit(
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
}
