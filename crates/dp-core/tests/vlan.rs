//! VLAN sub-interfaces (upstream `VIF_TYPE_VIRTUAL_VLAN`): tagged frames
//! of a parent port go to the sub-interface of their VLAN, untagged and in
//! its VRF; what the sub-interface sends leaves through the parent, tagged.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::testkit::*;
use dp_core::*;

const PARENT_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x01];
const SUB_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x64];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x02];
const VM3_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x03];
const PARENT_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];
const SUB_IP: [u8; 4] = [198, 18, 2, 5];
const VM3_IP: [u8; 4] = [198, 18, 2, 3];
const VRF1: u16 = 1;
const VRF2: u16 = 2;
const PARENT: u16 = 3;
const VM2: u16 = 4;
const SUB: u16 = 5;
const VM3: u16 = 6;

/// Parent and VM2 in VRF 1; the parent's VLAN 100 sub-interface and VM3
/// in VRF 2.
fn topo(policy: bool) -> Topo {
    let mut t = Topo::new(RouterConfig::small());
    t.add_vm(PARENT, VRF1, PARENT_MAC, PARENT_IP, [0; 16], false);
    t.add_vm(VM2, VRF1, VM2_MAC, VM2_IP, [0; 16], false);
    t.add_vm(SUB, VRF2, SUB_MAC, SUB_IP, [0; 16], policy);
    t.add_vm(VM3, VRF2, VM3_MAC, VM3_IP, [0; 16], false);
    make_sub(&mut t, SUB, PARENT, 100, 100).unwrap();
    t
}

/// Turn vif `idx` into a sub-interface of `parent`.
fn make_sub(t: &mut Topo, idx: u16, parent: u16, vlan: u16, ovlan: u16) -> Result<(), ConfigError> {
    let mut c = t.router.vif(idx).unwrap().cfg.clone();
    c.vif_type = VifType::VirtualVlan;
    c.sub = Some(SubIf {
        parent,
        vlan,
        ovlan,
    });
    t.router.vif_add(c)
}

fn udp(smac: [u8; 6], dmac: [u8; 6], sip: [u8; 4], dip: [u8; 4], ttl: u8, len: usize) -> Vec<u8> {
    let payload = vec![0x5a; len];
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
            &udp4(sip, dip, 40000, 7, &payload),
        ),
    )
}

/// `frame` with an 802.1Q tag (VLAN `vlan`) after its MACs.
fn tag(frame: &[u8], vlan: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&0x8100u16.to_be_bytes());
    v.extend_from_slice(&vlan.to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

fn single_tx(outs: &[Output]) -> (u16, Vec<u8>) {
    let t: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Tx { vif, bytes } => Some((*vif, bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(t.len(), 1, "expected one transmit, got {outs:?}");
    t.into_iter().next().unwrap()
}

fn stats(t: &Topo, vif: u16) -> VifStats {
    t.router.vif(vif).unwrap().stats
}

#[test]
fn tagged_frame_goes_to_the_sub_interface_untagged_in_its_vrf() {
    let mut t = topo(false);
    let f = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    let (vif, bytes) = single_tx(&t.run(PARENT, &tag(&f, 100)));
    assert_eq!(vif, VM3);
    assert_eq!(bytes, udp(VROUTER_MAC, VM3_MAC, SUB_IP, VM3_IP, 63, 32));
    // Counted on the sub-interface only (upstream: no double count).
    assert_eq!(stats(&t, SUB).ipackets, 1);
    assert_eq!(stats(&t, SUB).ibytes, f.len() as u64 + 4);
    assert_eq!(stats(&t, PARENT).ipackets, 0);
}

#[test]
fn the_vlan_of_the_sub_interface_does_not_reach_the_parents_vrf() {
    let mut t = topo(false);
    // VM2 is in the parent's VRF only: a tagged frame to it has no route
    // in the sub-interface's VRF.
    let f = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM2_IP, 64, 32);
    let outs = t.run(PARENT, &tag(&f, 100));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Tx { vif: VM2, .. })),
        "{outs:?}"
    );
}

