//! What our agent sends against upstream's captured agent messages, and
//! upstream's schema test entries and messages through our readers.

#![allow(clippy::unwrap_used)]

use xmpp::jid::CONTROL_NODE_JID;
use xmpp::stanza::{self, IqBody, Stanza};
use xmpp::unicast::InetItem;
use xmpp::xml::Element;

fn up(rel: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/upstream/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn stream_open_byte_for_byte() {
    assert_eq!(
        stanza::agent_stream_open("worker-3", CONTROL_NODE_JID, ""),
        up("xmpp/captured/agent_stream_open.txt")
    );
}

#[test]
fn config_subscribe_byte_for_byte() {
    // The capture lost the final newline pugixml prints (a Go literal).
    assert_eq!(
        stanza::vr_subscribe("worker-3").trim_end(),
        up("xmpp/captured/agent_vr_config_subscribe.xml")
    );
}

#[test]
fn instance_subscribe_reads_as_the_captured_one_plus_its_instance_id() {
    let theirs =
        Stanza::parse(&up("xmpp/captured/agent_vrf_subscribe_no_instance_id.xml")).unwrap();
    let ours = Stanza::parse(&stanza::instance_subscribe(
        "worker-3",
        3,
        "default-domain:default:ext-vn2:ext-vn2",
        7,
        true,
    ))
    .unwrap();
    let (Stanza::Iq(t), Stanza::Iq(o)) = (theirs, ours) else {
        panic!()
    };
    assert_eq!(
        (
            t.kind.as_str(),
            t.from.as_str(),
            t.to.as_str(),
            t.id.as_deref()
        ),
        (
            "set",
            "worker-3",
            "network-control@contrailsystems.com/bgp-peer",
            Some("subscribe3")
        )
    );
    assert_eq!((o.kind, o.from, o.to, o.id), (t.kind, t.from, t.to, t.id));
    assert_eq!(
        t.body,
        IqBody::Subscribe {
            node: "default-domain:default:ext-vn2:ext-vn2".into(),
            instance_id: None
        }
    );
    assert_eq!(
        o.body,
        IqBody::Subscribe {
            node: "default-domain:default:ext-vn2:ext-vn2".into(),
            instance_id: Some(7)
        }
    );
}

#[test]
fn publish_and_collection_read_as_upstreams_test_messages() {
    let file = up("xmpp/bgp-testdata-agent-to-cn/pubsub_pub.xml");
    let mut parts = file.split("</iq>").filter(|p| p.contains("<iq"));
    let (Stanza::Iq(p), Stanza::Iq(c)) = (
        Stanza::parse(&format!("{}</iq>", parts.next().unwrap())).unwrap(),
        Stanza::parse(&format!("{}</iq>", parts.next().unwrap())).unwrap(),
    ) else {
        panic!()
    };
    let IqBody::Publish { node, items } = p.body else {
        panic!()
    };
    let item = InetItem::parse(&items[0]).unwrap();
    let (op, oc) = stanza::publish(
        "agent@vnsw.contrailsystems.com",
        1,
        false,
        "blue",
        &node,
        item.encode(),
        true,
    );
    let (Stanza::Iq(op), Stanza::Iq(oc)) =
        (Stanza::parse(&op).unwrap(), Stanza::parse(&oc).unwrap())
    else {
        panic!()
    };
    let IqBody::Publish {
        node: on,
        items: oi,
    } = op.body
    else {
        panic!()
    };
    assert_eq!(on, node);
    assert_eq!(InetItem::parse(&oi[0]).unwrap(), item);
    assert_eq!(oc.body, c.body);
    assert_eq!(item.next_hops[0].label, 10000);
    assert_eq!(item.security_groups, [1, 2]);
}

#[test]
fn schema_test_entries_read() {
    for f in ["bgp_l3vpn_unicast_1.xml", "bgp_l3vpn_unicast_3.xml"] {
        let text = up(&format!("xmpp/schema-testdata/{f}"));
        let entry = &text[..text.find("</entry>").unwrap() + 8];
        let item = Element::new("item").with_child(Element::parse(entry).unwrap());
        let it = InetItem::parse(&item).unwrap();
        assert_eq!(it.nlri.address, "10.1.2.1/32");
        assert_eq!(it.next_hops[0].label, 10000);
        if f.ends_with("3.xml") {
            assert_eq!(it.mobility.seqno, 5);
        }
    }
    let items = Element::parse(&up("xmpp/schema-testdata/bgp_l3vpn_unicast_2.xml")).unwrap();
    let v: Vec<InetItem> = items
        .children_named("item")
        .map(|i| InetItem::parse(i).unwrap())
        .collect();
    assert_eq!(v[1].next_hops[0].address, "20.2.2.2");
    let nh = Element::parse(&up("xmpp/schema-testdata/bgp_l3vpn_unicast_nh.xml")).unwrap();
    let item = Element::new("item")
        .with_child(Element::new("entry").with_child(Element::new("next-hops").with_child(nh)));
    assert_eq!(
        InetItem::parse(&item).unwrap().next_hops[0].encap,
        ["gre", "udp"]
    );
}

#[test]
fn the_captured_update_reads_and_prints_back_alike() {
    let Stanza::Message(m) =
        Stanza::parse(&up("xmpp/captured/cn_to_agent_route_update_inet.xml")).unwrap()
    else {
        panic!()
    };
    let items: Vec<InetItem> = m
        .items
        .iter()
        .map(|i| InetItem::parse(i).unwrap())
        .collect();
    let els: Vec<Element> = items.iter().map(InetItem::encode).collect();
    let ours = stanza::route_event("worker-3", m.items_node.as_deref().unwrap(), &els, &[]);
    let Stanza::Message(back) = Stanza::parse(&ours).unwrap() else {
        panic!()
    };
    assert_eq!(back.to, m.to);
    assert_eq!(back.from, m.from);
    let again: Vec<InetItem> = back
        .items
        .iter()
        .map(|i| InetItem::parse(i).unwrap())
        .collect();
    assert_eq!(again, items);
}
