//! VRF requests: `vr_vrf_req`.

use alloc::vec::Vec;

use dp_core::Router;
use sandesh::{SandeshOp, VrVrfReq};

use super::Handler;
use crate::errno::{EINVAL, ENODEV, ENOENT, EOPNOTSUPP};
use crate::VRF_FLAG_VALID;

impl Handler {
    pub(super) fn vrf_exists(&self, router: &Router, v: u16) -> bool {
        self.vrfs.contains(&v) || router.routes().vrf(v).is_some()
    }

    pub(super) fn vrf(&mut self, router: &mut Router, r: &VrVrfReq) {
        let max = router.routes().max_vrfs();
        let idx = u16::try_from(r.vrf_idx).ok().filter(|v| *v < max);
        match r.h_op {
            SandeshOp::Add => match idx {
                Some(v) => {
                    self.vrfs.insert(v);
                    self.answers.code(0);
                }
                None => self.answers.code(-EINVAL),
            },
            // Upstream: deleting a VRF that is not there is -EINVAL.
            SandeshOp::Del => match idx.filter(|v| self.vrf_exists(router, *v)) {
                Some(v) => {
                    router.vrf_reset(v);
                    self.vrfs.remove(&v);
                    self.answers.code(0);
                }
                None => self.answers.code(-EINVAL),
            },
            SandeshOp::Get => {
                let ans = match idx {
                    None => Err(-ENODEV),
                    Some(v) if self.vrf_exists(router, v) => Ok(vrf_req(v, SandeshOp::Get)),
                    Some(_) => Err(-ENOENT),
                };
                self.answers.get(ans);
            }
            SandeshOp::Dump => {
                let start = i64::from(r.vrf_marker) + 1;
                let items: Vec<VrVrfReq> = (0..max)
                    .filter(|v| i64::from(*v) >= start && self.vrf_exists(router, *v))
                    .map(|v| vrf_req(v, SandeshOp::Dump))
                    .collect();
                self.answers.dump(self.page_size, items.into_iter());
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }
}

fn vrf_req(v: u16, op: SandeshOp) -> VrVrfReq {
    VrVrfReq {
        h_op: op,
        vrf_idx: i32::from(v),
        vrf_flags: VRF_FLAG_VALID,
        vrf_hbfl_vif_idx: -1,
        vrf_hbfr_vif_idx: -1,
        ..Default::default()
    }
}
