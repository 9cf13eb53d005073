//! Helpers every operation shares: names, parsing, reference resolution.

use crate::error::{bad, not_found, ApiError};
use crate::schema::Ty;
use crate::store::{fq_of, State};
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub(crate) fn join(fq: &[String]) -> String {
    fq.join(":")
}

pub(crate) fn describe(st: &State, ty: Ty, u: &Uuid) -> String {
    match st.get(ty, u) {
        Some(o) => format!("{} {} ({})", ty.name(), join(&fq_of(o)), u),
        None => format!("{} {u}", ty.name()),
    }
}

pub(crate) fn describe_list(st: &State, items: &[(Ty, Uuid)]) -> String {
    const MAX: usize = 10;
    let mut s: Vec<String> = items
        .iter()
        .take(MAX)
        .map(|(t, u)| describe(st, *t, u))
        .collect();
    if items.len() > MAX {
        s.push(format!("and {} more", items.len() - MAX));
    }
    s.join(", ")
}

/// Fields the server computes on reads; dropped from request bodies so that
/// a client may PUT back what it GOT.
pub(crate) fn strip_derived(ty: Ty, obj: &mut Map<String, Value>) {
    obj.remove("href");
    obj.remove("parent_href");
    obj.retain(|k, _| !k.ends_with("_back_refs"));
    for c in Ty::ALL {
        if c.parents().contains(&ty) {
            obj.remove(&c.children_field());
        }
    }
}

pub(crate) fn now_iso() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

pub(crate) fn parse_fq(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|s| {
                s.as_str()
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .ok_or_else(|| bad(format!("{what} must be a list of non-empty strings")))
            })
            .collect(),
        // Some clients send `to` as a `:`-joined string.
        Value::String(s) if !s.is_empty() => Ok(s.split(':').map(String::from).collect()),
        _ => Err(bad(format!("{what} must be a list of non-empty strings"))),
    }
}

pub(crate) fn parse_uuid(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what} must be a string")))?;
    Uuid::parse_str(s).map_err(|_| bad(format!("{what}: invalid UUID format \"{s}\"")))
}

/// Resolve a reference target given by uuid or fq_name.
pub(crate) fn resolve_ref(
    st: &State,
    target: Ty,
    item: &Value,
    what: &str,
) -> Result<(Uuid, Vec<String>), ApiError> {
    if let Some(u) = item.get("uuid").filter(|u| !u.is_null()) {
        let u = parse_uuid(u, &format!("{what}.uuid"))?;
        let obj = st
            .get(target, &u)
            .ok_or_else(|| not_found(format!("{what}: {} {u} not found", target.name())))?;
        return Ok((u, fq_of(obj)));
    }
    let to = item
        .get("to")
        .filter(|t| !t.is_null())
        .ok_or_else(|| bad(format!("{what} needs \"to\" (fq_name) or \"uuid\"")))?;
    let fq = parse_fq(to, &format!("{what}.to"))?;
    let u = st
        .by_fq(target, &fq)
        .ok_or_else(|| not_found(format!("{what}: {} {} not found", target.name(), join(&fq))))?;
    Ok((u, fq))
}

/// Validate every `*_refs` field of the body and store it as
/// `[{to, uuid, attr}]` (duplicates to one target collapse, last wins).
pub(crate) fn normalize_refs(
    st: &State,
    ty: Ty,
    obj: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.ends_with("_refs"))
        .cloned()
        .collect();
    for key in keys {
        let Some(target) = ty.refs().iter().copied().find(|t| Ty::ref_field(*t) == key) else {
            return Err(bad(format!(
                "{} has no reference field \"{key}\" (supported: {})",
                ty.name(),
                ty.refs()
                    .iter()
                    .map(|t| Ty::ref_field(*t))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let Some(val) = obj.remove(&key) else {
            continue;
        };
        let items = match val {
            Value::Null => continue,
            Value::Array(a) => a,
            _ => return Err(bad(format!("{key} must be a list"))),
        };
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let what = format!("{key}[{i}]");
            if !item.is_object() {
                return Err(bad(format!("{what} must be an object")));
            }
            let (u, fq) = resolve_ref(st, target, item, &what)?;
            let attr = item.get("attr").cloned().unwrap_or(Value::Null);
            let us = u.to_string();
            out.retain(|r| r.get("uuid").and_then(Value::as_str) != Some(us.as_str()));
            out.push(json!({"to": fq, "uuid": us, "attr": attr}));
        }
        obj.insert(key, Value::Array(out));
    }
    Ok(())
}
