//! Arbitrary bytes never panic any parser, view or builder. (The fuzz target
//! `fuzz/fuzz_targets/packet_parse.rs` does the same, much longer.)
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use packet::dhcp::DhcpOptions;
use packet::gre::{GrePacket, GreRepr};
use packet::mpls::{MplsLabel, MplsRepr, MplsStack};
use packet::parse::PacketInfo;
use packet::vlan::{self, VlanTag};
use packet::vxlan::VxlanPacket;
use packet::{checksum, icmp};
use proptest::prelude::*;

fn views(data: &[u8]) {
    let _ = PacketInfo::parse(data);
    for et in [0x0800, 0x86dd, 0x0806, 0] {
        let _ = PacketInfo::parse_l3(data, et);
    }
    let t = VlanTag::new_unchecked(data);
    let _ = (
        t.tci(),
        t.pcp(),
        t.dei(),
        t.vid(),
        t.ethertype(),
        t.payload(),
    );
    let g = GrePacket::new_unchecked(data);
    let _ = (
        g.header_len(),
        g.checksum(),
        g.key(),
        g.sequence(),
        g.payload(),
        g.verify_checksum(),
    );
    if let Ok(g) = GrePacket::new_checked(data) {
        let _ = GreRepr::parse(&g);
    }
    let m = MplsLabel::new_unchecked(data);
    let _ = (
        m.label(),
        m.tc(),
        m.bos(),
        m.ttl(),
        m.payload(),
        MplsRepr::parse(&m),
    );
    let _ = MplsStack::new(data).count();
    let v = VxlanPacket::new_unchecked(data);
    let _ = (v.flags(), v.vni(), v.vni_valid(), v.payload());
    let _ = DhcpOptions::new(data).count();
    if let Ok(o) = DhcpOptions::from_message(data) {
        let _ = (o.message_type(), o.server_id(), o.requested_ip(), o.count());
    }
    let _ = checksum::sum(data);
    let _ = checksum::ipv4_header_checksum(data);
    let _ = checksum::update_bytes(0x1234, data, &data[data.len() / 2..]);
}

fn setters(data: &mut [u8]) {
    let mut t = VlanTag::new_unchecked(&mut *data);
    t.set_vid(5);
    t.set_pcp(3);
    t.set_dei(true);
    t.set_ethertype(1);
    let _ = t.payload_mut();
    let mut g = GrePacket::new_unchecked(&mut *data);
    g.set_version(1);
    g.set_protocol(2);
    let _ = g.set_key(3);
    let _ = g.set_sequence(4);
    let _ = g.fill_checksum();
    let _ = g.payload_mut();
    let mut m = MplsLabel::new_unchecked(&mut *data);
    m.set_label(7);
    m.set_tc(1);
    m.set_bos(true);
    m.set_ttl(9);
    let mut v = VxlanPacket::new_unchecked(&mut *data);
    v.set_vni(42);
    v.set_flags(8);
    v.emit(43);
    let _ = v.payload_mut();
    let len = data.len();
    let _ = vlan::pop_tag(data, 0, len);
    let _ = vlan::push_tag(data, 4.min(len), len.saturating_sub(4), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        views(&data);
        let mut d = data.clone();
        setters(&mut d);
        let mut out = vec![0u8; 700];
        for room in [0usize, 27, 48, 100, 700] {
            let o = &mut out[..room];
            let _ = icmp::time_exceeded_v4(o, [1, 2, 3, 4], &data);
            let _ = icmp::frag_needed_v4(o, [1, 2, 3, 4], &data, 1400);
            let _ = icmp::dest_unreachable_v4(o, [1, 2, 3, 4], &data, 1);
            let _ = icmp::time_exceeded_v6(o, [1; 16], &data);
            let _ = icmp::packet_too_big_v6(o, [1; 16], &data, 1280);
            let _ = icmp::dest_unreachable_v6(o, [1; 16], &data, 1);
        }
        if let Ok(i) = PacketInfo::parse(&data) {
            let _ = icmp::may_send_error(&i, false);
            let _ = (i.l3(&data), i.l4(&data));
        }
    }

    /// Bytes that start like an IPv4 or IPv6 header reach deeper code.
    #[test]
    fn ip_like_bytes(first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60]), len in any::<u16>(),
                     nh in prop::sample::select(vec![0u8, 1, 6, 17, 43, 44, 47, 51, 58, 59, 60]),
                     rest in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut p = vec![first, 0];
        if first == 0x60 {
            p.extend_from_slice(&[0, 0]);
            p.extend_from_slice(&len.to_be_bytes());
            p.push(nh);
        } else {
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 64, nh]);
        }
        p.extend_from_slice(&rest);
        let et = if first == 0x60 { 0x86dd } else { 0x0800 };
        if let Ok(i) = PacketInfo::parse_l3(&p, et) {
            prop_assert!(usize::from(i.l3_len) <= p.len());
            prop_assert!(usize::from(i.l4_offset) <= p.len());
        }
        views(&p);
        let mut out = [0u8; 1300];
        let _ = icmp::time_exceeded_v4(&mut out, [1, 2, 3, 4], &p);
        let _ = icmp::packet_too_big_v6(&mut out, [1; 16], &p, 1280);
    }
}
