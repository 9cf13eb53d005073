//! Our own Windows driver's real request bodies against the real agent:
//! the HCN backend (over `hcn::fake::FakeHcn`, since HNS is not in Wine)
//! names the port after its HNS endpoint, `Contrail-<vmi uuid>` (45
//! bytes), and the agent, built for Windows, accepts that `system-name`
//! (the 15-byte limit is Linux's), programs the port and reports it live.
//! Runs in the Windows lane (Wine) and on Windows.
#![cfg(windows)]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use docker_driver::backend::windows::{HcnBackend, HcnConfig};
use docker_driver::{Config, Driver};
use hyper::Method;
use serde_json::{json, Value};
use vnc_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_driver_ports_are_accepted_by_the_agent() {
    let vnc = Vnc::start().await;
    let ports = Ports::start(&vnc).await;
    seed_vn(
        &vnc.client(),
        "demo",
        "blue",
        &[("10.1.0.0", 24, "10.1.0.1")],
    )
    .await;
    let fake = Arc::new(hcn::fake::FakeHcn::new());
    let backend = HcnBackend::with_shared(Arc::clone(&fake), HcnConfig::default());
    let d = Driver::new(
        Client::new(&vnc.url, None).unwrap(),
        Client::new(&ports.url, None).unwrap(),
        backend,
        Config::default(),
    );
    let net = id("winnet");
    let e = id("winep");
    d.create_network(
        serde_json::from_value(json!({"NetworkID": net,
            "Options": {"com.docker.network.generic": {"tenant": "demo", "network": "blue"}},
            "IPv4Data": [{"AddressSpace": "", "Pool": "0.0.0.0/32", "Gateway": ""}]}))
        .unwrap(),
    )
    .await
    .unwrap();
    let r = d
        .create_endpoint(
            serde_json::from_value(json!({"NetworkID": net, "EndpointID": e, "Interface": {}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let addr = serde_json::to_value(&r).unwrap()["Interface"]["Address"].clone();
    assert_eq!(addr, "10.1.0.3/24");
    // The port the driver sent, as the agent stored it.
    let files = ports.files();
    assert_eq!(files.len(), 1, "{files:?}");
    let port = &files[0];
    let name = port["system-name"].as_str().unwrap();
    let vmi = port["id"].as_str().unwrap();
    assert_eq!(name, format!("Contrail-{vmi}"));
    assert_eq!(name.len(), 45);
    // Its HNS endpoint has that name.
    assert_eq!(fake.endpoints()[0].name, name);
    // The agent reports it live, with the VN's gateway.
    let agent = Client::new(&ports.url, None).unwrap();
    let live = agent
        .call(Method::GET, &format!("/port/{vmi}"), None)
        .await
        .unwrap();
    assert_eq!(live["system-name"], json!(name));
    assert_eq!(live["ip-address"], "10.1.0.3");
    assert_eq!(live["gateway"], "10.1.0.1");
    // And the agent on Windows still refuses what no endpoint is called.
    let mut bad: Value = port.clone();
    bad["system-name"] = json!(" Contrail-x");
    let e2 = agent
        .call(Method::POST, "/port", Some(&bad))
        .await
        .unwrap_err();
    assert_eq!(e2.status().map(|s| s.as_u16()), Some(400), "{e2}");
    d.delete_endpoint(serde_json::from_value(json!({"NetworkID": net, "EndpointID": e})).unwrap())
        .await
        .unwrap();
    assert!(ports.files().is_empty());
    assert!(fake.endpoints().is_empty());
    assert_eq!(leftovers(&vnc), Vec::<Value>::new());
}
