//! The stanzas of the dialect: what the agent sends (subscriptions,
//! publish + collection, end of RIB), what the control node sends (route
//! events, IF-MAP config), parsed from and printed to upstream's exact text.
//!
//! Text forms, as upstream prints them:
//! * the agent prints with pugixml, no indentation, one element per line,
//!   no XML declaration;
//! * the control node's route events are hand-assembled: a leading newline,
//!   `\t`/`\t\t` before `<event>`/`<items>`, items printed at depth 3 with
//!   tabs, retracts as `\t\t\t<retract id="…" />`;
//! * the control node's IF-MAP messages are pugixml `save()`: an XML
//!   declaration and tab indentation.

use crate::jid::{Channel, CONTROL_NODE_JID, END_OF_RIB, FQN_PREFIX, PUBSUB_NS};
use crate::xml::{Element, XmlError};

/// A parsed stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stanza {
    Iq(Iq),
    Message(Message),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iq {
    /// `type` (`set`, `get`, `result`, `error`).
    pub kind: String,
    pub from: String,
    pub to: String,
    pub id: Option<String>,
    pub body: IqBody,
}

/// What an iq carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IqBody {
    /// `<pubsub><subscribe node="…"/>` with `<options><instance-id>`
    /// (wherever under pubsub it sits: the agent nests it in `subscribe`,
    /// upstream's tests put it beside).
    Subscribe {
        node: String,
        instance_id: Option<i64>,
    },
    Unsubscribe {
        node: String,
    },
    /// `<pubsub><publish node="…">` and its `<item>`s.
    Publish {
        node: String,
        items: Vec<Element>,
    },
    /// `<pubsub><collection node="vrf"><associate|dissociate node="…"/>`.
    Collection {
        node: String,
        associate: Option<String>,
        dissociate: Option<String>,
    },
    /// `<config>` (IF-MAP, control node to agent).
    Config(Element),
    /// Anything else, kept whole.
    Other(Element),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: String,
    pub to: String,
    /// `<event><items node="…">`: its node, items and retract ids.
    pub items_node: Option<String>,
    pub items: Vec<Element>,
    pub retracts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StanzaError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("not a stanza: <{0}>")]
    NotAStanza(String),
    #[error("{0}")]
    Invalid(String),
}

impl Stanza {
    pub fn parse(text: &str) -> Result<Stanza, StanzaError> {
        Stanza::from_element(Element::parse(text)?)
    }

    pub fn from_element(root: Element) -> Result<Stanza, StanzaError> {
        let attr = |k: &str| root.attr(k).unwrap_or("").to_string();
        match root.name.as_str() {
            "iq" => {
                let body = iq_body(&root)?;
                Ok(Stanza::Iq(Iq {
                    kind: attr("type"),
                    from: attr("from"),
                    to: attr("to"),
                    id: root.attr("id").map(String::from),
                    body,
                }))
            }
            "message" => {
                let items = root.find("items");
                Ok(Stanza::Message(Message {
                    from: attr("from"),
                    to: attr("to"),
                    items_node: items.and_then(|i| i.attr("node")).map(String::from),
                    items: items
                        .map(|i| i.children_named("item").cloned().collect())
                        .unwrap_or_default(),
                    retracts: items
                        .map(|i| {
                            i.children_named("retract")
                                .filter_map(|r| r.attrs.first().map(|(_, v)| v.clone()))
                                .collect()
                        })
                        .unwrap_or_default(),
                }))
            }
            other => Err(StanzaError::NotAStanza(other.to_string())),
        }
    }

    pub fn to(&self) -> &str {
        match self {
            Stanza::Iq(i) => &i.to,
            Stanza::Message(m) => &m.to,
        }
    }

    /// The logical channel, by the `to` resource as upstream.
    pub fn channel(&self) -> Option<Channel> {
        Channel::of(self.to())
    }
}

