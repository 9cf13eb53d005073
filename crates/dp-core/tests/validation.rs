//! Header validation, TTL, MPLS label stacks, TCP MSS adjustment and routed
//! VXLAN: frames with broken or unusual headers, what upstream vRouter does
//! with them, and the drop reason each is counted under.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use dp_core::agent::{cmd, AgentHdr};
use dp_core::nexthop::AF_BRIDGE;
use dp_core::testkit::*;
use dp_core::*;

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x01];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const REMOTE_IP: [u8; 4] = [198, 18, 1, 10];
const OTHER_NET_IP: [u8; 4] = [198, 18, 2, 10];
const VRF1: u16 = 1;
const VNI: u32 = 5001;
/// The remote compute node's router MAC (routed VXLAN, EVPN type 5).
const PEER_ROUTER_MAC: [u8; 6] = [0x02, 0x33, 0, 0, 0, 0x09];

fn topo() -> (Topo, Vm) {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    (t, vm1)
}

fn one(outs: Vec<Output>) -> Output {
    assert_eq!(outs.len(), 1, "{outs:?}");
    outs.into_iter().next().unwrap()
}

fn tx_bytes(o: Output) -> (u16, Vec<u8>) {
    match o {
        Output::Tx { vif, bytes } => (vif, bytes),
        o => panic!("expected a transmit, got {o:?}"),
    }
}

fn drop_of(o: Output) -> DropReason {
    match o {
        Output::Drop(r) => r,
        o => panic!("expected a drop, got {o:?}"),
    }
}

/// An IPv4 UDP frame from the remote container to VM1 (what a tunnel
/// carries to us).
fn to_vm1() -> Vec<u8> {
    eth(
        VM1_MAC,
        REMOTE_MAC,
        0x0800,
        &ipv4(
            REMOTE_IP,
            VM1_IP,
            17,
            64,
            7,
            0,
            &udp4(REMOTE_IP, VM1_IP, 5000, 6000, b"payload!"),
        ),
    )
}

/// Recompute the IPv4 header checksum of the header at `at`.
fn fix_ip_csum(f: &mut [u8], at: usize) {
    f[at + 10] = 0;
    f[at + 11] = 0;
    let ihl = usize::from(f[at] & 0xf) * 4;
    let c = csum(&f[at..at + ihl], 0);
    f[at + 10..at + 12].copy_from_slice(&c.to_be_bytes());
}

/// The same packet over each of the three encapsulations.
fn wires(vm1: &Vm) -> Vec<(&'static str, Vec<u8>)> {
    let inner = to_vm1();
    vec![
        (
            "MPLSoGRE",
            outer_gre(
                PEER_MAC,
                FABRIC_MAC,
                PEER_IP,
                FABRIC_IP,
                1,
                &mpls(vm1.label + 1, &inner),
            ),
        ),
        (
            "MPLSoUDP",
            outer_udp(
                PEER_MAC,
                FABRIC_MAC,
                PEER_IP,
                FABRIC_IP,
                1,
                51000,
                6635,
                &mpls(vm1.label + 1, &inner),
            ),
        ),
        (
            "VXLAN",
            outer_udp(
                PEER_MAC,
                FABRIC_MAC,
                PEER_IP,
                FABRIC_IP,
                1,
                51000,
                4789,
                &vxlan(VNI, &inner),
            ),
        ),
    ]
}

// ---- outer headers on decapsulation -----------------------------------------

#[test]
fn good_tunnel_packets_are_delivered() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, w) in wires(&vm1) {
        let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
        assert_eq!((vif, bytes), (vm1.vif, to_vm1()), "{what}");
    }
    assert_eq!(t.router.drop_stats().total(), 0);
}

#[test]
fn bad_outer_ipv4_checksum_is_a_checksum_drop() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, mut w) in wires(&vm1) {
        w[24] ^= 0x5a;
        assert_eq!(
            drop_of(one(t.run(FABRIC_VIF, &w))),
            DropReason::CksumErr,
            "{what}"
        );
    }
    assert_eq!(t.router.drop_stats().get(DropReason::CksumErr), 3);
}

#[test]
fn outer_total_length_beyond_the_frame_is_a_pull_drop() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, mut w) in wires(&vm1) {
        let total = u16::from_be_bytes([w[16], w[17]]) + 8;
        w[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip_csum(&mut w, 14);
        assert_eq!(
            drop_of(one(t.run(FABRIC_VIF, &w))),
            DropReason::Pull,
            "{what}"
        );
    }
}

