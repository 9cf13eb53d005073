//! Datapath scenarios modelled on upstream vRouter's own datapath tests
//! (tf-vrouter `tests/test_*.py`): real frame bytes in, exact bytes out.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::agent::{cmd, AgentHdr, AGENT_HDR_LEN};
use dp_core::flow::table::{
    VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD, VR_FLOW_ACTION_NAT,
    VR_FLOW_FLAG_DNAT, VR_FLOW_FLAG_NEW_FLOW,
};
use dp_core::flow::{make_key, FLOW_AF_INET};
use dp_core::nexthop::AF_INET;
use dp_core::route::rt_flags;
use dp_core::testkit::*;
use dp_core::*;
use packet::parse::PacketInfo;

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x01];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const VM3_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x03];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];
const VM3_IP: [u8; 4] = [198, 18, 2, 3];
const REMOTE_IP: [u8; 4] = [198, 18, 1, 10];
const REMOTE_IP_VN2: [u8; 4] = [198, 18, 2, 10];
const GW1: [u8; 4] = [198, 18, 1, 1];
const VRF1: u16 = 1;
const VRF2: u16 = 2;

fn topo() -> Topo {
    Topo::new(RouterConfig::small())
}

fn tx(outs: &[Output]) -> Vec<(u16, Vec<u8>)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Tx { vif, bytes } => Some((*vif, bytes.clone())),
            _ => None,
        })
        .collect()
}

fn single_tx(outs: &[Output]) -> (u16, Vec<u8>) {
    let t = tx(outs);
    assert_eq!(t.len(), 1, "expected one transmit, got {outs:?}");
    t.into_iter().next().unwrap()
}

fn udp_frame(smac: [u8; 6], dmac: [u8; 6], sip: [u8; 4], dip: [u8; 4], ttl: u8) -> Vec<u8> {
    eth(
        dmac,
        smac,
        0x0800,
        &ipv4(
            sip,
            dip,
            17,
            ttl,
            0x1234,
            0,
            &udp4(sip, dip, 40000, 7, b"vrouter-rs!"),
        ),
    )
}

/// Parse an agent-bound frame: (agent_hdr, inner frame).
fn agent_frame(bytes: &[u8]) -> (AgentHdr, Vec<u8>) {
    assert_eq!(&bytes[0..6], &AGENT_MAC);
    let h = AgentHdr::parse(&bytes[14..]).expect("agent_hdr");
    (h, bytes[14 + AGENT_HDR_LEN..].to_vec())
}

/// Source port the router chose for an overlay frame (it hashes the flow).
fn outer_sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

// ---- VM to VM ------------------------------------------------------------

#[test]
fn vm_to_vm_intra_vn_bridged() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    let f = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, vm2.vif);
    assert_eq!(bytes, f, "bridged frames leave unchanged");
    assert_eq!(t.router.vif(vm2.vif).unwrap().stats.opackets, 1);
    assert_eq!(t.router.vif(vm1.vif).unwrap().stats.ipackets, 1);
}

#[test]
fn vm_to_vm_intra_vn_routed_rewrites_l2_and_ttl() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, vm2.vif);
    assert_eq!(bytes, udp_frame(VROUTER_MAC, VM2_MAC, VM1_IP, VM2_IP, 63));
}

#[test]
fn vm_to_vm_inter_vn_via_leaked_route_and_policy() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm3 = t.add_vm(5, VRF2, VM3_MAC, VM3_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM3_IP, 64);
    // Isolated: no route to VN2 in VRF1.
    assert_eq!(
        t.run(vm1.vif, &f),
        vec![Output::Drop(DropReason::NowhereToGo)]
    );
    // The agent leaks VM3's route into VRF1 once a policy allows it.
    t.router
        .route_add(
            VRF1,
            Prefix::V4(VM3_IP, 32),
            RouteData {
                nh: vm3.nh,
                label: vm3.label,
                flags: rt_flags::LABEL_VALID,
                mac: VM3_MAC,
            },
        )
        .unwrap();
    // First packet: flow miss -> held, one FLOW_MISS trap to the agent.
    let outs = t.run(vm1.vif, &f);
    let flow = match outs.as_slice() {
        [Output::Tx {
            vif: AGENT_VIF,
            bytes,
        }, Output::Hold { flow }] => {
            let (h, inner) = agent_frame(bytes);
            assert_eq!(h.cmd, cmd::FLOW_MISS);
            assert_eq!(h.ifindex, vm1.vif);
            assert_eq!(h.vrf, VRF1);
            assert_eq!(h.param, *flow);
            assert_eq!(inner, f);
            *flow
        }
        other => panic!("expected trap + hold, got {other:?}"),
    };
    // The agent allows it: forward + reverse entries.
    let info = PacketInfo::parse(&f).unwrap();
    let key = make_key(&info, vm1.nh, None);
    let fe = t.router.flows().get(flow).unwrap();
    assert_eq!(*fe.key(), key);
    let gen = fe.gen_id;
    let out = t
        .router
        .flow_set(&FlowSet {
            index: Some(flow),
            gen_id: Some(gen),
            key,
            action: VR_FLOW_ACTION_FORWARD,
            flags: 0,
            rflow: None,
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: vm1.nh,
        })
        .unwrap();
    assert!(out.release_held);
    // Re-injected held packet is routed into VN2.
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, vm3.vif);
    assert_eq!(bytes, udp_frame(VROUTER_MAC, VM3_MAC, VM1_IP, VM3_IP, 63));
    let fe = t.router.flows().get(flow).unwrap();
    assert_eq!(fe.packets(), 1);
}

