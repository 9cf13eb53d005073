//! Persistence, the agent-facing Store API, a real TCP server, and scale.

mod common;

use common::{uuid, T};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vnc_api::{router, Store};

#[tokio::test]
async fn nothing_lost_across_reopen() {
    let t = T::new();
    t.project("p").await;
    let vn = t.vn("p", "net", "10.5.0.0", 24).await;
    let vmi = t.vmi("p", "port", &uuid(&vn)).await;
    let ip = t.iip(&uuid(&vn), &uuid(&vmi), None).await;
    let pol = t
        .post(
            "network-policy",
            json!({"fq_name": ["default-domain", "p", "pol"],
            "network_policy_entries": {"policy_rule": [{"direction": "<>", "protocol": "any",
                "action_list": {"simple_action": "pass"}}]}}),
        )
        .await;
    t.ok("POST", "/ref-update", Some(json!({"operation": "ADD", "type": "virtual-network", "uuid": uuid(&vn),
        "ref-type": "network-policy", "ref-uuid": uuid(&pol), "attr": {"sequence": {"major": 0, "minor": 0}}}))).await;
    let gone = t.vmi("p", "gone", &uuid(&vn)).await;
    t.ok(
        "DELETE",
        &format!("/virtual-machine-interface/{}", uuid(&gone)),
        None,
    )
    .await;
    let before = t.store.snapshot().unwrap();
    let get_before = t.get("virtual-network", &uuid(&vn)).await;

    let t = t.reopen();
    let after = t.store.snapshot().unwrap();
    assert_eq!(before, after);
    assert_eq!(t.get("virtual-network", &uuid(&vn)).await, get_before);
    assert!(after
        .get("virtual-machine-interface", &uuid(&gone).parse().unwrap())
        .is_none());
    // Indices were rebuilt: uniqueness and allocation still hold.
    let body = json!({"instance-ip": {"fq_name": ["x"], "virtual_network_refs": [{"uuid": uuid(&vn)}],
        "instance_ip_address": ip["instance_ip_address"]}});
    t.fails(409, "POST", "/instance-ips", &body.to_string())
        .await;
    let ip2 = t.iip(&uuid(&vn), &uuid(&vmi), None).await;
    assert_ne!(ip2["instance_ip_address"], ip["instance_ip_address"]);
    let vn2 = t.vn("p", "net2", "10.6.0.0", 24).await;
    assert_ne!(
        vn2["virtual_network_network_id"],
        vn["virtual_network_network_id"]
    );
    t.fails(
        409,
        "DELETE",
        &format!("/virtual-network/{}", uuid(&vn)),
        "",
    )
    .await;
    assert_eq!(t.store.snapshot().unwrap().revision, after.revision + 2);
}

