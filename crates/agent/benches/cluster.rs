//! Route convergence in a cluster (controller mode), against programming
//! the same routes straight over ksync (the floor), measured in one run.
//!
//! 1. **Container on A -> route on B**: two compute hosts (real `vrouter`
//!    and real `vrouter-agent --config-source controller` each) and one
//!    control-node peer. For each of 100 ports: the config node gets the
//!    VM, VMI and instance IP (what the Docker driver writes), host A's
//!    port API the port; the clock stops when host B's datapath holds the
//!    tunnel route to it (polled over ksync every 2 ms). That path is the
//!    whole of it: A's VM subscription, the IF-MAP config, programming on
//!    A, the publish, the reflection, B's route update and programming.
//!    p50 and p99. Floor: one route add (to an existing tunnel next hop)
//!    over ksync into B's datapath, p50 and p99 of 100.
//! 2. **Fan-out**: 20 simulated agents (XMPP sessions from this process)
//!    into the peer, 1 000 ports over 50 virtual networks (each agent
//!    subscribed to all 50, 50 ports each, an inet and an EVPN route per
//!    port): from the first publish until every agent has all 1 900 routes
//!    of the others. Floor: the 1 900 routes one agent receives programmed
//!    over ksync into a real datapath (256 per write, as the agent does).
//!
//! `cargo bench -p vrouter-agent --bench cluster` (root). Under
//! `cargo test` it runs 10 ports and a 4-agent, 100-port fan-out.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::cluster::*;
use common::ip;
use dp_core::nexthop::AF_INET;
use sandesh::{Message, SandeshOp};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xmpp::session::{self, ClientConfig, Event};
use xmpp::stanza::{self, Stanza};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Whether the datapath at `sock` has a route for `ip` in `vrf`.
async fn has_route(k: &mut agent::ksync::KsyncClient, vrf: u16, ip: Ipv4Addr) -> bool {
    let all = k
        .dump(|last| ksync::dump::routes(vrf, AF_INET, last))
        .await
        .unwrap_or_default();
    all.iter().any(|m| match m {
        Message::Route(r) => {
            r.rtr_prefix.get(..4) == Some(&ip.octets()[..]) && r.rtr_prefix_len == 32
        }
        _ => false,
    })
}

