//! The port API in-process against a real config store (the agent's own
//! checks and live view over it) and a temporary ports directory.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::port_config::ConfigPorts;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Upstream's port_ipc test data, verbatim (also in
/// `shared/upstream-fixtures/port-ipc`).
pub(crate) const FIXTURES: [&str; 2] = [
    r#"{"ip-address": "11.0.0.3", "tx-vlan-id": -1, "display-name": "vm1", "id": "93c2c386-6e79-485e-bfa4-b9daa713133b", "instance-id": "69ce06bd-6d1e-43d0-8e48-a30043a49ed8", "ip6-address": "None", "rx-vlan-id": -1, "system-name": "tap93c2c386-6e", "vn-id": "56297dc0-5553-4e6a-b87f-8423afc21e9d", "vm-project-id": "9970147c-33b1-4bf7-8944-8968e708d430", "type": 0, "mac-address": "02:93:c2:c3:86:6e"}"#,
    r#"{"ip-address": "11.0.0.4", "rx-vlan-id": -1, "display-name": "vm2", "id": "c8c0a3dd-ae36-4d0d-8952-72623f3f1a83", "instance-id": "69ce06bd-6d1e-43d0-8e48-a30043a49ed8", "ip6-address": "None", "tx-vlan-id": -1, "system-name": "tapc8c0a3dd-ae", "vn-id": "56297dc0-5553-4e6a-b87f-8423afc21e9d", "vm-project-id": "9970147c-33b1-4bf7-8944-8968e708d430", "type": 0, "mac-address": "02:c8:c0:a3:dd:ae"}"#,
];
const VN: &str = "56297dc0-5553-4e6a-b87f-8423afc21e9d";
const VMI1: &str = "93c2c386-6e79-485e-bfa4-b9daa713133b";
const VMI2: &str = "c8c0a3dd-ae36-4d0d-8952-72623f3f1a83";

struct Rig {
    _dir: tempfile::TempDir,
    cfg: Arc<vnc_api::Store>,
    ports: Arc<PortStore>,
    app: Router,
}

impl Rig {
    /// The fixtures' VN (11.0.0.0/24, upstream's default gateway/DNS).
    fn new(stale: Duration) -> Rig {
        Rig::over(stale, false)
    }

