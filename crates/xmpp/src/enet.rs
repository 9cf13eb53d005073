//! The EVPN (`af` 25, `safi` 242) route item (`xmpp_enet.xsd`:
//! `EnetItemType`, `EnetEntryType`, `EnetNextHopType`), in schema order.

use crate::schema::{self, boolean, int, int_list, leaf, list, string, string_list, SchemaError};
use crate::unicast::{encode_mobility, parse_mobility, Mobility};
use crate::xml::Element;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnetNlri {
    pub af: i64,
    pub safi: i64,
    pub ethernet_tag: i64,
    pub mac: String,
    /// `ip/plen` (`0.0.0.0/32` for a MAC-only route).
    pub address: String,
    pub group: String,
    pub source: String,
    pub flags: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnetNextHop {
    pub af: i64,
    pub address: String,
    pub mac: String,
    /// MPLS label, or the VNI with VXLAN.
    pub label: i64,
    pub l3_label: i64,
    pub encap: Vec<String>,
    pub tags: Vec<i64>,
    pub local_sequence_number: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnetItem {
    pub id: Option<String>,
    pub nlri: EnetNlri,
    pub next_hops: Vec<EnetNextHop>,
    pub olist: Vec<EnetNextHop>,
    pub virtual_network: String,
    pub mobility: Mobility,
    pub sequence_number: i64,
    pub security_groups: Vec<i64>,
    pub local_preference: i64,
    pub med: i64,
    pub edge_replication_not_supported: bool,
    pub assisted_replication_supported: bool,
    pub leaf_olist: Vec<EnetNextHop>,
    pub replicator_address: String,
    pub etree_leaf: bool,
}

impl Default for EnetItem {
    fn default() -> Self {
        EnetItem {
            id: None,
            nlri: EnetNlri::default(),
            next_hops: Vec::new(),
            olist: Vec::new(),
            virtual_network: String::new(),
            mobility: Mobility {
                seqno: 0,
                sticky: false,
            },
            sequence_number: 0,
            security_groups: Vec::new(),
            local_preference: 0,
            med: 0,
            edge_replication_not_supported: false,
            assisted_replication_supported: false,
            leaf_olist: Vec::new(),
            replicator_address: String::new(),
            etree_leaf: false,
        }
    }
}

fn parse_nh(el: &Element) -> Result<EnetNextHop, SchemaError> {
    let mut n = EnetNextHop::default();
    for c in &el.children {
        match c.name.as_str() {
            "af" => n.af = int(c)?,
            "address" => n.address = string(c),
            "mac" => n.mac = string(c),
            "label" => n.label = int(c)?,
            "l3-label" => n.l3_label = int(c)?,
            "tunnel-encapsulation-list" => n.encap.extend(string_list(c, "tunnel-encapsulation")),
            "tag-list" => n.tags.extend(int_list(c, "tag")?),
            "local-sequence-number" => n.local_sequence_number = int(c)?,
            _ => {}
        }
    }
    Ok(n)
}

fn nh_list(el: &Element) -> Result<Vec<EnetNextHop>, SchemaError> {
    el.children_named("next-hop").map(parse_nh).collect()
}

fn encode_nh(n: &EnetNextHop) -> Element {
    Element::new("next-hop")
        .with_child(leaf("af", n.af))
        .with_child(leaf("address", &n.address))
        .with_child(leaf("mac", &n.mac))
        .with_child(leaf("label", n.label))
        .with_child(leaf("l3-label", n.l3_label))
        .with_child(list(
            "tunnel-encapsulation-list",
            "tunnel-encapsulation",
            &n.encap,
        ))
        .with_child(list("tag-list", "tag", &n.tags))
        .with_child(leaf("local-sequence-number", n.local_sequence_number))
}

fn encode_list(name: &str, v: &[EnetNextHop]) -> Element {
    let mut e = Element::new(name);
    for n in v {
        e.push(encode_nh(n));
    }
    e
}

impl EnetItem {
    pub fn parse(item: &Element) -> Result<EnetItem, SchemaError> {
        let mut it = EnetItem {
            id: item.attr("id").map(String::from),
            ..EnetItem::default()
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
                            "ethernet-tag" => it.nlri.ethernet_tag = int(n)?,
                            "mac" => it.nlri.mac = string(n),
                            "address" => it.nlri.address = string(n),
                            "group" => it.nlri.group = string(n),
                            "source" => it.nlri.source = string(n),
                            "flags" => it.nlri.flags = int(n)?,
                            _ => {}
                        }
                    }
                }
                "next-hops" => it.next_hops.extend(nh_list(c)?),
                "olist" => it.olist.extend(nh_list(c)?),
                "leaf-olist" => it.leaf_olist.extend(nh_list(c)?),
                "virtual-network" => it.virtual_network = string(c),
                "mobility" => it.mobility = parse_mobility(c)?,
                "sequence-number" => it.sequence_number = int(c)?,
                "security-group-list" => it.security_groups.extend(int_list(c, "security-group")?),
                "local-preference" => it.local_preference = int(c)?,
                "med" => it.med = int(c)?,
                "edge-replication-not-supported" => it.edge_replication_not_supported = boolean(c),
                "assisted-replication-supported" => it.assisted_replication_supported = boolean(c),
                "replicator-address" => it.replicator_address = string(c),
                "etree-leaf" => it.etree_leaf = boolean(c),
                _ => {}
            }
        }
        Ok(it)
    }

    pub fn encode(&self) -> Element {
        let mut item = Element::new("item");
        if let Some(id) = &self.id {
            item = item.with_attr("id", id);
        }
        let b = |v: bool| if v { "true" } else { "false" };
        let entry = Element::new("entry")
            .with_child(
                Element::new("nlri")
                    .with_child(leaf("af", self.nlri.af))
                    .with_child(leaf("safi", self.nlri.safi))
                    .with_child(leaf("ethernet-tag", self.nlri.ethernet_tag))
                    .with_child(leaf("mac", &self.nlri.mac))
                    .with_child(leaf("address", &self.nlri.address))
                    .with_child(leaf("group", &self.nlri.group))
                    .with_child(leaf("source", &self.nlri.source))
                    .with_child(leaf("flags", self.nlri.flags)),
            )
            .with_child(encode_list("next-hops", &self.next_hops))
            .with_child(encode_list("olist", &self.olist))
            .with_child(leaf("virtual-network", &self.virtual_network))
            .with_child(encode_mobility(&self.mobility))
            .with_child(leaf("sequence-number", self.sequence_number))
            .with_child(list(
                "security-group-list",
                "security-group",
                &self.security_groups,
            ))
            .with_child(leaf("local-preference", self.local_preference))
            .with_child(leaf("med", self.med))
            .with_child(leaf(
                "edge-replication-not-supported",
                b(self.edge_replication_not_supported),
            ))
            .with_child(leaf(
                "assisted-replication-supported",
                b(self.assisted_replication_supported),
            ))
            .with_child(encode_list("leaf-olist", &self.leaf_olist))
            .with_child(leaf("replicator-address", &self.replicator_address))
            .with_child(leaf("etree-leaf", b(self.etree_leaf)));
        item.with_child(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_numbers() {
        let it = EnetItem {
            nlri: EnetNlri {
                af: 25,
                safi: 242,
                mac: "02:00:00:00:00:01".into(),
                address: "10.0.0.1/32".into(),
                ..EnetNlri::default()
            },
            next_hops: vec![EnetNextHop {
                af: 1,
                address: "192.0.2.1".into(),
                label: 4242,
                encap: vec!["vxlan".into()],
                ..EnetNextHop::default()
            }],
            etree_leaf: true,
            ..EnetItem::default()
        };
        assert_eq!(EnetItem::parse(&it.encode()).unwrap(), it);
        let bad = Element::parse(include_str!(
            "../tests/upstream/xmpp/bgp-testdata-bad-items/bad_enet_item_1.xml"
        ))
        .unwrap();
        assert!(EnetItem::parse(&bad).is_err());
    }
}
