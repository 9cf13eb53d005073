//! `PUT /<type>/<uuid>`: merge fields into an object.

use crate::error::{bad, not_found, ApiError};
use crate::ops::common::{normalize_refs, now_iso, parse_fq_name, strip_derived};
use crate::ops::finish::finish;
use crate::schema::Ty;
use crate::store::{fq_of, uuid_at, Txn};
use serde_json::{json, Value};
use uuid::Uuid;

/// Fields that may not change on update, beyond uuid/fq_name/parent.
pub(crate) fn immutable(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::VirtualNetwork => &["virtual_network_network_id"],
        Ty::SecurityGroup => &["security_group_id"],
        Ty::InstanceIp => &[
            "instance_ip_address",
            "instance_ip_family",
            "subnet_uuid",
            "virtual_network_refs",
        ],
        _ => &[],
    }
}

pub(crate) fn same_field(a: Option<&Value>, b: Option<&Value>, key: &str) -> bool {
    if key.ends_with("_refs") {
        let ids = |v: Option<&Value>| {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| uuid_at(r, "uuid"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        return ids(a) == ids(b);
    }
    a.filter(|v| !v.is_null()) == b.filter(|v| !v.is_null())
}

/// Update an object: the given fields replace the stored ones (a `null`
/// removes a property, a refs list replaces the whole list). Returns the
/// stored object.
pub(crate) fn update(
    txn: &mut Txn<'_>,
    ty: Ty,
    uuid: Uuid,
    body: Value,
) -> Result<Value, ApiError> {
    let Value::Object(mut patch) = body else {
        return Err(bad(format!("{} body must be a JSON object", ty.name())));
    };
    let old = txn
        .st()
        .get(ty, &uuid)
        .cloned()
        .ok_or_else(|| not_found(format!("{} {uuid} not found", ty.name())))?;
    strip_derived(ty, &mut patch);
    for key in ["uuid", "fq_name", "parent_type", "parent_uuid", "name"] {
        let Some(v) = patch.remove(key) else { continue };
        let same = match key {
            "fq_name" => parse_fq_name(Some(&v)).ok() == Some(fq_of(&old)),
            "uuid" | "parent_uuid" => {
                v.is_null() && old.get(key).is_none()
                    || v.as_str().and_then(|s| Uuid::parse_str(s).ok()) == uuid_at(&old, key)
            }
            _ => v.is_null() || Some(&v) == old.get(key),
        };
        if !same {
            return Err(bad(format!(
                "{key} of {} {uuid} cannot be changed",
                ty.name()
            )));
        }
    }
    if let Some(Value::Object(p)) = patch.remove("id_perms") {
        let mut perms = old
            .get("id_perms")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in p {
            if !matches!(k.as_str(), "uuid" | "created" | "last_modified") {
                perms.insert(k, v);
            }
        }
        patch.insert("id_perms".into(), Value::Object(perms));
    }
    normalize_refs(txn.st(), ty, &mut patch)?;
    let mut obj = old.as_object().cloned().unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            obj.remove(&k);
        } else {
            obj.insert(k, v);
        }
    }
    for key in immutable(ty) {
        if !same_field(obj.get(*key), old.get(*key), key) {
            return Err(bad(format!(
                "{key} of {} {uuid} cannot be changed",
                ty.name()
            )));
        }
    }
    finish(txn, ty, uuid, &mut obj, Some(&old))?;
    let mut out = Value::Object(obj);
    if out != *old {
        if let Some(Value::Object(p)) = out.get_mut("id_perms") {
            p.insert("last_modified".into(), json!(now_iso()));
        }
        txn.put(ty, uuid, out.clone());
    }
    Ok(out)
}
