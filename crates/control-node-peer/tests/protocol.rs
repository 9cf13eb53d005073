//! The peer against raw XMPP sessions: upstream's agent-to-control-node
//! test messages replayed verbatim, route reflection between two agents,
//! IF-MAP config from a store, and upstream's rules for closing a session.

#![allow(clippy::unwrap_used)]

use control_node_peer::{Config, Peer};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use xmpp::ifmap::graph::Graph;
use xmpp::session::{self, ClientConfig, Event, Session};
use xmpp::stanza::{self, IqBody, Stanza};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../xmpp/tests/upstream/xmpp");

async fn peer() -> (Peer, Arc<vnc_api::Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = vnc_api::Store::open(&dir.path().join("c.redb")).unwrap();
    let cfg = Config {
        eor_delay: Duration::from_millis(200),
        ..Config::default()
    };
    let p = Peer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&store), cfg)
        .await
        .unwrap();
    (p, store, dir)
}

async fn agent(p: &Peer, name: &str) -> Session {
    session::connect(p.addr(), &ClientConfig::new(name))
        .await
        .unwrap()
}

/// The next stanza within `t`, parsed.
async fn next(s: &mut Session, t: Duration) -> Option<Stanza> {
    match tokio::time::timeout(t, s.recv()).await {
        Ok(Event::Stanza(x)) => Some(Stanza::parse(&x).unwrap()),
        _ => None,
    }
}

/// Stanzas until `f` matches (or none within 3 s).
async fn until(s: &mut Session, f: impl Fn(&Stanza) -> bool) -> Option<Stanza> {
    let end = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < end {
        match next(s, Duration::from_millis(200)).await {
            Some(x) if f(&x) => return Some(x),
            _ => {}
        }
    }
    None
}

async fn wait(f: impl Fn() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("condition not met in 3 s");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/bgp-testdata-agent-to-cn/{name}")).unwrap()
}

#[tokio::test]
async fn upstream_test_messages_subscribe_publish_dissociate_unsubscribe() {
    let (p, _store, _d) = peer().await;
    let a = agent(&p, "agent@vnsw.contrailsystems.com").await;
    for f in ["pubsub_sub.xml", "pubsub_sub2.xml", "pubsub_sub3.xml"] {
        a.send(fixture(f)).await.unwrap();
    }
    wait(|| {
        p.stats()
            .subscriptions
            .first()
            .is_some_and(|(_, s)| s.len() == 3)
    })
    .await;
    // publish + collection associate, as one write of two iqs.
    a.send(fixture("pubsub_pub.xml")).await.unwrap();
    wait(|| p.stats().accepted == 1).await;
    let st = p.stats();
    assert_eq!(
        st.routes,
        vec![(("blue".into(), "1/1".into(), "10.1.2.1/32".into()), 1)]
    );
    a.send(fixture("pubsub_dis.xml")).await.unwrap();
    wait(|| p.stats().routes.is_empty()).await;
    for f in ["pubsub_usub.xml", "pubsub_usub2.xml", "pubsub_usub3.xml"] {
        a.send(fixture(f)).await.unwrap();
    }
    wait(|| {
        p.stats()
            .subscriptions
            .first()
            .is_some_and(|(_, s)| s.is_empty())
    })
    .await;
    assert!(p.stats().closed_by_peer.is_empty());
    assert!(p.stats().rejected.is_empty());
}

