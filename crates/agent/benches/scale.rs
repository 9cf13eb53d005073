//! Control-plane scale: 10 000 ports and ~100 000 routes programmed into
//! the real `vrouter` by the real `vrouter-agent`.
//!
//! 10 virtual networks of 1 000 ports each, all connected by one network
//! policy, so every VRF holds every port's /32 (10 × 10 000 routes) plus
//! its own bridge entries. The datapath runs with `--vm-ports memory` (the
//! VM vifs are real vifs with in-memory ports: 10 000 interfaces would
//! measure the kernel, not the agent).
//!
//! Measured:
//! * ingest: the config (VNC API) and the ports (port API) over HTTP, with
//!   the agent converging as they arrive;
//! * **restart**: the agent started on the stored config and ports against
//!   a fresh datapath: start to converged (the target: ≤ 10 s), and the
//!   agent's RSS after it (target ≤ 200 MB); the datapath's state after it
//!   must equal the state before, object for object;
//! * baseline, same run: the same objects replayed straight over ksync
//!   (no config, no model: the wire and datapath floor), as a ratio.
//!
//! `cargo bench -p vrouter-agent --bench scale` (root; PORTS=N to change
//! the 10 000 default). Under `cargo test` it runs 200 ports.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const VNS: usize = 10;

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Wait until the agent reports a converged datapath holding `min_routes`.
fn converged(node: &Node, min_routes: usize, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if let Ok(k) = node.intro_get("/ksync") {
            let routes = k["objects"]["routes"].as_u64().unwrap_or(0) as usize;
            if k["connected"] == json!(true) && routes >= min_routes {
                return t0.elapsed();
            }
        }
        assert!(
            t0.elapsed() < limit,
            "not converged in {limit:?}: {}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    if let Some(r) = skip_reason() {
        println!("SKIP scale benchmark: {r}");
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let ports: usize = std::env::var("PORTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 10_000 } else { 200 });
    let vrouter_args = [
        "--vm-ports",
        "memory",
        "--interfaces",
        "16384",
        "--mpls-labels",
        "40000",
        "--nexthops",
        "65536",
    ];
    let mut node = Node::start_with(
        &vrouter_args,
        &["--max-vifs", "16384", "--log-level", "warn"],
    );

    // ---- ingest -------------------------------------------------------------
    let t_ingest = Instant::now();
    node.project("scale");
    let mut vns = Vec::new();
    for v in 0..VNS {
        let uuid = node.create(
            "virtual-network",
            json!({
                "fq_name": ["default-domain", "scale", format!("vn{v}")],
                "parent_type": "project",
                "network_ipam_refs": [{
                    "to": ["default-domain", "default-project", "default-network-ipam"],
                    "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": format!("10.{v}.0.0"), "ip_prefix_len": 16}}]}
                }]
            }),
        );
        vns.push(uuid);
    }
    let names: Vec<String> = (0..VNS)
        .map(|v| format!("default-domain:scale:vn{v}"))
        .collect();
    let addrs: Vec<serde_json::Value> = names
        .iter()
        .map(|n| json!({"virtual_network": n}))
        .collect();
    let pol = node.create(
        "network-policy",
        json!({
            "fq_name": ["default-domain", "scale", "mesh"],
            "parent_type": "project",
            "network_policy_entries": {"policy_rule": [{
                "direction": "<>", "protocol": "any",
                "src_addresses": addrs, "dst_addresses": addrs,
                "src_ports": [{"start_port": -1, "end_port": -1}],
                "dst_ports": [{"start_port": -1, "end_port": -1}],
                "action_list": {"simple_action": "pass"}
            }]}
        }),
    );
    for vn in &vns {
        let (s, b) = node.vnc(
            "POST",
            "/ref-update",
            Some(&json!({"type": "virtual-network", "uuid": vn, "ref-type": "network-policy", "ref-uuid": pol, "operation": "ADD", "attr": {"sequence": {"major": 0, "minor": 0}}})),
        );
        assert_eq!(s, 200, "{b}");
    }
    for i in 0..ports {
        let v = i % VNS;
        let vmi = node.create(
            "virtual-machine-interface",
            json!({
                "fq_name": ["default-domain", "scale", format!("vmi{i}")],
                "parent_type": "project",
                "virtual_network_refs": [{"uuid": vns[v]}],
            }),
        );
        let obj = node.read("virtual-machine-interface", &vmi);
        let mac = obj["virtual_machine_interface_mac_addresses"]["mac_address"][0]
            .as_str()
            .unwrap()
            .to_string();
        let iip = node.create(
            "instance-ip",
            json!({
                "fq_name": [format!("iip{i}")],
                "virtual_network_refs": [{"uuid": vns[v]}],
                "virtual_machine_interface_refs": [{"uuid": vmi}],
            }),
        );
        let ip = node.read("instance-ip", &iip)["instance_ip_address"]
            .as_str()
            .unwrap()
            .to_string();
        let body = json!({
            "id": vmi, "instance-id": vmi, "vn-id": vns[v], "vm-project-id": "",
            "mac-address": mac, "ip-address": ip, "ip6-address": "",
            "system-name": format!("tap{}", &vmi[..11]), "display-name": format!("p{i}"),
            "type": 0, "rx-vlan-id": -1, "tx-vlan-id": -1,
        });
        let (s, b) = node.port_api("POST", "/port", Some(&body.to_string()));
        assert_eq!(s, 200, "{b}");
    }
    // Every VRF: all ports' /32s; its own ports' bridge entries.
    let want_routes = VNS * ports + ports;
    converged(&node, want_routes, Duration::from_secs(600));
    let ingest = t_ingest.elapsed();
    let before = node.datapath_state();

    // ---- agent restart on a fresh datapath: program everything -------------
    node.agent.kill9();
    node.vrouter.kill9();
    node.start_vrouter();
    let t0 = Instant::now();
    node.start_agent();
    converged(&node, want_routes, Duration::from_secs(120));
    let program = t0.elapsed();
    let rss = rss_mb(node.agent.pid());
    let after = node.datapath_state();
    // A fresh datapath: the agent programs every port on the vif it had
    // (agent::vif_map), so the state is the same object for object.
    assert!(
        agent::program::same(&before, &after),
        "the restart programmed another state: {} vifs of {} moved, {} next hops, {} routes, {} labels differ",
        before
            .vifs
            .iter()
            .filter(|(i, v)| after.vifs.get(i).map(|a| &a.name) != Some(&v.name))
            .count(),
        before.vifs.len(),
        before.nhs.iter().filter(|(i, n)| after.nhs.get(i) != Some(n)).count(),
        before
            .routes
            .iter()
            .filter(|(k, d)| after.routes.get(k) != Some(d))
            .count(),
        before.mpls.iter().filter(|(l, n)| after.mpls.get(l) != Some(n)).count(),
    );

    // ---- baseline: the same objects replayed straight over ksync ------------
    node.agent.kill9();
    node.vrouter.kill9();
    node.start_vrouter();
    let empty = agent::program::State::default();
    let msgs: Vec<_> = agent::program::plan(&empty, &after).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let replay = rt.block_on(async {
        let mut k = agent::ksync::KsyncClient::connect(&node.sock_dir().join("dpdk_netlink"))
            .await
            .unwrap();
        let t0 = Instant::now();
        for chunk in msgs.chunks(256) {
            k.apply(chunk).await.unwrap();
        }
        t0.elapsed()
    });
    let objects = after.object_count();
    println!(
        "scale: {ports} ports in {VNS} VNs, {} routes, {objects} datapath objects",
        after.routes.len()
    );
    println!(
        "  ingest over the VNC and port APIs (converging as it goes): {:>8.2} s",
        ingest.as_secs_f64()
    );
    println!(
        "  agent restart to converged datapath:                        {:>8.2} s (target <= 10 s)",
        program.as_secs_f64()
    );
    println!("  agent RSS after converging:                                 {rss:>8.1} MB (target <= 200 MB)");
    println!(
        "  baseline, same objects replayed over ksync:                 {:>8.2} s",
        replay.as_secs_f64()
    );
    println!(
        "  ratio agent / replay:                                       {:>8.2}",
        program.as_secs_f64() / replay.as_secs_f64().max(1e-9)
    );
}
