//! Test fixtures: a config API and a port API on loopback, and seeding.
//!
//! The config API is `FakeVnc`, a minimal in-test implementation of the VNC
//! REST calls the driver uses (create/read/update/delete/list/fqname-to-id,
//! fq_name uniqueness, instance-ip address uniqueness), until the vnc-api
//! crate lands; the port API is a recorder with the agent's semantics
//! (POST /port, DELETE /port/<id> idempotent, GET /port/<id>, GET /ports).
#![allow(dead_code, clippy::unwrap_used)] // test fixtures: a panic is the right failure

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::Client;

pub type Objects = Arc<Mutex<BTreeMap<(String, Uuid), Value>>>;

#[derive(Clone, Default)]
pub struct FakeVnc {
    pub objs: Objects,
}

fn nf(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} not found")).into_response()
}

impl FakeVnc {
    pub fn new() -> Self {
        let f = FakeVnc::default();
        let d = Uuid::new_v4();
        f.objs.lock().unwrap().insert(
            ("domain".into(), d),
            json!({"uuid": d.to_string(), "fq_name": ["default-domain"]}),
        );
        f
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/fqname-to-id", post(fq2id))
            .route("/{coll}", post(create).get(list))
            .route("/{ty}/{id}", get(read).put(update).delete(delete))
            .with_state(self.objs.clone())
    }