#[test]
fn outer_header_length_below_five_words_is_an_invalid_protocol_drop() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, mut w) in wires(&vm1) {
        w[14] = 0x44;
        fix_ip_csum(&mut w, 14);
        assert_eq!(
            drop_of(one(t.run(FABRIC_VIF, &w))),
            DropReason::InvalidProtocol,
            "{what}"
        );
    }
}

#[test]
fn outer_total_length_short_of_the_payload_breaks_the_inner_packet() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, mut w) in wires(&vm1) {
        let total = u16::from_be_bytes([w[16], w[17]]) - 12;
        w[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip_csum(&mut w, 14);
        let r = drop_of(one(t.run(FABRIC_VIF, &w)));
        assert!(
            matches!(r, DropReason::InvalidPacket | DropReason::Pull),
            "{what}: {r:?}"
        );
    }
}

#[test]
fn udp_tunnel_length_must_match_the_ip_payload() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, w) in wires(&vm1).into_iter().skip(1) {
        for bad in [0u16, 7, 60000] {
            let mut w = w.clone();
            w[38..40].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(
                drop_of(one(t.run(FABRIC_VIF, &w))),
                DropReason::InvalidPacket,
                "{what} with UDP length {bad}"
            );
        }
        // Bytes after the UDP datagram inside the IP packet are a trailer:
        // cut, the datagram delivered.
        let mut w = w.clone();
        let ulen = u16::from_be_bytes([w[38], w[39]]);
        w.extend_from_slice(&[0xee; 6]);
        let total = u16::from_be_bytes([w[16], w[17]]) + 6;
        w[16..18].copy_from_slice(&total.to_be_bytes());
        fix_ip_csum(&mut w, 14);
        assert_eq!(u16::from_be_bytes([w[38], w[39]]), ulen);
        let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
        assert_eq!((vif, bytes), (vm1.vif, to_vm1()), "{what} with a trailer");
    }
}

#[test]
fn outer_udp_checksum_is_verified_when_present() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    for (what, mut w) in wires(&vm1).into_iter().skip(1) {
        let udp_len = w.len() - 34;
        let mut ps = 0u32;
        for c in PEER_IP.chunks(2).chain(FABRIC_IP.chunks(2)) {
            ps += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        ps += 17 + udp_len as u32;
        let c = csum(&w[34..], ps);
        w[40..42].copy_from_slice(&c.to_be_bytes());
        let (vif, _) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
        assert_eq!(vif, vm1.vif, "{what} with a good checksum");
        w[41] ^= 1;
        assert_eq!(
            drop_of(one(t.run(FABRIC_VIF, &w))),
            DropReason::CksumErr,
            "{what} with a bad checksum"
        );
    }
}

#[test]
fn not_ours_with_a_broken_header_still_passes_to_the_host() {
    let (mut t, vm1) = topo();
    let (_, mut w) = wires(&vm1).remove(0);
    // To another address: none of the datapath's business.
    w[30..34].copy_from_slice(&[192, 0, 2, 77]);
    w[24] ^= 0x5a;
    // The test topology cross-connects the fabric with the host vif.
    let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
    assert_eq!((vif, bytes), (HOST_VIF, w));
    assert_eq!(t.router.drop_stats().total(), 0);
}

// ---- inner headers from containers ------------------------------------------

fn routed_from_vm1(ip: Vec<u8>) -> Vec<u8> {
    eth(VROUTER_MAC, VM1_MAC, 0x0800, &ip)
}

/// VM1 can reach a remote network over MPLSoUDP.
fn with_remote_route(t: &mut Topo) {
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        OTHER_NET_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        40,
    );
}

#[test]
fn a_good_routed_packet_goes_into_the_tunnel() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    let f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        64,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abc"),
    ));
    let (vif, _) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(vif, FABRIC_VIF);
}

#[test]
fn bad_ip_checksum_from_a_container_is_a_checksum_drop() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    let mut f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        64,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abc"),
    ));
    f[24] ^= 0xff;
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::CksumErr);
    // Bridged as well (the datapath reads the IP header of every IP frame
    // for its flow key).
    t.add_vm(
        4,
        VRF1,
        [0x02, 0x11, 0, 0, 0, 2],
        [198, 18, 1, 4],
        [0; 16],
        false,
    );
    let mut f = eth(
        [0x02, 0x11, 0, 0, 0, 2],
        VM1_MAC,
        0x0800,
        &ipv4(
            VM1_IP,
            [198, 18, 1, 4],
            17,
            64,
            1,
            0,
            &udp4(VM1_IP, [198, 18, 1, 4], 1, 2, b"abc"),
        ),
    );
    f[24] ^= 0xff;
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::CksumErr);
}

