//! Next hop requests: `vr_nexthop_req`.

use dp_core::{Nexthop, NhFlags, NhKind, Router, TunnelKind};
use sandesh::{SandeshOp, VrNexthopReq};

use super::{nh_errno, Handler};
use crate::convert;
use crate::errno::{EINVAL, ENODEV, ENOENT, EOPNOTSUPP};

impl Handler {
    pub(super) fn nexthop(&mut self, router: &mut Router, r: &VrNexthopReq) {
        match r.h_op {
            SandeshOp::Add => {
                let res = convert::nh_from_req(r).map_err(nh_errno).and_then(|nh| {
                    // As upstream: the outgoing vif must exist (-EINVAL
                    // for an encap, -ENODEV for a tunnel).
                    match nh.kind {
                        NhKind::Encap { oif, .. } if router.vif(oif).is_none() => {
                            return Err(-EINVAL)
                        }
                        NhKind::Tunnel { oif, .. } if router.vif(oif).is_none() => {
                            return Err(-ENODEV)
                        }
                        _ => {}
                    }
                    // Upstream: an L3 VXLAN next hop needs its router MAC.
                    let l3_mac = if nh.flags.contains(NhFlags::L3_VXLAN)
                        && convert::tunnel_kind(&nh) == Some(TunnelKind::Vxlan)
                    {
                        match <[u8; 6]>::try_from(r.nhr_rw_dst_mac.as_slice()) {
                            Ok(m) if m != [0; 6] => Some(m),
                            _ => return Err(-EINVAL),
                        }
                    } else {
                        None
                    };
                    let id = nh.id;
                    router.nh_add(nh).map_err(nh_errno)?;
                    match l3_mac {
                        Some(m) => router.nh_set_l3_vxlan_mac(id, m).map_err(nh_errno),
                        None => Ok(()),
                    }
                });
                self.answers.result(res);
            }
            SandeshOp::Del => {
                // Upstream: a missing next hop is -EINVAL.
                let res = u32::try_from(r.nhr_id)
                    .ok()
                    .and_then(|id| router.nh_del(id).ok())
                    .map(|_| ())
                    .ok_or(-EINVAL);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                // Upstream: beyond the table -ENODEV, a hole -ENOENT.
                let ans = match u32::try_from(r.nhr_id) {
                    Ok(id) if id < router.config().max_nexthops => router
                        .nh(id)
                        .map(|nh| nh_answer(router, nh, SandeshOp::Get))
                        .ok_or(-ENOENT),
                    _ => Err(-ENODEV),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.nhr_marker);
                let items = router
                    .nexthops()
                    .filter(move |nh| i64::from(nh.id) > marker)
                    .map(|nh| nh_answer(router, nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }
}

/// A next hop as `vr_nexthop_req`, with what the router keeps beside it
/// (the router MAC of an L3 VXLAN next hop).
fn nh_answer(router: &Router, nh: &Nexthop, op: SandeshOp) -> VrNexthopReq {
    let mut r = convert::nh_to_req(nh, op);
    if let Some(m) = router.nh_l3_vxlan_mac(nh.id) {
        r.nhr_rw_dst_mac = m.to_vec();
    }
    r
}
