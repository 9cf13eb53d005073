//! The route cache (`pipeline/route_cache.rs`) never outlives the state it
//! was computed from: a route, next hop, vif, label or VRF changed between
//! two batches, the next packet follows the new state. Each test first
//! warms the cache (and checks the second packet was answered from it), so
//! a missed invalidation would forward by the old state.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::nexthop::AF_INET;
use dp_core::route::rt_flags;
use dp_core::testkit::*;
use dp_core::*;

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x01];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];
const REMOTE_IP: [u8; 4] = [198, 18, 1, 10];
const OTHER_PEER: [u8; 4] = [192, 0, 2, 77];
const VRF1: u16 = 1;

fn udp(sip: [u8; 4], dip: [u8; 4], sport: u16) -> Vec<u8> {
    eth(
        VROUTER_MAC,
        VM1_MAC,
        0x0800,
        &ipv4(sip, dip, 17, 64, 1, 0, &udp4(sip, dip, sport, 7, b"cache")),
    )
}

/// The one transmit of `outs`.
fn one_tx(outs: &[Output]) -> (u16, Vec<u8>) {
    match outs {
        [Output::Tx { vif, bytes }] => (*vif, bytes.clone()),
        _ => panic!("expected one transmit, got {outs:?}"),
    }
}

/// Outer destination IP and MPLS label of an MPLSoUDP frame.
fn outer_dip_label(f: &[u8]) -> ([u8; 4], u32) {
    let dip = f[30..34].try_into().unwrap();
    let word = u32::from_be_bytes(f[42..46].try_into().unwrap());
    (dip, word >> 12)
}

/// VM1 (policy off) and a remote VM behind an MPLSoUDP tunnel.
fn topo() -> (Topo, Vm, u32) {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let tnh = t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        100,
    );
    (t, vm1, tnh)
}

/// Send to the remote VM twice; the second is a cache hit. Returns the
/// outer destination and label of the second.
fn warm(t: &mut Topo, vm1: &Vm) -> ([u8; 4], u32) {
    let f = udp(VM1_IP, REMOTE_IP, 1000);
    let first = one_tx(&t.run(vm1.vif, &f));
    let (hits, _) = t.router.route_cache_stats();
    let second = one_tx(&t.run(vm1.vif, &f));
    assert_eq!(
        t.router.route_cache_stats().0,
        hits + 1,
        "the second packet to the same destination is answered from the cache"
    );
    assert_eq!((first.0, second.0), (FABRIC_VIF, FABRIC_VIF));
    // The same but for the outer IP identification (and its checksum).
    assert_eq!(first.1[..18], second.1[..18]);
    assert_eq!(first.1[26..], second.1[26..]);
    outer_dip_label(&second.1)
}

#[test]
fn a_changed_route_label_is_followed_by_the_next_packet() {
    let (mut t, vm1, tnh) = topo();
    assert_eq!(warm(&mut t, &vm1), (PEER_IP, 100));
    t.router
        .route_add(
            VRF1,
            Prefix::V4(REMOTE_IP, 32),
            RouteData {
                nh: tnh,
                label: 222,
                flags: rt_flags::LABEL_VALID,
                mac: REMOTE_MAC,
            },
        )
        .unwrap();
    let (_, f) = one_tx(&t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)));
    assert_eq!(outer_dip_label(&f), (PEER_IP, 222));
}