fn iq_body(root: &Element) -> Result<IqBody, StanzaError> {
    if let Some(c) = root.child("config") {
        return Ok(IqBody::Config(c.clone()));
    }
    let Some(ps) = root.child("pubsub") else {
        return Ok(IqBody::Other(root.clone()));
    };
    // Upstream takes the first child of pubsub as the action.
    let Some(action) = ps.children.first() else {
        return Ok(IqBody::Other(root.clone()));
    };
    let node = || {
        action
            .attr("node")
            .map(String::from)
            .ok_or_else(|| StanzaError::Invalid(format!("<{}> without node", action.name)))
    };
    Ok(match action.name.as_str() {
        "subscribe" => {
            let instance_id = match ps.find("options").and_then(|o| o.child("instance-id")) {
                Some(i) => Some(
                    crate::schema::parse_int(i.value())
                        .ok_or_else(|| StanzaError::Invalid("bad instance-id".into()))?,
                ),
                None => None,
            };
            IqBody::Subscribe {
                node: node()?,
                instance_id,
            }
        }
        "unsubscribe" => IqBody::Unsubscribe { node: node()? },
        "publish" => IqBody::Publish {
            node: node()?,
            items: action.children_named("item").cloned().collect(),
        },
        "collection" => IqBody::Collection {
            node: node()?,
            associate: action
                .child("associate")
                .and_then(|a| a.attr("node"))
                .map(String::from),
            dissociate: action
                .child("dissociate")
                .and_then(|a| a.attr("node"))
                .map(String::from),
        },
        _ => IqBody::Other(root.clone()),
    })
}

// ---- what the agent sends -------------------------------------------------------

/// The agent's stream header, byte for byte as upstream's (no XML
/// declaration, `xmlns` = the subcluster name, two spaces before `>`).
pub fn agent_stream_open(from: &str, to: &str, xmlns: &str) -> String {
    let el = Element::new("stream:stream")
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("version", "1.0")
        .with_attr("xml:lang", "en")
        .with_attr("xmlns", xmlns)
        .with_attr("xmlns:stream", "http://etherx.jabber.org/streams");
    open_tag(&el)
}

/// The control node's answer to a stream header.
pub fn server_stream_open(from: &str, to: &str) -> String {
    let el = Element::new("stream:stream")
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("id", "++123")
        .with_attr("version", "1.0")
        .with_attr("xml:lang", "en")
        .with_attr("xmlns", "jabber:client")
        .with_attr("xmlns:stream", "http://etherx.jabber.org/streams");
    open_tag(&el)
}

/// Upstream prints the header as an empty element and turns its last `/`
/// into a space: `…streams"  >`.
fn open_tag(el: &Element) -> String {
    let s = el.to_pugi("");
    let s = s.trim_end_matches('\n');
    match s.rfind('/') {
        Some(i) => format!("{}{}{}", &s[..i], ' ', &s[i + 1..]),
        None => s.to_string(),
    }
}

pub const STREAM_FEATURES_TLS: &str = "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"><required /></starttls></stream:features>";
pub const STARTTLS: &str = "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\" />";
pub const PROCEED: &str = "<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\" />";
pub const STREAM_CLOSE: &str = "</stream:stream>";

fn iq(kind: &str, from: &str, to: &str, id: Option<&str>) -> Element {
    let mut e = Element::new("iq")
        .with_attr("type", kind)
        .with_attr("from", from)
        .with_attr("to", to);
    if let Some(id) = id {
        e = e.with_attr("id", id);
    }
    e
}

fn pubsub() -> Element {
    Element::new("pubsub").with_attr("xmlns", PUBSUB_NS)
}

/// `virtual-router:default-global-system-config:<agent>` on the config
/// channel (no id, as upstream's agent).
pub fn vr_subscribe(agent: &str) -> String {
    iq("set", agent, &Channel::Config.jid(CONTROL_NODE_JID), None)
        .with_child(
            pubsub().with_child(
                Element::new("subscribe")
                    .with_attr("node", format!("virtual-router:{FQN_PREFIX}{agent}")),
            ),
        )
        .to_pugi("")
}

/// `virtual-machine:<uuid>` (un)subscribe on the config channel.
pub fn vm_subscribe(agent: &str, vm: &str, subscribe: bool) -> String {
    let action = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    iq("set", agent, &Channel::Config.jid(CONTROL_NODE_JID), None)
        .with_child(
            pubsub().with_child(
                Element::new(action).with_attr("node", format!("virtual-machine:{vm}")),
            ),
        )
        .to_pugi("")
}

