//! Every plugin call in-process (axum oneshot) against the real config API
//! and the real agent port API on loopback: exact JSON shapes, errors,
//! rollback, restart, reconcile, bad input.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use docker_driver::backend::MemoryBackend;
use docker_driver::{Config, Driver};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use vnc_client::Client;

struct Rig {
    vnc: Vnc,
    ports: Ports,
    vnc_url: String,
    port_url: String,
    driver: Arc<Driver<MemoryBackend>>,
    app: axum::Router,
}

async fn rig() -> Rig {
    let vnc = Vnc::start().await;
    let ports = Ports::start(&vnc).await;
    let vnc_url = vnc.url.clone();
    let port_url = ports.url.clone();
    let c = vnc.client();
    seed_vn(
        &c,
        "demo",
        "blue",
        &[("10.1.0.0", 24, "10.1.0.1"), ("10.9.0.0", 24, "10.9.0.1")],
    )
    .await;
    seed_vn(&c, "demo", "red", &[("10.2.0.0", 24, "10.2.0.1")]).await;
    seed_vn(&c, "other", "red", &[("10.2.0.0", 24, "10.2.0.1")]).await;
    let (driver, app) = driver(&vnc_url, &port_url, MemoryBackend::default());
    Rig {
        vnc,
        ports,
        vnc_url,
        port_url,
        driver,
        app,
    }
}

fn driver(vnc: &str, port: &str, b: MemoryBackend) -> (Arc<Driver<MemoryBackend>>, axum::Router) {
    let d = Arc::new(Driver::new(
        Client::new(vnc, None).unwrap(),
        Client::new(port, None).unwrap(),
        b,
        Config {
            host: "h1".into(),
            ..Config::default()
        },
    ));
    (Arc::clone(&d), docker_driver::app(d))
}

async fn call_raw(app: &axum::Router, path: &str, body: &str) -> (StatusCode, String, Value) {
    let req = Request::post(format!("/{path}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let st = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let b = r.into_body().collect().await.unwrap().to_bytes();
    (st, ct, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn call(app: &axum::Router, path: &str, body: Value) -> Value {
    let (st, ct, v) = call_raw(app, path, &body.to_string()).await;
    assert_eq!(st, StatusCode::OK, "{path}: {v}");
    assert_eq!(ct, "application/vnd.docker.plugins.v1.x+json");
    v
}

async fn err(app: &axum::Router, path: &str, body: Value) -> String {
    let v = call(app, path, body).await;
    v["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: expected an error, got {v}"))
        .to_string()
}

fn net_opts(tenant: Option<&str>, network: Option<&str>) -> Value {
    let mut g = serde_json::Map::new();
    if let Some(t) = tenant {
        g.insert("tenant".into(), json!(t));
    }
    if let Some(n) = network {
        g.insert("network".into(), json!(n));
    }
    json!({"com.docker.network.enable_ipv6": false, "com.docker.network.generic": g})
}

fn create_net(net: &str, tenant: Option<&str>, network: Option<&str>, pool: &str) -> Value {
    json!({"NetworkID": id(net), "Options": net_opts(tenant, network),
           "IPv4Data": [{"AddressSpace": "ContrailLocal", "Pool": pool, "Gateway": "", "AuxAddresses": null}],
           "IPv6Data": []})
}

fn ep(net: &str, e: &str) -> Value {
    json!({"NetworkID": id(net), "EndpointID": id(e)})
}

#[tokio::test]
async fn handshake_and_static_replies() {
    let r = rig().await;
    let a = &r.app;
    assert_eq!(
        call(a, "Plugin.Activate", Value::Null).await,
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    assert_eq!(
        call(a, "NetworkDriver.GetCapabilities", Value::Null).await,
        json!({"Scope": "local", "ConnectivityScope": "local"})
    );
    assert_eq!(
        call(a, "IpamDriver.GetCapabilities", Value::Null).await,
        json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
    );
    assert_eq!(
        call(a, "IpamDriver.GetDefaultAddressSpaces", Value::Null).await,
        json!({"LocalDefaultAddressSpace": "ContrailLocal", "GlobalDefaultAddressSpace": "ContrailGlobal"})
    );
    for c in [
        "Leave",
        "ProgramExternalConnectivity",
        "RevokeExternalConnectivity",
    ] {
        assert_eq!(
            call(a, &format!("NetworkDriver.{c}"), ep("n", "e")).await,
            json!({}),
            "{c}"
        );
    }
    assert_eq!(
        call(
            a,
            "NetworkDriver.FreeNetwork",
            json!({"NetworkID": id("n")})
        )
        .await,
        json!({})
    );
    for c in ["DiscoverNew", "DiscoverDelete"] {
        let b = json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "1.2.3.4"}});
        assert_eq!(call(a, &format!("NetworkDriver.{c}"), b).await, json!({}));
    }
    assert_eq!(
        call(
            a,
            "NetworkDriver.AllocateNetwork",
            json!({"NetworkID": id("n"), "Options": {}})
        )
        .await,
        json!({"Options": {}})
    );
    // Empty body = Go's nil argument, for the handshake calls.
    let (st, _, v) = call_raw(a, "Plugin.Activate", "").await;
    assert_eq!(
        (st, v["Implements"][1].as_str()),
        (StatusCode::OK, Some("IpamDriver"))
    );
    let (st, _, v) = call_raw(a, "NetworkDriver.Frobnicate", "{}").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(v["Err"]
        .as_str()
        .unwrap()
        .contains("NetworkDriver.Frobnicate"));
    let (st, _, v) = call_raw(a, "NetworkDriver.CreateNetwork", "{not json").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["Err"].as_str().unwrap().contains("malformed request"),
        "{v}"
    );
}