    /// `late_config`: the store seen as a control node's config, which
    /// arrives after the ports (controller mode).
    fn over(stale: Duration, late_config: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let cfg = vnc_api::Store::open(&dir.path().join("config.redb")).unwrap();
        cfg.create(
            "virtual-network",
            json!({"uuid": VN, "fq_name": ["default-domain", "default-project", "vn1"],
                   "parent_type": "project",
                   "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                       "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "11.0.0.0", "ip_prefix_len": 24}},
                                                 {"subnet": {"ip_prefix": "fd11::", "ip_prefix_len": 64}}]}}]}),
        )
        .unwrap();
        let ports = PortStore::open(&dir.path().join("ports")).unwrap();
        let app = router_with(
            Arc::clone(&ports),
            if late_config {
                Arc::new(ConfigPorts::new(Arc::new(LateConfig(Arc::clone(&cfg)))))
            } else {
                Arc::new(ConfigPorts::new(Arc::clone(&cfg)))
            },
            PortApiOptions {
                stale_timeout: stale,
            },
        );
        Rig {
            _dir: dir,
            cfg,
            ports,
            app,
        }
    }

    async fn call(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let r = self.app.clone().oneshot(req).await.unwrap();
        let st = r.status();
        let b = r.into_body().collect().await.unwrap().to_bytes();
        (st, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// A refused request: its status, an `{"error"}` body naming the
    /// problem, and nothing changed (memory and files).
    async fn refused(&self, status: u16, method: &str, uri: &str, body: &str) -> String {
        let before = (self.ports.all(), self.ports.vm_ports(), self.files());
        let (st, v) = self.call(method, uri, body).await;
        assert_eq!(st.as_u16(), status, "{method} {uri} {body}: {v}");
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no {{\"error\"}} in {v}"))
            .to_string();
        assert!(!msg.is_empty());
        assert_eq!(
            (self.ports.all(), self.ports.vm_ports(), self.files()),
            before,
            "{method} {uri} {body} changed state"
        );
        msg
    }

    fn files(&self) -> Vec<String> {
        fn walk(d: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(format!(
                        "{}={}",
                        e.path().display(),
                        std::fs::read_to_string(e.path()).unwrap()
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self._dir.path().join("ports"), &mut out);
        out.sort();
        out
    }
}

fn fixture(i: usize) -> Value {
    serde_json::from_str(FIXTURES[i]).unwrap()
}

fn with(mut v: Value, k: &str, x: Value) -> String {
    v[k] = x;
    v.to_string()
}

#[test]
fn upstream_fixture_bodies_parse_and_round_trip() {
    let r: PortRecord = serde_json::from_str(FIXTURES[0]).unwrap();
    assert!(r.validate().is_ok());
    assert_eq!(r.ip4(), Some(Ipv4Addr::new(11, 0, 0, 3)));
    assert_eq!(r.ip6(), None);
    assert_eq!(r.system_name, "tap93c2c386-6e");
    assert!(r.link_up());
    let mut back: Value = serde_json::to_value(&r).unwrap();
    // Upstream's files carry vhostuser-mode (0 here) besides the body.
    assert_eq!(back["vhostuser-mode"], 0);
    back.as_object_mut().unwrap().remove("vhostuser-mode");
    assert_eq!(back, fixture(0));
}

#[test]
fn store_persists_and_restores() {
    let d = tempfile::tempdir().unwrap();
    let s = PortStore::open(d.path()).unwrap();
    let rec: PortRecord = serde_json::from_str(FIXTURES[0]).unwrap();
    let id = rec.validate().unwrap();
    s.put(id, rec.clone()).unwrap();
    drop(s);
    let s = PortStore::open(d.path()).unwrap();
    assert_eq!(s.get(&id), Some(rec));
    assert!(s.remove(&id).unwrap());
    assert!(!s.remove(&id).unwrap());
    assert!(PortStore::open(d.path()).unwrap().all().is_empty());
}

/// The running agent accepts upstream's own test ports, answers `{}`, and
/// `GET` reports the live state (not the stored body).
#[tokio::test]
async fn upstream_fixtures_accepted_and_live_state_reported() {
    let r = Rig::new(Duration::from_secs(60));
    for f in FIXTURES {
        assert_eq!(
            r.call("POST", "/port", f).await,
            (StatusCode::OK, json!({}))
        );
    }
    // Again (a driver resending): still {}.
    assert_eq!(
        r.call("POST", "/port", FIXTURES[0]).await,
        (StatusCode::OK, json!({}))
    );
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["id"], VMI1);
    assert_eq!(v["ip-address"], "11.0.0.3");
    assert_eq!(v["plen"], 24);
    assert_eq!(v["gateway"], "11.0.0.254");
    assert_eq!(v["dns-server"], "11.0.0.253");
    assert_eq!(v["vhostuser-mode"], 0);
    assert_eq!(v["author"], AUTHOR);
    assert!(v.get("v6-ip-address").is_none(), "{v}");
    // The files hold the body plus upstream's persisted fields.
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(r._dir.path().join("ports").join(VMI2)).unwrap(),
    )
    .unwrap();
    assert_eq!(file["author"], AUTHOR);
    assert_eq!(file["vhostuser-mode"], 0);
    assert_eq!(file["system-name"], "tapc8c0a3dd-ae");
    // Both in one VM: GET /vm lists both, /vm/<vm>/<vmi> one.
    let vm = "69ce06bd-6d1e-43d0-8e48-a30043a49ed8";
    let (st, v) = r.call("GET", &format!("/vm/{vm}"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, v) = r.call("GET", &format!("/vm/{vm}/{VMI2}"), "").await;
    assert_eq!(v[0]["ip-address"], "11.0.0.4");
    assert_eq!(
        r.call("DELETE", &format!("/port/{VMI1}"), "").await,
        (StatusCode::OK, json!({}))
    );
    // Idempotent delete; GET of a deleted port is 404 with an error.
    assert_eq!(
        r.call("DELETE", &format!("/port/{VMI1}"), "").await,
        (StatusCode::OK, json!({}))
    );
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("Not Found"), "{v}");
}

#[tokio::test]
async fn live_state_has_ipv6_and_follows_the_instance_ip() {
    let r = Rig::new(Duration::from_secs(60));
    let body = with(fixture(0), "ip6-address", json!("fd11::5"));
    assert_eq!(r.call("POST", "/port", &body).await.0, StatusCode::OK);
    let (_, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(v["v6-ip-address"], "fd11::5");
    assert_eq!(v["v6-plen"], 64);
    assert_eq!(v["v6-gateway"], "fd11::ffff:ffff:ffff:fffe");
    assert_eq!(v["v6-dns-server"], "fd11::ffff:ffff:ffff:fffd");
    // No address in the body: the config's instance-ip is the address.
    r.call("DELETE", &format!("/port/{VMI1}"), "").await;
    r.cfg
        .create(
            "virtual-machine-interface",
            json!({"uuid": VMI1, "fq_name": ["default-domain", "default-project", "p1"],
                   "parent_type": "project", "virtual_network_refs": [{"uuid": VN}]}),
        )
        .unwrap();
    r.cfg
        .create(
            "instance-ip",
            json!({"fq_name": ["p1-v4"], "instance_ip_address": "11.0.0.9",
                   "virtual_network_refs": [{"uuid": VN}],
                   "virtual_machine_interface_refs": [{"uuid": VMI1}]}),
        )
        .unwrap();
    let body = with(fixture(0), "ip-address", json!("0.0.0.0"));
    assert_eq!(r.call("POST", "/port", &body).await.0, StatusCode::OK);
    let (_, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(v["ip-address"], "11.0.0.9");
}

/// Issue 16 and 15: each bad port gets a 4xx `{"error"}` naming the field
/// and changes nothing.
#[tokio::test]
async fn bad_ports_are_refused_and_change_nothing() {
    let r = Rig::new(Duration::from_secs(60));
    assert_eq!(r.call("POST", "/port", FIXTURES[1]).await.0, StatusCode::OK);
    let f = || fixture(0);
    let mut cases: Vec<(String, u16, &str)> = vec![
        (
            with(f(), "system-name", json!("tap1\n")),
            400,
            "system-name",
        ),
        (
            with(f(), "system-name", json!("tap\t1")),
            400,
            "system-name",
        ),
        (with(f(), "system-name", json!(" tap1")), 400, "system-name"),
        (with(f(), "system-name", json!("")), 400, "system-name"),
        (with(f(), "rx-vlan-id", json!(-5)), 400, "rx-vlan-id"),
        (with(f(), "rx-vlan-id", json!(4096)), 400, "rx-vlan-id"),
        (
            with(f(), "tx-vlan-id", json!(99_999_999_999_i64)),
            400,
            "tx-vlan-id",
        ),
        // One way only: a sub-interface needs both ids.
        (with(f(), "tx-vlan-id", json!(100)), 400, "needs both"),
        (with(f(), "rx-vlan-id", json!(100)), 400, "needs both"),
        // VLAN 0 (priority tags) and 4095 are not sub-interface ids.
        (
            with(
                serde_json::from_str(&with(f(), "rx-vlan-id", json!(0))).unwrap(),
                "tx-vlan-id",
                json!(0),
            ),
            400,
            "1-4094",
        ),
        (
            with(
                serde_json::from_str(&with(f(), "rx-vlan-id", json!(4095))).unwrap(),
                "tx-vlan-id",
                json!(4095),
            ),
            400,
            "1-4094",
        ),
        (with(f(), "rx-vlan-id", json!("5")), 400, "bad port body"),
        (with(f(), "type", json!(99)), 400, "type"),
        (with(f(), "type", json!(-1)), 400, "type"),
        (with(f(), "type", json!(1.5)), 400, "bad port body"),
        (with(f(), "vhostuser-mode", json!(7)), 400, "vhostuser-mode"),
        (with(f(), "link-state", json!(3)), 400, "link-state"),
        (
            with(f(), "mac-address", json!("00:00:00:00:00:00")),
            400,
            "mac-address",
        ),
        (
            with(f(), "mac-address", json!("01:00:5e:00:00:01")),
            400,
            "mac-address",
        ),
        (
            with(f(), "mac-address", json!("02:93:c2")),
            400,
            "mac-address",
        ),
        (with(f(), "id", json!("../../x")), 400, "id"),
        (
            with(f(), "vn-id", json!("00000000-0000-0000-0000-000000000000")),
            400,
            "vn-id",
        ),
        (
            with(f(), "ip-address", json!("11.0.0.300")),
            400,
            "ip-address",
        ),
        (with(f(), "ip-address", json!("fd11::1")), 400, "ip-address"),
        (
            with(f(), "ip6-address", json!("11.0.0.3")),
            400,
            "ip6-address",
        ),
        (
            with(f(), "display-name", json!("a\u{0}b")),
            400,
            "display-name",
        ),
        // Outside the VN's subnets: it used to be stored and then fail in
        // the datapath at every change.
        (
            with(f(), "ip-address", json!("10.9.9.9")),
            400,
            "not inside any subnet",
        ),
        (
            with(f(), "ip6-address", json!("fd12::1")),
            400,
            "not inside any subnet",
        ),
        // The VN does not exist (the embedded store is complete).
        (
            with(f(), "vn-id", json!("0f9c3f8e-1111-4222-8333-944455556668")),
            404,
            "virtual-network",
        ),
        // Another port's interface.
        (
            with(f(), "system-name", json!("tapc8c0a3dd-ae")),
            409,
            "already used",
        ),
        ("{\"id\": ".into(), 400, "Invalid Json"),
        ("".into(), 400, "empty body"),
        ("   ".into(), 400, "empty body"),
        ("[]".into(), 400, "empty array"),
        ("null".into(), 400, "JSON object"),
        ("7".into(), 400, "JSON object"),
        ("[7]".into(), 400, "[0]"),
        (json!([f(), f()]).to_string(), 400, "twice"),
    ];
    if !cfg!(windows) {
        // Linux interface names: no whitespace, '/', ':'; at most 15 bytes
        // (Windows HNS endpoint names have inner spaces and are longer).
        for name in [
            "tap 93c2c386",
            "a/b",
            "a:b",
            "Contrail-93c2c386-6e79-485e-bfa4-b9daa713133b",
        ] {
            cases.push((with(f(), "system-name", json!(name)), 400, "system-name"));
        }
    }
    for (body, status, needle) in cases {
        let msg = r.refused(status, "POST", "/port", &body).await;
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    // An address the config disagrees with (issue 15): both named.
    r.cfg
        .create(
            "virtual-machine-interface",
            json!({"uuid": VMI1, "fq_name": ["default-domain", "default-project", "p1"],
                   "parent_type": "project", "virtual_network_refs": [{"uuid": VN}]}),
        )
        .unwrap();
    let iip = r
        .cfg
        .create(
            "instance-ip",
            json!({"fq_name": ["p1-v4"], "instance_ip_address": "11.0.0.7",
                   "virtual_network_refs": [{"uuid": VN}],
                   "virtual_machine_interface_refs": [{"uuid": VMI1}]}),
        )
        .unwrap();
    let msg = r.refused(409, "POST", "/port", FIXTURES[0]).await;
    assert!(
        msg.contains("11.0.0.3")
            && msg.contains("11.0.0.7")
            && msg.contains(iip["uuid"].as_str().unwrap()),
        "{msg}"
    );
    // The same in an array: all or none (the good one is not added either).
    let good = with(fixture(1), "system-name", json!("tapother"));
    let good = with(
        serde_json::from_str(&good).unwrap(),
        "id",
        json!("1c8c0a3d-ae36-4d0d-8952-72623f3f1a83"),
    );
    let batch = format!("[{good}, {}]", FIXTURES[0]);
    r.refused(409, "POST", "/port", &batch).await;
    // Bad ids on the other calls.
    r.refused(400, "GET", "/port/not-a-uuid", "").await;
    r.refused(400, "DELETE", "/port/not-a-uuid", "").await;
    r.refused(404, "GET", "/nothing-here", "").await;
    r.refused(405, "PATCH", "/port", "{}").await;
}

/// The embedded store's objects as a control node would send them: the
/// same snapshots, but config may come after the ports.
struct LateConfig(Arc<vnc_api::Store>);

impl crate::source::ConfigView for LateConfig {
    fn snapshot(&self) -> anyhow::Result<vnc_api::Snapshot> {
        Ok(self.0.snapshot()?)
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
    fn arrives_after_ports(&self) -> bool {
        true
    }
}

/// As upstream with control nodes: a port whose VN the config does not
/// have (yet) is kept, not refused (the config comes after the port); it
/// is live once the VN is there.
#[tokio::test]
async fn controller_mode_keeps_a_port_for_an_unknown_vn_until_the_vn_arrives() {
    let r = Rig::over(Duration::from_secs(60), true);
    let vn2 = "0f9c3f8e-1111-4222-8333-944455556668";
    let body = with(fixture(0), "vn-id", json!(vn2));
    assert_eq!(
        r.call("POST", "/port", &body).await,
        (StatusCode::OK, json!({}))
    );
    assert!(r._dir.path().join("ports").join(VMI1).exists());
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains(vn2), "{v}");
    r.cfg
        .create(
            "virtual-network",
            json!({"uuid": vn2, "fq_name": ["default-domain", "default-project", "late"],
                   "parent_type": "project",
                   "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                       "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "11.0.0.0", "ip_prefix_len": 24}}]}}]}),
        )
        .unwrap();
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn arrays_are_all_or_none() {
    let r = Rig::new(Duration::from_secs(60));
    let batch = format!("[{}, {}]", FIXTURES[0], FIXTURES[1]);
    assert_eq!(
        r.call("POST", "/port", &batch).await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(r.ports.all().len(), 2);
    assert_eq!(r.files().len(), 2);
    // A batch whose second port clashes with the first's name: none added.
    let a = with(
        fixture(0),
        "id",
        json!("11111111-6e79-485e-bfa4-b9daa713133b"),
    );
    let a = with(
        serde_json::from_str(&a).unwrap(),
        "system-name",
        json!("tapnew1"),
    );
    let b = with(
        fixture(1),
        "id",
        json!("22222222-ae36-4d0d-8952-72623f3f1a83"),
    );
    let b = with(
        serde_json::from_str(&b).unwrap(),
        "system-name",
        json!("tapnew1"),
    );
    r.refused(409, "POST", "/port", &format!("[{a}, {b}]"))
        .await;
    // A file that cannot be written (a directory in its place) rolls the
    // batch back: the port written before it is removed again.
    let c = with(
        fixture(0),
        "id",
        json!("33333333-6e79-485e-bfa4-b9daa713133b"),
    );
    let c = with(
        serde_json::from_str(&c).unwrap(),
        "system-name",
        json!("tapnew3"),
    );
    let d_id = "44444444-ae36-4d0d-8952-72623f3f1a83";
    let d = with(fixture(1), "id", json!(d_id));
    let d = with(
        serde_json::from_str(&d).unwrap(),
        "system-name",
        json!("tapnew4"),
    );
    let blocker = r._dir.path().join("ports").join(d_id);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), "").unwrap();
    let (st, v) = r.call("POST", "/port", &format!("[{c}, {d}]")).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("nothing added"),
        "{v}"
    );
    assert_eq!(r.ports.all().len(), 2);
    assert!(!r
        ._dir
        .path()
        .join("ports/33333333-6e79-485e-bfa4-b9daa713133b")
        .exists());
}

