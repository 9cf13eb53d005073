//! The IF-MAP config an agent gets, computed from a VNC store as
//! upstream's IF-MAP server walks its graph for a client: from the
//! agent's virtual-router (with its global-system-config and
//! global-vrouter-config) and from each virtual machine it subscribed to:
//! the VM, its interfaces, their networks (with the IPAM and policy
//! references as `attr(…)` nodes, and the network's routing instance),
//! their security groups and instance IPs.
//!
//! Changes are sent as the difference between what the agent was sent and
//! what it should have now: new and changed nodes and new links in an
//! `<update>`, gone links and then gone nodes in a `<delete>`.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;
use vnc_api::Snapshot;
use xmpp::ifmap::schema::REFS;
use xmpp::ifmap::{props, Change, Entry, Link, Node, NodeId, Op};
use xmpp::xml::Element;

/// What one agent has (or should have).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub nodes: BTreeMap<NodeId, Vec<Element>>,
    pub links: BTreeMap<(NodeId, NodeId), Option<String>>,
}

fn join(fq: &Value) -> String {
    fq.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// The properties of a stored object (identity, refs and children are
/// IF-MAP's name and links instead).
fn node_props(obj: &Value) -> Vec<Element> {
    let mut m = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        let skip = matches!(
            k.as_str(),
            "uuid" | "fq_name" | "name" | "parent_type" | "parent_uuid" | "href" | "parent_href"
        ) || k.ends_with("_refs")
            || k.ends_with("_back_refs");
        if !skip {
            m.insert(k.clone(), v.clone());
        }
    }
    props::from_json(&m)
}

impl View {
    fn add_node(&mut self, ty: &str, obj: &Value) -> NodeId {
        let id = NodeId::new(ty, join(&obj["fq_name"]));
        self.nodes.insert(id.clone(), node_props(obj));
        id
    }

    fn link(&mut self, a: &NodeId, b: &NodeId, meta: &str) {
        let k = if a <= b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        self.links.insert(k, Some(meta.to_string()));
    }

    /// The refs of `obj` (of type `ty`) to `target` objects, as links (and
    /// attr nodes) to nodes added for the targets found in `snap`.
    fn refs(
        &mut self,
        snap: &Snapshot,
        ty: &str,
        me: &NodeId,
        obj: &Value,
        target: &str,
    ) -> Vec<(NodeId, Value)> {
        let field = format!("{}_refs", target.replace('-', "_"));
        let attr = REFS
            .iter()
            .any(|r| r.owner == ty && r.target == target && r.attr);
        let mut out = Vec::new();
        for r in obj
            .get(&field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(u) = r
                .get("uuid")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
            else {
                continue;
            };
            let Some(t) = snap.get(target, &u) else {
                continue;
            };
            let tid = self.add_node(target, t);
            let meta = format!("{ty}-{target}");
            if attr {
                let an = NodeId::new(meta.clone(), format!("attr({},{})", tid.name, me.name));
                let mut value = Vec::new();
                if let Some(a) = r.get("attr").filter(|a| a.is_object()) {
                    let mut v = Element::new("value");
                    v.children = props::from_json(a.as_object().unwrap_or(&Map::new()));
                    value.push(v);
                }
                self.nodes.insert(an.clone(), value);
                self.link(me, &an, &meta);
                self.link(&an, &tid, &meta);
            } else {
                self.link(me, &tid, &meta);
            }
            out.push((tid, t.clone()));
        }
        out
    }

    fn vn(&mut self, snap: &Snapshot, vn: &NodeId, obj: &Value) {
        self.vn_at(snap, vn, obj, true);
    }

    /// A network, its IPAM and policies, its routing instance; with
    /// `peers`, also the other networks its policies are attached to (the
    /// agent evaluates a policy with both sides' rule lists, upstream's
    /// schema transformer compiles them into the ACLs it sends instead).
    fn vn_at(&mut self, snap: &Snapshot, vn: &NodeId, obj: &Value, peers: bool) {
        self.refs(snap, "virtual-network", vn, obj, "network-ipam");
        let pols = self.refs(snap, "virtual-network", vn, obj, "network-policy");
        if peers {
            for (_, pol) in &pols {
                let Some(pu) = pol.get("uuid").and_then(Value::as_str) else {
                    continue;
                };
                for (_, other) in snap.iter("virtual-network") {
                    let attached = other
                        .get("network_policy_refs")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|r| r.get("uuid").and_then(Value::as_str) == Some(pu));
                    let oid = NodeId::new("virtual-network", join(&other["fq_name"]));
                    if attached && oid != *vn && !self.nodes.contains_key(&oid) {
                        let oid = self.add_node("virtual-network", other);
                        self.vn_at(snap, &oid, other, false);
                    }
                }
            }
        }
        // The network's routing instance (the schema transformer makes
        // one per network: `<vn>:<vn name>`).
        let name = vn.name.rsplit(':').next().unwrap_or_default().to_string();
        let ri = NodeId::new("routing-instance", format!("{}:{name}", vn.name));
        self.nodes.entry(ri.clone()).or_default();
        self.link(vn, &ri, "virtual-network-routing-instance");
    }
}

