//! Statistics and the datapath as a whole: drop and memory statistics,
//! `vrouter_ops` and the soft reset.

use alloc::vec::Vec;

use dp_core::Router;
use sandesh::{SandeshOp, VrDropStatsReq, VrMemStatsReq, VrouterOps};

use super::{FlowOpStats, Handler};
use crate::convert;
use crate::errno::EOPNOTSUPP;
use crate::{default_build_info, HostOps};

impl Handler {
    pub(super) fn drop_stats(&mut self, router: &mut Router, r: &VrDropStatsReq) {
        match r.h_op {
            SandeshOp::Get => {
                let s = convert::drop_stats_to_req(router.drop_stats(), SandeshOp::Get);
                self.answers.object(&s);
            }
            SandeshOp::Reset => {
                router.drop_stats_reset();
                self.answers.object(&VrDropStatsReq {
                    h_op: SandeshOp::Reset,
                    ..Default::default()
                });
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    pub(super) fn mem_stats(&mut self, router: &Router, r: &VrMemStatsReq) {
        if r.h_op != SandeshOp::Get {
            return self.answers.code(-EOPNOTSUPP);
        }
        let n = |x: usize| convert::sat_i64(x as u64);
        let (mut tables, mut levels) = (0usize, 0usize);
        for v in 0..router.routes().max_vrfs() {
            if let Some(t) = router.routes().vrf(v) {
                tables += 2;
                levels += t.inet4.level_count() + t.inet6.level_count();
            }
        }
        let s = VrMemStatsReq {
            h_op: SandeshOp::Get,
            vms_interface_object: n(router.vifs().iter().count()),
            vms_nexthop_object: n(router.nexthops().count()),
            vms_mtrie_object: n(tables),
            vms_mtrie_bucket_object: n(levels),
            vms_bridge_mac_object: n(router.routes().bridge_len()),
            vms_flow_queue_object: n(router
                .flows()
                .iter_valid()
                .filter(|(_, e)| e.hold_count > 0)
                .count()),
            ..Default::default()
        };
        self.answers.object(&s);
    }

    pub(super) fn vrouter_ops<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrouterOps,
    ) {
        match r.h_op {
            SandeshOp::Get => {
                let info = host.host_info();
                let cfg = router.config();
                let t = router.flows();
                let i32c = |x: u32| i32::try_from(x).unwrap_or(i32::MAX);
                let ops = VrouterOps {
                    h_op: SandeshOp::Get,
                    vo_interfaces: i32::from(router.vifs().capacity()),
                    vo_vrfs: i32::from(router.routes().max_vrfs()),
                    vo_mpls_labels: i32c(router.mpls().capacity()),
                    vo_nexthops: i32c(cfg.max_nexthops),
                    vo_bridge_entries: i32c(cfg.bridge_entries),
                    vo_flow_entries: i32c(t.hash_entries()),
                    vo_oflow_entries: i32c(t.oflow_entries()),
                    vo_build_info: if info.build_info.is_empty() {
                        default_build_info()
                    } else {
                        info.build_info
                    },
                    vo_flow_hold_limit: i32c(cfg.max_held_per_flow),
                    vo_flow_used_entries: t.len(),
                    vo_flow_used_oentries: t.oflow_used(),
                    vo_bridge_used_entries: u32::try_from(router.routes().bridge_len())
                        .unwrap_or(u32::MAX),
                    vo_from_vm_mss_adj: i32::from(cfg.from_vm_mss_adj),
                    vo_to_vm_mss_adj: i32::from(cfg.to_vm_mss_adj),
                    ..Default::default()
                };
                self.answers.object(&ops);
            }
            SandeshOp::Reset => {
                self.soft_reset(router, host);
                self.answers.code(0);
            }
            SandeshOp::Add => {
                // Upstream's runtime parameters: -1 leaves one as it is.
                // (0 turns an adjustment off, as upstream reads it.)
                let cfg = router.config();
                let set = |v: i32, cur: bool| if v == -1 { cur } else { v != 0 };
                let from = set(r.vo_from_vm_mss_adj, cfg.from_vm_mss_adj);
                let to = set(r.vo_to_vm_mss_adj, cfg.to_vm_mss_adj);
                router.set_mss_adjust(from, to);
                self.answers.code(0)
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    /// Upstream's soft reset: every object goes, the tables stay.
    pub(super) fn soft_reset<H: HostOps + ?Sized>(&mut self, router: &mut Router, host: &mut H) {
        let flows: Vec<u32> = router.flows().iter_valid().map(|(i, _)| i).collect();
        for i in flows {
            if let Ok(true) = router.flow_del(i, None) {
                host.flow_deleted(i);
            }
        }
        for v in 0..router.routes().max_vrfs() {
            if router.routes().vrf(v).is_some() || router.routes().bridge_len() > 0 {
                router.vrf_reset(v);
            }
        }
        let labels: Vec<u32> = router.mpls().iter().map(|(l, _)| l).collect();
        for l in labels {
            let _ = router.mpls_del(l);
        }
        let vnis: Vec<u32> = router.vxlan().iter().map(|(v, _)| v).collect();
        for v in vnis {
            let _ = router.vxlan_del(v);
        }
        let nhs: Vec<u32> = router.nexthops().map(|nh| nh.id).collect();
        for id in nhs {
            let _ = router.nh_del(id);
        }
        let vifs: Vec<u16> = router.vifs().iter().map(|v| v.cfg.idx).collect();
        for idx in vifs {
            if router.vif_del(idx).is_ok() {
                host.vif_del(idx);
            }
        }
        router.drop_stats_reset();
        self.vrfs.clear();
        self.vif_extra.clear();
        self.flow_stats = FlowOpStats::default();
    }
}
