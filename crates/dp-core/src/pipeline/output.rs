//! Output: L2 rewrites, the MTU check, encapsulation, floods, ICMP
//! too-big traps and fragmentation.

use super::*;

impl Router {
    // ---- output --------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
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
                let a = self.finish_local(cx, pkt, info, oif, flow, vrf, iv);
                if self.hints.enabled && flow != u32::MAX && matches!(a, Action::Tx { .. }) {
                    let mut macs = [0u8; 12];
                    macs.copy_from_slice(&encap[0..12]);
                    self.note_offload(info, iv.idx, oif, flow, Some(macs));
                }
                a
            }
            Out::Bridged { oif } => {
                if oif == iv.idx && matches!(iv.vif_type, VifType::Virtual | VifType::VirtualVlan) {
                    // Never hairpin a bridged frame back to its sender.
                    return self.drop(cx, DropReason::InvalidSource);
                }
                let a = self.finish_local(cx, pkt, info, oif, flow, vrf, iv);
                if self.hints.enabled && flow != u32::MAX && matches!(a, Action::Tx { .. }) {
                    self.note_offload(info, iv.idx, oif, flow, None);
                }
                a
            }
            Out::Tunnel { .. } => self.encap(iv, vrf, pkt, info, cx, out, flow),
            Out::Flood { nh } => self.flood(iv, vrf, pkt, info, cx, nh, false),
        }
    }

    /// Transmit on a local vif after the MTU check.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_local(
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
        // MTU 0: not known yet (the host fills it from the interface).
        if matches!(info.family, Family::Ipv4 | Family::Ipv6) && ip_len > mtu && mtu != 0 {
            return self.too_big(iv, vrf, pkt, info, cx, mtu, flow, Out::Bridged { oif });
        }
        self.tx(cx, pkt, oif)
    }

    /// Push the overlay headers and send out of the fabric.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn encap(
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
            inner_macs,
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
        if inner_len + overhead > mtu
            && mtu != 0
            && matches!(info.family, Family::Ipv4 | Family::Ipv6)
        {
            let room = mtu.saturating_sub(overhead + if l2 { info.l3_offset as usize } else { 0 });
            return self.too_big(iv, vrf, pkt, info, cx, room, flow, out);
        }
        if ttl_dec && decrement_ttl(pkt.data_mut(), info).is_none() {
            return self.drop(cx, DropReason::InvalidPacket);
        }
        if let Some((dmac, smac)) = inner_macs {
            if set_macs(pkt.data_mut(), &dmac, &smac).is_none() {
                return self.drop(cx, DropReason::RewriteFail);
            }
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
        let a = self.tx(cx, pkt, oif);
        if self.hints.enabled && flow != u32::MAX && matches!(a, Action::Tx { .. }) {
            // The same headers for an empty payload and identification 0:
            // the fast path fills in lengths, identification and checksum.
            let len = ETH_LEN + overhead;
            let mut t = crate::OffloadTunnel {
                kind,
                hdr: [0; 50],
                len: len as u8,
                l2,
                ttl_dec,
            };
            let ok = t
                .hdr
                .get_mut(..len)
                .and_then(|h| write_tunnel(h, kind, &sip, &dip, &encap, label, 0, entropy, 0));
            if ok.is_some() {
                let macs = inner_macs.map(|(d, s)| {
                    let mut m = [0u8; 12];
                    m[..6].copy_from_slice(&d);
                    m[6..].copy_from_slice(&s);
                    m
                });
                self.note_offload_encap(info, iv.idx, oif, flow, macs, t);
            }
        }
        a
    }

    pub(super) fn next_ip_id(&mut self) -> u16 {
        let id = self.ip_id;
        self.ip_id = self.ip_id.wrapping_add(1);
        id
    }

    /// Multi-destination: a copy to every component except the sender.
    /// From the fabric (`from_fabric`), only local components get a copy:
    /// the sender already replicated to the other hosts.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn flood(
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
            if vlan::copy_out(&self.vifs, cx, pkt.data(), vif, &prepend, 0, len as u16) {
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
    pub(super) fn too_big(
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
    pub(super) fn fragment(
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
        if let Out::Tunnel {
            ttl_dec,
            inner_macs,
            ..
        } = target
        {
            if ttl_dec && decrement_ttl(hdr, info).is_none() {
                return self.drop(cx, DropReason::FragErr);
            }
            if let Some((dmac, smac)) = inner_macs {
                if set_macs(hdr, &dmac, &smac).is_none() {
                    return self.drop(cx, DropReason::FragErr);
                }
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
            if !vlan::copy_out(
                &self.vifs,
                cx,
                pkt.data(),
                vif,
                &p,
                off as u16,
                (off + chunk) as u16,
            ) {
                return self.drop(cx, DropReason::FragmentQueueFail);
            }
            self.count_tx(vif, p.as_slice().len() + chunk);
            off += chunk;
        }
        Action::Consumed { pkt: cx.i }
    }
}
