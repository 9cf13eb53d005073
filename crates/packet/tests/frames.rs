//! `PacketInfo::parse` and the views on real frames (see `common/vectors.rs`).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::vectors::*;
use packet::gre::GrePacket;
use packet::mpls::{MplsLabel, MplsStack};
use packet::parse::{Family, FragInfo, PacketInfo};
use packet::vlan::VlanTag;
use packet::vxlan::VxlanPacket;
use packet::wire::{Ipv4Packet, UdpPacket};
use packet::{checksum, ParseError};

const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&a);
    o
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<core::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn mpls_over_udp() {
    let f = &MPLSOUDP;
    let i = PacketInfo::parse(f).unwrap();
    assert_eq!((i.dst_mac, i.src_mac), (DST_MAC, SRC_MAC));
    assert_eq!(i.vlan, None);
    assert_eq!(i.ethertype, packet::ETHERTYPE_IPV4);
    assert_eq!(i.family, Family::Ipv4);
    assert_eq!(i.l3_offset, 14);
    assert_eq!(i.l3_len, 64);
    assert_eq!(i.src, v4([198, 18, 0, 1]));
    assert_eq!(i.dst, v4([198, 18, 0, 2]));
    assert_eq!((i.ttl, i.proto), (64, 17));
    assert_eq!((i.sport, i.dport), (51234, packet::UDP_PORT_MPLS));
    assert_eq!(i.l4_offset, 34);
    assert_eq!(
        i.frag,
        FragInfo {
            id: 7,
            df: true,
            ..Default::default()
        }
    );
    // The checksums scapy wrote verify with both implementations.
    assert!(checksum::verify(&f[14..34]));
    let ip = Ipv4Packet::new_checked(i.l3(f)).unwrap();
    assert!(ip.verify_checksum());
    let udp = UdpPacket::new_checked(i.l4(f)).unwrap();
    assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));

    // MPLS label stack after the UDP header, then the inner IPv4 packet.
    let mpls = &f[usize::from(i.l4_offset) + 8..];
    let mut stack = MplsStack::new(mpls);
    let top = stack.next().unwrap();
    assert_eq!(
        (top.label(), top.tc(), top.bos(), top.ttl()),
        (0x12345, 0, true, 64)
    );
    assert_eq!(stack.next(), None);
    let inner = &mpls[stack.payload_offset().unwrap()..];
    let ii = PacketInfo::parse_l3(inner, packet::ETHERTYPE_IPV4).unwrap();
    assert_eq!((ii.l3_offset, ii.l4_offset), (0, 20));
    assert_eq!(ii.src, v4([10, 1, 1, 3]));
    assert_eq!(ii.dst, v4([10, 1, 2, 4]));
    assert_eq!(
        (ii.proto, ii.ttl, ii.icmp_type, ii.icmp_code),
        (1, 63, 8, 0)
    );
    assert_eq!((ii.sport, ii.dport), (0x4242, 0));
    assert_eq!(ii.frag.id, 0x1111);
    assert_eq!(ii.dst_mac, [0; 6]);
    assert!(checksum::verify(ii.l4(inner)));
}

#[test]
fn mpls_over_gre() {
    let f = &MPLSOGRE;
    let i = PacketInfo::parse(f).unwrap();
    assert_eq!((i.proto, i.l4_offset), (packet::IP_PROTO_GRE, 34));
    assert_eq!((i.sport, i.dport), (0, 0));
    let gre = GrePacket::new_checked(i.l4(f)).unwrap();
    assert_eq!(gre.header_len(), 4);
    assert_eq!(gre.protocol(), packet::ETHERTYPE_MPLS);
    assert_eq!(&f[34..38], &packet::gre::MPLS_HEADER);
    let l = MplsLabel::new_checked(gre.payload()).unwrap();
    assert_eq!((l.label(), l.bos(), l.ttl()), (17, true, 64));
    let ii = PacketInfo::parse_l3(l.payload(), packet::ETHERTYPE_IPV4).unwrap();
    assert_eq!(ii.dst, v4([10, 1, 2, 4]));
}