#[test]
fn sub_interface_transmits_through_the_parent_with_its_tag() {
    let mut t = topo(false);
    let f = udp(VM3_MAC, VROUTER_MAC, VM3_IP, SUB_IP, 64, 32);
    let (vif, bytes) = single_tx(&t.run(VM3, &f));
    assert_eq!(vif, PARENT, "a sub-interface has no port: its parent's");
    assert_eq!(
        bytes,
        tag(&udp(VROUTER_MAC, SUB_MAC, VM3_IP, SUB_IP, 63, 32), 100)
    );
    assert_eq!(stats(&t, SUB).opackets, 1);
    assert_eq!(stats(&t, SUB).obytes, bytes.len() as u64);
    assert_eq!(stats(&t, PARENT).opackets, 0);
}

#[test]
fn bridged_frames_to_the_sub_interface_get_the_tag() {
    let mut t = topo(false);
    let f = udp(VM3_MAC, SUB_MAC, VM3_IP, SUB_IP, 64, 32);
    let (vif, bytes) = single_tx(&t.run(VM3, &f));
    assert_eq!(vif, PARENT);
    assert_eq!(bytes, tag(&f, 100));
    // And back: the tag is gone on VM3's side.
    let (vif, bytes) = single_tx(&t.run(
        PARENT,
        &tag(&udp(SUB_MAC, VM3_MAC, SUB_IP, VM3_IP, 64, 32), 100),
    ));
    assert_eq!(vif, VM3);
    assert_eq!(bytes, udp(SUB_MAC, VM3_MAC, SUB_IP, VM3_IP, 64, 32));
}

#[test]
fn the_transmit_tag_is_ovlan_and_zero_pushes_none() {
    let mut t = topo(false);
    make_sub(&mut t, SUB, PARENT, 100, 300).unwrap();
    let f = udp(VM3_MAC, VROUTER_MAC, VM3_IP, SUB_IP, 64, 32);
    let (_, bytes) = single_tx(&t.run(VM3, &f));
    assert_eq!(
        bytes,
        tag(&udp(VROUTER_MAC, SUB_MAC, VM3_IP, SUB_IP, 63, 32), 300)
    );
    make_sub(&mut t, SUB, PARENT, 100, 0).unwrap();
    let (vif, bytes) = single_tx(&t.run(VM3, &f));
    assert_eq!(vif, PARENT);
    assert_eq!(bytes, udp(VROUTER_MAC, SUB_MAC, VM3_IP, SUB_IP, 63, 32));
    // Receive still matches on vifr_vlan_id.
    let g = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    assert_eq!(single_tx(&t.run(PARENT, &tag(&g, 100))).0, VM3);
}

#[test]
fn untagged_traffic_of_the_parent_is_unchanged() {
    let mut t = topo(false);
    let f = udp(PARENT_MAC, VROUTER_MAC, PARENT_IP, VM2_IP, 64, 32);
    let (vif, bytes) = single_tx(&t.run(PARENT, &f));
    assert_eq!(vif, VM2);
    assert_eq!(bytes, udp(VROUTER_MAC, VM2_MAC, PARENT_IP, VM2_IP, 63, 32));
    let g = udp(VM2_MAC, VROUTER_MAC, VM2_IP, PARENT_IP, 64, 32);
    let (vif, bytes) = single_tx(&t.run(VM2, &g));
    assert_eq!(vif, PARENT);
    assert_eq!(
        bytes,
        udp(VROUTER_MAC, PARENT_MAC, VM2_IP, PARENT_IP, 63, 32)
    );
    assert_eq!(stats(&t, PARENT).ipackets, 1);
    assert_eq!(stats(&t, SUB).ipackets + stats(&t, SUB).opackets, 0);
}

#[test]
fn unknown_vlan_is_dropped_and_counted() {
    let mut t = topo(false);
    let f = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    for vlan in [0, 1, 99, 101, 4095] {
        let outs = t.run(PARENT, &tag(&f, vlan));
        assert_eq!(
            outs,
            vec![Output::Drop(DropReason::InvalidIf)],
            "vlan {vlan}"
        );
    }
    assert_eq!(t.router.drop_stats().get(DropReason::InvalidIf), 5);
    assert_eq!(stats(&t, PARENT).ipackets, 5);
    assert_eq!(stats(&t, PARENT).drops, 5);
    assert_eq!(stats(&t, SUB).ipackets, 0);
}