// ---- VM to fabric -----------------------------------------------------------

#[test]
fn policy_of_the_destination_alone_sends_new_flows_to_the_agent() {
    // vm1 has no policy, vm2 has (a security group, say): upstream checks
    // the destination next hop's policy flag too, so vm1's packets to vm2
    // need a flow, and the reverse direction likewise.
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, 64);
    match t.run(vm1.vif, &f).as_slice() {
        [Output::Tx {
            vif: AGENT_VIF,
            bytes,
        }, Output::Hold { flow }] => {
            let (h, _) = agent_frame(bytes);
            assert_eq!(
                (h.cmd, h.ifindex, h.param),
                (cmd::FLOW_MISS, vm1.vif, *flow)
            );
        }
        other => panic!("expected trap + hold, got {other:?}"),
    }
    // Between two ports without policy nothing changes: no flow.
    let vm3 = t.add_vm(5, VRF1, VM3_MAC, VM3_IP, [0; 16], false);
    let g = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM3_IP, 64);
    let (vif, _) = single_tx(&t.run(vm1.vif, &g));
    assert_eq!(vif, vm3.vif);
    let _ = vm2;
}

#[test]
fn vm_to_fabric_intra_vn_mplsoudp_bridged() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        40,
    );
    let f = udp_frame(VM1_MAC, REMOTE_MAC, VM1_IP, REMOTE_IP, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, FABRIC_VIF);
    let sport = outer_sport(&bytes);
    assert!(sport >= 49152);
    // L2 label (40 + 1) and the whole inner Ethernet frame.
    let expect = outer_udp(
        FABRIC_MAC,
        PEER_MAC,
        FABRIC_IP,
        PEER_IP,
        1,
        sport,
        6635,
        &mpls(41, &f),
    );
    assert_eq!(bytes, expect);
}

#[test]
fn vm_to_fabric_inter_vn_mplsoudp_routed_l3_label() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    // A VN2 VM behind the peer, leaked into VRF1 with its L3 label.
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP_VN2,
        [0; 16],
        TunnelKind::MplsOverUdp,
        50,
    );
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, REMOTE_IP_VN2, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, FABRIC_VIF);
    let inner_ip = ipv4(
        VM1_IP,
        REMOTE_IP_VN2,
        17,
        63,
        0x1234,
        0,
        &udp4(VM1_IP, REMOTE_IP_VN2, 40000, 7, b"vrouter-rs!"),
    );
    let expect = outer_udp(
        FABRIC_MAC,
        PEER_MAC,
        FABRIC_IP,
        PEER_IP,
        1,
        outer_sport(&bytes),
        6635,
        &mpls(50, &inner_ip),
    );
    assert_eq!(bytes, expect);
}

#[test]
fn mplsogre_both_directions() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverGre,
        40,
    );
    // VM -> fabric.
    let f = udp_frame(VM1_MAC, REMOTE_MAC, VM1_IP, REMOTE_IP, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, FABRIC_VIF);
    assert_eq!(
        bytes,
        outer_gre(FABRIC_MAC, PEER_MAC, FABRIC_IP, PEER_IP, 1, &mpls(41, &f))
    );
    // Fabric -> VM: L2 label of VM1.
    let back = udp_frame(REMOTE_MAC, VM1_MAC, REMOTE_IP, VM1_IP, 64);
    let wire = outer_gre(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        7,
        &mpls(vm1.label + 1, &back),
    );
    let (vif, bytes) = single_tx(&t.run(FABRIC_VIF, &wire));
    assert_eq!(vif, vm1.vif);
    assert_eq!(bytes, back);
}

#[test]
fn mplsoudp_fabric_to_vm_intra_vn_l2_label() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let back = udp_frame(REMOTE_MAC, VM1_MAC, REMOTE_IP, VM1_IP, 64);
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        9,
        51000,
        6635,
        &mpls(vm1.label + 1, &back),
    );
    let (vif, bytes) = single_tx(&t.run(FABRIC_VIF, &wire));
    assert_eq!(vif, vm1.vif);
    assert_eq!(bytes, back);
}

#[test]
fn mplsoudp_fabric_to_vm_inter_vn_l3_label_adds_l2() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let inner_ip = ipv4(
        REMOTE_IP_VN2,
        VM1_IP,
        17,
        63,
        0x99,
        0,
        &udp4(REMOTE_IP_VN2, VM1_IP, 7, 40000, b"reply"),
    );
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        9,
        51000,
        6635,
        &mpls(vm1.label, &inner_ip),
    );
    let (vif, bytes) = single_tx(&t.run(FABRIC_VIF, &wire));
    assert_eq!(vif, vm1.vif);
    assert_eq!(bytes, eth(VM1_MAC, VROUTER_MAC, 0x0800, &inner_ip));
}

