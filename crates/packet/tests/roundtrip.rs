//! Frames emitted by smoltcp's `Repr`s (and this crate's emitters) parse back
//! to the same fields.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use packet::gre::{self, GrePacket, GreRepr};
use packet::mpls::{MplsLabel, MplsRepr, MplsStack};
use packet::parse::{Family, PacketInfo};
use packet::vlan::{self, VlanTag};
use packet::vxlan::{self, VxlanPacket};
use packet::wire::*;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Udp(u16, u16),
    Tcp(u16, u16, bool, bool),
    Echo(u16, u16, bool),
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>()).prop_map(|(s, d)| L4::Udp(s, d)),
        (any::<u16>(), any::<u16>(), any::<bool>(), any::<bool>())
            .prop_map(|(s, d, syn, fin)| L4::Tcp(s, d, syn, fin)),
        (any::<u16>(), any::<u16>(), any::<bool>()).prop_map(|(i, s, r)| L4::Echo(i, s, r)),
    ]
}

/// Emits `l4` with `payload` for the given addresses; returns (proto, bytes).
fn emit_l4(l4: L4, src: IpAddress, dst: IpAddress, payload: &[u8]) -> (IpProtocol, Vec<u8>) {
    match l4 {
        L4::Udp(s, d) => {
            let r = UdpRepr {
                src_port: s,
                dst_port: d,
            };
            let mut b = vec![0u8; r.header_len() + payload.len()];
            r.emit(
                &mut UdpPacket::new_unchecked(&mut b[..]),
                &src,
                &dst,
                payload.len(),
                |p| p.copy_from_slice(payload),
                &caps(),
            );
            (IpProtocol::Udp, b)
        }
        L4::Tcp(s, d, syn, fin) => {
            let control = match (syn, fin) {
                (true, _) => smoltcp::wire::TcpControl::Syn,
                (false, true) => smoltcp::wire::TcpControl::Fin,
                _ => smoltcp::wire::TcpControl::None,
            };
            let r = TcpRepr {
                src_port: s,
                dst_port: d,
                control,
                seq_number: smoltcp::wire::TcpSeqNumber(1),
                ack_number: None,
                window_len: 100,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None, None, None],
                timestamp: None,
                payload,
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(
                &mut TcpPacket::new_unchecked(&mut b[..]),
                &src,
                &dst,
                &caps(),
            );
            (IpProtocol::Tcp, b)
        }
        L4::Echo(ident, seq_no, reply) => match (src, dst) {
            (IpAddress::Ipv4(_), _) => {
                let r = if reply {
                    Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data: payload,
                    }
                } else {
                    Icmpv4Repr::EchoRequest {
                        ident,
                        seq_no,
                        data: payload,
                    }
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]), &caps());
                (IpProtocol::Icmp, b)
            }
            (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
                let r = if reply {
                    Icmpv6Repr::EchoReply {
                        ident,
                        seq_no,
                        data: payload,
                    }
                } else {
                    Icmpv6Repr::EchoRequest {
                        ident,
                        seq_no,
                        data: payload,
                    }
                };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(
                    &s,
                    &d,
                    &mut Icmpv6Packet::new_unchecked(&mut b[..]),
                    &caps(),
                );
                (IpProtocol::Icmpv6, b)
            }
            _ => unreachable!(),
        },
    }
}

fn check_l4(i: &PacketInfo, l4: L4) -> Result<(), TestCaseError> {
    match l4 {
        L4::Udp(s, d) => prop_assert_eq!((i.sport, i.dport), (s, d)),
        L4::Tcp(s, d, syn, fin) => {
            prop_assert_eq!((i.sport, i.dport), (s, d));
            prop_assert_eq!(i.tcp_flags & 0x02 != 0, syn);
            prop_assert_eq!(i.tcp_flags & 0x01 != 0, fin && !syn);
        }
        L4::Echo(ident, _, reply) => {
            prop_assert_eq!((i.sport, i.dport, i.icmp_code), (ident, 0, 0));
            let ty = match (i.family, reply) {
                (Family::Ipv4, false) => 8,
                (Family::Ipv4, true) => 0,
                (_, false) => 128,
                (_, true) => 129,
            };
            prop_assert_eq!(i.icmp_type, ty);
        }
    }
    Ok(())
}

