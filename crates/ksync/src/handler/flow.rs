//! Flow requests: `vr_flow_req` (FLOW_SET) and `vr_flow_table_data`.

use alloc::vec;

use dp_core::flow::table::{FlowTable, VR_FLOW_ACTION_HOLD, VR_FLOW_FLAG_ACTIVE};
use dp_core::{ConfigError, FlowSet, Router};
use sandesh::{FlowOp, VrFlowReq, VrFlowResponse, VrFlowTableData};

use super::{errno, Errno, Handler};
use crate::convert;
use crate::errno::{EBADF, EEXIST, EFAULT, EINVAL, ENOENT};
use crate::{HostOps, VR_FLOW_RESP_FLAG_DELETED};

impl Handler {
    pub(super) fn flow<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrFlowReq,
    ) {
        match r.fr_op {
            FlowOp::FlowSet => {
                let mut resp = VrFlowResponse {
                    fresp_op: FlowOp::FlowSet,
                    fresp_index: r.fr_index as u32,
                    fresp_gen_id: r.fr_gen_id,
                    ..Default::default()
                };
                let code = match self.flow_set(router, host, r, &mut resp) {
                    Ok(()) => 0,
                    Err(e) => e,
                };
                self.answers.code_object(code, &resp);
            }
            // Upstream answers every other flow op (FLOW_TABLE_GET is a
            // `vr_flow_table_data` request) with -EINVAL and an empty
            // `vr_flow_response`.
            op => self.answers.code_object(
                -EINVAL,
                &VrFlowResponse {
                    fresp_op: op,
                    ..Default::default()
                },
            ),
        }
    }

    pub(super) fn flow_set<H: HostOps + ?Sized>(
        &mut self,
        router: &mut Router,
        host: &mut H,
        r: &VrFlowReq,
        resp: &mut VrFlowResponse,
    ) -> Result<(), Errno> {
        let flags = r.fr_flags as u16;
        // Upstream's checks, in its order (`vr_flow_set_req_is_invalid`):
        // an existing entry must have the request's generation (-EBADF)
        // and key (-EFAULT); a decided flow must exist (-ENOENT).
        let existing = u32::try_from(r.fr_index)
            .ok()
            .and_then(|i| router.flows().get_valid(i));
        match existing {
            Some(e) if e.gen_id != r.fr_gen_id => return Err(-EBADF),
            Some(e) if convert::flow_key(r).ok().as_ref() != Some(e.key()) => return Err(-EFAULT),
            Some(_) => {}
            None if flags & VR_FLOW_FLAG_ACTIVE != 0 && r.fr_index >= 0 => return Err(-ENOENT),
            None => {}
        }
        if convert::flow_req_is_delete(r) {
            let idx = u32::try_from(r.fr_index).map_err(|_| -ENOENT)?;
            let held = router
                .flow_del(idx, Some(r.fr_gen_id))
                .map_err(|e| flow_errno(&e))?;
            resp.fresp_flags |= VR_FLOW_RESP_FLAG_DELETED;
            self.flow_stats.deleted += 1;
            host.flow_changed(idx);
            if held {
                host.flow_deleted(idx);
            }
            return Ok(());
        }
        let key = convert::flow_key(r).map_err(errno)?;
        let rflow = if flags & convert::VR_RFLOW_VALID != 0 {
            match u32::try_from(r.fr_rindex) {
                // Upstream: the reverse entry must be in use.
                Ok(i) if router.flows().get_valid(i).is_some() => Some(i),
                Ok(_) => return Err(-EINVAL),
                // Upstream finds the reverse flow by its key.
                Err(_) => {
                    let rkey = convert::rflow_key(r).map_err(errno)?;
                    Some(router.flows().lookup(&rkey).ok_or(-EINVAL)?)
                }
            }
        } else {
            None
        };
        let dvrf = if flags & convert::VR_FLOW_FLAG_VRFT != 0 {
            if r.fr_flow_dvrf >= router.routes().max_vrfs() {
                return Err(-EINVAL);
            }
            Some(r.fr_flow_dvrf)
        } else {
            None
        };
        let index = u32::try_from(r.fr_index).ok();
        let was_hold = match index {
            None => {
                // A trapped packet created it meanwhile: upstream answers
                // -EEXIST with that entry so the agent adopts it.
                if let Some(i) = router.flows().lookup(&key) {
                    resp.fresp_index = i;
                    resp.fresp_gen_id = router.flows().get(i).map_or(0, |e| e.gen_id);
                    return Err(-EEXIST);
                }
                false
            }
            Some(i) => router.flows().get_valid(i).is_some_and(|e| e.is_hold()),
        };
        let set = FlowSet {
            index,
            gen_id: index.map(|_| r.fr_gen_id),
            key,
            action: r.fr_action as u16,
            flags,
            rflow,
            dvrf,
            ecmp_nh_index: r.fr_ecmp_nh_index as u8 as i8,
            drop_reason: r.fr_drop_reason as u8,
            src_nh_index: r.fr_src_nh_index,
        };
        let out = router.flow_set(&set).map_err(|e| flow_errno(&e))?;
        host.flow_changed(out.index);
        if let Some(r) = rflow {
            host.flow_changed(r);
        }
        resp.fresp_index = out.index;
        resp.fresp_gen_id = out.gen_id;
        if let Some(e) = router.flows().get(out.index) {
            resp.fresp_bytes = e.stats_bytes;
            resp.fresp_packets = e.stats_packets;
            resp.fresp_stats_oflow = e.stats_oflow();
        }
        if index.is_none() {
            self.flow_stats.added += 1;
        } else if was_hold && set.action != VR_FLOW_ACTION_HOLD {
            self.flow_stats.processed += 1;
        } else {
            self.flow_stats.changed += 1;
        }
        if out.release_held {
            host.flow_released(out.index);
        }
        Ok(())
    }

    pub(super) fn flow_table_data<H: HostOps + ?Sized>(
        &mut self,
        router: &Router,
        host: &H,
        op: FlowOp,
    ) {
        let info = host.host_info();
        let t = router.flows();
        let cpus = info.cpus.max(1);
        let size = if info.flow_table_size != 0 {
            info.flow_table_size
        } else {
            u32::try_from(FlowTable::bytes_for(t.hash_entries(), t.oflow_entries()))
                .unwrap_or(u32::MAX)
        };
        let hold = t.iter_valid().filter(|(_, e)| e.is_hold()).count();
        let data = VrFlowTableData {
            ftable_op: op,
            ftable_size: size,
            ftable_dev: info.flow_table_dev,
            ftable_file_path: info.flow_table_path,
            ftable_used_entries: u64::from(t.len()),
            ftable_processed: self.flow_stats.processed,
            ftable_deleted: self.flow_stats.deleted,
            ftable_added: self.flow_stats.added,
            ftable_changed: self.flow_stats.changed,
            ftable_cpus: cpus,
            ftable_oflow_entries: t.oflow_used(),
            // Upstream sends one counter per CPU (at most 64).
            ftable_hold_stat: vec![0; cpus.min(64) as usize],
            ftable_hold_entries: u32::try_from(hold).unwrap_or(u32::MAX),
            ftable_hold_expired: router.holds_expired(),
            ..Default::default()
        };
        self.answers.object(&data);
    }
}

/// A flow request refused by the core, numbered as upstream
/// (`vr_flow_set`): a stale generation is -EBADF, a reverse flow out of
/// range -EINVAL.
fn flow_errno(e: &ConfigError) -> Errno {
    match e {
        ConfigError::Stale(_) => -EBADF,
        ConfigError::OutOfRange(_) => -EINVAL,
        e => e.errno(),
    }
}