#[test]
fn a_host_that_offloads_checksums_says_so_and_is_not_checked() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    let mut f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        64,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abc"),
    ));
    // The header checksum left to the NIC.
    f[24] = 0;
    f[25] = 0;
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::CksumErr);
    let mut buf = vec![0u8; HEADROOM + f.len()];
    buf[HEADROOM..].copy_from_slice(&f);
    let mut p = [Packet::new(&mut buf, HEADROOM, f.len()).unwrap()];
    p[0].set_csum_partial(true);
    let mut acts = Actions::with_capacity(8);
    t.router.process(vm1.vif, &mut p, &mut acts);
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Tx {
                vif: FABRIC_VIF,
                ..
            }]
        ),
        "{:?}",
        acts.as_slice()
    );
}

#[test]
fn bad_udp_length_from_a_container_is_an_invalid_packet_drop() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    for bad in [0u16, 4, 60000] {
        let mut udp = udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abcdefgh");
        udp[4..6].copy_from_slice(&bad.to_be_bytes());
        let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 17, 64, 1, 0, &udp));
        assert_eq!(
            drop_of(one(t.run(vm1.vif, &f))),
            DropReason::InvalidPacket,
            "UDP length {bad}"
        );
    }
    assert_eq!(t.router.drop_stats().get(DropReason::InvalidPacket), 3);
}

#[test]
fn truncated_tcp_header_from_a_container_is_a_pull_drop() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    let tcp = tcp4(VM1_IP, OTHER_NET_IP, 1000, 80, 0x02, &[]);
    // Ten bytes of TCP header.
    let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 6, 64, 1, 0, &tcp[..10]));
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::Pull);
    // A data offset past the end of the packet.
    let mut tcp = tcp4(VM1_IP, OTHER_NET_IP, 1000, 80, 0x02, &[]);
    tcp[12] = 15 << 4;
    let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 6, 64, 1, 0, &tcp));
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::Pull);
    // A data offset below the header itself.
    let mut tcp = tcp4(VM1_IP, OTHER_NET_IP, 1000, 80, 0x02, &[]);
    tcp[12] = 4 << 4;
    let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 6, 64, 1, 0, &tcp));
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::InvalidPacket);
}

#[test]
fn ttl_zero_is_a_ttl_exceeded_drop_and_ttl_one_still_traps() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    let f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        0,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abc"),
    ));
    assert_eq!(drop_of(one(t.run(vm1.vif, &f))), DropReason::TtlExceeded);
    let f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        1,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"abc"),
    ));
    let (vif, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(vif, AGENT_VIF);
    assert_eq!(AgentHdr::parse(&bytes[14..]).unwrap().cmd, cmd::ZERO_TTL);
    assert_eq!(t.router.drop_stats().get(DropReason::TtlExceeded), 1);
}

#[test]
fn truncated_frames_are_interface_drops_with_an_input_error() {
    let (mut t, vm1) = topo();
    // A VLAN tag cut short, and a frame shorter than Ethernet.
    let mut tagged = eth([0xff; 6], VM1_MAC, 0x8100, &[0, 5]);
    assert_eq!(
        drop_of(one(t.run(vm1.vif, &tagged))),
        DropReason::InterfaceDrop
    );
    assert_eq!(
        drop_of(one(t.run(vm1.vif, &[1, 2, 3]))),
        DropReason::InterfaceDrop
    );
    assert_eq!(t.router.vif(vm1.vif).unwrap().stats.ierrors, 2);
    // On the fabric as well.
    tagged[0..6].copy_from_slice(&FABRIC_MAC);
    assert_eq!(
        drop_of(one(t.run(FABRIC_VIF, &tagged))),
        DropReason::InterfaceDrop
    );
    assert_eq!(t.router.vif(FABRIC_VIF).unwrap().stats.ierrors, 1);
    assert_eq!(t.router.drop_stats().get(DropReason::InterfaceDrop), 3);
}

// ---- MPLS label stacks --------------------------------------------------------

fn label_entry(label: u32, bos: bool, ttl: u8) -> [u8; 4] {
    (((label & 0xfffff) << 12) | if bos { 0x100 } else { 0 } | u32::from(ttl)).to_be_bytes()
}

fn mpls_stack(entries: &[[u8; 4]], payload: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = entries.iter().flatten().copied().collect();
    v.extend_from_slice(payload);
    v
}