#[tokio::test]
async fn routes_are_reflected_to_the_other_agents_only() {
    let (p, _store, _d) = peer().await;
    let mut a = agent(&p, "a").await;
    let mut b = agent(&p, "b").await;
    let ri = "default-domain:p:blue:blue";
    for s in [&a, &b] {
        s.send(stanza::instance_subscribe("x", 0, ri, 1, true))
            .await
            .unwrap();
    }
    wait(|| {
        p.stats().subscriptions.iter().all(|(_, s)| s.len() == 1) && p.stats().agents.len() == 2
    })
    .await;
    let item = xmpp::unicast::InetItem {
        nlri: xmpp::unicast::Nlri {
            af: 1,
            safi: 1,
            address: "10.0.0.1/32".into(),
        },
        next_hops: vec![xmpp::unicast::NextHop {
            af: 1,
            address: "192.0.2.1".into(),
            label: 22,
            encap: vec!["gre".into(), "udp".into()],
            virtual_network: "default-domain:p:blue".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (pb, col) = stanza::publish(
        "a",
        0,
        false,
        ri,
        &format!("1/1/{ri}/10.0.0.1/32"),
        item.encode(),
        true,
    );
    a.send(pb).await.unwrap();
    a.send(col).await.unwrap();
    let got = until(
        &mut b,
        |s| matches!(s, Stanza::Message(m) if !m.items.is_empty()),
    )
    .await
    .unwrap();
    let Stanza::Message(m) = got else { panic!() };
    assert_eq!(m.to, "b/bgp-peer");
    assert_eq!(m.items_node.as_deref(), Some(&*format!("1/1/{ri}")));
    let it = xmpp::unicast::InetItem::parse(&m.items[0]).unwrap();
    assert_eq!(it.id.as_deref(), Some("10.0.0.1/32"));
    assert_eq!(it.next_hops[0].label, 22);
    // Not back to its origin; both get the end-of-RIB marker.
    let back = until(
        &mut a,
        |s| matches!(s, Stanza::Message(m) if !m.items.is_empty()),
    )
    .await;
    assert!(back.is_none(), "{back:?}");
    // Withdrawn when the origin goes.
    drop(a);
    let gone = until(
        &mut b,
        |s| matches!(s, Stanza::Message(m) if !m.retracts.is_empty()),
    )
    .await
    .unwrap();
    let Stanza::Message(m) = gone else { panic!() };
    assert_eq!(m.retracts, ["10.0.0.1/32"]);
}

#[tokio::test]
async fn upstream_rules_close_the_session() {
    let (p, _store, _d) = peer().await;
    // A route for an instance not subscribed to.
    let mut a = agent(&p, "a").await;
    a.send(fixture("pubsub_pub.xml")).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Event::Closed(r) = a.recv().await {
                break r;
            }
        }
    })
    .await;
    assert!(closed.is_ok());
    // A duplicate subscribe; a spurious unsubscribe.
    for msgs in [
        vec![fixture("pubsub_sub.xml"), fixture("pubsub_sub.xml")],
        vec![fixture("pubsub_usub.xml")],
    ] {
        let mut a = agent(&p, "a").await;
        for m in msgs {
            a.send(m).await.unwrap();
        }
        let r = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let Event::Closed(r) = a.recv().await {
                    break r;
                }
            }
        })
        .await;
        assert!(r.is_ok());
    }
    let why = p.stats().closed_by_peer;
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(why[0].contains("without subscribe"));
    assert!(why[1].contains("duplicate subscribe"));
    assert!(why[2].contains("spurious unsubscribe"));
    // Bad items do not close it.
    let mut a = agent(&p, "a").await;
    a.send(fixture("pubsub_sub.xml")).await.unwrap();
    let bad = std::fs::read_to_string(format!("{DIR}/bgp-testdata-bad-items/bad_inet_item_3.xml"))
        .unwrap();
    let (pb, col) = stanza::publish(
        "a",
        0,
        false,
        "blue",
        "1/1/blue/x",
        xmpp::xml::Element::parse(&bad).unwrap(),
        true,
    );
    a.send(pb).await.unwrap();
    a.send(col).await.unwrap();
    wait(|| p.stats().rejected.len() == 1).await;
    a.send("<iq type='set' to='x/bgp-peer'><broken></iq>".into())
        .await
        .unwrap();
    assert!(next(&mut a, Duration::from_millis(500))
        .await
        .is_none_or(|s| !matches!(s, Stanza::Iq(_))));
    assert_eq!(p.stats().closed_by_peer.len(), 3);
}