/// Issue 16: malformed but well-formed calls get an error and change
/// nothing (config objects, agent ports, host interfaces, annotations).
#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let r = rig().await;
    let a = &r.app;
    call(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("blue"), "10.1.0.0/24"),
    )
    .await;
    let state = |r: &Rig| {
        (
            [
                "virtual-network",
                "virtual-machine",
                "virtual-machine-interface",
                "instance-ip",
            ]
            .map(|t| r.vnc.all(t)),
            r.ports.files(),
            r.driver.backend().specs(),
        )
    };
    let before = state(&r);
    let long = "a".repeat(10_000);
    let bad_ids = [
        "../../x",
        "abc",
        "ép1",
        "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
        &long,
        "",
    ];
    let mut cases: Vec<(String, String, &str)> = Vec::new();
    for bad in bad_ids {
        for call in [
            "NetworkDriver.CreateEndpoint",
            "NetworkDriver.DeleteEndpoint",
            "NetworkDriver.Join",
            "NetworkDriver.Leave",
            "NetworkDriver.EndpointOperInfo",
            "NetworkDriver.ProgramExternalConnectivity",
        ] {
            cases.push((
                call.into(),
                json!({"NetworkID": id("n1"), "EndpointID": bad}).to_string(),
                "EndpointID",
            ));
        }
        cases.push((
            "NetworkDriver.CreateEndpoint".into(),
            json!({"NetworkID": bad, "EndpointID": id("ep1")}).to_string(),
            "NetworkID",
        ));
        cases.push((
            "NetworkDriver.DeleteNetwork".into(),
            json!({"NetworkID": bad}).to_string(),
            "NetworkID",
        ));
        cases.push((
            "NetworkDriver.CreateNetwork".into(),
            create_net("x", Some("demo"), Some("blue"), "10.1.0.0/24")
                .to_string()
                .replace(&id("x"), bad),
            "NetworkID",
        ));
    }
    // An empty body, null, or an array where a request is required.
    for c in [
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.DeleteNetwork",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.DeleteEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.Leave",
        "IpamDriver.RequestPool",
        "IpamDriver.ReleasePool",
        "IpamDriver.RequestAddress",
        "IpamDriver.ReleaseAddress",
    ] {
        for body in ["", " ", "null", "[]", "\"x\"", "7"] {
            cases.push((c.into(), body.into(), "malformed request"));
        }
    }
    // An invalid gateway, pool or auxiliary address.
    let mut gw = create_net("n2", Some("demo"), Some("blue"), "10.1.0.0/24");
    gw["IPv4Data"][0]["Gateway"] = json!("999.1.1.1/24");
    cases.push((
        "NetworkDriver.CreateNetwork".into(),
        gw.to_string(),
        "gateway",
    ));
    let mut gw = create_net("n2", Some("demo"), Some("blue"), "10.1.0.0/24");
    gw["IPv4Data"][0]["Gateway"] = json!("10.7.0.1/24");
    cases.push((
        "NetworkDriver.CreateNetwork".into(),
        gw.to_string(),
        "not inside pool",
    ));
    let mut aux = create_net("n2", Some("demo"), Some("blue"), "10.1.0.0/24");
    aux["IPv4Data"][0]["AuxAddresses"] = json!({"x": "10.1.0.500"});
    cases.push((
        "NetworkDriver.CreateNetwork".into(),
        aux.to_string(),
        "auxiliary",
    ));
    cases.push((
        "NetworkDriver.CreateNetwork".into(),
        create_net("n2", Some("demo"), Some("blue"), "10.1.0.0/33").to_string(),
        "bad pool",
    ));
    cases.push((
        "IpamDriver.ReleasePool".into(),
        json!({"PoolID": "garbage"}).to_string(),
        "unknown pool id",
    ));
    cases.push((
        "IpamDriver.ReleaseAddress".into(),
        json!({"PoolID": "garbage", "Address": "10.1.0.3"}).to_string(),
        "unknown pool id",
    ));
    for (call, body, needle) in &cases {
        let (st, _, v) = call_raw(a, call, body).await;
        assert_eq!(st, StatusCode::OK, "{call} {body}");
        let e = v["Err"]
            .as_str()
            .unwrap_or_else(|| panic!("{call} {body}: accepted: {v}"));
        assert!(
            e.contains(needle),
            "{call} {}: {e}",
            body.chars().take(200).collect::<String>()
        );
        if call.starts_with("IpamDriver.") {
            assert_eq!(v["Error"], v["Err"]);
        }
        assert!(state(&r) == before, "{call} {body} changed state");
    }
}