#[test]
fn vxlan() {
    let f = &VXLAN;
    let i = PacketInfo::parse(f).unwrap();
    assert_eq!(
        (i.proto, i.dport, i.sport),
        (17, packet::UDP_PORT_VXLAN, 50000)
    );
    let vx = VxlanPacket::new_checked(&i.l4(f)[8..]).unwrap();
    assert!(vx.vni_valid());
    assert_eq!(vx.vni(), 0xabcdef);
    let ii = PacketInfo::parse(vx.payload()).unwrap();
    assert_eq!(ii.src_mac, [2, 0xaa, 0, 0, 0, 1]);
    assert_eq!(ii.family, Family::Ipv6);
    assert_eq!(ii.src, v6("2001:db8::1"));
    assert_eq!(ii.dst, v6("2001:db8::2"));
    assert_eq!((ii.proto, ii.sport, ii.dport), (6, 40000, 443));
    assert_eq!(ii.tcp_flags, 0x12);
    assert_eq!((ii.l3_offset, ii.l4_offset, ii.l3_len), (14, 54, 60));
    assert_eq!(ii.frag, FragInfo::default());
}

#[test]
fn ipv6_hop_by_hop_and_fragment() {
    let f = &V6_HBH_FRAG;
    let i = PacketInfo::parse(f).unwrap();
    assert_eq!(i.family, Family::Ipv6);
    assert_eq!(i.ttl, 9);
    assert_eq!(i.proto, 17);
    // 40 IPv6 + 8 hop-by-hop + 8 fragment.
    assert_eq!(i.l4_offset, 14 + 56);
    assert_eq!((i.sport, i.dport), (1000, 2000));
    assert_eq!(
        i.frag,
        FragInfo {
            is_fragment: true,
            more: true,
            offset: 0,
            id: 0xdead_beef,
            df: false
        }
    );
    assert_eq!(usize::from(i.l3_len), f.len() - 14);
}

#[test]
fn ipv6_non_first_fragment() {
    let i = PacketInfo::parse(&V6_FRAG_LATER).unwrap();
    assert_eq!(i.proto, 17);
    assert_eq!(i.l4_offset, 0);
    assert_eq!((i.sport, i.dport), (0, 0));
    assert_eq!(
        i.frag,
        FragInfo {
            is_fragment: true,
            more: false,
            offset: 24,
            id: 0xdead_beef,
            df: false
        }
    );
}

/// Ethernet + IPv6 whose chain is the given Fragment headers (offset
/// field, id) and then UDP 1000 -> 2000 with 4 bytes of payload.
fn v6_frags(frags: &[(u16, u32)]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x86, 0xdd]);
    let plen = 8 * frags.len() + 12;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(plen as u16).to_be_bytes());
    f.extend_from_slice(&[if frags.is_empty() { 17 } else { 44 }, 64]);
    f.extend_from_slice(&v6("2001:db8::1"));
    f.extend_from_slice(&v6("2001:db8::2"));
    for (k, (fo, id)) in frags.iter().enumerate() {
        let next = if k + 1 == frags.len() { 17 } else { 44 };
        f.extend_from_slice(&[next, 0]);
        f.extend_from_slice(&fo.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 12, 0, 0, 1, 2, 3, 4]);
    f
}

#[test]
fn ipv6_second_fragment_header() {
    // Found by the etherparse cross-check with random seeds: an atomic
    // fragment (id 7) carrying another Fragment header (id 9). The first
    // header is this packet's (upstream reads only the first): its id, not
    // the last one's.
    let i = PacketInfo::parse(&v6_frags(&[(0, 7), (0, 9)])).unwrap();
    assert_eq!(
        i.frag,
        FragInfo {
            id: 7,
            ..FragInfo::default()
        }
    );
    assert_eq!((i.proto, i.sport, i.dport), (17, 1000, 2000));
    assert_eq!(i.l4_offset, 14 + 40 + 16);
    // A first fragment carrying a nested first fragment: the outer fields.
    let i = PacketInfo::parse(&v6_frags(&[(1, 7), (1, 9)])).unwrap();
    let first = FragInfo {
        is_fragment: true,
        more: true,
        offset: 0,
        id: 7,
        df: false,
    };
    assert_eq!(i.frag, first);
    assert_eq!((i.sport, i.dport), (1000, 2000));
    // An atomic fragment carrying a later fragment: a fragment, offset and
    // id of the first header, no L4 header (it is not in this piece).
    let i = PacketInfo::parse(&v6_frags(&[(0, 7), (24, 9)])).unwrap();
    assert_eq!(
        i.frag,
        FragInfo {
            is_fragment: true,
            id: 7,
            ..FragInfo::default()
        }
    );
    assert_eq!((i.proto, i.l4_offset, i.sport), (17, 0, 0));
}

