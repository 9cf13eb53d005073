//! ICMP error builders, checked with smoltcp's parsers.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::vectors::*;
use packet::icmp::*;
use packet::parse::{Family, PacketInfo};
use packet::wire::*;
use packet::Error;

const ROUTER4: [u8; 4] = [192, 0, 2, 254];
const ROUTER6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe,
];

/// A `len`-byte IPv4/UDP packet 192.0.2.1 -> 198.18.0.9 with IHL `ihl`.
fn ipv4_packet(len: usize, ihl: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x40 | ihl;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 1;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 0, 2, 1]);
    p[16..20].copy_from_slice(&[198, 18, 0, 9]);
    for (k, b) in p.iter_mut().enumerate().skip(usize::from(ihl) * 4) {
        *b = k as u8;
    }
    let c = packet::checksum::ipv4_header_checksum(&p[..usize::from(ihl) * 4]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

fn ipv6_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 1;
    p[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for (k, b) in p.iter_mut().enumerate().skip(40) {
        *b = k as u8;
    }
    p
}

#[test]
fn time_exceeded_v4_short_original() {
    // The inner packet of the MPLSoUDP vector: 32 bytes, quoted whole.
    let orig = &MPLSOUDP[46..];
    let mut out = [0u8; 1500];
    let n = time_exceeded_v4(&mut out, ROUTER4, orig).unwrap();
    assert_eq!(n, 20 + 8 + 32);
    let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
    assert!(ip.verify_checksum());
    let ipr = Ipv4Repr::parse(&ip, &ChecksumCapabilities::default()).unwrap();
    assert_eq!(ipr.src_addr, Ipv4Address::from(ROUTER4));
    assert_eq!(ipr.dst_addr, Ipv4Address::new(10, 1, 1, 3));
    assert_eq!(ipr.next_header, IpProtocol::Icmp);
    assert_eq!(ipr.hop_limit, DEFAULT_TTL);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), Icmpv4Message::TimeExceeded);
    assert_eq!(icmp.msg_code(), 0);
    assert_eq!(icmp.data(), orig);
    // smoltcp's Repr understands it too.
    let r = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).unwrap();
    assert!(matches!(
        r,
        Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::TtlExpired,
            ..
        }
    ));
}

#[test]
fn v4_quote_is_capped_at_576() {
    let orig = ipv4_packet(1500, 5);
    let mut out = [0u8; 2000];
    let n = frag_needed_v4(&mut out, ROUTER4, &orig, 1400).unwrap();
    assert_eq!(n, IPV4_ERROR_MAX);
    let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(icmp.msg_type(), Icmpv4Message::DstUnreachable);
    assert_eq!(icmp.msg_code(), ICMPV4_CODE_FRAG_NEEDED);
    // Next-hop MTU in the low 16 bits of the second word (RFC 1191).
    assert_eq!(&ip.payload()[4..8], &[0, 0, 0x05, 0x78]);
    assert_eq!(icmp.data(), &orig[..576 - 28]);
    // The parser sees an ICMP error about the right flow.
    let i = PacketInfo::parse_l3(&out[..n], 0x0800).unwrap();
    assert_eq!((i.proto, i.icmp_type, i.icmp_code), (1, 3, 4));
    assert_eq!(i.dst_v4(), [192, 0, 2, 1]);
}

#[test]
fn v4_quote_follows_buffer_but_keeps_header_plus_8() {
    // IHL 15 (60-byte header): the minimum quote is 68 bytes.
    let orig = ipv4_packet(200, 15);
    let mut out = [0u8; 28 + 68];
    let n = time_exceeded_v4(&mut out, ROUTER4, &orig).unwrap();
    assert_eq!(n, 28 + 68);
    assert_eq!(&out[28..n], &orig[..68]);
    let mut out = [0u8; 28 + 67];
    assert_eq!(
        time_exceeded_v4(&mut out, ROUTER4, &orig),
        Err(Error::NoSpace)
    );
    // Ethernet padding after the original's total length is not quoted.
    let mut padded = ipv4_packet(30, 5);
    padded.extend_from_slice(&[0xee; 16]);
    let mut out = [0u8; 600];
    let n = dest_unreachable_v4(&mut out, ROUTER4, &padded, 1).unwrap();
    assert_eq!(n, 28 + 30);
}

