//! Property tests: random configurations and random packets never panic
//! the core, and traffic never crosses VRFs without a route or next hop
//! that leads there.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::nexthop::{AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::testkit::*;
use dp_core::*;
use proptest::prelude::*;

fn mac(i: u8) -> [u8; 6] {
    [0x02, 0x33, 0, 0, 0, i]
}
fn ip(vrf: u8, i: u8) -> [u8; 4] {
    [198, 18, vrf, i]
}

/// Frames a VM might send: structured ones (so deep paths run) plus
/// arbitrary bytes and truncations.
fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        0u8..8,
        0u8..8,
        0u8..4,
        0u8..6,
        any::<u16>(),
        0u8..4,
        prop::bool::ANY,
    )
        .prop_map(|(s, d, vrf, kind, port, ttl, routed)| {
            let (sip, dip) = (ip(vrf, s), ip(vrf, d));
            let dmac = if routed { VROUTER_MAC } else { mac(d) };
            match kind {
                0 => eth(
                    dmac,
                    mac(s),
                    0x0800,
                    &ipv4(sip, dip, 17, ttl, 1, 0, &udp4(sip, dip, port, 53, b"q")),
                ),
                1 => eth(
                    dmac,
                    mac(s),
                    0x0800,
                    &ipv4(
                        sip,
                        dip,
                        6,
                        ttl,
                        1,
                        0x2000,
                        &tcp4(sip, dip, port, 80, 2, b""),
                    ),
                ),
                2 => eth([0xff; 6], mac(s), 0x0806, &arp(1, mac(s), sip, [0; 6], dip)),
                3 => eth(
                    dmac,
                    mac(s),
                    0x0800,
                    &ipv4(sip, dip, 1, ttl, 1, 0, &icmp4_echo(port, 1, false, b"p")),
                ),
                4 => eth(
                    dmac,
                    mac(s),
                    0x86dd,
                    &ipv6(v6(s), v6(d), 17, ttl, &udp6(v6(s), v6(d), port, 7, b"6")),
                ),
                _ => eth(
                    dmac,
                    mac(s),
                    0x0800,
                    &ipv4(sip, dip, 17, ttl, 1, port & 0x3fff, &[0u8; 8]),
                ),
            }
        });
    prop_oneof![
        4 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (prop::collection::vec(any::<u8>(), 0..120), 0usize..80).prop_map(|(mut v, cut)| {
            let mut f = eth(VROUTER_MAC, mac(1), 0x0800, &ipv4(ip(1, 1), ip(1, 2), 17, 64, 1, 0, &udp4(ip(1, 1), ip(1, 2), 1, 2, &[])));
            f.truncate(cut.min(f.len()));
            f.append(&mut v);
            f
        }),
    ]
}

#[derive(Debug, Clone)]
enum Cfg {
    Vm {
        vrf: u8,
        i: u8,
        policy: bool,
    },
    Route {
        vrf: u8,
        plen: u8,
        i: u8,
        nh: u32,
        label: u32,
        flags: u8,
    },
    Nh {
        id: u32,
        kind: u8,
        oif: u16,
        vrf: u8,
        comps: Vec<u32>,
    },
    Label {
        label: u32,
        nh: u32,
    },
    Vni {
        vni: u32,
        nh: u32,
    },
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    prop_oneof![
        (0u8..4, 0u8..8, prop::bool::ANY).prop_map(|(vrf, i, policy)| Cfg::Vm { vrf, i, policy }),
        (0u8..4, 0u8..=32, 0u8..8, 0u32..64, 0u32..64, any::<u8>()).prop_map(
            |(vrf, plen, i, nh, label, flags)| Cfg::Route {
                vrf,
                plen,
                i,
                nh,
                label,
                flags
            }
        ),
        (
            2u32..64,
            0u8..9,
            0u16..16,
            0u8..4,
            prop::collection::vec(0u32..64, 0..4)
        )
            .prop_map(|(id, kind, oif, vrf, comps)| Cfg::Nh {
                id,
                kind,
                oif,
                vrf,
                comps
            }),
        (0u32..64, 0u32..64).prop_map(|(label, nh)| Cfg::Label { label, nh }),
        (0u32..8, 0u32..64).prop_map(|(vni, nh)| Cfg::Vni { vni, nh }),
    ]
}