#[test]
fn vxlan_both_directions() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_vni(VRF1, 5001);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::Vxlan,
        5001,
    );
    let f = udp_frame(VM1_MAC, REMOTE_MAC, VM1_IP, REMOTE_IP, 64);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, FABRIC_VIF);
    let expect = outer_udp(
        FABRIC_MAC,
        PEER_MAC,
        FABRIC_IP,
        PEER_IP,
        1,
        outer_sport(&bytes),
        4789,
        &vxlan(5001, &f),
    );
    assert_eq!(bytes, expect);
    // Back: the VNI selects VRF1, the inner MAC selects VM1.
    let back = udp_frame(REMOTE_MAC, VM1_MAC, REMOTE_IP, VM1_IP, 64);
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        3,
        50000,
        4789,
        &vxlan(5001, &back),
    );
    let (vif, bytes) = single_tx(&t.run(FABRIC_VIF, &wire));
    assert_eq!(vif, vm1.vif);
    assert_eq!(bytes, back);
    // Unknown VNI.
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        3,
        50000,
        4789,
        &vxlan(5002, &back),
    );
    assert_eq!(
        t.run(FABRIC_VIF, &wire),
        vec![Output::Drop(DropReason::InvalidVnid)]
    );
}

#[test]
fn fabric_traffic_not_for_the_overlay_passes_to_the_host() {
    let mut t = topo();
    // Plain UDP to our fabric address, not a tunnel port: to the host vif.
    let f = udp_frame(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 64);
    assert_eq!(single_tx(&t.run(FABRIC_VIF, &f)), (HOST_VIF, f.clone()));
    // And host traffic goes out of the fabric unchanged.
    assert_eq!(single_tx(&t.run(HOST_VIF, &f)), (FABRIC_VIF, f));
}

// ---- IPv6 -------------------------------------------------------------------

#[test]
fn vm_to_vm_ipv6_routed_and_bridged() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, v6(3), false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, v6(4), false);
    let payload = udp6(v6(3), v6(4), 40000, 7, b"six");
    let routed = eth(
        VROUTER_MAC,
        VM1_MAC,
        0x86dd,
        &ipv6(v6(3), v6(4), 17, 64, &payload),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &routed));
    assert_eq!(vif, vm2.vif);
    assert_eq!(
        bytes,
        eth(
            VM2_MAC,
            VROUTER_MAC,
            0x86dd,
            &ipv6(v6(3), v6(4), 17, 63, &payload)
        )
    );
    let bridged = eth(
        VM2_MAC,
        VM1_MAC,
        0x86dd,
        &ipv6(v6(3), v6(4), 17, 64, &payload),
    );
    assert_eq!(single_tx(&t.run(vm1.vif, &bridged)), (vm2.vif, bridged));
}

#[test]
fn ipv6_over_mplsoudp_l3() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, v6(3), false);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        v6(10),
        TunnelKind::MplsOverUdp,
        60,
    );
    let payload = udp6(v6(3), v6(10), 40000, 7, b"six");
    let f = eth(
        VROUTER_MAC,
        VM1_MAC,
        0x86dd,
        &ipv6(v6(3), v6(10), 17, 64, &payload),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, FABRIC_VIF);
    let inner = ipv6(v6(3), v6(10), 17, 63, &payload);
    assert_eq!(
        bytes,
        outer_udp(
            FABRIC_MAC,
            PEER_MAC,
            FABRIC_IP,
            PEER_IP,
            1,
            outer_sport(&bytes),
            6635,
            &mpls(60, &inner)
        )
    );
    // And back, L3 label, IPv6 inner.
    let back = ipv6(
        v6(10),
        v6(3),
        17,
        63,
        &udp6(v6(10), v6(3), 7, 40000, b"xis"),
    );
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        2,
        50001,
        6635,
        &mpls(vm1.label, &back),
    );
    assert_eq!(
        single_tx(&t.run(FABRIC_VIF, &wire)),
        (vm1.vif, eth(VM1_MAC, VROUTER_MAC, 0x86dd, &back))
    );
}

#[test]
fn ipv6_neighbour_solicitation_gets_a_proxy_advertisement() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, v6(3), false);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, v6(4), false);
    // NS for v6(4) from v6(3) to the solicited-node multicast group.
    let mut snm = [0u8; 16];
    snm[0] = 0xff;
    snm[1] = 0x02;
    snm[11] = 1;
    snm[12] = 0xff;
    snm[13..16].copy_from_slice(&v6(4)[13..16]);
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&v6(4));
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&VM1_MAC);
    let ns = eth(
        [0x33, 0x33, 0xff, 0, 0, 4],
        VM1_MAC,
        0x86dd,
        &ipv6(v6(3), snm, 58, 255, &icmp6(v6(3), snm, 135, 0, &body)),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &ns));
    assert_eq!(vif, vm1.vif);
    let mut na_body = vec![0x60, 0, 0, 0];
    na_body.extend_from_slice(&v6(4));
    na_body.extend_from_slice(&[2, 1]);
    na_body.extend_from_slice(&VM2_MAC);
    let expect = eth(
        VM1_MAC,
        VM2_MAC,
        0x86dd,
        &ipv6(
            v6(4),
            v6(3),
            58,
            255,
            &icmp6(v6(4), v6(3), 136, 0, &na_body),
        ),
    );
    assert_eq!(bytes, expect);
}

// ---- ARP, DHCP, gateway --------------------------------------------------------

