//! The API operations (create, update, delete, ref-update) on a [`Txn`],
//! with their validation and allocation, and the read-side rendering
//! (hrefs, back-refs, children, lists).

use crate::error::{bad, conflict, not_found, ApiError};
use crate::ipam::{self, Sub};
use crate::schema::Ty;
use crate::store::{fq_of, uuid_at, State, Store, Txn};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use uuid::Uuid;

/// First security-group id upstream allocates (`SGID_MIN_ALLOC`).
pub const SG_ID_MIN: u64 = 8_000_000;
/// Largest VN id (upstream allocates VN ids below 2^24).
pub const VN_ID_MAX: u64 = (1 << 24) - 1;

fn join(fq: &[String]) -> String {
    fq.join(":")
}

fn describe(st: &State, ty: Ty, u: &Uuid) -> String {
    match st.get(ty, u) {
        Some(o) => format!("{} {} ({})", ty.name(), join(&fq_of(o)), u),
        None => format!("{} {u}", ty.name()),
    }
}

fn describe_list(st: &State, items: &[(Ty, Uuid)]) -> String {
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
fn strip_derived(ty: Ty, obj: &mut Map<String, Value>) {
    obj.remove("href");
    obj.remove("parent_href");
    obj.retain(|k, _| !k.ends_with("_back_refs"));
    for c in Ty::ALL {
        if c.parents().contains(&ty) {
            obj.remove(&c.children_field());
        }
    }
}

fn now_iso() -> String {
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

fn parse_fq(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
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

fn parse_uuid(v: &Value, what: &str) -> Result<Uuid, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what} must be a string")))?;
    Uuid::parse_str(s).map_err(|_| bad(format!("{what}: invalid UUID format \"{s}\"")))
}

/// Resolve a reference target given by uuid or fq_name.
fn resolve_ref(
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
fn normalize_refs(st: &State, ty: Ty, obj: &mut Map<String, Value>) -> Result<(), ApiError> {
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

/// Where a new object goes: its fq_name and parent.
type Placement = (Vec<String>, Option<(Ty, Uuid)>);

fn place(st: &State, ty: Ty, uuid: Uuid, obj: &Map<String, Value>) -> Result<Placement, ApiError> {
    let tn = ty.name();
    let fq_given = match obj.get("fq_name") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_fq(v, "fq_name")?),
    };
    let name_given = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(bad("name must be a non-empty string")),
    };
    let puuid = match obj.get("parent_uuid") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_uuid(v, "parent_uuid")?),
    };
    let ptype = match obj.get("parent_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if ty.parents().is_empty() && s == "config-root" => None,
        Some(Value::String(s)) => match Ty::from_name(s).filter(|t| ty.parents().contains(t)) {
            Some(t) => Some(t),
            None => return Err(bad(format!("{tn} cannot have a parent of type \"{s}\""))),
        },
        Some(_) => return Err(bad("parent_type must be a string")),
    };
    let name = || name_given.clone().unwrap_or_else(|| uuid.to_string());
    let (fq, parent) = if ty.parents().is_empty() {
        if puuid.is_some() {
            return Err(bad(format!("{tn} has no parent (parent_uuid given)")));
        }
        let fq = fq_given.unwrap_or_else(|| vec![name()]);
        if fq.len() != 1 {
            return Err(bad(format!(
                "{tn} fq_name must have exactly one element, got {}",
                join(&fq)
            )));
        }
        (fq, None)
    } else if let Some(fq) = fq_given {
        let Some((_, pfq)) = fq.split_last().filter(|(_, p)| !p.is_empty()) else {
            return Err(bad(format!(
                "{tn} fq_name {} has no parent part",
                join(&fq)
            )));
        };
        let cands: Vec<Ty> = ptype.map_or_else(|| ty.parents().to_vec(), |t| vec![t]);
        let Some((pt, pu)) = cands
            .iter()
            .find_map(|t| st.by_fq(*t, pfq).map(|u| (*t, u)))
        else {
            let pn = cands
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(not_found(format!(
                "parent {pn} {} of {tn} {} not found",
                join(pfq),
                join(&fq)
            )));
        };
        if puuid.is_some_and(|p| p != pu) {
            return Err(bad(format!(
                "parent_uuid does not match fq_name {} (parent is {pu})",
                join(&fq)
            )));
        }
        (fq, Some((pt, pu)))
    } else if let Some(pu) = puuid {
        let pt = st
            .kind
            .get(&pu)
            .copied()
            .filter(|t| ty.parents().contains(t) && ptype.is_none_or(|p| p == *t))
            .ok_or_else(|| not_found(format!("parent {pu} of new {tn} not found")))?;
        let pfq = st.get(pt, &pu).map(|o| fq_of(o)).unwrap_or_default();
        let mut fq = pfq;
        fq.push(name());
        (fq, Some((pt, pu)))
    } else {
        let pt = ptype
            .or_else(|| ty.parents().first().copied())
            .ok_or_else(|| bad(format!("{tn} needs fq_name or parent_uuid")))?;
        let pfq = pt
            .default_fq()
            .ok_or_else(|| bad(format!("{tn} needs fq_name or parent_uuid")))?;
        let pu = st.by_fq(pt, &pfq).ok_or_else(|| {
            not_found(format!(
                "default parent {} {} not found",
                pt.name(),
                join(&pfq)
            ))
        })?;
        let mut fq = pfq;
        fq.push(name());
        (fq, Some((pt, pu)))
    };
    if let Some(n) = &name_given {
        if fq.last() != Some(n) {
            return Err(bad(format!(
                "name \"{n}\" does not match fq_name {}",
                join(&fq)
            )));
        }
    }
    Ok((fq, parent))
}

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
    let (fq, parent) = place(txn.st(), ty, uuid, &obj)?;
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
fn create_default_sg(txn: &mut Txn<'_>, project: &[String]) -> Result<(), ApiError> {
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

/// Fields that may not change on update, beyond uuid/fq_name/parent.
fn immutable(ty: Ty) -> &'static [&'static str] {
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

fn same_field(a: Option<&Value>, b: Option<&Value>, key: &str) -> bool {
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
            "fq_name" => parse_fq(&v, "fq_name").ok() == Some(fq_of(&old)),
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

/// Delete an object. Refused (409) while other objects refer to it or it
/// has children; a project's `default` security group goes with the
/// project when nothing uses it, as upstream.
pub(crate) fn delete(txn: &mut Txn<'_>, ty: Ty, uuid: Uuid) -> Result<(), ApiError> {
    let st = txn.st();
    let obj = st
        .get(ty, &uuid)
        .ok_or_else(|| not_found(format!("{} {uuid} not found", ty.name())))?;
    let referrers: Vec<(Ty, Uuid)> = st
        .back
        .get(&uuid)
        .map(|s| s.iter().copied().filter(|(_, u)| *u != uuid).collect())
        .unwrap_or_default();
    if !referrers.is_empty() {
        return Err(conflict(format!(
            "Delete when resource still referred: {} {} is referred to by {}",
            ty.name(),
            join(&fq_of(obj)),
            describe_list(st, &referrers)
        )));
    }
    let mut auto = Vec::new();
    let mut children = Vec::new();
    for &(ct, cu) in st.children.get(&uuid).into_iter().flatten() {
        let is_default_sg = ty == Ty::Project
            && ct == Ty::SecurityGroup
            && st
                .get(ct, &cu)
                .is_some_and(|c| fq_of(c).last().map(String::as_str) == Some("default"))
            && st.back.get(&cu).is_none_or(|s| s.is_empty());
        if is_default_sg {
            auto.push((ct, cu));
        } else {
            children.push((ct, cu));
        }
    }
    if !children.is_empty() {
        return Err(conflict(format!(
            "Delete when children still present: {} {} has {}",
            ty.name(),
            join(&fq_of(obj)),
            describe_list(st, &children)
        )));
    }
    for (ct, cu) in auto {
        txn.remove(ct, cu);
    }
    txn.remove(ty, uuid);
    Ok(())
}

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

// ---- type-specific validation and allocation ------------------------------

fn finish(
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
        _ => Ok(()),
    }
}

/// Keep, check or allocate (lowest free in `min..=max`) a server-owned id.
fn alloc_id(
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

fn finish_vn(
    st: &State,
    uuid: Uuid,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    ipam::complete_vn_subnets(obj, old)?;
    if old.is_none() && !obj.contains_key("virtual_network_properties") {
        // Upstream shows the properties with null members (inherit the
        // global defaults: l2_l3, VNI = network id).
        obj.insert(
            "virtual_network_properties".into(),
            json!({"forwarding_mode": null, "vxlan_network_identifier": null}),
        );
    }
    if let Some(p) = obj
        .get("virtual_network_properties")
        .filter(|p| !p.is_null())
    {
        let p = p
            .as_object()
            .ok_or_else(|| bad("virtual_network_properties must be an object"))?;
        match p.get("forwarding_mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(m)) if matches!(m.as_str(), "l2_l3" | "l2" | "l3") => {}
            Some(m) => {
                return Err(bad(format!(
                    "virtual_network_properties.forwarding_mode must be l2_l3, l2 or l3, got {m}"
                )))
            }
        }
        match p.get("vxlan_network_identifier") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some_and(|n| (1..=VN_ID_MAX).contains(&n)) => {}
            Some(v) => {
                return Err(bad(format!(
                    "virtual_network_properties.vxlan_network_identifier must be an integer in 1..=16777215, got {v}"
                )))
            }
        }
    }
    alloc_id(
        obj,
        "virtual_network_network_id",
        old,
        &st.vn_ids,
        1,
        VN_ID_MAX,
    )?;
    if old.is_some() {
        // Addresses in use must stay inside the VN's subnets.
        let subs = ipam::vn_subnets(&Value::Object(obj.clone()));
        let name = join(&fq_of(&Value::Object(obj.clone())));
        let mut orphans = Vec::new();
        for &(t, iu) in st.back.get(&uuid).into_iter().flatten() {
            if t != Ty::InstanceIp {
                continue;
            }
            let ip = st
                .get(t, &iu)
                .and_then(|o| o.get("instance_ip_address"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok());
            if let Some(ip) = ip {
                if !subs.iter().any(|s| s.net.contains(&ip)) {
                    orphans.push((t, iu));
                }
            }
        }
        if !orphans.is_empty() {
            return Err(conflict(format!(
                "cannot remove subnets of virtual-network {name} still in use by {}",
                describe_list(st, &orphans)
            )));
        }
    }
    Ok(())
}

fn rules(obj: &mut Map<String, Value>, field: &str, need_action: bool) -> Result<(), ApiError> {
    let Some(entries) = obj.get_mut(field).filter(|e| !e.is_null()) else {
        return Ok(());
    };
    let entries = entries.as_object_mut().ok_or_else(|| {
        bad(format!(
            "{field} must be an object {{\"policy_rule\": [...]}}"
        ))
    })?;
    let Some(list) = entries.get_mut("policy_rule").filter(|l| !l.is_null()) else {
        return Ok(());
    };
    let list = list
        .as_array_mut()
        .ok_or_else(|| bad(format!("{field}.policy_rule must be a list")))?;
    for (i, r) in list.iter_mut().enumerate() {
        let at = format!("{field}.policy_rule[{i}]");
        let r = r
            .as_object_mut()
            .ok_or_else(|| bad(format!("{at} must be an object")))?;
        match r.get("direction") {
            None | Some(Value::Null) => {
                r.insert("direction".into(), json!(">"));
            }
            Some(Value::String(d)) if d == ">" || d == "<>" => {}
            Some(d) => {
                return Err(bad(format!(
                    "{at}.direction must be \">\" or \"<>\", got {d}"
                )))
            }
        }
        match r.get("protocol") {
            None | Some(Value::Null) => {
                r.insert("protocol".into(), json!("any"));
            }
            Some(Value::String(p))
                if matches!(
                    p.to_ascii_lowercase().as_str(),
                    "any" | "tcp" | "udp" | "icmp" | "icmp6" | "sctp"
                ) || p.parse::<u8>().is_ok() => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 255) => {
                let s = n.to_string();
                r.insert("protocol".into(), json!(s));
            }
            Some(p) => {
                return Err(bad(format!(
                "{at}.protocol must be any, tcp, udp, icmp, icmp6, sctp or a number 0-255, got {p}"
            )))
            }
        }
        match r.get("ethertype") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) if e == "IPv4" || e == "IPv6" => {}
            Some(e) => return Err(bad(format!("{at}.ethertype must be IPv4 or IPv6, got {e}"))),
        }
        match r.get("action_list").filter(|a| !a.is_null()) {
            None if need_action => {
                return Err(bad(format!(
                    "{at}.action_list.simple_action (pass or deny) is required"
                )))
            }
            None => {}
            Some(a) => match a.get("simple_action") {
                Some(Value::String(s)) if s == "pass" || s == "deny" => {}
                None | Some(Value::Null) if !need_action => {}
                Some(s) => {
                    return Err(bad(format!(
                        "{at}.action_list.simple_action must be pass or deny, got {s}"
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "{at}.action_list.simple_action (pass or deny) is required"
                    )))
                }
            },
        }
        for key in ["src_ports", "dst_ports"] {
            let Some(ports) = r.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            let ports = ports
                .as_array()
                .ok_or_else(|| bad(format!("{at}.{key} must be a list")))?;
            for (pi, p) in ports.iter().enumerate() {
                for k in ["start_port", "end_port"] {
                    let ok = p
                        .get(k)
                        .and_then(Value::as_i64)
                        .is_some_and(|n| (-1..=65535).contains(&n));
                    if !ok {
                        return Err(bad(format!(
                            "{at}.{key}[{pi}].{k} must be an integer in -1..=65535"
                        )));
                    }
                }
            }
        }
        for key in ["src_addresses", "dst_addresses"] {
            let Some(a) = r.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            if !a.as_array().is_some_and(|l| l.iter().all(Value::is_object)) {
                return Err(bad(format!("{at}.{key} must be a list of objects")));
            }
        }
        if !r.get("rule_uuid").is_some_and(Value::is_string) {
            r.insert("rule_uuid".into(), json!(Uuid::new_v4().to_string()));
        }
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`, lower case, from `-` or `:` separated input.
fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for p in parts {
        if p.len() != 2 {
            return None;
        }
        let b = u8::from_str_radix(p, 16).ok()?;
        out.push(format!("{b:02x}"));
    }
    Some(out.join(":"))
}

fn finish_vmi(
    st: &State,
    uuid: Uuid,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let has_vn = obj
        .get("virtual_network_refs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_vn {
        return Err(bad(
            "virtual-machine-interface needs virtual_network_refs (the network it is a port of)",
        ));
    }
    let key = "virtual_machine_interface_mac_addresses";
    let given: Vec<Value> = match obj.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => match m.get("mac_address") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad(format!("{key}.mac_address must be a list"))),
        },
        Some(_) => {
            return Err(bad(format!(
                "{key} must be an object {{\"mac_address\": [...]}}"
            )))
        }
    };
    let mut macs = Vec::new();
    for m in &given {
        let s = m.as_str().unwrap_or_default();
        let n =
            normalize_mac(s).ok_or_else(|| bad(format!("{key}: \"{m}\" is not a MAC address")))?;
        if let Some(other) = st.macs.get(&n).filter(|o| **o != uuid) {
            return Err(conflict(format!(
                "duplicate: MAC address {n} is already used by virtual-machine-interface {other}"
            )));
        }
        macs.push(n);
    }
    if macs.is_empty() {
        if let Some(o) = old {
            macs = crate::store::vmi_macs(o);
        }
    }
    if macs.is_empty() {
        // Upstream derives the MAC from the uuid: 02 + its first five bytes.
        let mac_of = |b: &[u8]| {
            let mut m = String::from("02");
            for x in b.iter().take(5) {
                m.push_str(&format!(":{x:02x}"));
            }
            m
        };
        let mut mac = mac_of(uuid.as_bytes());
        while st.macs.contains_key(&mac) {
            mac = mac_of(Uuid::new_v4().as_bytes());
        }
        macs.push(mac);
    }
    obj.insert(key.into(), json!({ "mac_address": macs }));
    Ok(())
}

fn finish_iip(
    txn: &mut Txn<'_>,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let vns: Vec<Uuid> = obj
        .get("virtual_network_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| uuid_at(r, "uuid"))
        .collect();
    let [vn] = vns[..] else {
        return Err(bad(
            "instance-ip needs exactly one virtual_network_refs entry (the network to take the address from)",
        ));
    };
    if old.is_some() {
        return Ok(());
    }
    let st = txn.st();
    let vn_obj = st
        .get(Ty::VirtualNetwork, &vn)
        .ok_or_else(|| not_found(format!("virtual-network {vn} not found")))?;
    let vn_name = join(&fq_of(vn_obj));
    let subs = ipam::vn_subnets(vn_obj);
    if subs.is_empty() {
        return Err(conflict(format!(
            "virtual-network {vn_name} has no subnets"
        )));
    }
    let family = match obj.get("instance_ip_family") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if f == "v4" => Some(false),
        Some(Value::String(f)) if f == "v6" => Some(true),
        Some(f) => return Err(bad(format!("instance_ip_family must be v4 or v6, got {f}"))),
    };
    let want_subnet = match obj.get("subnet_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !subs.iter().any(|x| x.uuid == *s) {
                return Err(bad(format!(
                    "subnet_uuid {s} is not a subnet of virtual-network {vn_name}"
                )));
            }
            Some(s.clone())
        }
        Some(_) => return Err(bad("subnet_uuid must be a string")),
    };
    let candidates: Vec<&Sub> = subs
        .iter()
        .filter(|s| want_subnet.as_ref().is_none_or(|w| *w == s.uuid))
        .filter(|s| family.is_none_or(|v6| s.net.addr().is_ipv6() == v6))
        .collect();
    let (ip, sub) = match obj.get("instance_ip_address") {
        None | Some(Value::Null) => {
            // Upstream's default family is v4.
            let mut ordered = candidates.clone();
            ordered.sort_by_key(|s| s.net.addr().is_ipv6());
            let found = ordered
                .iter()
                .find_map(|s| ipam::allocate(st, &st.hints, vn, s).map(|ip| (ip, (*s).clone())));
            found.ok_or_else(|| {
                conflict(format!(
                    "virtual-network {vn_name} has exhausted its subnet(s) {}",
                    candidates
                        .iter()
                        .map(|s| s.net.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
        }
        Some(v) => {
            let s = v
                .as_str()
                .ok_or_else(|| bad("instance_ip_address must be a string"))?;
            let ip: IpAddr = s
                .parse()
                .map_err(|_| bad(format!("instance_ip_address \"{s}\" is not an IP address")))?;
            if family.is_some_and(|v6| ip.is_ipv6() != v6) {
                return Err(bad(format!(
                    "instance_ip_address {ip} does not match instance_ip_family"
                )));
            }
            let sub = subs.iter().find(|x| x.net.contains(&ip)).ok_or_else(|| {
                bad(format!(
                    "instance_ip_address {ip} is not inside any subnet of virtual-network {vn_name}"
                ))
            })?;
            if want_subnet.as_ref().is_some_and(|w| *w != sub.uuid) {
                return Err(bad(format!(
                    "instance_ip_address {ip} is not inside subnet {}",
                    want_subnet.unwrap_or_default()
                )));
            }
            ipam::check_requested(st, vn, &vn_name, sub, ip)?;
            (ip, sub.clone())
        }
    };
    obj.insert("instance_ip_address".into(), json!(ip.to_string()));
    obj.insert(
        "instance_ip_family".into(),
        json!(if ip.is_ipv6() { "v6" } else { "v4" }),
    );
    obj.insert("subnet_uuid".into(), json!(sub.uuid));
    txn.set_hint(sub.uuid, ipam::to_u128(ip));
    Ok(())
}

// ---- seeding ---------------------------------------------------------------

/// Upstream's default objects (run on every open; creates what is missing).
pub(crate) fn seed(txn: &mut Txn<'_>) -> Result<(), ApiError> {
    let dom = vec!["default-domain".to_string()];
    if txn.st().by_fq(Ty::Domain, &dom).is_none() {
        create(txn, Ty::Domain, json!({"fq_name": dom}))?;
    }
    let proj = vec!["default-domain".to_string(), "default-project".to_string()];
    if txn.st().by_fq(Ty::Project, &proj).is_none() {
        create(
            txn,
            Ty::Project,
            json!({"fq_name": proj, "parent_type": "domain"}),
        )?;
    }
    let mut ipam_fq = proj.clone();
    ipam_fq.push("default-network-ipam".into());
    if txn.st().by_fq(Ty::NetworkIpam, &ipam_fq).is_none() {
        create(
            txn,
            Ty::NetworkIpam,
            json!({"fq_name": ipam_fq, "parent_type": "project"}),
        )?;
    }
    Ok(())
}

// ---- reads ------------------------------------------------------------------

/// What a read returns besides the stored fields.
#[derive(Clone, Debug, Default)]
pub struct ReadOpts {
    /// `http://host:port` prefix of `href`s ("" gives relative hrefs).
    pub base: String,
    /// Only these fields (plus the identity fields), if set.
    pub fields: Option<Vec<String>>,
    pub back_refs: bool,
    pub children: bool,
}