#[tokio::test]
async fn ipam_pools_and_addresses() {
    let r = rig().await;
    let a = &r.app;
    let blue = r.vnc.by_name("virtual-network", "blue").unwrap();
    let blue_id = blue["uuid"].as_str().unwrap().to_string();
    let opts = json!({"tenant": "demo", "network": "blue"});

    let p = call(a, "IpamDriver.RequestPool", json!({"AddressSpace": "ContrailLocal", "Pool": "", "SubPool": "", "Options": opts, "V6": false})).await;
    assert_eq!(
        p,
        json!({"PoolID": format!("{blue_id}/10.1.0.0/24"), "Pool": "10.1.0.0/24",
                         "Data": {"com.docker.network.gateway": "10.1.0.1/24"}})
    );
    // --subnet selects among the VN's subnets.
    let p2 = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Pool": "10.9.0.0/24", "Options": opts}),
    )
    .await;
    assert_eq!(p2["Pool"], "10.9.0.0/24");
    // --subnet alone finds the VN when only one has it...
    let p3 = call(a, "IpamDriver.RequestPool", json!({"Pool": "10.9.0.0/24"})).await;
    assert_eq!(p3["PoolID"], p2["PoolID"]);
    // ...and says so when several do.
    let e = call(a, "IpamDriver.RequestPool", json!({"Pool": "10.2.0.0/24"})).await;
    let m = e["Error"].as_str().unwrap();
    assert_eq!(e["Err"], e["Error"]);
    assert!(
        m.contains("several")
            && m.contains("default-domain:demo:red")
            && m.contains("default-domain:other:red"),
        "{m}"
    );
    // --subnet 0.0.0.0/32 (upstream's Windows habit): any subnet of the VN.
    let any = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Pool": "0.0.0.0/32", "Options": opts}),
    )
    .await;
    assert_eq!(any, p);
    // No --ipam-opt, no --subnet: an unbound pool (see unbound_pool_*);
    // for IPv6 the VN must be named.
    let u = call(a, "IpamDriver.RequestPool", json!({})).await;
    assert!(
        u["PoolID"].as_str().unwrap().starts_with("unbound/0."),
        "{u}"
    );
    let u2 = call(a, "IpamDriver.RequestPool", json!({"Pool": "0.0.0.0/32"})).await;
    assert!(u2["PoolID"].as_str().unwrap().starts_with("unbound/0."));
    let e = call(a, "IpamDriver.RequestPool", json!({"V6": true})).await;
    assert!(
        e["Error"].as_str().unwrap().contains("--ipam-opt tenant="),
        "{e}"
    );
    let e = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Options": {"tenant": "demo"}}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("\"network\""), "{e}");
    let e = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Options": {"network": "blue"}}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("\"tenant\""), "{e}");
    let e = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Options": {"tenant": "demo", "network": "nope"}}),
    )
    .await;
    assert!(
        e["Error"]
            .as_str()
            .unwrap()
            .contains("default-domain:demo:nope not found"),
        "{e}"
    );
    let e = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Pool": "10.7.0.0/24", "Options": opts}),
    )
    .await;
    let m = e["Error"].as_str().unwrap();
    assert!(
        m.contains("10.7.0.0/24 is not a subnet of virtual network default-domain:demo:blue"),
        "{m}"
    );
    let e = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Options": opts, "V6": true}),
    )
    .await;
    assert!(
        e["Error"].as_str().unwrap().contains("no IPv6 subnet"),
        "{e}"
    );

    let pid = p["PoolID"].clone();
    let gw = call(a, "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}})).await;
    assert_eq!(gw, json!({"Address": "10.1.0.1/24"}));
    let e = call(a, "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.9", "Options": {"RequestAddressType": "com.docker.network.gateway"}})).await;
    assert!(e["Error"].as_str().unwrap().contains("gateway"), "{e}");
    // The config API allocates: .1 gateway, .2 DNS, then upwards (the VN
    // has addr_from_start), and keeps each address as a reservation.
    let x = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": ""}),
    )
    .await;
    assert_eq!(x, json!({"Address": "10.1.0.3/24"}));
    let reservations = || {
        r.vnc
            .all("instance-ip")
            .into_iter()
            .filter(|i| i.to_string().contains("docker-reservation"))
            .map(|i| i["instance_ip_address"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(reservations(), ["10.1.0.3"]);
    let e = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.2"}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("reserved"), "{e}");
    let e = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.3"}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("already used"), "{e}");
    let y = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(y["Address"], "10.1.0.4/24");
    assert_eq!(
        call(
            a,
            "IpamDriver.ReleaseAddress",
            json!({"PoolID": pid, "Address": "10.1.0.3"})
        )
        .await,
        json!({})
    );
    assert_eq!(reservations(), ["10.1.0.4"]);
    // The allocator goes on after its last address (upstream's hint), and
    // a released address is free again for whoever asks for it.
    let z = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(z["Address"], "10.1.0.5/24");
    let back = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.3"}),
    )
    .await;
    assert_eq!(back["Address"], "10.1.0.3/24");
    let w = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.77"}),
    )
    .await;
    assert_eq!(w["Address"], "10.1.0.77/24");
    let e = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.3.0.5"}),
    )
    .await;
    assert!(
        e["Error"]
            .as_str()
            .unwrap()
            .contains("10.3.0.5 is not in subnet 10.1.0.0/24"),
        "{e}"
    );
    let e = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.255"}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("broadcast"), "{e}");
    let e = call(a, "IpamDriver.RequestAddress", json!({"PoolID": "garbage"})).await;
    assert!(
        e["Error"].as_str().unwrap().contains("unknown pool id"),
        "{e}"
    );
    assert_eq!(
        call(a, "IpamDriver.ReleasePool", json!({"PoolID": pid})).await,
        json!({})
    );
    // One source of addresses: the driver never listed the instance-ips to
    // pick one itself (only filtered look-ups of one address).
    let listed: Vec<String> = r
        .vnc
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("GET /instance-ips") && !l.contains("filters="))
        .cloned()
        .collect();
    assert!(listed.is_empty(), "{listed:?}");
}