#[tokio::test]
async fn ifmap_config_follows_the_store() {
    let (p, store, _d) = peer().await;
    store
        .create(
            "virtual-router",
            json!({"fq_name": ["default-global-system-config", "compute-1"],
                "parent_type": "global-system-config", "virtual_router_ip_address": "192.0.2.1"}),
        )
        .unwrap();
    store
        .create("project", json!({"fq_name": ["default-domain", "p"]}))
        .unwrap();
    let vn = store
        .create(
            "virtual-network",
            json!({"fq_name": ["default-domain", "p", "blue"], "network_ipam_refs": [{
                "to": ["default-domain", "default-project", "default-network-ipam"],
                "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "198.18.1.0", "ip_prefix_len": 24}}]}}]}),
        )
        .unwrap();
    let vm = store
        .create("virtual-machine", json!({"fq_name": ["c1"]}))
        .unwrap();
    let vmi = store
        .create(
            "virtual-machine-interface",
            json!({"fq_name": ["default-domain", "p", "c1-eth0"],
                "virtual_network_refs": [{"uuid": vn["uuid"]}],
                "virtual_machine_refs": [{"uuid": vm["uuid"]}]}),
        )
        .unwrap();
    let iip = store
        .create(
            "instance-ip",
            json!({"fq_name": ["c1-ip"], "virtual_network_refs": [{"uuid": vn["uuid"]}],
                "virtual_machine_interface_refs": [{"uuid": vmi["uuid"]}]}),
        )
        .unwrap();
    let mut a = agent(&p, "compute-1").await;
    a.send(stanza::vr_subscribe("compute-1")).await.unwrap();
    a.send(stanza::vm_subscribe(
        "compute-1",
        vm["uuid"].as_str().unwrap(),
        true,
    ))
    .await
    .unwrap();
    let mut g = Graph::default();
    let end = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < end {
        let Some(Stanza::Iq(iq)) = next(&mut a, Duration::from_millis(300)).await else {
            continue;
        };
        assert_eq!(iq.to, "default-global-system-config:compute-1/config");
        let IqBody::Config(c) = iq.body else { panic!() };
        let (ch, errs) = xmpp::ifmap::parse_config(&c);
        assert!(errs.is_empty());
        g.apply(&ch);
    }
    let objs: Vec<(String, serde_json::Value)> =
        g.objects().map(|(t, _, o)| (t.to_string(), o)).collect();
    let get = |t: &str| {
        objs.iter()
            .find(|(x, _)| x == t)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    let v = get("virtual-network");
    assert_eq!(v["uuid"], vn["uuid"]);
    assert_eq!(
        v["network_ipam_refs"][0]["attr"]["ipam_subnets"][0]["subnet"],
        json!({"ip_prefix": "198.18.1.0", "ip_prefix_len": 24})
    );
    assert_eq!(
        v["virtual_network_network_id"],
        vn["virtual_network_network_id"]
    );
    assert_eq!(
        v["routing_instances"][0]["to"],
        json!(["default-domain", "p", "blue", "blue"])
    );
    let i = get("virtual-machine-interface");
    assert_eq!(i["virtual_network_refs"][0]["uuid"], vn["uuid"]);
    assert_eq!(
        i["virtual_machine_interface_mac_addresses"],
        vmi["virtual_machine_interface_mac_addresses"]
    );
    let ip = get("instance-ip");
    assert_eq!(ip["instance_ip_address"], iip["instance_ip_address"]);
    let gvc = get("global-vrouter-config");
    assert_eq!(
        gvc["encapsulation_priorities"]["encapsulation"],
        json!(["MPLSoGRE", "MPLSoUDP", "VXLAN"])
    );
    // A change in the store reaches the agent.
    store
        .update(
            "global-vrouter-config",
            &gvc["uuid"].as_str().unwrap().parse().unwrap(),
            json!({"encapsulation_priorities": {"encapsulation": ["VXLAN"]}}),
        )
        .unwrap();
    let Some(Stanza::Iq(iq)) = until(&mut a, |s| matches!(s, Stanza::Iq(_))).await else {
        panic!("no config update")
    };
    let IqBody::Config(c) = iq.body else { panic!() };
    g.apply(&xmpp::ifmap::parse_config(&c).0);
    let gvc2 = g
        .objects()
        .find(|(t, _, _)| *t == "global-vrouter-config")
        .unwrap()
        .2;
    assert_eq!(
        gvc2["encapsulation_priorities"]["encapsulation"],
        json!(["VXLAN"])
    );
}

/// Many agents, many instances: every agent ends with every other
/// agent's routes (the batched updates lose nothing).
#[tokio::test]
async fn fan_out_reaches_every_agent() {
    let (p, _store, _d) = peer().await;
    let (agents, ports, ris): (usize, usize, usize) = std::env::var("FAN")
        .ok()
        .map(|_| (20, 1000, 50))
        .unwrap_or((5, 100, 10));
    let names: Vec<String> = (0..ris)
        .map(|r| format!("default-domain:f:v{r}:v{r}"))
        .collect();
    let mut sess = Vec::new();
    for a in 0..agents {
        let s = agent(&p, &format!("sim-{a}")).await;
        for (i, ri) in names.iter().enumerate() {
            s.send(stanza::instance_subscribe(
                "x",
                i as u64,
                ri,
                i as u32 + 1,
                true,
            ))
            .await
            .unwrap();
        }
        sess.push(s);
    }
    wait(|| {
        p.stats().subscriptions.len() == agents
            && p.stats().subscriptions.iter().all(|(_, s)| s.len() == ris)
    })
    .await;
    for (a, s) in sess.iter().enumerate() {
        for k in 0..ports / agents {
            let pn = a + k * agents;
            let ri = &names[pn % ris];
            let item = xmpp::unicast::InetItem {
                nlri: xmpp::unicast::Nlri {
                    af: 1,
                    safi: 1,
                    address: format!("10.9.{}.{}/32", pn / 200, pn % 200 + 1),
                },
                next_hops: vec![xmpp::unicast::NextHop {
                    af: 1,
                    address: format!("192.0.2.{}", a + 1),
                    label: 16 + pn as i64,
                    encap: vec!["gre".into()],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let addr = item.nlri.address.clone();
            let (pb, col) = stanza::publish(
                "x",
                pn as u64,
                false,
                ri,
                &format!("1/1/{ri}/{addr}"),
                item.encode(),
                true,
            );
            s.send(pb).await.unwrap();
            s.send(col).await.unwrap();
            let mac = format!("02:00:00:00:{:02x}:{:02x}", pn / 256, pn % 256);
            let enet = xmpp::enet::EnetItem {
                nlri: xmpp::enet::EnetNlri {
                    af: 25,
                    safi: 242,
                    mac: mac.clone(),
                    address: addr.clone(),
                    ..Default::default()
                },
                next_hops: vec![xmpp::enet::EnetNextHop {
                    af: 1,
                    address: format!("192.0.2.{}", a + 1),
                    label: 17 + pn as i64,
                    encap: vec!["gre".into()],
                    ..Default::default()
                }],
                ..Default::default()
            };
            let (pb, col) = stanza::publish(
                "x",
                pn as u64,
                true,
                ri,
                &format!("25/242/{mac},{addr}"),
                enet.encode(),
                true,
            );
            s.send(pb).await.unwrap();
            s.send(col).await.unwrap();
        }
    }
    let expect = 2 * (ports - ports / agents);
    for (a, s) in sess.iter_mut().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < expect && tokio::time::Instant::now() < end {
            if let Some(Stanza::Message(m)) = next(s, Duration::from_millis(200)).await {
                for it in &m.items {
                    seen.insert((m.items_node.clone(), it.attr("id").unwrap().to_string()));
                }
            }
        }
        assert_eq!(seen.len(), expect, "agent {a}");
    }
}