#[test]
fn arp_for_gateway_and_for_vm_are_proxied() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    t.add_gateway(VRF1, GW1);
    let req = eth(
        [0xff; 6],
        VM1_MAC,
        0x0806,
        &arp(1, VM1_MAC, VM1_IP, [0; 6], GW1),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &req));
    assert_eq!(vif, vm1.vif);
    assert_eq!(
        bytes,
        eth(
            VM1_MAC,
            VROUTER_MAC,
            0x0806,
            &arp(2, VROUTER_MAC, GW1, VM1_MAC, VM1_IP)
        )
    );
    let req = eth(
        [0xff; 6],
        VM1_MAC,
        0x0806,
        &arp(1, VM1_MAC, VM1_IP, [0; 6], VM2_IP),
    );
    let (_, bytes) = single_tx(&t.run(vm1.vif, &req));
    assert_eq!(
        bytes,
        eth(
            VM1_MAC,
            VM2_MAC,
            0x0806,
            &arp(2, VM2_MAC, VM2_IP, VM1_MAC, VM1_IP)
        )
    );
    // Unknown target: dropped and counted.
    let req = eth(
        [0xff; 6],
        VM1_MAC,
        0x0806,
        &arp(1, VM1_MAC, VM1_IP, [0; 6], [198, 18, 9, 9]),
    );
    assert_eq!(
        t.run(vm1.vif, &req),
        vec![Output::Drop(DropReason::InvalidArp)]
    );
    // Gratuitous ARP goes to the agent.
    let garp = eth(
        [0xff; 6],
        VM1_MAC,
        0x0806,
        &arp(1, VM1_MAC, VM1_IP, [0; 6], VM1_IP),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &garp));
    assert_eq!(vif, AGENT_VIF);
    assert_eq!(agent_frame(&bytes).0.cmd, cmd::ARP);
}

#[test]
fn dhcp_and_gateway_traffic_are_trapped_to_the_agent() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_gateway(VRF1, GW1);
    let dhcp = eth(
        [0xff; 6],
        VM1_MAC,
        0x0800,
        &ipv4(
            [0; 4],
            [255; 4],
            17,
            64,
            1,
            0,
            &udp4([0; 4], [255; 4], 68, 67, &[1u8; 240]),
        ),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &dhcp));
    assert_eq!(vif, AGENT_VIF);
    let (h, inner) = agent_frame(&bytes);
    assert_eq!(
        (h.cmd, h.ifindex, h.vrf),
        (cmd::L3_PROTOCOLS, vm1.vif, VRF1)
    );
    assert_eq!(inner, dhcp);
    let ping = eth(
        VROUTER_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(VM1_IP, GW1, 1, 64, 2, 0, &icmp4_echo(7, 1, false, b"hi")),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &ping));
    assert_eq!(vif, AGENT_VIF);
    assert_eq!(agent_frame(&bytes).0.cmd, cmd::L3_PROTOCOLS);
}

#[test]
fn agent_injects_with_switch_command() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let reply = udp_frame(VROUTER_MAC, VM1_MAC, GW1, VM1_IP, 64);
    let mut hdr = [0u8; AGENT_HDR_LEN];
    AgentHdr {
        ifindex: vm1.vif,
        vrf: VRF1,
        cmd: cmd::SWITCH,
        ..AgentHdr::default()
    }
    .emit(&mut hdr);
    let mut frame = eth(AGENT_MAC, AGENT_MAC, 0x0800, &hdr);
    frame.extend_from_slice(&reply);
    assert_eq!(single_tx(&t.run(AGENT_VIF, &frame)), (vm1.vif, reply));
}

// ---- routes ---------------------------------------------------------------------

#[test]
fn route_table_longest_prefix_match_v4_and_v6() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, v6(3), false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, v6(4), false);
    let rd = |nh| RouteData {
        nh,
        ..RouteData::default()
    };
    let r = &mut t.router;
    r.route_add(VRF1, Prefix::V4([10, 0, 0, 0], 8), rd(vm1.nh))
        .unwrap();
    r.route_add(VRF1, Prefix::V4([10, 1, 0, 0], 16), rd(vm2.nh))
        .unwrap();
    r.route_add(VRF1, Prefix::V4([10, 1, 2, 0], 24), rd(vm1.nh))
        .unwrap();
    r.route_add(VRF1, Prefix::V4([10, 1, 2, 128], 25), rd(vm2.nh))
        .unwrap();
    let l = |r: &Router, a| r.routes().lookup4(VRF1, &a).map(|d| d.nh);
    assert_eq!(l(r, [10, 9, 9, 9]), Some(vm1.nh));
    assert_eq!(l(r, [10, 1, 9, 9]), Some(vm2.nh));
    assert_eq!(l(r, [10, 1, 2, 1]), Some(vm1.nh));
    assert_eq!(l(r, [10, 1, 2, 200]), Some(vm2.nh));
    assert_eq!(l(r, [11, 0, 0, 0]), None);
    r.route_del(VRF1, Prefix::V4([10, 1, 2, 0], 24)).unwrap();
    assert_eq!(l(r, [10, 1, 2, 1]), Some(vm2.nh), "the /16 covers again");
    assert_eq!(
        r.route_del(VRF1, Prefix::V4([10, 1, 2, 0], 24)),
        Err(ConfigError::NotFound("route"))
    );
    let mut p = v6(0);
    p[4] = 0xab;
    r.route_add(VRF1, Prefix::V6(v6(0), 32), rd(vm1.nh))
        .unwrap();
    r.route_add(VRF1, Prefix::V6(p, 48), rd(vm2.nh)).unwrap();
    let mut a = p;
    a[15] = 0x77;
    assert_eq!(r.routes().lookup6(VRF1, &a).map(|d| d.nh), Some(vm2.nh));
    a[4] = 0;
    assert_eq!(r.routes().lookup6(VRF1, &a).map(|d| d.nh), Some(vm1.nh));
    // Routed packets follow the LPM result.
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, [10, 1, 2, 200], 64);
    assert_eq!(single_tx(&t.run(vm1.vif, &f)).0, vm2.vif);
}

