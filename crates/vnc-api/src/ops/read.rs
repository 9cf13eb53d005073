//! Reads: the API form of one object.

use crate::schema::Ty;
use crate::store::{fq_of, uuid_at, State};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

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

pub(crate) fn href(base: &str, ty: Ty, u: &str) -> String {
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
