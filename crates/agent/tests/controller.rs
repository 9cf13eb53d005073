#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! The agent against upstream's own control-node messages: one compute
//! host (real `vrouter`, real `vrouter-agent --config-source controller`)
//! with a control-node peer; every agent-bound message of the upstream
//! fixtures (`crates/xmpp/tests/upstream`) is sent to the agent over its
//! real XMPP session, byte for byte, and its effect is read back from the
//! datapath over ksync (or, for config without ports, from the agent's
//! model). Malformed, unexpected and invalid input changes nothing and
//! does not end the session.

mod common;

use common::cluster::*;
use common::*;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::Duration;
use uuid::Uuid;

const UP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../xmpp/tests/upstream");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{UP}/{rel}")).unwrap()
}

/// The iqs of a master_output file, each exactly as in the file.
fn iqs(file: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = file;
    while let Some(i) = rest.find("<iq") {
        let Some(j) = rest[i..].find("</iq>") else {
            break;
        };
        out.push(rest[i..i + j + 5].to_string());
        rest = &rest[i + j + 5..];
    }
    out
}

fn uuid_of(ms: u64, ls: u64) -> String {
    Uuid::from_u64_pair(ms, ls).to_string()
}

fn vns(h: &Host) -> Vec<Value> {
    h.intro_get("/vns")
        .ok()
        .and_then(|v| v["virtual_networks"].as_array().cloned())
        .unwrap_or_default()
}

fn vn_named<'a>(v: &'a [Value], fq: &str) -> Option<&'a Value> {
    v.iter().find(|x| x["fq_name"] == json!(fq))
}

fn peer_status(h: &Host) -> Value {
    h.intro_get("/controller").unwrap()["status"]["peers"][0].clone()
}

/// A veth in the host for a port whose config came from a fixture.
fn port(c: &Cluster, h: usize, tag: &str, id: &str, vm: &str, vn: &str, mac: &str) {
    let host = &c.hosts[h];
    let tap = format!("tap{}", &id[..11]);
    let other = format!("o{tag}");
    ip(&[
        "-n", &host.ns, "link", "add", "name", &tap, "type", "veth", "peer", "name", &other,
    ]);
    ip(&["-n", &host.ns, "link", "set", &tap, "up"]);
    ip(&["-n", &host.ns, "link", "set", &other, "up"]);
    let body = json!({
        "id": id, "instance-id": vm, "vn-id": vn, "vm-project-id": "",
        "mac-address": mac, "ip-address": "", "ip6-address": "",
        "system-name": tap, "display-name": tag, "type": 0,
        "rx-vlan-id": -1, "tx-vlan-id": -1,
    });
    let (s, b) = host.port_api("POST", "/port", Some(&body.to_string()));
    assert_eq!(s, 200, "port add: {b}");
}

