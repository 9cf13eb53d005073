//! The IF-MAP graph an agent holds: nodes with their properties and the
//! links between them, kept as the control node's updates and deletes
//! arrive, and read back as VNC objects (the JSON the config API would
//! return: `uuid`, `fq_name`, properties, `<type>_refs` with their `attr`,
//! children lists), so that one model serves both config sources.

use super::schema::{attr_ref, is_parent, ref_between};
use super::{props, Change, Entry, NodeId, Op};
use crate::xml::Element;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: BTreeMap<NodeId, Vec<Element>>,
    /// Unordered pairs (smaller first) -> metadata.
    links: BTreeMap<(NodeId, NodeId), Option<String>>,
    adj: BTreeMap<NodeId, BTreeSet<NodeId>>,
}

fn pair(a: &NodeId, b: &NodeId) -> (NodeId, NodeId) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

/// The uuid in a node's `id-perms`.
pub fn uuid_of(props: &[Element]) -> Option<Uuid> {
    let u = props.iter().find(|p| p.name == "id-perms")?.child("uuid")?;
    let num = |n: &str| {
        u.child(n)
            .and_then(|e| e.value().trim().parse::<u64>().ok())
    };
    Some(Uuid::from_u64_pair(
        num("uuid-mslong")?,
        num("uuid-lslong")?,
    ))
}

fn fq(name: &str) -> Vec<String> {
    name.split(':').map(String::from).collect()
}