/// A VN with upstream's defaults (no addr_from_start): the gateway is the
/// last usable address, containers are given addresses from the top down,
/// and docker sees the VN's own gateway.
#[tokio::test]
async fn upstream_default_subnet_through_docker() {
    let r = rig().await;
    let a = &r.app;
    let c = r.vnc.client();
    let proj = c
        .fqname_to_id("project", &["default-domain".into(), "demo".into()])
        .await
        .unwrap()
        .unwrap();
    c.create(
        "virtual-network",
        json!({"fq_name": ["default-domain", "demo", "up"], "parent_type": "project",
               "parent_uuid": proj.to_string(),
               "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                   "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "10.5.0.0", "ip_prefix_len": 24}}]}}]}),
    )
    .await
    .unwrap();
    let p = call(
        a,
        "IpamDriver.RequestPool",
        json!({"Options": {"tenant": "demo", "network": "up"}}),
    )
    .await;
    assert_eq!(p["Data"]["com.docker.network.gateway"], "10.5.0.254/24");
    let x = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": p["PoolID"]}),
    )
    .await;
    assert_eq!(x["Address"], "10.5.0.252/24");
    call(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("u1", Some("demo"), Some("up"), "10.5.0.0/24"),
    )
    .await;
    endpoint(a, "u1", "e1", "10.5.0.252/24").await;
    let j = call(a, "NetworkDriver.Join", ep("u1", "e1")).await;
    assert_eq!(j["Gateway"], "10.5.0.254");
    // The reservation was claimed by the endpoint: one instance-ip.
    let iips = r.vnc.all("instance-ip");
    assert_eq!(iips.len(), 1);
    assert!(!iips[0].to_string().contains("docker-reservation"));
    assert!(iips[0]["virtual_machine_interface_refs"][0]["uuid"].is_string());
    call(a, "NetworkDriver.DeleteEndpoint", ep("u1", "e1")).await;
    call(
        a,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": p["PoolID"], "Address": "10.5.0.252"}),
    )
    .await;
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
}

