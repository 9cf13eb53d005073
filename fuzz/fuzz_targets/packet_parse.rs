//! Runs every parser, view and builder of the `packet` crate on arbitrary
//! bytes and checks the invariants the forwarding core relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use packet::dhcp::DhcpOptions;
use packet::gre::{GrePacket, GreRepr};
use packet::mpls::{MplsLabel, MplsStack};
use packet::parse::{Family, PacketInfo};
use packet::vlan::VlanTag;
use packet::vxlan::VxlanPacket;
use packet::{checksum, icmp, vlan};

fn check_info(info: &PacketInfo, buf: &[u8]) {
    let l3 = usize::from(info.l3_offset);
    assert!(l3 <= buf.len());
    if info.family == Family::Ipv4 || info.family == Family::Ipv6 {
        assert!(l3 + usize::from(info.l3_len) <= buf.len());
        assert_eq!(info.l3(buf).len(), usize::from(info.l3_len));
        if info.l4_offset != 0 {
            assert!(usize::from(info.l4_offset) <= l3 + usize::from(info.l3_len));
            let _ = info.l4(buf);
        } else {
            assert_eq!((info.sport, info.dport), (0, 0));
        }
        if info.frag.offset != 0 {
            assert_eq!(info.l4_offset, 0);
            assert!(info.frag.is_fragment);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = PacketInfo::parse(data) {
        check_info(&info, data);
        let _ = icmp::may_send_error(&info, false);
    }
    for et in [0x0800u16, 0x86dd, 0x0806, 0x1234] {
        if let Ok(info) = PacketInfo::parse_l3(data, et) {
            assert_eq!(info.l3_offset, 0);
            check_info(&info, data);
        }
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
    let _ = VlanTag::new_checked(data);

    let g = GrePacket::new_unchecked(data);
    let _ = (
        g.header_len(),
        g.checksum(),
        g.key(),
        g.sequence(),
        g.payload(),
    );
    let _ = (g.protocol(), g.version(), g.verify_checksum());
    if let Ok(g) = GrePacket::new_checked(data) {
        if let Ok(r) = GreRepr::parse(&g) {
            let mut out = [0u8; 16];
            let n = r.emit(&mut out).expect("16 bytes hold any GRE header");
            assert_eq!(n, g.header_len());
        }
    }

    let m = MplsLabel::new_unchecked(data);
    let _ = (m.label(), m.tc(), m.bos(), m.ttl(), m.payload());
    let mut s = MplsStack::new(data);
    let n = s.by_ref().count();
    if let Some(off) = s.payload_offset() {
        assert_eq!(off, n * 4);
    }

    let v = VxlanPacket::new_unchecked(data);
    let _ = (v.flags(), v.vni(), v.vni_valid(), v.payload());

    let mut opts = DhcpOptions::new(data);
    let _ = opts.by_ref().count();
    let _ = opts.truncated();
    if let Ok(o) = DhcpOptions::from_message(data) {
        let _ = (o.message_type(), o.server_id(), o.client_id(), o.hostname());
    }

    let sum = checksum::sum(data);
    let _ = checksum::ipv4_header_checksum(data);
    if data.len() >= 4 {
        let half = data.len() / 2 & !1;
        let _ = checksum::update_bytes(sum, &data[..half], &data[half..2 * half]);
    }

    let mut out = [0u8; 1500];
    if let Ok(n) = icmp::time_exceeded_v4(&mut out, [192, 0, 2, 1], data) {
        assert!(n <= icmp::IPV4_ERROR_MAX);
        let info = PacketInfo::parse_l3(&out[..n], 0x0800).expect("own ICMPv4 parses");
        assert!(checksum::verify(&out[..20]));
        assert!(checksum::verify(&out[20..n]));
        assert_eq!(info.proto, 1);
    }
    let _ = icmp::frag_needed_v4(&mut out[..100], [192, 0, 2, 1], data, 1400);
    if let Ok(n) = icmp::packet_too_big_v6(&mut out, [0x20; 16], data, 1280) {
        assert!(n <= icmp::IPV6_ERROR_MAX);
        let info = PacketInfo::parse_l3(&out[..n], 0x86dd).expect("own ICMPv6 parses");
        assert_eq!((info.proto, info.icmp_type), (58, 2));
    }
    let _ = icmp::time_exceeded_v6(&mut out[..60], [0x20; 16], data);

    let mut buf = [0u8; 256];
    let len = data.len().min(252);
    buf[4..4 + len].copy_from_slice(&data[..len]);
    if let Ok((start, _)) = vlan::pop_tag(&mut buf, 4, len) {
        let _ = vlan::push_tag(&mut buf, start, len - 4, 0x0064);
    }
});