/// Routing-instance (un)subscribe on the bgp-peer channel, with the
/// instance id nested in the action as upstream's agent sends it.
pub fn instance_subscribe(
    agent: &str,
    id: u64,
    vrf: &str,
    instance_id: u32,
    subscribe: bool,
) -> String {
    let action = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    iq(
        "set",
        agent,
        &Channel::BgpPeer.jid(CONTROL_NODE_JID),
        Some(&format!("subscribe{id}")),
    )
    .with_child(pubsub().with_child(
        Element::new(action).with_attr("node", vrf).with_child(
            Element::new("options").with_child(Element::leaf("instance-id", instance_id)),
        ),
    ))
    .to_pugi("")
}

/// A route add (`associate`) or delete: the publish iq and the collection
/// iq that upstream's agent sends right after it. `l2` selects the EVPN
/// id prefixes (`pubsub_l2N` / `collection_l2N`).
pub fn publish(
    agent: &str,
    id: u64,
    l2: bool,
    vrf: &str,
    node: &str,
    item: Element,
    associate: bool,
) -> (String, String) {
    let sfx = if l2 { "_l2" } else { "" };
    let to = Channel::BgpPeer.jid(CONTROL_NODE_JID);
    let p = iq("set", agent, &to, Some(&format!("pubsub{sfx}{id}")))
        .with_child(
            pubsub().with_child(
                Element::new("publish")
                    .with_attr("node", node)
                    .with_child(item),
            ),
        )
        .to_pugi("");
    let action = if associate { "associate" } else { "dissociate" };
    let c = iq("set", agent, &to, Some(&format!("collection{sfx}{id}")))
        .with_child(
            pubsub().with_child(
                Element::new("collection")
                    .with_attr("node", vrf)
                    .with_child(Element::new(action).with_attr("node", node)),
            ),
        )
        .to_pugi("");
    (p, c)
}

/// The end-of-RIB marker a side sends on the bgp-peer channel (a
/// `<message>` with an empty items list, hand-assembled as upstream).
pub fn end_of_rib(from: &str, to: &str) -> String {
    format!(
        "\n<message from=\"{from}\" to=\"{to}/bgp-peer\">\n\t<event xmlns=\"{PUBSUB_NS}\">\n<items node=\"{END_OF_RIB}\"></items>\n\t</event>\n</message>\n"
    )
}

// ---- what the control node sends -----------------------------------------------------

/// A route event to `agent` for `node` (`<afi>/<safi>/<instance>`):
/// reachable items (each already carrying its `id`) and retract ids.
pub fn route_event(agent: &str, node: &str, items: &[Element], retracts: &[String]) -> String {
    let mut s = format!(
        "\n<message from=\"{CONTROL_NODE_JID}\" to=\"{agent}/bgp-peer\">\n\t<event xmlns=\"{PUBSUB_NS}\">\n\t\t<items node=\"{}\">\n",
        crate::xml::escape_attr(node)
    );
    for it in items {
        it.write_pugi(&mut s, "\t", 3);
    }
    for r in retracts {
        s.push_str(&format!(
            "\t\t\t<retract id=\"{}\" />\n",
            crate::xml::escape_attr(r)
        ));
    }
    s.push_str("\t\t</items>\n\t</event>\n</message>\n");
    s
}

/// An item as [`route_event`] prints it (to render it once and send it to
/// many agents with [`route_event_rendered`]).
pub fn render_item(item: &Element) -> String {
    let mut s = String::new();
    item.write_pugi(&mut s, "\t", 3);
    s
}

/// [`route_event`] with items already rendered by [`render_item`].
pub fn route_event_rendered(
    agent: &str,
    node: &str,
    items: &[&str],
    retracts: &[String],
) -> String {
    let mut s = format!(
        "\n<message from=\"{CONTROL_NODE_JID}\" to=\"{agent}/bgp-peer\">\n\t<event xmlns=\"{PUBSUB_NS}\">\n\t\t<items node=\"{}\">\n",
        crate::xml::escape_attr(node)
    );
    for it in items {
        s.push_str(it);
    }
    for r in retracts {
        s.push_str(&format!(
            "\t\t\t<retract id=\"{}\" />\n",
            crate::xml::escape_attr(r)
        ));
    }
    s.push_str("\t\t</items>\n\t</event>\n</message>\n");
    s
}