#[test]
fn mpls_no_label_on_top_is_popped_as_upstream() {
    let (mut t, vm1) = topo();
    // Upstream: an outer 0xFFFFF label without bottom of stack means "no
    // label"; the one below it selects the next hop.
    let stack = mpls_stack(
        &[
            label_entry(0xfffff, false, 64),
            label_entry(vm1.label + 1, true, 64),
        ],
        &to_vm1(),
    );
    for w in [
        outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack),
        outer_udp(
            PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, 51000, 6635, &stack,
        ),
    ] {
        let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
        assert_eq!((vif, bytes), (vm1.vif, to_vm1()));
    }
}

#[test]
fn deeper_mpls_stacks_are_dropped_with_upstreams_reasons() {
    let (mut t, vm1) = topo();
    let inner_ip = ipv4(
        REMOTE_IP,
        VM1_IP,
        17,
        64,
        7,
        0,
        &udp4(REMOTE_IP, VM1_IP, 5000, 6000, b"payload!"),
    );
    // An L3 label with a second label under it: what follows is not IP.
    let stack = mpls_stack(
        &[label_entry(vm1.label, false, 64), label_entry(77, true, 64)],
        &inner_ip,
    );
    let w = outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack);
    assert_eq!(
        drop_of(one(t.run(FABRIC_VIF, &w))),
        DropReason::InvalidProtocol
    );
    // An L2 label with a second label under it: not an Ethernet frame.
    let stack = mpls_stack(
        &[
            label_entry(vm1.label + 1, false, 64),
            label_entry(77, true, 64),
        ],
        &to_vm1(),
    );
    let w = outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack);
    assert_eq!(
        drop_of(one(t.run(FABRIC_VIF, &w))),
        DropReason::InvalidPacket
    );
    // Three "no label" entries: the second one is not popped.
    let stack = mpls_stack(
        &[
            label_entry(0xfffff, false, 64),
            label_entry(0xfffff, false, 64),
            label_entry(vm1.label + 1, true, 64),
        ],
        &to_vm1(),
    );
    let w = outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack);
    assert_eq!(
        drop_of(one(t.run(FABRIC_VIF, &w))),
        DropReason::InvalidLabel
    );
}

#[test]
fn mpls_ttl_of_one_or_zero_is_ttl_exceeded() {
    let (mut t, vm1) = topo();
    for ttl in [0u8, 1] {
        let stack = mpls_stack(&[label_entry(vm1.label + 1, true, ttl)], &to_vm1());
        let w = outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack);
        assert_eq!(
            drop_of(one(t.run(FABRIC_VIF, &w))),
            DropReason::TtlExceeded,
            "MPLS TTL {ttl}"
        );
    }
    let stack = mpls_stack(&[label_entry(vm1.label + 1, true, 2)], &to_vm1());
    let w = outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &stack);
    assert_eq!(tx_bytes(one(t.run(FABRIC_VIF, &w))).0, vm1.vif);
}

// ---- TCP MSS adjustment ---------------------------------------------------------