#[test]
fn a_truncated_tag_is_an_input_error() {
    let mut t = topo(false);
    let f = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    let tagged = tag(&f, 100);
    let outs = t.run(PARENT, &tagged[..16]);
    assert!(matches!(outs.as_slice(), [Output::Drop(_)]), "{outs:?}");
}

#[test]
fn sub_interface_policy_holds_the_frame_as_received() {
    let mut t = topo(true);
    let f = tag(&udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32), 100);
    let outs = t.run(PARENT, &f);
    let Some(Output::Hold { flow }) = outs.last().cloned() else {
        panic!("expected a hold, got {outs:?}");
    };
    // The flow is the sub-interface's: its next hop is the key's.
    let sub_nh = t.router.vif(SUB).unwrap().cfg.nh_id;
    let e = t.router.flows().get(flow).unwrap();
    assert_eq!(e.key().nh_id, sub_nh);
    t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    // The host re-injects the held frame on the parent, tag and all.
    let (vif, bytes) = single_tx(&t.run(PARENT, &f));
    assert_eq!(vif, VM3);
    assert_eq!(bytes, udp(VROUTER_MAC, VM3_MAC, SUB_IP, VM3_IP, 63, 32));
}

#[test]
fn trapped_frames_name_the_sub_interface() {
    let mut t = topo(false);
    // A DHCP discover on VLAN 100 is the sub-interface's question.
    let d = eth(
        [0xff; 6],
        SUB_MAC,
        0x0800,
        &ipv4(
            [0; 4],
            [255; 4],
            17,
            64,
            1,
            0,
            &udp4([0; 4], [255; 4], 68, 67, &[0u8; 240]),
        ),
    );
    let (vif, bytes) = single_tx(&t.run(PARENT, &tag(&d, 100)));
    assert_eq!(vif, AGENT_VIF);
    let h = dp_core::agent::AgentHdr::parse(&bytes[14..]).unwrap();
    assert_eq!(h.ifindex, SUB);
    assert_eq!(h.vrf, VRF2);
    // The agent's answer sent to the sub-interface leaves tagged.
    let mut reply = vec![0u8; 14];
    reply[0..6].copy_from_slice(&AGENT_MAC);
    reply[6..12].copy_from_slice(&AGENT_MAC);
    reply[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut ah = [0u8; dp_core::agent::AGENT_HDR_LEN];
    dp_core::agent::AgentHdr {
        ifindex: SUB,
        vrf: VRF2,
        cmd: dp_core::agent::cmd::SWITCH,
        ..Default::default()
    }
    .emit(&mut ah);
    reply.extend_from_slice(&ah);
    let answer = udp(VROUTER_MAC, SUB_MAC, [198, 18, 2, 1], SUB_IP, 64, 300);
    reply.extend_from_slice(&answer);
    let (vif, bytes) = single_tx(&t.run(AGENT_VIF, &reply));
    assert_eq!(vif, PARENT);
    assert_eq!(bytes, tag(&answer, 100));
}

#[test]
fn fragments_to_a_sub_interface_are_each_tagged() {
    let mut t = topo(false);
    let mut c = t.router.vif(SUB).unwrap().cfg.clone();
    c.mtu = 600;
    t.router.vif_add(c).unwrap();
    let f = udp(VM3_MAC, VROUTER_MAC, VM3_IP, SUB_IP, 64, 1000);
    let outs = t.run(VM3, &f);
    let frags: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Tx { vif, bytes } => Some((*vif, bytes.clone())),
            _ => None,
        })
        .collect();
    assert!(frags.len() >= 2, "{outs:?}");
    let mut payload = 0;
    for (vif, b) in &frags {
        assert_eq!(*vif, PARENT);
        assert_eq!(&b[0..6], &SUB_MAC);
        assert_eq!(&b[12..16], &[0x81, 0x00, 0x00, 100]);
        assert_eq!(&b[16..18], &[0x08, 0x00]);
        let ip = &b[18..];
        assert_eq!(csum(&ip[..20], 0), 0, "fragment header checksum");
        let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
        assert!(total <= 600);
        payload += total - 20;
    }
    assert_eq!(payload, 8 + 1000);
}

// ---- configuration ---------------------------------------------------------

