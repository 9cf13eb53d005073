//! `POST /<type>s`: create an object.

use crate::error::{bad, conflict, ApiError};
use crate::ipam::{self};
use crate::ops::common::{join, normalize_refs, now_iso, parse_uuid, strip_derived};
use crate::ops::finish::finish;
use crate::ops::place::place;
use crate::schema::Ty;
use crate::store::{fq_of, Txn};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Create an object (the inner object of a POST body). Returns the stored
/// object.
pub(crate) fn create(txn: &mut Txn<'_>, ty: Ty, body: Value) -> Result<Value, ApiError> {
    let Value::Object(mut obj) = body else {
        return Err(bad(format!("{} body must be a JSON object", ty.name())));
    };
    strip_derived(ty, &mut obj);
    let uuid = match obj.get("uuid") {
        None | Some(Value::Null) => Uuid::new_v4(),
        Some(v) => parse_uuid(v, "uuid")?,
    };
    if let Some(t) = txn.st().kind.get(&uuid) {
        return Err(conflict(format!(
            "{uuid} already exists with fq_name {}",
            join(
                &txn.st()
                    .get(*t, &uuid)
                    .map(|o| fq_of(o))
                    .unwrap_or_default()
            )
        )));
    }
    let (fq, parent) = place(txn.st(), ty, &obj)?;
    if let Some(other) = txn.st().by_fq(ty, &fq) {
        return Err(conflict(format!(
            "{} {} already exists with uuid: {other}",
            ty.name(),
            join(&fq)
        )));
    }
    let name = fq.last().cloned().unwrap_or_default();
    obj.insert("uuid".into(), json!(uuid.to_string()));
    obj.insert("fq_name".into(), json!(fq));
    obj.insert("name".into(), json!(name));
    match parent {
        Some((pt, pu)) => {
            obj.insert("parent_type".into(), json!(pt.name()));
            obj.insert("parent_uuid".into(), json!(pu.to_string()));
        }
        None => {
            obj.remove("parent_type");
            obj.remove("parent_uuid");
        }
    }
    if !obj.get("display_name").is_some_and(Value::is_string) {
        obj.insert("display_name".into(), json!(name));
    }
    let now = now_iso();
    let (hi, lo) = uuid.as_u64_pair();
    let mut perms = match obj.remove("id_perms") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    perms.entry("enable").or_insert(json!(true));
    perms.entry("user_visible").or_insert(json!(true));
    perms.entry("description").or_insert(Value::Null);
    perms.insert("uuid".into(), json!({"uuid_mslong": hi, "uuid_lslong": lo}));
    perms.insert("created".into(), json!(now));
    perms.insert("last_modified".into(), json!(now));
    obj.insert("id_perms".into(), Value::Object(perms));
    normalize_refs(txn.st(), ty, &mut obj)?;
    finish(txn, ty, uuid, &mut obj, None)?;
    let out = Value::Object(obj);
    txn.put(ty, uuid, out.clone());
    if ty == Ty::Project {
        create_default_sg(txn, &fq)?;
    }
    Ok(out)
}

/// Upstream's `default` security group of a project: ingress from members
/// of the same group, egress anywhere, for IPv4 and IPv6.
pub(crate) fn create_default_sg(txn: &mut Txn<'_>, project: &[String]) -> Result<(), ApiError> {
    let mut fq = project.to_vec();
    fq.push("default".into());
    if txn.st().by_fq(Ty::SecurityGroup, &fq).is_some() {
        return Ok(());
    }
    let me = join(&fq);
    let rules = vec![
        ipam::sg_rule(true, &me, "IPv4"),
        ipam::sg_rule(true, &me, "IPv6"),
        ipam::sg_rule(false, &me, "IPv4"),
        ipam::sg_rule(false, &me, "IPv6"),
    ];
    create(
        txn,
        Ty::SecurityGroup,
        json!({
            "fq_name": fq,
            "parent_type": "project",
            "id_perms": {"description": "Default security group"},
            "security_group_entries": {"policy_rule": rules},
        }),
    )?;
    Ok(())
}
