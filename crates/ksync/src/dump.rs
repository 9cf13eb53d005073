//! The requests a client pages a dump with, as upstream's tools do: each
//! page asks for the objects after the last one received (`None` first).
//! Shared by `vrctl` and the agent, so both page exactly as the handler
//! here expects.

use sandesh::{
    Message, SandeshOp, VrInterfaceReq, VrMplsReq, VrNexthopReq, VrRouteReq, VrVxlanReq,
};

/// `vr_interface_req` DUMP after vif `last`.
pub fn vifs(last: Option<&Message>) -> Message {
    VrInterfaceReq {
        h_op: SandeshOp::Dump,
        vifr_marker: match last {
            Some(Message::Interface(v)) => v.vifr_idx,
            _ => -1,
        },
        ..Default::default()
    }
    .into()
}

/// `vr_nexthop_req` DUMP after next hop `last`.
pub fn nexthops(last: Option<&Message>) -> Message {
    VrNexthopReq {
        h_op: SandeshOp::Dump,
        nhr_marker: match last {
            Some(Message::Nexthop(n)) => n.nhr_id,
            _ => -1,
        },
        ..Default::default()
    }
    .into()
}

/// `vr_mpls_req` DUMP after label `last`.
pub fn labels(last: Option<&Message>) -> Message {
    VrMplsReq {
        h_op: SandeshOp::Dump,
        mr_marker: match last {
            Some(Message::Mpls(m)) => m.mr_label,
            _ => -1,
        },
        ..Default::default()
    }
    .into()
}

/// `vr_vxlan_req` DUMP after VNI `last`.
pub fn vnis(last: Option<&Message>) -> Message {
    VrVxlanReq {
        h_op: SandeshOp::Dump,
        vxlanr_vnid: match last {
            Some(Message::Vxlan(v)) => v.vxlanr_vnid,
            _ => 0,
        },
        ..Default::default()
    }
    .into()
}

/// `vr_route_req` DUMP of one VRF and family (`AF_INET`, `AF_INET6`,
/// `AF_BRIDGE`) after route `last` (a prefix marker, or the MAC for the
/// bridge table).
pub fn routes(vrf: u16, family: u8, last: Option<&Message>) -> Message {
    let mut r = VrRouteReq {
        h_op: SandeshOp::Dump,
        rtr_vrf_id: i32::from(vrf),
        rtr_family: i32::from(family),
        ..Default::default()
    };
    if let Some(Message::Route(l)) = last {
        if family == dp_core::nexthop::AF_BRIDGE {
            r.rtr_mac = l.rtr_mac.clone();
        } else {
            r.rtr_marker = l.rtr_prefix.clone();
            r.rtr_marker_plen = l.rtr_prefix_len;
        }
    }
    r.into()
}
