//! The multicast (`safi` 241) route item (`xmpp_multicast.xsd`), read only:
//! the agent does not send or program these; the control-node peer reads
//! them to reject bad ones as upstream does.

use crate::schema::{self, int, string, string_list, SchemaError};
use crate::xml::Element;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McastNlri {
    pub af: i64,
    pub safi: i64,
    pub group: String,
    pub source: String,
    pub source_label: i64,
    pub source_address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McastNextHop {
    pub af: i64,
    pub address: String,
    /// A label range `first-last` from an agent, one label from the
    /// control node (a string in the schema).
    pub label: String,
    pub encap: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct McastItem {
    pub nlri: McastNlri,
    pub next_hops: Vec<McastNextHop>,
    pub olist: Vec<McastNextHop>,
}

fn parse_nh(el: &Element) -> Result<McastNextHop, SchemaError> {
    let mut n = McastNextHop::default();
    for c in &el.children {
        match c.name.as_str() {
            "af" => n.af = int(c)?,
            "address" => n.address = string(c),
            "label" => n.label = string(c),
            "tunnel-encapsulation-list" => n.encap.extend(string_list(c, "tunnel-encapsulation")),
            _ => {}
        }
    }
    Ok(n)
}

impl McastItem {
    pub fn parse(item: &Element) -> Result<McastItem, SchemaError> {
        let mut it = McastItem::default();
        let Some(e) = schema::entry(item) else {
            return Ok(it);
        };
        for c in &e.children {
            match c.name.as_str() {
                "nlri" => {
                    for n in &c.children {
                        match n.name.as_str() {
                            "af" => it.nlri.af = int(n)?,
                            "safi" => it.nlri.safi = int(n)?,
                            "group" => it.nlri.group = string(n),
                            "source" => it.nlri.source = string(n),
                            "source-label" => it.nlri.source_label = int(n)?,
                            "source-address" => it.nlri.source_address = string(n),
                            _ => {}
                        }
                    }
                }
                "next-hops" => {
                    for n in c.children_named("next-hop") {
                        it.next_hops.push(parse_nh(n)?);
                    }
                }
                "olist" => {
                    for n in c.children_named("next-hop") {
                        it.olist.push(parse_nh(n)?);
                    }
                }
                _ => {}
            }
        }
        Ok(it)
    }
}