    /// All objects of a type.
    pub fn all(&self, ty: &str) -> Vec<Value> {
        self.objs
            .lock()
            .unwrap()
            .iter()
            .filter(|((t, _), _)| t == ty)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn fq2id(State(o): State<Objects>, Json(b): Json<Value>) -> Response {
    let ty = b["type"].as_str().unwrap_or_default();
    let o = o.lock().unwrap();
    match o
        .iter()
        .find(|((t, _), v)| t == ty && v["fq_name"] == b["fq_name"])
    {
        Some(((_, u), _)) => Json(json!({"uuid": u.to_string()})).into_response(),
        None => nf(&format!("{ty} {}", b["fq_name"])),
    }
}

async fn create(
    State(o): State<Objects>,
    Path(coll): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let Some(ty) = coll.strip_suffix('s') else {
        return nf(&coll);
    };
    let Some(mut obj) = b.get(ty).cloned() else {
        return (StatusCode::BAD_REQUEST, "no envelope").into_response();
    };
    let mut o = o.lock().unwrap();
    if o.iter()
        .any(|((t, _), v)| t == ty && v["fq_name"] == obj["fq_name"])
    {
        return (
            StatusCode::CONFLICT,
            format!("{ty} {} exists", obj["fq_name"]),
        )
            .into_response();
    }
    if ty == "instance-ip" {
        let vn = obj["virtual_network_refs"][0]["uuid"].clone();
        if o.iter().any(|((t, _), v)| {
            t == ty
                && v["instance_ip_address"] == obj["instance_ip_address"]
                && v["virtual_network_refs"][0]["uuid"] == vn
        }) {
            return (StatusCode::CONFLICT, "address in use").into_response();
        }
    }
    let id = obj["uuid"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Uuid::new_v4);
    obj["uuid"] = json!(id.to_string());
    let reply = json!({ty: {"uuid": id.to_string(), "fq_name": obj["fq_name"]}});
    o.insert((ty.to_string(), id), obj);
    Json(reply).into_response()
}

async fn read(State(o): State<Objects>, Path((ty, id)): Path<(String, Uuid)>) -> Response {
    match o.lock().unwrap().get(&(ty.clone(), id)) {
        Some(v) => Json(json!({ ty: v })).into_response(),
        None => nf(&format!("{ty} {id}")),
    }
}

async fn update(
    State(o): State<Objects>,
    Path((ty, id)): Path<(String, Uuid)>,
    Json(b): Json<Value>,
) -> Response {
    let mut o = o.lock().unwrap();
    let Some(v) = o.get_mut(&(ty.clone(), id)) else {
        return nf(&ty);
    };
    if let (Some(m), Some(p)) = (v.as_object_mut(), b[&ty].as_object()) {
        for (k, x) in p {
            m.insert(k.clone(), x.clone());
        }
    }
    Json(json!({ty: {"uuid": id.to_string()}})).into_response()
}

async fn delete(State(o): State<Objects>, Path((ty, id)): Path<(String, Uuid)>) -> Response {
    match o.lock().unwrap().remove(&(ty.clone(), id)) {
        Some(_) => Json(json!({})).into_response(),
        None => nf(&ty),
    }
}

async fn list(
    State(o): State<Objects>,
    Path(coll): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(ty) = coll.strip_suffix('s') else {
        return nf(&coll);
    };
    let parent = q.get("parent_id").cloned();
    let items: Vec<Value> = o
        .lock()
        .unwrap()
        .iter()
        .filter(|((t, _), v)| {
            t == ty && parent.as_ref().is_none_or(|p| v["parent_uuid"] == json!(p))
        })
        .map(|(_, v)| json!({ ty: v }))
        .collect();
    Json(json!({ coll: items })).into_response()
}

/// The agent's port API semantics, recording bodies.
#[derive(Clone, Default)]
pub struct FakePorts {
    pub ports: Arc<Mutex<BTreeMap<String, Value>>>,
    pub posts: Arc<Mutex<Vec<Value>>>,
}

impl FakePorts {
    pub fn router(&self) -> Router {
        let s = self.clone();
        let s2 = self.clone();
        let s3 = self.clone();
        let s4 = self.clone();
        Router::new()
            .route(
                "/port",
                post(move |Json(b): Json<Value>| async move {
                    s.posts.lock().unwrap().push(b.clone());
                    let id = b["id"].as_str().unwrap_or_default().to_string();
                    s.ports.lock().unwrap().insert(id, b);
                    StatusCode::OK
                }),
            )
            .route(
                "/port/{id}",
                get(move |Path(id): Path<String>| async move {
                    match s2.ports.lock().unwrap().get(&id) {
                        Some(v) => Json(v.clone()).into_response(),
                        None => (StatusCode::NOT_FOUND, "no port").into_response(),
                    }
                })
                .delete(move |Path(id): Path<String>| async move {
                    s3.ports.lock().unwrap().remove(&id);
                    StatusCode::OK
                }),
            )
            .route(
                "/ports",
                get(move || async move {
                    Json(
                        s4.ports
                            .lock()
                            .unwrap()
                            .values()
                            .cloned()
                            .collect::<Vec<_>>(),
                    )
                }),
            )
    }
}

/// Serves a router on 127.0.0.1:<ephemeral>; returns its base URL.
pub async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(l, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A subnet for seeding: (prefix, len, gateway).
pub type Sub<'a> = (&'a str, u8, &'a str);

/// Creates project `tenant` (with its `default` SG) and VN `name` with the
/// given subnets through the REST API; returns the VN uuid.
pub async fn seed_vn(c: &Client, tenant: &str, name: &str, subnets: &[Sub<'_>]) -> Uuid {
    let fq = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let dom = c
        .fqname_to_id("domain", &fq(&["default-domain"]))
        .await
        .unwrap()
        .unwrap();
    let proj = match c
        .fqname_to_id("project", &fq(&["default-domain", tenant]))
        .await
        .unwrap()
    {
        Some(p) => p,
        None => {
            let r = c
                .create(
                    "project",
                    json!({"fq_name": ["default-domain", tenant], "parent_type": "domain",
                           "parent_uuid": dom.to_string()}),
                )
                .await
                .unwrap();
            vnc_client::uuid_of(&r).unwrap()
        }
    };
    if c.fqname_to_id(
        "security-group",
        &fq(&["default-domain", tenant, "default"]),
    )
    .await
    .unwrap()
    .is_none()
    {
        c.create(
            "security-group",
            json!({"fq_name": ["default-domain", tenant, "default"], "parent_type": "project",
                   "parent_uuid": proj.to_string()}),
        )
        .await
        .unwrap();
    }
    let ipam_fq = fq(&["default-domain", tenant, "ipam"]);
    let ipam = match c.fqname_to_id("network-ipam", &ipam_fq).await.unwrap() {
        Some(i) => i,
        None => vnc_client::uuid_of(
            &c.create(
                "network-ipam",
                json!({"fq_name": ipam_fq, "parent_type": "project", "parent_uuid": proj.to_string()}),
            )
            .await
            .unwrap(),
        )
        .unwrap(),
    };
    let subs: Vec<Value> = subnets
        .iter()
        .map(|(p, l, g)| {
            json!({"subnet": {"ip_prefix": p, "ip_prefix_len": l}, "default_gateway": g,
                   "subnet_uuid": Uuid::new_v4().to_string()})
        })
        .collect();
    let r = c
        .create(
            "virtual-network",
            json!({"fq_name": ["default-domain", tenant, name], "parent_type": "project",
                   "parent_uuid": proj.to_string(),
                   "network_ipam_refs": [{"to": ipam_fq, "uuid": ipam.to_string(),
                                          "attr": {"ipam_subnets": subs}}]}),
        )
        .await
        .unwrap();
    vnc_client::uuid_of(&r).unwrap()
}

/// Our objects left in the config API (VM, VMI, IIP).
pub fn leftovers(v: &FakeVnc) -> Vec<Value> {
    [
        "virtual-machine",
        "virtual-machine-interface",
        "instance-ip",
    ]
    .iter()
    .flat_map(|t| v.all(t))
    .collect()
}
