//! Every plugin call in-process (axum oneshot) against a config API and a
//! port API on loopback: exact JSON shapes, errors, rollback, restart,
//! reconcile.
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

fn create_net(id: &str, tenant: Option<&str>, network: Option<&str>, pool: &str) -> Value {
    json!({"NetworkID": id, "Options": net_opts(tenant, network),
           "IPv4Data": [{"AddressSpace": "ContrailLocal", "Pool": pool, "Gateway": "", "AuxAddresses": null}],
           "IPv6Data": []})
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
    let ep = json!({"NetworkID": "n", "EndpointID": "e"});
    for c in [
        "Leave",
        "ProgramExternalConnectivity",
        "RevokeExternalConnectivity",
        "FreeNetwork",
    ] {
        assert_eq!(
            call(a, &format!("NetworkDriver.{c}"), ep.clone()).await,
            json!({}),
            "{c}"
        );
    }
    for c in ["DiscoverNew", "DiscoverDelete"] {
        let b = json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "1.2.3.4"}});
        assert_eq!(call(a, &format!("NetworkDriver.{c}"), b).await, json!({}));
    }
    assert_eq!(
        call(
            a,
            "NetworkDriver.AllocateNetwork",
            json!({"NetworkID": "n", "Options": {}})
        )
        .await,
        json!({"Options": {}})
    );
    // Empty body = Go's nil argument.
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

#[tokio::test]
async fn ipam_pools_and_addresses() {
    let r = rig().await;
    let a = &r.app;
    let blue = r
        .vnc
        .all("virtual-network")
        .into_iter()
        .find(|v| v["fq_name"][2] == "blue")
        .unwrap();
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
    // No --ipam-opt, no --subnet: an unbound pool (see unbound_pool_*);
    // for IPv6 the VN must be named.
    let u = call(a, "IpamDriver.RequestPool", json!({})).await;
    assert!(
        u["PoolID"].as_str().unwrap().starts_with("unbound/0."),
        "{u}"
    );
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
    let x = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": ""}),
    )
    .await;
    // .1 is the gateway, .2 the DNS server address the config API
    // allocated for the subnet (upstream's service address): both reserved.
    assert_eq!(x, json!({"Address": "10.1.0.3/24"}));
    let e = call(
        a,
        "IpamDriver.RequestAddress",
        json!({"PoolID": pid, "Address": "10.1.0.2"}),
    )
    .await;
    assert!(e["Error"].as_str().unwrap().contains("reserved"), "{e}");
    // A reservation holds until released.
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
    let z = call(a, "IpamDriver.RequestAddress", json!({"PoolID": pid})).await;
    assert_eq!(z["Address"], "10.1.0.3/24");
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
    assert!(e["Error"].as_str().unwrap().contains("reserved"), "{e}");
    let e = call(a, "IpamDriver.RequestAddress", json!({"PoolID": "garbage"})).await;
    assert!(
        e["Error"].as_str().unwrap().contains("unknown pool id"),
        "{e}"
    );
    assert_eq!(
        call(a, "IpamDriver.ReleasePool", json!({"PoolID": pid})).await,
        json!({})
    );
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
    assert!(r
        .vnc
        .all("virtual-network")
        .iter()
        .all(|v| !v.to_string().contains("docker-network:n2")));
    let blue = || {
        r.vnc
            .all("virtual-network")
            .into_iter()
            .find(|v| v["fq_name"][2] == "blue")
            .unwrap()
    };
    assert!(blue().to_string().contains("docker-network:n1"));
    assert_eq!(
        call(a, "NetworkDriver.DeleteNetwork", json!({"NetworkID": "n1"})).await,
        json!({})
    );
    assert!(!blue().to_string().contains("docker-network:n1"));
    // Idempotent.
    assert_eq!(
        call(a, "NetworkDriver.DeleteNetwork", json!({"NetworkID": "n1"})).await,
        json!({})
    );
}