fn href(base: &str, ty: Ty, u: &str) -> String {
    format!("{base}/{}/{u}", ty.name())
}

/// The API form of a stored object: hrefs on itself, its parent and refs,
/// plus back-refs and children lists as upstream.
pub(crate) fn render(st: &State, ty: Ty, uuid: &Uuid, obj: &Value, o: &ReadOpts) -> Value {
    const IDENT: [&str; 7] = [
        "uuid",
        "fq_name",
        "name",
        "parent_type",
        "parent_uuid",
        "href",
        "parent_href",
    ];
    let want = |k: &str| {
        o.fields
            .as_ref()
            .is_none_or(|f| IDENT.contains(&k) || f.iter().any(|x| x == k))
    };
    let mut m = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        if !want(k) {
            continue;
        }
        if k.ends_with("_refs") {
            let target = ty.refs().iter().copied().find(|t| Ty::ref_field(*t) == *k);
            let list: Vec<Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut r = r.clone();
                    if let (Some(t), Some(u)) = (target, uuid_at(&r, "uuid")) {
                        if let Some(rm) = r.as_object_mut() {
                            rm.insert("href".into(), json!(href(&o.base, t, &u.to_string())));
                        }
                    }
                    r
                })
                .collect();
            m.insert(k.clone(), Value::Array(list));
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    m.insert("href".into(), json!(href(&o.base, ty, &uuid.to_string())));
    if let (Some(pt), Some(pu)) = (
        obj.get("parent_type")
            .and_then(Value::as_str)
            .and_then(Ty::from_name),
        uuid_at(obj, "parent_uuid"),
    ) {
        m.insert(
            "parent_href".into(),
            json!(href(&o.base, pt, &pu.to_string())),
        );
    }
    if o.back_refs {
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for &(rt, ru) in st.back.get(uuid).into_iter().flatten() {
            let field = rt.back_ref_field();
            if !want(&field) {
                continue;
            }
            let Some(r) = st.get(rt, &ru) else { continue };
            let us = uuid.to_string();
            let attr = r
                .get(Ty::ref_field(ty))
                .and_then(Value::as_array)
                .and_then(|l| {
                    l.iter()
                        .find(|x| x.get("uuid").and_then(Value::as_str) == Some(us.as_str()))
                })
                .and_then(|x| x.get("attr"))
                .cloned()
                .unwrap_or(Value::Null);
            groups.entry(field).or_default().push(json!({
                "to": fq_of(r),
                "href": href(&o.base, rt, &ru.to_string()),
                "uuid": ru.to_string(),
                "attr": attr,
            }));
        }
        for (k, v) in groups {
            m.insert(k, Value::Array(v));
        }
    }
    if o.children {
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for &(ct, cu) in st.children.get(uuid).into_iter().flatten() {
            let field = ct.children_field();
            if !want(&field) {
                continue;
            }
            let Some(c) = st.get(ct, &cu) else { continue };
            groups.entry(field).or_default().push(json!({
                "to": fq_of(c),
                "href": href(&o.base, ct, &cu.to_string()),
                "uuid": cu.to_string(),
            }));
        }
        for (k, v) in groups {
            m.insert(k, Value::Array(v));
        }
    }
    Value::Object(m)
}

