//! Type-specific validation and allocation, run on every create and update.

pub(crate) mod iip;
pub(crate) mod rules;
pub(crate) mod vmi;
pub(crate) mod vn;
pub(crate) mod vrouter;

use crate::error::{bad, conflict, ApiError};
use crate::schema::Ty;
use crate::store::Txn;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::ops::finish::{iip::finish_iip, rules::rules, vmi::finish_vmi, vn::finish_vn};
use crate::ops::SG_ID_MIN;

pub(crate) fn finish(
    txn: &mut Txn<'_>,
    ty: Ty,
    uuid: Uuid,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    match ty {
        Ty::VirtualNetwork => finish_vn(txn.st(), uuid, obj, old),
        Ty::NetworkPolicy => rules(obj, "network_policy_entries", true),
        Ty::SecurityGroup => {
            rules(obj, "security_group_entries", false)?;
            alloc_id(
                obj,
                "security_group_id",
                old,
                &txn.st().sg_ids,
                SG_ID_MIN,
                u64::from(u32::MAX),
            )
        }
        Ty::VirtualMachineInterface => finish_vmi(txn.st(), uuid, obj, old),
        Ty::InstanceIp => finish_iip(txn, obj, old),
        Ty::VirtualRouter => vrouter::finish_vr(obj),
        Ty::GlobalVrouterConfig => vrouter::finish_gvc(obj),
        _ => Ok(()),
    }
}

/// Keep, check or allocate (lowest free in `min..=max`) a server-owned id.
pub(crate) fn alloc_id(
    obj: &mut Map<String, Value>,
    key: &str,
    old: Option<&Value>,
    used: &std::collections::BTreeSet<u64>,
    min: u64,
    max: u64,
) -> Result<(), ApiError> {
    if old.is_some() {
        // Checked unchanged by `update`.
        return Ok(());
    }
    match obj.get(key) {
        None | Some(Value::Null) => {
            let mut id = min;
            for u in used.range(min..) {
                if *u != id {
                    break;
                }
                id += 1;
            }
            if id > max {
                return Err(conflict(format!("no free {key} left")));
            }
            obj.insert(key.into(), json!(id));
        }
        Some(v) => {
            let id = v
                .as_u64()
                .filter(|i| (min..=max).contains(i))
                .ok_or_else(|| bad(format!("{key} must be an integer in {min}..={max}")))?;
            if used.contains(&id) {
                return Err(conflict(format!("{key} {id} is already in use")));
            }
        }
    }
    Ok(())
}