fn ethernet(
    src: [u8; 6],
    dst: [u8; 6],
    et: EthernetProtocol,
    vid: Option<u16>,
    l3: &[u8],
) -> Vec<u8> {
    let r = EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype: et,
    };
    let mut f = vec![0u8; 4 + r.buffer_len() + l3.len()];
    r.emit(&mut EthernetFrame::new_unchecked(&mut f[4..]));
    f[4 + 14..].copy_from_slice(l3);
    let len = f.len() - 4;
    match vid {
        Some(v) => {
            let s = vlan::push_tag(&mut f, 4, len, vlan::tci(3, false, v)).unwrap();
            assert_eq!(s, 0);
            f
        }
        None => f.split_off(4),
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn ipv4(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
        smac in any::<[u8; 6]>(), dmac in any::<[u8; 6]>(),
        vid in prop::option::of(0u16..4096),
        l4 in l4(), payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let (s, d) = (Ipv4Address::from(src), Ipv4Address::from(dst));
        let (proto, l4b) = emit_l4(l4, s.into(), d.into(), &payload);
        let r = Ipv4Repr { src_addr: s, dst_addr: d, next_header: proto, payload_len: l4b.len(), hop_limit: ttl };
        let mut ip = vec![0u8; r.buffer_len() + l4b.len()];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]), &caps());
        ip[20..].copy_from_slice(&l4b);
        let f = ethernet(smac, dmac, EthernetProtocol::Ipv4, vid, &ip);

        let i = PacketInfo::parse(&f).unwrap();
        prop_assert_eq!((i.src_mac, i.dst_mac, i.vlan), (smac, dmac, vid));
        prop_assert_eq!(i.family, Family::Ipv4);
        prop_assert_eq!((i.src_v4(), i.dst_v4(), i.ttl), (src, dst, ttl));
        prop_assert_eq!(i.proto, u8::from(proto));
        prop_assert_eq!(usize::from(i.l3_len), ip.len());
        prop_assert_eq!(usize::from(i.l4_offset), f.len() - l4b.len());
        prop_assert!(!i.frag.is_fragment);
        check_l4(&i, l4)?;
        // And smoltcp reads back what our checksum helpers see as valid.
        prop_assert!(packet::checksum::verify(&ip[..20]));
    }

    #[test]
    fn ipv6(
        src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), hop in any::<u8>(),
        vid in prop::option::of(0u16..4096),
        l4 in l4(), payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let (s, d) = (Ipv6Address::from(src), Ipv6Address::from(dst));
        let (proto, l4b) = emit_l4(l4, s.into(), d.into(), &payload);
        let r = Ipv6Repr { src_addr: s, dst_addr: d, next_header: proto, payload_len: l4b.len(), hop_limit: hop };
        let mut ip = vec![0u8; r.buffer_len() + l4b.len()];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut ip[..]));
        ip[40..].copy_from_slice(&l4b);
        let f = ethernet([2; 6], [4; 6], EthernetProtocol::Ipv6, vid, &ip);

        let i = PacketInfo::parse(&f).unwrap();
        prop_assert_eq!(i.vlan, vid);
        prop_assert_eq!(i.family, Family::Ipv6);
        prop_assert_eq!((i.src, i.dst, i.ttl), (src, dst, hop));
        prop_assert_eq!(i.proto, u8::from(proto));
        prop_assert_eq!(usize::from(i.l3_len), ip.len());
        prop_assert_eq!(usize::from(i.l4_offset), f.len() - l4b.len());
        check_l4(&i, l4)?;
        if let L4::Udp(..) = l4 {
            let l4s = i.l4(&f);
            prop_assert_eq!(packet::checksum::l4_checksum_v6(&src, &dst, 17, l4s), 0);
        }
    }

    #[test]
    fn arp(sha in any::<[u8; 6]>(), spa in any::<[u8; 4]>(), tpa in any::<[u8; 4]>(), reply in any::<bool>()) {
        let r = ArpRepr::EthernetIpv4 {
            operation: if reply { ArpOperation::Reply } else { ArpOperation::Request },
            source_hardware_addr: EthernetAddress(sha),
            source_protocol_addr: spa.into(),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: tpa.into(),
        };
        let mut a = vec![0u8; r.buffer_len()];
        r.emit(&mut ArpPacket::new_unchecked(&mut a[..]));
        let f = ethernet(sha, [0xff; 6], EthernetProtocol::Arp, None, &a);
        let i = PacketInfo::parse(&f).unwrap();
        prop_assert_eq!(i.family, Family::Arp);
        prop_assert_eq!((i.src_v4(), i.dst_v4()), (spa, tpa));
        prop_assert_eq!(i.icmp_type, if reply { 2 } else { 1 });
    }

    /// MPLSoUDP / MPLSoGRE / VXLAN encapsulation built with this crate's
    /// emitters and smoltcp, decapsulated with the views.
    #[test]
    fn encapsulations(
        label in 0u32..=0xfffff, tc in 0u8..8, mttl in any::<u8>(), vni in 0u32..=0xffffff,
        key in prop::option::of(any::<u32>()), inner_dst in any::<[u8; 4]>(),
    ) {
        // Inner IPv4/UDP.
        let (s, d) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::from(inner_dst));
        let (_, udp) = emit_l4(L4::Udp(1, 2), s.into(), d.into(), b"data");
        let r = Ipv4Repr { src_addr: s, dst_addr: d, next_header: IpProtocol::Udp, payload_len: udp.len(), hop_limit: 5 };
        let mut inner = vec![0u8; 20 + udp.len()];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut inner[..]), &caps());
        inner[20..].copy_from_slice(&udp);

        // MPLS label + inner, inside UDP 6635.
        let mut m = vec![0u8; 4];
        MplsRepr { label, tc, bos: true, ttl: mttl }.emit(&mut m).unwrap();
        m.extend_from_slice(&inner);
        let (_, outer_udp) = emit_l4(
            L4::Udp(50000, packet::UDP_PORT_MPLS),
            Ipv4Address::new(198, 18, 0, 1).into(),
            Ipv4Address::new(198, 18, 0, 2).into(),
            &m,
        );
        let i = PacketInfo::parse_l3(&{
            let r = Ipv4Repr {
                src_addr: Ipv4Address::new(198, 18, 0, 1),
                dst_addr: Ipv4Address::new(198, 18, 0, 2),
                next_header: IpProtocol::Udp, payload_len: outer_udp.len(), hop_limit: 64,
            };
            let mut o = vec![0u8; 20 + outer_udp.len()];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut o[..]), &caps());
            o[20..].copy_from_slice(&outer_udp);
            o
        }, packet::ETHERTYPE_IPV4).unwrap();
        prop_assert_eq!(i.dport, packet::UDP_PORT_MPLS);
        let mut st = MplsStack::new(&outer_udp[8..]);
        let top = st.next().unwrap();
        prop_assert_eq!(MplsRepr::parse(&top).unwrap(), MplsRepr { label, tc, bos: true, ttl: mttl });
        let ii = PacketInfo::parse_l3(&outer_udp[8 + st.payload_offset().unwrap()..], 0x0800).unwrap();
        prop_assert_eq!(ii.dst_v4(), inner_dst);

        // MPLSoGRE, plain and with a key.
        let mut g = vec![0u8; 8 + m.len()];
        let n = match key {
            None => gre::emit_mpls(&mut g).unwrap(),
            Some(k) => GreRepr { protocol: packet::ETHERTYPE_MPLS, checksum: false, key: Some(k), sequence: None }
                .emit(&mut g).unwrap(),
        };
        g.truncate(n);
        g.extend_from_slice(&m);
        let gp = GrePacket::new_checked(&g[..]).unwrap();
        prop_assert_eq!((gp.protocol(), gp.key()), (packet::ETHERTYPE_MPLS, key));
        let l = MplsLabel::new_checked(gp.payload()).unwrap();
        prop_assert_eq!(l.label(), label);

        // VXLAN around an Ethernet frame of the inner packet.
        let eth = ethernet([2; 6], [4; 6], EthernetProtocol::Ipv4, None, &inner);
        let mut v = vec![0u8; 8];
        vxlan::emit(&mut v, vni).unwrap();
        v.extend_from_slice(&eth);
        let vp = VxlanPacket::new_checked(&v[..]).unwrap();
        prop_assert!(vp.vni_valid());
        prop_assert_eq!(vp.vni(), vni);
        let ii = PacketInfo::parse(vp.payload()).unwrap();
        prop_assert_eq!((ii.dst_v4(), ii.sport, ii.dport), (inner_dst, 1, 2));
    }

    /// VLAN push then pop restores the frame; the tag reads back.
    #[test]
    fn vlan_push_pop(frame in prop::collection::vec(any::<u8>(), 14..80), pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4096) {
        let mut buf = vec![0u8; 4];
        buf.extend_from_slice(&frame);
        let s = vlan::push_tag(&mut buf, 4, frame.len(), vlan::tci(pcp, dei, vid)).unwrap();
        let t = VlanTag::new_checked(&buf[s + 14..]).unwrap();
        prop_assert_eq!((t.pcp(), t.dei(), t.vid()), (pcp, dei, vid));
        prop_assert_eq!(t.ethertype(), u16::from_be_bytes([frame[12], frame[13]]));
        let (s, tci) = vlan::pop_tag(&mut buf, s, frame.len() + 4).unwrap();
        prop_assert_eq!(tci, vlan::tci(pcp, dei, vid));
        prop_assert_eq!(&buf[s..], &frame[..]);
    }
}