// ---- flows ------------------------------------------------------------------------

fn allow(t: &mut Topo, flow: u32, action: u16) -> FlowSetOutcome {
    t.decide_flow(flow, action).unwrap()
}

fn held_flow(outs: &[Output]) -> u32 {
    outs.iter()
        .find_map(|o| match o {
            Output::Hold { flow } => Some(*flow),
            _ => None,
        })
        .unwrap_or_else(|| panic!("not held: {outs:?}"))
}

#[test]
fn flow_hold_queue_is_bounded_then_released() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP, 64);
    let first = t.run(vm1.vif, &f);
    assert_eq!(tx(&first).len(), 1, "one FLOW_MISS trap");
    let flow = held_flow(&first);
    // Two more are held without another trap; the fourth is over the bound.
    assert_eq!(t.run(vm1.vif, &f), vec![Output::Hold { flow }]);
    assert_eq!(t.run(vm1.vif, &f), vec![Output::Hold { flow }]);
    assert_eq!(
        t.run(vm1.vif, &f),
        vec![Output::Drop(DropReason::FlowQueueLimitExceeded)]
    );
    assert!(allow(&mut t, flow, VR_FLOW_ACTION_FORWARD).release_held);
    assert!(t.router.flows().get(flow).unwrap().is_active());
    // Re-injection of the three held packets: all forwarded.
    let outs = t.run_batch(vm1.vif, &[&f, &f, &f]);
    for o in outs {
        assert_eq!(single_tx(&o), (vm2.vif, f.clone()));
    }
    assert_eq!(t.router.flows().get(flow).unwrap().packets(), 3);
}

#[test]
fn flow_drop_action_drops_and_counts() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP, 64);
    let flow = held_flow(&t.run(vm1.vif, &f));
    allow(&mut t, flow, VR_FLOW_ACTION_DROP);
    assert_eq!(
        t.run(vm1.vif, &f),
        vec![Output::Drop(DropReason::FlowActionDrop)]
    );
    assert_eq!(t.router.drop_stats().get(DropReason::FlowActionDrop), 1);
    // Deleting the flow makes the next packet a miss again.
    assert_eq!(t.router.flow_del(flow, None), Ok(false));
    assert!(matches!(
        t.run(vm1.vif, &f).last(),
        Some(Output::Hold { .. })
    ));
}

#[test]
fn stale_generation_is_refused() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP, 64);
    let flow = held_flow(&t.run(vm1.vif, &f));
    let fe = *t.router.flows().get(flow).unwrap();
    let req = FlowSet {
        index: Some(flow),
        gen_id: Some(fe.gen_id.wrapping_add(1)),
        key: *fe.key(),
        action: VR_FLOW_ACTION_FORWARD,
        flags: 0,
        rflow: None,
        dvrf: None,
        ecmp_nh_index: -1,
        drop_reason: 0,
        src_nh_index: 0,
    };
    assert_eq!(t.router.flow_set(&req).unwrap_err().errno(), -116);
}

#[test]
fn dnat_flow_rewrites_destination_from_reverse_key() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    // VM1 talks to a floating address that maps to VM2.
    let fip = [198, 18, 1, 99];
    t.router
        .route_add(
            VRF1,
            Prefix::V4(fip, 32),
            RouteData {
                nh: vm2.nh,
                ..RouteData::default()
            },
        )
        .unwrap();
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, fip, 64);
    let flow = held_flow(&t.run(vm1.vif, &f));
    let fwd_key = *t.router.flows().get(flow).unwrap().key();
    // Reverse entry: as VM2 will send it (from its real address).
    let rkey = FlowKey::new(FLOW_AF_INET, 17, 7, 40000, vm2.nh, pad(VM2_IP), pad(VM1_IP));
    let r = t
        .router
        .flow_set(&FlowSet {
            index: None,
            gen_id: None,
            key: rkey,
            action: VR_FLOW_ACTION_FORWARD,
            flags: 0,
            rflow: Some(flow),
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: vm2.nh,
        })
        .unwrap();
    let gen = t.router.flows().get(flow).unwrap().gen_id;
    t.router
        .flow_set(&FlowSet {
            index: Some(flow),
            gen_id: Some(gen),
            key: fwd_key,
            action: VR_FLOW_ACTION_NAT,
            flags: VR_FLOW_FLAG_DNAT,
            rflow: Some(r.index),
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: vm1.nh,
        })
        .unwrap();
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, vm2.vif);
    // Exact bytes: destination rewritten, IP and UDP checksums valid.
    assert_eq!(bytes, udp_frame(VROUTER_MAC, VM2_MAC, VM1_IP, VM2_IP, 63));
}

fn pad(a: [u8; 4]) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(&a);
    p
}

// ---- ECMP, TTL, fragments, jumbo ------------------------------------------------------