async fn endpoint(a: &axum::Router, net: &str, ep: &str, addr: &str) -> Value {
    call(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": net, "EndpointID": ep,
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
    assert_eq!(vmi["fq_name"], json!(["default-domain", "demo", "ep1"]));
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
    assert_eq!(
        iip["virtual_machine_interface_refs"][0]["uuid"],
        json!(vmi_id)
    );
    let vm = r.vnc.all("virtual-machine").pop().unwrap();
    assert_eq!(vm["fq_name"], json!(["ep1"]));
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

    let j = call(a, "NetworkDriver.Join", json!({"NetworkID": "n1", "EndpointID": "ep1", "SandboxKey": "/var/run/docker/netns/x", "Options": {}})).await;
    assert_eq!(
        j,
        json!({"InterfaceName": {"SrcName": format!("ctn{}", &vmi_id[..11]), "DstPrefix": "eth"},
                         "Gateway": "10.1.0.1"})
    );
    let o = call(
        a,
        "NetworkDriver.EndpointOperInfo",
        json!({"NetworkID": "n1", "EndpointID": "ep1"}),
    )
    .await;
    assert_eq!(
        o,
        json!({"Value": {"com.docker.network.endpoint.macaddress": mac}})
    );

    // Null IPAM: the driver allocates and replies with the address; a second
    // network of the same container works alongside; a given MAC is kept.
    let c2 = call(a, "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "n2", "EndpointID": "ep2", "Interface": {"MacAddress": "02:00:00:00:00:99"}})).await;
    // (.2 is the subnet's DNS server address.)
    assert_eq!(c2, json!({"Interface": {"Address": "10.2.0.3/24"}}));
    let c3 = endpoint(a, "n2", "ep3", "").await;
    assert_eq!(c3["Interface"]["Address"], "10.2.0.4/24");
    assert_eq!(r.driver.backend().specs().len(), 3);
    let e = err(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "n2", "EndpointID": "ep4",
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
        json!({"NetworkID": "n2", "EndpointID": "ep4",
        "Interface": {"Address": "10.2.0.3/24"}}),
    )
    .await;
    assert!(e.contains("in use"), "{e}");
    let e = err(
        a,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "nx", "EndpointID": "ep4"}),
    )
    .await;
    assert!(e.contains("network nx is not known"), "{e}");
    assert_eq!(leftovers(&r.vnc).len(), 9);

    for (n, e) in [("n1", "ep1"), ("n2", "ep2"), ("n2", "ep3")] {
        let b = json!({"NetworkID": n, "EndpointID": e});
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
    let e = err(
        &r.app,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "n1", "EndpointID": "ep1"}),
    )
    .await;
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
    let e = err(
        &a2,
        "NetworkDriver.CreateEndpoint",
        json!({"NetworkID": "n1", "EndpointID": "ep1"}),
    )
    .await;
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
    call(
        &a2,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": "n1", "EndpointID": "ep1"}),
    )
    .await;
    // ep2's container died while the driver was down: its interface is gone.
    let ep2_vmi = r
        .vnc
        .all("virtual-machine-interface")
        .into_iter()
        .find(|v| v["fq_name"][2] == "ep2")
        .unwrap()["uuid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    d2.backend().endpoints.lock().unwrap().remove(&ep2_vmi);
    // A veth without config (VMI deleted behind our back) and a stray VM.
    let stray = uuid::Uuid::new_v4();
    d2.backend()
        .endpoints
        .lock()
        .unwrap()
        .insert(stray, specs[0].clone());
    Client::new(&r.vnc_url, None)
        .unwrap()
        .create(
            "virtual-machine",
            json!({"fq_name": ["ep9"],
        "annotations": {"key_value_pair": [{"key": "owner", "value": "contrail-docker-driver"},
            {"key": "host", "value": "h1"}, {"key": "docker-endpoint", "value": "ep9"}]}}),
        )
        .await
        .unwrap();
    let rep = d2.reconcile().await.unwrap();
    assert_eq!(rep.endpoints, vec![ep2_vmi]);
    assert_eq!(rep.host_interfaces, vec![stray]);
    assert_eq!(rep.objects, 2, "{rep:?}"); // ep2's VM and the stray VM
    let names: Vec<String> = r
        .vnc
        .all("virtual-machine")
        .iter()
        .map(|v| v["fq_name"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"ep3".to_string()) && names.contains(&"ep4".to_string()));
    assert_eq!(r.ports.files().len(), 2);
    assert_eq!(d2.reconcile().await.unwrap(), Default::default());
    for e in ["ep3", "ep4"] {
        call(
            &a2,
            "NetworkDriver.DeleteEndpoint",
            json!({"NetworkID": "n1", "EndpointID": e}),
        )
        .await;
    }
    call(
        &a2,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": "n1"}),
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

    let create = |id: &str, t: Option<&str>, n: Option<&str>, tok: &str| {
        json!({"NetworkID": id, "Options": net_opts(t, n),
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
    assert_eq!(z["Address"], "10.1.0.4/24");
    call(
        a,
        "NetworkDriver.DeleteEndpoint",
        json!({"NetworkID": "n1", "EndpointID": "ep1"}),
    )
    .await;
    call(a, "NetworkDriver.DeleteNetwork", json!({"NetworkID": "n1"})).await;
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