#[tokio::test]
async fn remote_ports_enable_disable_persisted() {
    let r = Rig::new(Duration::from_secs(60));
    let remote = with(fixture(0), "type", json!(TYPE_REMOTE));
    assert_eq!(r.call("POST", "/port", &remote).await.0, StatusCode::OK);
    // Down by default (upstream): not programmed, so not live.
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("link down"), "{v}");
    assert_eq!(
        r.call("PUT", &format!("/enable-port/{VMI1}"), "").await,
        (StatusCode::OK, json!({}))
    );
    let (st, v) = r.call("GET", &format!("/port/{VMI1}"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["link-state"], 1);
    // Persisted: a restarted agent reads it back.
    let reopened = PortStore::open(&r._dir.path().join("ports")).unwrap();
    let id: Uuid = VMI1.parse().unwrap();
    assert_eq!(reopened.get(&id).unwrap().link_state, Some(1));
    assert_eq!(
        r.call("PUT", &format!("/disable-port/{VMI1}"), "").await,
        (StatusCode::OK, json!({}))
    );
    assert_eq!(r.ports.get(&id).unwrap().link_state, Some(0));
    // Only remote ports; unknown ports.
    assert_eq!(r.call("POST", "/port", FIXTURES[1]).await.0, StatusCode::OK);
    let msg = r
        .refused(400, "PUT", &format!("/enable-port/{VMI2}"), "")
        .await;
    assert!(msg.contains("Incorrect Port type"), "{msg}");
    r.refused(404, "PUT", &format!("/enable-port/{}", Uuid::new_v4()), "")
        .await;
}

