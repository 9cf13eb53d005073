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

/// Characters upstream refuses in names: those XML cannot carry (NUL and
/// the other C0/C1 controls but tab, newline and carriage return;
/// non-characters), since every name travels to the agents in IF-MAP XML.
pub(crate) fn illegal_xml_char(c: char) -> bool {
    let n = u32::from(c);
    matches!(n, 0x00..=0x08 | 0x0B..=0x0C | 0x0E..=0x1F | 0x7F..=0x84 | 0x86..=0x9F)
        || (0xFDD0..=0xFDDF).contains(&n)
        || (n & 0xFFFE) == 0xFFFE
}

/// One element of an fq_name (or a `name`): non-empty, XML-safe.
pub(crate) fn check_name(s: &str, what: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(bad(format!("{what}: names must not be empty")));
    }
    if let Some(c) = s.chars().find(|c| illegal_xml_char(*c)) {
        return Err(bad(format!(
            "{what}: name {s:?} has an illegal character (U+{:04X}): control and \
             non-characters cannot travel in IF-MAP XML",
            u32::from(c)
        )));
    }
    Ok(())
}

/// The `fq_name` of a new object: upstream requires a list of strings
/// (never a `:`-joined string, never absent), and refuses `:` in the last
/// element (the object's own name).
pub(crate) fn parse_fq_name(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let a =
        match v {
            None | Some(Value::Null) => return Err(bad("Bad Request, no fq_name in POST body")),
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::String(_)) => return Err(bad(
                "fq_name must be a list of strings, e.g. [\"default-domain\", \"demo\", \"blue\"] \
                 (a \":\"-joined string is refused, as upstream)",
            )),
            Some(_) => return Err(bad("fq_name must be a non-empty list of strings")),
        };
    let fq: Vec<String> = a
        .iter()
        .map(|s| {
            s.as_str()
                .map(String::from)
                .ok_or_else(|| bad("fq_name must be a list of strings"))
        })
        .collect::<Result<_, _>>()?;
    for s in &fq {
        check_name(s, "fq_name")?;
    }
    if let Some(last) = fq.last().filter(|n| n.contains(':')) {
        return Err(bad(format!(
            "fq_name: name {last:?} contains \":\" (the fq_name separator)"
        )));
    }
    Ok(fq)
}

/// An fq_name naming an existing object (a reference's `to`, `ref-fq-name`):
/// a list of names, or a `:`-joined string as some clients send.
pub(crate) fn parse_fq(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    let fq: Vec<String> = match v {
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad(format!("{what} must be a list of non-empty strings")))
            })
            .collect::<Result<_, _>>()?,
        Value::String(s) if !s.is_empty() => s.split(':').map(String::from).collect(),
        _ => return Err(bad(format!("{what} must be a list of non-empty strings"))),
    };
    for s in &fq {
        check_name(s, what)?;
    }
    Ok(fq)
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
/// References of the types this server stores are resolved and indexed;
/// any other `<type>_refs` (upstream clients send `routing_instance_refs`,
/// `tag_refs`, `interface_route_table_refs`, ...) is kept as given, after
/// a shape check, so that a client reads back what it wrote.
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
        let target = ty.refs().iter().copied().find(|t| Ty::ref_field(*t) == key);
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
            let attr = item.get("attr").cloned().unwrap_or(Value::Null);
            let Some(target) = target else {
                out.push(foreign_ref(item, attr, &what)?);
                continue;
            };
            let (u, fq) = resolve_ref(st, target, item, &what)?;
            let us = u.to_string();
            out.retain(|r| r.get("uuid").and_then(Value::as_str) != Some(us.as_str()));
            out.push(json!({"to": fq, "uuid": us, "attr": attr}));
        }
        obj.insert(key, Value::Array(out));
    }
    Ok(())
}

/// A reference to a type this server does not store: `to` (fq_name) and/or
/// `uuid` as given, checked for shape only.
fn foreign_ref(item: &Value, attr: Value, what: &str) -> Result<Value, ApiError> {
    let to = match item.get("to").filter(|t| !t.is_null()) {
        Some(t) => Some(parse_fq(t, &format!("{what}.to"))?),
        None => None,
    };
    let uuid = match item.get("uuid").filter(|u| !u.is_null()) {
        Some(u) => Some(parse_uuid(u, &format!("{what}.uuid"))?),
        None => None,
    };
    if to.is_none() && uuid.is_none() {
        return Err(bad(format!("{what} needs \"to\" (fq_name) or \"uuid\"")));
    }
    let mut m = Map::new();
    if let Some(to) = to {
        m.insert("to".into(), json!(to));
    }
    if let Some(u) = uuid {
        m.insert("uuid".into(), json!(u.to_string()));
    }
    m.insert("attr".into(), attr);
    Ok(Value::Object(m))
}
