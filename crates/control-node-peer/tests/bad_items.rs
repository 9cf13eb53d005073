//! Every item of upstream's `bgp-testdata-bad-items` is rejected, as
//! upstream's control node rejects it, and for the reason its marked line
//! says; the well-formed items of upstream's agent-to-control-node test
//! data are accepted.

#![allow(clippy::unwrap_used)]

use control_node_peer::validate;
use xmpp::stanza::{IqBody, Stanza};
use xmpp::xml::Element;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../xmpp/tests/upstream/xmpp");

fn files(sub: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(format!("{DIR}/{sub}"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_bad_item_is_rejected() {
    let all = files("bgp-testdata-bad-items");
    assert_eq!(all.len(), 40, "the fixture set changed");
    for (name, text) in all {
        // Each test of upstream's publishes its file under its family.
        let node = if name.starts_with("bad_inet6") {
            "2/1/blue"
        } else if name.starts_with("bad_inet") {
            "1/1/blue"
        } else if name.starts_with("bad_enet") {
            "25/242/blue"
        } else if name.starts_with("bad_mcast") {
            "1/241/blue"
        } else {
            // bad_ipaddress.xml: a BGP config, not an item at all.
            "1/1/blue"
        };
        let el = Element::parse(&text).unwrap();
        let r = validate::check(node, &el, true, false);
        assert!(r.is_err(), "{name} was accepted: {r:?}");
        let why = r.unwrap_err();
        // The reason is the line the fixture marks with XXX.
        let want = expected(&name);
        assert!(
            why.contains(want),
            "{name}: rejected for {why:?}, expected {want:?}"
        );
    }
}

/// What each fixture's marked line is about.
fn expected(name: &str) -> &'static str {
    match name {
        "bad_enet_item_1.xml"
        | "bad_mcast_item_1.xml"
        | "bad_inet_item_1.xml"
        | "bad_inet6_item_1.xml" => "bad value \"ZZZZZZ\"",
        "bad_enet_item_2.xml"
        | "bad_inet_item_2.xml"
        | "bad_inet6_item_2.xml"
        | "bad_mcast_item_2.xml" => "unsupported address family",
        "bad_enet_item_3.xml" | "bad_mcast_item_3.xml" => "unsupported subsequent address family",
        "bad_enet_item_4.xml" => "bad MAC address",
        "bad_enet_item_5.xml" => "missing /",
        "bad_enet_item_6.xml" | "bad_enet_item_7.xml" => "cannot parse prefix",
        "bad_enet_item_8.xml" => "bad address 10.1.1.1/24",
        "bad_enet_item_9.xml"
        | "bad_inet_item_4.xml"
        | "bad_inet6_item_4.xml"
        | "bad_mcast_item_8.xml" => "192.168.1.1.1",
        "bad_enet_item_10.xml" | "bad_enet_item_12.xml" => "bad replicator address",
        "bad_enet_item_11.xml"
        | "bad_inet_item_5.xml"
        | "bad_inet6_item_5.xml"
        | "bad_mcast_item_10.xml" => "bad next-hop address 0.0.0.0",
        "bad_enet_item_13.xml"
        | "bad_inet_item_6.xml"
        | "bad_inet6_item_6.xml"
        | "bad_mcast_item_11.xml" => "missing next-hop",
        "bad_inet_item_3.xml" => "10.1.1.777/32",
        "bad_inet6_item_3.xml" => "wxyz::1/128",
        "bad_mcast_item_4.xml" | "bad_mcast_item_9.xml" => "bad group address",
        "bad_mcast_item_5.xml" => "bad source address",
        "bad_mcast_item_6.xml" => "more than one next hop",
        "bad_mcast_item_7.xml"
        | "bad_mcast_item_12.xml"
        | "bad_mcast_item_13.xml"
        | "bad_mcast_item_14.xml" => "bad label range",
        // Not an item (a BGP neighbour config): nothing in it reads as one.
        "bad_ipaddress.xml" => "unsupported address family 0",
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn upstream_agent_publishes_are_accepted() {
    for (name, add) in [("pubsub_pub.xml", true), ("pubsub_dis.xml", false)] {
        let text =
            std::fs::read_to_string(format!("{DIR}/bgp-testdata-agent-to-cn/{name}")).unwrap();
        // The file holds the publish iq and then the collection iq.
        let first = &text[..text.find("</iq>").unwrap() + 5];
        let Stanza::Iq(iq) = Stanza::parse(first).unwrap() else {
            panic!()
        };
        let IqBody::Publish { node, items } = iq.body else {
            panic!("{name}: {:?}", iq.body)
        };
        assert_eq!(node, "1/1/10.1.2.1");
        for it in &items {
            let r = validate::check(&node, it, add, false);
            assert!(r.is_ok(), "{name}: {r:?}");
        }
    }
}
