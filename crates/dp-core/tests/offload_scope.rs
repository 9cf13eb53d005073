//! [`Router::offload_depends_on_route`] against the core itself: for each
//! kind of offloaded flow (routed and bridged between local VMs, into a
//! tunnel, out of one) and each kind of route change, the flow's next
//! packet is run through the core before and after the change. Whenever
//! the core's output changed, the route must have been reported as one the
//! flow depends on (a fast path keeping the old decision would forward by
//! stale state); routes that cannot matter must not be (else every route
//! change would empty the fast path, as it did before).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::testkit::*;
use dp_core::*;

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x01];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 0x01];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];
const REMOTE_IP: [u8; 4] = [198, 18, 1, 10];
const VRF1: u16 = 1;
const VRF2: u16 = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Routed,
    Bridged,
    Encap,
    Decap,
}

/// The objects [`setup`] made.
#[derive(Clone, Copy)]
struct Ids {
    vm1: Vm,
    vm2: Vm,
    /// The tunnel next hop to the remote VM.
    tunnel: u32,
}

/// A topology with VM1 and VM2 local (policy on) and a remote VM behind an
/// MPLSoUDP tunnel, and the frame of one UDP flow of `kind`.
fn setup(kind: Kind) -> (Topo, u16, Vec<u8>) {
    let (t, vif, frame, _) = setup_ids(kind);
    (t, vif, frame)
}

fn setup_ids(kind: Kind) -> (Topo, u16, Vec<u8>, Ids) {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, VRF1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, VRF1, VM2_MAC, VM2_IP, [0; 16], true);
    let tunnel = t.add_remote_vm(
        VRF1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        100,
    );
    let from_vm1 = |dmac, dip| {
        eth(
            dmac,
            VM1_MAC,
            0x0800,
            &ipv4(VM1_IP, dip, 17, 64, 1, 0, &udp4(VM1_IP, dip, 2000, 7, b"x")),
        )
    };
    let (vif, frame) = match kind {
        Kind::Routed => (3, from_vm1(VROUTER_MAC, VM2_IP)),
        Kind::Bridged => (3, from_vm1(VM2_MAC, VM2_IP)),
        Kind::Encap => (3, from_vm1(VROUTER_MAC, REMOTE_IP)),
        Kind::Decap => {
            let inner = ipv4(
                REMOTE_IP,
                VM1_IP,
                17,
                64,
                1,
                0,
                &udp4(REMOTE_IP, VM1_IP, 2000, 7, b"x"),
            );
            let f = outer_udp(
                PEER_MAC,
                FABRIC_MAC,
                PEER_IP,
                FABRIC_IP,
                1,
                0xc000,
                6635,
                &mpls(vm1.label, &inner),
            );
            (FABRIC_VIF, f)
        }
    };
    (t, vif, frame, Ids { vm1, vm2, tunnel })
}

/// Sets the flow up (held, decided FORWARD, forwarded twice: a UDP flow is
/// offloadable from its second datagram) and returns its hint and the
/// core's output for its next packet.
fn offloaded(t: &mut Topo, vif: u16, frame: &[u8], kind: Kind) -> (OffloadHint, Vec<Output>) {
    t.router.set_offload_hints(true);
    let outs = t.run(vif, frame);
    let Some(Output::Hold { flow }) = outs.iter().find(|o| matches!(o, Output::Hold { .. })) else {
        panic!("{kind:?}: not held: {outs:?}");
    };
    t.decide_flow(*flow, VR_FLOW_ACTION_FORWARD).unwrap();
    t.run(vif, frame);
    let out = t.run(vif, frame);
    let mut hints = Vec::new();
    t.router.take_offload_hints(|h| hints.push(*h));
    let h = *hints.last().unwrap_or_else(|| panic!("{kind:?}: no hint"));
    match kind {
        Kind::Routed => assert!(h.macs.is_some() && h.tunnel.is_none() && h.decap.is_none()),
        Kind::Bridged => assert!(h.macs.is_none() && h.tunnel.is_none() && h.decap.is_none()),
        Kind::Encap => assert!(h.tunnel.is_some()),
        Kind::Decap => assert!(h.decap.is_some()),
    }
    (h, out)
}

