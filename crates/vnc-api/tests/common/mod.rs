//! Test harness: a store in a temp dir and its router, driven with
//! `tower::ServiceExt::oneshot`.
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;
use vnc_api::{router, Store};

pub struct T {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    pub app: Router,
}

pub struct Resp {
    pub status: StatusCode,
    pub text: String,
    /// The HTTP `Warning` header, if any.
    pub warning: Option<String>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl T {
    pub fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("config.redb")).unwrap();
        let app = router(Arc::clone(&store));
        T { dir, store, app }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("config.redb")
    }

    pub fn reopen(self) -> T {
        let T { dir, store, app } = self;
        drop(app);
        drop(store);
        let store = Store::open(&dir.path().join("config.redb")).unwrap();
        let app = router(Arc::clone(&store));
        T { dir, store, app }
    }

    pub async fn raw(&self, method: &str, uri: &str, body: &str) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "10.84.14.2:8082")
            .header("content-type", "application/json; charset=UTF-8")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let warning = resp
            .headers()
            .get("warning")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            warning,
        }
    }

    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Resp {
        let b = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, uri, &b).await
    }

    /// A request that must succeed; returns its JSON.
    pub async fn ok(&self, method: &str, uri: &str, body: Option<Value>) -> Value {
        let r = self.call(method, uri, body).await;
        assert_eq!(r.status, StatusCode::OK, "{method} {uri}: {}", r.text);
        if r.text.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// POST an object; returns the inner created object.
    pub async fn post(&self, ty: &str, obj: Value) -> Value {
        let v = self
            .ok("POST", &format!("/{ty}s"), Some(json!({ ty: obj })))
            .await;
        v[ty].clone()
    }

    pub async fn get(&self, ty: &str, u: &str) -> Value {
        self.ok("GET", &format!("/{ty}/{u}"), None).await[ty].clone()
    }

    /// Run a request that must fail with `status` and change nothing
    /// (revision and every object unchanged). Returns the error text.
    pub async fn fails(&self, status: u16, method: &str, uri: &str, body: &str) -> String {
        let before = self.store.snapshot().unwrap();
        let r = self.raw(method, uri, body).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {uri} {body}: {}",
            r.text
        );
        let after = self.store.snapshot().unwrap();
        assert_eq!(before, after, "{method} {uri} changed the store");
        assert!(!r.text.is_empty(), "error without message");
        r.text
    }

    /// A project `default-domain:<name>`.
    pub async fn project(&self, name: &str) -> String {
        let p = self
            .post(
                "project",
                json!({"fq_name": ["default-domain", name], "parent_type": "domain"}),
            )
            .await;
        p["uuid"].as_str().unwrap().to_string()
    }

    /// A VN with one subnet in project `default-domain:<proj>`.
    pub async fn vn(&self, proj: &str, name: &str, prefix: &str, len: u8) -> Value {
        self.post(
            "virtual-network",
            json!({
                "parent_type": "project",
                "fq_name": ["default-domain", proj, name],
                "network_ipam_refs": [{
                    "to": ["default-domain", "default-project", "default-network-ipam"],
                    "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": prefix, "ip_prefix_len": len}}]}
                }]
            }),
        )
        .await
    }

    pub async fn vmi(&self, proj: &str, name: &str, vn: &str) -> Value {
        self.post(
            "virtual-machine-interface",
            json!({
                "fq_name": ["default-domain", proj, name],
                "parent_type": "project",
                "virtual_network_refs": [{"uuid": vn}],
            }),
        )
        .await
    }

    pub async fn iip(&self, vn: &str, vmi: &str, addr: Option<&str>) -> Value {
        // Upstream clients name instance-ips by their uuid.
        let id = Uuid::new_v4().to_string();
        let mut o = json!({
            "uuid": id,
            "fq_name": [id],
            "virtual_network_refs": [{"uuid": vn}],
            "virtual_machine_interface_refs": [{"uuid": vmi}],
        });
        if let Some(a) = addr {
            o["instance_ip_address"] = json!(a);
        }
        self.post("instance-ip", o).await
    }
}

pub fn fixture(name_prefix: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream-fixtures/vnc/extracted");
    let dir = if dir.exists() {
        dir
    } else {
        PathBuf::from("/work/shared/upstream-fixtures/vnc/extracted")
    };
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(name_prefix) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("fixture {name_prefix} not found in {}", dir.display());
}

/// Every key of `shape` (recursively for objects, first element for lists)
/// is present in `v`, except `skip`.
pub fn has_keys(v: &Value, shape: &Value, skip: &[&str], path: &str) {
    match (v, shape) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, sv) in b {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("missing key {path}.{k} in {v}"));
                has_keys(av, sv, skip, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                has_keys(x, y, skip, &format!("{path}[0]"));
            }
        }
        _ => {}
    }
}

pub fn uuid(v: &Value) -> String {
    let s = v["uuid"]
        .as_str()
        .unwrap_or_else(|| panic!("no uuid in {v}"));
    Uuid::parse_str(s).unwrap();
    s.to_string()
}
