//! `PacketInfo::parse` against the generator's ground truth and, independently,
//! against the `etherparse` crate on the same generated frames.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::gen::{spec_strategy, Ext, L4Kind, Spec, L3};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use packet::parse::{Family, PacketInfo};
use proptest::prelude::*;

fn pad16(a: &[u8]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..a.len()].copy_from_slice(a);
    o
}

/// Mine against the spec the frame was built from.
fn check_spec(spec: &Spec, frame: &[u8], i: &PacketInfo) -> Result<(), TestCaseError> {
    prop_assert_eq!(i.dst_mac, spec.dst_mac);
    prop_assert_eq!(i.src_mac, spec.src_mac);
    prop_assert_eq!(i.vlan, spec.vlans.first().map(|v| v.1 & 0xfff));
    prop_assert_eq!(i.ethertype, spec.ethertype());
    prop_assert_eq!(usize::from(i.l3_offset), spec.l3_offset());
    let l4 = match &spec.l3 {
        L3::Arp { op, spa, tpa } => {
            prop_assert_eq!(i.family, Family::Arp);
            prop_assert_eq!(i.src, pad16(spa));
            prop_assert_eq!(i.dst, pad16(tpa));
            prop_assert_eq!(u16::from(i.icmp_type), *op);
            return Ok(());
        }
        L3::Other { .. } => {
            prop_assert_eq!(i.family, Family::None);
            prop_assert_eq!(i.l4_offset, 0);
            return Ok(());
        }
        L3::V4 {
            src,
            dst,
            ttl,
            id,
            df,
            mf,
            frag_off,
            l4,
            ..
        } => {
            prop_assert_eq!(i.family, Family::Ipv4);
            prop_assert_eq!(i.src, pad16(src));
            prop_assert_eq!(i.dst, pad16(dst));
            prop_assert_eq!(i.ttl, *ttl);
            prop_assert_eq!(i.frag.id, u32::from(*id));
            prop_assert_eq!(i.frag.df, *df);
            prop_assert_eq!(i.frag.more, *mf);
            prop_assert_eq!(i.frag.offset, frag_off * 8);
            prop_assert_eq!(i.frag.is_fragment, *mf || *frag_off != 0);
            l4
        }
        L3::V6 {
            src,
            dst,
            hop,
            exts,
            l4,
        } => {
            prop_assert_eq!(i.family, Family::Ipv6);
            prop_assert_eq!(i.src, *src);
            prop_assert_eq!(i.dst, *dst);
            prop_assert_eq!(i.ttl, *hop);
            prop_assert!(!i.frag.df);
            match exts.iter().find_map(|e| match e {
                Ext::Frag { id, off, more } => Some((*id, *off, *more)),
                _ => None,
            }) {
                Some((id, off, more)) => {
                    prop_assert_eq!(i.frag.id, id);
                    prop_assert_eq!(i.frag.offset, off * 8);
                    prop_assert_eq!(i.frag.more, more);
                    prop_assert_eq!(i.frag.is_fragment, more || off != 0);
                }
                None => prop_assert_eq!(i.frag, Default::default()),
            }
            l4
        }
    };
    prop_assert_eq!(i.proto, spec.proto());
    let l3_end = frame.len() - spec.padding;
    prop_assert_eq!(usize::from(i.l3_offset) + usize::from(i.l3_len), l3_end);
    if !spec.has_l4() {
        if matches!(l4.kind, L4Kind::Other(_)) && i.frag.offset == 0 {
            // Unknown protocols have no header to be cut.
            prop_assert!(i.l4_offset != 0);
        } else {
            prop_assert_eq!(i.l4_offset, 0);
        }
        prop_assert_eq!((i.sport, i.dport, i.tcp_flags), (0, 0, 0));
        return Ok(());
    }
    let hdr = l4.kind.header_len() + l4.payload;
    prop_assert_eq!(usize::from(i.l4_offset), l3_end - hdr);
    match l4.kind {
        L4Kind::Udp { sport, dport } => prop_assert_eq!((i.sport, i.dport), (sport, dport)),
        L4Kind::Tcp {
            sport,
            dport,
            flags,
        } => prop_assert_eq!((i.sport, i.dport, i.tcp_flags), (sport, dport, flags)),
        L4Kind::Icmp { ty, code, ident } => {
            prop_assert_eq!((i.icmp_type, i.icmp_code, i.dport), (ty, code, 0));
            let echo = matches!(ty, 0 | 8 | 128 | 129);
            prop_assert_eq!(i.sport, if echo { ident } else { 0 });
        }
        L4Kind::Other(_) => prop_assert_eq!((i.sport, i.dport), (0, 0)),
    }
    Ok(())
}