#[tokio::test]
async fn syncports_removes_what_is_not_announced_again() {
    let r = Rig::new(Duration::from_millis(300));
    for f in FIXTURES {
        r.call("POST", "/port", f).await;
    }
    assert_eq!(
        r.call("POST", "/syncports", "").await,
        (StatusCode::OK, json!({}))
    );
    // Only the first is announced again.
    r.call("POST", "/port", FIXTURES[0]).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let left: Vec<Uuid> = r.ports.all().into_keys().collect();
    assert_eq!(left, vec![VMI1.parse::<Uuid>().unwrap()]);
    assert_eq!(r.files().len(), 1);
    // A second sync before the first sweeps: only the newest one counts.
    r.call("POST", "/syncports", "").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.call("POST", "/syncports", "").await;
    r.call("POST", "/port", FIXTURES[0]).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(r.ports.all().len(), 1);
}

#[tokio::test]
async fn vm_subscriptions_and_vm_cfg() {
    let r = Rig::new(Duration::from_secs(60));
    let vm = "69ce06bd-6d1e-43d0-8e48-a30043a49ed8";
    r.cfg
        .create("virtual-machine", json!({"uuid": vm, "fq_name": ["pod-a"]}))
        .unwrap();
    r.cfg
        .create(
            "virtual-machine-interface",
            json!({"uuid": VMI1, "fq_name": ["default-domain", "default-project", "pod-a-eth0"],
                   "parent_type": "project", "virtual_network_refs": [{"uuid": VN}],
                   "virtual_machine_refs": [{"uuid": vm}],
                   "annotations": {"key_value_pair": [{"key": "index", "value": "0/1"}]}}),
        )
        .unwrap();
    r.cfg
        .create(
            "instance-ip",
            json!({"fq_name": ["pod-a-v4"], "virtual_network_refs": [{"uuid": VN}],
                   "virtual_machine_interface_refs": [{"uuid": VMI1}]}),
        )
        .unwrap();
    // The CNI's first question: the VM's interfaces.
    let (st, cfg) = r.call("GET", "/vm-cfg/pod-a", "").await;
    assert_eq!(st, StatusCode::OK, "{cfg}");
    assert_eq!(cfg[0]["id"], VMI1);
    assert_eq!(cfg[0]["vm-uuid"], vm);
    assert_eq!(cfg[0]["vn-id"], VN);
    assert_eq!(cfg[0]["vn-name"], "default-domain:default-project:vn1");
    assert_eq!(cfg[0]["annotations"], json!(["{index:0/1}"]));
    let mac = cfg[0]["mac-address"].as_str().unwrap().to_string();
    assert_eq!(
        r.call("GET", &format!("/vm-cfg-by-uuid/{vm}"), "").await.1,
        cfg
    );
    r.refused(404, "GET", "/vm-cfg/pod-b", "").await;
    // Then it subscribes the interface it made...
    let sub = json!({"vm-uuid": vm, "vm-name": "pod-a", "host-ifname": "tap93c2c386-6e",
                     "vn-uuid": VN, "vmi-uuid": VMI1, "vm-id": "k8s-1", "vm-ifname": "eth0",
                     "vm-namespace": "/var/run/netns/pod-a"});
    assert_eq!(
        r.call("POST", "/vm", &sub.to_string()).await,
        (StatusCode::OK, json!({}))
    );
    assert!(r._dir.path().join(format!("ports/vm/{vm}/{VMI1}")).exists());
    // ...and polls for its address: MAC and address from the config.
    let (st, v) = r.call("GET", &format!("/vm/{vm}"), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v[0]["mac-address"], json!(mac));
    assert_eq!(v[0]["ip-address"], "11.0.0.252");
    assert_eq!(v[0]["gateway"], "11.0.0.254");
    let snap = r.cfg.snapshot().unwrap();
    let eff = r.ports.effective(&snap);
    assert_eq!(
        eff[&VMI1.parse::<Uuid>().unwrap()].system_name,
        "tap93c2c386-6e"
    );
    // Bad bodies change nothing.
    r.refused(400, "POST", "/vm", &json!([sub]).to_string())
        .await;
    r.refused(400, "POST", "/vm", "").await;
    r.refused(
        400,
        "POST",
        "/vm",
        &with(sub.clone(), "host-ifname", json!("tap\t1")),
    )
    .await;
    r.refused(
        400,
        "POST",
        "/vm",
        &with(sub.clone(), "vmi-uuid", json!("x")),
    )
    .await;
    // A /port of the same VMI conflicts.
    let other = with(sub.clone(), "vmi-uuid", json!(VMI2));
    assert_eq!(r.call("POST", "/port", FIXTURES[1]).await.0, StatusCode::OK);
    r.refused(409, "POST", "/vm", &other).await;
    // Delete the VM's subscriptions.
    assert_eq!(
        r.call("DELETE", &format!("/vm/{vm}"), "").await,
        (StatusCode::OK, json!({}))
    );
    assert!(!r._dir.path().join(format!("ports/vm/{vm}")).exists());
    assert!(r.ports.vm_ports().is_empty());
    // Restart: subscriptions survive.
    assert_eq!(
        r.call("POST", "/vm", &sub.to_string()).await.0,
        StatusCode::OK
    );
    let again = PortStore::open(&r._dir.path().join("ports")).unwrap();
    assert_eq!(again.vm_ports().len(), 1);
}

