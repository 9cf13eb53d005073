//! The REST API (axum): upstream's URL layout, envelopes and status codes.

use crate::error::{bad, not_found, ApiError};
use crate::ops::{self, ReadOpts};
use crate::schema::Ty;
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

type Q = Query<HashMap<String, String>>;

/// The VNC REST API over `store`: `GET/POST /<type>s`,
/// `GET/PUT/DELETE /<type>/<uuid>`, `POST /fqname-to-id`,
/// `POST /id-to-fqname`, `POST /ref-update`, and the `GET /` home page.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/fqname-to-id", post(fq_name_to_id))
        .route("/id-to-fqname", post(id_to_fq_name))
        .route("/ref-update", post(ref_update))
        .route("/{coll}", get(list).post(create))
        .route("/{ty}/{id}", get(read).put(update).delete(delete))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such resource") })
        .with_state(store)
}

/// `http://<Host>` as upstream builds its hrefs from the request.
fn base(h: &HeaderMap) -> String {
    h.get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default()
}

fn json_body(b: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(b).map_err(|e| bad(format!("malformed JSON body: {e}")))
}

fn unwrap_envelope(ty: Ty, v: Value) -> Result<Value, ApiError> {
    match v {
        Value::Object(mut m) if m.contains_key(ty.name()) => {
            m.remove(ty.name()).ok_or_else(|| bad("missing envelope"))
        }
        _ => Err(bad(format!("body must be {{\"{}\": {{...}}}}", ty.name()))),
    }
}

fn coll_type(coll: &str) -> Result<Ty, ApiError> {
    Ty::from_collection(coll).ok_or_else(|| not_found(format!("unknown collection \"{coll}\"")))
}

fn obj_type(ty: &str, id: &str) -> Result<(Ty, Uuid), ApiError> {
    let t =
        Ty::from_name(ty).ok_or_else(|| not_found(format!("unknown resource type \"{ty}\"")))?;
    let u = Uuid::parse_str(id).map_err(|_| not_found(format!("{ty} {id} not found")))?;
    Ok((t, u))
}

/// Run a store write off the async threads (a commit waits for the disk).
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
}