#[test]
fn ipv4_non_first_fragment() {
    let i = PacketInfo::parse(&V4_FRAG_LATER).unwrap();
    assert_eq!(i.proto, 17);
    assert_eq!(i.l4_offset, 0);
    assert_eq!(
        i.frag,
        FragInfo {
            is_fragment: true,
            more: true,
            offset: 185 * 8,
            id: 0x9999,
            df: false
        }
    );
}

#[test]
fn vlan_and_ipv4_options() {
    let f = &V4_OPTIONS_VLAN;
    let i = PacketInfo::parse(f).unwrap();
    assert_eq!(i.vlan, Some(100));
    let tag = VlanTag::new_checked(&f[14..]).unwrap();
    assert_eq!((tag.pcp(), tag.vid(), tag.ethertype()), (5, 100, 0x0800));
    assert_eq!((i.ethertype, i.l3_offset), (0x0800, 18));
    // IHL 7: record route with one slot is 7 bytes, padded to 8.
    assert_eq!(f[18] & 0x0f, 7);
    assert_eq!(i.l4_offset, 18 + 28);
    assert_eq!((i.sport, i.dport, i.tcp_flags), (1234, 80, 0x02));
    assert!(checksum::verify(&f[18..46]));
}

#[test]
fn qinq_arp() {
    let i = PacketInfo::parse(&QINQ_ARP).unwrap();
    assert_eq!(i.vlan, Some(300));
    assert_eq!(i.dst_mac, [0xff; 6]);
    assert_eq!((i.ethertype, i.l3_offset, i.l3_len), (0x0806, 22, 28));
    assert_eq!(i.family, Family::Arp);
    assert_eq!(i.src, v4([192, 0, 2, 1]));
    assert_eq!(i.dst, v4([192, 0, 2, 9]));
    assert_eq!(i.icmp_type, 1);
    let arp = packet::wire::ArpPacket::new_checked(&QINQ_ARP[22..]).unwrap();
    assert_eq!(arp.operation(), packet::wire::ArpOperation::Request);
}

#[test]
fn icmpv6_echo() {
    let i = PacketInfo::parse(&ICMP6_ECHO).unwrap();
    assert_eq!(
        (i.proto, i.icmp_type, i.icmp_code, i.sport),
        (58, 128, 0, 0x7777)
    );
    assert_eq!(i.src, v6("fe80::1"));
}

#[test]
fn ethernet_padding_is_ignored() {
    // A 42-byte ARP frame padded to 60 and a short IPv4 frame padded to 64.
    let mut f = [0u8; 64];
    f[..MPLSOUDP.len().min(64)].copy_from_slice(&MPLSOUDP[..64]);
    // Shrink the outer IPv4 total length to 20+8 (UDP header only) and
    // leave the rest as padding.
    f[16..18].copy_from_slice(&28u16.to_be_bytes());
    let i = PacketInfo::parse(&f).unwrap();
    assert_eq!(i.l3_len, 28);
    assert_eq!(i.l4(&f).len(), 8);
    assert_eq!(i.dport, 6635);
}

#[test]
fn truncated_l4_is_ok() {
    // Cut the TCP header of the VLAN/IPv4 frame: L3 still parses.
    let mut f = V4_OPTIONS_VLAN.to_vec();
    f.truncate(18 + 28 + 10);
    f[20..22].copy_from_slice(&38u16.to_be_bytes());
    let i = PacketInfo::parse(&f).unwrap();
    assert_eq!(
        (i.proto, i.l4_offset, i.sport, i.dport, i.tcp_flags),
        (6, 0, 0, 0, 0)
    );
    // UDP needs 8 bytes.
    let mut f = MPLSOUDP[..14 + 20 + 7].to_vec();
    f[16..18].copy_from_slice(&27u16.to_be_bytes());
    let i = PacketInfo::parse(&f).unwrap();
    assert_eq!((i.proto, i.l4_offset, i.dport), (17, 0, 0));
}

