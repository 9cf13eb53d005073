//! `POST /ref-update`.

use crate::error::{bad, not_found, ApiError};
use crate::ops::common::{join, parse_fq, parse_uuid};
use crate::ops::update::update;
use crate::schema::Ty;
use crate::store::Txn;
use serde_json::{json, Value};

/// `POST /ref-update`: add (or update the attr of) or delete one reference.
/// Returns `{"uuid": <object uuid>}` as upstream.
pub(crate) fn ref_update(txn: &mut Txn<'_>, body: &Value) -> Result<Value, ApiError> {
    let s = |k: &str| -> Result<&str, ApiError> {
        body.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("ref-update needs \"{k}\" (string)")))
    };
    let tn = s("type")?;
    let ty =
        Ty::from_name(tn).ok_or_else(|| not_found(format!("unknown resource type \"{tn}\"")))?;
    let uuid = parse_uuid(body.get("uuid").unwrap_or(&Value::Null), "uuid")?;
    let rn = s("ref-type")?;
    let rt = Ty::from_name(rn)
        .filter(|t| ty.refs().contains(t))
        .ok_or_else(|| bad(format!("{tn} cannot refer to \"{rn}\"")))?;
    let op = s("operation")?;
    let old = txn
        .st()
        .get(ty, &uuid)
        .cloned()
        .ok_or_else(|| not_found(format!("{tn} {uuid} not found")))?;
    let field = Ty::ref_field(rt);
    let mut list: Vec<Value> = old
        .get(&field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let target = match (body.get("ref-uuid"), body.get("ref-fq-name")) {
        (Some(u), _) if !u.is_null() => parse_uuid(u, "ref-uuid")?,
        (_, Some(fq)) if !fq.is_null() => {
            let fq = parse_fq(fq, "ref-fq-name")?;
            txn.st()
                .by_fq(rt, &fq)
                .ok_or_else(|| not_found(format!("{rn} {} not found", join(&fq))))?
        }
        _ => return Err(bad("ref-update needs \"ref-uuid\" or \"ref-fq-name\"")),
    };
    let ts = target.to_string();
    match op {
        "ADD" => {
            let attr = body.get("attr").cloned().unwrap_or(Value::Null);
            match list
                .iter_mut()
                .find(|r| r.get("uuid").and_then(Value::as_str) == Some(ts.as_str()))
            {
                Some(r) => {
                    if let Some(m) = r.as_object_mut() {
                        m.insert("attr".into(), attr);
                    }
                }
                None => list.push(json!({"uuid": ts, "attr": attr})),
            }
        }
        "DELETE" => list.retain(|r| r.get("uuid").and_then(Value::as_str) != Some(ts.as_str())),
        _ => {
            return Err(bad(format!(
                "operation must be ADD or DELETE, got \"{op}\""
            )))
        }
    }
    update(txn, ty, uuid, json!({ field: list }))?;
    Ok(json!({"uuid": uuid.to_string()}))
}
