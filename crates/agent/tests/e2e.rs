#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! End to end: the real `vrouter` datapath and the real `vrouter-agent`,
//! containers as network namespaces, driven only through the VNC API and
//! the port API.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn default_sg(proj: &str) -> Vec<String> {
    vec!["default-domain".into(), proj.into(), "default".into()]
}

#[test]
fn dhcp_address_then_ping_and_tcp_in_one_vn() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p1");
    let vn = node.vn("p1", "blue", "198.18.1.0", 24);
    let fq = ["default-domain", "p1", "blue"];
    let c1 = attach(&mut node, "c1", "p1", &vn, &fq, &[]);
    let c2 = attach(&mut node, "c2", "p1", &vn, &fq, &[]);
    static_ip(&c2, 24, "198.18.1.254");

    // c1 asks DHCP for its address.
    let dir = node.dir.path().to_owned();
    let script = dir.join("udhcpc.sh");
    let log = dir.join("udhcpc.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew)\n ip addr flush dev $interface\n ip addr add $ip/$mask dev $interface\n [ -n \"$router\" ] && ip route replace default via $router\n echo \"$1 ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu lease=$lease serverid=$serverid\" >> {}\n;;\nesac\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", script.display()));
    let pid = dir.join("udhcpc.pid");
    let mut dhcp = Proc {
        child: Some(
            Command::new("ip")
                .args([
                    "netns", "exec", &c1.ns, "busybox", "udhcpc", "-f", "-i", "eth0", "-t", "10",
                    "-T", "1",
                ])
                .arg("-s")
                .arg(&script)
                .arg("-p")
                .arg(&pid)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ),
        what: "udhcpc",
    };
    let t0 = Instant::now();
    let lease = loop {
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = s.lines().find(|l| l.starts_with("bound")) {
            break l.to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no DHCP lease; agent log: {}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let want_ip = c1.ip.unwrap().to_string();
    assert!(lease.contains(&format!("ip={want_ip} ")), "lease: {lease}");
    assert!(lease.contains("mask=24"), "lease: {lease}");
    assert!(lease.contains("router=198.18.1.254"), "lease: {lease}");
    // No DNS server advertised (nothing serves DNS on the subnet's DNS
    // address): udhcpc gets no option 6.
    assert!(lease.contains("dns= "), "lease: {lease}");
    assert!(lease.contains("mtu=1500"), "lease: {lease}");
    assert!(lease.contains("serverid=198.18.1.254"), "lease: {lease}");

    // Same-VN ping and TCP both ways.
    assert!(
        ping_until(&c1.ns, &c2.ip.unwrap().to_string(), Duration::from_secs(5)),
        "c1 -> c2; {}",
        node.log("agent")
    );
    assert_eq!(ping(&c2.ns, &want_ip, 3, "0.2"), 3);
    let _srv = tcp_server(&c2.ns, 5001);
    assert!(tcp_ok(&c1.ns, &c2.ip.unwrap().to_string(), 5001));

    // Renew (SIGUSR1), then release (SIGUSR2).
    let upid = std::fs::read_to_string(&pid).unwrap().trim().to_string();
    sh(&format!("kill -USR1 {upid}"));
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("renew ip=")
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "no renew");
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&format!("kill -USR2 {upid}"));
    let t0 = Instant::now();
    loop {
        let v = node.intro_get("/ksync").unwrap();
        if v["pkt0"]["services"]["dhcp_released"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "release not seen: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    dhcp.kill9();
}

#[test]
fn networks_isolated_until_a_policy_allows_icmp_only() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p2");
    let red = node.vn("p2", "red", "198.18.2.0", 24);
    let green = node.vn("p2", "green", "198.18.3.0", 24);
    let a = attach(
        &mut node,
        "a",
        "p2",
        &red,
        &["default-domain", "p2", "red"],
        &[],
    );
    let b = attach(
        &mut node,
        "b",
        "p2",
        &green,
        &["default-domain", "p2", "green"],
        &[],
    );
    static_ip(&a, 24, "198.18.2.254");
    static_ip(&b, 24, "198.18.3.254");
    let bip = b.ip.unwrap().to_string();
    // Both containers are up (their gateways answer).
    assert!(
        ping_until(&a.ns, "198.18.2.254", Duration::from_secs(5)),
        "{}",
        node.log("agent")
    );
    assert!(ping_until(&b.ns, "198.18.3.254", Duration::from_secs(5)));
    assert_eq!(ping(&a.ns, &bip, 3, "0.2"), 0, "isolated without a policy");
    let _srv = tcp_server(&b.ns, 5002);
    assert!(!tcp_ok(&a.ns, &bip, 5002));

    let pol = node.create(
        "network-policy",
        json!({
            "fq_name": ["default-domain", "p2", "icmp-only"],
            "parent_type": "project",
            "network_policy_entries": {"policy_rule": [{
                "direction": "<>", "protocol": "icmp",
                "src_addresses": [{"virtual_network": "default-domain:p2:red"}],
                "dst_addresses": [{"virtual_network": "default-domain:p2:green"}],
                "src_ports": [{"start_port": -1, "end_port": -1}],
                "dst_ports": [{"start_port": -1, "end_port": -1}],
                "action_list": {"simple_action": "pass"}
            }]}
        }),
    );
    for vn in [&red, &green] {
        let (s, b) = node.vnc(
            "POST",
            "/ref-update",
            Some(&json!({"type": "virtual-network", "uuid": vn, "ref-type": "network-policy", "ref-uuid": pol, "operation": "ADD", "attr": {"sequence": {"major": 0, "minor": 0}}})),
        );
        assert_eq!(s, 200, "{b}");
    }
    assert!(
        ping_until(&a.ns, &bip, Duration::from_secs(5)),
        "ICMP allowed by the policy; {}",
        node.log("agent")
    );
    assert_eq!(ping(&b.ns, &a.ip.unwrap().to_string(), 3, "0.2"), 3);
    let tcp = tcp_ok(&a.ns, &bip, 5002);
    assert!(
        !tcp,
        "TCP is not in the policy: {}",
        node.intro_get("/flows").unwrap()
    );
    let flows = node.intro_get("/flows").unwrap();
    assert!(flows["stats"]["denied"].as_u64().unwrap() >= 1, "{flows}");
}