/// Mine against etherparse, wherever etherparse accepts the frame.
fn check_etherparse(frame: &[u8], i: &PacketInfo) -> Result<(), TestCaseError> {
    let Ok(e) = SlicedPacket::from_ethernet(frame) else {
        return Ok(());
    };
    if e.link_exts
        .iter()
        .any(|x| matches!(x, etherparse::LinkExtSlice::Macsec(_)))
    {
        // MACsec is not ours to parse.
        return Ok(());
    }
    let vids = e.vlan_ids();
    prop_assert_eq!(i.vlan, vids.first().map(|v| v.value()));
    let Some(net) = &e.net else {
        prop_assert_eq!(i.family, Family::None);
        return Ok(());
    };
    match net {
        NetSlice::Arp(a) => {
            prop_assert_eq!(i.family, Family::Arp);
            prop_assert_eq!(&i.src[..4], a.sender_protocol_addr());
            prop_assert_eq!(&i.dst[..4], a.target_protocol_addr());
            return Ok(());
        }
        NetSlice::Ipv4(v) => {
            let h = v.header();
            prop_assert_eq!(i.family, Family::Ipv4);
            prop_assert_eq!(i.src, pad16(&h.source()));
            prop_assert_eq!(i.dst, pad16(&h.destination()));
            prop_assert_eq!(i.ttl, h.ttl());
            prop_assert_eq!(i.l3_len, h.total_len());
            prop_assert_eq!(i.frag.id, u32::from(h.identification()));
            prop_assert_eq!(i.frag.df, h.dont_fragment());
            prop_assert_eq!(i.frag.more, h.more_fragments());
            prop_assert_eq!(i.frag.offset, h.fragments_offset().value() * 8);
        }
        NetSlice::Ipv6(v) => {
            let h = v.header();
            prop_assert_eq!(i.family, Family::Ipv6);
            prop_assert_eq!(i.src, h.source());
            prop_assert_eq!(i.dst, h.destination());
            prop_assert_eq!(i.ttl, h.hop_limit());
            if h.payload_length() == 0 {
                // Deliberate difference: etherparse reads a zero payload
                // length as a jumbogram (payload = rest of the slice) even
                // without RFC 2675's Jumbo Payload option; we treat it as an
                // empty payload, so there are no L4 fields to compare.
                prop_assert_eq!(i.l3_len, 40);
                return Ok(());
            }
            prop_assert_eq!(usize::from(i.l3_len), 40 + usize::from(h.payload_length()));
            let frag = v.extensions().clone().into_iter().find_map(|x| match x {
                etherparse::Ipv6ExtensionSlice::Fragment(f) => Some(f),
                _ => None,
            });
            if let Some(f) = frag {
                prop_assert_eq!(i.frag.id, f.identification());
                prop_assert_eq!(i.frag.more, f.more_fragments());
                prop_assert_eq!(i.frag.offset, f.fragment_offset().value() * 8);
            } else {
                prop_assert_eq!(i.frag, Default::default());
            }
        }
    }
    let p = e.ip_payload().expect("IP has a payload");
    // By design we stop at the first header of a non-first fragment (its
    // payload is not a header); etherparse goes on decoding AH / IPv6
    // extension headers there.
    let walked_on = i.frag.offset != 0 && matches!(i.proto, 0 | 43 | 44 | 51 | 60);
    if walked_on {
        return Ok(());
    }
    prop_assert_eq!(i.proto, p.ip_number.0);
    prop_assert_eq!(i.frag.is_fragment, p.fragmented);
    if !p.fragmented && i.l4_offset != 0 {
        let off = p.payload.as_ptr() as usize - frame.as_ptr() as usize;
        prop_assert_eq!(usize::from(i.l4_offset), off);
    }
    match &e.transport {
        Some(TransportSlice::Udp(u)) => {
            prop_assert_eq!((i.sport, i.dport), (u.source_port(), u.destination_port()));
        }
        Some(TransportSlice::Tcp(t)) => {
            prop_assert_eq!((i.sport, i.dport), (t.source_port(), t.destination_port()));
            let flags = [
                t.fin(),
                t.syn(),
                t.rst(),
                t.psh(),
                t.ack(),
                t.urg(),
                t.ece(),
                t.cwr(),
            ]
            .iter()
            .enumerate()
            .fold(0u8, |acc, (k, b)| acc | (u8::from(*b) << k));
            prop_assert_eq!(i.tcp_flags, flags);
        }
        Some(TransportSlice::Icmpv4(c)) => {
            prop_assert_eq!((i.icmp_type, i.icmp_code), (c.type_u8(), c.code_u8()));
            if let etherparse::Icmpv4Type::EchoRequest(h) | etherparse::Icmpv4Type::EchoReply(h) =
                c.icmp_type()
            {
                prop_assert_eq!(i.sport, h.id);
            }
        }
        Some(TransportSlice::Icmpv6(c)) => {
            prop_assert_eq!((i.icmp_type, i.icmp_code), (c.type_u8(), c.code_u8()));
            if let etherparse::Icmpv6Type::EchoRequest(h) | etherparse::Icmpv6Type::EchoReply(h) =
                c.icmp_type()
            {
                prop_assert_eq!(i.sport, h.id);
            }
        }
        Some(_) => {}
        None => {
            if p.fragmented && i.frag.offset != 0 {
                prop_assert_eq!((i.sport, i.dport, i.l4_offset), (0, 0, 0));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_frames(spec in spec_strategy()) {
        let frame = spec.build();
        let info = PacketInfo::parse(&frame);
        prop_assert!(info.is_ok(), "{:?} on {:02x?}", info, frame);
        let info = info.unwrap();
        check_spec(&spec, &frame, &info)?;
        check_etherparse(&frame, &info)?;
        // parse_l3 agrees with parse on the L3 part.
        if matches!(info.family, Family::Ipv4 | Family::Ipv6 | Family::Arp) {
            let l3 = &frame[usize::from(info.l3_offset)..];
            let j = PacketInfo::parse_l3(l3, info.ethertype).unwrap();
            prop_assert_eq!((j.src, j.dst, j.proto, j.frag), (info.src, info.dst, info.proto, info.frag));
            prop_assert_eq!((j.sport, j.dport, j.l3_len), (info.sport, info.dport, info.l3_len));
            let shift = if j.l4_offset == 0 { 0 } else { info.l3_offset };
            prop_assert_eq!(j.l4_offset + shift, info.l4_offset);
        }
    }

    /// Truncating a valid frame anywhere never panics, and whenever
    /// etherparse rejects only the L4 part we still accept L3.
    #[test]
    fn truncated_frames(spec in spec_strategy(), cut in any::<prop::sample::Index>()) {
        let frame = spec.build();
        let n = cut.index(frame.len() + 1);
        let short = &frame[..n];
        if let Ok(i) = PacketInfo::parse(short) {
            // Whatever was accepted lies within the buffer.
            prop_assert!(usize::from(i.l3_offset) <= n);
            if i.family == Family::Ipv4 || i.family == Family::Ipv6 {
                prop_assert!(usize::from(i.l3_offset) + usize::from(i.l3_len) <= n);
            }
            check_etherparse(short, &i)?;
        } else if SlicedPacket::from_ethernet(short).is_ok() {
            // We reject only what etherparse also rejects, except the
            // cases where we are stricter by design: none for these frames.
            prop_assert!(false, "etherparse accepted a frame we rejected: {:02x?}", short);
        }
    }

}

proptest! {
    // Random seeds: the one rare disagreement with etherparse (a mangled
    // IPv6 chain with two Fragment headers, where we took the last one's
    // fields and etherparse the first's) is decided in the parser (the
    // first is the packet's, as upstream; `frames.rs`
    // ipv6_second_fragment_header); 5 million random cases agreed after.
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Flipping bytes of a valid frame never panics and keeps the results in
    /// bounds.
    #[test]
    fn mutated_frames(
        spec in spec_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut frame = spec.build();
        for (at, v) in flips {
            let k = at.index(frame.len());
            frame[k] = v;
        }
        if let Ok(i) = PacketInfo::parse(&frame) {
            prop_assert!(usize::from(i.l4_offset) <= frame.len());
            let _ = i.l4(&frame);
            check_etherparse(&frame, &i)?;
        }
    }
}