#[test]
fn errors() {
    assert_eq!(PacketInfo::parse(&[0; 13]), Err(ParseError::TruncatedL2));
    // VLAN tag cut short.
    assert_eq!(
        PacketInfo::parse(&V4_OPTIONS_VLAN[..16]),
        Err(ParseError::TruncatedL2)
    );
    // IPv4 header cut short.
    assert_eq!(
        PacketInfo::parse(&MPLSOUDP[..30]),
        Err(ParseError::TruncatedL3)
    );
    // Total length beyond the frame.
    assert_eq!(
        PacketInfo::parse(&MPLSOUDP[..70]),
        Err(ParseError::TruncatedL3)
    );
    let mut f = MPLSOUDP;
    f[14] = 0x44; // IHL 4
    assert_eq!(PacketInfo::parse(&f), Err(ParseError::BadHeaderLen));
    f[14] = 0x65; // version 6 in an IPv4 ethertype
    assert_eq!(PacketInfo::parse(&f), Err(ParseError::BadVersion));
    let mut f = MPLSOUDP;
    f[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(PacketInfo::parse(&f), Err(ParseError::BadHeaderLen));
    // IPv6 payload length beyond the frame.
    assert_eq!(
        PacketInfo::parse(&ICMP6_ECHO[..ICMP6_ECHO.len() - 1]),
        Err(ParseError::TruncatedL3)
    );
    // ARP for another protocol.
    let mut f = QINQ_ARP;
    f[22 + 3] = 0xdd;
    assert_eq!(PacketInfo::parse(&f), Err(ParseError::BadArp));
    assert_eq!(
        PacketInfo::parse_l3(&MPLSOUDP[14..], 0x1234),
        Err(ParseError::UnsupportedEthertype)
    );
}

#[test]
fn non_ip_is_ok() {
    let mut f = [0u8; 60];
    f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes()); // LLDP
    let i = PacketInfo::parse(&f).unwrap();
    assert_eq!(
        (i.family, i.ethertype, i.l3_offset, i.l4_offset),
        (Family::None, 0x88cc, 14, 0)
    );
    // Four stacked tags: the walk stops after three; the frame is not IP.
    let mut f = [0u8; 60];
    for t in 0..4 {
        f[12 + 4 * t..14 + 4 * t].copy_from_slice(&0x8100u16.to_be_bytes());
        f[14 + 4 * t..16 + 4 * t].copy_from_slice(&(t as u16 + 1).to_be_bytes());
    }
    let i = PacketInfo::parse(&f).unwrap();
    assert_eq!(
        (i.family, i.ethertype, i.vlan, i.l3_offset),
        (Family::None, 0x8100, Some(1), 26)
    );
}

#[test]
fn ipv6_extension_header_limit_and_truncation() {
    // IPv6 + 9 destination-options headers (8 bytes each) + nothing.
    let n = 9;
    let mut p = vec![0u8; 40 + 8 * n];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 * n) as u16).to_be_bytes());
    p[6] = 60;
    for k in 0..n {
        p[40 + 8 * k] = if k + 1 == n { 59 } else { 60 };
    }
    assert_eq!(
        PacketInfo::parse_l3(&p, 0x86dd),
        Err(ParseError::TooManyExtHeaders)
    );
    // 8 headers are fine and end in No Next Header.
    p[40 + 8 * 7] = 59;
    let i = PacketInfo::parse_l3(&p, 0x86dd).unwrap();
    assert_eq!((i.proto, i.l4_offset), (59, 0));
    // A header whose length runs past the payload.
    p[40 + 1] = 200;
    assert_eq!(
        PacketInfo::parse_l3(&p, 0x86dd),
        Err(ParseError::TruncatedL3)
    );
    // AH uses 4-byte units: (len + 2) * 4; len 1 = 12 bytes.
    let mut p = vec![0u8; 40 + 12 + 8];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&20u16.to_be_bytes());
    p[6] = 51;
    p[40] = 17;
    p[41] = 1;
    p[52..56].copy_from_slice(&[0x12, 0x34, 0x00, 0x35]);
    let i = PacketInfo::parse_l3(&p, 0x86dd).unwrap();
    assert_eq!(
        (i.proto, i.l4_offset, i.sport, i.dport),
        (17, 52, 0x1234, 53)
    );
}
