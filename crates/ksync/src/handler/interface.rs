//! Interface (vif) requests: `vr_interface_req`.

use alloc::collections::BTreeMap;

use dp_core::{ConfigError, Router, Vif, VifType};
use sandesh::{SandeshOp, VrInterfaceReq};

use super::{errno, Errno, Handler};
use crate::convert::{self, VifExtra};
use crate::errno::{EINVAL, ENODEV, ENOENT, EOPNOTSUPP};
use crate::HostOps;

impl Handler {
    pub(super) fn interface<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) {
        match r.h_op {
            SandeshOp::Add => {
                let res = self.vif_add(router, host, r);
                self.answers.result(res);
            }
            SandeshOp::Del => {
                let res = self.vif_del(router, host, r);
                self.answers.result(res);
            }
            SandeshOp::Get => {
                // Upstream: an index beyond the table means "by OS index".
                let vif = match u16::try_from(r.vifr_idx) {
                    Ok(i) if i < router.vifs().capacity() => router.vif(i),
                    _ => router
                        .vifs()
                        .iter()
                        .find(|v| v.cfg.os_idx == r.vifr_os_idx as u32),
                };
                let ans = vif
                    .map(|v| vif_answer(v, &self.vif_extra, &*host, SandeshOp::Get))
                    .ok_or(-ENOENT);
                self.answers.get(ans);
            }
            SandeshOp::Reset => {
                // Upstream `vr_interface_clear_stats`: -1 means every vif.
                let idx = match r.vifr_idx {
                    -1 => None,
                    i => match u16::try_from(i) {
                        Ok(i) if i < router.vifs().capacity() => Some(i),
                        _ => return self.answers.code(-EINVAL),
                    },
                };
                router.vif_stats_reset(idx);
                host.vif_stats_cleared(idx);
                let name = idx
                    .and_then(|i| router.vif(i))
                    .map(|v| alloc::string::String::from(v.cfg.name.as_str()))
                    .unwrap_or_default();
                self.answers.object(&VrInterfaceReq {
                    h_op: SandeshOp::Reset,
                    vifr_core: r.vifr_core,
                    vifr_idx: r.vifr_idx,
                    vifr_name: name,
                    ..Default::default()
                });
            }
            SandeshOp::Dump => {
                let marker = i64::from(r.vifr_marker);
                let extra = &self.vif_extra;
                let host: &H = host;
                let items = router
                    .vifs()
                    .iter()
                    .filter(move |v| i64::from(v.cfg.idx) > marker)
                    .map(move |v| vif_answer(v, extra, host, SandeshOp::Dump));
                self.answers.dump(self.page_size, items);
            }
            _ => self.answers.code(-EOPNOTSUPP),
        }
    }

    pub(super) fn vif_add<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) -> Result<(), Errno> {
        let (cfg, extra) = convert::vif_from_req(r).map_err(errno)?;
        // Check what the core would refuse before the host acts.
        // Upstream: an index beyond the table is -EINVAL.
        if cfg.idx >= router.vifs().capacity() {
            return Err(-EINVAL);
        }
        if cfg.vif_type == VifType::Agent
            && router
                .vifs()
                .find_type(VifType::Agent)
                .is_some_and(|a| a.cfg.idx != cfg.idx)
        {
            return Err(errno(ConfigError::Invalid("a second agent vif")));
        }
        // Upstream `vlan_drv_add`: no parent, or a VLAN taken, refuses the
        // sub-interface before anything changes.
        router.vifs().check_sub_interface(&cfg).map_err(errno)?;
        let existed = router.vif(cfg.idx).is_some();
        host.vif_add(&cfg, r).map_err(|e| {
            if e > 0 {
                -e
            } else if e == 0 {
                -EINVAL
            } else {
                e
            }
        })?;
        let idx = cfg.idx;
        if let Err(e) = router.vif_add(cfg) {
            if !existed {
                host.vif_del(idx);
            }
            return Err(match e {
                ConfigError::OutOfRange(_) => -EINVAL,
                e => errno(e),
            });
        }
        self.vif_extra.insert(idx, extra);
        Ok(())
    }

    pub(super) fn vif_del<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrInterfaceReq,
    ) -> Result<(), Errno> {
        // Upstream deletes by name ("vif0/N" or the OS name) when given;
        // whatever names no vif is -ENODEV.
        let idx = if r.vifr_name.is_empty() {
            u16::try_from(r.vifr_idx).map_err(|_| -ENODEV)?
        } else if let Some(n) = r
            .vifr_name
            .strip_prefix("vif0/")
            .and_then(|n| n.parse::<u16>().ok())
        {
            n
        } else {
            router
                .vifs()
                .iter()
                .find(|v| v.cfg.name.as_str() == r.vifr_name)
                .map(|v| v.cfg.idx)
                .ok_or(-ENODEV)?
        };
        router.vif_del(idx).map_err(|_| -ENODEV)?;
        self.vif_extra.remove(&idx);
        host.vif_del(idx);
        Ok(())
    }
}

/// A Get or Dump answer for `v`: the core's view and what ksync recorded
/// beside it, with the host's count of frames its port dropped.
fn vif_answer<H: HostOps + ?Sized>(
    v: &Vif,
    extra: &BTreeMap<u16, VifExtra>,
    host: &H,
    op: SandeshOp,
) -> VrInterfaceReq {
    let mut q = convert::vif_to_req(v, extra.get(&v.cfg.idx), op);
    q.vifr_dev_ierrors = convert::sat_i64(host.dev_ierrors(v.cfg.idx));
    q
}
