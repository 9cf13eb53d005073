//! The inet / inet6 unicast route item (`xmpp_unicast.xsd`: `ItemType`,
//! `EntryType`, `NextHopType`), field for field and in schema order.

use crate::schema::{self, int, int_list, leaf, list, string, string_list, SchemaError};
use crate::xml::Element;

/// BGP address families as upstream numbers them (`BgpAf`).
pub mod af {
    pub const IPV4: i64 = 1;
    pub const IPV6: i64 = 2;
    pub const L2VPN: i64 = 25;
}

/// Subsequent address families (`BgpAf`).
pub mod safi {
    pub const UNICAST: i64 = 1;
    pub const MPLS: i64 = 4;
    pub const MCAST: i64 = 241;
    pub const ENET: i64 = 242;
    pub const MVPN: i64 = 5;
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nlri {
    pub af: i64,
    pub safi: i64,
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    pub af: i64,
    pub address: String,
    pub mac: String,
    pub label: i64,
    pub vni: i64,
    /// `gre`, `udp`, `vxlan` (and `mpls`, `native`).
    pub encap: Vec<String>,
    pub virtual_network: String,
    pub tags: Vec<i64>,
    pub local_sequence_number: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mobility {
    pub seqno: i64,
    pub sticky: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalance {
    pub fields: Vec<String>,
    pub decision: String,
}

impl Default for LoadBalance {
    fn default() -> Self {
        LoadBalance {
            fields: Vec::new(),
            decision: "field-hash".into(),
        }
    }
}

/// One route: `<item><entry>…</entry></item>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InetItem {
    /// The `id` attribute of the item (the control node sets it to the
    /// prefix; the agent sends none).
    pub id: Option<String>,
    pub nlri: Nlri,
    pub next_hops: Vec<NextHop>,
    pub version: i64,
    pub virtual_network: String,
    pub mobility: Mobility,
    pub sequence_number: i64,
    pub security_groups: Vec<i64>,
    pub community_tags: Vec<String>,
    pub local_preference: i64,
    pub med: i64,
    pub load_balance: LoadBalance,
    pub sub_protocol: String,
}

impl Default for InetItem {
    fn default() -> Self {
        InetItem {
            id: None,
            nlri: Nlri::default(),
            next_hops: Vec::new(),
            version: 0,
            virtual_network: String::new(),
            mobility: Mobility {
                seqno: 0,
                sticky: false,
            },
            sequence_number: 0,
            security_groups: Vec::new(),
            community_tags: Vec::new(),
            local_preference: 0,
            med: 0,
            load_balance: LoadBalance::default(),
            sub_protocol: "interface".into(),
        }
    }
}

pub(crate) fn parse_mobility(el: &Element) -> Result<Mobility, SchemaError> {
    let mut m = Mobility {
        seqno: 0,
        sticky: false,
    };
    for (k, v) in &el.attrs {
        match k.as_str() {
            "seqno" => {
                m.seqno = schema::parse_int(v).ok_or_else(|| SchemaError {
                    field: "mobility@seqno".into(),
                    value: v.clone(),
                })?
            }
            "sticky" => m.sticky = v == "true",
            _ => {}
        }
    }
    Ok(m)
}

pub(crate) fn encode_mobility(m: &Mobility) -> Element {
    Element::new("mobility")
        .with_attr("seqno", m.seqno.to_string())
        .with_attr("sticky", if m.sticky { "true" } else { "false" })
}

fn parse_nh(el: &Element) -> Result<NextHop, SchemaError> {
    let mut n = NextHop::default();
    for c in &el.children {
        match c.name.as_str() {
            "af" => n.af = int(c)?,
            "address" => n.address = string(c),
            "mac" => n.mac = string(c),
            "label" => n.label = int(c)?,
            "vni" => n.vni = int(c)?,
            "tunnel-encapsulation-list" => n.encap.extend(string_list(c, "tunnel-encapsulation")),
            "virtual-network" => n.virtual_network = string(c),
            "tag-list" => n.tags.extend(int_list(c, "tag")?),
            "local-sequence-number" => n.local_sequence_number = int(c)?,
            _ => {}
        }
    }
    Ok(n)
}

fn encode_nh(n: &NextHop) -> Element {
    Element::new("next-hop")
        .with_child(leaf("af", n.af))
        .with_child(leaf("address", &n.address))
        .with_child(leaf("mac", &n.mac))
        .with_child(leaf("label", n.label))
        .with_child(leaf("vni", n.vni))
        .with_child(list(
            "tunnel-encapsulation-list",
            "tunnel-encapsulation",
            &n.encap,
        ))
        .with_child(leaf("virtual-network", &n.virtual_network))
        .with_child(list("tag-list", "tag", &n.tags))
        .with_child(leaf("local-sequence-number", n.local_sequence_number))
}

impl InetItem {
    /// Read an `<item>` as upstream's `ItemType::XmlParse` does.
    pub fn parse(item: &Element) -> Result<InetItem, SchemaError> {
        let mut it = InetItem {
            id: item.attr("id").map(String::from),
            ..InetItem::default()
        };
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
                            "address" => it.nlri.address = string(n),
                            _ => {}
                        }
                    }
                }
                "next-hops" => {
                    for n in c.children_named("next-hop") {
                        it.next_hops.push(parse_nh(n)?);
                    }
                }
                "version" => it.version = int(c)?,
                "virtual-network" => it.virtual_network = string(c),
                "mobility" => it.mobility = parse_mobility(c)?,
                "sequence-number" => it.sequence_number = int(c)?,
                "security-group-list" => it.security_groups.extend(int_list(c, "security-group")?),
                "community-tag-list" => it.community_tags.extend(string_list(c, "community-tag")),
                "local-preference" => it.local_preference = int(c)?,
                "med" => it.med = int(c)?,
                "load-balance" => {
                    for l in &c.children {
                        match l.name.as_str() {
                            "load-balance-fields" => it
                                .load_balance
                                .fields
                                .extend(string_list(l, "load-balance-field-list")),
                            "load-balance-decision" => it.load_balance.decision = string(l),
                            _ => {}
                        }
                    }
                }
                "sub-protocol" => it.sub_protocol = string(c),
                _ => {}
            }
        }
        Ok(it)
    }

    /// The `<item>` as upstream's `ItemType::Encode` writes it.
    pub fn encode(&self) -> Element {
        let mut item = Element::new("item");
        if let Some(id) = &self.id {
            item = item.with_attr("id", id);
        }
        let mut nhs = Element::new("next-hops");
        for n in &self.next_hops {
            nhs.push(encode_nh(n));
        }
        let entry = Element::new("entry")
            .with_child(
                Element::new("nlri")
                    .with_child(leaf("af", self.nlri.af))
                    .with_child(leaf("safi", self.nlri.safi))
                    .with_child(leaf("address", &self.nlri.address)),
            )
            .with_child(nhs)
            .with_child(leaf("version", self.version))
            .with_child(leaf("virtual-network", &self.virtual_network))
            .with_child(encode_mobility(&self.mobility))
            .with_child(leaf("sequence-number", self.sequence_number))
            .with_child(list(
                "security-group-list",
                "security-group",
                &self.security_groups,
            ))
            .with_child(list(
                "community-tag-list",
                "community-tag",
                &self.community_tags,
            ))
            .with_child(leaf("local-preference", self.local_preference))
            .with_child(leaf("med", self.med))
            .with_child(
                Element::new("load-balance")
                    .with_child(list(
                        "load-balance-fields",
                        "load-balance-field-list",
                        &self.load_balance.fields,
                    ))
                    .with_child(leaf("load-balance-decision", &self.load_balance.decision)),
            )
            .with_child(leaf("sub-protocol", &self.sub_protocol));
        item.with_child(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str =
        include_str!("../tests/upstream/xmpp/captured/cn_to_agent_route_update_inet.xml");

    #[test]
    fn reads_a_captured_control_node_item() {
        let msg = Element::parse(CAPTURED).unwrap();
        let el = msg.find("item").unwrap();
        let it = InetItem::parse(el).unwrap();
        assert_eq!(it.id.as_deref(), Some("2.0.0.2/32"));
        assert_eq!(it.nlri.address, "2.0.0.2/32");
        assert_eq!(it.next_hops.len(), 1);
        let nh = &it.next_hops[0];
        assert_eq!(nh.address, "10.1.1.3");
        assert_eq!(nh.label, 47);
        assert_eq!(nh.encap, ["gre", "udp"]);
        assert_eq!(nh.tags, [65543, 524295]);
        assert_eq!(
            it.mobility,
            Mobility {
                seqno: 1,
                sticky: false
            }
        );
        assert_eq!(it.community_tags, ["3:9"]);
        assert_eq!(it.local_preference, 200);
        assert_eq!(it.sub_protocol, "interface");
        // What we print reads back the same.
        assert_eq!(InetItem::parse(&it.encode()).unwrap(), it);
    }

    #[test]
    fn non_numbers_fail_the_item() {
        let el = Element::parse("<item><entry><version>ZZZZZZ</version></entry></item>").unwrap();
        assert_eq!(
            InetItem::parse(&el),
            Err(SchemaError {
                field: "version".into(),
                value: "ZZZZZZ".into()
            })
        );
    }
}
