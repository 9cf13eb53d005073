#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! The real `vrouter` and `vrouter-agent` with containers of different
//! MTUs and with IPv6, driven through the VNC and port APIs:
//!
//! * DHCP (option 26) announces each container's interface MTU (or the
//!   subnet's configured `interface-mtu` DHCP option);
//! * a DF packet too big for the destination's port is answered with ICMP
//!   fragmentation needed carrying that MTU (the datapath's HANDLE_DF
//!   trap, answered by the agent as upstream's does), IPv6 with packet too
//!   big; the agent counts what it sent;
//! * DHCPv6 (`dhclient -6`) hands out the port's IPv6 address, a router
//!   solicitation (`rdisc6`) gets upstream's router advertisement, the
//!   default router's link-local address and the gateway are resolved and
//!   answer ping.

mod common;

use common::*;
use serde_json::json;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A container with `mtu` on both ends of its veth, attached like the
/// Docker driver does, with an IPv4 and (if the VN has an IPv6 subnet) an
/// IPv6 instance-ip.
struct Port6 {
    c: Container,
    ip6: Option<String>,
}

fn attach_mtu(node: &mut Node, tag: &str, vn_uuid: &str, fq: &[&str], mtu: u16, v6: bool) -> Port6 {
    let vmi = node.create(
        "virtual-machine-interface",
        json!({
            "fq_name": ["default-domain", "p1", format!("vmi-{tag}")],
            "parent_type": "project",
            "virtual_network_refs": [{"to": fq, "uuid": vn_uuid}],
        }),
    );
    let mac = node.read("virtual-machine-interface", &vmi)
        ["virtual_machine_interface_mac_addresses"]["mac_address"][0]
        .as_str()
        .unwrap()
        .to_string();
    let iip = |family: &str| {
        let u = node.create(
            "instance-ip",
            json!({
                "fq_name": [format!("iip-{tag}-{family}-{}", std::process::id())],
                "instance_ip_family": family,
                "virtual_network_refs": [{"to": fq, "uuid": vn_uuid}],
                "virtual_machine_interface_refs": [{"uuid": vmi}],
            }),
        );
        node.read("instance-ip", &u)["instance_ip_address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ip4: Ipv4Addr = iip("v4").parse().unwrap();
    let ip6 = v6.then(|| iip("v6"));
    let mut c = mk_container(node, tag, &vmi, &mac);
    c.ip = Some(ip4);
    // Both ends, before the port is announced: the datapath reads the
    // MTU when it opens the interface.
    ip(&[
        "-n",
        &node.host,
        "link",
        "set",
        &c.tap,
        "mtu",
        &mtu.to_string(),
    ]);
    ip(&["-n", &c.ns, "link", "set", "eth0", "mtu", &mtu.to_string()]);
    let body = json!({
        "id": vmi, "instance-id": vmi, "vn-id": vn_uuid, "vm-project-id": "",
        "mac-address": mac, "ip-address": ip4.to_string(),
        "ip6-address": ip6.clone().unwrap_or_default(),
        "system-name": c.tap, "display-name": tag, "type": 0,
        "rx-vlan-id": -1, "tx-vlan-id": -1,
    });
    let (s, b) = node.port_api("POST", "/port", Some(&body.to_string()));
    assert_eq!(s, 200, "port add: {b}");
    Port6 { c, ip6 }
}

/// `udhcpc` once in the container; the lease line it reports.
fn dhcp_lease(node: &Node, c: &Container) -> String {
    let dir = node.dir.path().to_owned();
    let script = dir.join(format!("udhcpc-{}.sh", c.ns));
    let log = dir.join(format!("udhcpc-{}.log", c.ns));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in bound|renew)\n echo \"$1 ip=$ip mask=$mask router=$router mtu=$mtu\" >> {}\n;;\nesac\n",
            log.display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", script.display()));
    let out = Command::new("ip")
        .args([
            "netns", "exec", &c.ns, "busybox", "udhcpc", "-n", "-q", "-i", "eth0", "-t", "5", "-T",
            "1",
        ])
        .arg("-s")
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let _ = out;
    let s = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    s.lines()
        .rfind(|l| l.starts_with("bound"))
        .unwrap_or_else(|| panic!("no DHCP lease; agent log: {}", node.log("agent")))
        .to_string()
}

/// `ping` with options; the whole output.
fn ping_out(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ping"])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn metric(node: &Node, name: &str) -> u64 {
    node.metrics()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn dhcp_announces_the_port_mtu_and_df_packets_get_fragmentation_needed() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p1");
    let vn = node.vn("p1", "blue", "198.18.3.0", 24);
    let fq = ["default-domain", "p1", "blue"];
    let a = attach_mtu(&mut node, "a", &vn, &fq, 1500, false);
    let b = attach_mtu(&mut node, "b", &vn, &fq, 1400, false);
    let la = dhcp_lease(&node, &a.c);
    let lb = dhcp_lease(&node, &b.c);
    assert!(la.contains("mtu=1500"), "{la}");
    assert!(lb.contains("mtu=1400"), "{lb}");
    for (p, l) in [(&a, &la), (&b, &lb)] {
        assert!(l.contains(&format!("ip={} ", p.c.ip.unwrap())), "{l}");
        static_ip(&p.c, 24, "198.18.3.1");
    }
    let bip = b.c.ip.unwrap().to_string();
    assert!(ping_until(&a.c.ns, &bip, Duration::from_secs(5)));

    // A 1500-byte DF packet towards b's 1400-byte port: fragmentation
    // needed, with b's MTU, from the gateway.
    let out = ping_out(
        &a.c.ns,
        &[
            "-n", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1472", &bip,
        ],
    );
    assert!(
        out.contains("mtu = 1400") || out.contains("mtu=1400"),
        "ping -M do: {out}\n{}",
        node.log("agent")
    );
    // The sender learnt the path MTU: what fits goes through.
    let out = ping_out(
        &a.c.ns,
        &[
            "-n", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1372", &bip,
        ],
    );
    assert!(out.contains(" 0% packet loss"), "{out}");
    // Without DF the datapath fragments.
    let out = ping_out(
        &a.c.ns,
        &[
            "-n", "-c", "2", "-i", "0.3", "-W", "1", "-M", "dont", "-s", "1472", &bip,
        ],
    );
    assert!(out.contains(" 0% packet loss"), "{out}");
    let _srv = tcp_server(&b.c.ns, 5001);
    assert!(tcp_ok(&a.c.ns, &bip, 5001));
    let sent = node
        .metrics()
        .lines()
        .find(|l| l.contains("outcome=\"icmp_too_big_sent\""))
        .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    assert!(sent >= 1, "{}", node.metrics());

    // An interface MTU configured among the subnet's DHCP options wins.
    let (s, body) = node.vnc(
        "PUT",
        &format!("/virtual-network/{vn}"),
        Some(&json!({"virtual-network": {
            "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [{
                    "subnet": {"ip_prefix": "198.18.3.0", "ip_prefix_len": 24},
                    "dhcp_option_list": {"dhcp_option": [
                        {"dhcp_option_name": "interface-mtu", "dhcp_option_value": "1300"}
                    ]}
                }]}
            }]
        }})),
    );
    assert_eq!(s, 200, "{body}");
    let t0 = Instant::now();
    loop {
        let l = dhcp_lease(&node, &a.c);
        if l.contains("mtu=1300") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{l}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = metric(&node, "vrouter_agent_pkt0_rx_total");
}

