//! Every object type through real netlink + Sandesh bytes: add, get, dump,
//! delete; paging with markers; errors; batching; host callbacks.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use dp_core::flow::table::{
    FlowKey, VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD, VR_FLOW_FLAG_ACTIVE,
    VR_FLOW_FLAG_VRFT,
};
use dp_core::nexthop::{nh_type, AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::testkit::Topo;
use dp_core::{
    Actions, DropReason, NhFlags, NhKind, Packet, RouterConfig, TunnelKind, VifFlags, VifType,
    HEADROOM,
};
use ksync::convert::{ipv4_to_wire, set_flow_key, VR_RFLOW_VALID};
use ksync::errno::*;
use ksync::{Handler, HostInfo, VR_FLOW_RESP_FLAG_DELETED, VR_MESSAGE_DUMP_INCOMPLETE};
use sandesh::frame::{self, FrameError, NlMsgHdr};
use sandesh::{
    FlowOp, Message, Sandesh, SandeshOp, VrDropStatsReq, VrFlowReq, VrFlowTableData,
    VrInterfaceReq, VrMemStatsReq, VrMirrorReq, VrMplsReq, VrNexthopReq, VrRouteReq, VrVrfReq,
    VrVxlanReq, VrouterOps,
};

const MAC1: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

fn vif(idx: i32, ty: VifType, name: &str) -> VrInterfaceReq {
    VrInterfaceReq {
        h_op: SandeshOp::Add,
        vifr_idx: idx,
        vifr_type: ty as i32,
        vifr_name: name.into(),
        vifr_mac: MAC1.to_vec(),
        vifr_mtu: 1500,
        vifr_flags: (VifFlags::L3_ENABLED | VifFlags::L2_ENABLED).bits() as i32,
        ..Default::default()
    }
}

fn vif_op(idx: i32, op: SandeshOp) -> VrInterfaceReq {
    VrInterfaceReq {
        h_op: op,
        vifr_idx: idx,
        ..Default::default()
    }
}

fn nh(id: i32, ty: u8) -> VrNexthopReq {
    VrNexthopReq {
        h_op: SandeshOp::Add,
        nhr_id: id,
        nhr_type: ty,
        nhr_family: AF_INET,
        nhr_flags: NhFlags::VALID.bits(),
        ..Default::default()
    }
}

fn nh_op(id: i32, op: SandeshOp) -> VrNexthopReq {
    VrNexthopReq {
        h_op: op,
        nhr_id: id,
        ..Default::default()
    }
}

fn encap(dmac: [u8; 6], smac: [u8; 6]) -> Vec<u8> {
    let mut e = dmac.to_vec();
    e.extend_from_slice(&smac);
    e.extend_from_slice(&[0x08, 0x00]);
    e
}

fn route4(op: SandeshOp, vrf: i32, a: [u8; 4], plen: i32, nh: i32) -> VrRouteReq {
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: vrf,
        rtr_family: i32::from(AF_INET),
        rtr_prefix: a.to_vec(),
        rtr_prefix_len: plen,
        rtr_nh_id: nh,
        ..Default::default()
    }
}

fn route6(op: SandeshOp, vrf: i32, a: [u8; 16], plen: i32, nh: i32) -> VrRouteReq {
    VrRouteReq {
        rtr_family: i32::from(AF_INET6),
        rtr_prefix: a.to_vec(),
        ..route4(op, vrf, [0; 4], plen, nh)
    }
}

fn bridge(op: SandeshOp, vrf: i32, mac: [u8; 6], nh: i32) -> VrRouteReq {
    VrRouteReq {
        h_op: op,
        rtr_vrf_id: vrf,
        rtr_family: i32::from(AF_BRIDGE),
        rtr_mac: mac.to_vec(),
        rtr_nh_id: nh,
        ..Default::default()
    }
}

/// A datapath with a physical vif 0 and a virtual vif 1, and next hops
/// 1 (receive), 2 (encap to vif 1), 3 (MPLSoUDP tunnel out of vif 0).
fn base() -> Dp {
    let mut dp = Dp::new();
    assert_eq!(dp.code(vif(0, VifType::Physical, "eth0")), 0);
    assert_eq!(dp.code(vif(1, VifType::Virtual, "tap1")), 0);
    assert_eq!(dp.code(nh(1, nh_type::RCV)), 0);
    let mut e = nh(2, nh_type::ENCAP);
    e.nhr_encap_oif_id = vec![1];
    e.nhr_encap = encap([0x02, 0, 0, 0, 0, 9], MAC1);
    assert_eq!(dp.code(e), 0);
    let mut t = nh(3, nh_type::TUNNEL);
    t.nhr_flags |= NhFlags::TUNNEL_UDP_MPLS.bits();
    t.nhr_encap_oif_id = vec![0];
    t.nhr_encap = encap([0x02, 0, 0, 0, 0, 0xfe], MAC1);
    t.nhr_tun_sip = ipv4_to_wire([192, 0, 2, 1]);
    t.nhr_tun_dip = ipv4_to_wire([192, 0, 2, 2]);
    assert_eq!(dp.code(t), 0);
    dp
}

// ---- interfaces -------------------------------------------------------------