/// A VLAN sub-interface port (upstream's `rx-vlan-id`/`tx-vlan-id`): the
/// untagged port of its `system-name` is its parent.
#[tokio::test]
async fn vlan_sub_interface_ports() {
    let r = Rig::new(Duration::from_secs(60));
    const SUB: &str = "0b6e3c1e-5d8f-4a8e-9c1b-7d1e6f0a0a64";
    let sub = |id: &str, vlan: i64| {
        let mut v: Value = fixture(1);
        v["id"] = json!(id);
        v["system-name"] = json!("tap93c2c386-6e");
        v["mac-address"] = json!("02:00:00:00:01:64");
        v["ip-address"] = json!("11.0.0.100");
        v["rx-vlan-id"] = json!(vlan);
        v["tx-vlan-id"] = json!(vlan);
        v.to_string()
    };
    // No parent yet: 404, nothing stored.
    let (st, v) = r.call("POST", "/port", &sub(SUB, 100)).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("parent"), "{v}");
    assert!(r.ports.all().is_empty());
    // Parent and sub-interface in one array: accepted.
    let both = format!("[{}, {}]", fixture(0), sub(SUB, 100));
    let (st, v) = r.call("POST", "/port", &both).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(r.ports.all().len(), 2);
    // Re-announced unchanged: fine. A second port on VLAN 100: 409.
    assert_eq!(
        r.call("POST", "/port", &sub(SUB, 100)).await.0,
        StatusCode::OK
    );
    let other = "0b6e3c1e-5d8f-4a8e-9c1b-7d1e6f0a0a65";
    let (st, v) = r.call("POST", "/port", &sub(other, 100)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("VLAN 100"), "{v}");
    // Another VLAN of the same parent is another port.
    assert_eq!(
        r.call("POST", "/port", &sub(other, 200)).await.0,
        StatusCode::OK
    );
    // The untagged interface is still taken by the parent.
    let mut v2: Value = fixture(1);
    v2["system-name"] = json!("tap93c2c386-6e");
    assert_eq!(
        r.call("POST", "/port", &v2.to_string()).await.0,
        StatusCode::CONFLICT
    );
    // The port file keeps the ids as posted.
    let stored = r.ports.all();
    let s = stored.get(&Uuid::parse_str(SUB).unwrap()).unwrap();
    assert_eq!((s.rx_vlan_id, s.tx_vlan_id), (100, 100));
    assert_eq!(s.vif_name(), "tap93c2c386-6e.100");
    // Deletes are idempotent, the parent's included.
    for id in [SUB, SUB, VMI1, other, VMI1] {
        assert_eq!(
            r.call("DELETE", &format!("/port/{id}"), "").await.0,
            StatusCode::OK
        );
    }
    assert!(r.ports.all().is_empty());
}
