#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! Multi-host, end to end with real packets: three compute hosts (real
//! `vrouter` + real `vrouter-agent --config-source controller` in their
//! own namespaces, on a bridged fabric) and two control-node peers.
//! Containers have 1500-byte interfaces on the 1500-byte fabric, as Docker
//! gives them. What crosses the fabric is checked with tshark.

mod common;

use common::cluster::*;
use common::*;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

macro_rules! require_cluster {
    () => {
        if let Some(r) = cluster_skip() {
            eprintln!("SKIP: {r}");
            return;
        }
    };
}

/// `ping -i interval -c count` in the background; (sent, received) when
/// it ends. The replies are kept (with `-D` timestamps) so that a failure
/// can say which sequence numbers went missing, and when.
struct BgPing(Option<Child>);

impl BgPing {
    fn start(ns: &str, dst: &str, interval: &str, count: u32) -> BgPing {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "ping",
                "-n",
                "-D",
                "-i",
                interval,
                "-c",
                &count.to_string(),
                "-W",
                "1",
                dst,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        BgPing(Some(child))
    }

    fn finish(mut self) -> (u32, u32) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = s
            .lines()
            .find(|l| l.contains("received"))
            .unwrap_or("")
            .to_string();
        let num = |i: usize| {
            line.split(", ")
                .nth(i)
                .and_then(|x| x.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (sent, got) = (num(0), num(1));
        if got < sent {
            eprintln!("ping losses: {}", lost_ranges(&s, sent));
        }
        (sent, got)
    }
}

/// Seconds since the epoch, as `ping -D` prints them.
fn epoch() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("[{}.{:06}]", d.as_secs(), d.subsec_micros())
}