#[tokio::test]
async fn network_options_and_errors() {
    let r = rig().await;
    let a = &r.app;
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", None, Some("blue"), "0.0.0.0/0"),
    )
    .await;
    assert!(e.contains("option \"tenant\" is required"), "{e}");
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), None, "0.0.0.0/0"),
    )
    .await;
    assert!(e.contains("option \"network\" is required"), "{e}");
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("green"), "0.0.0.0/0"),
    )
    .await;
    assert!(
        e.contains("virtual network default-domain:demo:green not found"),
        "{e}"
    );
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("blue"), "172.17.0.0/16"),
    )
    .await;
    assert!(
        e.contains("172.17.0.0/16 is not a subnet of virtual network default-domain:demo:blue"),
        "{e}"
    );
    // --subnet 0.0.0.0/32 through another IPAM (upstream's `windows`):
    // any subnet of the VN named by --opt; without --opt it names none.
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n3", None, None, "0.0.0.0/32"),
    )
    .await;
    assert!(e.contains("option \"tenant\" is required"), "{e}");
    assert_eq!(
        call(
            a,
            "NetworkDriver.CreateNetwork",
            create_net("n3", Some("demo"), Some("red"), "0.0.0.0/32")
        )
        .await,
        json!({})
    );
    let red = r
        .vnc
        .all("virtual-network")
        .into_iter()
        .find(|v| v["fq_name"] == json!(["default-domain", "demo", "red"]))
        .unwrap();
    assert!(red
        .to_string()
        .contains(&format!("docker-network:{}", id("n3"))));
    // The driver allocates in the VN (docker's windows IPAM gives none).
    let c = endpoint(a, "n3", "e3", "").await;
    assert_eq!(c["Interface"]["Address"], "10.2.0.3/24");
    call(a, "NetworkDriver.DeleteEndpoint", ep("n3", "e3")).await;
    // With the Contrail IPAM the pool names the VN; a missing --opt is fine
    // then, a contradicting one is not.
    assert_eq!(
        call(
            a,
            "NetworkDriver.CreateNetwork",
            create_net("n1", None, None, "10.9.0.0/24")
        )
        .await,
        json!({})
    );
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n2", Some("demo"), Some("red"), "10.9.0.0/24"),
    )
    .await;
    assert!(
        e.contains("not a subnet") || e.contains("not to network"),
        "{e}"
    );
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n2", None, Some("blue"), "10.2.0.0/24"),
    )
    .await;
    assert!(e.contains("several"), "{e}");
    let n2 = format!("docker-network:{}", id("n2"));
    assert!(r
        .vnc
        .all("virtual-network")
        .iter()
        .all(|v| !v.to_string().contains(&n2)));
    let blue = || r.vnc.by_name("virtual-network", "blue").unwrap();
    let n1 = format!("docker-network:{}", id("n1"));
    assert!(blue().to_string().contains(&n1));
    let del = json!({"NetworkID": id("n1")});
    assert_eq!(
        call(a, "NetworkDriver.DeleteNetwork", del.clone()).await,
        json!({})
    );
    assert!(!blue().to_string().contains(&n1));
    // Idempotent.
    assert_eq!(call(a, "NetworkDriver.DeleteNetwork", del).await, json!({}));
}

async fn endpoint(a: &axum::Router, net: &str, e: &str, addr: &str) -> Value {
    call(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": id(net), "EndpointID": id(e),
               "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""}, "Options": {}}),
    )
    .await
}

