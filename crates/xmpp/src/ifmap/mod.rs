//! IF-MAP over XMPP: the configuration the control node pushes on the
//! `config` channel.
//!
//! A message is `<iq type="set" …><config>` with `<update>` and `<delete>`
//! blocks of `<node type="…"><name>fq:name</name>properties…</node>` and
//! `<link>`s of two `<node>`s and an optional `<metadata type="…"/>`
//! (upstream's `IFMapAgentParser::ConfigParse`). A reference that carries
//! an attribute (a VN's subnets on its IPAM ref, a policy's sequence) is a
//! node of its own, `attr(target,owner)`, linked to both ends.
//!
//! [`parse_config`] reads the changes, [`encode_config`] writes them the
//! way upstream's `IFMapMessage` groups them; [`props`] converts node
//! properties between XML and the VNC REST JSON shapes; [`graph`] keeps the
//! nodes and links and turns them into VNC objects with refs.

pub mod graph;
pub mod props;
pub mod schema;

use crate::xml::Element;

/// A node's identity: its type and fq name (`:`-joined).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    pub ty: String,
    pub name: String,
}

impl NodeId {
    pub fn new(ty: impl Into<String>, name: impl Into<String>) -> Self {
        NodeId {
            ty: ty.into(),
            name: name.into(),
        }
    }

    fn element(&self) -> Element {
        Element::new("node")
            .with_attr("type", &self.ty)
            .with_child(Element::leaf("name", &self.name))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    /// The property elements (everything after `<name>`).
    pub props: Vec<Element>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub left: NodeId,
    pub right: NodeId,
    pub metadata: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Node(Node),
    Link(Link),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Update,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    pub entry: Entry,
}

fn node_id(el: &Element) -> Result<NodeId, String> {
    let ty = el
        .attr("type")
        .filter(|t| !t.is_empty())
        .ok_or("node without type")?;
    // Upstream takes the first child as the name.
    let name = el
        .children
        .first()
        .filter(|n| n.name == "name")
        .ok_or_else(|| format!("{ty} node without <name> first"))?;
    if name.value().is_empty() {
        return Err(format!("{ty} node with an empty name"));
    }
    Ok(NodeId::new(ty, name.value()))
}

/// The changes of a `<config>` element, in order, and a description of
/// each entry that could not be read (skipped, as upstream counts parse
/// errors and goes on).
pub fn parse_config(config: &Element) -> (Vec<Change>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for block in &config.children {
        let op = match block.name.as_str() {
            "update" => Op::Update,
            "delete" => Op::Delete,
            _ => continue,
        };
        for c in &block.children {
            match c.name.as_str() {
                "node" => match node_id(c) {
                    Ok(id) => out.push(Change {
                        op,
                        entry: Entry::Node(Node {
                            id,
                            props: c.children.iter().skip(1).cloned().collect(),
                        }),
                    }),
                    Err(e) => errors.push(e),
                },
                "link" => {
                    let mut nodes = c.children.iter().filter(|n| n.name == "node");
                    let (Some(a), Some(b)) = (nodes.next(), nodes.next()) else {
                        errors.push("link without two nodes".into());
                        continue;
                    };
                    match (node_id(a), node_id(b)) {
                        (Ok(left), Ok(right)) => out.push(Change {
                            op,
                            entry: Entry::Link(Link {
                                left,
                                right,
                                metadata: c
                                    .child("metadata")
                                    .and_then(|m| m.attr("type"))
                                    .map(String::from),
                            }),
                        }),
                        (Err(e), _) | (_, Err(e)) => errors.push(format!("link: {e}")),
                    }
                }
                _ => {}
            }
        }
    }
    (out, errors)
}

/// A `<config>` element holding `changes`, consecutive changes of one
/// kind in one `<update>`/`<delete>` block (upstream's `IFMapMessage`).
pub fn encode_config(changes: &[Change]) -> Element {
    let mut config = Element::new("config");
    let mut current: Option<(Op, Element)> = None;
    for ch in changes {
        let name = match ch.op {
            Op::Update => "update",
            Op::Delete => "delete",
        };
        match &mut current {
            Some((op, _)) if *op == ch.op => {}
            _ => {
                if let Some((_, b)) = current.take() {
                    config.push(b);
                }
                current = Some((ch.op, Element::new(name)));
            }
        }
        let Some((_, block)) = current.as_mut() else {
            continue;
        };
        match &ch.entry {
            Entry::Node(n) => {
                let mut e = n.id.element();
                if ch.op == Op::Update {
                    e.children.extend(n.props.iter().cloned());
                }
                block.push(e);
            }
            Entry::Link(l) => {
                let mut e = Element::new("link")
                    .with_child(l.left.element())
                    .with_child(l.right.element());
                if let Some(m) = &l.metadata {
                    e.push(Element::new("metadata").with_attr("type", m));
                }
                block.push(e);
            }
        }
    }
    if let Some((_, b)) = current {
        config.push(b);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Element {
        let s = match name {
            "add" => {
                include_str!("../../tests/upstream/ifmap-agent-parser-testdata/test_add_cfg.xml")
            }
            "del" => {
                include_str!("../../tests/upstream/ifmap-agent-parser-testdata/test_del_cfg.xml")
            }
            "link_add" => include_str!(
                "../../tests/upstream/ifmap-agent-parser-testdata/test_link_add_cfg.xml"
            ),
            _ => include_str!(
                "../../tests/upstream/ifmap-agent-parser-testdata/test_link_del_cfg.xml"
            ),
        };
        Element::parse(s).unwrap()
    }

    #[test]
    fn reads_the_agent_parser_fixtures() {
        let (c, e) = parse_config(&fixture("add"));
        assert!(e.is_empty());
        assert_eq!(c.len(), 2);
        assert!(
            matches!(&c[0], Change { op: Op::Update, entry: Entry::Node(n) } if n.id == NodeId::new("foo", "testfoo"))
        );
        let (c, _) = parse_config(&fixture("del"));
        assert!(c.iter().all(|c| c.op == Op::Delete));
        let (c, _) = parse_config(&fixture("link_add"));
        assert_eq!(c.len(), 4);
        assert!(
            matches!(&c[2].entry, Entry::Link(l) if l.left.ty == "foo" && l.right.name == "testbar" && l.metadata.is_none())
        );
        let (c, _) = parse_config(&fixture("link_del"));
        assert_eq!(c.len(), 1);
        // What we write reads back the same.
        let (c2, _) = parse_config(&encode_config(&c));
        assert_eq!(c, c2);
    }

    #[test]
    fn bad_entries_are_reported_and_skipped() {
        let cfg = Element::parse(
            "<config><update><node><name>x</name></node><node type='a'><id-perms/></node><link><node type='a'><name>x</name></node></link><node type='b'><name>y</name></node></update></config>",
        )
        .unwrap();
        let (c, e) = parse_config(&cfg);
        assert_eq!(c.len(), 1);
        assert_eq!(e.len(), 3);
    }
}
