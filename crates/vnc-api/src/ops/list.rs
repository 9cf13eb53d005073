//! `GET /<type>s`: list queries.

use crate::error::{bad, not_found, ApiError};
use crate::ops::read::{href, render, ReadOpts};
use crate::schema::Ty;
use crate::store::{fq_of, uuid_at, State};
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

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