/// The view of the agent whose virtual-router is `vr` (its fq name,
/// `default-global-system-config:<name>`) and that subscribed to `vms`.
pub fn view(snap: &Snapshot, vr: &str, vms: &BTreeSet<String>) -> View {
    let mut v = View::default();
    let vr_fq: Vec<String> = vr.split(':').map(String::from).collect();
    let Some((_, vr_obj)) = snap.by_fq_name("virtual-router", &vr_fq) else {
        return v;
    };
    let vr_id = v.add_node("virtual-router", vr_obj);
    let gsc_fq = vec![vnc_api::DEFAULT_GSC.to_string()];
    if let Some((_, gsc)) = snap.by_fq_name("global-system-config", &gsc_fq) {
        let g = v.add_node("global-system-config", gsc);
        v.link(&g, &vr_id, "global-system-config-virtual-router");
        for (_, gvc) in snap.iter("global-vrouter-config") {
            let c = v.add_node("global-vrouter-config", gvc);
            v.link(&g, &c, "global-system-config-global-vrouter-config");
        }
    }
    let vr_vms: BTreeSet<Uuid> = vr_obj
        .get("virtual_machine_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uuid").and_then(Value::as_str))
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect();
    let wanted: BTreeSet<Uuid> = vms
        .iter()
        .filter_map(|s| Uuid::parse_str(s).ok())
        .chain(vr_vms.iter().copied())
        .collect();
    for vm in &wanted {
        let Some(vm_obj) = snap.get("virtual-machine", vm) else {
            continue;
        };
        let vm_id = v.add_node("virtual-machine", vm_obj);
        if vr_vms.contains(vm) {
            v.link(&vr_id, &vm_id, "virtual-router-virtual-machine");
        }
        let vm_s = vm.to_string();
        for (vmi_u, vmi) in snap.iter("virtual-machine-interface") {
            let mine = vmi
                .get("virtual_machine_refs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| r.get("uuid").and_then(Value::as_str) == Some(vm_s.as_str()));
            if !mine {
                continue;
            }
            let vmi_id = v.add_node("virtual-machine-interface", vmi);
            v.link(&vmi_id, &vm_id, "virtual-machine-interface-virtual-machine");
            for (vn_id, vn) in v.refs(
                snap,
                "virtual-machine-interface",
                &vmi_id,
                vmi,
                "virtual-network",
            ) {
                v.vn(snap, &vn_id, &vn);
            }
            v.refs(
                snap,
                "virtual-machine-interface",
                &vmi_id,
                vmi,
                "security-group",
            );
            let vmi_s = vmi_u.to_string();
            for (_, iip) in snap.iter("instance-ip") {
                let refers = iip
                    .get("virtual_machine_interface_refs")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|r| r.get("uuid").and_then(Value::as_str) == Some(vmi_s.as_str()));
                if !refers {
                    continue;
                }
                let iip_id = v.add_node("instance-ip", iip);
                v.link(&iip_id, &vmi_id, "instance-ip-virtual-machine-interface");
                for (vn_id, vn) in v.refs(snap, "instance-ip", &iip_id, iip, "virtual-network") {
                    v.vn(snap, &vn_id, &vn);
                }
            }
        }
    }
    v
}

/// What turns `old` into `new`.
pub fn diff(old: &View, new: &View) -> Vec<Change> {
    let mut out = Vec::new();
    for (id, p) in &new.nodes {
        if old.nodes.get(id) != Some(p) {
            out.push(Change {
                op: Op::Update,
                entry: Entry::Node(Node {
                    id: id.clone(),
                    props: p.clone(),
                }),
            });
        }
    }
    for ((a, b), m) in &new.links {
        if old.links.get(&(a.clone(), b.clone())) != Some(m) {
            out.push(Change {
                op: Op::Update,
                entry: Entry::Link(Link {
                    left: a.clone(),
                    right: b.clone(),
                    metadata: m.clone(),
                }),
            });
        }
    }
    for ((a, b), m) in &old.links {
        if !new.links.contains_key(&(a.clone(), b.clone())) {
            out.push(Change {
                op: Op::Delete,
                entry: Entry::Link(Link {
                    left: a.clone(),
                    right: b.clone(),
                    metadata: m.clone(),
                }),
            });
        }
    }
    for id in old.nodes.keys() {
        if !new.nodes.contains_key(id) {
            out.push(Change {
                op: Op::Delete,
                entry: Entry::Node(Node {
                    id: id.clone(),
                    props: Vec::new(),
                }),
            });
        }
    }
    out
}