#[test]
fn vif_add_get_dump_delete() {
    let mut dp = Dp::new();
    let mut req = vif(1, VifType::Virtual, "tap1");
    req.vifr_vrf = 3;
    req.vifr_ip = ipv4_to_wire([10, 0, 0, 3]);
    req.vifr_os_idx = 77;
    req.vifr_nh_id = 12;
    req.vifr_flags |= VifFlags::POLICY_ENABLED.bits() as i32;
    req.vifr_if_guid = (1..=16).collect();
    req.vifr_mtu = 9000;
    assert_eq!(dp.code(req.clone()), 0);
    assert_eq!(dp.host.added, [1]);
    assert_eq!(dp.host.guids, [req.vifr_if_guid.clone()]);
    let v = dp.router.vif(1).unwrap();
    assert_eq!(v.cfg.vrf, 3);
    assert_eq!(v.cfg.ip, [10, 0, 0, 3]);
    assert!(v.cfg.flags.contains(VifFlags::POLICY_ENABLED));

    let Ok(Message::Interface(got)) = dp.get(vif_op(1, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(
        (
            got.vifr_idx,
            got.vifr_type,
            got.vifr_name.as_str(),
            got.vifr_vrf
        ),
        (1, 3, "tap1", 3)
    );
    assert_eq!(
        (got.vifr_ip, got.vifr_os_idx, got.vifr_mtu),
        (req.vifr_ip, 77, 9000)
    );
    assert_eq!((got.vifr_flags, got.vifr_nh_id), (req.vifr_flags, 12));
    assert_eq!(got.vifr_mac, MAC1);
    assert_eq!(got.vifr_if_guid, req.vifr_if_guid);
    // By OS index when the vif index is out of range (upstream).
    let mut by_os = vif_op(-1, SandeshOp::Get);
    by_os.vifr_os_idx = 77;
    assert!(matches!(dp.get(by_os), Ok(Message::Interface(v)) if v.vifr_idx == 1));

    assert_eq!(dp.code(vif(4, VifType::Host, "vhost0")), 0);
    let mut d = vif_op(0, SandeshOp::Dump);
    d.vifr_marker = -1;
    let (c, objs) = dp.dump_page(d);
    assert_eq!(c, 2);
    let idx: Vec<i32> = objs
        .iter()
        .map(|m| match m {
            Message::Interface(v) => v.vifr_idx,
            _ => panic!(),
        })
        .collect();
    assert_eq!(idx, [1, 4]);

    assert_eq!(dp.code(vif_op(1, SandeshOp::Del)), 0);
    assert_eq!(dp.host.deleted, [1]);
    assert!(dp.router.vif(1).is_none());
    assert_eq!(dp.get(vif_op(1, SandeshOp::Get)), Err(-ENOENT));
    // Upstream `vr_interface_delete`: a missing vif is -ENODEV.
    assert_eq!(dp.code(vif_op(1, SandeshOp::Del)), -ENODEV);
    let mut by_name = vif_op(0, SandeshOp::Del);
    by_name.vifr_name = "nosuch0".into();
    assert_eq!(dp.code(by_name), -ENODEV);
    // Delete by upstream name forms.
    let mut by_name = vif_op(0, SandeshOp::Del);
    by_name.vifr_name = "vhost0".into();
    assert_eq!(dp.code(by_name), 0);
    assert_eq!(dp.host.deleted, [1, 4]);
}

#[test]
fn vif_host_failure_leaves_no_vif() {
    let mut dp = Dp::new();
    dp.host.fail_add = Some(-ENODEV);
    assert_eq!(dp.code(vif(1, VifType::Virtual, "nosuch0")), -ENODEV);
    assert!(dp.router.vif(1).is_none());
    assert_eq!(dp.get(vif_op(1, SandeshOp::Get)), Err(-ENOENT));
    // A positive errno from the host is still reported negative.
    dp.host.fail_add = Some(ENOMEM);
    assert_eq!(dp.code(vif(1, VifType::Virtual, "x")), -ENOMEM);
    // Requests the core would refuse never reach the host.
    dp.host.fail_add = None;
    // Upstream `vr_interface_add`: an index beyond the table is -EINVAL.
    assert_eq!(dp.code(vif(5000, VifType::Virtual, "x")), -EINVAL);
    assert_eq!(dp.code(vif(1, VifType::Agent, "pkt0")), 0);
    assert_eq!(dp.code(vif(2, VifType::Agent, "pkt1")), -EINVAL);
    assert_eq!(dp.host.added, [1]);
    let mut bad = vif(3, VifType::Virtual, "x");
    bad.vifr_type = 17;
    assert_eq!(dp.code(bad), -EINVAL);
    assert!(dp.router.vif(3).is_none());
}

#[test]
fn vlan_sub_interface_add_get_dump_delete() {
    let mut dp = Dp::new();
    let sub = |idx: i32, parent: i32, vlan: i16| {
        let mut r = vif(idx, VifType::VirtualVlan, &format!("tap1.{vlan}"));
        r.vifr_parent_vif_idx = parent;
        r.vifr_vlan_id = vlan;
        r.vifr_ovlan_id = vlan;
        r.vifr_vrf = 5;
        r
    };
    // Upstream `vlan_drv_add`: no parent is -EINVAL, and nothing changes.
    assert_eq!(dp.code(sub(2, 1, 100)), -EINVAL);
    assert!(dp.router.vif(2).is_none());
    assert!(dp.host.added.is_empty(), "the host never saw it");
    assert_eq!(dp.code(vif(1, VifType::Virtual, "tap1")), 0);
    // VLAN ids are unsigned 16-bit below 4096: -1 and 4096 are -EINVAL.
    assert_eq!(dp.code(sub(2, 1, -1)), -EINVAL);
    assert_eq!(dp.code(sub(2, 1, 4096)), -EINVAL);
    assert_eq!(dp.code(sub(2, 1, 100)), 0);
    // A second sub-interface on the same VLAN: -EEXIST.
    assert_eq!(dp.code(sub(3, 1, 100)), -EEXIST);
    assert!(dp.router.vif(3).is_none());
    assert_eq!(dp.code(sub(3, 1, 200)), 0);
    let Ok(Message::Interface(got)) = dp.get(vif_op(2, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(
        (
            got.vifr_type,
            got.vifr_parent_vif_idx,
            got.vifr_vlan_id,
            got.vifr_ovlan_id,
            got.vifr_vrf
        ),
        (7, 1, 100, 100, 5)
    );
    // An ordinary vif answers no parent.
    let Ok(Message::Interface(got)) = dp.get(vif_op(1, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(got.vifr_parent_vif_idx, -1);
    // Deleting the parent succeeds and detaches both (upstream keeps them
    // until their own delete); then each delete, and again: -ENODEV.
    assert_eq!(dp.code(vif_op(1, SandeshOp::Del)), 0);
    assert_eq!(dp.router.vifs().sub_interface_count(), 0);
    assert_eq!(dp.code(vif_op(2, SandeshOp::Del)), 0);
    assert_eq!(dp.code(vif_op(3, SandeshOp::Del)), 0);
    assert_eq!(dp.code(vif_op(3, SandeshOp::Del)), -ENODEV);
    assert_eq!(dp.router.vifs().iter().count(), 0);
}

// ---- next hops --------------------------------------------------------------

#[test]
fn l3_vxlan_next_hop_carries_its_router_mac() {
    let mut dp = base();
    let mut t = nh(9, nh_type::TUNNEL);
    t.nhr_flags |= (NhFlags::TUNNEL_VXLAN | NhFlags::L3_VXLAN).bits();
    t.nhr_encap_oif_id = vec![0];
    t.nhr_encap = encap([0x02, 0, 0, 0, 0, 0xfe], MAC1);
    t.nhr_tun_sip = ipv4_to_wire([192, 0, 2, 1]);
    t.nhr_tun_dip = ipv4_to_wire([192, 0, 2, 2]);
    // Upstream `nh_tunnel_add`: no (or a zero) router MAC is -EINVAL.
    assert_eq!(dp.code(t.clone()), -EINVAL);
    t.nhr_rw_dst_mac = vec![0; 6];
    assert_eq!(dp.code(t.clone()), -EINVAL);
    assert!(dp.router.nh(9).is_none());
    t.nhr_rw_dst_mac = vec![0x02, 0x33, 0, 0, 0, 9];
    assert_eq!(dp.code(t.clone()), 0);
    assert_eq!(dp.router.nh_l3_vxlan_mac(9), Some([0x02, 0x33, 0, 0, 0, 9]));
    let Ok(Message::Nexthop(got)) = dp.get(nh_op(9, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(got.nhr_rw_dst_mac, t.nhr_rw_dst_mac);
    assert_ne!(got.nhr_flags & NhFlags::L3_VXLAN.bits(), 0);
    // Re-added without the flag, the MAC goes.
    t.nhr_flags &= !NhFlags::L3_VXLAN.bits();
    assert_eq!(dp.code(t), 0);
    assert_eq!(dp.router.nh_l3_vxlan_mac(9), None);
}

#[test]
fn vrouter_ops_sets_the_mss_adjustment_as_upstream() {
    let mut dp = base();
    let get = |dp: &mut Dp| {
        let Ok(Message::VrouterOps(o)) = dp.get(VrouterOps {
            h_op: SandeshOp::Get,
            ..Default::default()
        }) else {
            panic!()
        };
        (o.vo_from_vm_mss_adj, o.vo_to_vm_mss_adj)
    };
    assert_eq!(get(&mut dp), (1, 1));
    let set = |dp: &mut Dp, from: i32, to: i32| {
        dp.code(VrouterOps {
            h_op: SandeshOp::Add,
            vo_from_vm_mss_adj: from,
            vo_to_vm_mss_adj: to,
            ..Default::default()
        })
    };
    assert_eq!(set(&mut dp, 0, -1), 0);
    assert_eq!(get(&mut dp), (0, 1));
    assert_eq!(set(&mut dp, -1, 0), 0);
    assert_eq!(get(&mut dp), (0, 0));
    assert_eq!(set(&mut dp, 1, 1), 0);
    assert_eq!(get(&mut dp), (1, 1));
}

#[test]
fn nexthop_types_round_trip() {
    let mut dp = base();
    let mut comp = nh(4, nh_type::COMPOSITE);
    comp.nhr_flags |= NhFlags::COMPOSITE_ECMP.bits();
    comp.nhr_nh_list = vec![2, 3];
    comp.nhr_label_list = vec![-1, 100];
    assert_eq!(dp.code(comp.clone()), 0);
    let mut vt = nh(5, nh_type::VRF_TRANSLATE);
    vt.nhr_vrf = 7;
    assert_eq!(dp.code(vt), 0);
    assert_eq!(dp.code(nh(6, nh_type::DISCARD)), 0);
    assert_eq!(dp.code(nh(7, nh_type::RESOLVE)), 0);
    let mut l2 = nh(8, nh_type::L2_RCV);
    l2.nhr_family = AF_BRIDGE;
    assert_eq!(dp.code(l2), 0);

    let Ok(Message::Nexthop(t)) = dp.get(nh_op(3, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(t.nhr_type, nh_type::TUNNEL);
    assert_eq!(t.nhr_tun_dip, ipv4_to_wire([192, 0, 2, 2]));
    assert_eq!(t.nhr_encap_oif_id, [0]);
    assert_eq!(
        t.nhr_flags & NhFlags::TUNNEL_UDP_MPLS.bits(),
        NhFlags::TUNNEL_UDP_MPLS.bits()
    );
    assert!(matches!(
        dp.router.nh(3).unwrap().kind,
        NhKind::Tunnel {
            kind: TunnelKind::MplsOverUdp,
            ..
        }
    ));
    let Ok(Message::Nexthop(c)) = dp.get(nh_op(4, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(
        (c.nhr_nh_list, c.nhr_label_list),
        (comp.nhr_nh_list, comp.nhr_label_list)
    );
    let Ok(Message::Nexthop(e)) = dp.get(nh_op(2, SandeshOp::Get)) else {
        panic!()
    };
    assert_eq!(e.nhr_encap.len(), 14);

    let (all, _) = dp.dump_all(|last| {
        let mut r = nh_op(0, SandeshOp::Dump);
        r.nhr_marker = match last {
            Some(Message::Nexthop(n)) => n.nhr_id,
            _ => -1,
        };
        r.into()
    });
    let ids: Vec<i32> = all
        .iter()
        .map(|m| match m {
            Message::Nexthop(n) => n.nhr_id,
            _ => panic!(),
        })
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);

    assert_eq!(dp.code(nh_op(6, SandeshOp::Del)), 0);
    assert_eq!(dp.get(nh_op(6, SandeshOp::Get)), Err(-ENOENT));
    // Upstream `vr_nexthop_get`: beyond the table is -ENODEV.
    assert_eq!(dp.get(nh_op(1 << 20, SandeshOp::Get)), Err(-ENODEV));
    assert_eq!(dp.get(nh_op(-1, SandeshOp::Get)), Err(-ENODEV));
    // Upstream `vr_nexthop_delete`: a missing next hop is -EINVAL.
    assert_eq!(dp.code(nh_op(6, SandeshOp::Del)), -EINVAL);
    // Upstream `vr_nexthop_valid_request`: an id beyond the table -EINVAL.
    assert_eq!(dp.code(nh(1 << 20, nh_type::DISCARD)), -EINVAL);
    // Encap out of a vif that does not exist: -EINVAL, as upstream.
    let mut bad = nh(9, nh_type::ENCAP);
    bad.nhr_encap_oif_id = vec![33];
    assert_eq!(dp.code(bad), -EINVAL);
}

#[test]
fn bad_requests_are_answered_and_the_next_one_served() {
    let mut dp = base();
    // Two netlink messages in one write: a bad next hop type, then a good
    // next hop.
    let mut buf = request(&[nh(10, 42).into()], 100);
    buf.extend(request(&[nh(11, nh_type::DISCARD).into()], 101));
    let out = dp.raw(&buf);
    let a = answers(&out, dp.handler.framing());
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].0, code(&a[0].1[0])), (100, -EINVAL));
    assert_eq!((a[1].0, code(&a[1].1[0])), (101, 0));
    assert!(dp.router.nh(10).is_none());
    assert!(dp.router.nh(11).is_some());
    assert_eq!((dp.last.messages, dp.last.failed), (2, 1));

    // Two objects in one message (upstream decodes them in a loop): both
    // answered, as a multipart answer.
    let g = dp.send(&[nh(12, 42).into(), nh(13, nh_type::DISCARD).into()]);
    assert_eq!(g.iter().map(code).collect::<Vec<_>>(), [-EINVAL, 0]);
    assert!(dp.router.nh(13).is_some());

    // Undecodable bytes: -1, as upstream's `sandesh_decode` fails; the
    // next message is still served.
    let mut buf = Vec::new();
    let meta = frame::Meta {
        family: frame::GENL_ID_VROUTER,
        flags: frame::NLM_F_REQUEST,
        seq: 200,
        pid: 4242,
        version: 0,
    };
    frame::write_sandesh(&mut buf, &meta, frame::Style::Request, |o| {
        o.extend_from_slice(&[0, 0, 0, 14, b'v', b'r'])
    })
    .unwrap();
    frame::write_sandesh(&mut buf, &meta, frame::Style::Request, |o| {
        o.extend_from_slice(&[0xff; 40])
    })
    .unwrap();
    buf.extend(request(&[nh_op(13, SandeshOp::Get).into()], 201));
    let a = dp.answers(&buf);
    assert_eq!(a.len(), 3);
    assert_eq!(code(&a[0].1[0]), -1);
    assert_eq!(code(&a[1].1[0]), -1);
    assert_eq!(code(&a[2].1[0]), 0);
    assert!(matches!(&a[2].1[0][1], Message::Nexthop(n) if n.nhr_id == 13));

    // A valid object followed by a truncated one in the same message:
    // the first is applied, decoding stops at the second.
    let mut payload = Vec::new();
    Message::from(nh(14, nh_type::DISCARD)).encode(&mut payload);
    let trunc = nh(15, nh_type::DISCARD).to_bytes();
    payload.extend_from_slice(&trunc[..trunc.len() - 3]);
    let mut buf = Vec::new();
    frame::write_sandesh(&mut buf, &meta, frame::Style::Request, |o| {
        o.extend_from_slice(&payload)
    })
    .unwrap();
    let a = dp.answers(&buf);
    assert_eq!(a[0].1.iter().map(code).collect::<Vec<_>>(), [0, -1]);
    assert!(dp.router.nh(14).is_some() && dp.router.nh(15).is_none());

    // Unknown object name and known-but-unsupported objects.
    let mut unknown = Vec::new();
    sandesh::wire::write_sandesh_begin(&mut unknown, "vr_bogus_req");
    unknown.push(0);
    let mut buf = Vec::new();
    frame::write_sandesh(&mut buf, &meta, frame::Style::Request, |o| {
        o.extend_from_slice(&unknown)
    })
    .unwrap();
    // Upstream: an unknown name is a decode failure, -1.
    assert_eq!(code(&dp.answers(&buf)[0].1[0]), -1);
    assert_eq!(dp.code(VrMirrorReq::default()), -EOPNOTSUPP);
    assert_eq!(dp.code(nh_op(1, SandeshOp::Reset)), -EOPNOTSUPP);
    // An empty attribute (upstream sends nothing back; we answer -1).
    let mut buf = Vec::new();
    frame::write_sandesh(&mut buf, &meta, frame::Style::Request, |_| {}).unwrap();
    assert_eq!(code(&dp.answers(&buf)[0].1[0]), -1);
}

#[test]
fn broken_netlink_headers() {
    let mut dp = base();
    // A length below the header size: answered, then nothing more can be
    // delimited.
    let mut buf = request(&[nh_op(1, SandeshOp::Get).into()], 1);
    let mut bad = request(&[nh_op(1, SandeshOp::Get).into()], 2);
    bad[..4].copy_from_slice(&8u32.to_ne_bytes());
    buf.extend(&bad);
    buf.extend(request(&[nh_op(1, SandeshOp::Get).into()], 3));
    let out = dp.raw(&buf);
    let a = answers(&out, dp.handler.framing());
    assert_eq!(a.iter().map(|x| x.0).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(code(&a[1].1[0]), -EINVAL);
    assert_eq!(dp.last.malformed, Some(FrameError::BadLength));
    // DPDK reads `nlmsg_len - 24` bytes whatever the attribute header
    // says; the Windows driver reads `nla_len - 4`.
    let mut bad = request(&[nh_op(1, SandeshOp::Get).into()], 5);
    bad[22..24].copy_from_slice(&9u16.to_ne_bytes());
    let nla_ok = bad[20..22].to_vec();
    bad[20..22].copy_from_slice(&3u16.to_ne_bytes());
    bad.extend(request(&[nh_op(1, SandeshOp::Get).into()], 6));
    let a = dp.answers(&bad);
    let want_5 = match dp.handler.framing() {
        frame::Framing::Dpdk => 0,
        frame::Framing::Windows => -1,
    };
    assert_eq!(
        a.iter().map(|x| (x.0, code(&x.1[0]))).collect::<Vec<_>>(),
        [(5, want_5), (6, 0)]
    );
    assert_eq!(dp.last.malformed, None);
    bad[20..22].copy_from_slice(&nla_ok);
    // Delimited but shorter than the 24 header bytes: -1, then go on.
    let mut short = request(&[nh_op(1, SandeshOp::Get).into()], 7)[..20].to_vec();
    short[..4].copy_from_slice(&20u32.to_ne_bytes());
    short.extend(request(&[nh_op(1, SandeshOp::Get).into()], 8));
    let a = dp.answers(&short);
    assert_eq!(
        a.iter().map(|x| (x.0, code(&x.1[0]))).collect::<Vec<_>>(),
        [(7, -1), (8, 0)]
    );
    // Fewer than 16 bytes: nothing to answer.
    assert!(dp.raw(&[1, 2, 3]).is_empty());
    assert_eq!(dp.last.malformed, Some(FrameError::Truncated));
    // Upstream's datapaths do not look at the type: a controller request
    // is read as Sandesh (it is not: -1) and answered with its type.
    let mut ctrl = Vec::new();
    frame::write_get_family(&mut ctrl, "vrouter", 9, 1);
    let out = dp.raw(&ctrl);
    let h = NlMsgHdr::parse(&out).unwrap();
    assert_eq!((h.msg_type, h.seq, h.pid), (frame::GENL_ID_CTRL, 9, 0));
    let nla_len = usize::from(u16::from_ne_bytes([out[20], out[21]]));
    assert!(matches!(
        Message::decode_all(&out[24..24 + nla_len]).as_deref(),
        Ok([Message::Response(sandesh::VrResponse { resp_code: -1, .. })])
    ));
}

#[test]
fn batching_many_requests_in_one_write() {
    let mut dp = base();
    let mut buf = Vec::new();
    for i in 0..50 {
        buf.extend(request(
            &[nh(100 + i, nh_type::DISCARD).into()],
            1000 + i as u32,
        ));
    }
    let a = dp.answers(&buf);
    assert_eq!(a.len(), 50);
    for (i, (seq, g)) in a.iter().enumerate() {
        assert_eq!(*seq, 1000 + i as u32);
        assert_eq!(code(&g[0]), 0);
    }
    assert_eq!(dp.router.nexthops().count(), 3 + 50);
}

// ---- routes -----------------------------------------------------------------

#[test]
fn routes_inet_inet6_bridge() {
    let mut dp = base();
    let mut r = route4(SandeshOp::Add, 1, [10, 1, 0, 0], 16, 2);
    r.rtr_label_flags = 0x2; // proxy ARP
    assert_eq!(dp.code(r), 0);
    let mut host = route4(SandeshOp::Add, 1, [10, 1, 2, 3], 32, 3);
    host.rtr_label_flags = 0x1;
    host.rtr_label = 77;
    host.rtr_mac = MAC1.to_vec();
    assert_eq!(dp.code(host), 0);
    // Upstream checks: next hop must exist, tunnel needs a label.
    assert_eq!(
        dp.code(route4(SandeshOp::Add, 1, [10, 2, 0, 0], 16, 99)),
        -ENOENT
    );
    assert_eq!(
        dp.code(route4(SandeshOp::Add, 1, [10, 2, 0, 0], 16, 3)),
        -EINVAL
    );
    assert_eq!(
        dp.code(route4(SandeshOp::Add, 1, [10, 2, 0, 0], 33, 2)),
        -EINVAL
    );
    // Upstream `inet_route_add`: a VRF beyond the table is -EINVAL; a
    // family without a table -ENOENT.
    assert_eq!(
        dp.code(route4(SandeshOp::Add, 9999, [10, 2, 0, 0], 8, 2)),
        -EINVAL
    );
    let mut fam = route4(SandeshOp::Add, 1, [10, 2, 0, 0], 8, 2);
    fam.rtr_family = 3;
    assert_eq!(dp.code(fam.clone()), -ENOENT);
    fam.h_op = SandeshOp::Del;
    assert_eq!(dp.code(fam), -ENOENT);

    let a6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(dp.code(route6(SandeshOp::Add, 1, a6, 128, 2)), 0);
    let mut b = bridge(SandeshOp::Add, 1, [0x02, 0xaa, 0, 0, 0, 1], 3);
    b.rtr_label_flags = 0x2; // VR_BE_LABEL_VALID_FLAG
    b.rtr_label = 5000;
    assert_eq!(dp.code(b), 0);
    assert_eq!(
        dp.router
            .routes()
            .bridge_lookup(1, &[0x02, 0xaa, 0, 0, 0, 1])
            .unwrap()
            .label(),
        Some(5000)
    );

    // Exact GET, then longest match for an address with no exact route.
    let Ok(Message::Route(g)) = dp.get(route4(SandeshOp::Get, 1, [10, 1, 2, 3], 32, 0)) else {
        panic!()
    };
    assert_eq!((g.rtr_nh_id, g.rtr_label, g.rtr_label_flags), (3, 77, 1));
    assert_eq!(g.rtr_mac, MAC1);
    let Ok(Message::Route(g)) = dp.get(route4(SandeshOp::Get, 1, [10, 1, 9, 9], 32, 0)) else {
        panic!()
    };
    assert_eq!(
        (g.rtr_prefix.as_slice(), g.rtr_prefix_len, g.rtr_nh_id),
        (&[10, 1, 0, 0][..], 16, 2)
    );
    assert_eq!(
        dp.get(route4(SandeshOp::Get, 1, [11, 0, 0, 1], 32, 0)),
        Err(-ENOENT)
    );
    assert_eq!(
        dp.get(route4(SandeshOp::Get, 5, [11, 0, 0, 1], 32, 0)),
        Err(-ENOENT)
    );
    let Ok(Message::Route(g)) = dp.get(route6(SandeshOp::Get, 1, a6, 128, 0)) else {
        panic!()
    };
    assert_eq!(g.rtr_prefix, a6);
    let Ok(Message::Route(g)) = dp.get(bridge(SandeshOp::Get, 1, [0x02, 0xaa, 0, 0, 0, 1], 0))
    else {
        panic!()
    };
    assert_eq!(
        (g.rtr_nh_id, g.rtr_label, g.rtr_label_flags),
        (3, 5000, 0x3)
    );

    // Dumps of each family.
    let (c, objs) = dp.dump_page(route4(SandeshOp::Dump, 1, [0; 4], 0, 0));
    assert_eq!(c, 2);
    assert!(
        matches!(&objs[1], Message::Route(r) if r.rtr_prefix_len == 32 && r.rtr_replace_plen == 32)
    );
    let mut d6 = route6(SandeshOp::Dump, 1, [0; 16], 0, 0);
    d6.rtr_prefix.clear();
    assert_eq!(dp.dump_page(d6).0, 1);
    let mut db = bridge(SandeshOp::Dump, 1, [0; 6], 0);
    db.rtr_mac.clear();
    assert_eq!(dp.dump_page(db).0, 1);
    // A VRF without routes dumps nothing.
    assert_eq!(
        dp.dump_page(route4(SandeshOp::Dump, 7, [0; 4], 0, 0)),
        (0, vec![])
    );

    // Delete: exact prefix; the covering route takes over.
    assert_eq!(dp.code(route4(SandeshOp::Del, 1, [10, 1, 2, 3], 32, 0)), 0);
    assert_eq!(dp.router.routes().lookup4(1, &[10, 1, 2, 3]).unwrap().nh, 2);
    // Upstream `mtrie_delete` does not check that the prefix was there;
    // a VRF without routes is -ENOENT.
    assert_eq!(dp.code(route4(SandeshOp::Del, 1, [10, 1, 2, 3], 32, 0)), 0);
    assert_eq!(
        dp.code(route4(SandeshOp::Del, 60, [10, 1, 2, 3], 32, 0)),
        -ENOENT
    );
    assert_eq!(
        dp.code(route4(SandeshOp::Del, 9999, [10, 1, 2, 3], 32, 0)),
        -EINVAL
    );
    assert_eq!(
        dp.code(bridge(SandeshOp::Del, 1, [0x02, 0xaa, 0, 0, 0, 1], 0)),
        0
    );
    // Upstream `bridge_table_delete`: a missing entry is -ENOENT.
    assert_eq!(
        dp.code(bridge(SandeshOp::Del, 1, [0x02, 0xaa, 0, 0, 0, 1], 0)),
        -ENOENT
    );
    assert_eq!(dp.code(route6(SandeshOp::Del, 1, a6, 128, 0)), 0);
    assert_eq!(dp.code(route6(SandeshOp::Del, 1, a6, 128, 0)), 0);
}

// ---- labels and VRFs --------------------------------------------------------

#[test]
fn mpls_vxlan_vrf() {
    let mut dp = base();
    let mpls = |op, l, nh| VrMplsReq {
        h_op: op,
        mr_label: l,
        mr_nhid: nh,
        mr_marker: -1,
        ..Default::default()
    };
    assert_eq!(dp.code(mpls(SandeshOp::Add, 16, 2)), 0);
    assert_eq!(dp.code(mpls(SandeshOp::Add, 17, 99)), -EINVAL);
    // Upstream `vr_mpls_add`/`_get`/`_del`: a label beyond the table is
    // -EINVAL.
    assert_eq!(dp.code(mpls(SandeshOp::Add, 1_000_000, 2)), -EINVAL);
    assert_eq!(dp.get(mpls(SandeshOp::Get, 1_000_000, 0)), Err(-EINVAL));
    assert_eq!(dp.code(mpls(SandeshOp::Del, -1, 0)), -EINVAL);
    assert_eq!(dp.router.mpls().get(16), Some(2));
    assert!(matches!(dp.get(mpls(SandeshOp::Get, 16, 0)), Ok(Message::Mpls(m)) if m.mr_nhid == 2));
    assert_eq!(dp.get(mpls(SandeshOp::Get, 18, 0)), Err(-ENOENT));
    assert_eq!(dp.dump_page(mpls(SandeshOp::Dump, 0, 0)).0, 1);
    assert_eq!(dp.code(mpls(SandeshOp::Del, 16, 0)), 0);
    // Upstream `vr_mpls_del`: an unset label in range is deleted again.
    assert_eq!(dp.code(mpls(SandeshOp::Del, 16, 0)), 0);

    let vx = |op, v, nh| VrVxlanReq {
        h_op: op,
        vxlanr_vnid: v,
        vxlanr_nhid: nh,
        ..Default::default()
    };
    assert_eq!(dp.code(vx(SandeshOp::Add, 4096, 2)), 0);
    assert_eq!(dp.code(vx(SandeshOp::Add, 4097, 99)), -EINVAL);
    assert_eq!(dp.code(vx(SandeshOp::Add, 1 << 24, 2)), -EINVAL);
    assert!(
        matches!(dp.get(vx(SandeshOp::Get, 4096, 0)), Ok(Message::Vxlan(v)) if v.vxlanr_nhid == 2)
    );
    assert_eq!(dp.get(vx(SandeshOp::Get, 5, 0)), Err(-ENOENT));
    assert_eq!(dp.dump_page(vx(SandeshOp::Dump, 0, 0)).0, 1);
    assert_eq!(dp.code(vx(SandeshOp::Del, 4096, 0)), 0);
    // Upstream `vr_vxlan_del` does not check that the VNI was set.
    assert_eq!(dp.code(vx(SandeshOp::Del, 4096, 0)), 0);

    let vrf = |op, i| VrVrfReq {
        h_op: op,
        vrf_idx: i,
        vrf_marker: -1,
        ..Default::default()
    };
    assert_eq!(dp.code(vrf(SandeshOp::Add, 5)), 0);
    assert_eq!(dp.code(vrf(SandeshOp::Add, 64)), -EINVAL);
    assert!(matches!(dp.get(vrf(SandeshOp::Get, 5)), Ok(Message::Vrf(v)) if v.vrf_flags == 1));
    assert_eq!(dp.get(vrf(SandeshOp::Get, 6)), Err(-ENOENT));
    assert_eq!(dp.code(route4(SandeshOp::Add, 6, [10, 0, 0, 0], 8, 2)), 0);
    let (c, objs) = dp.dump_page(vrf(SandeshOp::Dump, 0));
    assert_eq!(c, 2);
    assert!(matches!(&objs[1], Message::Vrf(v) if v.vrf_idx == 6));
    // DEL resets the VRF: its routes go.
    assert_eq!(dp.code(vrf(SandeshOp::Del, 6)), 0);
    assert!(dp.router.routes().lookup4(6, &[10, 0, 0, 1]).is_none());
    assert_eq!(dp.code(vrf(SandeshOp::Del, 5)), 0);
    assert_eq!(dp.dump_page(vrf(SandeshOp::Dump, 0)), (0, vec![]));
}

// ---- paging -----------------------------------------------------------------

fn vif_marker(m: Option<&Message>) -> i32 {
    match m {
        Some(Message::Interface(v)) => v.vifr_idx,
        _ => -1,
    }
}

#[test]
fn dumps_page_with_markers_without_duplicates_or_gaps() {
    let cfg = RouterConfig {
        max_vifs: 300,
        max_nexthops: 2000,
        max_labels: 2000,
        max_vrfs: 300,
        max_vxlans: 1000,
        ..RouterConfig::small()
    };
    // Small pages: a few objects each.
    let mut dp = Dp::with(Handler::with_page_size(1000), cfg);
    for i in (0..300).step_by(3) {
        assert_eq!(dp.code(vif(i, VifType::Virtual, &format!("tap{i}"))), 0);
    }
    let mut buf = Vec::new();
    for i in (1..2000).step_by(2) {
        buf.extend(request(&[nh(i, nh_type::DISCARD).into()], i as u32));
        buf.extend(request(
            &[VrMplsReq {
                h_op: SandeshOp::Add,
                mr_label: i,
                mr_nhid: 1,
                ..Default::default()
            }
            .into()],
            i as u32,
        ));
    }
    for i in 0..500u32 {
        let a = [10, (i >> 8) as u8, i as u8, 0];
        buf.extend(request(&[route4(SandeshOp::Add, 2, a, 24, 1).into()], i));
        buf.extend(request(&[route4(SandeshOp::Add, 2, a, 25, 1).into()], i));
        let mut a6 = [0u8; 16];
        a6[0] = 0xfd;
        a6[13..15].copy_from_slice(&(i as u16).to_be_bytes());
        buf.extend(request(&[route6(SandeshOp::Add, 2, a6, 120, 1).into()], i));
        let mac = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
        buf.extend(request(&[bridge(SandeshOp::Add, 2, mac, 1).into()], i));
        buf.extend(request(
            &[VrVxlanReq {
                h_op: SandeshOp::Add,
                vxlanr_vnid: (i * 7 + 1) as i32,
                vxlanr_nhid: 1,
                ..Default::default()
            }
            .into()],
            i,
        ));
    }
    for v in (0..300).step_by(2) {
        buf.extend(request(
            &[VrVrfReq {
                h_op: SandeshOp::Add,
                vrf_idx: v,
                ..Default::default()
            }
            .into()],
            v as u32,
        ));
    }
    let a = dp.answers(&buf);
    let failed: Vec<_> = a.iter().filter(|(_, g)| code(&g[0]) != 0).collect();
    assert!(failed.is_empty(), "{failed:?}");

    // vifs: marker = last index.
    let (all, pages) = dp.dump_all(|last| {
        let mut r = vif_op(0, SandeshOp::Dump);
        r.vifr_marker = vif_marker(last);
        r.into()
    });
    assert!(pages > 3, "{pages} pages");
    let idx: Vec<i32> = all.iter().map(|m| vif_marker(Some(m))).collect();
    assert_eq!(idx, (0..300).step_by(3).collect::<Vec<_>>());

    // next hops
    let (all, pages) = dp.dump_all(|last| {
        let mut r = nh_op(0, SandeshOp::Dump);
        r.nhr_marker = match last {
            Some(Message::Nexthop(n)) => n.nhr_id,
            _ => -1,
        };
        r.into()
    });
    assert!(pages > 10);
    let ids: Vec<i32> = all
        .iter()
        .map(|m| match m {
            Message::Nexthop(n) => n.nhr_id,
            _ => panic!(),
        })
        .collect();
    assert_eq!(ids, (1..2000).step_by(2).collect::<Vec<_>>());

    // labels
    let (all, _) = dp.dump_all(|last| {
        VrMplsReq {
            h_op: SandeshOp::Dump,
            mr_marker: match last {
                Some(Message::Mpls(m)) => m.mr_label,
                _ => -1,
            },
            ..Default::default()
        }
        .into()
    });
    let labels: Vec<i32> = all
        .iter()
        .map(|m| match m {
            Message::Mpls(m) => m.mr_label,
            _ => panic!(),
        })
        .collect();
    assert_eq!(labels, (1..2000).step_by(2).collect::<Vec<_>>());

    // VNIs: marker = last VNI, 0 to start.
    let (all, _) = dp.dump_all(|last| {
        VrVxlanReq {
            h_op: SandeshOp::Dump,
            vxlanr_vnid: match last {
                Some(Message::Vxlan(v)) => v.vxlanr_vnid,
                _ => 0,
            },
            ..Default::default()
        }
        .into()
    });
    let vnis: Vec<i32> = all
        .iter()
        .map(|m| match m {
            Message::Vxlan(v) => v.vxlanr_vnid,
            _ => panic!(),
        })
        .collect();
    assert_eq!(vnis, (0..500).map(|i| i * 7 + 1).collect::<Vec<_>>());

    // VRFs
    let (all, _) = dp.dump_all(|last| {
        VrVrfReq {
            h_op: SandeshOp::Dump,
            vrf_marker: match last {
                Some(Message::Vrf(v)) => v.vrf_idx,
                _ => -1,
            },
            ..Default::default()
        }
        .into()
    });
    let mut want: BTreeSet<i32> = (0..300).step_by(2).collect();
    want.insert(2);
    assert_eq!(
        all.iter()
            .map(|m| match m {
                Message::Vrf(v) => v.vrf_idx,
                _ => panic!(),
            })
            .collect::<Vec<_>>(),
        want.into_iter().collect::<Vec<_>>()
    );

    // inet routes: marker = (last prefix, its length).
    for family in [AF_INET, AF_INET6] {
        let (all, pages) = dp.dump_all(|last| {
            let mut r = route4(SandeshOp::Dump, 2, [0; 4], 0, 0);
            r.rtr_family = i32::from(family);
            r.rtr_prefix.clear();
            if let Some(Message::Route(l)) = last {
                r.rtr_marker = l.rtr_prefix.clone();
                r.rtr_marker_plen = l.rtr_prefix_len;
            }
            r.into()
        });
        assert!(pages > 10, "{family} {pages} {}", all.len());
        let got: Vec<(Vec<u8>, i32)> = all
            .iter()
            .map(|m| match m {
                Message::Route(r) => (r.rtr_prefix.clone(), r.rtr_prefix_len),
                _ => panic!(),
            })
            .collect();
        let uniq: BTreeSet<_> = got.iter().cloned().collect();
        assert_eq!(uniq.len(), got.len(), "duplicates");
        let want = if family == AF_INET { 1000 } else { 500 };
        assert_eq!(got.len(), want);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    }

    // bridge: marker = last MAC.
    let (all, _) = dp.dump_all(|last| {
        let mut r = bridge(SandeshOp::Dump, 2, [0; 6], 0);
        r.rtr_mac = match last {
            Some(Message::Route(l)) => l.rtr_mac.clone(),
            _ => Vec::new(),
        };
        r.into()
    });
    let macs: Vec<Vec<u8>> = all
        .iter()
        .map(|m| match m {
            Message::Route(r) => r.rtr_mac.clone(),
            _ => panic!(),
        })
        .collect();
    let want: Vec<Vec<u8>> = (0..500u32)
        .map(|i| vec![2, 0, 0, 0, (i >> 8) as u8, i as u8])
        .collect();
    assert_eq!(macs, want);
}

#[test]
fn upstream_page_size_and_incomplete_bit() {
    let mut dp = Dp::new();
    for i in 0..64 {
        assert_eq!(dp.code(vif(i, VifType::Virtual, &format!("tap{i}"))), 0);
    }
    let mut r = vif_op(0, SandeshOp::Dump);
    r.vifr_marker = -1;
    let (c, objs) = dp.dump_page(r.clone());
    assert_ne!(c & VR_MESSAGE_DUMP_INCOMPLETE, 0);
    let page: usize = objs.iter().map(|m| m.to_bytes().len()).sum();
    assert!(page <= ksync::VR_MESSAGE_PAGE_SIZE);
    let one = objs[0].to_bytes().len();
    assert!(page + one > ksync::VR_MESSAGE_PAGE_SIZE, "the page is full");
    // A marker at the end of the table: an empty, complete answer.
    r.vifr_marker = 63;
    assert_eq!(dp.dump_page(r), (0, vec![]));
}

// ---- flows ------------------------------------------------------------------

fn flow_req(key: &FlowKey, index: i32, action: u16, flags: u16) -> VrFlowReq {
    let mut r = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: index,
        fr_rindex: -1,
        fr_action: action as i16,
        fr_flags: flags as i16,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    set_flow_key(&mut r, key);
    r
}

fn flow_answer(a: &Answer) -> (i32, sandesh::VrFlowResponse) {
    assert_eq!(a.len(), 2, "a flow answer always carries vr_flow_response");
    match &a[1] {
        Message::FlowResponse(f) => (code(a), f.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flow_set_update_delete_and_table_data() {
    let mut dp = base();
    dp.host.info = HostInfo {
        flow_table_path: "/dev/shm/vrouter-rs/flow".into(),
        cpus: 2,
        ..HostInfo::default()
    };
    let key = FlowKey::new_v4(6, 40000, 80, 2, [10, 0, 0, 1], [10, 0, 0, 2]);
    let (c, f) = flow_answer(&dp.one(flow_req(
        &key,
        -1,
        VR_FLOW_ACTION_FORWARD,
        VR_FLOW_FLAG_ACTIVE,
    )));
    assert_eq!(c, 0);
    let idx = f.fresp_index;
    let fe = dp.router.flows().get_valid(idx).unwrap();
    assert_eq!(
        (fe.key, fe.action, fe.gen_id),
        (key, VR_FLOW_ACTION_FORWARD, f.fresp_gen_id)
    );
    assert!(fe.is_active());

    // The same key again with index -1: upstream's -EEXIST with the entry.
    let (c, f2) = flow_answer(&dp.one(flow_req(
        &key,
        -1,
        VR_FLOW_ACTION_FORWARD,
        VR_FLOW_FLAG_ACTIVE,
    )));
    assert_eq!((c, f2.fresp_index), (-EEXIST, idx));

    // Reverse flow found by key, VRF translation.
    let rkey = FlowKey::new_v4(6, 80, 40000, 3, [10, 0, 0, 2], [10, 0, 0, 1]);
    let mut rr = flow_req(
        &rkey,
        -1,
        VR_FLOW_ACTION_FORWARD,
        VR_FLOW_FLAG_ACTIVE | VR_RFLOW_VALID,
    );
    // fr_rflow_* name the forward flow.
    let mut tmp = VrFlowReq::default();
    set_flow_key(&mut tmp, &key);
    rr.fr_rflow_sip_l = tmp.fr_flow_sip_l;
    rr.fr_rflow_dip_l = tmp.fr_flow_dip_l;
    rr.fr_rflow_sport = tmp.fr_flow_sport;
    rr.fr_rflow_dport = tmp.fr_flow_dport;
    rr.fr_rflow_nh_id = tmp.fr_flow_nh_id;
    let (c, rf) = flow_answer(&dp.one(rr.clone()));
    assert_eq!(c, 0);
    assert_eq!(
        dp.router.flows().get(rf.fresp_index).unwrap().rflow(),
        Some(idx)
    );
    let mut unknown_r = rr.clone();
    unknown_r.fr_rflow_sport = 1;
    unknown_r.fr_flow_sport = 2;
    assert_eq!(flow_answer(&dp.one(unknown_r)).0, -EINVAL);

    // Update with index and generation; a stale generation is refused.
    let mut upd = flow_req(
        &key,
        idx as i32,
        VR_FLOW_ACTION_DROP,
        VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_VRFT,
    );
    upd.fr_gen_id = f.fresp_gen_id;
    upd.fr_flow_dvrf = 5;
    upd.fr_drop_reason = 0x15;
    assert_eq!(flow_answer(&dp.one(upd.clone())).0, 0);
    let fe = dp.router.flows().get(idx).unwrap();
    assert_eq!(
        (fe.action, fe.dvrf, fe.drop_reason),
        (VR_FLOW_ACTION_DROP, 5, 0x15)
    );
    // Upstream `vr_flow_set_req_is_invalid`: a stale generation is
    // -EBADF, a key that does not match the entry -EFAULT.
    upd.fr_gen_id = f.fresp_gen_id.wrapping_add(1);
    assert_eq!(flow_answer(&dp.one(upd.clone())).0, -EBADF);
    upd.fr_gen_id = f.fresp_gen_id;
    upd.fr_flow_sport ^= 1;
    assert_eq!(flow_answer(&dp.one(upd.clone())).0, -EFAULT);
    upd.fr_flow_sport ^= 1;
    upd.fr_gen_id = f.fresp_gen_id;
    upd.fr_flow_dvrf = 999;
    assert_eq!(flow_answer(&dp.one(upd)).0, -EINVAL);

    // Table data: `vr_flow_table_data` answers it; a `vr_flow_req` with
    // FLOW_TABLE_GET is -EINVAL (upstream `vr_flow_req_process`).
    let data = |dp: &mut Dp, m: Message| match dp.get(m) {
        Ok(Message::FlowTableData(d)) => d,
        other => panic!("{other:?}"),
    };
    let d = data(
        &mut dp,
        VrFlowTableData {
            ftable_op: FlowOp::FlowTableGet,
            ..Default::default()
        }
        .into(),
    );
    assert_eq!(d.ftable_file_path, "/dev/shm/vrouter-rs/flow");
    // Upstream's agent maps ftable_size bytes: 256-byte records.
    assert_eq!(d.ftable_size, (1024 + 256) * 256);
    assert_eq!(
        (d.ftable_used_entries, d.ftable_added, d.ftable_changed),
        (2, 2, 1)
    );
    assert_eq!((d.ftable_cpus, d.ftable_hold_stat.len()), (2, 2));
    let a = dp.one(VrFlowReq {
        fr_op: FlowOp::FlowTableGet,
        ..Default::default()
    });
    assert_eq!(code(&a), -EINVAL);
    assert!(matches!(&a[1], Message::FlowResponse(r) if r.fresp_op == FlowOp::FlowTableGet));
    // FLOW_LIST is not a ksync operation (upstream: -EINVAL).
    let a = dp.one(VrFlowReq {
        fr_op: FlowOp::FlowList,
        ..Default::default()
    });
    assert_eq!(code(&a), -EINVAL);

    // Delete: FLOW_SET without ACTIVE.
    let mut del = flow_req(&key, idx as i32, VR_FLOW_ACTION_DROP, 0);
    del.fr_gen_id = f.fresp_gen_id;
    let (c, df) = flow_answer(&dp.one(del.clone()));
    assert_eq!((c, df.fresp_flags), (0, VR_FLOW_RESP_FLAG_DELETED));
    assert!(dp.router.flows().get_valid(idx).is_none());
    assert_eq!(flow_answer(&dp.one(del)).0, -ENOENT);
    assert!(dp.host.dropped.is_empty());
    assert_eq!(
        flow_answer(&dp.one(flow_req(&key, -1, VR_FLOW_ACTION_DROP, 0))).0,
        -ENOENT
    );
}

fn udp_frame(smac: [u8; 6], dmac: [u8; 6], sip: [u8; 4], dip: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = dmac.to_vec();
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    let payload = b"ksync";
    let total = 20 + 8 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    ip.extend_from_slice(&sip);
    ip.extend_from_slice(&dip);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&7u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn held_packets_are_released_or_dropped_through_the_host() {
    let mut topo = Topo::new(RouterConfig::small());
    let vm1 = topo.add_vm(3, 1, [2, 0x11, 0, 0, 0, 1], [198, 18, 1, 3], [0; 16], true);
    let vm2 = topo.add_vm(4, 1, [2, 0x11, 0, 0, 0, 2], [198, 18, 1, 4], [0; 16], true);
    let mut held = Vec::new();
    for sport in [1000, 1001] {
        let f = udp_frame(vm1.mac, dp_core::VROUTER_MAC, vm1.ip, vm2.ip, sport);
        let outs = topo.run(vm1.vif, &f);
        let flow = outs
            .iter()
            .find_map(|o| match o {
                dp_core::testkit::Output::Hold { flow } => Some(*flow),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not held: {outs:?}"));
        held.push(flow);
    }
    let mut dp = Dp::new();
    std::mem::swap(&mut dp.router, &mut topo.router);
    let fe = *dp.router.flows().get(held[0]).unwrap();
    assert_eq!(fe.action, VR_FLOW_ACTION_HOLD);
    // The agent forwards the first: its packets are re-injected.
    let mut set = flow_req(
        &fe.key,
        held[0] as i32,
        VR_FLOW_ACTION_FORWARD,
        VR_FLOW_FLAG_ACTIVE,
    );
    set.fr_gen_id = fe.gen_id;
    assert_eq!(flow_answer(&dp.one(set)).0, 0);
    assert_eq!(dp.host.released, [held[0]]);
    // ... and deletes the second: its packets are dropped.
    let fe = *dp.router.flows().get(held[1]).unwrap();
    let mut del = flow_req(&fe.key, held[1] as i32, VR_FLOW_ACTION_DROP, 0);
    del.fr_gen_id = fe.gen_id;
    assert_eq!(flow_answer(&dp.one(del)).0, 0);
    assert_eq!(dp.host.dropped, [held[1]]);
    assert_eq!(dp.handler.flow_stats().processed, 1);
    assert_eq!(dp.handler.flow_stats().deleted, 1);
}

// ---- statistics and global ops ----------------------------------------------

#[test]
fn drop_stats_get_and_reset() {
    let mut dp = base();
    let mut buf = vec![0u8; HEADROOM + 64];
    let mut pkts = [Packet::new(&mut buf, HEADROOM, 60).unwrap()];
    let mut actions = Actions::with_capacity(4);
    dp.router.process(42, &mut pkts, &mut actions);
    assert_eq!(dp.router.drop_stats().get(DropReason::InvalidIf), 1);
    let get = VrDropStatsReq {
        h_op: SandeshOp::Get,
        ..Default::default()
    };
    let Ok(Message::DropStats(s)) = dp.get(get.clone()) else {
        panic!()
    };
    assert_eq!(s.vds_invalid_if, 1);
    assert_eq!(s.vds_discard, 0);
    let reset = dp.get(VrDropStatsReq {
        h_op: SandeshOp::Reset,
        ..Default::default()
    });
    assert!(matches!(reset, Ok(Message::DropStats(r)) if r.h_op == SandeshOp::Reset));
    let Ok(Message::DropStats(s)) = dp.get(get) else {
        panic!()
    };
    assert_eq!(s.vds_invalid_if, 0);
    assert_eq!(
        dp.code(VrDropStatsReq {
            h_op: SandeshOp::Add,
            ..Default::default()
        }),
        -EOPNOTSUPP
    );
}

#[test]
fn vrouter_ops_mem_stats_and_soft_reset() {
    let mut dp = base();
    dp.host.info.build_info = "{\"build-info\" : [{\"build-version\" : \"9.9\"}]}".into();
    let Ok(Message::VrouterOps(o)) = dp.get(VrouterOps {
        h_op: SandeshOp::Get,
        ..Default::default()
    }) else {
        panic!()
    };
    let cfg = RouterConfig::small();
    assert_eq!(o.vo_interfaces, i32::from(cfg.max_vifs));
    assert_eq!(o.vo_nexthops, cfg.max_nexthops as i32);
    assert_eq!(o.vo_mpls_labels, cfg.max_labels as i32);
    assert_eq!(o.vo_flow_entries, cfg.flow_entries as i32);
    assert_eq!(o.vo_oflow_entries, cfg.oflow_entries as i32);
    assert!(o.vo_build_info.contains("9.9"));
    assert_eq!(
        dp.code(VrouterOps {
            h_op: SandeshOp::Add,
            vo_from_vm_mss_adj: -1,
            vo_to_vm_mss_adj: -1,
            ..Default::default()
        }),
        0
    );

    let Ok(Message::MemStats(m)) = dp.get(VrMemStatsReq {
        h_op: SandeshOp::Get,
        ..Default::default()
    }) else {
        panic!()
    };
    assert_eq!((m.vms_interface_object, m.vms_nexthop_object), (2, 3));

    assert_eq!(dp.code(route4(SandeshOp::Add, 1, [10, 0, 0, 0], 8, 1)), 0);
    assert_eq!(dp.code(bridge(SandeshOp::Add, 1, MAC1, 1)), 0);
    assert_eq!(
        dp.code(VrMplsReq {
            h_op: SandeshOp::Add,
            mr_label: 20,
            mr_nhid: 1,
            ..Default::default()
        }),
        0
    );
    let key = FlowKey::new_v4(17, 1, 2, 1, [1, 1, 1, 1], [2, 2, 2, 2]);
    assert_eq!(
        flow_answer(&dp.one(flow_req(
            &key,
            -1,
            VR_FLOW_ACTION_FORWARD,
            VR_FLOW_FLAG_ACTIVE
        )))
        .0,
        0
    );
    assert_eq!(
        dp.code(VrouterOps {
            h_op: SandeshOp::Reset,
            ..Default::default()
        }),
        0
    );
    assert_eq!(dp.router.vifs().iter().count(), 0);
    assert_eq!(dp.router.nexthops().count(), 0);
    assert_eq!(dp.router.mpls().iter().count(), 0);
    assert_eq!(dp.router.routes().bridge_len(), 0);
    assert!(dp.router.routes().vrf(1).is_none());
    assert!(dp.router.flows().is_empty());
    assert_eq!(dp.host.deleted, [0, 1]);
}

#[test]
fn flows_of_a_reset_router_use_the_shared_table_geometry() {
    // vo_flow_entries comes from the table in use, not the config.
    let cfg = RouterConfig::small();
    let table = dp_core::FlowTable::new(64, 8).unwrap();
    let mut dp = Dp::new();
    dp.router = dp_core::Router::with_flow_table(cfg, table);
    let Ok(Message::VrouterOps(o)) = dp.get(VrouterOps {
        h_op: SandeshOp::Get,
        ..Default::default()
    }) else {
        panic!()
    };
    assert_eq!((o.vo_flow_entries, o.vo_oflow_entries), (64, 8));
}

#[test]
fn vif_reset_clears_counters() {
    let mut dp = base();
    // Upstream `vr_interface_clear_stats`: the vif's name comes back.
    let a = dp.one(vif_op(1, SandeshOp::Reset));
    assert_eq!(code(&a), 0);
    assert!(
        matches!(&a[1], Message::Interface(v) if v.h_op == SandeshOp::Reset && v.vifr_idx == 1 && !v.vifr_name.is_empty())
    );
    assert!(matches!(
        dp.router.vif(1).map(|v| v.cfg.vif_type),
        Some(VifType::Virtual)
    ));
    // -1: every vif.
    let a = dp.one(vif_op(-1, SandeshOp::Reset));
    assert_eq!(code(&a), 0);
    assert_eq!(dp.code(vif_op(1, SandeshOp::Response)), -EOPNOTSUPP);
    let a = dp.one(vif_op(9999, SandeshOp::Reset));
    assert_eq!(code(&a), -EINVAL);
}

/// Both answer framings, on the same requests: a lone answer, a two-part
/// dump answer, and several objects in one message.
#[test]
fn dpdk_and_windows_framings() {
    for framing in [frame::Framing::Dpdk, frame::Framing::Windows] {
        let mut dp = Dp::with(
            Handler::with_page_size(200).with_framing(framing),
            RouterConfig::small(),
        );
        assert_eq!(dp.handler.framing(), framing);
        for i in 1..8 {
            assert_eq!(dp.code(nh(i, nh_type::DISCARD)), 0, "{framing:?}");
        }
        // `answers` checks the framing byte for byte.
        let (all, pages) = dp.dump_all(ksync::dump::nexthops);
        assert_eq!((all.len(), pages > 1), (7, true));
        let g = dp.send(&[
            nh_op(1, SandeshOp::Get).into(),
            nh_op(99, SandeshOp::Get).into(),
        ]);
        assert_eq!(g.iter().map(code).collect::<Vec<_>>(), [0, -ENOENT]);
    }
}

/// Upstream's agent uses family id 10 on the DPDK socket; the datapath
/// echoes whatever type a request has, and the `genlmsghdr` too.
#[test]
fn any_family_id_is_served_and_echoed() {
    let mut dp = base();
    for family in [frame::AGENT_DPDK_FAMILY, frame::GENL_ID_VROUTER, 0x1c, 0] {
        let mut buf = Vec::new();
        let meta = frame::Meta {
            family,
            flags: frame::NLM_F_REQUEST,
            seq: 77,
            pid: 1234,
            version: 0,
        };
        frame::write_sandesh_genl(
            &mut buf,
            &meta,
            [frame::SANDESH_REQUEST, 3, 0xab, 0xcd],
            frame::Style::Request,
            |o| Message::from(nh_op(1, SandeshOp::Get)).encode(o),
        )
        .unwrap();
        let out = dp.raw(&buf);
        let h = NlMsgHdr::parse(&out).unwrap();
        assert_eq!((h.msg_type, h.seq, h.pid, h.flags), (family, 77, 0, 0));
        assert_eq!(&out[16..20], &[frame::SANDESH_REQUEST, 3, 0xab, 0xcd]);
        let nla_len = usize::from(u16::from_ne_bytes([out[20], out[21]]));
        let msgs = Message::decode_all(&out[24..24 + nla_len]).unwrap();
        assert!(
            matches!(&msgs[..], [Message::Response(r), Message::Nexthop(n)]
            if r.resp_code == 0 && n.nhr_id == 1)
        );
    }
}

#[test]
fn ipv6_tunnel_endpoints_are_refused_not_read_as_zero() {
    let mut dp = base();
    let tunnel = |id: i32| {
        let mut t = nh(id, nh_type::TUNNEL);
        t.nhr_flags |= NhFlags::TUNNEL_UDP_MPLS.bits();
        t.nhr_encap_oif_id = vec![0];
        t.nhr_encap = encap([0x02, 0, 0, 0, 0, 0xfe], MAC1);
        t
    };
    // Upstream's agent marks an IPv6 tunnel with the family and the
    // 16-byte endpoints.
    let mut v6 = tunnel(20);
    v6.nhr_family = AF_INET6;
    v6.nhr_tun_sip6 = [0x20, 0x01, 0x0d, 0xb8]
        .iter()
        .chain(&[0; 11])
        .chain(&[1])
        .copied()
        .collect();
    v6.nhr_tun_dip6 = [0x20, 0x01, 0x0d, 0xb8]
        .iter()
        .chain(&[0; 11])
        .chain(&[2])
        .copied()
        .collect();
    assert_eq!(dp.code(v6), -EINVAL);
    assert!(dp.router.nh(20).is_none(), "no 0.0.0.0 tunnel left behind");
    let mut v6 = tunnel(21);
    v6.nhr_tun_dip6 = vec![0xfd; 16];
    assert_eq!(dp.code(v6), -EINVAL);
    assert!(dp.router.nh(21).is_none());
    // IPv4 endpoints (and empty or zero IPv6 fields) are fine.
    let mut v4 = tunnel(22);
    v4.nhr_tun_sip = ipv4_to_wire([192, 0, 2, 1]);
    v4.nhr_tun_dip = ipv4_to_wire([192, 0, 2, 3]);
    v4.nhr_tun_dip6 = vec![0; 16];
    assert_eq!(dp.code(v4), 0);
}

#[test]
fn flow_table_data_counts_expired_hold_entries() {
    let mut topo = Topo::new(RouterConfig::small());
    let vm1 = topo.add_vm(3, 1, [2, 0x11, 0, 0, 0, 1], [198, 18, 1, 3], [0; 16], true);
    let vm2 = topo.add_vm(4, 1, [2, 0x11, 0, 0, 0, 2], [198, 18, 1, 4], [0; 16], true);
    topo.router.set_time(10);
    let f = udp_frame(vm1.mac, dp_core::VROUTER_MAC, vm1.ip, vm2.ip, 1000);
    topo.run(vm1.vif, &f);
    topo.router.set_time(40);
    let cap = topo.router.flows().capacity();
    assert_eq!(topo.router.expire_holds(30, cap, |_| {}), 1);
    let mut dp = Dp::new();
    std::mem::swap(&mut dp.router, &mut topo.router);
    let Ok(Message::FlowTableData(d)) = dp.get(VrFlowTableData {
        ftable_op: FlowOp::FlowTableGet,
        ..Default::default()
    }) else {
        panic!()
    };
    assert_eq!((d.ftable_hold_expired, d.ftable_hold_entries), (1, 0));
}
