#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! The real `vrouter --fast-path tc` programmed by the real agent: two
//! containers in one VN; TCP (its FIN reaches the agent); a steady UDP
//! stream between them (python3 in the
//! namespaces: busybox's nc has no UDP). The kernel
//! forwards it (the vrouter's offload counters rise), the agent keeps the
//! active flow although its timeout is 3 s (the datapath folds the
//! kernel's counters into the shared flow table), and ages it once idle.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn udp_flows(node: &Node, dport: u16) -> usize {
    let f = node.intro_get("/flows").unwrap();
    f["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["proto"] == 17 && x["dport"] == dport)
        .count()
}

/// The largest `packets: N` the vrouter logged for its fast path.
fn offloaded_packets(node: &Node) -> u64 {
    node.log("vrouter")
        .lines()
        .filter(|l| l.contains("fast path"))
        .filter_map(|l| {
            let i = l.find(" packets: ")?;
            l[i + 10..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn offloaded_flow_is_counted_kept_while_active_and_aged_when_idle() {
    require_rig!();
    let mut node = Node::start_with(&["--fast-path", "tc"], &["--flow-timeout", "3"]);
    if node.log("vrouter").contains("cannot be loaded") {
        report_skip(
            "agent fastpath",
            "the BPF fast path cannot be loaded here (see the vrouter log)",
        );
        return;
    }
    node.project("pf");
    let vn = node.vn("pf", "fast", "198.18.9.0", 24);
    let fq = ["default-domain", "pf", "fast"];
    // Our own security group: allow everything, later nothing.
    let any = |src: Value, dst: Value| {
        json!({"direction": ">", "protocol": "any", "ethertype": "IPv4",
               "src_addresses": [src], "dst_addresses": [dst],
               "src_ports": [{"start_port": 0, "end_port": 65535}],
               "dst_ports": [{"start_port": 0, "end_port": 65535}]})
    };
    let local = json!({"security_group": "local"});
    let all = json!({"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}});
    let sg_uuid = node.create(
        "security-group",
        json!({
            "fq_name": ["default-domain", "pf", "open"],
            "parent_type": "project",
            "security_group_entries": {"policy_rule": [
                any(local.clone(), all.clone()), any(all, local)
            ]}
        }),
    );
    let sg = vec!["default-domain".into(), "pf".into(), "open".into()];
    let a = attach(&mut node, "a", "pf", &vn, &fq, std::slice::from_ref(&sg));
    let b = attach(&mut node, "b", "pf", &vn, &fq, &[sg]);
    static_ip(&a, 24, "198.18.9.254");
    static_ip(&b, 24, "198.18.9.254");
    let bip = b.ip.unwrap().to_string();
    assert!(
        ping_until(&a.ns, &bip, Duration::from_secs(5)),
        "{}",
        node.log("agent")
    );
    // TCP works with the fast path on.
    let _srv = tcp_server(&b.ns, 5001);
    assert!(tcp_ok(&a.ns, &bip, 5001));
    // Its FIN/RST reached the core with the fast path on: the agent saw
    // the connection close (well before any timeout).
    let t0 = Instant::now();
    loop {
        let f = node.intro_get("/flows").unwrap();
        if f["stats"]["closed"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "closed TCP flow not seen: {f}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A steady UDP stream (one datagram every 5 ms for 14 s).
    let out = node.dir.path().join("udp.out");
    let mut rx = Command::new("ip")
        .args(["netns", "exec", &b.ns, "python3", "-c"])
        .arg(format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{bip}', 9000))\ns.settimeout(20)\nn = 0\ntry:\n    while n < 2800:\n        s.recv(2048); n += 1\nexcept OSError:\n    pass\nopen('{}', 'w').write(str(n))\n",
            out.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut tx = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3", "-c"])
        .arg(format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('', 40000))\nfor i in range(2800):\n    s.sendto(b'x' * 64, ('{bip}', 9000)); time.sleep(0.005)\n"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Three flow timeouts and more: the flow is there all along.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(1000));
        if t0.elapsed() > Duration::from_secs(2) {
            assert!(
                udp_flows(&node, 9000) >= 1,
                "an active offloaded flow was aged at {:?}: {}",
                t0.elapsed(),
                node.intro_get("/flows").unwrap()
            );
        }
    }
    // The vrouter logs its offload counters every 10 s when they change.
    let t0 = Instant::now();
    while offloaded_packets(&node) < 500 {
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "the kernel fast path forwarded too little: {}",
            node.log("vrouter")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = tx.wait();
    let _ = rx.wait();
    let got: usize = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    // The first datagrams wait for the flow decision (a few may be lost).
    assert!(got >= 2700, "datagrams delivered: {got} of 2800");

    // Idle now: aged within the timeout plus the agent's scan.
    let t0 = Instant::now();
    while udp_flows(&node, 9000) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "idle flow not aged: {}",
            node.intro_get("/flows").unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // The security group now denies everything: a running, offloaded
    // stream stops within a bounded time (the agent re-decides the flow,
    // the FLOW_SET removes the kernel's entries).
    let out2 = node.dir.path().join("udp2.out");
    let mut rx = Command::new("ip")
        .args(["netns", "exec", &b.ns, "python3", "-c"])
        .arg(format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{bip}', 9000))\ns.settimeout(3)\nn = 0\nlast = 0.0\ntry:\n    while True:\n        s.recv(2048); n += 1; last = time.time()\nexcept OSError:\n    pass\nopen('{}', 'w').write('%d %f' % (n, last))\n",
            out2.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut tx = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3", "-c"])
        .arg(format!(
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('', 40000))\nfor i in range(1600):\n    s.sendto(b'x' * 64, ('{bip}', 9000)); time.sleep(0.005)\n"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (st, body) = node.vnc(
        "PUT",
        &format!("/security-group/{sg_uuid}"),
        Some(&json!({"security-group": {"security_group_entries": {"policy_rule": []}}})),
    );
    assert_eq!(st, 200, "{body}");
    let changed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _ = tx.wait();
    let _ = rx.wait();
    let r = std::fs::read_to_string(&out2).unwrap_or_default();
    let mut it = r.split_whitespace();
    let n: u64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let last: f64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    eprintln!(
        "deny: {n} datagrams, the last {:.3} s after the change",
        last - changed
    );
    assert!(n >= 300, "the stream ran before the change: {n}");
    assert!(
        last - changed < 2.0,
        "traffic went on {:.3} s after the security group denied it (sender ran ~5 s more)",
        last - changed
    );
}