#[test]
fn v4_rejects_garbage() {
    let mut out = [0u8; 600];
    assert_eq!(
        time_exceeded_v4(&mut out, ROUTER4, &[]),
        Err(Error::Truncated)
    );
    assert_eq!(
        time_exceeded_v4(&mut out, ROUTER4, &[0x65; 40]),
        Err(Error::Malformed)
    );
    assert_eq!(
        time_exceeded_v4(&mut out, ROUTER4, &[0x46; 20]),
        Err(Error::Malformed)
    );
}

#[test]
fn time_exceeded_v6() {
    let orig = ipv6_packet(100);
    let mut out = [0u8; 1500];
    let n = packet::icmp::time_exceeded_v6(&mut out, ROUTER6, &orig).unwrap();
    assert_eq!(n, 40 + 8 + 100);
    let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
    let ipr = Ipv6Repr::parse(&ip).unwrap();
    assert_eq!(ipr.src_addr, Ipv6Address::from(ROUTER6));
    assert_eq!(ipr.dst_addr.octets(), orig[8..24]);
    assert_eq!(ipr.next_header, IpProtocol::Icmpv6);
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&ipr.src_addr, &ipr.dst_addr));
    assert_eq!(icmp.msg_type(), Icmpv6Message::TimeExceeded);
    let r = Icmpv6Repr::parse(
        &ipr.src_addr,
        &ipr.dst_addr,
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .unwrap();
    assert!(matches!(
        r,
        Icmpv6Repr::TimeExceeded {
            reason: Icmpv6TimeExceeded::HopLimitExceeded,
            ..
        }
    ));
}

#[test]
fn packet_too_big_v6_capped_at_1280() {
    let orig = ipv6_packet(1500);
    let mut out = [0u8; 2000];
    let n = packet_too_big_v6(&mut out, ROUTER6, &orig, 1400).unwrap();
    assert_eq!(n, IPV6_ERROR_MAX);
    let ip = Ipv6Packet::new_checked(&out[..n]).unwrap();
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    assert_eq!(icmp.msg_type(), Icmpv6Message::PktTooBig);
    assert_eq!(icmp.pkt_too_big_mtu(), 1400);
    assert_eq!(&ip.payload()[8..], &orig[..1280 - 48]);
    // Smaller buffers shrink the quote, down to the original's header.
    let mut small = [0u8; 88];
    assert_eq!(packet_too_big_v6(&mut small, ROUTER6, &orig, 1400), Ok(88));
    let mut tiny = [0u8; 87];
    assert_eq!(
        packet_too_big_v6(&mut tiny, ROUTER6, &orig, 1400),
        Err(Error::NoSpace)
    );
    let mut out = [0u8; 200];
    let n = dest_unreachable_v6(&mut out, ROUTER6, &orig[..60], 4);
    // Truncated original (payload length says 1460): quote what is there.
    assert_eq!(n, Ok(48 + 60));
}

#[test]
fn may_send() {
    let info = |f: &[u8]| PacketInfo::parse(f).unwrap();
    // UDP to a unicast address: yes.
    assert!(may_send_error(&info(&MPLSOUDP), false));
    // ICMP echo: yes.
    let inner = PacketInfo::parse_l3(&MPLSOUDP[46..], 0x0800).unwrap();
    assert!(may_send_error(&inner, false));
    // A non-first fragment: no.
    assert!(!may_send_error(&info(&V4_FRAG_LATER), false));
    assert!(!may_send_error(&info(&V6_FRAG_LATER), false));
    // ARP: no.
    assert!(!may_send_error(&info(&QINQ_ARP), false));
    // An ICMP error about an ICMP error: no.
    let mut out = [0u8; 600];
    let n = time_exceeded_v4(&mut out, ROUTER4, &MPLSOUDP[46..]).unwrap();
    let e = PacketInfo::parse_l3(&out[..n], 0x0800).unwrap();
    assert_eq!(e.family, Family::Ipv4);
    assert!(!may_send_error(&e, false));
    // Multicast / broadcast destinations: no; PTB for IPv6 multicast: yes.
    let mut m = info(&MPLSOUDP);
    m.dst[..4].copy_from_slice(&[224, 0, 0, 5]);
    assert!(!may_send_error(&m, false));
    m.dst[..4].copy_from_slice(&[255; 4]);
    assert!(!may_send_error(&m, false));
    let mut m6 = info(&ICMP6_ECHO);
    assert!(may_send_error(&m6, false));
    m6.dst[0] = 0xff;
    assert!(!may_send_error(&m6, false));
    assert!(may_send_error(&m6, true));
    m6.src = [0; 16];
    assert!(!may_send_error(&m6, true));
}