#[test]
fn ecmp_composite_spreads_flows_and_keeps_each_on_one_path() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let a = t.add_tunnel_nh(TunnelKind::MplsOverUdp);
    let b = t.add_tunnel_nh(TunnelKind::MplsOverGre);
    let ecmp = t.alloc_nh();
    t.router
        .nh_add(Nexthop {
            id: ecmp,
            family: AF_INET,
            flags: NhFlags::VALID | NhFlags::COMPOSITE_ECMP,
            vrf: VRF1,
            kind: NhKind::Composite {
                components: vec![
                    Component { nh: a, label: 100 },
                    Component { nh: b, label: 200 },
                ],
            },
        })
        .unwrap();
    let svc = [198, 18, 1, 200];
    t.router
        .route_add(
            VRF1,
            Prefix::V4(svc, 32),
            RouteData {
                nh: ecmp,
                ..RouteData::default()
            },
        )
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    for sport in 1000..1064u16 {
        let f = eth(
            VROUTER_MAC,
            VM1_MAC,
            0x0800,
            &ipv4(
                VM1_IP,
                svc,
                17,
                64,
                1,
                0,
                &udp4(VM1_IP, svc, sport, 80, b"x"),
            ),
        );
        let (_, bytes) = single_tx(&t.run(vm1.vif, &f));
        let gre = bytes[23] == 47;
        let again = single_tx(&t.run(vm1.vif, &f)).1;
        assert_eq!(again[23] == 47, gre, "a flow stays on its member");
        *seen.entry(gre).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both members used: {seen:?}");
}

#[test]
fn ttl_one_is_trapped_as_zero_ttl() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, 1);
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, AGENT_VIF);
    let (h, inner) = agent_frame(&bytes);
    assert_eq!((h.cmd, h.ifindex, h.vrf), (cmd::ZERO_TTL, vm1.vif, VRF1));
    assert_eq!(inner, f);
}

#[test]
fn fragments_follow_the_first_fragments_flow() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let udp = udp4(VM1_IP, VM2_IP, 40000, 7, &[0x5a; 64]);
    let first = eth(
        VM2_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(VM1_IP, VM2_IP, 17, 64, 77, 0x2000, &udp[..32]),
    );
    let second = eth(
        VM2_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(VM1_IP, VM2_IP, 17, 64, 77, 4, &udp[32..]),
    );
    // A later fragment with no first fragment seen: no ports, dropped.
    assert_eq!(
        t.run(vm1.vif, &second),
        vec![Output::Drop(DropReason::NoFragEntry)]
    );
    let flow = held_flow(&t.run(vm1.vif, &first));
    allow(&mut t, flow, VR_FLOW_ACTION_FORWARD);
    assert_eq!(single_tx(&t.run(vm1.vif, &first)), (vm2.vif, first.clone()));
    assert_eq!(
        single_tx(&t.run(vm1.vif, &second)),
        (vm2.vif, second.clone())
    );
    assert_eq!(t.router.flows().get(flow).unwrap().packets(), 2);
}

#[test]
fn oversize_df_packet_is_trapped_with_the_path_mtu() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        40,
    );
    let big = eth(
        VROUTER_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(
            VM1_IP,
            REMOTE_IP,
            17,
            64,
            5,
            0x4000,
            &udp4(VM1_IP, REMOTE_IP, 1, 2, &[0u8; 1472]),
        ),
    );
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &big));
    assert_eq!(vif, AGENT_VIF);
    let (h, _) = agent_frame(&bytes);
    assert_eq!(h.cmd, cmd::HANDLE_DF);
    // 1500 - 20 (IP) - 8 (UDP) - 4 (MPLS).
    assert_eq!(h.param, 1468);
}

#[test]
fn oversize_packet_without_df_is_fragmented_into_the_tunnel() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        40,
    );
    let payload: Vec<u8> = (0..1472u32).map(|i| i as u8).collect();
    let udp = udp4(VM1_IP, REMOTE_IP, 1, 2, &payload);
    let big = eth(
        VROUTER_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(VM1_IP, REMOTE_IP, 17, 64, 5, 0, &udp),
    );
    let outs = t.run(vm1.vif, &big);
    let frames = tx(&outs);
    assert_eq!(frames.len(), 2, "{outs:?}");
    assert_eq!(outs.last(), Some(&Output::Consumed));
    // Reassemble the inner datagram from the two fragments.
    let mut data = vec![0u8; udp.len()];
    for (i, (vif, f)) in frames.iter().enumerate() {
        assert_eq!(*vif, FABRIC_VIF);
        assert!(f.len() - 14 <= 1500);
        let inner = &f[14 + 20 + 8 + 4..];
        let off = (u16::from_be_bytes([inner[6], inner[7]]) & 0x1fff) as usize * 8;
        let more = inner[6] & 0x20 != 0;
        assert_eq!(more, i == 0);
        assert_eq!(inner[8], 63, "TTL decremented");
        assert_eq!(csum(&inner[..20], 0), 0, "inner header checksum");
        assert_eq!(csum(&f[14..34], 0), 0, "outer header checksum");
        let body = &inner[20..];
        data[off..off + body.len()].copy_from_slice(body);
    }
    assert_eq!(data, udp);
}

#[test]
fn jumbo_frames_pass_between_jumbo_vifs() {
    let mut cfg = RouterConfig::small();
    cfg.max_held_per_flow = 3;
    let mut t = Topo::new(cfg);
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    for v in [vm1.vif, vm2.vif] {
        let mut c = t.router.vif(v).unwrap().cfg.clone();
        c.mtu = 9000;
        t.router.vif_add(c).unwrap();
    }
    let f = eth(
        VM2_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(
            VM1_IP,
            VM2_IP,
            17,
            64,
            5,
            0x4000,
            &udp4(VM1_IP, VM2_IP, 1, 2, &[7u8; 8972]),
        ),
    );
    assert_eq!(single_tx(&t.run(vm1.vif, &f)), (vm2.vif, f.clone()));
    // To a 1500-byte vif the same DF frame is trapped for an ICMP error.
    let mut c = t.router.vif(vm2.vif).unwrap().cfg.clone();
    c.mtu = 1500;
    t.router.vif_add(c).unwrap();
    let (vif, bytes) = single_tx(&t.run(vm1.vif, &f));
    assert_eq!(vif, AGENT_VIF);
    assert_eq!(agent_frame(&bytes).0.param, 1500);
}