#[tokio::test]
async fn endpoint_lifecycle() {
    let r = rig().await;
    let a = &r.app;
    call(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("blue"), "10.1.0.0/24"),
    )
    .await;
    call(
        a,
        "NetworkDriver.CreateNetwork",
        create_net("n2", Some("demo"), Some("red"), "0.0.0.0/0"),
    )
    .await;

    // Docker's IPAM gave the address: the reply adds only the MAC.
    let c = endpoint(a, "n1", "ep1", "10.1.0.5/24").await;
    let mac = c["Interface"]["MacAddress"].as_str().unwrap().to_string();
    assert_eq!(c, json!({"Interface": {"MacAddress": mac}}));
    assert!(mac.starts_with("02:"));
    let vmi = r.vnc.all("virtual-machine-interface").pop().unwrap();
    let vmi_id = vmi["uuid"].as_str().unwrap().to_string();
    assert_eq!(vmi["fq_name"], json!(["default-domain", "demo", id("ep1")]));
    assert_eq!(
        vmi["virtual_network_refs"][0]["to"],
        json!(["default-domain", "demo", "blue"])
    );
    assert_eq!(
        vmi["security_group_refs"][0]["to"],
        json!(["default-domain", "demo", "default"])
    );
    assert_eq!(
        vmi["virtual_machine_interface_mac_addresses"]["mac_address"],
        json!([mac])
    );
    let iip = r.vnc.all("instance-ip").pop().unwrap();
    assert_eq!(iip["instance_ip_address"], "10.1.0.5");
    assert_eq!(iip["fq_name"], json!([iip["uuid"]]));
    assert_eq!(
        iip["virtual_machine_interface_refs"][0]["uuid"],
        json!(vmi_id)
    );
    let vm = r.vnc.all("virtual-machine").pop().unwrap();
    assert_eq!(vm["fq_name"], json!([id("ep1")]));
    let port = r.ports.files()[0].clone();
    let mut keys: Vec<&str> = port
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "author",
            "display-name",
            "id",
            "instance-id",
            "ip-address",
            "ip6-address",
            "mac-address",
            "rx-vlan-id",
            "system-name",
            "time",
            "tx-vlan-id",
            "type",
            "vhostuser-mode",
            "vm-project-id",
            "vn-id"
        ]
    );
    assert_eq!(port["id"], json!(vmi_id));
    assert_eq!(port["instance-id"], vm["uuid"]);
    assert_eq!(port["ip-address"], "10.1.0.5");
    assert_eq!(port["ip6-address"], "None");
    assert_eq!(port["mac-address"], json!(mac));
    assert_eq!(port["system-name"], json!(format!("tap{}", &vmi_id[..11])));
    assert_eq!(
        (port["type"].clone(), port["rx-vlan-id"].clone()),
        (json!(0), json!(-1))
    );

    let j = call(a, "NetworkDriver.Join", json!({"NetworkID": id("n1"), "EndpointID": id("ep1"), "SandboxKey": "/var/run/docker/netns/x", "Options": {}})).await;
    assert_eq!(
        j,
        json!({"InterfaceName": {"SrcName": format!("ctn{}", &vmi_id[..11]), "DstPrefix": "eth"},
                         "Gateway": "10.1.0.1"})
    );
    let o = call(a, "NetworkDriver.EndpointOperInfo", ep("n1", "ep1")).await;
    assert_eq!(
        o,
        json!({"Value": {"com.docker.network.endpoint.macaddress": mac}})
    );

    // Null IPAM: the config API allocates and the reply carries the
    // address; a second network of the same container works alongside; a
    // given MAC is kept.
    let c2 = call(a, "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": id("n2"), "EndpointID": id("ep2"), "Interface": {"MacAddress": "02:00:00:00:00:99"}})).await;
    // (.2 is the subnet's DNS server address.)
    assert_eq!(c2, json!({"Interface": {"Address": "10.2.0.3/24"}}));
    let c3 = endpoint(a, "n2", "ep3", "").await;
    assert_eq!(c3["Interface"]["Address"], "10.2.0.4/24");
    assert_eq!(r.driver.backend().specs().len(), 3);
    let e = err(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": id("n2"), "EndpointID": id("ep4"),
        "Interface": {"Address": "10.1.0.9/24"}}),
    )
    .await;
    assert!(
        e.contains("10.1.0.9 is not in any subnet of virtual network default-domain:demo:red"),
        "{e}"
    );
    let e = err(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": id("n2"), "EndpointID": id("ep4"),
        "Interface": {"Address": "10.2.0.3/24"}}),
    )
    .await;
    assert!(e.contains("already used"), "{e}");
    let e = err(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": id("nx"), "EndpointID": id("ep4")}),
    )
    .await;
    assert!(
        e.contains(&format!("network {} is not known", id("nx"))),
        "{e}"
    );
    assert_eq!(leftovers(&r.vnc).len(), 9);

    for (n, e) in [("n1", "ep1"), ("n2", "ep2"), ("n2", "ep3")] {
        let b = ep(n, e);
        assert_eq!(call(a, "NetworkDriver.Leave", b.clone()).await, json!({}));
        assert_eq!(
            call(a, "NetworkDriver.DeleteEndpoint", b.clone()).await,
            json!({})
        );
        assert_eq!(call(a, "NetworkDriver.DeleteEndpoint", b).await, json!({}));
    }
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
    assert!(r.ports.files().is_empty());
    assert!(r.driver.backend().specs().is_empty());
}