impl Graph {
    /// Apply changes; whether anything changed.
    pub fn apply(&mut self, changes: &[Change]) -> bool {
        let mut changed = false;
        for c in changes {
            match (&c.op, &c.entry) {
                (Op::Update, Entry::Node(n)) => {
                    if self.nodes.get(&n.id) != Some(&n.props) {
                        self.nodes.insert(n.id.clone(), n.props.clone());
                        changed = true;
                    }
                }
                (Op::Delete, Entry::Node(n)) => {
                    changed |= self.nodes.remove(&n.id).is_some();
                }
                (Op::Update, Entry::Link(l)) => {
                    let k = pair(&l.left, &l.right);
                    if self.links.get(&k) != Some(&l.metadata) {
                        self.links.insert(k, l.metadata.clone());
                        self.adj
                            .entry(l.left.clone())
                            .or_default()
                            .insert(l.right.clone());
                        self.adj
                            .entry(l.right.clone())
                            .or_default()
                            .insert(l.left.clone());
                        changed = true;
                    }
                }
                (Op::Delete, Entry::Link(l)) => {
                    if self.links.remove(&pair(&l.left, &l.right)).is_some() {
                        for (a, b) in [(&l.left, &l.right), (&l.right, &l.left)] {
                            if let Some(s) = self.adj.get_mut(a) {
                                s.remove(b);
                                if s.is_empty() {
                                    self.adj.remove(a);
                                }
                            }
                        }
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.links.clear();
        self.adj.clear();
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    pub fn props(&self, id: &NodeId) -> Option<&[Element]> {
        self.nodes.get(id).map(Vec::as_slice)
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, &[Element])> {
        self.nodes.iter().map(|(k, v)| (k, v.as_slice()))
    }

    pub fn neighbours<'a>(&'a self, id: &NodeId) -> impl Iterator<Item = &'a NodeId> + 'a {
        self.adj.get(id).into_iter().flatten()
    }

    fn uuid(&self, id: &NodeId) -> Option<Uuid> {
        self.nodes.get(id).and_then(|p| uuid_of(p))
    }

    fn ref_entry(&self, target: &NodeId, attr: Value) -> Value {
        let mut r = json!({"to": fq(&target.name), "attr": attr});
        if let (Some(u), Some(m)) = (self.uuid(target), r.as_object_mut()) {
            m.insert("uuid".into(), json!(u.to_string()));
        }
        r
    }

    /// The VNC object of a node that has a uuid.
    pub fn object(&self, id: &NodeId) -> Option<(Uuid, Value)> {
        let p = self.nodes.get(id)?;
        let uuid = uuid_of(p)?;
        let mut m: Map<String, Value> = props::to_json(p);
        let fqn = fq(&id.name);
        m.insert("uuid".into(), json!(uuid.to_string()));
        m.insert(
            "name".into(),
            json!(fqn.last().cloned().unwrap_or_default()),
        );
        m.insert("fq_name".into(), json!(fqn));
        let mut refs: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut children: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for n in self.neighbours(id) {
            if let Some(r) = attr_ref(&n.ty).filter(|r| r.owner == id.ty) {
                let attr = self
                    .nodes
                    .get(n)
                    .and_then(|ps| ps.iter().find(|e| e.name == "value"))
                    .map_or(Value::Null, props::value_of);
                for t in self.neighbours(n).filter(|t| t.ty == r.target && *t != id) {
                    refs.entry(format!("{}_refs", r.target.replace('-', "_")))
                        .or_default()
                        .push(self.ref_entry(t, attr.clone()));
                }
                continue;
            }
            if let Some(r) = ref_between(&id.ty, &n.ty).filter(|r| r.owner == id.ty) {
                refs.entry(format!("{}_refs", r.target.replace('-', "_")))
                    .or_default()
                    .push(self.ref_entry(n, Value::Null));
                continue;
            }
            if is_parent(&n.ty, &id.ty) {
                m.insert("parent_type".into(), json!(n.ty));
                if let Some(u) = self.uuid(n) {
                    m.insert("parent_uuid".into(), json!(u.to_string()));
                }
            } else if is_parent(&id.ty, &n.ty) {
                let mut c = json!({"to": fq(&n.name)});
                if let (Some(u), Some(cm)) = (self.uuid(n), c.as_object_mut()) {
                    cm.insert("uuid".into(), json!(u.to_string()));
                }
                children
                    .entry(format!("{}s", n.ty.replace('-', "_")))
                    .or_default()
                    .push(c);
            }
        }
        for (k, v) in refs.into_iter().chain(children) {
            m.insert(k, Value::Array(v));
        }
        Some((uuid, Value::Object(m)))
    }

    /// Every node with a uuid as `(type, uuid, object)`.
    pub fn objects(&self) -> impl Iterator<Item = (&str, Uuid, Value)> + '_ {
        self.nodes
            .keys()
            .filter_map(|id| self.object(id).map(|(u, v)| (id.ty.as_str(), u, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ifmap::parse_config;
    use crate::stanza::{IqBody, Stanza};

    fn load(g: &mut Graph, file: &str) {
        for part in file.split("</iq>").filter(|p| p.contains("<iq")) {
            let Stanza::Iq(iq) = Stanza::parse(&format!("{part}</iq>")).unwrap() else {
                panic!()
            };
            let IqBody::Config(c) = iq.body else { panic!() };
            let (changes, errs) = parse_config(&c);
            assert!(errs.is_empty(), "{errs:?}");
            g.apply(&changes);
        }
    }

    #[test]
    fn the_upstream_config_becomes_vnc_objects() {
        let mut g = Graph::default();
        load(
            &mut g,
            include_str!(
                "../../tests/upstream/ifmap-config-cn-to-agent/cli1_vn1_vm3_add.master_output"
            ),
        );
        let vn = NodeId::new("virtual-network", "default-domain:demo:vn27");
        let (vu, v) = g.object(&vn).unwrap();
        assert_eq!(
            vu,
            Uuid::from_u64_pair(3581783077679746946, 12855682262450960435)
        );
        assert_eq!(v["fq_name"], json!(["default-domain", "demo", "vn27"]));
        let ipam = &v["network_ipam_refs"][0];
        assert_eq!(
            ipam["to"],
            json!(["default-domain", "demo", "default-network-ipam"])
        );
        assert_eq!(
            ipam["attr"]["ipam_subnets"][0]["subnet"]["ip_prefix_len"],
            json!(24)
        );
        assert_eq!(
            ipam["attr"]["ipam_subnets"][0]["default_gateway"],
            json!("27.1.1.254")
        );
        let vmi = NodeId::new(
            "virtual-machine-interface",
            "2d308482-c7b3-4e05-af14-e732b7b50117:ef1e9828-05b6-44a2-a410-d1b662594fc3",
        );
        let (_, o) = g.object(&vmi).unwrap();
        assert_eq!(
            o["virtual_machine_interface_mac_addresses"]["mac_address"],
            json!(["02:ef:1e:98:28:05"])
        );
        assert_eq!(o["virtual_network_refs"][0]["uuid"], json!(vu.to_string()));
        assert_eq!(o["virtual_machine_refs"].as_array().unwrap().len(), 1);
        let iips: Vec<_> = g
            .objects()
            .filter(|(t, _, _)| *t == "instance-ip")
            .collect();
        assert_eq!(iips.len(), 3);
        assert!(iips
            .iter()
            .all(|(_, _, o)| o["virtual_network_refs"][0]["uuid"] == json!(vu.to_string())));
        let (_, vr) = g
            .object(&NodeId::new(
                "virtual-router",
                "default-global-system-config:a1s27.contrail.juniper.net",
            ))
            .unwrap();
        assert_eq!(vr["virtual_machine_refs"].as_array().unwrap().len(), 3);
        assert_eq!(vr["parent_type"], json!("global-system-config"));
    }
}
