//! Label requests: MPLS labels (`vr_mpls_req`) and VXLAN VNIs (`vr_vxlan_req`).

use alloc::vec::Vec;

use dp_core::{ConfigError, Router};
use sandesh::{SandeshOp, VrMplsReq, VrVxlanReq};

use super::{errno, Handler};
use crate::errno::{EINVAL, ENOENT, EOPNOTSUPP};

impl Handler {
    pub(super) fn mpls(&mut self, router: &mut Router, r: &VrMplsReq) {
        // Upstream: a label beyond the table is -EINVAL for every op.
        let label = u32::try_from(r.mr_label)
            .ok()
            .filter(|l| *l < router.mpls().capacity())
            .ok_or(-EINVAL);
        match r.h_op {
            SandeshOp::Add => {
                let res = label.and_then(|l| {
                    let nh = u32::try_from(r.mr_nhid)
                        .ok()
                        .filter(|n| router.nh(*n).is_some())
                        .ok_or(-EINVAL)?;
                    router.mpls_add(l, nh).map_err(|_| -EINVAL)
                });
                self.answers.result(res);
            }
            SandeshOp::Del => {
                // Upstream: deleting an unset label succeeds.
                let res = label.map(|l| {
                    let _ = router.mpls_del(l);
                });
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = label.and_then(|l| {
                    router
                        .mpls()
                        .get(l)
                        .map(|nh| mpls_req(l, nh, SandeshOp::Get))
                        .ok_or(-ENOENT)
                });
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.mr_marker);
                let items = router
                    .mpls()
                    .iter()
                    .filter(move |(l, _)| i64::from(*l) > marker)
                    .map(|(l, nh)| mpls_req(l, nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    pub(super) fn vxlan(&mut self, router: &mut Router, r: &VrVxlanReq) {
        let vni = u32::try_from(r.vxlanr_vnid).map_err(|_| ConfigError::Invalid("vni"));
        match r.h_op {
            SandeshOp::Add => {
                let res = vni
                    .and_then(|v| {
                        let nh = u32::try_from(r.vxlanr_nhid)
                            .ok()
                            .filter(|n| router.nh(*n).is_some())
                            .ok_or(ConfigError::Invalid("vxlan next hop"))?;
                        router.vxlan_add(v, nh)
                    })
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                // Upstream: deleting an unset VNI succeeds.
                let res = vni
                    .map(|v| {
                        let _ = router.vxlan_del(v);
                    })
                    .map_err(errno);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                let ans = match vni {
                    Err(e) => Err(errno(e)),
                    Ok(v) => router
                        .vxlan()
                        .get(v)
                        .map(|nh| vxlan_req(v, nh, SandeshOp::Get))
                        .ok_or(-ENOENT),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                // Upstream: the marker is the last VNI; 0 starts over.
                let start = match u32::try_from(r.vxlanr_vnid) {
                    Ok(0) | Err(_) => 0,
                    Ok(v) => u64::from(v) + 1,
                };
                let mut vnis: Vec<(u32, u32)> = router
                    .vxlan()
                    .iter()
                    .filter(|(v, _)| u64::from(*v) >= start)
                    .collect();
                vnis.sort_unstable();
                let items = vnis
                    .into_iter()
                    .map(|(v, nh)| vxlan_req(v, nh, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }
}

fn mpls_req(label: u32, nh: u32, op: SandeshOp) -> VrMplsReq {
    VrMplsReq {
        h_op: op,
        mr_label: label as i32,
        mr_nhid: nh as i32,
        ..Default::default()
    }
}

fn vxlan_req(vni: u32, nh: u32, op: SandeshOp) -> VrVxlanReq {
    VrVxlanReq {
        h_op: op,
        vxlanr_vnid: vni as i32,
        vxlanr_nhid: nh as i32,
        ..Default::default()
    }
}