#[test]
fn ipv6_dhcp_router_advertisement_neighbours_and_packet_too_big() {
    require_rig!();
    for t in ["dhclient", "rdisc6"] {
        if Command::new("which")
            .arg(t)
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            eprintln!("SKIP: needs {t} (scripts/lib/deps.sh installs it)");
            return;
        }
    }
    let mut node = Node::start(&[]);
    node.project("p1");
    let vn = node.create(
        "virtual-network",
        json!({
            "fq_name": ["default-domain", "p1", "green"],
            "parent_type": "project",
            "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [
                    {"subnet": {"ip_prefix": "198.18.4.0", "ip_prefix_len": 24}},
                    {"subnet": {"ip_prefix": "2001:db8:4::", "ip_prefix_len": 64}}
                ]}
            }]
        }),
    );
    let fq = ["default-domain", "p1", "green"];
    let a = attach_mtu(&mut node, "a6", &vn, &fq, 1500, true);
    let b = attach_mtu(&mut node, "b6", &vn, &fq, 1400, true);
    // Upstream's default gateway: the top of the subnet (DNS below it).
    let gw6 = "2001:db8:4::ffff:ffff:ffff:fffe";
    // Link-local addresses usable at once (no duplicate address detection).
    for p in [&a, &b] {
        sh(&format!(
            "ip netns exec {ns} sysctl -qw net.ipv6.conf.eth0.accept_dad=0; \
             ip -n {ns} link set eth0 down; ip -n {ns} link set eth0 up",
            ns = p.c.ns
        ));
    }
    std::thread::sleep(Duration::from_millis(300));

    // Router solicitation -> upstream's advertisement.
    let out = Command::new("ip")
        .args([
            "netns", "exec", &a.c.ns, "rdisc6", "-1", "-r", "3", "-w", "1000", "eth0",
        ])
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{raw}");
    // One space wherever rdisc6 aligns columns.
    let ra = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Hop limit : 64",
        "Stateful address conf. : Yes",
        "Stateful other conf. : Yes",
        "Router lifetime : 9000",
        "Prefix : 2001:db8:4::/64",
        "On-link : Yes",
        "Autonomous address conf.: No",
        "Source link-layer address: 00:00:5E:00:01:00",
        "from fe80::5e00:100",
    ] {
        assert!(
            ra.contains(want),
            "router advertisement lacks {want:?}:\n{ra}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            node.log("agent")
        );
    }

    // DHCPv6: the port's address.
    let dir = node.dir.path().to_owned();
    for p in [&a, &b] {
        let lease = dir.join(format!("{}.leases6", p.c.ns));
        let pid = dir.join(format!("{}.pid6", p.c.ns));
        // In the foreground (-d), stopped here once the lease is written:
        // a backgrounded copy outlived failed runs (its pid file was read
        // before the forked child rewrote it) and kept the test's open
        // files, the e2e lock among them.
        let errlog = dir.join(format!("{}.dhclient6.log", p.c.ns));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &p.c.ns, "dhclient", "-6", "-1", "-d", "-v"])
            .arg("-lf")
            .arg(&lease)
            .arg("-pf")
            .arg(&pid)
            .args(["-sf", "/bin/true", "eth0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&errlog).unwrap())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end
            && !std::fs::read_to_string(&lease)
                .unwrap_or_default()
                .contains("iaaddr")
            && child.try_wait().ok().flatten().is_none()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let stderr = std::fs::read(&errlog).unwrap_or_default();
        let leases = std::fs::read_to_string(&lease).unwrap_or_default();
        let want = p.ip6.clone().unwrap();
        assert!(
            leases.contains(&format!("iaaddr {want}")),
            "no DHCPv6 lease of {want}: {leases}\n{}\n{}",
            String::from_utf8_lossy(&stderr),
            node.log("agent")
        );
        sh(&format!(
            "ip -n {} -6 addr add {want}/64 dev eth0 nodad",
            p.c.ns
        ));
    }
    let bip6 = b.ip6.clone().unwrap();
    // The gateway answers (neighbour discovery, then echo).
    let out = Command::new("ip")
        .args([
            "netns", "exec", &a.c.ns, "ping", "-6", "-n", "-c", "2", "-i", "0.3", "-W", "1", gw6,
        ])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains(" 0% packet loss"),
        "ping {gw6}: {s}\nroutes: {}\n{}\n{}",
        http(
            "GET",
            &format!("http://127.0.0.1:{}/routes", node.intro),
            None
        )
        .map(|(_, b)| b)
        .unwrap_or_default(),
        node.metrics()
            .lines()
            .filter(|l| l.contains("pkt0") || l.contains("drop"))
            .collect::<Vec<_>>()
            .join("\n"),
        node.log("agent")
    );
    // The container reaches the other one (through the default router of
    // the advertisement, whose link-local address the datapath resolves).
    let t0 = Instant::now();
    loop {
        let out = ping_out(&a.c.ns, &["-6", "-n", "-c", "1", "-W", "1", &bip6]);
        if out.contains(" 0% packet loss") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{out}");
    }
    // Too big for b's port: packet too big with its MTU.
    let out = ping_out(
        &a.c.ns,
        &[
            "-6", "-n", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1452", &bip6,
        ],
    );
    assert!(
        out.contains("mtu=1400") || out.contains("mtu = 1400"),
        "ping -6 -M do: {out}\n{}",
        node.log("agent")
    );
    let out = ping_out(
        &a.c.ns,
        &[
            "-6", "-n", "-c", "2", "-i", "0.3", "-W", "1", "-s", "1352", &bip6,
        ],
    );
    assert!(out.contains(" 0% packet loss"), "{out}");
}