#[test]
fn a_more_specific_route_and_a_deleted_route_are_followed() {
    let (mut t, vm1, _) = topo();
    // A /24 to the peer; the /32 to REMOTE_IP goes, the /24 takes over.
    let tnh2 = t.add_tunnel_nh(TunnelKind::MplsOverUdp);
    t.router
        .route_add(
            VRF1,
            Prefix::V4([198, 18, 1, 0], 24),
            RouteData {
                nh: tnh2,
                label: 300,
                flags: rt_flags::LABEL_VALID,
                mac: [0; 6],
            },
        )
        .unwrap();
    assert_eq!(warm(&mut t, &vm1), (PEER_IP, 100));
    t.router.route_del(VRF1, Prefix::V4(REMOTE_IP, 32)).unwrap();
    let (_, f) = one_tx(&t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)));
    assert_eq!(outer_dip_label(&f), (PEER_IP, 300));
    // And no route at all: dropped, not forwarded by the cached answer.
    t.router
        .route_del(VRF1, Prefix::V4([198, 18, 1, 0], 24))
        .unwrap();
    assert_eq!(
        t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)),
        vec![Output::Drop(DropReason::NowhereToGo)]
    );
    // The whole VRF reset, after the cache learned the /32 again.
    t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        100,
    );
    warm(&mut t, &vm1);
    t.router.vrf_reset(VRF1);
    assert_eq!(
        t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)),
        vec![Output::Drop(DropReason::NowhereToGo)]
    );
}

#[test]
fn a_changed_or_deleted_next_hop_is_followed() {
    let (mut t, vm1, tnh) = topo();
    assert_eq!(warm(&mut t, &vm1), (PEER_IP, 100));
    // The tunnel now goes to another node.
    let mut nh = t.router.nh(tnh).unwrap().clone();
    if let NhKind::Tunnel { dip, .. } = &mut nh.kind {
        *dip = OTHER_PEER;
    }
    t.router.nh_add(nh).unwrap();
    let (_, f) = one_tx(&t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)));
    assert_eq!(outer_dip_label(&f), (OTHER_PEER, 100));
    // Replaced by a discard next hop, then deleted.
    t.router
        .nh_add(Nexthop {
            id: tnh,
            family: AF_INET,
            flags: NhFlags::VALID,
            vrf: 0,
            kind: NhKind::Discard,
        })
        .unwrap();
    assert_eq!(
        t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)),
        vec![Output::Drop(DropReason::Discard)]
    );
    t.router.nh_del(tnh).unwrap();
    assert_eq!(
        t.run(vm1.vif, &udp(VM1_IP, REMOTE_IP, 1000)),
        vec![Output::Drop(DropReason::InvalidNh)]
    );
}

#[test]
fn a_changed_output_vif_is_followed() {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], false);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    let f = udp(VM1_IP, VM2_IP, 1000);
    assert_eq!(one_tx(&t.run(vm1.vif, &f)).0, vm2.vif);
    let (hits, _) = t.router.route_cache_stats();
    assert_eq!(one_tx(&t.run(vm1.vif, &f)).0, vm2.vif);
    assert_eq!(t.router.route_cache_stats().0, hits + 1);
    assert_eq!(t.router.flows().len(), 0, "no policy, no flows");
    // VM2's port turns policy on: the next packet is checked (a new flow,
    // held for the agent) although VM1's port has no policy.
    let mut cfg = t.router.vif(vm2.vif).unwrap().cfg.clone();
    cfg.flags |= VifFlags::POLICY_ENABLED;
    t.router.vif_add(cfg).unwrap();
    let outs = t.run(vm1.vif, &f);
    assert!(
        outs.iter().any(|o| matches!(o, Output::Hold { .. })),
        "held for the agent: {outs:?}"
    );
    // VM2's port gone: nothing goes to it.
    t.router.vif_del(vm2.vif).unwrap();
    let outs = t.run(vm1.vif, &f);
    assert!(
        outs.iter()
            .all(|o| !matches!(o, Output::Tx { vif, .. } if *vif == vm2.vif)),
        "{outs:?}"
    );
    assert!(matches!(outs.as_slice(), [Output::Drop(_)]), "{outs:?}");
}