#[tokio::test]
async fn failures_roll_back() {
    let r = rig().await;
    call(
        &r.app,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("blue"), "10.1.0.0/24"),
    )
    .await;
    r.driver
        .backend()
        .fail_create
        .store(true, Ordering::Relaxed);
    let e = err(&r.app, "NetworkDriver.CreateEndpoint", ep("n1", "ep1")).await;
    assert!(e.contains("injected failure"), "{e}");
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
    r.driver
        .backend()
        .fail_create
        .store(false, Ordering::Relaxed);

    // The agent is down: everything made before the port is removed.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (d2, a2) = driver(&r.vnc_url, &dead, MemoryBackend::default());
    let e = err(&a2, "NetworkDriver.CreateEndpoint", ep("n1", "ep1")).await;
    assert!(e.contains("vrouter agent port API"), "{e}");
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
    assert!(d2.backend().specs().is_empty());
    assert!(r.ports.files().is_empty());
}

#[tokio::test]
async fn restart_and_reconcile() {
    let r = rig().await;
    call(
        &r.app,
        "NetworkDriver.CreateNetwork",
        create_net("n1", Some("demo"), Some("blue"), "10.1.0.0/24"),
    )
    .await;
    endpoint(&r.app, "n1", "ep1", "10.1.0.5/24").await;
    endpoint(&r.app, "n1", "ep2", "10.1.0.6/24").await;
    endpoint(&r.app, "n1", "ep3", "10.1.0.7/24").await;
    // "kill -9": a new driver with empty caches over the same host state.
    let specs = r.driver.backend().specs();
    let b = MemoryBackend::default();
    for s in &specs {
        b.endpoints.lock().unwrap().insert(s.vmi, s.clone());
    }
    let (d2, a2) = driver(&r.vnc_url, &r.port_url, b);
    // The network is found again through the VN's record of it.
    endpoint(&a2, "n1", "ep4", "").await;
    call(&a2, "NetworkDriver.DeleteEndpoint", ep("n1", "ep1")).await;
    // ep2's container died while the driver was down: its interface is gone.
    let ep2_vmi = r
        .vnc
        .all("virtual-machine-interface")
        .into_iter()
        .find(|v| v["fq_name"][2] == json!(id("ep2")))
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    d2.backend().endpoints.lock().unwrap().remove(&ep2_vmi);
    // A veth without config (VMI deleted behind our back), a stray VM, a
    // fresh address reservation (docker between RequestAddress and
    // CreateEndpoint: kept) and a stale one (docker died there: removed).
    let stray = uuid::Uuid::new_v4();
    d2.backend()
        .endpoints
        .lock()
        .unwrap()
        .insert(stray, specs[0].clone());
    let c = Client::new(&r.vnc_url, None).unwrap();
    c.create(
        "virtual-machine",
        json!({"fq_name": [id("ep9")],
        "annotations": {"key_value_pair": [{"key": "owner", "value": "contrail-docker-driver"},
            {"key": "host", "value": "h1"}, {"key": "docker-endpoint", "value": id("ep9")}]}}),
    )
    .await
    .unwrap();
    let pool = call(
        &a2,
        "IpamDriver.RequestPool",
        json!({"Options": {"tenant": "demo", "network": "blue"}}),
    )
    .await;
    let fresh = call(
        &a2,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool["PoolID"]}),
    )
    .await;
    let stale = call(
        &a2,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pool["PoolID"]}),
    )
    .await;
    let stale_addr = stale["Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let stale_iip = r
        .vnc
        .all("instance-ip")
        .into_iter()
        .find(|i| i["instance_ip_address"] == stale_addr)
        .unwrap();
    let mut kv = stale_iip["annotations"]["key_value_pair"].clone();
    for x in kv.as_array_mut().unwrap() {
        if x["key"] == "docker-reservation" {
            x["value"] = json!("1000");
        }
    }
    c.update(
        "instance-ip",
        &stale_iip["uuid"].as_str().unwrap().parse().unwrap(),
        json!({"annotations": {"key_value_pair": kv}}),
    )
    .await
    .unwrap();
    let rep = d2.reconcile().await.unwrap();
    assert_eq!(rep.endpoints, vec![ep2_vmi]);
    assert_eq!(rep.host_interfaces, vec![stray]);
    assert_eq!(rep.objects, 3, "{rep:?}"); // ep2's VM, the stray VM, the stale reservation
    let names: Vec<String> = r
        .vnc
        .all("virtual-machine")
        .iter()
        .map(|v| v["fq_name"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&id("ep3")) && names.contains(&id("ep4")));
    assert_eq!(r.ports.files().len(), 2);
    let addrs: Vec<Value> = r
        .vnc
        .all("instance-ip")
        .iter()
        .map(|i| i["instance_ip_address"].clone())
        .collect();
    let fresh_addr = fresh["Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(addrs.contains(&json!(fresh_addr)), "{addrs:?}");
    assert!(!addrs.contains(&json!(stale_addr)), "{addrs:?}");
    assert_eq!(d2.reconcile().await.unwrap(), Default::default());
    call(
        &a2,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pool["PoolID"], "Address": fresh_addr}),
    )
    .await;
    for e in ["ep3", "ep4"] {
        call(&a2, "NetworkDriver.DeleteEndpoint", ep("n1", e)).await;
    }
    call(
        &a2,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": id("n1")}),
    )
    .await;
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
    assert!(r.ports.files().is_empty());
}