/// Filters of a list request (`GET /<type>s?...`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub parent_id: Option<Vec<Uuid>>,
    pub back_ref_id: Option<Vec<Uuid>>,
    pub obj_uuids: Option<Vec<Uuid>>,
    /// `(field, value)` pairs of upstream's `filters=k==v,...`.
    pub filters: Vec<(String, Value)>,
    pub detail: bool,
    pub count: bool,
    pub read: ReadOpts,
}

/// Parse upstream's list query parameters.
pub(crate) fn parse_list_query(
    st: &State,
    q: &HashMap<String, String>,
    base: String,
) -> Result<ListQuery, ApiError> {
    let truthy = |k: &str| {
        q.get(k)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    };
    let uuids = |k: &str| -> Result<Option<Vec<Uuid>>, ApiError> {
        q.get(k)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        Uuid::parse_str(s.trim())
                            .map_err(|_| bad(format!("{k}: invalid UUID \"{s}\"")))
                    })
                    .collect()
            })
            .transpose()
    };
    let mut parent_id = uuids("parent_id")?;
    if let Some(pfq) = q.get("parent_fq_name_str") {
        let fq: Vec<String> = pfq.split(':').map(String::from).collect();
        let types: Vec<Ty> = match q.get("parent_type") {
            Some(t) => {
                vec![Ty::from_name(t).ok_or_else(|| bad(format!("unknown parent_type \"{t}\"")))?]
            }
            None => Ty::ALL.to_vec(),
        };
        let u = types
            .iter()
            .find_map(|t| st.by_fq(*t, &fq))
            .ok_or_else(|| not_found(format!("parent {pfq} not found")))?;
        parent_id.get_or_insert_with(Vec::new).push(u);
    }
    let mut filters = Vec::new();
    if let Some(f) = q.get("filters") {
        for pair in f.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = pair
                .split_once("==")
                .ok_or_else(|| bad(format!("filters: \"{pair}\" is not key==value")))?;
            let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
            filters.push((k.to_string(), v));
        }
    }
    let fields = q.get("fields").map(|f| {
        f.split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    Ok(ListQuery {
        parent_id,
        back_ref_id: uuids("back_ref_id")?,
        obj_uuids: uuids("obj_uuids")?,
        filters,
        detail: truthy("detail"),
        count: truthy("count"),
        read: ReadOpts {
            base,
            fields,
            back_refs: !truthy("exclude_back_refs"),
            children: !truthy("exclude_children"),
        },
    })
}

/// Answer a list request, shaped as upstream:
/// `{"<type>s": [{"href","fq_name","uuid"}]}`, with `detail` a list of
/// envelopes, with `count` `{"<type>s": {"count": n}}`.
pub(crate) fn list(st: &State, ty: Ty, q: &ListQuery) -> Value {
    let mut ids: Vec<Uuid> = match (&q.obj_uuids, &q.parent_id, &q.back_ref_id) {
        (Some(ids), _, _) => ids.clone(),
        (None, Some(ps), _) => ps
            .iter()
            .flat_map(|p| st.children.get(p).into_iter().flatten())
            .filter(|(t, _)| *t == ty)
            .map(|(_, u)| *u)
            .collect(),
        (None, None, Some(bs)) => bs
            .iter()
            .flat_map(|b| st.back.get(b).into_iter().flatten())
            .filter(|(t, _)| *t == ty)
            .map(|(_, u)| *u)
            .collect(),
        (None, None, None) => st.iter(ty).map(|(u, _)| *u).collect(),
    };
    ids.sort_unstable();
    ids.dedup();
    let matches = |u: &Uuid, o: &Value| {
        q.parent_id
            .as_ref()
            .is_none_or(|ps| uuid_at(o, "parent_uuid").is_some_and(|p| ps.contains(&p)))
            && q.back_ref_id.as_ref().is_none_or(|bs| {
                bs.iter()
                    .any(|b| st.back.get(b).is_some_and(|s| s.contains(&(ty, *u))))
            })
            && q.filters.iter().all(|(k, v)| {
                o.get(k)
                    .is_some_and(|x| x == v || x.as_str().is_some_and(|s| Some(s) == v.as_str()))
            })
    };
    let coll = format!("{}s", ty.name());
    let found = ids
        .iter()
        .filter_map(|u| st.get(ty, u).map(|o| (u, o)))
        .filter(|(u, o)| matches(u, o));
    if q.count {
        return json!({ coll: {"count": found.count()} });
    }
    let items: Vec<Value> = found
        .map(|(u, o)| {
            if q.detail {
                json!({ ty.name(): render(st, ty, u, o, &q.read) })
            } else {
                json!({
                    "href": href(&q.read.base, ty, &u.to_string()),
                    "fq_name": fq_of(o),
                    "uuid": u.to_string(),
                })
            }
        })
        .collect();
    json!({ coll: items })
}

// ---- the same operations on a Store, for in-process callers ----------------

fn ty_of(name: &str) -> Result<Ty, ApiError> {
    Ty::from_name(name).ok_or_else(|| not_found(format!("unknown resource type \"{name}\"")))
}

impl Store {
    /// Create an object of type `ty` (upstream's hyphenated name) from its
    /// inner JSON (no envelope), in one transaction. Returns the stored
    /// object with its uuid, fq_name and allocated fields.
    pub fn create(&self, ty: &str, obj: Value) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| create(txn, t, obj))
    }

    /// Update (merge) an object; see [`crate`] docs for the semantics.
    pub fn update(&self, ty: &str, uuid: &Uuid, obj: Value) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| update(txn, t, *uuid, obj))
    }

    /// Delete an object (409 while referred to or with children).
    pub fn delete(&self, ty: &str, uuid: &Uuid) -> Result<(), ApiError> {
        let t = ty_of(ty)?;
        self.write(|txn| delete(txn, t, *uuid))
    }

    /// Apply a `ref-update` body (`{"type","uuid","ref-type","ref-uuid"|
    /// "ref-fq-name","operation","attr"}`).
    pub fn ref_update(&self, body: &Value) -> Result<Value, ApiError> {
        self.write(|txn| ref_update(txn, body))
    }

    /// The API form of one object (with hrefs relative to `base`, back-refs
    /// and children).
    pub fn read(&self, ty: &str, uuid: &Uuid, opts: &ReadOpts) -> Result<Value, ApiError> {
        let t = ty_of(ty)?;
        let st = self.read_state();
        let obj = st
            .get(t, uuid)
            .ok_or_else(|| not_found(format!("{ty} {uuid} not found")))?;
        Ok(render(&st, t, uuid, obj, opts))
    }

    /// uuid of `(type, fq_name)`.
    pub fn fq_name_to_id(&self, ty: &str, fq: &[String]) -> Result<Uuid, ApiError> {
        let t = ty_of(ty)?;
        self.read_state()
            .by_fq(t, fq)
            .ok_or_else(|| not_found(format!("{ty} {} not found", join(fq))))
    }

    /// `(type, fq_name)` of a uuid.
    pub fn id_to_fq_name(&self, uuid: &Uuid) -> Result<(&'static str, Vec<String>), ApiError> {
        let st = self.read_state();
        let t = st
            .kind
            .get(uuid)
            .copied()
            .ok_or_else(|| not_found(format!("ID {uuid} not found")))?;
        let fq = st.get(t, uuid).map(|o| fq_of(o)).unwrap_or_default();
        Ok((t.name(), fq))
    }
}
