//! The flow table's verdict: keys, holds, NAT.

use super::*;

impl Router {
    // ---- flows ---------------------------------------------------------------------

    /// The flow table's verdict for `frame` (its flow key's next hop
    /// `nh_id`, `pre` what the batch's phase 1 computed of the key).
    pub(super) fn flow_verdict(
        &mut self,
        vrf: u16,
        info: &PacketInfo,
        frame: &[u8],
        nh_id: u32,
        pre: KeyHint<'_>,
    ) -> Verdict {
        let mut scratch = Hashed::EMPTY;
        match self.flow_key(vrf, info, frame, nh_id, pre, &mut scratch) {
            Ok(key) => self.flow_check(key, info, frame.len(), vrf),
            Err(r) => Verdict::Drop(r),
        }
    }

    /// The flow key of a frame and its hash, with fragment and ICMP-error
    /// handling. `pre` is what the batch's prefetch computed for the plain
    /// case (with the same `nh_id`), used instead of hashing again; a key
    /// built here goes in `scratch`. By reference, not moved: a key is
    /// moved field by field, and the lookup reads it as words, loads that
    /// wait for the narrower stores (no store forwarding).
    fn flow_key<'k>(
        &mut self,
        vrf: u16,
        info: &PacketInfo,
        frame: &[u8],
        nh_id: u32,
        pre: KeyHint<'k>,
        scratch: &'k mut Hashed,
    ) -> Result<&'k Hashed, DropReason> {
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
                *scratch = Hashed::new(key);
                return Ok(scratch);
            }
            let Some(ports) = self.frags.lookup(&fk, self.now) else {
                return Err(DropReason::NoFragEntry);
            };
            if !info.frag.more {
                self.frags.remove(&fk);
            }
            *scratch = Hashed::new(make_key(info, nh_id, Some(ports)));
            return Ok(scratch);
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
            *scratch = Hashed::new(icmp_error_key(&inner, nh_id));
            return Ok(scratch);
        }
        Ok(match pre {
            KeyHint::Key(h) => h,
            // Phase 1 hashed an unfragmented IPv4 TCP or UDP packet's key
            // from its bytes; the walk's parse (above: an L4 header within
            // the IP length, not a fragment) confirms it is this one. The
            // key is written in place, as words (`FlowKey::set_v4`).
            KeyHint::Hash(hash)
                if info.family == Family::Ipv4 && matches!(info.proto, PROTO_TCP | PROTO_UDP) =>
            {
                let (src, dst) = (info.src_v4(), info.dst_v4());
                scratch
                    .key
                    .set_v4(info.proto, info.sport, info.dport, nh_id, src, dst);
                scratch.hash = hash;
                debug_assert_eq!(scratch.key, make_key(info, nh_id, None), "the walk's key");
                debug_assert_eq!(
                    hash,
                    FlowTable::hash(&scratch.key),
                    "phase 1 hashed another key"
                );
                scratch
            }
            _ => {
                *scratch = Hashed::new(make_key(info, nh_id, None));
                scratch
            }
        })
    }

    pub(super) fn flow_check(
        &mut self,
        h: &Hashed,
        info: &PacketInfo,
        len: usize,
        vrf: u16,
    ) -> Verdict {
        let key = &h.key;
        let idx = match self.flows.lookup_hashed(key, h.hash) {
            Some(i) => i,
            None => {
                if self.cfg.new_flow_policy == NewFlowPolicy::Drop {
                    return Verdict::Drop(DropReason::DropNewFlow);
                }
                let Ok((idx, _)) = self.flows.insert_hashed(key, h.hash) else {
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

    pub(super) fn hold(
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
    pub(super) fn nat(
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
}