#[test]
fn a_changed_label_and_source_route_are_followed_on_decap() {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    let tnh = t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        100,
    );
    let decap = |label: u32, dst: [u8; 4]| {
        let inner = ipv4(
            REMOTE_IP,
            dst,
            17,
            64,
            1,
            0,
            &udp4(REMOTE_IP, dst, 2000, 7, b"in"),
        );
        outer_udp(
            PEER_MAC,
            FABRIC_MAC,
            PEER_IP,
            FABRIC_IP,
            1,
            0xc000,
            6635,
            &mpls(label, &inner),
        )
    };
    // VM1 has policy: the first packet makes a flow whose key's next hop is
    // the source route's (the tunnel); decided, the next ones go through.
    let outs = t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP));
    let Some(Output::Hold { flow }) = outs.iter().find(|o| matches!(o, Output::Hold { .. })) else {
        panic!("held: {outs:?}");
    };
    let flow = *flow;
    assert_eq!(t.router.flows().get_valid(flow).unwrap().key().nh_id(), tnh);
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    assert_eq!(
        one_tx(&t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP))).0,
        vm1.vif
    );
    assert_eq!(
        one_tx(&t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP))).0,
        vm1.vif
    );
    // The remote's route moves to another tunnel: the same packet now has
    // another flow key (a new flow, held), not the cached source next hop.
    let tnh2 = t.add_tunnel_nh(TunnelKind::MplsOverUdp);
    t.router
        .route_add(
            VRF1,
            Prefix::V4(REMOTE_IP, 32),
            RouteData {
                nh: tnh2,
                label: 100,
                flags: rt_flags::LABEL_VALID,
                mac: REMOTE_MAC,
            },
        )
        .unwrap();
    let outs = t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP));
    let Some(Output::Hold { flow: f2 }) = outs.iter().find(|o| matches!(o, Output::Hold { .. }))
    else {
        panic!("a new flow, held: {outs:?}");
    };
    assert_eq!(t.router.flows().get_valid(*f2).unwrap().key().nh_id(), tnh2);
    // VM1's label now points at VM2's next hop: delivered to VM2.
    t.router.mpls_add(vm1.label, vm2.nh).unwrap();
    for _ in 0..2 {
        assert_eq!(
            one_tx(&t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP))).0,
            vm2.vif
        );
    }
    // Our fabric address is no longer ours: the tunnel packet passes
    // through to the host instead of being decapsulated.
    t.router
        .route_del(FABRIC_VRF, Prefix::V4(FABRIC_IP, 32))
        .unwrap();
    assert_eq!(
        t.run(FABRIC_VIF, &decap(vm1.label, VM1_IP)),
        vec![Output::Tx {
            vif: HOST_VIF,
            bytes: decap(vm1.label, VM1_IP)
        }]
    );
}

#[test]
fn ecmp_is_not_frozen_by_the_cache() {
    let (mut t, vm1, tnh) = topo();
    let tnh2 = t.add_tunnel_nh(TunnelKind::MplsOverUdp);
    let mut nh = t.router.nh(tnh2).unwrap().clone();
    if let NhKind::Tunnel { dip, .. } = &mut nh.kind {
        *dip = OTHER_PEER;
    }
    t.router.nh_add(nh).unwrap();
    let ecmp = t.alloc_nh();
    t.router
        .nh_add(Nexthop {
            id: ecmp,
            family: AF_INET,
            flags: NhFlags::VALID | NhFlags::COMPOSITE_ECMP,
            vrf: VRF1,
            kind: NhKind::Composite {
                components: vec![
                    Component {
                        nh: tnh,
                        label: 100,
                    },
                    Component {
                        nh: tnh2,
                        label: 200,
                    },
                ],
            },
        })
        .unwrap();
    t.router
        .route_add(
            VRF1,
            Prefix::V4(REMOTE_IP, 32),
            RouteData {
                nh: ecmp,
                label: 0,
                flags: 0,
                mac: REMOTE_MAC,
            },
        )
        .unwrap();
    // Many flows to one destination, one per batch: both members are used,
    // each flow always by the same one.
    let mut seen = std::collections::BTreeSet::new();
    for sport in 1000..1064 {
        let f = udp(VM1_IP, REMOTE_IP, sport);
        let a = outer_dip_label(&one_tx(&t.run(vm1.vif, &f)).1);
        let b = outer_dip_label(&one_tx(&t.run(vm1.vif, &f)).1);
        assert_eq!(a, b);
        seen.insert(a);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![(PEER_IP, 100), (OTHER_PEER, 200)]
    );
}