#[test]
fn upstream_control_node_messages_replayed_into_the_agent() {
    require_rig!();
    let mut c = Cluster::new(1, 1, &[]);
    let agent = c.hosts[0].name.clone();
    let h = 0;

    // ---- IF-MAP config: upstream's ifmap_xmpp_test output, verbatim --
    for iq in iqs(&read(
        "ifmap-config-cn-to-agent/cli1_vn1_vm3_add.master_output",
    )) {
        c.inject(0, &agent, &iq);
    }
    let vn27 = uuid_of(3581783077679746946, 12855682262450960435);
    c.wait_for("vn27 in the model", Duration::from_secs(5), || {
        vn_named(&vns(&c.hosts[h]), "default-domain:demo:vn27").is_some()
    });
    let v = vns(&c.hosts[h]);
    let vn = vn_named(&v, "default-domain:demo:vn27").unwrap();
    assert_eq!(vn["uuid"], json!(vn27));
    // No network id in this old config: a local VRF id.
    let vrf = vn["vrf"].as_u64().unwrap() as u16;
    assert!(vrf >= 4000, "{vn}");
    // Its three ports (the config names their VMs, VMIs and addresses).
    let ports = [
        (
            "p1",
            uuid_of(17230376522028041378, 11822179603111825347),
            uuid_of(3256248227819900421, 12615962661188075799),
            "02:ef:1e:98:28:05",
            [27, 1, 1, 252],
        ),
        (
            "p2",
            uuid_of(14134676587528801482, 11681603443361511050),
            uuid_of(10657595311160051973, 11849690325284297516),
            "02:c4:28:75:77:b6",
            [27, 1, 1, 251],
        ),
        (
            "p3",
            uuid_of(1154778480365947891, 13744493479135540169),
            uuid_of(4886553666083113503, 10105342759908109962),
            "02:10:06:98:e8:dc",
            [27, 1, 1, 253],
        ),
    ];
    for (tag, id, vm, mac, _) in &ports {
        port(&c, h, tag, id, vm, &vn27, mac);
    }
    c.wait_for(
        "the three ports programmed",
        Duration::from_secs(10),
        || {
            let s = c.hosts[h].datapath_state();
            ports.iter().all(|(_, _, _, _, a)| {
                s.routes
                    .keys()
                    .any(|k| k.vrf == vrf && k.family == 2 && k.addr[..4] == a[..] && k.plen == 32)
            })
        },
    );
    let s = c.hosts[h].datapath_state();
    assert_eq!(s.vifs.values().filter(|v| v.vrf == vrf).count(), 3);
    // The subnet's gateway (27.1.1.254) answers as the vRouter.
    assert!(s.routes.iter().any(|(k, d)| k.vrf == vrf
        && k.addr[..4] == [27, 1, 1, 254]
        && d.nh == agent::program::RECEIVE_NH));
    // The agent published them to the control node (inet + EVPN each).
    c.wait_for("routes published", Duration::from_secs(5), || {
        c.peer(0)
            .stats()
            .routes
            .iter()
            .filter(|(k, _)| k.0 == "default-domain:demo:vn27:vn27")
            .count()
            == 6
    });

    // The other IF-MAP outputs: their networks reach the model.
    for (file, vn) in [
        (
            "cli1_vn2_np1_add.master_output",
            "default-domain:demo:vn27-2",
        ),
        (
            "cli1_vn2_np2_add.master_output",
            "default-domain:demo:vn27-1",
        ),
        (
            "cli2_vn2_np2_add_a1s27.master_output",
            "default-domain:demo:vn27-1",
        ),
        (
            "cli2_vn2_np2_add_a1s28.master_output",
            "default-domain:demo:vn28-2",
        ),
        (
            "cli2_vn2_vm2_add_a1s27.master_output",
            "default-domain:demo:vn27-2",
        ),
        (
            "cli2_vn2_vm2_add_a1s28.master_output",
            "default-domain:demo:vn28-2",
        ),
        (
            "cli2_vn3_vm6_np2_add_a1s27.master_output",
            "default-domain:demo:vn27-3",
        ),
        (
            "cli2_vn3_vm6_np2_add_a1s28.master_output",
            "default-domain:demo:vn28-3",
        ),
    ] {
        let text = read(&format!("ifmap-config-cn-to-agent/{file}"));
        let n = iqs(&text).len();
        assert!(n > 0, "{file}");
        for iq in iqs(&text) {
            c.inject(0, &agent, &iq);
        }
        let present = |name: &str| vn_named(&vns(&c.hosts[h]), name).is_some();
        if text.contains(&format!("<name>{vn}</name>")) {
            c.wait_for(&format!("{vn} from {file}"), Duration::from_secs(5), || {
                present(vn)
            });
        }
    }

    // An old message whose `to` names no channel: upstream's mux drops it.
    let dropped = peer_status(&c.hosts[h])["dropped"].as_u64().unwrap();
    c.inject(
        0,
        &agent,
        &read("ifmap-config-cn-to-agent/agent_filter_test_cfg_test.xml"),
    );
    c.wait_for("the message dropped", Duration::from_secs(3), || {
        peer_status(&c.hosts[h])["dropped"].as_u64().unwrap() == dropped + 1
    });
    assert!(vn_named(
        &vns(&c.hosts[h]),
        "default-domain:b859ddbabe3d4c4dba8402084831e6fe:vn1"
    )
    .is_none());

    // The agent parser's config bodies (types foo and bar: unknown here).
    let quiet = c.hosts[h].datapath_state();
    for f in [
        "test_add_cfg.xml",
        "test_link_add_cfg.xml",
        "test_link_del_cfg.xml",
        "test_del_cfg.xml",
    ] {
        let body = read(&format!("ifmap-agent-parser-testdata/{f}"));
        let cfg = xmpp::xml::Element::parse(&body).unwrap();
        c.inject(
            0,
            &agent,
            &xmpp::stanza::config_iq(&format!("default-global-system-config:{agent}"), cfg),
        );
    }

    // ---- routes: the captured control-node update, verbatim ---------------
    // The network it is for, with a port here, and the compute node it
    // points to (10.1.1.3) reachable on the fabric.
    c.project("default");
    let (ext, gw) = c.vn("default", "ext-vn2", "198.18.77.0", 24);
    let x = c.attach(h, "x", "default", &ext, &gw, 24);
    let host = &c.hosts[h];
    ip(&["-n", &host.ns, "route", "add", "10.1.1.0/24", "dev", "fab"]);
    ip(&[
        "-n",
        &host.ns,
        "neigh",
        "add",
        "10.1.1.3",
        "lladdr",
        "02:00:0a:01:01:03",
        "dev",
        "fab",
        "nud",
        "permanent",
    ]);
    let ext_vrf = c.wait_vrf(h, "default-domain:default:ext-vn2");
    c.wait_for("subscribed to ext-vn2", Duration::from_secs(5), || {
        c.peer(0).stats().subscriptions.iter().any(|(_, s)| {
            s.iter()
                .any(|r| r == "default-domain:default:ext-vn2:ext-vn2")
        })
    });
    let update = read("xmpp/captured/cn_to_agent_route_update_inet.xml");
    c.inject(0, &agent, &update);
    c.wait_for("remote routes programmed", Duration::from_secs(5), || {
        let s = c.hosts[h].datapath_state();
        [[2, 0, 0, 2], [10, 235, 65, 0]].iter().all(|a| {
            s.routes
                .keys()
                .any(|k| k.vrf == ext_vrf && k.addr[..4] == a[..] && k.plen == 32)
        })
    });
    let s = c.hosts[h].datapath_state();
    for (addr, label) in [([2, 0, 0, 2], 47), ([10, 235, 65, 0], 21)] {
        let (_, d) = s
            .routes
            .iter()
            .find(|(k, _)| k.vrf == ext_vrf && k.addr[..4] == addr && k.plen == 32)
            .unwrap();
        assert_eq!(d.label, label);
        let nh = &s.nhs[&d.nh];
        let dp_core::NhKind::Tunnel {
            kind,
            sip,
            dip,
            encap,
            ..
        } = &nh.kind
        else {
            panic!("{nh:?}")
        };
        // gre first in upstream's default priority, and offered.
        assert_eq!(*kind, dp_core::TunnelKind::MplsOverGre);
        assert_eq!(Ipv4Addr::from(*dip), Ipv4Addr::new(10, 1, 1, 3));
        assert_eq!(Ipv4Addr::from(*sip), host.ip);
        assert_eq!(encap[..6], [2, 0, 0x0a, 1, 1, 3]);
    }

    // ---- ECMP: one prefix, next hops on two compute nodes -------------------
    ip(&[
        "-n",
        &host.ns,
        "neigh",
        "add",
        "10.1.1.4",
        "lladdr",
        "02:00:0a:01:01:04",
        "dev",
        "fab",
        "nud",
        "permanent",
    ]);
    let nh = |addr: &str, label: i64| xmpp::unicast::NextHop {
        af: 1,
        address: addr.into(),
        label,
        encap: vec!["gre".into()],
        virtual_network: "default-domain:default:ext-vn2".into(),
        ..Default::default()
    };
    let item = |nhs: Vec<xmpp::unicast::NextHop>| {
        xmpp::unicast::InetItem {
            id: Some("2.0.0.9/32".into()),
            nlri: xmpp::unicast::Nlri {
                af: 1,
                safi: 1,
                address: "2.0.0.9/32".into(),
            },
            next_hops: nhs,
            virtual_network: "default-domain:default:ext-vn2".into(),
            local_preference: 100,
            ..Default::default()
        }
        .encode()
    };
    let node = format!("1/1/{}", "default-domain:default:ext-vn2:ext-vn2");
    let route_nh = |s: &agent::program::State| {
        s.routes
            .iter()
            .find(|(k, _)| k.vrf == ext_vrf && k.addr[..4] == [2, 0, 0, 9] && k.plen == 32)
            .map(|(_, d)| s.nhs[&d.nh].clone())
    };
    c.inject(
        0,
        &agent,
        &xmpp::stanza::route_event(
            &agent,
            &node,
            &[item(vec![nh("10.1.1.3", 31), nh("10.1.1.4", 32)])],
            &[],
        ),
    );
    c.wait_for("ECMP route programmed", Duration::from_secs(5), || {
        route_nh(&c.hosts[h].datapath_state())
            .is_some_and(|n| matches!(n.kind, dp_core::NhKind::Composite { .. }))
    });
    let s = c.hosts[h].datapath_state();
    let comp = route_nh(&s).unwrap();
    let dp_core::NhKind::Composite { components } = &comp.kind else {
        unreachable!()
    };
    let mut legs: Vec<(Ipv4Addr, u32)> = components
        .iter()
        .map(|m| {
            let dp_core::NhKind::Tunnel { kind, dip, .. } = &s.nhs[&m.nh].kind else {
                panic!("component {m:?} is not a tunnel: {:?}", s.nhs[&m.nh])
            };
            assert_eq!(*kind, dp_core::TunnelKind::MplsOverGre);
            (Ipv4Addr::from(*dip), m.label)
        })
        .collect();
    legs.sort();
    assert_eq!(
        legs,
        [
            (Ipv4Addr::new(10, 1, 1, 3), 31),
            (Ipv4Addr::new(10, 1, 1, 4), 32)
        ]
    );
    // One leg goes: a plain tunnel route, the composite removed.
    c.inject(
        0,
        &agent,
        &xmpp::stanza::route_event(&agent, &node, &[item(vec![nh("10.1.1.4", 32)])], &[]),
    );
    c.wait_for("ECMP down to one next hop", Duration::from_secs(5), || {
        let s = c.hosts[h].datapath_state();
        route_nh(&s).is_some_and(|n| matches!(n.kind, dp_core::NhKind::Tunnel { .. }))
            && !s.nhs.contains_key(&comp.id)
    });
    // Withdrawn: the route and its tunnel next hop to 10.1.1.4 go.
    c.inject(
        0,
        &agent,
        &xmpp::stanza::route_event(&agent, &node, &[], &["2.0.0.9/32".to_string()]),
    );
    c.wait_for("ECMP route withdrawn", Duration::from_secs(5), || {
        let s = c.hosts[h].datapath_state();
        route_nh(&s).is_none()
            && !s.nhs.values().any(|n| {
                matches!(&n.kind, dp_core::NhKind::Tunnel { dip, .. }
                    if Ipv4Addr::from(*dip) == Ipv4Addr::new(10, 1, 1, 4))
            })
    });

    let dropped_before = peer_status(&c.hosts[h])["dropped"].as_u64().unwrap();
    let state = c.hosts[h].datapath_state();

    // ---- what must change nothing ---------------------------------------------
    // Every bad item, sent as a route update for ext-vn2.
    let ri = "default-domain:default:ext-vn2:ext-vn2";
    let mut bad = 0;
    for e in std::fs::read_dir(format!("{UP}/xmpp/bgp-testdata-bad-items")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let item = xmpp::xml::Element::parse(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
        let node = if name.starts_with("bad_inet6") {
            format!("2/1/{ri}")
        } else if name.starts_with("bad_enet") {
            format!("25/242/{ri}")
        } else if name.starts_with("bad_mcast") {
            format!("1/241/{ri}")
        } else {
            format!("1/1/{ri}")
        };
        c.inject(
            0,
            &agent,
            &xmpp::stanza::route_event(&agent, &node, &[item], &[]),
        );
        bad += 1;
    }
    // Upstream's framing and legacy messages (one malformed), verbatim.
    for f in [
        "iq.xml",
        "message.xml",
        "pubsub.xml",
        "pubsub_pub.xml",
        "pubsub_sub.xml",
        "xmpp_l3_vpn.xml",
    ] {
        c.inject(0, &agent, &read(&format!("xmpp/legacy-xmpp-testdata/{f}")));
    }
    // The end-of-RIB marker (sweeps nothing that is fresh).
    c.inject(
        0,
        &agent,
        &xmpp::stanza::end_of_rib(xmpp::jid::CONTROL_NODE_JID, &agent),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        agent::program::same(&c.hosts[h].datapath_state(), &state),
        "the datapath changed"
    );
    let st = peer_status(&c.hosts[h]);
    assert_eq!(st["state"], json!("established"), "{st}");
    assert_eq!(st["flaps"], json!(0), "{st}");
    // Bad items that are not multicast (the agent does not take those)
    // and the malformed legacy message were counted as dropped.
    assert!(
        st["dropped"].as_u64().unwrap() >= dropped_before + 26,
        "{st} after {bad} bad items"
    );
    let _ = quiet;

    // ---- withdrawal: the same update's routes retracted ------------------
    c.inject(
        0,
        &agent,
        &xmpp::stanza::route_event(
            &agent,
            &format!("1/1/{ri}"),
            &[],
            &["2.0.0.2/32".into(), "10.235.65.0/32".into()],
        ),
    );
    c.wait_for("remote routes withdrawn", Duration::from_secs(5), || {
        let s = c.hosts[h].datapath_state();
        !s.routes.keys().any(|k| {
            k.vrf == ext_vrf && (k.addr[..4] == [2, 0, 0, 2] || k.addr[..4] == [10, 235, 65, 0])
        })
    });
    // The tunnel next hop went with its last route.
    let s = c.hosts[h].datapath_state();
    assert!(!s
        .nhs
        .values()
        .any(|n| matches!(n.kind, dp_core::NhKind::Tunnel { .. })));
    drop(x);
}

trait WaitVrf {
    fn wait_vrf(&self, h: usize, vn: &str) -> u16;
}

impl WaitVrf for Cluster {
    fn wait_vrf(&self, h: usize, vn: &str) -> u16 {
        self.wait_for(&format!("{vn} programmed"), Duration::from_secs(10), || {
            let v = vns(&self.hosts[h]);
            match vn_named(&v, vn) {
                Some(x) => {
                    let vrf = x["vrf"].as_u64().unwrap_or(0) as u16;
                    let s = self.hosts[h].datapath_state();
                    s.vifs.values().any(|f| f.vrf == vrf)
                }
                None => false,
            }
        });
        let v = vns(&self.hosts[h]);
        vn_named(&v, vn).unwrap()["vrf"].as_u64().unwrap() as u16
    }
}

/// `xmpp_auth_enable`: the agent opens the stream, negotiates STARTTLS
/// with its certificate and the control node's CA, and the config comes
/// over TLS.
#[test]
fn xmpp_over_tls() {
    require_rig!();
    let tls = format!("{}/../xmpp/tests/tls", env!("CARGO_MANIFEST_DIR"));
    let f = |n: &str| std::fs::read(format!("{tls}/{n}")).unwrap();
    let acceptor = xmpp::session::tls_server(&f("server.pem"), &f("server.key")).unwrap();
    let cert = format!("{tls}/client.pem");
    let key = format!("{tls}/client.key");
    let ca = format!("{tls}/ca.pem");
    let c = Cluster::with_peer_tls(
        1,
        1,
        &[
            "--DEFAULT.xmpp_auth_enable",
            "--DEFAULT.xmpp_server_cert",
            &cert,
            "--DEFAULT.xmpp_server_key",
            &key,
            "--DEFAULT.xmpp_ca_cert",
            &ca,
        ],
        Some(acceptor),
    );
    c.wait_for("config over TLS", Duration::from_secs(10), || {
        c.hosts[0]
            .intro_get("/controller")
            .is_ok_and(|v| v["status"]["config_nodes"].as_u64().unwrap_or(0) >= 3)
    });
    assert_eq!(peer_status(&c.hosts[0])["state"], json!("established"));
}