/// A TCP SYN (`flags`) with the options MSS `mss`, SACK-permitted and a
/// window scale, checksum correct.
fn syn(src: [u8; 4], dst: [u8; 4], flags: u8, mss: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&80u16.to_be_bytes());
    t.extend_from_slice(&1000u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.push(8 << 4);
    t.push(flags);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&[2, 4]);
    t.extend_from_slice(&mss.to_be_bytes());
    t.extend_from_slice(&[4, 2, 1, 3, 3, 7, 0, 0]);
    let mut ps = 0u32;
    for c in src.chunks(2).chain(dst.chunks(2)) {
        ps += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    ps += 6 + t.len() as u32;
    let c = csum(&t, ps);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// MSS option value and whether the TCP checksum is right, for the TCP
/// segment at `l4` of an IPv4 packet at `l3`.
fn mss_of(f: &[u8], l3: usize) -> (u16, bool) {
    let l4 = l3 + usize::from(f[l3] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
    let tcp = &f[l4..l3 + total];
    let mut ps = 0u32;
    for c in f[l3 + 12..l3 + 20].chunks(2) {
        ps += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    ps += 6 + tcp.len() as u32;
    (u16::from_be_bytes([tcp[22], tcp[23]]), csum(tcp, ps) == 0)
}

#[test]
fn syn_from_a_container_into_a_tunnel_gets_the_overlay_mss() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    // Routed: fabric MTU 1500 - (40 of overlay + 20 IP + 20 TCP) = 1420.
    let f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        6,
        64,
        1,
        0x4000,
        &syn(VM1_IP, OTHER_NET_IP, 0x02, 1460),
    ));
    let (vif, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(vif, FABRIC_VIF);
    // Outer Ethernet + IPv4 + UDP + MPLS = 46 bytes, then the inner IP.
    assert_eq!(mss_of(&bytes, 46), (1420, true));
    // A smaller MSS is left alone.
    let f = routed_from_vm1(ipv4(
        VM1_IP,
        OTHER_NET_IP,
        6,
        64,
        1,
        0x4000,
        &syn(VM1_IP, OTHER_NET_IP, 0x12, 1200),
    ));
    let (_, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(mss_of(&bytes, 46), (1200, true));
    // Bridged to a remote MAC: the inner Ethernet header counts as well,
    // 1500 - (62 + 20 + 20) = 1398.
    t.add_remote_vm(
        VRF1,
        [0x02, 0x22, 0, 0, 0, 7],
        [198, 18, 1, 77],
        [0; 16],
        TunnelKind::MplsOverUdp,
        60,
    );
    let f = eth(
        [0x02, 0x22, 0, 0, 0, 7],
        VM1_MAC,
        0x0800,
        &ipv4(
            VM1_IP,
            [198, 18, 1, 77],
            6,
            64,
            1,
            0x4000,
            &syn(VM1_IP, [198, 18, 1, 77], 0x02, 1460),
        ),
    );
    let (_, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(mss_of(&bytes, 46 + 14), (1398, true));
    // Not a SYN: untouched.
    let seg = syn(VM1_IP, OTHER_NET_IP, 0x10, 1460);
    let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 6, 64, 1, 0x4000, &seg));
    let (_, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    assert_eq!(mss_of(&bytes, 46), (1460, true));
}

#[test]
fn mss_option_at_an_odd_offset_keeps_the_checksum_right() {
    let (mut t, vm1) = topo();
    with_remote_route(&mut t);
    // NOP, MSS, NOP, NOP, NOP: the MSS value straddles two 16-bit words.
    let mut seg = syn(VM1_IP, OTHER_NET_IP, 0x02, 1460);
    seg[20..32].copy_from_slice(&[1, 2, 4, 0x05, 0xb4, 1, 1, 1, 1, 1, 1, 0]);
    seg[16..18].copy_from_slice(&[0, 0]);
    let mut ps = 0u32;
    for c in VM1_IP.chunks(2).chain(OTHER_NET_IP.chunks(2)) {
        ps += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    ps += 6 + seg.len() as u32;
    let c = csum(&seg, ps);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    let f = routed_from_vm1(ipv4(VM1_IP, OTHER_NET_IP, 6, 64, 1, 0x4000, &seg));
    let (_, bytes) = tx_bytes(one(t.run(vm1.vif, &f)));
    let l4 = 46 + 20;
    assert_eq!(u16::from_be_bytes([bytes[l4 + 23], bytes[l4 + 24]]), 1420);
    let tcp = &bytes[l4..];
    let mut ps = 0u32;
    for c in bytes[46 + 12..46 + 20].chunks(2) {
        ps += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    ps += 6 + tcp.len() as u32;
    assert_eq!(csum(tcp, ps), 0, "TCP checksum");
}

#[test]
fn syn_out_of_a_tunnel_to_a_container_gets_the_overlay_mss() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    let inner = eth(
        VM1_MAC,
        REMOTE_MAC,
        0x0800,
        &ipv4(
            REMOTE_IP,
            VM1_IP,
            6,
            64,
            1,
            0x4000,
            &syn(REMOTE_IP, VM1_IP, 0x12, 1460),
        ),
    );
    let w = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        1,
        51000,
        4789,
        &vxlan(VNI, &inner),
    );
    let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
    assert_eq!(vif, vm1.vif);
    // Upstream adjusts what it delivers by the L2 overlay: 1500 - 102.
    assert_eq!(mss_of(&bytes, 14), (1398, true));
}

// ---- routed traffic into VXLAN ----------------------------------------------------

/// A VXLAN tunnel next hop for routed traffic (upstream NH_FLAG_L3_VXLAN):
/// the inner Ethernet header is rewritten to the remote router's MAC.
fn l3_vxlan_nh(t: &mut Topo) -> u32 {
    let id = t.add_tunnel_nh(TunnelKind::Vxlan);
    let mut nh = t.router.nh(id).unwrap().clone();
    nh.flags |= NhFlags::L3_VXLAN;
    t.router.nh_add(nh).unwrap();
    t.router.nh_set_l3_vxlan_mac(id, PEER_ROUTER_MAC).unwrap();
    id
}

#[test]
fn routed_traffic_into_vxlan_rewrites_the_inner_macs() {
    let (mut t, vm1) = topo();
    let nh = l3_vxlan_nh(&mut t);
    t.router
        .route_add(
            VRF1,
            Prefix::V4(OTHER_NET_IP, 32),
            RouteData {
                nh,
                label: VNI,
                flags: route::rt_flags::LABEL_VALID,
                mac: [0; 6],
            },
        )
        .unwrap();
    let ip = ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        64,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"routed"),
    );
    let (vif, bytes) = tx_bytes(one(t.run(vm1.vif, &routed_from_vm1(ip.clone()))));
    assert_eq!(vif, FABRIC_VIF);
    let mut inner_ip = ip;
    inner_ip[8] = 63;
    fix_ip_csum(&mut inner_ip, 0);
    let inner = eth(PEER_ROUTER_MAC, FABRIC_MAC, 0x0800, &inner_ip);
    let want = outer_udp(
        FABRIC_MAC,
        PEER_MAC,
        FABRIC_IP,
        PEER_IP,
        1,
        u16::from_be_bytes([bytes[34], bytes[35]]),
        4789,
        &vxlan(VNI, &inner),
    );
    assert_eq!(bytes, want);
    // The MAC is part of the next hop: none given is refused, as upstream.
    let id = t.add_tunnel_nh(TunnelKind::Vxlan);
    assert!(t.router.nh_set_l3_vxlan_mac(id, [0; 6]).is_err());
    assert_eq!(t.router.nh_l3_vxlan_mac(nh), Some(PEER_ROUTER_MAC));
}

