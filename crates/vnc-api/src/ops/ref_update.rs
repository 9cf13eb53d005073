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
    let op = s("operation")?;
    if op != "ADD" && op != "DELETE" {
        return Err(bad(format!(
            "operation must be ADD or DELETE, got \"{op}\""
        )));
    }
    let old = txn
        .st()
        .get(ty, &uuid)
        .cloned()
        .ok_or_else(|| not_found(format!("{tn} {uuid} not found")))?;
    let served = Ty::from_name(rn).filter(|t| ty.refs().contains(t));
    let field = match served {
        Some(rt) => Ty::ref_field(rt),
        None if is_type_name(rn) => format!("{}_refs", rn.replace('-', "_")),
        None => return Err(bad(format!("{tn} cannot refer to \"{rn}\""))),
    };
    let mut list: Vec<Value> = old
        .get(&field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ref_uuid = match body.get("ref-uuid").filter(|u| !u.is_null()) {
        Some(u) => Some(parse_uuid(u, "ref-uuid")?),
        None => None,
    };
    let ref_fq = match body.get("ref-fq-name").filter(|f| !f.is_null()) {
        Some(f) => Some(parse_fq(f, "ref-fq-name")?),
        None => None,
    };
    // The entry this request names: by uuid for the types stored here (a
    // fq_name is resolved), by uuid or fq_name for the others.
    let (key, entry): (Value, Value) = match (served, ref_uuid, ref_fq) {
        (_, None, None) => return Err(bad("ref-update needs \"ref-uuid\" or \"ref-fq-name\"")),
        (Some(_), Some(u), _) => (
            json!({"uuid": u.to_string()}),
            json!({"uuid": u.to_string()}),
        ),
        (Some(rt), None, Some(fq)) => {
            let u = txn
                .st()
                .by_fq(rt, &fq)
                .ok_or_else(|| not_found(format!("{rn} {} not found", join(&fq))))?;
            (
                json!({"uuid": u.to_string()}),
                json!({"uuid": u.to_string()}),
            )
        }
        (None, Some(u), fq) => {
            let mut e = json!({"uuid": u.to_string()});
            if let Some(fq) = fq {
                e["to"] = json!(fq);
            }
            (json!({"uuid": u.to_string()}), e)
        }
        (None, None, Some(fq)) => (json!({"to": fq}), json!({"to": fq})),
    };
    let same = |r: &Value| match key.get("uuid") {
        Some(u) => r.get("uuid") == Some(u),
        None => r.get("to") == key.get("to"),
    };
    if op == "ADD" {
        let attr = body.get("attr").cloned().unwrap_or(Value::Null);
        match list.iter_mut().find(|r| same(r)) {
            Some(r) => {
                if let Some(m) = r.as_object_mut() {
                    m.insert("attr".into(), attr);
                }
            }
            None => {
                let mut e = entry;
                e["attr"] = attr;
                list.push(e);
            }
        }
    } else {
        list.retain(|r| !same(r));
    }
    update(txn, ty, uuid, json!({ field: list }))?;
    Ok(json!({"uuid": uuid.to_string()}))
}

/// A plausible upstream type name (`routing-instance`): lower-case words
/// joined by `-`.
fn is_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}