fn tunnel_nh(id: u32, sip: Ipv4Addr, dip: Ipv4Addr) -> Message {
    let mut encap = [0u8; 14];
    encap[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let nh = dp_core::Nexthop {
        id,
        family: AF_INET,
        flags: dp_core::NhFlags::VALID | dp_core::NhFlags::TUNNEL_GRE,
        vrf: 0,
        kind: dp_core::NhKind::Tunnel {
            oif: 0,
            kind: dp_core::TunnelKind::MplsOverGre,
            sip: sip.octets(),
            dip: dip.octets(),
            encap,
        },
    };
    ksync::convert::nh_to_req(&nh, SandeshOp::Add).into()
}

fn route_add(vrf: u16, ip: Ipv4Addr, nh: u32, label: u32) -> Message {
    let d = dp_core::RouteData {
        nh,
        label,
        flags: dp_core::route::rt_flags::LABEL_VALID,
        mac: [0; 6],
    };
    ksync::convert::inet_route_to_req(
        vrf,
        dp_core::Prefix::V4(ip.octets(), 32),
        &d,
        SandeshOp::Add,
    )
    .into()
}

fn main() {
    if let Some(r) = cluster_skip() {
        println!("SKIP cluster benchmark: {r}");
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let ports: usize = if bench { 100 } else { 10 };
    let (agents, fan_ports, vns) = if bench || std::env::var("FULL").is_ok() {
        (20, 1000, 50)
    } else {
        (4, 100, 10)
    };

    // ---- 1. container on A -> route on B -----------------------------------
    let mut c = Cluster::new(2, 1, &["--log-level", "warn"]);
    c.project("bench");
    let (vn, gw) = c.vn("bench", "b", "10.50.0.0", 16);
    // A port on B, so that B has the VRF and subscribes to it.
    let _target = c.attach(1, "t", "bench", &vn, &gw, 16);
    c.wait_for("B has the network", Duration::from_secs(15), || {
        c.hosts[1]
            .intro_get("/vns")
            .is_ok_and(|v| v.to_string().contains("default-domain:bench:b"))
    });
    let vrf = c.hosts[1].intro_get("/vns").unwrap()["virtual_networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["fq_name"] == json!("default-domain:bench:b"))
        .unwrap()["vrf"]
        .as_u64()
        .unwrap() as u16;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let b_sock = c.hosts[1].sock_dir().join("dpdk_netlink");
    let mut kb = rt
        .block_on(agent::ksync::KsyncClient::connect(&b_sock))
        .unwrap();
    // The containers' interfaces exist before the clock starts (creating
    // them is Docker's work); the clock covers what the driver, the agents
    // and the control node do.
    let host_a = c.hosts[0].ns.clone();
    let vmis: Vec<String> = (0..ports)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    for (i, u) in vmis.iter().enumerate() {
        let tap = format!("tap{}", &u[..11]);
        ip(&[
            "-n",
            &host_a,
            "link",
            "add",
            "name",
            &tap,
            "type",
            "veth",
            "peer",
            "name",
            &format!("o{i}"),
        ]);
        ip(&["-n", &host_a, "link", "set", &tap, "up"]);
        ip(&["-n", &host_a, "link", "set", &format!("o{i}"), "up"]);
    }
    let mut conv = Vec::new();
    for (i, u) in vmis.iter().enumerate() {
        let t0 = Instant::now();
        let vm = c
            .store
            .create(
                "virtual-machine",
                json!({"fq_name": [format!("bench-vm-{i}")]}),
            )
            .unwrap();
        let vmi = c
            .store
            .create(
                "virtual-machine-interface",
                json!({"uuid": u, "fq_name": ["default-domain", "bench", format!("bench-{i}")],
                    "parent_type": "project", "virtual_network_refs": [{"uuid": vn}],
                    "virtual_machine_refs": [{"uuid": vm["uuid"]}],
                    "security_group_refs": [{"to": ["default-domain", "bench", "default"]}]}),
            )
            .unwrap();
        let iip = c
            .store
            .create(
                "instance-ip",
                json!({"fq_name": [format!("bench-ip-{i}")], "virtual_network_refs": [{"uuid": vn}],
                    "virtual_machine_interface_refs": [{"uuid": u}]}),
            )
            .unwrap();
        let addr: Ipv4Addr = iip["instance_ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = json!({
            "id": u, "instance-id": vm["uuid"], "vn-id": vn, "vm-project-id": "",
            "mac-address": vmi["virtual_machine_interface_mac_addresses"]["mac_address"][0],
            "ip-address": addr.to_string(), "ip6-address": "",
            "system-name": format!("tap{}", &u[..11]), "display-name": format!("p{i}"), "type": 0,
            "rx-vlan-id": -1, "tx-vlan-id": -1,
        });
        let (st, b) = c.hosts[0].port_api("POST", "/port", Some(&body.to_string()));
        assert_eq!(st, 200, "{b}");
        while !rt.block_on(has_route(&mut kb, vrf, addr)) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "port {i} never reached B"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        conv.push(t0.elapsed());
    }
    // Floor: the same route, added over ksync (spare VRF 4000, one tunnel).
    let (sip, dip) = (c.hosts[1].ip, c.hosts[0].ip);
    rt.block_on(kb.apply(&[tunnel_nh(60_000, sip, dip)]))
        .unwrap();
    let mut floor = Vec::new();
    for i in 0..ports {
        let ip = Ipv4Addr::new(10, 99, (i / 250) as u8, (i % 250) as u8 + 1);
        let t0 = Instant::now();
        rt.block_on(kb.apply(&[route_add(4000, ip, 60_000, 30 + i as u32)]))
            .unwrap();
        floor.push(t0.elapsed());
    }
    let (p50, p99) = (pct(&mut conv, 0.5), pct(&mut conv, 0.99));
    let (f50, f99) = (pct(&mut floor, 0.5), pct(&mut floor, 0.99));
    println!(
        "cluster/container-on-A-to-route-on-B ({ports} ports): p50 {:.1} ms, p99 {:.1} ms",
        ms(p50),
        ms(p99)
    );
    println!(
        "cluster/ksync-route-add floor: p50 {:.3} ms, p99 {:.3} ms",
        ms(f50),
        ms(f99)
    );
    println!(
        "cluster/convergence-ratio: p50 {:.0}x, p99 {:.0}x the floor",
        p50.as_secs_f64() / f50.as_secs_f64(),
        p99.as_secs_f64() / f99.as_secs_f64()
    );

    // ---- 2. fan-out: simulated agents into the peer -------------------------
    let addr = c.peer_addrs[0];
    let per_agent = fan_ports / agents;
    let expect = 2 * (fan_ports - per_agent);
    let ris: Vec<String> = (0..vns)
        .map(|v| format!("default-domain:bench:f{v}:f{v}"))
        .collect();
    let fan = c.rt.block_on(async {
        let mut sessions = Vec::new();
        for a in 0..agents {
            let s = session::connect(addr, &ClientConfig::new(format!("sim-{a}")))
                .await
                .unwrap();
            for (i, ri) in ris.iter().enumerate() {
                s.send(stanza::instance_subscribe(
                    &format!("sim-{a}"),
                    i as u64,
                    ri,
                    i as u32 + 1,
                    true,
                ))
                .await
                .unwrap();
            }
            sessions.push(s);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Drain what subscribing brought (end-of-RIB markers).
        for s in &mut sessions {
            while let Ok(Event::Stanza(_)) =
                tokio::time::timeout(Duration::from_millis(50), s.recv()).await
            {}
        }
        // Every agent reads from the start (a real agent always does).
        let t0 = Instant::now();
        let mut readers = Vec::new();
        let mut senders = Vec::new();
        for (a, mut s) in sessions.into_iter().enumerate() {
            senders.push(s.sender());
            readers.push(tokio::spawn(async move {
                let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
                while seen.len() < expect {
                    match tokio::time::timeout(Duration::from_secs(60), s.recv()).await {
                        Ok(Event::Stanza(text)) => {
                            if let Ok(Stanza::Message(m)) = Stanza::parse(&text) {
                                for it in &m.items {
                                    seen.insert((
                                        m.items_node.clone().unwrap_or_default(),
                                        it.attr("id").unwrap_or_default().to_string(),
                                    ));
                                }
                            }
                        }
                        other => panic!("agent {a}: {other:?} with {} of {expect}", seen.len()),
                    }
                }
                t0.elapsed()
            }));
        }
        for (a, s) in senders.iter().enumerate() {
            let agent = format!("sim-{a}");
            let sip = Ipv4Addr::new(192, 0, 2, 10 + a as u8);
            for k in 0..per_agent {
                let p = a + k * agents;
                let ri = &ris[p % vns];
                let ip = Ipv4Addr::new(10, 60 + (p / 250) as u8, 0, 0);
                let ip = Ipv4Addr::from(u32::from(ip) + (p % 250) as u32 + 1);
                let inet = xmpp::unicast::InetItem {
                    nlri: xmpp::unicast::Nlri {
                        af: 1,
                        safi: 1,
                        address: format!("{ip}/32"),
                    },
                    next_hops: vec![xmpp::unicast::NextHop {
                        af: 1,
                        address: sip.to_string(),
                        label: 16 + p as i64,
                        encap: vec!["gre".into(), "udp".into()],
                        ..Default::default()
                    }],
                    version: 1,
                    local_preference: 100,
                    ..Default::default()
                };
                let (pb, col) = stanza::publish(
                    &agent,
                    p as u64,
                    false,
                    ri,
                    &format!("1/1/{ri}/{ip}/32"),
                    inet.encode(),
                    true,
                );
                s.send(pb).await.unwrap();
                s.send(col).await.unwrap();
                let mac = format!("02:00:00:00:{:02x}:{:02x}", p / 256, p % 256);
                let enet = xmpp::enet::EnetItem {
                    nlri: xmpp::enet::EnetNlri {
                        af: 25,
                        safi: 242,
                        mac: mac.clone(),
                        address: format!("{ip}/32"),
                        ..Default::default()
                    },
                    next_hops: vec![xmpp::enet::EnetNextHop {
                        af: 1,
                        address: sip.to_string(),
                        label: 17 + p as i64,
                        encap: vec!["gre".into(), "udp".into()],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let (pb, col) = stanza::publish(
                    &agent,
                    p as u64,
                    true,
                    ri,
                    &format!("25/242/{mac},{ip}/32"),
                    enet.encode(),
                    true,
                );
                s.send(pb).await.unwrap();
                s.send(col).await.unwrap();
            }
        }
        let mut last = Duration::ZERO;
        for r in readers {
            match r.await {
                Ok(d) => last = last.max(d),
                Err(e) => panic!("{e}"),
            }
        }
        last
    });
    // Floor: the routes one agent receives, over ksync into B's datapath.
    let mut msgs: Vec<Message> = Vec::new();
    for p in 0..expect / 2 {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 70, 0, 0)) + p as u32);
        msgs.push(route_add(
            4001 + (p % vns) as u16,
            ip,
            60_000,
            16 + p as u32,
        ));
        let mac = [2, 0, 0, 1, (p / 256) as u8, (p % 256) as u8];
        let be = dp_core::route::BridgeEntry {
            nh: 60_000,
            label: 17 + p as u32,
            flags: dp_core::route::be_flags::VALID | dp_core::route::be_flags::LABEL_VALID,
        };
        msgs.push(
            ksync::convert::bridge_route_to_req(4001 + (p % vns) as u16, mac, &be, SandeshOp::Add)
                .into(),
        );
    }
    let t0 = Instant::now();
    for chunk in msgs.chunks(256) {
        rt.block_on(kb.call(chunk)).unwrap();
    }
    let floor2 = t0.elapsed();
    println!(
        "cluster/fan-out ({fan_ports} ports, {vns} VNs, {agents} agent sessions): every agent has all {expect} routes after {:.0} ms",
        ms(fan)
    );
    println!(
        "cluster/fan-out floor ({expect} routes over ksync): {:.1} ms",
        ms(floor2)
    );
    println!(
        "cluster/fan-out-ratio: {:.1}x the floor",
        fan.as_secs_f64() / floor2.as_secs_f64()
    );
}