/// An IF-MAP config iq to the agent whose virtual-router is `vr`
/// (`default-global-system-config:<name>`), as pugixml `save()` prints it.
pub fn config_iq(vr: &str, config: Element) -> String {
    let el = iq("set", CONTROL_NODE_JID, &Channel::Config.jid(vr), None).with_child(config);
    format!("<?xml version=\"1.0\"?>\n{}", el.to_pugi("\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_messages_match_the_captures() {
        let open = agent_stream_open("worker-3", CONTROL_NODE_JID, "");
        assert_eq!(
            open,
            "<stream:stream from=\"worker-3\" to=\"network-control@contrailsystems.com\" version=\"1.0\" xml:lang=\"en\" xmlns=\"\" xmlns:stream=\"http://etherx.jabber.org/streams\"  >"
        );
        assert_eq!(
            vr_subscribe("worker-3"),
            "<iq type=\"set\" from=\"worker-3\" to=\"network-control@contrailsystems.com/config\">\n<pubsub xmlns=\"http://jabber.org/protocol/pubsub\">\n<subscribe node=\"virtual-router:default-global-system-config:worker-3\" />\n</pubsub>\n</iq>\n"
        );
    }

    #[test]
    fn parses_subscriptions_both_ways_of_nesting() {
        let ours = instance_subscribe("a", 3, "default-domain:p:vn:vn", 7, true);
        let Stanza::Iq(i) = Stanza::parse(&ours).unwrap() else {
            panic!()
        };
        assert_eq!(i.id.as_deref(), Some("subscribe3"));
        assert_eq!(
            i.body,
            IqBody::Subscribe {
                node: "default-domain:p:vn:vn".into(),
                instance_id: Some(7)
            }
        );
        let theirs = "<iq type='set' from='a' to='b/bgp-peer' id='x'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='blue'/><options><instance-id>1</instance-id></options></pubsub></iq>";
        let Stanza::Iq(i) = Stanza::parse(theirs).unwrap() else {
            panic!()
        };
        assert_eq!(
            i.body,
            IqBody::Subscribe {
                node: "blue".into(),
                instance_id: Some(1)
            }
        );
        assert_eq!(Stanza::Iq(i).channel(), Some(Channel::BgpPeer));
    }

    #[test]
    fn publish_and_collection_round_trip() {
        let (p, c) = publish(
            "a",
            5,
            false,
            "v",
            "1/1/v/10.0.0.1/32",
            Element::new("item"),
            false,
        );
        let Stanza::Iq(p) = Stanza::parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(p.id.as_deref(), Some("pubsub5"));
        assert!(
            matches!(p.body, IqBody::Publish { ref node, ref items } if node == "1/1/v/10.0.0.1/32" && items.len() == 1)
        );
        let Stanza::Iq(c) = Stanza::parse(&c).unwrap() else {
            panic!()
        };
        assert_eq!(
            c.body,
            IqBody::Collection {
                node: "v".into(),
                associate: None,
                dissociate: Some("1/1/v/10.0.0.1/32".into())
            }
        );
    }

    #[test]
    fn route_events_and_eor_parse() {
        let it = Element::new("item")
            .with_attr("id", "10.0.0.1/32")
            .with_child(Element::new("entry"));
        let m = route_event("a", "1/1/v", &[it], &["10.0.0.2/32".into()]);
        assert!(m.starts_with(
            "\n<message from=\"network-control@contrailsystems.com\" to=\"a/bgp-peer\">\n\t<event"
        ));
        assert!(m.contains("\t\t\t<item id=\"10.0.0.1/32\">\n\t\t\t\t<entry />\n\t\t\t</item>\n"));
        let it2 = Element::new("item")
            .with_attr("id", "10.0.0.1/32")
            .with_child(Element::new("entry"));
        assert_eq!(
            route_event_rendered("a", "1/1/v", &[&render_item(&it2)], &["10.0.0.2/32".into()]),
            m
        );
        let Stanza::Message(m) = Stanza::parse(&m).unwrap() else {
            panic!()
        };
        assert_eq!(m.items_node.as_deref(), Some("1/1/v"));
        assert_eq!(m.items.len(), 1);
        assert_eq!(m.retracts, ["10.0.0.2/32"]);
        let Stanza::Message(e) = Stanza::parse(&end_of_rib(CONTROL_NODE_JID, "a")).unwrap() else {
            panic!()
        };
        assert_eq!(e.items_node.as_deref(), Some(END_OF_RIB));
        assert!(e.items.is_empty() && e.retracts.is_empty());
    }
}