#[test]
fn a_sub_interface_needs_an_existing_virtual_parent_and_a_free_vlan() {
    let mut t = topo(false);
    let err = |r: Result<(), ConfigError>| r.unwrap_err().errno();
    // No such parent, or itself (upstream: -EINVAL).
    assert_eq!(err(make_sub(&mut t, VM3, 40, 7, 7)), -22);
    assert_eq!(err(make_sub(&mut t, VM3, VM3, 7, 7)), -22);
    // Not a port that can carry sub-interfaces.
    assert_eq!(err(make_sub(&mut t, VM3, FABRIC_VIF, 7, 7)), -22);
    // VLAN ids are below 4096, both ways.
    assert_eq!(err(make_sub(&mut t, VM3, PARENT, 4096, 7)), -22);
    assert_eq!(err(make_sub(&mut t, VM3, PARENT, 7, 4096)), -22);
    // One sub-interface per VLAN and parent (upstream: -EEXIST).
    assert_eq!(err(make_sub(&mut t, VM3, PARENT, 100, 100)), -17);
    // The refused requests changed nothing.
    assert_eq!(t.router.vif(VM3).unwrap().cfg.vif_type, VifType::Virtual);
    assert_eq!(t.router.vifs().sub_interface_count(), 1);
    // Re-adding the same sub-interface is an update.
    make_sub(&mut t, SUB, PARENT, 100, 100).unwrap();
    assert_eq!(t.router.vifs().sub_interface_count(), 1);
    // Moving it to another VLAN frees the old one.
    make_sub(&mut t, SUB, PARENT, 200, 200).unwrap();
    assert_eq!(t.router.vifs().sub_interface(PARENT, 100), None);
    assert_eq!(t.router.vifs().sub_interface(PARENT, 200), Some(SUB));
    make_sub(&mut t, VM3, PARENT, 100, 100).unwrap();
    assert_eq!(t.router.vifs().sub_interface_count(), 2);
}

#[test]
fn deleting_the_parent_detaches_its_sub_interfaces() {
    let mut t = topo(false);
    t.router.vif_del(PARENT).unwrap();
    assert_eq!(t.router.vifs().sub_interface_count(), 0);
    // The sub-interface stays (the agent deletes it), but cannot send.
    assert!(t.router.vif(SUB).is_some());
    let f = udp(VM3_MAC, VROUTER_MAC, VM3_IP, SUB_IP, 64, 32);
    assert_eq!(
        t.run(VM3, &f),
        vec![Output::Drop(DropReason::InterfaceTxDiscard)]
    );
    assert_eq!(stats(&t, SUB).oerrors, 1);
    // A new vif at the parent's index does not revive it.
    t.add_vm(PARENT, VRF1, PARENT_MAC, PARENT_IP, [0; 16], false);
    let g = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    let outs = t.run(PARENT, &tag(&g, 100));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Tx { vif: VM3, .. })),
        "{outs:?}"
    );
    // Deleting the sub-interface, then again: -ENOENT the second time.
    t.router.vif_del(SUB).unwrap();
    assert_eq!(t.router.vif_del(SUB).unwrap_err().errno(), -2);
    assert_eq!(t.router.vifs().sub_interface_count(), 0);
}

#[test]
fn deleting_a_sub_interface_frees_its_vlan() {
    let mut t = topo(false);
    t.router.vif_del(SUB).unwrap();
    assert_eq!(t.router.vifs().sub_interface_count(), 0);
    let g = udp(SUB_MAC, VROUTER_MAC, SUB_IP, VM3_IP, 64, 32);
    // The parent has no sub-interface left: tagged frames are its own
    // again, as before any was added.
    let outs = t.run(PARENT, &tag(&g, 100));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::Tx { vif: VM3, .. })),
        "{outs:?}"
    );
    make_sub(&mut t, VM3, PARENT, 100, 100).unwrap();
    assert_eq!(t.router.vifs().sub_interface(PARENT, 100), Some(VM3));
}

#[test]
fn a_parent_readded_as_another_type_loses_its_sub_interfaces() {
    let mut t = topo(false);
    let mut c = t.router.vif(PARENT).unwrap().cfg.clone();
    c.vif_type = VifType::Host;
    t.router.vif_add(c).unwrap();
    assert_eq!(t.router.vifs().sub_interface_count(), 0);
}