/// The icmp_seq ranges missing from `ping -D` output, each with the
/// timestamp of the last reply before it (to line up with the logs).
fn lost_ranges(out: &str, sent: u32) -> String {
    let mut seen = std::collections::BTreeMap::new();
    for l in out.lines() {
        let ts = l
            .strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .unwrap_or("?");
        if let Some(seq) = l
            .split("icmp_seq=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
        {
            seen.insert(seq, ts.to_string());
        }
    }
    let mut ranges = Vec::new();
    let mut last_ts = "start".to_string();
    let mut gap: Option<u32> = None;
    for seq in 1..=sent {
        match (seen.get(&seq), gap) {
            (Some(ts), g) => {
                if let Some(first) = g {
                    ranges.push(format!("{first}..{} after {last_ts}", seq - 1));
                    gap = None;
                }
                last_ts = ts.clone();
            }
            (None, None) => gap = Some(seq),
            (None, Some(_)) => {}
        }
    }
    if let Some(first) = gap {
        ranges.push(format!("{first}..{sent} after {last_ts}"));
    }
    ranges.join(", ")
}

impl Drop for BgPing {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn set_priorities(c: &Cluster, list: &[&str]) {
    let snap = c.store.snapshot().unwrap();
    let (u, _) = snap.iter("global-vrouter-config").next().unwrap();
    c.store
        .update(
            "global-vrouter-config",
            u,
            json!({"encapsulation_priorities": {"encapsulation": list}}),
        )
        .unwrap();
}

/// Wait until host `h` has a route for `ip` (any VRF) whose next hop is a
/// tunnel of `kind` (or, with `None`, has no route for it at all).
fn wait_route(
    c: &Cluster,
    h: usize,
    ip: std::net::Ipv4Addr,
    kind: Option<dp_core::TunnelKind>,
    limit: Duration,
) -> Duration {
    let t0 = Instant::now();
    c.wait_for(&format!("host {h}: route to {ip} via {kind:?}"), limit, || {
        let s = c.hosts[h].datapath_state();
        let r = s.routes.iter().find(|(k, _)| k.family == 2 && k.plen == 32 && k.addr[..4] == ip.octets());
        match (r, kind) {
            (None, None) => true,
            (Some((_, d)), Some(want)) => {
                matches!(s.nhs.get(&d.nh).map(|n| &n.kind), Some(dp_core::NhKind::Tunnel { kind, .. }) if *kind == want)
            }
            _ => false,
        }
    });
    t0.elapsed()
}

/// Ping and a TCP exchange from `from` to `to` (server on port 7000).
fn reachable(from: &ClusterContainer, to: &ClusterContainer) -> bool {
    if !ping_until(&from.ns, &to.ip.to_string(), Duration::from_secs(5)) {
        return false;
    }
    let _srv = tcp_server(&to.ns, 7000);
    tcp_ok(&from.ns, &to.ip.to_string(), 7000)
}

fn flush_arp(c: &ClusterContainer) {
    ip(&["-n", &c.ns, "neigh", "flush", "all"]);
}

#[test]
fn encapsulations_isolation_and_withdrawal() {
    require_cluster!();
    let mut c = Cluster::new(3, 2, &[]);
    let t0 = Instant::now();
    set_priorities(&c, &["MPLSoUDP", "MPLSoGRE", "VXLAN"]);
    c.project("mh");
    let (blue, bgw) = c.vn("mh", "blue", "198.18.10.0", 24);
    let (red, rgw) = c.vn("mh", "red", "198.18.11.0", 24);
    let a = c.attach(0, "a", "mh", &blue, &bgw, 24);
    let b = c.attach(1, "b", "mh", &blue, &bgw, 24);
    let r = c.attach(2, "r", "mh", &red, &rgw, 24);
    let (ha, hb) = (c.hosts[0].ip, c.hosts[1].ip);

    // ---- MPLSoUDP -----------------------------------------------------
    wait_route(
        &c,
        0,
        b.ip,
        Some(dp_core::TunnelKind::MplsOverUdp),
        Duration::from_secs(15),
    );
    wait_route(
        &c,
        1,
        a.ip,
        Some(dp_core::TunnelKind::MplsOverUdp),
        Duration::from_secs(15),
    );
    let mut cap = Capture::start(
        &c.bridge,
        "h0",
        "udp port 6635 or ip proto 47 or udp port 4789",
        c.dir.path(),
    );
    assert!(
        reachable(&a, &b),
        "blue a -> b over MPLSoUDP:\n{}",
        c.hosts[0].log("agent")
    );
    let pk = cap.stop_and_read(
        "mpls",
        &["ip.src", "ip.dst", "udp.dstport", "mpls.label", "ip.proto"],
    );
    let udp = pk.iter().filter(|p| p[2] == "6635").count();
    assert!(udp >= 4, "MPLSoUDP frames on the fabric: {pk:?}");
    assert!(pk.iter().all(|p| p[2] == "6635"), "only MPLSoUDP: {pk:?}");
    assert!(
        pk.iter()
            .any(|p| p[0] == ha.to_string() && p[1] == hb.to_string()),
        "{pk:?}"
    );
    assert!(pk
        .iter()
        .any(|p| p[0] == hb.to_string() && p[1] == ha.to_string()));

    // ---- MPLSoGRE, by changing the priorities in the config ---------------
    set_priorities(&c, &["MPLSoGRE", "MPLSoUDP", "VXLAN"]);
    wait_route(
        &c,
        0,
        b.ip,
        Some(dp_core::TunnelKind::MplsOverGre),
        Duration::from_secs(10),
    );
    wait_route(
        &c,
        1,
        a.ip,
        Some(dp_core::TunnelKind::MplsOverGre),
        Duration::from_secs(10),
    );
    let mut cap = Capture::start(
        &c.bridge,
        "h0",
        "udp port 6635 or ip proto 47 or udp port 4789",
        c.dir.path(),
    );
    assert!(reachable(&a, &b), "blue a -> b over MPLSoGRE");
    let pk = cap.stop_and_read("mpls", &["ip.src", "ip.dst", "gre.proto", "mpls.label"]);
    assert!(
        pk.len() >= 4 && pk.iter().all(|p| p[2] == "0x8847"),
        "MPLSoGRE frames: {pk:?}"
    );

    // ---- VXLAN: bridged with the VNI; containers re-resolve --------------
    set_priorities(&c, &["VXLAN", "MPLSoUDP", "MPLSoGRE"]);
    let vni = c.hosts[0].intro_get("/vns").unwrap()["virtual_networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["fq_name"] == json!("default-domain:mh:blue"))
        .unwrap()["vni"]
        .as_u64()
        .unwrap();
    c.wait_for("EVPN over VXLAN on both", Duration::from_secs(10), || {
        [(0, &b), (1, &a)].iter().all(|(h, other)| {
            let s = c.hosts[*h].datapath_state();
            let mac = agent::ports::parse_mac(&other.mac).unwrap();
            s.routes.iter().any(|(k, d)| {
                k.family == dp_core::nexthop::AF_BRIDGE
                    && k.addr[..6] == mac
                    && d.label == vni as u32
                    && matches!(
                        s.nhs.get(&d.nh).map(|n| &n.kind),
                        Some(dp_core::NhKind::Tunnel {
                            kind: dp_core::TunnelKind::Vxlan,
                            ..
                        })
                    )
            })
        })
    });
    flush_arp(&a);
    flush_arp(&b);
    let mut cap = Capture::start(
        &c.bridge,
        "h0",
        "udp port 6635 or ip proto 47 or udp port 4789",
        c.dir.path(),
    );
    assert!(
        reachable(&a, &b),
        "blue a -> b over VXLAN:\n{}",
        c.hosts[0].log("agent")
    );
    let pk = cap.stop_and_read("vxlan", &["ip.src", "ip.dst", "vxlan.vni"]);
    assert!(pk.len() >= 4, "VXLAN frames: {pk:?}");
    assert!(
        pk.iter().all(|p| p[2] == vni.to_string()),
        "VNI {vni}: {pk:?}"
    );
    set_priorities(&c, &["MPLSoUDP", "MPLSoGRE", "VXLAN"]);
    flush_arp(&a);
    flush_arp(&b);

    // ---- a second VN: isolated across hosts until a policy connects them --
    wait_route(
        &c,
        0,
        b.ip,
        Some(dp_core::TunnelKind::MplsOverUdp),
        Duration::from_secs(10),
    );
    assert!(
        !ping_until(&a.ns, &r.ip.to_string(), Duration::from_secs(2)),
        "blue reached red without a policy"
    );
    assert!(
        !ping_until(&r.ns, &a.ip.to_string(), Duration::from_secs(1)),
        "red reached blue without a policy"
    );
    let pol = c
        .store
        .create(
            "network-policy",
            json!({"fq_name": ["default-domain", "mh", "blue-red"], "parent_type": "project",
                "network_policy_entries": {"policy_rule": [{
                    "direction": "<>", "protocol": "any",
                    "src_addresses": [{"virtual_network": "default-domain:mh:blue"}],
                    "dst_addresses": [{"virtual_network": "default-domain:mh:red"}],
                    "src_ports": [{"start_port": -1, "end_port": -1}],
                    "dst_ports": [{"start_port": -1, "end_port": -1}],
                    "action_list": {"simple_action": "pass"}}]}}),
        )
        .unwrap();
    for vn in [&blue, &red] {
        c.store
            .ref_update(&json!({"type": "virtual-network", "uuid": vn, "ref-type": "network-policy",
                "ref-uuid": pol["uuid"], "operation": "ADD", "attr": {"sequence": {"major": 0, "minor": 0}}}))
            .unwrap();
    }
    wait_route(
        &c,
        0,
        r.ip,
        Some(dp_core::TunnelKind::MplsOverUdp),
        Duration::from_secs(10),
    );
    if !reachable(&a, &r) {
        for h in [0, 2] {
            eprintln!("HOST {h} flows {}", c.hosts[h].intro_get("/flows").unwrap());
            eprintln!(
                "HOST {h} remote {}",
                c.hosts[h].intro_get("/remote-routes").unwrap()
            );
        }
        panic!("blue -> red with the policy");
    }
    assert!(reachable(&r, &a), "red -> blue with the policy");

    // ---- a port removed on B is withdrawn on A within 1 s ----------------
    let t_del = Instant::now();
    c.detach(&b);
    let took = wait_route(&c, 0, b.ip, None, Duration::from_secs(5));
    let took = took.max(t_del.elapsed().min(took));
    assert!(took < Duration::from_secs(1), "withdrawal took {took:?}");
    eprintln!(
        "withdrawal seen on A after {took:?}; test took {:?}",
        t0.elapsed()
    );
}

#[test]
fn control_node_failures() {
    require_cluster!();
    // Routes of a lost control node stay 120 s; a returning one is
    // authoritative at its end-of-RIB (500 ms after its subscriptions) for
    // the compute nodes it has heard from again.
    let mut c = Cluster::new(3, 2, &["--stale-route-timeout", "120"]);
    let t0 = Instant::now();
    c.project("ha");
    let (blue, gw) = c.vn("ha", "blue", "198.18.20.0", 24);
    let a = c.attach(0, "a", "ha", &blue, &gw, 24);
    let b = c.attach(1, "b", "ha", &blue, &gw, 24);
    let gone = c.attach(1, "g", "ha", &blue, &gw, 24);
    for h in &c.hosts {
        h.wait_ready(2);
    }
    wait_route(
        &c,
        0,
        b.ip,
        Some(dp_core::TunnelKind::MplsOverGre),
        Duration::from_secs(15),
    );
    wait_route(
        &c,
        0,
        gone.ip,
        Some(dp_core::TunnelKind::MplsOverGre),
        Duration::from_secs(15),
    );
    assert!(ping_until(&a.ns, &b.ip.to_string(), Duration::from_secs(5)));
    let before = c.hosts[0].datapath_state();

    // ---- control node 1 dies during a 5 ms ping: nothing is lost --------
    let ping = BgPing::start(&a.ns, &b.ip.to_string(), "0.005", 800);
    std::thread::sleep(Duration::from_secs(1));
    c.stop_peer(0);
    let (sent, got) = ping.finish();
    assert_eq!(
        (sent, got),
        (800, 800),
        "lost pings when control node 1 died"
    );
    // The agents are on control node 2, config peer included.
    c.wait_for(
        "config from control node 2",
        Duration::from_secs(10),
        || {
            c.hosts.iter().all(|h| {
                let v = h.intro_get("/controller").unwrap();
                v["status"]["peers"][1]["config_peer"] == json!(true)
                    && v["status"]["config_pending"] == json!(false)
            })
        },
    );
    assert!(
        agent::program::same(&before, &c.hosts[0].datapath_state()),
        "the datapath changed on failover"
    );

    // ---- both gone for 30 s: forwarding goes on from stale routes -------
    let ping = BgPing::start(&a.ns, &b.ip.to_string(), "0.1", 380);
    c.stop_peer(1);
    eprintln!("{} both control nodes stopped", epoch());
    std::thread::sleep(Duration::from_secs(2));
    let st = c.hosts[0].intro_get("/remote-routes").unwrap();
    assert!(st.to_string().contains("\"stale\":true"), "{st}");
    // Meanwhile a port goes on B (no control node hears it).
    c.detach(&gone);
    eprintln!("{} port g detached", epoch());
    std::thread::sleep(Duration::from_secs(28));
    // One comes back, and B's agent is the last to reconnect (frozen for
    // 3 s): A's agent gets the control node's end-of-RIB before the
    // control node has B's routes again. B's routes stay until it has.
    c.hosts[1].agent.signal("STOP");
    c.start_peer(0);
    eprintln!("{} control node 1 started, B's agent frozen", epoch());
    std::thread::sleep(Duration::from_secs(3));
    c.hosts[1].agent.signal("CONT");
    eprintln!("{} B's agent thawed", epoch());
    let (sent, got) = ping.finish();
    assert!(
        sent >= 380 && got >= sent - 3,
        "established traffic stopped: {got}/{sent}"
    );
    // Re-converged: sessions up, nothing stale, the gone port's route swept.
    c.wait_for("re-converged", Duration::from_secs(15), || {
        c.hosts.iter().all(|h| h.sessions() == 1)
            && !c.hosts[0]
                .intro_get("/remote-routes")
                .unwrap()
                .to_string()
                .contains("\"stale\":true")
    });
    wait_route(&c, 0, gone.ip, None, Duration::from_secs(5));
    wait_route(
        &c,
        0,
        b.ip,
        Some(dp_core::TunnelKind::MplsOverGre),
        Duration::from_secs(5),
    );
    assert!(ping_until(&a.ns, &b.ip.to_string(), Duration::from_secs(5)));
    let (s, g) = BgPing::start(&b.ns, &a.ip.to_string(), "0.01", 200).finish();
    assert_eq!((s, g), (200, 200));
    eprintln!("test took {:?}", t0.elapsed());
}

/// The last "fast path" statistics line of host `h`'s vrouter log (logged
/// every 10 s when they changed): field `name`'s value.
fn fast_path_stat(c: &Cluster, h: usize, name: &str) -> Option<u64> {
    let log = c.hosts[h].log("vrouter");
    let line = log.lines().rev().find(|l| l.contains("fast path st="))?;
    let i = line.find(&format!(" {name}: "))? + name.len() + 3;
    line.get(i..)?
        .split(|ch: char| !ch.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// How many "fast path" statistics lines host `h`'s vrouter logged.
fn fast_path_lines(c: &Cluster, h: usize) -> usize {
    c.hosts[h]
        .log("vrouter")
        .lines()
        .filter(|l| l.contains("fast path st="))
        .count()
}

/// Whether host `h`'s datapath has a tunnel next hop to `dip`.
fn has_tunnel_to(c: &Cluster, h: usize, dip: std::net::Ipv4Addr) -> bool {
    c.hosts[h]
        .datapath_state()
        .nhs
        .values()
        .any(|n| matches!(&n.kind, dp_core::NhKind::Tunnel { dip: d, .. } if *d == dip.octets()))
}

/// In a cluster every container started or stopped anywhere changes
/// routes on every host of its network. A host's offloaded flows survive
/// that: the changes remove only the kernel fast-path entries of flows
/// they may redirect, not every entry (as any configuration change did
/// before). Here host 0 offloads a stream to host 1 while containers come
/// and go on host 1 (routes), on host 2 (routes and the tunnel to host 2,
/// deleted once its last route goes) and on host 0 itself (a vif, its
/// labels and next hops).
#[test]
fn containers_started_and_stopped_elsewhere_leave_this_hosts_offloaded_flows() {
    require_cluster!();
    let mut c = Cluster::new(3, 1, &[]);
    if !c.hosts[0].log("vrouter").contains("fast path tc on") {
        report_skip(
            "multihost fast path",
            "the BPF fast path is not loaded here (see the vrouter log)",
        );
        return;
    }
    set_priorities(&c, &["MPLSoUDP", "MPLSoGRE", "VXLAN"]);
    c.project("sc");
    let (blue, gw) = c.vn("sc", "blue", "198.18.30.0", 24);
    let a = c.attach(0, "a", "sc", &blue, &gw, 24);
    let b = c.attach(1, "b", "sc", &blue, &gw, 24);
    let udp = dp_core::TunnelKind::MplsOverUdp;
    wait_route(&c, 0, b.ip, Some(udp), Duration::from_secs(15));
    assert!(ping_until(&a.ns, &b.ip.to_string(), Duration::from_secs(5)));
    // A steady UDP stream a -> b (one datagram every 5 ms for up to 60 s).
    let mut tx = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3", "-c"])
        .arg(format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(12000):\n    s.sendto(b'x' * 64, ('{}', 9000)); time.sleep(0.005)\n",
            b.ip
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.wait_for(
        "host 0 offloads the stream",
        Duration::from_secs(25),
        || {
            fast_path_stat(&c, 0, "active").unwrap_or(0) > 0
                && fast_path_stat(&c, 0, "packets").unwrap_or(0) > 100
        },
    );
    let flushes = fast_path_stat(&c, 0, "flushes").unwrap();
    let scoped = fast_path_stat(&c, 0, "scoped_changes").unwrap();

    // Host 1: a container starts (host 0 learns its routes over XMPP).
    let d = c.attach(1, "d", "sc", &blue, &gw, 24);
    wait_route(&c, 0, d.ip, Some(udp), Duration::from_secs(15));
    // Host 2: a container starts and stops; host 0 adds, then deletes its
    // routes and the tunnel to host 2.
    let e = c.attach(2, "e", "sc", &blue, &gw, 24);
    wait_route(&c, 0, e.ip, Some(udp), Duration::from_secs(15));
    assert!(has_tunnel_to(&c, 0, c.hosts[2].ip));
    c.detach(&e);
    wait_route(&c, 0, e.ip, None, Duration::from_secs(15));
    c.wait_for(
        "host 0 deletes the tunnel to host 2",
        Duration::from_secs(15),
        || !has_tunnel_to(&c, 0, c.hosts[2].ip),
    );
    // Host 0: a container starts and stops (its vif, labels, next hops).
    let f = c.attach(0, "f", "sc", &blue, &gw, 24);
    assert!(ping_until(&f.ns, &a.ip.to_string(), Duration::from_secs(5)));
    c.detach(&f);
    wait_route(&c, 0, f.ip, None, Duration::from_secs(15));
    // The next statistics line (every 10 s while the stream runs) counts
    // all of it.
    let lines = fast_path_lines(&c, 0);
    c.wait_for(
        "host 0 logs its fast-path statistics again",
        Duration::from_secs(25),
        || fast_path_lines(&c, 0) > lines,
    );
    let log = c.hosts[0].log("vrouter");
    let _ = tx.kill();
    let _ = tx.wait();
    assert_eq!(
        fast_path_stat(&c, 0, "flushes"),
        Some(flushes),
        "host 0's fast path was emptied:\n{log}"
    );
    assert!(
        fast_path_stat(&c, 0, "scoped_changes").unwrap_or(0) > scoped,
        "host 0 searched its entries for each change:\n{log}"
    );
    assert!(
        fast_path_stat(&c, 0, "active").unwrap_or(0) > 0,
        "host 0 still offloads the stream:\n{log}"
    );
    assert!(ping_until(&a.ns, &d.ip.to_string(), Duration::from_secs(5)));
}