// ---- drop statistics -------------------------------------------------------------------

#[test]
fn every_drop_reason_we_emit_is_counted() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let mut expect: Vec<DropReason> = Vec::new();
    let mut check = |t: &mut Topo, vif: u16, f: Vec<u8>, r: DropReason| {
        assert_eq!(t.run(vif, &f), vec![Output::Drop(r)], "{r:?}");
        expect.push(r);
    };
    // Shorter than an Ethernet header (upstream `vif_drop_pkt`).
    check(&mut t, vm1.vif, vec![1, 2, 3], DropReason::InterfaceDrop);
    check(
        &mut t,
        vm1.vif,
        udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, [203, 0, 113, 1], 64),
        DropReason::NowhereToGo,
    );
    check(
        &mut t,
        vm1.vif,
        udp_frame(VM1_MAC, [0x02, 9, 9, 9, 9, 9], VM1_IP, VM2_IP, 64),
        DropReason::L2NoRoute,
    );
    check(
        &mut t,
        vm1.vif,
        eth(
            [0xff; 6],
            VM1_MAC,
            0x0806,
            &arp(1, VM1_MAC, VM1_IP, [0; 6], [203, 0, 113, 1]),
        ),
        DropReason::InvalidArp,
    );
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        1,
        50000,
        6635,
        &mpls(999, &[0x45; 40]),
    );
    check(&mut t, FABRIC_VIF, wire, DropReason::InvalidLabel);
    let wire = outer_udp(
        PEER_MAC,
        FABRIC_MAC,
        PEER_IP,
        FABRIC_IP,
        1,
        50000,
        4789,
        &vxlan(77, &[0; 60]),
    );
    check(&mut t, FABRIC_VIF, wire, DropReason::InvalidVnid);
    t.router
        .route_add(
            VRF1,
            Prefix::V4([203, 0, 113, 0], 24),
            RouteData {
                nh: DISCARD_NH,
                ..RouteData::default()
            },
        )
        .unwrap();
    check(
        &mut t,
        vm1.vif,
        udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, [203, 0, 113, 1], 64),
        DropReason::Discard,
    );
    t.router
        .route_add(
            VRF1,
            Prefix::V4([203, 0, 114, 0], 24),
            RouteData {
                nh: 555,
                ..RouteData::default()
            },
        )
        .unwrap();
    check(
        &mut t,
        vm1.vif,
        udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, [203, 0, 114, 1], 64),
        DropReason::InvalidNh,
    );
    check(
        &mut t,
        60,
        udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, 64),
        DropReason::InvalidIf,
    );
    let mut cfg = RouterConfig::small();
    cfg.new_flow_policy = NewFlowPolicy::Drop;
    let mut t2 = Topo::new(cfg);
    let p1 = t2.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    t2.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    assert_eq!(
        t2.run(p1.vif, &udp_frame(VM1_MAC, VM2_MAC, VM1_IP, VM2_IP, 64)),
        vec![Output::Drop(DropReason::DropNewFlow)]
    );
    assert_eq!(t2.router.drop_stats().get(DropReason::DropNewFlow), 1);
    for r in &expect {
        assert_eq!(t.router.drop_stats().get(*r), 1, "{r:?}");
    }
    assert_eq!(t.router.drop_stats().total(), expect.len() as u64);
}

#[test]
fn flow_table_full_is_a_drop_reason() {
    let mut cfg = RouterConfig::small();
    cfg.flow_entries = 4;
    cfg.oflow_entries = 0;
    let mut t = Topo::new(cfg);
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let mut full = 0;
    for sport in 0..64u16 {
        let f = eth(
            VM2_MAC,
            VM1_MAC,
            0x0800,
            &ipv4(
                VM1_IP,
                VM2_IP,
                17,
                64,
                1,
                0,
                &udp4(VM1_IP, VM2_IP, sport, 7, b""),
            ),
        );
        if t.run(vm1.vif, &f)
            .contains(&Output::Drop(DropReason::FlowTableFull))
        {
            full += 1;
        }
    }
    assert_eq!(full, 60);
    assert_eq!(t.router.drop_stats().get(DropReason::FlowTableFull), 60);
}

// ---- what traps carry, as upstream's agent_send and vr_trap_flow --------

/// A UDP frame of `total` bytes (Ethernet included) from vm1.
fn sized_udp(dmac: [u8; 6], dip: [u8; 4], ttl: u8, total: usize) -> Vec<u8> {
    let payload = vec![0x5a; total - 14 - 20 - 8];
    eth(
        dmac,
        VM1_MAC,
        0x0800,
        &ipv4(
            VM1_IP,
            dip,
            17,
            ttl,
            9,
            0,
            &udp4(VM1_IP, dip, 4000, 53, &payload),
        ),
    )
}