#[tokio::test]
async fn store_api_for_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    // A state dir that does not exist yet is created.
    let path = dir.path().join("state").join("config.redb");
    let store = Store::open(&path).unwrap();
    let p = store
        .create("project", json!({"fq_name": ["default-domain", "k8s"]}))
        .unwrap();
    assert_eq!(p["parent_type"], "domain");
    let vn = store
        .create("virtual-network", json!({"parent_uuid": p["uuid"], "name": "pods",
            "fq_name": ["default-domain", "k8s", "pods"],
            "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
            "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "10.32.0.0", "ip_prefix_len": 12}}]}}]}))
        .unwrap();
    assert_eq!(vn["fq_name"], json!(["default-domain", "k8s", "pods"]));
    let vn_id: uuid::Uuid = vn["uuid"].as_str().unwrap().parse().unwrap();
    let snap = store.snapshot().unwrap();
    let v = snap.get("virtual-network", &vn_id).unwrap();
    assert_eq!(
        v["network_ipam_refs"][0]["uuid"].as_str().map(|s| s.len()),
        Some(36)
    );
    assert_eq!(snap.iter("virtual-network").count(), 1);
    assert_eq!(snap.iter("no-such-type").count(), 0);
    let fq: Vec<String> = ["default-domain", "k8s", "pods"].map(String::from).to_vec();
    assert_eq!(
        snap.by_fq_name("virtual-network", &fq).map(|(u, _)| *u),
        Some(vn_id)
    );
    assert_eq!(store.fq_name_to_id("virtual-network", &fq).unwrap(), vn_id);
    assert_eq!(
        store.id_to_fq_name(&vn_id).unwrap(),
        ("virtual-network", fq.clone())
    );
    // A snapshot is a stable view while the store moves on.
    store
        .update("virtual-network", &vn_id, json!({"display_name": "Pods"}))
        .unwrap();
    assert!(
        snap.get("virtual-network", &vn_id)
            .unwrap()
            .get("display_name")
            == Some(&json!("pods"))
    );
    let snap2 = store.snapshot().unwrap();
    assert_eq!(snap2.revision, snap.revision + 1);
    assert_eq!(
        snap2.get("virtual-network", &vn_id).unwrap()["display_name"],
        "Pods"
    );
    store.delete("virtual-network", &vn_id).unwrap();
    assert!(store.delete("virtual-network", &vn_id).is_err());
    assert!(store.create("bogus", json!({})).is_err());
}

/// A real server on a loopback socket, spoken to with raw HTTP/1.1.
#[tokio::test]
async fn serves_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("config.redb")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(Arc::clone(&store)))
            .await
            .unwrap();
    });
    async fn http(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
    let (st, b) = http(
        addr,
        "POST",
        "/fqname-to-id",
        r#"{"type": "project", "fq_name": ["default-domain", "default-project"]}"#,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let pu = serde_json::from_str::<Value>(&b).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = http(
        addr,
        "POST",
        "/virtual-networks",
        &json!({"virtual-network": {"parent_type": "project",
        "parent_uuid": pu, "fq_name": ["default-domain", "default-project", "tcp-net"]}})
        .to_string(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        v["virtual-network"]["href"],
        json!(format!(
            "http://{addr}/virtual-network/{}",
            uuid(&v["virtual-network"])
        ))
    );
    let (st, b) = http(addr, "GET", &format!("/project/{pu}"), "").await;
    assert_eq!(st, 200);
    assert!(b.contains("tcp-net"));
    let (st, b) = http(addr, "POST", "/virtual-networks", "{oops").await;
    assert_eq!(st, 400);
    assert!(b.contains("malformed JSON"), "{b}");
    server.abort();
}

/// The `vnc-client` crate (what the Docker driver uses) against this server.
#[tokio::test]
async fn vnc_client_interop() {
    use vnc_client::{Client, ListQuery, RefOp};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("config.redb")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router(store)).await.unwrap();
    });
    let c = Client::new(&format!("http://{addr}"), None).unwrap();
    let fq = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let p = c
        .fqname_to_id("project", &fq(&["default-domain", "default-project"]))
        .await
        .unwrap()
        .unwrap();
    assert!(c
        .fqname_to_id("project", &fq(&["default-domain", "nope"]))
        .await
        .unwrap()
        .is_none());
    let vn = c
        .create("virtual-network", json!({"parent_type": "project", "fq_name": ["default-domain", "default-project", "docker-net"],
            "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "172.30.0.0", "ip_prefix_len": 24}}]}}]}))
        .await
        .unwrap();
    let vn_id = vnc_client::uuid_of(&vn).unwrap();
    let vmi = c
        .create(
            "virtual-machine-interface",
            json!({"parent_type": "project",
            "fq_name": ["default-domain", "default-project", "ep1"],
            "virtual_network_refs": [{"uuid": vn_id.to_string()}]}),
        )
        .await
        .unwrap();
    let vmi_id = vnc_client::uuid_of(&vmi).unwrap();
    let ip = c
        .create(
            "instance-ip",
            json!({"fq_name": ["ep1-v4"], "virtual_network_refs": [{"uuid": vn_id.to_string()}],
            "virtual_machine_interface_refs": [{"uuid": vmi_id.to_string()}]}),
        )
        .await
        .unwrap();
    assert_eq!(ip["instance_ip_address"], "172.30.0.252");
    let listed = c
        .list(
            "virtual-network",
            &ListQuery {
                parent: Some(p),
                detail: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["uuid"], json!(vn_id.to_string()));
    let ips = c
        .list(
            "instance-ip",
            &ListQuery {
                back_ref: Some(vmi_id),
                detail: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ips[0]["instance_ip_address"], "172.30.0.252");
    let sg = c
        .fqname_to_id(
            "security-group",
            &fq(&["default-domain", "default-project", "default"]),
        )
        .await
        .unwrap()
        .unwrap();
    c.ref_update(
        "virtual-machine-interface",
        &vmi_id,
        "security-group",
        &sg,
        RefOp::Add,
        None,
    )
    .await
    .unwrap();
    let got = c.read("virtual-machine-interface", &vmi_id).await.unwrap();
    assert_eq!(got["security_group_refs"][0]["uuid"], json!(sg.to_string()));
    c.update(
        "virtual-machine-interface",
        &vmi_id,
        json!({"display_name": "ep one"}),
    )
    .await
    .unwrap();
    let e = c.delete("virtual-network", &vn_id).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(409));
    c.delete("instance-ip", &vnc_client::uuid_of(&ip).unwrap())
        .await
        .unwrap();
    c.delete("virtual-machine-interface", &vmi_id)
        .await
        .unwrap();
    c.delete("virtual-network", &vn_id).await.unwrap();
    assert!(c
        .read_opt("virtual-network", &vn_id)
        .await
        .unwrap()
        .is_none());
    server.abort();
}

/// Thousands of ports (VMI + instance-ip each) through the REST layer:
/// unique MACs and addresses, indexed listing, reopen. 2 500 by default to
/// keep the suite short (a debug build does about 400 ports/s here);
/// `VNC_SCALE_PORTS=10000` for the full count, and the agent's `scale`
/// benchmark runs 10 000 through the release build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_ports() {
    let n: usize = std::env::var("VNC_SCALE_PORTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_500);
    let t = T::new();
    t.project("scale").await;
    let vn = t.vn("scale", "big", "10.128.0.0", 16).await;
    let vn_id = uuid(&vn);
    let start = Instant::now();
    let mut lap = Instant::now();
    let mut macs = HashSet::new();
    let mut ips = HashSet::new();
    for i in 0..n {
        let vmi = t.vmi("scale", &format!("p{i}"), &vn_id).await;
        let ip = t.iip(&vn_id, &uuid(&vmi), None).await;
        assert!(macs.insert(
            vmi["virtual_machine_interface_mac_addresses"]["mac_address"][0]
                .as_str()
                .unwrap()
                .to_string()
        ));
        assert!(ips.insert(ip["instance_ip_address"].as_str().unwrap().to_string()));
        if (i + 1) % 2500 == 0 {
            eprintln!("ports {}..{}: {:?}", i + 1 - 2500, i + 1, lap.elapsed());
            lap = Instant::now();
        }
    }
    let total = start.elapsed();
    eprintln!("{n} VMIs + {n} instance-ips: {total:?}");
    let snap = t.store.snapshot().unwrap();
    assert_eq!(snap.len("instance-ip"), n);
    // Listing by back-ref is indexed.
    let l = t
        .ok(
            "GET",
            &format!("/instance-ips?back_ref_id={vn_id}&count=true"),
            None,
        )
        .await;
    assert_eq!(l["instance-ips"]["count"], n);
    // Reopen loads it all back.
    let start = Instant::now();
    let t = t.reopen();
    eprintln!("reopen with {} objects: {:?}", 2 * n, start.elapsed());
    assert_eq!(t.store.snapshot().unwrap(), snap);
}