fn reply(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The answer to a create or update, with an HTTP `Warning` header when
/// the stored object asks for something the node does not do: a network
/// policy rule that applies a service chain (the agent denies what such
/// a rule matches until service chaining exists).
fn reply_stored(ty: Ty, r: Result<Value, ApiError>) -> Response {
    let chained = ty == Ty::NetworkPolicy
        && r.as_ref().is_ok_and(|v| {
            v.get(ty.name())
                .and_then(|o| o.get("network_policy_entries"))
                .and_then(|e| e.get("policy_rule"))
                .and_then(Value::as_array)
                .is_some_and(|rules| {
                    rules.iter().any(|r| {
                        r.pointer("/action_list/apply_service")
                            .and_then(Value::as_array)
                            .is_some_and(|l| !l.is_empty())
                    })
                })
        });
    let mut resp = reply(r);
    if chained {
        resp.headers_mut().insert(
            header::WARNING,
            header::HeaderValue::from_static(
                "299 - \"service chains are not supported: rules with apply_service deny the traffic they match\"",
            ),
        );
    }
    resp
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

async fn home(h: HeaderMap) -> Response {
    let b = base(&h);
    let mut links = Vec::new();
    for t in Ty::ALL {
        links.push(json!({"link": {"href": format!("{b}/{}s", t.name()), "name": t.name(), "rel": "collection"}}));
        links.push(json!({"link": {"href": format!("{b}/{}", t.name()), "name": t.name(), "rel": "resource-base"}}));
    }
    for (p, n) in [
        ("fqname-to-id", "name-to-id"),
        ("id-to-fqname", "id-to-name"),
        ("ref-update", "ref-update"),
    ] {
        links.push(json!({"link": {"href": format!("{b}/{p}"), "name": n, "rel": "action"}}));
    }
    Json(json!({"href": b, "links": links})).into_response()
}

async fn list(
    State(s): State<Arc<Store>>,
    Path(coll): Path<String>,
    Query(q): Q,
    h: HeaderMap,
) -> Response {
    reply((|| {
        let ty = coll_type(&coll)?;
        let st = s.read_state();
        let lq = ops::parse_list_query(&st, &q, base(&h))?;
        Ok(ops::list(&st, ty, &lq))
    })())
}

async fn create(
    State(s): State<Arc<Store>>,
    Path(coll): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let r = async {
        let ty = coll_type(&coll)?;
        let obj = unwrap_envelope(ty, json_body(&body)?)?;
        let opts = ReadOpts {
            base: base(&h),
            ..ReadOpts::default()
        };
        blocking(move || {
            s.write(|txn| {
                let v = ops::create(txn, ty, obj)?;
                let u = crate::store::uuid_at(&v, "uuid").unwrap_or_default();
                Ok(json!({ ty.name(): ops::render(txn.st(), ty, &u, &v, &opts) }))
            })
        })
        .await
    };
    match coll_type(&coll) {
        Ok(ty) => reply_stored(ty, r.await),
        Err(_) => reply(r.await),
    }
}

async fn read(
    State(s): State<Arc<Store>>,
    Path((ty, id)): Path<(String, String)>,
    Query(q): Q,
    h: HeaderMap,
) -> Response {
    reply((|| {
        let (t, u) = obj_type(&ty, &id)?;
        let opts = ReadOpts {
            base: base(&h),
            fields: q.get("fields").map(|f| {
                f.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
            back_refs: !truthy(&q, "exclude_back_refs"),
            children: !truthy(&q, "exclude_children"),
        };
        Ok(json!({ t.name(): s.read(t.name(), &u, &opts)? }))
    })())
}

async fn update(
    State(s): State<Arc<Store>>,
    Path((ty, id)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let r = async {
        let (t, u) = obj_type(&ty, &id)?;
        let obj = unwrap_envelope(t, json_body(&body)?)?;
        let opts = ReadOpts {
            base: base(&h),
            ..ReadOpts::default()
        };
        blocking(move || {
            s.write(|txn| {
                let v = ops::update(txn, t, u, obj)?;
                Ok(json!({ t.name(): ops::render(txn.st(), t, &u, &v, &opts) }))
            })
        })
        .await
        .map(|v| (t, v))
    };
    match r.await {
        Ok((t, v)) => reply_stored(t, Ok(v)),
        Err(e) => reply(Err(e)),
    }
}

async fn delete(State(s): State<Arc<Store>>, Path((ty, id)): Path<(String, String)>) -> Response {
    let r = async {
        let (t, u) = obj_type(&ty, &id)?;
        blocking(move || s.write(|txn| ops::delete(txn, t, u))).await
    };
    match r.await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn fq_name_to_id(State(s): State<Arc<Store>>, body: Bytes) -> Response {
    reply((|| {
        let b = json_body(&body)?;
        let ty = b
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("fqname-to-id needs \"type\" (string)"))?;
        let fq: Vec<String> = b
            .get("fq_name")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
            .ok_or_else(|| bad("fqname-to-id needs \"fq_name\" (list of strings)"))?;
        let u = s.fq_name_to_id(ty, &fq)?;
        Ok(json!({"uuid": u.to_string()}))
    })())
}

async fn id_to_fq_name(State(s): State<Arc<Store>>, body: Bytes) -> Response {
    reply((|| {
        let b = json_body(&body)?;
        let u = b
            .get("uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("id-to-fqname needs \"uuid\" (string)"))?;
        let u = Uuid::parse_str(u).map_err(|_| not_found(format!("ID {u} not found")))?;
        let (ty, fq) = s.id_to_fq_name(&u)?;
        Ok(json!({"type": ty, "fq_name": fq}))
    })())
}

async fn ref_update(State(s): State<Arc<Store>>, body: Bytes) -> Response {
    let r = async {
        let b = json_body(&body)?;
        blocking(move || s.write(|txn| ops::ref_update(txn, &b))).await
    };
    reply(r.await)
}