#[test]
fn routed_vxlan_without_the_l3_flag_keeps_the_frames_own_header() {
    let (mut t, vm1) = topo();
    let nh = t.add_tunnel_nh(TunnelKind::Vxlan);
    t.router
        .route_add(
            VRF1,
            Prefix::V4(OTHER_NET_IP, 32),
            RouteData {
                nh,
                label: VNI,
                flags: route::rt_flags::LABEL_VALID,
                mac: [0; 6],
            },
        )
        .unwrap();
    let ip = ipv4(
        VM1_IP,
        OTHER_NET_IP,
        17,
        64,
        1,
        0,
        &udp4(VM1_IP, OTHER_NET_IP, 1, 2, b"routed"),
    );
    let (vif, bytes) = tx_bytes(one(t.run(vm1.vif, &routed_from_vm1(ip.clone()))));
    assert_eq!(vif, FABRIC_VIF);
    let mut inner_ip = ip;
    inner_ip[8] = 63;
    fix_ip_csum(&mut inner_ip, 0);
    assert_eq!(&bytes[50..], &routed_from_vm1(inner_ip)[..]);
}

#[test]
fn routed_vxlan_arriving_for_our_router_mac_is_routed_to_the_container() {
    let (mut t, vm1) = topo();
    t.add_vni(VRF1, VNI);
    // The agent maps the router MAC to an L2 receive next hop in the VRF.
    let l2rcv = t.alloc_nh();
    t.router
        .nh_add(Nexthop {
            id: l2rcv,
            family: AF_BRIDGE,
            flags: NhFlags::VALID,
            vrf: VRF1,
            kind: NhKind::L2Receive,
        })
        .unwrap();
    t.router
        .route_add(
            VRF1,
            Prefix::Mac(FABRIC_MAC),
            RouteData {
                nh: l2rcv,
                ..RouteData::default()
            },
        )
        .unwrap();
    let ip = ipv4(
        OTHER_NET_IP,
        VM1_IP,
        17,
        63,
        1,
        0,
        &udp4(OTHER_NET_IP, VM1_IP, 1, 2, b"routed"),
    );
    let inner = eth(FABRIC_MAC, PEER_ROUTER_MAC, 0x0800, &ip);
    let w = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        1,
        51000,
        4789,
        &vxlan(VNI, &inner),
    );
    let (vif, bytes) = tx_bytes(one(t.run(FABRIC_VIF, &w)));
    assert_eq!(vif, vm1.vif);
    // Routed here as well: the TTL goes down by one more.
    let mut want = ip;
    want[8] = 62;
    fix_ip_csum(&mut want, 0);
    assert_eq!(bytes, eth(VM1_MAC, VROUTER_MAC, 0x0800, &want));
}