/// `outs` without what differs per packet anyway: the outer IPv4
/// identification and checksum of a frame into a tunnel.
fn comparable(outs: &[Output]) -> Vec<Output> {
    outs.iter()
        .cloned()
        .map(|o| match o {
            Output::Tx { vif, mut bytes } if vif == FABRIC_VIF && bytes.len() >= 34 => {
                bytes[18..20].fill(0);
                bytes[24..26].fill(0);
                Output::Tx { vif, bytes }
            }
            o => o,
        })
        .collect()
}

fn to(nh: u32) -> RouteData {
    RouteData {
        nh,
        label: 0,
        flags: 0,
        mac: [0; 6],
    }
}

/// A route change: applied to the router, and what it names.
type Change = (&'static str, u16, Prefix, Option<RouteData>);

fn changes() -> Vec<Change> {
    let v4 = |a, l| Prefix::V4(a, l);
    vec![
        (
            "VM2's /32 discarded",
            VRF1,
            v4(VM2_IP, 32),
            Some(to(DISCARD_NH)),
        ),
        ("VM2's /32 deleted", VRF1, v4(VM2_IP, 32), None),
        (
            "VM1's /32 discarded",
            VRF1,
            v4(VM1_IP, 32),
            Some(to(DISCARD_NH)),
        ),
        ("VM1's /32 deleted", VRF1, v4(VM1_IP, 32), None),
        (
            "remote /32 discarded",
            VRF1,
            v4(REMOTE_IP, 32),
            Some(to(DISCARD_NH)),
        ),
        ("remote /32 deleted", VRF1, v4(REMOTE_IP, 32), None),
        (
            "a covering /24",
            VRF1,
            v4([198, 18, 1, 0], 24),
            Some(to(DISCARD_NH)),
        ),
        ("a default route", VRF1, v4([0; 4], 0), Some(to(DISCARD_NH))),
        (
            "another /32",
            VRF1,
            v4([198, 18, 1, 99], 32),
            Some(to(DISCARD_NH)),
        ),
        (
            "another /24",
            VRF1,
            v4([198, 18, 2, 0], 24),
            Some(to(DISCARD_NH)),
        ),
        (
            "VM2's /32 in another VRF",
            VRF2,
            v4(VM2_IP, 32),
            Some(to(DISCARD_NH)),
        ),
        (
            "an IPv6 route",
            VRF1,
            Prefix::V6(v6(4), 128),
            Some(to(DISCARD_NH)),
        ),
        (
            "the gateway MAC",
            VRF1,
            Prefix::Mac(VROUTER_MAC),
            Some(to(DISCARD_NH)),
        ),
        (
            "VM2's MAC discarded",
            VRF1,
            Prefix::Mac(VM2_MAC),
            Some(to(DISCARD_NH)),
        ),
        ("VM2's MAC deleted", VRF1, Prefix::Mac(VM2_MAC), None),
        ("VM1's MAC deleted", VRF1, Prefix::Mac(VM1_MAC), None),
        (
            "another MAC",
            VRF1,
            Prefix::Mac([0x02, 0x33, 0, 0, 0, 1]),
            Some(to(DISCARD_NH)),
        ),
        (
            "broadcast",
            VRF1,
            Prefix::Mac([0xff; 6]),
            Some(to(DISCARD_NH)),
        ),
        (
            "the peer's /32 in the fabric VRF",
            FABRIC_VRF,
            v4(PEER_IP, 32),
            Some(to(DISCARD_NH)),
        ),
        (
            "our fabric /32 in the fabric VRF",
            FABRIC_VRF,
            v4(FABRIC_IP, 32),
            Some(to(DISCARD_NH)),
        ),
    ]
}

#[test]
fn a_route_change_that_changes_an_offloaded_flows_forwarding_is_reported() {
    let mut changed_any = 0;
    for kind in [Kind::Routed, Kind::Bridged, Kind::Encap, Kind::Decap] {
        for (what, vrf, prefix, data) in changes() {
            let (mut t, vif, frame) = setup(kind);
            let (h, before) = offloaded(&mut t, vif, &frame, kind);
            let depends = t.router.offload_depends_on_route(&h, vrf, &prefix);
            match data {
                Some(d) => t.router.route_add(vrf, prefix, d).unwrap(),
                // A route that is not there: nothing changes (an error is fine).
                None => {
                    let _ = t.router.route_del(vrf, prefix);
                }
            }
            let after = t.run(vif, &frame);
            if comparable(&after) != comparable(&before) {
                changed_any += 1;
                assert!(
                    depends,
                    "{kind:?}, {what}: the core now does {after:?} (was {before:?}) \
                     but the flow was not reported as depending on the route"
                );
            }
        }
    }
    assert!(
        changed_any >= 8,
        "the changes must change some flows ({changed_any})"
    );
}

#[test]
fn routes_an_offloaded_flow_cannot_depend_on_are_not_reported() {
    let unrelated = [
        ("another /32", VRF1, Prefix::V4([198, 18, 1, 99], 32)),
        ("another /24", VRF1, Prefix::V4([198, 18, 2, 0], 24)),
        ("an IPv6 route", VRF1, Prefix::V6(v6(4), 128)),
        ("another MAC", VRF1, Prefix::Mac([0x02, 0x33, 0, 0, 0, 1])),
        ("broadcast", VRF1, Prefix::Mac([0xff; 6])),
    ];
    for kind in [Kind::Routed, Kind::Bridged, Kind::Encap, Kind::Decap] {
        let (mut t, vif, frame) = setup(kind);
        let (h, _) = offloaded(&mut t, vif, &frame, kind);
        for (what, vrf, prefix) in unrelated {
            assert!(
                !t.router.offload_depends_on_route(&h, vrf, &prefix),
                "{kind:?}: {what}"
            );
        }
        // The fabric VRF's routes matter to tunnelled flows only.
        let fabric = Prefix::V4(PEER_IP, 32);
        let tunnelled = matches!(kind, Kind::Encap | Kind::Decap);
        assert_eq!(
            t.router.offload_depends_on_route(&h, FABRIC_VRF, &fabric),
            tunnelled,
            "{kind:?}: a fabric route"
        );
        // Its own addresses, whatever the VRF (VRFs are not told apart).
        let dst = match kind {
            Kind::Encap => REMOTE_IP,
            Kind::Decap => VM1_IP,
            _ => VM2_IP,
        };
        for vrf in [VRF1, VRF2] {
            assert!(t
                .router
                .offload_depends_on_route(&h, vrf, &Prefix::V4(dst, 32)));
        }
    }
}

/// One step of a configuration change: what a host is told before it is
/// applied (as ksync's handler works it out), and applying it.
type Step = Box<dyn Fn(&mut Router) -> ConfigChange>;

/// Deleting next hop `nh`: scoped as ksync scopes it (no lookup leads to
/// it: no decision used it).
fn nh_del(nh: u32) -> Step {
    Box::new(move |r| {
        let c = if r.nh_in_use(nh) {
            ConfigChange::Any
        } else {
            ConfigChange::Unused
        };
        r.nh_del(nh).unwrap();
        c
    })
}

fn route_del(vrf: u16, prefix: Prefix) -> Step {
    Box::new(move |r| {
        r.route_del(vrf, prefix).unwrap();
        ConfigChange::Route { vrf, prefix }
    })
}

fn label_del(label: u32) -> Step {
    Box::new(move |r| {
        r.mpls_del(label).unwrap();
        ConfigChange::Label {
            vxlan: false,
            label,
        }
    })
}

fn vif_mtu(vif: u16, mtu: u16) -> Step {
    Box::new(move |r| {
        let mut cfg = r.vif(vif).unwrap().cfg.clone();
        cfg.mtu = mtu;
        r.vif_add(cfg).unwrap();
        ConfigChange::Vif(vif)
    })
}

/// A port going away as the agent removes it: its routes, labels, next
/// hops, then its vif.
fn port_removed(vm: Vm) -> Vec<Step> {
    vec![
        route_del(vm.vrf, Prefix::V4(vm.ip, 32)),
        route_del(vm.vrf, Prefix::Mac(vm.mac)),
        label_del(vm.label),
        label_del(vm.label + 1),
        nh_del(vm.nh),
        nh_del(vm.l2_nh),
        Box::new(move |r| {
            r.vif_del(vm.vif).unwrap();
            ConfigChange::Vif(vm.vif)
        }),
    ]
}

fn other_changes(ids: Ids) -> Vec<(&'static str, Vec<Step>)> {
    let Ids { vm1, vm2, tunnel } = ids;
    vec![
        ("VM1's port removed", port_removed(vm1)),
        ("VM2's port removed", port_removed(vm2)),
        (
            // A container elsewhere stopped: its routes, then the tunnel
            // no route leads to any more.
            "the remote VM's routes and tunnel removed",
            vec![
                route_del(VRF1, Prefix::V4(REMOTE_IP, 32)),
                route_del(VRF1, Prefix::Mac(REMOTE_MAC)),
                nh_del(tunnel),
            ],
        ),
        // Next hops deleted while routes still lead to them.
        ("the tunnel deleted under its routes", vec![nh_del(tunnel)]),
        (
            "VM2's next hop deleted under its routes",
            vec![nh_del(vm2.nh)],
        ),
        ("VM1's vif MTU lowered", vec![vif_mtu(vm1.vif, 40)]),
        ("VM2's vif MTU lowered", vec![vif_mtu(vm2.vif, 40)]),
        ("the fabric's MTU lowered", vec![vif_mtu(FABRIC_VIF, 40)]),
        ("VM1's label deleted", vec![label_del(vm1.label)]),
        (
            "VM1's label to the discard next hop",
            vec![Box::new(move |r: &mut Router| {
                r.mpls_add(vm1.label, DISCARD_NH).unwrap();
                ConfigChange::Label {
                    vxlan: false,
                    label: vm1.label,
                }
            })],
        ),
        ("VM2's label deleted", vec![label_del(vm2.label)]),
        (
            "a next hop nothing leads to, added and changed",
            vec![
                Box::new(|r: &mut Router| {
                    r.nh_add(Nexthop {
                        id: 60,
                        family: 2,
                        flags: NhFlags::VALID,
                        vrf: VRF1,
                        kind: NhKind::Receive,
                    })
                    .unwrap();
                    ConfigChange::Unused
                }),
                Box::new(|r: &mut Router| {
                    assert!(!r.nh_in_use(60));
                    r.nh_add(Nexthop {
                        id: 60,
                        family: 2,
                        flags: NhFlags::VALID,
                        vrf: VRF1,
                        kind: NhKind::Discard,
                    })
                    .unwrap();
                    ConfigChange::Unused
                }),
            ],
        ),
    ]
}

/// The same for vifs, labels and next hops ([`Router::offload_depends_on`]):
/// whenever the core's output changed, one of the steps must have been
/// reported as one the flow depends on. And the flows of a port that stays
/// keep their fast-path entries when another port, here or elsewhere, is
/// removed.
#[test]
fn a_vif_label_or_next_hop_change_that_changes_an_offloaded_flow_is_reported() {
    let mut changed = 0;
    let mut kept = Vec::new();
    for kind in [Kind::Routed, Kind::Bridged, Kind::Encap, Kind::Decap] {
        let n = other_changes(setup_ids(kind).3).len();
        for i in 0..n {
            let (mut t, vif, frame, ids) = setup_ids(kind);
            let (what, steps) = other_changes(ids).swap_remove(i);
            let (h, before) = offloaded(&mut t, vif, &frame, kind);
            let mut reported = Vec::new();
            for step in &steps {
                let change = step(&mut t.router);
                if t.router.offload_depends_on(&h, &change) {
                    reported.push(change);
                }
            }
            let after = t.run(vif, &frame);
            if comparable(&after) != comparable(&before) {
                changed += 1;
                assert!(
                    !reported.is_empty(),
                    "{kind:?}, {what}: the core now does {after:?} (was {before:?}) \
                     but no step was reported as one the flow depends on"
                );
            }
            if reported.is_empty() {
                kept.push((kind, what));
            }
        }
    }
    assert!(
        changed >= 10,
        "the changes must change some flows ({changed})"
    );
    // What must not empty the fast path: a port elsewhere stopping leaves
    // the local flows, and a port's removal leaves the flows of the others.
    for must in [
        (Kind::Routed, "the remote VM's routes and tunnel removed"),
        (Kind::Bridged, "the remote VM's routes and tunnel removed"),
        (Kind::Encap, "VM2's port removed"),
        (Kind::Decap, "VM2's port removed"),
        (Kind::Encap, "VM2's vif MTU lowered"),
        (Kind::Routed, "VM1's label deleted"),
        (Kind::Decap, "VM2's label deleted"),
    ] {
        assert!(
            kept.contains(&must),
            "{must:?} was reported: kept only {kept:?}"
        );
    }
    for kind in [Kind::Routed, Kind::Bridged, Kind::Encap, Kind::Decap] {
        assert!(kept.contains(&(kind, "a next hop nothing leads to, added and changed")));
    }
}
