//! Test fixtures: the real config API and the real agent port API on
//! loopback, and seeding through REST.
//!
//! * [`Vnc`]: `vnc_api::router` over a `vnc_api::Store` in a temporary redb
//!   file, served on 127.0.0.1 (the agent serves the same router on :8082).
//! * [`Ports`]: `agent::ports::router` over an `agent::ports::PortStore` in a
//!   temporary ports directory (files `<dir>/<uuid>`, as the agent keeps
//!   them), with the agent's own checks against the config
//!   (`agent::port_config::ConfigPorts`).
//!
//! Both are in-process so that the protocol tests run without root; the
//! Docker end-to-end test runs the real `vrouter-agent` process instead.
#![allow(dead_code, clippy::unwrap_used)] // test fixtures: a panic is the right failure

use std::path::PathBuf;
use std::sync::Arc;

use agent::port_config::ConfigPorts;
use agent::ports::{PortCheck, PortStore};
use axum::Router;
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::Client;

/// The real VNC config API (vnc-api crate) over a temporary redb store.
pub struct Vnc {
    pub store: Arc<vnc_api::Store>,
    pub url: String,
    /// Every request the config API served: "METHOD /path?query".
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Vnc {
    pub async fn start() -> Vnc {
        let dir = tempfile::tempdir().unwrap();
        let store = vnc_api::Store::open(&dir.path().join("config.redb")).unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let app = vnc_api::router(Arc::clone(&store)).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = Arc::clone(&log);
                async move {
                    log.lock()
                        .unwrap()
                        .push(format!("{} {}", req.method(), req.uri()));
                    next.run(req).await
                }
            },
        ));
        let url = serve(app).await;
        Vnc {
            store,
            url,
            requests,
            _dir: dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, None).unwrap()
    }

    /// All objects of a type (inner JSON), from a consistent snapshot.
    pub fn all(&self, ty: &str) -> Vec<Value> {
        let s = self.store.snapshot().unwrap();
        s.iter(ty).map(|(_, v)| v.clone()).collect()
    }

    pub fn by_name(&self, ty: &str, last: &str) -> Option<Value> {
        self.all(ty)
            .into_iter()
            .find(|v| v["fq_name"].as_array().and_then(|a| a.last()) == Some(&json!(last)))
    }
}

/// The real agent port API (agent::ports) over a temporary ports directory.
pub struct Ports {
    pub store: Arc<PortStore>,
    pub dir: PathBuf,
    pub url: String,
    _tmp: tempfile::TempDir,
}

impl Ports {
    pub async fn start(vnc: &Vnc) -> Ports {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ports");
        let store = PortStore::open(&dir).unwrap();
        // The agent's own checks: the VN exists, the address is in its
        // subnets and is the VMI's instance-ip.
        let check: Arc<dyn PortCheck> = Arc::new(ConfigPorts::new(Arc::clone(&vnc.store)));
        let url = serve(agent::ports::router(Arc::clone(&store), check)).await;
        Ports {
            store,
            dir,
            url,
            _tmp: tmp,
        }
    }

    /// The port files on disk, parsed (what the agent restores at start).
    pub fn files(&self) -> Vec<Value> {
        port_files(&self.dir)
    }
}

/// `<dir>/<uuid>` files of an agent ports directory, as JSON.
pub fn port_files(dir: &std::path::Path) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Value> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<Uuid>().is_ok())
        })
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    out.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_string());
    out
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

/// Creates project `tenant` (the config API gives it its `default` SG) and
/// VN `name` with the given subnets through the REST API; returns the VN uuid.
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
            // Docker-style: gateway .1, DNS .2, addresses upwards.
            json!({"subnet": {"ip_prefix": p, "ip_prefix_len": l}, "default_gateway": g,
                   "addr_from_start": true, "subnet_uuid": Uuid::new_v4().to_string()})
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
pub fn leftovers(v: &Vnc) -> Vec<Value> {
    [
        "virtual-machine",
        "virtual-machine-interface",
        "instance-ip",
    ]
    .iter()
    .flat_map(|t| v.all(t))
    .collect()
}

/// A docker-style id (64 hex characters) standing for `name` in a test.
pub fn id(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0>64}")
}

/// Report a test that cannot run here. The line goes straight to the
/// process's stderr (libtest captures only the print macros, and hides
/// what a passing test printed), so every skip is seen, and the test
/// command counts the `SKIP:` lines. Under `CI=true` a skip is a failure:
/// the test command installs every tool, so a skip there is a broken step.
pub fn report_skip(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: would SKIP, which CI=true does not allow: {reason}");
    }
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("SKIP: {test}: {reason}\n"),
    );
}