#[test]
fn security_group_allows_one_tcp_port_and_blocks_another() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p3");
    let vn = node.vn("p3", "web", "198.18.4.0", 24);
    let sg_uuid = node.create(
        "security-group",
        json!({
            "fq_name": ["default-domain", "p3", "web-8080"],
            "parent_type": "project",
            "security_group_entries": {"policy_rule": [
                {"direction": ">", "protocol": "any", "ethertype": "IPv4",
                 "src_addresses": [{"security_group": "local"}],
                 "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}],
                 "src_ports": [{"start_port": 0, "end_port": 65535}],
                 "dst_ports": [{"start_port": 0, "end_port": 65535}]},
                {"direction": ">", "protocol": "tcp", "ethertype": "IPv4",
                 "src_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}],
                 "dst_addresses": [{"security_group": "local"}],
                 "src_ports": [{"start_port": 0, "end_port": 65535}],
                 "dst_ports": [{"start_port": 8080, "end_port": 8080}]}
            ]}
        }),
    );
    let fq = ["default-domain", "p3", "web"];
    let sg = vec!["default-domain".to_string(), "p3".into(), "web-8080".into()];
    let srv = attach(&mut node, "s", "p3", &vn, &fq, &[sg]);
    let cli = attach(&mut node, "k", "p3", &vn, &fq, &[]);
    static_ip(&srv, 24, "198.18.4.254");
    static_ip(&cli, 24, "198.18.4.254");
    let sip = srv.ip.unwrap().to_string();
    let _s1 = tcp_server(&srv.ns, 8080);
    let _s2 = tcp_server(&srv.ns, 9090);
    let t0 = Instant::now();
    while !tcp_ok(&cli.ns, &sip, 8080) {
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "8080 allowed; {}",
            node.log("agent")
        );
    }
    let t9090 = tcp_ok(&cli.ns, &sip, 9090);
    assert!(
        !t9090,
        "9090 blocked by the SG: {}",
        node.intro_get("/flows").unwrap()
    );
    assert_eq!(ping(&cli.ns, &sip, 2, "0.2"), 0, "no ICMP rule");
    // The finished 8080 connection (FIN both ways) is removed well before
    // the 180 s idle timeout.
    let t0 = Instant::now();
    loop {
        let f = node.intro_get("/flows").unwrap();
        if f["stats"]["closed"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "closed TCP flow kept: {f}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A rule change decides the existing flows again: a running ping (one
    // ICMP flow, denied) starts getting answers once ICMP is allowed.
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &cli.ns, "ping", "-n", "-q", "-c", "40", "-i", "0.1", &sip,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let mut sg = node.read("security-group", &sg_uuid);
    let mut rules = sg["security_group_entries"]["policy_rule"]
        .as_array()
        .unwrap()
        .clone();
    rules.push(
        json!({"direction": ">", "protocol": "icmp", "ethertype": "IPv4",
        "src_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}],
        "dst_addresses": [{"security_group": "local"}],
        "src_ports": [{"start_port": 0, "end_port": 65535}],
        "dst_ports": [{"start_port": 0, "end_port": 65535}]}),
    );
    sg["security_group_entries"]["policy_rule"] = json!(rules);
    let (s, b) = node.vnc(
        "PUT",
        &format!("/security-group/{sg_uuid}"),
        Some(&json!({"security-group": {"security_group_entries": sg["security_group_entries"]}})),
    );
    assert_eq!(s, 200, "{b}");
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let got: u32 = text
        .lines()
        .find(|l| l.contains("received"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|x| x.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (10..40).contains(&got),
        "answers only after the change: {text}"
    );
    let f = node.intro_get("/flows").unwrap();
    assert!(f["stats"]["reevaluated"].as_u64().unwrap() >= 1, "{f}");
}

fn two_pinging(node: &mut Node, proj: &str, net: &str, third: u8) -> (Container, Container) {
    node.project(proj);
    let vn = node.vn(proj, net, &format!("198.18.{third}.0"), 24);
    let fq = ["default-domain", proj, net];
    let gw = format!("198.18.{third}.254");
    let a = attach(node, "x", proj, &vn, &fq, &[default_sg(proj)]);
    let b = attach(node, "y", proj, &vn, &fq, &[default_sg(proj)]);
    static_ip(&a, 24, &gw);
    static_ip(&b, 24, &gw);
    assert!(
        ping_until(&a.ns, &b.ip.unwrap().to_string(), Duration::from_secs(5)),
        "{}",
        node.log("agent")
    );
    (a, b)
}

#[test]
fn agent_kill_9_loses_no_packet_and_changes_nothing() {
    require_rig!();
    let mut node = Node::start(&[]);
    let (a, b) = two_pinging(&mut node, "p4", "steady", 5);
    let before = node.datapath_state();
    assert!(
        before.vifs.len() == 2 && before.routes.len() >= 6,
        "{before:?}"
    );

    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.ns,
            "ping",
            "-n",
            "-q",
            "-c",
            "100",
            "-i",
            "0.05",
            &b.ip.unwrap().to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    node.agent.kill9();
    std::thread::sleep(Duration::from_millis(500));
    node.start_agent();
    node.wait_ready();
    let out = ping.wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("100 packets transmitted, 100 received"), "{s}");
    let after = node.datapath_state();
    assert!(
        agent::program::same(&before, &after),
        "before {before:?}\nafter {after:?}"
    );
    let k = node.intro_get("/ksync").unwrap();
    assert_eq!(k["last_reconcile_changes"], json!(0), "{k}");
    // New flows work after the restart.
    let _srv = tcp_server(&b.ns, 5003);
    assert!(tcp_ok(&a.ns, &b.ip.unwrap().to_string(), 5003));

    // No leftovers: a port that went away while the agent was down (its
    // file removed) loses its datapath objects at the next start.
    node.agent.kill9();
    std::fs::remove_file(node.state_dir().join("ports").join(&b.vmi)).unwrap();
    node.start_agent();
    node.wait_ready();
    let pruned = node.datapath_state();
    assert_eq!(pruned.vifs.len(), 1, "{pruned:?}");
    assert!(pruned.vifs.values().all(|v| v.name.as_str() == a.tap));
    assert!(
        !pruned
            .routes
            .keys()
            .any(|k| k.prefix() == Some(dp_core::Prefix::V4(b.ip.unwrap().octets(), 32))),
        "b's /32 is gone"
    );
    assert_eq!(common::ping(&a.ns, &b.ip.unwrap().to_string(), 2, "0.2"), 0);
}

#[test]
fn traffic_resumes_within_2s_of_a_vrouter_restart() {
    require_rig!();
    let mut node = Node::start(&[]);
    let (a, b) = two_pinging(&mut node, "p5", "resume", 6);
    node.vrouter.kill9();
    let t0 = Instant::now();
    node.start_vrouter();
    let bip = b.ip.unwrap().to_string();
    let mut ok = false;
    while t0.elapsed() < Duration::from_secs(5) {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &a.ns, "ping", "-n", "-q", "-c", "1", "-W", "0.1", &bip,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            ok = true;
            break;
        }
    }
    let took = t0.elapsed();
    assert!(ok, "no traffic after the restart; {}", node.log("agent"));
    eprintln!(
        "traffic resumed {} ms after the vrouter restart",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn idle_flow_ages_out() {
    require_rig!();
    let mut node = Node::start(&["--flow-timeout", "2"]);
    let _containers = two_pinging(&mut node, "p6", "aging", 7);
    // /flows is built by the flow task on request.
    let t0 = Instant::now();
    loop {
        let f = node.intro_get("/flows").unwrap();
        if !f["flows"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "no flow: {f}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    loop {
        let f = node.intro_get("/flows").unwrap();
        if f["flows"].as_array().unwrap().is_empty()
            && f["stats"]["aged"].as_u64().unwrap_or(0) >= 1
        {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(8), "not aged: {f}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(node.metrics().contains("vrouter_agent_flows_aged_total"));
}

#[test]
fn bad_api_input_is_refused_and_changes_nothing() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p7");
    let vn = node.vn("p7", "used", "198.18.8.0", 24);
    let fq = ["default-domain", "p7", "used"];
    let c = attach(&mut node, "u", "p7", &vn, &fq, &[]);
    let snapshot = |n: &Node| -> Vec<Value> {
        [
            "virtual-networks",
            "virtual-machine-interfaces",
            "instance-ips",
            "virtual-machines",
            "projects",
        ]
        .iter()
        .map(|t| n.vnc("GET", &format!("/{t}?detail=true"), None).1)
        .collect()
    };
    std::thread::sleep(Duration::from_millis(300));
    let cfg0 = snapshot(&node);
    let ports0 = node.port_api("GET", "/ports", None);
    let dp0 = node.datapath_state();

    // A bad CIDR.
    let (s, b) = node.vnc(
        "POST",
        "/virtual-networks",
        Some(&json!({"virtual-network": {"fq_name": ["default-domain", "p7", "bad"], "parent_type": "project",
            "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
              "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "198.18.300.0", "ip_prefix_len": 24}}]}}]}})),
    );
    assert_eq!(s, 400, "{b}");
    // A duplicate IP.
    let (s, b) = node.vnc(
        "POST",
        "/instance-ips",
        Some(&json!({"instance-ip": {"fq_name": ["dup"], "instance_ip_address": c.ip.unwrap().to_string(),
            "virtual_network_refs": [{"to": fq, "uuid": vn}]}})),
    );
    assert_eq!(s, 409, "{b}");
    // Deleting a VN in use.
    let (s, b) = node.vnc("DELETE", &format!("/virtual-network/{vn}"), None);
    assert_eq!(s, 409, "{b}");
    // Malformed JSON.
    let (s, b) = node.vnc_raw("POST", "/virtual-networks", "{\"virtual-network\": {");
    assert_eq!(s, 400, "{b}");
    let (s, b) = node.port_api("POST", "/port", Some("{\"id\": "));
    assert_eq!(s, 400, "{b}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(snapshot(&node), cfg0);
    assert_eq!(node.port_api("GET", "/ports", None), ports0);
    assert!(agent::program::same(&dp0, &node.datapath_state()));
}

/// The embedded store is complete: a port whose VN it does not have is
/// refused (404 naming the VN) and leaves nothing behind; once the VN is
/// created the same port is accepted and programmed. (With control nodes
/// such a port is kept until the config arrives: the cluster tests' every
/// attach depends on that.)
#[test]
fn port_for_a_vn_not_configured_is_refused_until_it_exists() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p9");
    let vn = "0f9c3f8e-1111-4222-8333-944455556668";
    let c = mk_container(
        &mut node,
        "w",
        "0f9c3f8e-1111-4222-8333-944455556666",
        "02:11:22:33:44:55",
    );
    let body = json!({"id": "0f9c3f8e-1111-4222-8333-944455556666", "instance-id": "0f9c3f8e-1111-4222-8333-944455556667",
        "vn-id": vn, "vm-project-id": "", "mac-address": "02:11:22:33:44:55",
        "ip-address": "198.18.9.50", "ip6-address": "", "system-name": c.tap, "display-name": "w",
        "type": 0, "rx-vlan-id": -1, "tx-vlan-id": -1});
    let (s, b) = node.port_api("POST", "/port", Some(&body.to_string()));
    assert_eq!(s, 404, "{b}");
    assert!(b.contains(vn), "{b}");
    let (s, b) = node.port_api("GET", "/port/0f9c3f8e-1111-4222-8333-944455556666", None);
    assert_eq!(s, 404, "{b}");
    std::thread::sleep(Duration::from_millis(300));
    let ports = node.intro_get("/ports").unwrap();
    assert!(!ports.to_string().contains(vn), "{ports}");
    assert!(node
        .datapath_state()
        .vifs
        .values()
        .all(|v| v.name.as_str() != c.tap));
    // The VN arrives (with the uuid the port named): the port is programmed.
    let (s, b) = node.vnc(
        "POST",
        "/virtual-networks",
        Some(&json!({"virtual-network": {"uuid": vn, "fq_name": ["default-domain", "p9", "late"], "parent_type": "project",
            "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
              "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "198.18.9.0", "ip_prefix_len": 24}}]}}]}})),
    );
    assert_eq!(s, 200, "{b}");
    let (s, b) = node.port_api("POST", "/port", Some(&body.to_string()));
    assert_eq!(s, 200, "{b}");
    let t0 = Instant::now();
    while !node
        .datapath_state()
        .vifs
        .values()
        .any(|v| v.name.as_str() == c.tap)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not programmed: {}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, b) = node.port_api("DELETE", "/port/0f9c3f8e-1111-4222-8333-944455556666", None);
    assert_eq!(s, 200, "{b}");
    let t0 = Instant::now();
    while node
        .datapath_state()
        .vifs
        .values()
        .any(|v| v.name.as_str() == c.tap)
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "not removed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Upstream's datapath traps FLOW_ACTION_HOLD (not FLOW_MISS) for the
/// first packet of a decided flow that was set back to hold; the agent
/// decides it again and traffic goes on.
#[test]
fn a_flow_set_back_to_hold_is_trapped_and_decided_again() {
    require_rig!();
    use dp_core::flow::table::{VR_FLOW_ACTION_HOLD, VR_FLOW_FLAG_ACTIVE};
    let mut node = Node::start(&[]);
    let (a, b) = two_pinging(&mut node, "p8", "rehold", 8);
    let (a_ip, b_ip) = (a.ip.unwrap().to_string(), b.ip.unwrap().to_string());
    // One long ping: one ICMP flow (one echo identifier) all along.
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &a.ns, "ping", "-n", "-q", "-i", "0.2", "-c", "40",
        ])
        .arg(&b_ip)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shm = channels::FlowShm::open(node.sock_dir().join("flow")).unwrap();
    // Its forward entry: the a -> b ICMP flow the agent tracks whose
    // packet count grows.
    let t0 = Instant::now();
    let idx = loop {
        let f = node.intro_get("/flows").unwrap();
        let cands: Vec<u32> = f["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["src"] == a_ip.as_str() && x["dst"] == b_ip.as_str() && x["proto"] == 1)
            .map(|x| x["index"].as_u64().unwrap() as u32)
            .collect();
        let before: Vec<u64> = cands
            .iter()
            .map(|&i| shm.entry(i).unwrap().packets())
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        if let Some(&i) = cands
            .iter()
            .zip(&before)
            .find(|(&i, &p)| shm.entry(i).unwrap().packets() > p)
            .map(|(i, _)| i)
        {
            break i;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no live a -> b flow: {f}"
        );
    };
    // Another ksync client (as upstream's `flow` tool could) sets it back
    // to hold, with its key and generation read from the shared table.
    let e = shm.entry(idx).unwrap();
    assert!(e.is_decided(), "{e:?}");
    let mut req = sandesh::VrFlowReq {
        fr_op: sandesh::FlowOp::FlowSet,
        fr_index: idx as i32,
        fr_gen_id: e.gen_id,
        fr_rindex: e.rflow,
        fr_action: VR_FLOW_ACTION_HOLD as i16,
        fr_flags: (VR_FLOW_FLAG_ACTIVE | (e.flags & dp_core::flow::table::VR_RFLOW_VALID)) as i16,
        fr_ecmp_nh_index: u32::MAX,
        ..Default::default()
    };
    ksync::convert::set_flow_key(&mut req, e.key());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(async {
        let mut c = agent::ksync::KsyncClient::connect(&node.sock_dir().join("dpdk_netlink"))
            .await
            .unwrap();
        c.call(&[req.into()]).await.unwrap()[0].code
    });
    assert_eq!(code, 0);
    assert!(shm.entry(idx).unwrap().is_hold());
    // The next echo request is held, trapped as FLOW_ACTION_HOLD, decided
    // again by the agent and released: the same flow goes on.
    let t0 = Instant::now();
    let held_at = shm.entry(idx).unwrap().packets();
    loop {
        let e = shm.entry(idx).unwrap();
        if e.is_decided() && e.packets() > held_at + 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not decided again: {e:?}\n{}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = pinger.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("40 packets transmitted, 40 received"),
        "{summary}"
    );
    let f = node.intro_get("/flows").unwrap();
    assert!(f["stats"]["action_holds"].as_u64().unwrap() >= 1, "{f}");
    assert!(node
        .metrics()
        .contains("vrouter_agent_flow_action_holds_total 1"));
}

/// Upstream's own port_ipc test ports (`shared/upstream-fixtures/port-ipc`,
/// verbatim) against the running agent: accepted with `{}`, programmed into
/// the datapath on their `tap…` interfaces, reported live by `GET /port`
/// and `GET /vm`, removed by `DELETE`.
#[test]
fn upstream_port_fixtures_on_the_running_agent() {
    require_rig!();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/upstream-fixtures/port-ipc");
    let dir = if dir.exists() {
        dir
    } else {
        std::path::PathBuf::from("/work/shared/upstream-fixtures/port-ipc")
    };
    let mut bodies: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), 2);
    let mut node = Node::start(&[]);
    // The fixtures' VN, project and addresses (11.0.0.0/24: config only,
    // nothing is sent to it).
    let first: Value = serde_json::from_str(&bodies[0]).unwrap();
    let vn = first["vn-id"].as_str().unwrap();
    node.create(
        "project",
        json!({"uuid": first["vm-project-id"], "fq_name": ["default-domain", "fixtures"]}),
    );
    node.create(
        "virtual-network",
        json!({"uuid": vn, "fq_name": ["default-domain", "fixtures", "vn1"], "parent_type": "project",
               "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                   "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "11.0.0.0", "ip_prefix_len": 24}}]}}]}),
    );
    let mut taps = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        let v: Value = serde_json::from_str(b).unwrap();
        let id = v["id"].as_str().unwrap();
        // Their system-names are upstream's tap<11 uuid chars>.
        let c = mk_container(
            &mut node,
            &format!("f{i}"),
            id,
            v["mac-address"].as_str().unwrap(),
        );
        assert_eq!(c.tap, v["system-name"].as_str().unwrap());
        taps.push(c);
        let (s, r) = node.port_api("POST", "/port", Some(b));
        assert_eq!((s, r.as_str()), (200, "{}"), "{b}");
    }
    let t0 = Instant::now();
    loop {
        let st = node.datapath_state();
        let names: Vec<&str> = st.vifs.values().map(|v| v.name.as_str()).collect();
        if taps.iter().all(|c| names.contains(&c.tap.as_str())) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "vifs {names:?}; agent log: {}",
            node.log("agent")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, live) = node.port_api(
        "GET",
        &format!("/port/{}", first["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 200, "{live}");
    let live: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["ip-address"], "11.0.0.3");
    assert_eq!(live["plen"], 24);
    assert_eq!(live["gateway"], "11.0.0.254");
    assert_eq!(live["dns-server"], "11.0.0.253");
    let (s, vm) = node.port_api(
        "GET",
        &format!("/vm/{}", first["instance-id"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 200, "{vm}");
    assert_eq!(
        serde_json::from_str::<Value>(&vm)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for b in &bodies {
        let v: Value = serde_json::from_str(b).unwrap();
        let (s, r) = node.port_api(
            "DELETE",
            &format!("/port/{}", v["id"].as_str().unwrap()),
            None,
        );
        assert_eq!((s, r.as_str()), (200, "{}"));
    }
    let t0 = Instant::now();
    while node
        .datapath_state()
        .vifs
        .values()
        .any(|v| taps.iter().any(|c| c.tap == v.name.as_str()))
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "vifs not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first packet of a flow is a UDP GSO super-packet (one `sendto` of
/// 8 x 1000 bytes with `UDP_SEGMENT`, as QUIC stacks send) from a
/// container whose port has security groups (so new flows go to the
/// agent): the FLOW_MISS trap reaches the agent, the super-packet waits
/// whole for the decision, and every datagram arrives at once. Before,
/// the trap was lost with the probe's actions and the flow stayed on hold
/// with nothing asking the agent: nothing arrived.
#[test]
fn a_gso_first_packet_on_a_policy_port_is_trapped_and_delivered() {
    require_rig!();
    let mut node = Node::start(&[]);
    let (a, b) = two_pinging(&mut node, "p9", "gso", 9);
    let dst = b.ip.unwrap().to_string();
    let recv = Command::new("ip")
        .args(["netns", "exec", &b.ns, "python3", "-c"])
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',5001)); s.settimeout(3)\n\
             print('ready',flush=True)\n\
             n=0\n\
             try:\n\
             \x20while n<8:\n\
             \x20\x20d,_=s.recvfrom(4096); n+=1 if len(d)==1000 else 0\n\
             except socket.timeout: pass\n\
             print(n)\n",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let misses = |n: &Node| n.intro_get("/flows").unwrap()["stats"]["misses"].as_u64();
    let before = misses(&node);
    let send = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3", "-c"])
        .arg(format!(
            "import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(17,103,1000)\n\
             print(s.sendto(bytes(8000),('{dst}',5001)))\n"
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&send.stdout).trim() == "8000",
        "UDP_SEGMENT send: {send:?}"
    );
    let out = recv.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().last(),
        Some("8"),
        "datagrams received of 8: {text}; flows {}; agent log {}",
        node.intro_get("/flows").unwrap(),
        node.log("agent")
    );
    assert!(misses(&node) > before, "the flow was trapped to the agent");
}

/// A metric's value in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Traps lost on purpose: the agent is stopped (SIGSTOP) while a
/// container opens 1500 UDP flows, so pkt0's socket fills and the
/// datapath's traps for most of them are dropped; their first datagrams
/// wait on hold. Once the agent runs again, the traps that fitted are
/// answered and the hold audit (period 1 s) decides the rest: every flow
/// recovers and every held datagram is delivered within a few audit
/// periods. The datapath's own bound (--hold-timeout) is set far away
/// so that only the audit can recover them, and pkt0 keeps no backlog
/// (--pkt0-backlog 0) so that a full queue loses traps as upstream's does
/// (with the default backlog the traps wait and none is lost). Before, those flows stayed on
/// hold until the agent restarted.
#[test]
fn flows_whose_traps_were_lost_recover_by_the_hold_audit() {
    require_rig!();
    const FLOWS: usize = 1500;
    let mut node = Node::start_with(
        &["--hold-timeout", "300", "--pkt0-backlog", "0"],
        &["--hold-audit-period", "1"],
    );
    let (a, b) = two_pinging(&mut node, "p10", "audit", 10);
    let bip = b.ip.unwrap().to_string();
    // The agent answers ARP: pin b's address in a while it is stopped.
    let neigh = sh(&format!("ip netns exec {} ip neigh show {bip}", a.ns));
    let text = String::from_utf8_lossy(&neigh.stdout).to_string();
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("no neighbour entry for {bip}: {text}"))
        .to_string();
    let st = sh(&format!(
        "ip netns exec {} ip neigh replace {bip} lladdr {mac} dev eth0 nud permanent",
        a.ns
    ));
    assert!(st.status.success(), "{st:?}");
    let recv = Command::new("ip")
        .args(["netns", "exec", &b.ns, "python3", "-c"])
        .arg(format!(
            "import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET,33,1<<23)\n\
             s.bind(('0.0.0.0',5001)); s.settimeout(20)\n\
             seen=set()\n\
             try:\n\
             \x20while len(seen)<{FLOWS}:\n\
             \x20\x20d,a=s.recvfrom(64); seen.add(a[1])\n\
             except socket.timeout: pass\n\
             print(len(seen))\n"
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    node.agent.signal("STOP");
    let send = Command::new("ip")
        .args(["netns", "exec", &a.ns, "python3", "-c"])
        .arg(format!(
            "import socket\n\
             for i in range({FLOWS}):\n\
             \x20s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             \x20s.bind(('0.0.0.0',20000+i)); s.sendto(b'x',('{bip}',5001)); s.close()\n\
             print('sent')\n"
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&send.stdout).contains("sent"),
        "{send:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    node.agent.signal("CONT");

    let t0 = Instant::now();
    let out = recv.wait_with_output().unwrap();
    let took = t0.elapsed();
    let got: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let m = node.metrics();
    let audited = metric(&m, "vrouter_agent_flows_audited_total").unwrap_or(0.0);
    let misses = metric(&m, "vrouter_agent_flow_misses_total").unwrap_or(0.0);
    eprintln!(
        "lost-trap recovery: {got}/{FLOWS} flows delivered in {} ms after SIGCONT; traps received {misses}, audited {audited}",
        took.as_millis()
    );
    let stats = node.intro_get("/flows").map(|f| f["stats"].clone());
    assert_eq!(
        got,
        FLOWS,
        "every flow delivered; flow stats {stats:?}; metrics:\n{m}\nagent log:\n{}",
        node.log("agent")
    );
    assert!(audited >= 1.0, "some traps were lost and audited:\n{m}");
    assert!(
        took < Duration::from_secs(8),
        "recovered within a few audit periods: {took:?}"
    );
    assert_eq!(metric(&m, "vrouter_flow_hold_entries"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "vrouter_flow_holds_expired_total"), Some(0.0));
}

/// Network ids are cluster-wide and only grow; the datapath's VRF table is
/// `--max-vrfs` long. A network whose id is beyond it gets a VRF of this
/// node's (upstream's agent allocates VRFs locally too), works, and keeps
/// it across an agent restart.
#[test]
fn a_network_id_beyond_the_vrf_table_gets_a_local_vrf_kept_across_restarts() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p9");
    let vn = node.vn_with(
        "p9",
        "far",
        "198.18.9.0",
        24,
        json!({"virtual_network_network_id": 70_000}),
    );
    let fq = ["default-domain", "p9", "far"];
    let a = attach(&mut node, "x", "p9", &vn, &fq, &[default_sg("p9")]);
    let b = attach(&mut node, "y", "p9", &vn, &fq, &[default_sg("p9")]);
    static_ip(&a, 24, "198.18.9.254");
    static_ip(&b, 24, "198.18.9.254");
    let bip = b.ip.unwrap().to_string();
    assert!(
        ping_until(&a.ns, &bip, Duration::from_secs(5)),
        "{}",
        node.log("agent")
    );
    let vrfs: Vec<u16> = node.datapath_state().vifs.values().map(|v| v.vrf).collect();
    assert_eq!(vrfs, vec![4095, 4095], "the highest free VRF of 4096");
    let vns = node.intro_get("/vns").unwrap();
    assert!(!vns.to_string().contains("not_programmed\":[{"), "{vns}");

    node.agent.kill9();
    node.start_agent();
    node.wait_ready();
    let k = node.intro_get("/ksync").unwrap();
    assert_eq!(k["last_reconcile_changes"], json!(0), "the same VRF: {k}");
    assert_eq!(common::ping(&a.ns, &bip, 3, "0.2"), 3);
}