fn apply(t: &mut Topo, c: &Cfg) {
    // Errors are fine: the property is "no panic", and bad config must be
    // refused cleanly.
    match c {
        Cfg::Vm { vrf, i, policy } => {
            let vif = 3 + *i as u16 + 8 * *vrf as u16;
            if t.router.vif(vif).is_none() {
                t.add_vm(vif, *vrf as u16, mac(*i), ip(*vrf, *i), v6(*i), *policy);
            }
        }
        Cfg::Route {
            vrf,
            plen,
            i,
            nh,
            label,
            flags,
        } => {
            let _ = t.router.route_add(
                *vrf as u16,
                Prefix::V4(ip(*vrf, *i), *plen),
                RouteData {
                    nh: *nh,
                    label: *label,
                    flags: *flags,
                    mac: mac(*i),
                },
            );
        }
        Cfg::Nh {
            id,
            kind,
            oif,
            vrf,
            comps,
        } => {
            let k = match kind {
                0 => NhKind::Discard,
                1 => NhKind::Receive,
                2 => NhKind::Encap {
                    oif: *oif,
                    encap: [0x02; 14],
                },
                3 => NhKind::Tunnel {
                    oif: *oif,
                    kind: TunnelKind::MplsOverUdp,
                    sip: FABRIC_IP,
                    dip: PEER_IP,
                    encap: [0x02; 14],
                },
                4 => NhKind::Tunnel {
                    oif: *oif,
                    kind: TunnelKind::Vxlan,
                    sip: FABRIC_IP,
                    dip: PEER_IP,
                    encap: [0x02; 14],
                },
                5 => NhKind::Composite {
                    components: comps
                        .iter()
                        .map(|n| Component { nh: *n, label: 20 })
                        .collect(),
                },
                6 => NhKind::VrfTranslate { vrf: *vrf as u16 },
                7 => NhKind::L2Receive,
                _ => NhKind::Resolve,
            };
            let family = [AF_INET, AF_INET6, AF_BRIDGE][(*id % 3) as usize];
            let _ = t.router.nh_add(Nexthop {
                id: *id,
                family,
                flags: NhFlags::VALID,
                vrf: *vrf as u16,
                kind: k,
            });
        }
        Cfg::Label { label, nh } => {
            let _ = t.router.mpls_add(*label, *nh);
        }
        Cfg::Vni { vni, nh } => {
            let _ = t.router.vxlan_add(*vni, *nh);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_config_and_packets_never_panic(
        cfgs in prop::collection::vec(cfg_strategy(), 0..40),
        frames in prop::collection::vec((0u16..40, frame_strategy()), 1..40),
    ) {
        let mut t = Topo::new(RouterConfig::small());
        for c in &cfgs {
            apply(&mut t, c);
        }
        for (vif, f) in &frames {
            let _ = t.run(*vif, f);
            // And the same bytes arriving from the fabric, wrapped in every
            // encapsulation we decode.
            for wrapped in [
                outer_udp(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, 50000, 6635, &mpls(u32::from(*vif), f)),
                outer_udp(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, 50000, 4789, &vxlan(u32::from(*vif) % 8, f)),
                outer_gre(PEER_MAC, FABRIC_MAC, PEER_IP, FABRIC_IP, 1, &mpls(u32::from(*vif), f)),
            ] {
                let _ = t.run(FABRIC_VIF, &wrapped);
            }
        }
    }

    /// VMs in four VRFs with only their own routes: whatever they send, a
    /// frame that leaves through a VM port leaves in the sender's VRF.
    #[test]
    fn no_leak_across_vrfs(frames in prop::collection::vec((0u8..4, 0u8..8, frame_strategy()), 1..64)) {
        let mut t = Topo::new(RouterConfig::small());
        for vrf in 0u8..4 {
            for i in 0u8..8 {
                t.add_vm(3 + i as u16 + 8 * vrf as u16, vrf as u16 + 1, mac(i), ip(vrf, i), v6(i), i % 2 == 0);
            }
        }
        for (vrf, i, f) in &frames {
            let in_vif = 3 + *i as u16 + 8 * *vrf as u16;
            let in_vrf = t.router.vif(in_vif).unwrap().cfg.vrf;
            for o in t.run(in_vif, f) {
                if let Output::Tx { vif, .. } = o {
                    let out = t.router.vif(vif).unwrap();
                    if out.cfg.vif_type == VifType::Virtual {
                        prop_assert_eq!(out.cfg.vrf, in_vrf, "leaked from vif {} to vif {}", in_vif, vif);
                    }
                }
            }
        }
    }
}