/// `docker network create -d Contrail --ipam-driver Contrail --opt tenant=T
/// --opt network=N` (the calls libnetwork makes, in its order): the IPAM
/// hands out an unbound pool, CreateNetwork binds it to the VN named by
/// `--opt`, addresses come from the VN's subnet.
#[tokio::test]
async fn unbound_pool_bound_by_create_network() {
    let r = rig().await;
    let a = &r.app;
    let p = call(
        a,
        "IpamDriver.RequestPool",
        json!({"AddressSpace": "ContrailLocal", "Pool": "", "SubPool": "", "Options": {}, "V6": false}),
    )
    .await;
    let pid = p["PoolID"].as_str().unwrap().to_string();
    let token = pid.strip_prefix("unbound/").unwrap().to_string();
    assert_eq!(
        p,
        json!({"PoolID": pid, "Pool": "0.0.0.0/0",
               "Data": {"com.docker.network.gateway": format!("{token}/0")}})
    );
    // A second network gets another token.
    let p2 = call(a, "IpamDriver.RequestPool", json!({})).await;
    assert_ne!(p2["PoolID"], p["PoolID"]);
    // Not bound yet.
    let e = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert!(e["Error"].as_str().unwrap().contains("not bound"), "{e}");

    let create = |net: &str, t: Option<&str>, n: Option<&str>, tok: &str| {
        json!({"NetworkID": id(net), "Options": net_opts(t, n),
               "IPv4Data": [{"AddressSpace": "ContrailLocal", "Pool": "0.0.0.0/0",
                             "Gateway": format!("{tok}/0"), "AuxAddresses": null}]})
    };
    let e = err(
        a,
        "NetworkDriver.CreateNetwork",
        create("n1", None, Some("blue"), &token),
    )
    .await;
    assert!(e.contains("option \"tenant\" is required"), "{e}");
    assert_eq!(
        call(
            a,
            "NetworkDriver.CreateNetwork",
            create("n1", Some("demo"), Some("blue"), &token)
        )
        .await,
        json!({})
    );
    let blue = r.vnc.by_name("virtual-network", "blue").unwrap();
    assert!(
        blue.to_string().contains(&format!("docker-pool:{token}")),
        "{blue}"
    );
    // Addresses from the VN's first IPv4 subnet (.1 gateway, .2 DNS).
    let x = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(x, json!({"Address": "10.1.0.3/24"}));
    let c = endpoint(a, "n1", "ep1", "10.1.0.3/24").await;
    assert!(c["Interface"]["MacAddress"].as_str().is_some(), "{c}");
    let y = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(y["Address"], "10.1.0.4/24");
    call(
        a,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pid, "Address": "10.1.0.4"}),
    )
    .await;
    // A restarted driver finds the binding in the config API.
    let (_d2, a2) = driver(&r.vnc_url, &r.port_url, MemoryBackend::default());
    let z = call(&a2, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(z["Address"], "10.1.0.5/24");
    call(
        &a2,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pid, "Address": "10.1.0.5"}),
    )
    .await;
    call(a, "NetworkDriver.DeleteEndpoint", ep("n1", "ep1")).await;
    // Docker releases the endpoint's address after DeleteEndpoint: nothing
    // is left to release, and that is fine.
    call(
        a,
        "IpamDriver.ReleaseAddress",
        json!({"PoolID": pid, "Address": "10.1.0.3"}),
    )
    .await;
    call(
        a,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": id("n1")}),
    )
    .await;
    let blue = r.vnc.by_name("virtual-network", "blue").unwrap();
    assert!(!blue.to_string().contains("docker-pool:"), "{blue}");
    assert!(!blue.to_string().contains("docker-network:"), "{blue}");
    let e = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert!(e["Error"].as_str().unwrap().contains("not bound"), "{e}");
    assert_eq!(
        call(a, "IpamDriver.ReleasePool", json!({"PoolID": pid})).await,
        json!({})
    );
    assert_eq!(leftovers(&r.vnc), Vec::<Value>::new());
    assert!(r.ports.files().is_empty());
}