#[test]
fn traps_are_cut_per_code_as_upstream() {
    use dp_core::agent::AGENT_MIN_PACKET_LEN;
    assert_eq!(AGENT_MIN_PACKET_LEN, 190);
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let inner_of = |outs: &[Output]| -> (u16, Vec<u8>) {
        let (_, bytes) = tx(outs)
            .into_iter()
            .find(|(v, _)| *v == AGENT_VIF)
            .unwrap_or_else(|| panic!("no trap: {outs:?}"));
        let (h, inner) = agent_frame(&bytes);
        (h.cmd, inner)
    };
    // ZERO_TTL: cut to VR_AGENT_MIN_PACKET_LEN.
    let big = sized_udp(VROUTER_MAC, VM2_IP, 1, 1000);
    let (c, inner) = inner_of(&t.run(vm1.vif, &big));
    assert_eq!((c, inner.as_slice()), (cmd::ZERO_TTL, &big[..190]));
    // A short one is not padded.
    let small = sized_udp(VROUTER_MAC, VM2_IP, 1, 100);
    assert_eq!(inner_of(&t.run(vm1.vif, &small)).1, small);
    // FLOW_MISS of a plain frame: the whole frame.
    let f = sized_udp(VROUTER_MAC, VM2_IP, 64, 1000);
    let (c, inner) = inner_of(&t.run(vm1.vif, &f));
    assert_eq!((c, inner), (cmd::FLOW_MISS, f.clone()));
    // FLOW_MISS of a GSO segment: cut.
    let g = sized_udp(VROUTER_MAC, [198, 18, 0, 99], 64, 1000);
    t.router
        .route_add(
            VRF1,
            Prefix::V4([198, 18, 0, 99], 32),
            t.router.route_get(VRF1, Prefix::V4(VM2_IP, 32)).unwrap(),
        )
        .unwrap();
    let (c, inner) = inner_of(&t.run_gso(vm1.vif, &g));
    assert_eq!((c, inner.as_slice()), (cmd::FLOW_MISS, &g[..190]));
    // ZERO_TTL of a GSO segment: cut too; a protocol trap (DHCP) of a GSO
    // segment is not (upstream: `agent_trap_may_truncate`).
    let (c, inner) = inner_of(&t.run_gso(vm1.vif, &big));
    assert_eq!((c, inner.len()), (cmd::ZERO_TTL, 190));
    let dhcp = eth(
        [0xff; 6],
        VM1_MAC,
        0x0800,
        &ipv4(
            [0; 4],
            [255; 4],
            17,
            64,
            1,
            0,
            &udp4([0; 4], [255; 4], 68, 67, &[0u8; 600]),
        ),
    );
    let (c, inner) = inner_of(&t.run_gso(vm1.vif, &dhcp));
    assert_eq!((c, inner), (cmd::L3_PROTOCOLS, dhcp));
}

#[test]
fn a_decided_flow_set_back_to_hold_traps_flow_action_hold_with_its_stats() {
    let mut t = topo();
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let f = udp_frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, 64);
    let trap_of = |outs: &[Output]| -> AgentHdr {
        let (_, bytes) = tx(outs)
            .into_iter()
            .find(|(v, _)| *v == AGENT_VIF)
            .unwrap_or_else(|| panic!("no trap: {outs:?}"));
        agent_frame(&bytes).0
    };
    // New: FLOW_MISS, with the new entry's statistics (none yet), its
    // next hop and generation.
    let outs = t.run(vm1.vif, &f);
    let flow = held_flow(&outs);
    let h = trap_of(&outs);
    let gen = t.router.flows().get(flow).unwrap().gen_id;
    assert_eq!(
        (h.cmd, h.param, h.param_1, h.param_2, h.param_3, h.param_4, h.param_5),
        (cmd::FLOW_MISS, flow, vm1.nh, 0, 0, 0, gen)
    );
    assert!(
        t.router.flows().get(flow).unwrap().flags & VR_FLOW_FLAG_NEW_FLOW == 0,
        "the trap clears NEW_FLOW"
    );
    // Only the first held packet traps.
    assert!(!t
        .run(vm1.vif, &f)
        .iter()
        .any(|o| matches!(o, Output::Tx { vif: AGENT_VIF, .. })));
    allow(&mut t, flow, VR_FLOW_ACTION_FORWARD);
    for _ in 0..3 {
        assert_eq!(single_tx(&t.run(vm1.vif, &f)).0, vm2.vif);
    }
    let fe = *t.router.flows().get(flow).unwrap();
    assert_eq!(fe.packets(), 3);
    // Set back to hold (a FLOW_SET with action HOLD): the next packet is
    // held and trapped as FLOW_ACTION_HOLD (the flow is not new), with the
    // entry's counters.
    allow(&mut t, flow, VR_FLOW_ACTION_HOLD);
    let outs = t.run(vm1.vif, &f);
    assert_eq!(held_flow(&outs), flow);
    let h = trap_of(&outs);
    assert_eq!(
        (h.cmd, h.param, h.param_2, h.param_3, h.param_4, h.param_5),
        (
            cmd::FLOW_ACTION_HOLD,
            flow,
            fe.stats_bytes,
            3,
            fe.stats_oflow(),
            fe.gen_id
        )
    );
    assert!(!t
        .run(vm1.vif, &f)
        .iter()
        .any(|o| matches!(o, Output::Tx { vif: AGENT_VIF, .. })));
    // Decided again: the held packets go.
    assert!(allow(&mut t, flow, VR_FLOW_ACTION_FORWARD).release_held);
}
