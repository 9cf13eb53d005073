//! The agent's operational model: configuration (VNC objects) joined with
//! the ports the port API announced, resolved into what the datapath and
//! the pkt0 services need (VRF per virtual network, vif per port,
//! addresses, security groups, policy).
//!
//! A [`Model`] is immutable and rebuilt whenever the config store or the
//! ports change; readers hold an `Arc<Model>` for as long as they need a
//! consistent view.

use crate::ports::PortRecord;
use crate::rib::{Encap, Rib, RouteId, DEFAULT_PRIORITY};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use uuid::Uuid;
use vnc_api::Snapshot;

/// First vif index the agent gives to ports: 0 is the fabric, 1 vhost0,
/// 2 pkt0 (upstream's layout; the datapath creates 0 and 2 itself).
pub const FIRST_PORT_VIF: u16 = 3;
/// MTU the agent gives a container port's vif: 0, "the interface's own",
/// which the datapath reads when it opens the interface (upstream's agent
/// reads it from the OS; here the datapath is the one that opens it).
pub const IFACE_MTU: u16 = 0;

/// One IPAM subnet of a virtual network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub prefix: IpAddr,
    pub plen: u8,
    pub gateway: Option<IpAddr>,
    pub dns: Option<IpAddr>,
    pub dhcp: bool,
    /// An interface MTU configured among the subnet's DHCP options
    /// (`dhcp_option_list`: `interface-mtu` or `26`, as upstream names it).
    pub dhcp_mtu: Option<u16>,
}

impl Subnet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.prefix, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let m = mask32(self.plen);
                u32::from(p) & m == u32::from(a) & m
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let m = mask128(self.plen);
                u128::from(p) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

fn mask32(plen: u8) -> u32 {
    if plen == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(plen.min(32)))
    }
}

fn mask128(plen: u8) -> u128 {
    if plen == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(plen.min(128)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vn {
    pub uuid: Uuid,
    /// `domain:project:name`.
    pub fq_name: String,
    /// The VRF (one per virtual network): the datapath's, local to this
    /// node as upstream's agent allocates it; `virtual_network_network_id`
    /// when the datapath can hold it (see [`assign_vrfs`]).
    pub vrf: u16,
    pub vni: u32,
    pub subnets: Vec<Subnet>,
    pub has_policy: bool,
    /// Its routing instance (upstream's VRF name): the VN's child
    /// routing-instance when config names one, else upstream's default
    /// `<vn fq name>:<vn name>`.
    pub ri: String,
}

/// A port the agent programs: a port API record whose VN exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub uuid: Uuid,
    pub vif: u16,
    pub name: String,
    pub mac: [u8; 6],
    pub ip4: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub vn: Uuid,
    pub vrf: u16,
    /// Security group fq names.
    pub sgs: Vec<String>,
    /// Whether new flows of this port go to the agent (policy or SGs).
    pub policy: bool,
    pub dhcp: bool,
    pub mtu: u16,
    pub display_name: String,
    /// A VLAN sub-interface port: its parent's vif and tags.
    pub sub: Option<dp_core::SubIf>,
}

/// Why a port record is not programmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortProblem {
    pub uuid: Uuid,
    pub reason: String,
}

/// An address behind another compute node, as routes describe it (for
/// the flows' policy view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// Its virtual network (fq name).
    pub vn: String,
    /// Its security groups (fq names, from the route's ids).
    pub sgs: Vec<String>,
}

/// Why a virtual network is not programmed (its ports are not either).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VnProblem {
    pub uuid: Uuid,
    pub fq_name: String,
    pub reason: String,
}

/// The agent's id limits the model must fit.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest vif index + 1.
    pub max_vifs: u16,
    /// Largest VRF (the VN's network id) + 1.
    pub max_vrfs: u16,
}

#[derive(Default)]
pub struct Model {
    pub revision: u64,
    pub vns: BTreeMap<Uuid, Vn>,
    pub ports: BTreeMap<u16, Port>,
    /// `(vrf, address)` -> vif, including addresses leaked from connected
    /// VNs.
    pub by_addr: HashMap<(u16, IpAddr), u16>,
    /// VRF -> the VNs whose ports are routed in it (its own first).
    pub vrf_members: BTreeMap<u16, Vec<Uuid>>,
    pub problems: Vec<PortProblem>,
    /// Virtual networks that cannot be programmed, and why.
    pub vn_problems: Vec<VnProblem>,
    pub policy: Option<policy::PolicySet>,
    /// global-vrouter-config's encapsulation priorities (upstream's
    /// default without one).
    pub encap_priority: Vec<Encap>,
    /// Security group fq name <-> `security_group_id`.
    pub sg_ids: HashMap<String, i64>,
    /// Routes learned from the control nodes (empty without one).
    pub rib: Arc<Rib>,
    /// `(vrf, address)` -> remote endpoint, from the host routes of `rib`.
    pub remote: HashMap<(u16, IpAddr), RemoteEndpoint>,
}

impl Model {
    pub fn vn_by_vrf(&self, vrf: u16) -> Option<&Vn> {
        self.vns.values().find(|v| v.vrf == vrf)
    }

    pub fn port_by_addr(&self, vrf: u16, ip: IpAddr) -> Option<&Port> {
        self.by_addr.get(&(vrf, ip)).and_then(|v| self.ports.get(v))
    }

    pub fn vn_by_ri(&self, ri: &str) -> Option<&Vn> {
        self.vns.values().find(|v| v.ri == ri)
    }

    /// The VN and security groups of `ip` seen from `vrf`: a local port,
    /// or an address the control node routes to another compute node.
    pub fn endpoint(&self, vrf: u16, ip: IpAddr) -> Option<(&str, &[String])> {
        if let Some(p) = self.port_by_addr(vrf, ip) {
            return Some((self.vns.get(&p.vn)?.fq_name.as_str(), &p.sgs));
        }
        self.remote
            .get(&(vrf, ip))
            .map(|r| (r.vn.as_str(), r.sgs.as_slice()))
    }

    pub fn subnet_of(&self, port: &Port) -> Option<&Subnet> {
        let vn = self.vns.get(&port.vn)?;
        let ip = port.ip4.map(IpAddr::V4)?;
        vn.subnets.iter().find(|s| s.contains(ip))
    }

    /// The IPv6 subnet of the port's IPv6 address.
    pub fn subnet6_of(&self, port: &Port) -> Option<&Subnet> {
        let vn = self.vns.get(&port.vn)?;
        let ip = port.ip6.map(IpAddr::V6)?;
        vn.subnets.iter().find(|s| s.contains(ip))
    }
}

// ---- VNC JSON helpers -----------------------------------------------------

pub fn fq_name(obj: &Value) -> String {
    obj.get("fq_name")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default()
}

/// `(uuid, fq name)` of every entry of `<field>`.
pub fn refs(obj: &Value, field: &str) -> Vec<(Option<Uuid>, String)> {
    obj.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| {
                    let u = r
                        .get("uuid")
                        .and_then(Value::as_str)
                        .and_then(|s| Uuid::parse_str(s).ok());
                    (u, fq_name_of(r.get("to")))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fq_name_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(":"),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn parse_ip(v: Option<&Value>) -> Option<IpAddr> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

pub fn vn_subnets(obj: &Value) -> Vec<Subnet> {
    let mut out = Vec::new();
    let Some(ipams) = obj.get("network_ipam_refs").and_then(Value::as_array) else {
        return out;
    };
    for r in ipams {
        let Some(subs) = r
            .get("attr")
            .and_then(|a| a.get("ipam_subnets"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        for s in subs {
            let sn = s.get("subnet");
            let Some(prefix) = parse_ip(sn.and_then(|x| x.get("ip_prefix"))) else {
                continue;
            };
            let Some(plen) = sn
                .and_then(|x| x.get("ip_prefix_len"))
                .and_then(Value::as_u64)
                .and_then(|p| u8::try_from(p).ok())
            else {
                continue;
            };
            out.push(Subnet {
                prefix,
                plen,
                gateway: parse_ip(s.get("default_gateway")),
                dns: parse_ip(s.get("dns_server_address")),
                dhcp: s
                    .get("enable_dhcp")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                dhcp_mtu: dhcp_option(s, &["interface-mtu", "26"])
                    .and_then(|v| v.trim().parse::<u16>().ok())
                    .filter(|m| *m >= 68),
            });
        }
    }
    out
}

/// The value of a DHCP option of an IPAM subnet (`dhcp_option_list`,
/// upstream's `DhcpOptionsListType`) by any of its names.
fn dhcp_option<'a>(subnet: &'a Value, names: &[&str]) -> Option<&'a str> {
    subnet
        .get("dhcp_option_list")?
        .get("dhcp_option")?
        .as_array()?
        .iter()
        .find(|o| {
            o.get("dhcp_option_name")
                .and_then(Value::as_str)
                .is_some_and(|n| names.iter().any(|w| n.eq_ignore_ascii_case(w)))
        })?
        .get("dhcp_option_value")?
        .as_str()
}

pub use crate::ports::parse_mac;

/// Build the model. `vifs` carries the vif index of every port seen so far
/// (kept stable across rebuilds and agent restarts: the caller seeds it
/// from the datapath's vifs by name); new ports get the lowest free index.
pub fn build(
    snap: &Snapshot,
    ports: &BTreeMap<Uuid, PortRecord>,
    vifs: &mut BTreeMap<Uuid, u16>,
    limits: Limits,
) -> Model {
    build_with_rib(
        snap,
        ports,
        vifs,
        &mut BTreeMap::new(),
        limits,
        Arc::default(),
    )
}

/// Give every virtual network in `snap` a VRF in `vrfs` (by VN uuid),
/// which carries the ones assigned so far (kept across rebuilds and agent restarts, as
/// vif indices are: the datapath's flows and routes are keyed by them).
///
/// The network id is a cluster-wide number the config node hands out and
/// never shrinks, while the datapath's VRF table is small (`--max-vrfs`).
/// So, as upstream's agent does, the VRF is this node's own: a network
/// keeps the one it has; a new one takes its network id when that fits and
/// is free (the common case, and what a reader of `vrctl` expects), else the
/// highest free VRF. VRF 0 is the fabric's. A network with no id, or with
/// no VRF left, is reported with the reason.
pub fn assign_vrfs(
    snap: &Snapshot,
    vrfs: &mut BTreeMap<Uuid, u16>,
    max_vrfs: u16,
) -> Vec<VnProblem> {
    let vns: Vec<(Uuid, &Value, Option<u64>)> = snap
        .iter("virtual-network")
        .map(|(u, o)| {
            (
                *u,
                o,
                o.get("virtual_network_network_id").and_then(Value::as_u64),
            )
        })
        .collect();
    let fits = |v: u16| v != 0 && v < max_vrfs;
    // Forget networks that are gone (or VRFs a lower limit no longer holds).
    let with_id: std::collections::HashSet<Uuid> = vns
        .iter()
        .filter(|(_, _, id)| id.is_some())
        .map(|(u, _, _)| *u)
        .collect();
    vrfs.retain(|u, v| fits(*v) && with_id.contains(u));
    let mut used: BTreeSet<u16> = vrfs.values().copied().collect();
    for (uuid, _, id) in &vns {
        let Some(v) = id.and_then(|n| u16::try_from(n).ok()).filter(|v| fits(*v)) else {
            continue;
        };
        if !vrfs.contains_key(uuid) && used.insert(v) {
            vrfs.insert(*uuid, v);
        }
    }
    let mut problems = Vec::new();
    let mut free = (1..max_vrfs).rev().filter(|v| !used.contains(v));
    for (uuid, obj, id) in &vns {
        if vrfs.contains_key(uuid) {
            continue;
        }
        let reason = match id {
            None => "it has no virtual_network_network_id".to_string(),
            Some(n) => match free.next() {
                Some(v) => {
                    vrfs.insert(*uuid, v);
                    continue;
                }
                None => format!(
                    "no VRF is free for it (network id {n}): all {max_vrfs} the datapath holds (--max-vrfs) are the fabric's or another network's ({} in use)",
                    vrfs.len() + 1
                ),
            },
        };
        problems.push(VnProblem {
            uuid: *uuid,
            fq_name: fq_name(obj),
            reason,
        });
    }
    problems
}

/// [`build`], with the VRFs assigned so far ([`assign_vrfs`]) and the
/// routes learned from the control nodes.
pub fn build_with_rib(
    snap: &Snapshot,
    ports: &BTreeMap<Uuid, PortRecord>,
    vifs: &mut BTreeMap<Uuid, u16>,
    vrfs: &mut BTreeMap<Uuid, u16>,
    limits: Limits,
    rib: Arc<Rib>,
) -> Model {
    let max_vifs = limits.max_vifs;
    let mut m = Model {
        revision: snap.revision,
        encap_priority: encap_priority(snap),
        rib,
        ..Model::default()
    };
    for (_, sg) in snap.iter("security-group") {
        if let Some(id) = sg.get("security_group_id").and_then(Value::as_i64) {
            m.sg_ids.insert(fq_name(sg), id);
        }
    }
    // A VN the datapath cannot hold is reported (introspect, metrics, its
    // ports' answers), not skipped.
    m.vn_problems = assign_vrfs(snap, vrfs, limits.max_vrfs);
    for (uuid, obj) in snap.iter("virtual-network") {
        let Some(&vrf) = vrfs.get(uuid) else {
            continue;
        };
        let network_id = obj
            .get("virtual_network_network_id")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(u32::from(vrf));
        // The VNI is cluster-wide: the network id, never the local VRF.
        let vni = obj
            .get("virtual_network_properties")
            .and_then(|p| p.get("vxlan_network_identifier"))
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(network_id);
        let fq = fq_name(obj);
        let ri = obj
            .get("routing_instances")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .map(|r| fq_name_of(r.get("to")))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| {
                let last = fq.rsplit(':').next().unwrap_or_default().to_string();
                format!("{fq}:{last}")
            });
        m.vns.insert(
            *uuid,
            Vn {
                uuid: *uuid,
                fq_name: fq,
                vrf,
                vni,
                subnets: vn_subnets(obj),
                has_policy: !refs(obj, "network_policy_refs").is_empty(),
                ri,
            },
        );
    }

    // Instance IPs by VMI.
    let mut iips: HashMap<Uuid, Vec<IpAddr>> = HashMap::new();
    for (_, obj) in snap.iter("instance-ip") {
        let Some(ip) = parse_ip(obj.get("instance_ip_address")) else {
            continue;
        };
        for (u, _) in refs(obj, "virtual_machine_interface_refs") {
            if let Some(u) = u {
                iips.entry(u).or_default().push(ip);
            }
        }
    }

    // Forget indices of ports that are gone; keep the others.
    vifs.retain(|u, _| ports.contains_key(u));
    let mut used: BTreeSet<u16> = vifs.values().copied().collect();
    let mut next_free = FIRST_PORT_VIF;

    // Untagged ports first: a VLAN sub-interface port needs its parent's
    // vif (the untagged port of the same interface).
    let mut ordered: Vec<(&Uuid, &PortRecord)> = ports.iter().collect();
    ordered.sort_by_key(|(_, r)| r.is_sub_interface());
    let mut parents: HashMap<&str, u16> = HashMap::new();
    for (uuid, rec) in ordered {
        let problem = |reason: String| PortProblem {
            uuid: *uuid,
            reason,
        };
        let Some(vn_uuid) = Uuid::parse_str(&rec.vn_id).ok() else {
            m.problems.push(problem(format!("bad vn-id {}", rec.vn_id)));
            continue;
        };
        let Some(vn) = m.vns.get(&vn_uuid) else {
            let why = match m.vn_problems.iter().find(|p| p.uuid == vn_uuid) {
                Some(p) => format!(
                    "virtual-network {vn_uuid} ({}) cannot be programmed: {}",
                    p.fq_name, p.reason
                ),
                None => format!("virtual-network {vn_uuid} not in config"),
            };
            m.problems.push(problem(why));
            continue;
        };
        let Some(mac) = parse_mac(&rec.mac_address) else {
            m.problems
                .push(problem(format!("bad mac-address {}", rec.mac_address)));
            continue;
        };
        let vmi = snap.get("virtual-machine-interface", uuid);
        let sgs: Vec<String> = vmi
            .map(|o| refs(o, "security_group_refs"))
            .unwrap_or_default()
            .into_iter()
            .map(|(_, fq)| fq)
            .collect();
        if !rec.link_up() {
            m.problems
                .push(problem("link down (disabled through /disable-port)".into()));
            continue;
        }
        // The config's instance-ips are the addresses (the config API is
        // the one allocator); the port body's address only stands in
        // while the config has none. A disagreement (refused at POST /port,
        // possible after a config change) is reported.
        let (mut ip4, mut ip6) = (None, None);
        for ip in iips.get(uuid).into_iter().flatten() {
            match ip {
                IpAddr::V4(a) if ip4.is_none() => ip4 = Some(*a),
                IpAddr::V6(a) if ip6.is_none() => ip6 = Some(*a),
                _ => {}
            }
        }
        for (body, cfg) in [
            (rec.ip4().map(IpAddr::V4), ip4.map(IpAddr::V4)),
            (rec.ip6().map(IpAddr::V6), ip6.map(IpAddr::V6)),
        ] {
            if let (Some(b), Some(c)) = (body, cfg) {
                if b != c {
                    tracing::warn!(port = %uuid, body = %b, config = %c, "port address differs from its instance-ip: using the instance-ip");
                }
            }
        }
        ip4 = ip4.or(rec.ip4());
        ip6 = ip6.or(rec.ip6());
        let vif = match vifs.get(uuid) {
            Some(v) => *v,
            None => {
                while used.contains(&next_free) {
                    next_free += 1;
                }
                if next_free >= max_vifs {
                    m.problems.push(problem("no free vif index".into()));
                    continue;
                }
                let v = next_free;
                used.insert(v);
                vifs.insert(*uuid, v);
                v
            }
        };
        let sub = if rec.is_sub_interface() {
            let Some(parent) = parents.get(rec.system_name.as_str()) else {
                m.problems.push(problem(format!(
                    "VLAN {} sub-interface of {}: its parent port (untagged, same system-name) is not programmed",
                    rec.rx_vlan_id, rec.system_name
                )));
                vifs.remove(uuid);
                continue;
            };
            Some(dp_core::SubIf {
                parent: *parent,
                vlan: rec.rx_vlan_id as u16,
                ovlan: rec.tx_vlan_id as u16,
            })
        } else {
            None
        };
        let dhcp = ip4
            .and_then(|a| {
                vn.subnets
                    .iter()
                    .find(|s| s.contains(IpAddr::V4(a)))
                    .map(|s| s.dhcp)
            })
            .unwrap_or(false);
        let port = Port {
            uuid: *uuid,
            vif,
            name: rec.vif_name(),
            mac,
            ip4,
            ip6,
            vn: vn_uuid,
            vrf: vn.vrf,
            policy: vn.has_policy || !sgs.is_empty(),
            sgs,
            dhcp,
            mtu: IFACE_MTU,
            display_name: rec.display_name.clone(),
            sub,
        };
        if sub.is_none() {
            parents.insert(rec.system_name.as_str(), vif);
        }
        m.ports.insert(vif, port);
    }

    let (policy, warnings) = policy::PolicySet::build(
        snap.iter("virtual-network"),
        snap.iter("network-policy"),
        snap.iter("security-group"),
    );
    for w in &warnings {
        tracing::warn!(warning = %w, "policy");
    }
    // Route leaking: a VRF sees the ports of VNs its policies connect it to.
    for vn in m.vns.values() {
        let mut members = vec![vn.uuid];
        for other in policy.connected_vns(&vn.fq_name) {
            if let Some(o) = m.vns.values().find(|v| v.fq_name == other) {
                if o.uuid != vn.uuid && !members.contains(&o.uuid) {
                    members.push(o.uuid);
                }
            }
        }
        m.vrf_members.insert(vn.vrf, members);
    }
    for (vrf, members) in &m.vrf_members {
        for p in m.ports.values() {
            if members.contains(&p.vn) {
                if let Some(a) = p.ip4 {
                    m.by_addr.insert((*vrf, IpAddr::V4(a)), p.vif);
                }
                if let Some(a) = p.ip6 {
                    m.by_addr.insert((*vrf, IpAddr::V6(a)), p.vif);
                }
            }
        }
    }
    m.policy = Some(policy);
    remote_endpoints(&mut m);
    m
}

/// global-vrouter-config's `encapsulation_priorities`.
pub fn encap_priority(snap: &Snapshot) -> Vec<Encap> {
    let list: Vec<Encap> = snap
        .iter("global-vrouter-config")
        .next()
        .and_then(|(_, g)| g.get("encapsulation_priorities"))
        .and_then(|p| p.get("encapsulation"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(Encap::from_priority)
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        DEFAULT_PRIORITY.to_vec()
    } else {
        list
    }
}

fn remote_endpoints(m: &mut Model) {
    let names: HashMap<i64, &str> = m.sg_ids.iter().map(|(n, i)| (*i, n.as_str())).collect();
    let mut out = HashMap::new();
    for vn in m.vns.values() {
        let Some(routes) = m.rib.get(&vn.ri) else {
            continue;
        };
        for (id, r) in routes {
            let RouteId::Inet(ip, plen) = *id else {
                continue;
            };
            let host = match ip {
                IpAddr::V4(_) => plen == 32,
                IpAddr::V6(_) => plen == 128,
            };
            if !host || m.by_addr.contains_key(&(vn.vrf, ip)) {
                continue;
            }
            out.insert(
                (vn.vrf, ip),
                RemoteEndpoint {
                    vn: r.vn.clone(),
                    sgs: r
                        .sgs
                        .iter()
                        .filter_map(|i| names.get(i).map(|s| s.to_string()))
                        .collect(),
                },
            );
        }
    }
    m.remote = out;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    /// Network ids are cluster-wide and grow; the VRF is this node's: a
    /// network keeps its id as VRF when that fits, else takes a free one,
    /// keeps it across rebuilds, and is reported (with its ports) only when
    /// no VRF is left.
    #[test]
    fn vrfs_are_local_and_only_a_full_table_refuses_a_network() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = vnc_api::Store::open(&dir.path().join("config.redb")).unwrap();
        let vn = |name: &str, id: u64| {
            json!({"fq_name": ["default-domain", "default-project", name],
                   "parent_type": "project", "virtual_network_network_id": id,
                   "network_ipam_refs": [{"to": ["default-domain", "default-project", "default-network-ipam"],
                       "attr": {"ipam_subnets": [{"subnet": {"ip_prefix": "198.18.0.0", "ip_prefix_len": 24}}]}}]})
        };
        let small = cfg.create("virtual-network", vn("small", 5)).unwrap();
        let big = cfg.create("virtual-network", vn("big", 70_000)).unwrap();
        let uuid_of = |v: &Value| Uuid::parse_str(v["uuid"].as_str().unwrap()).unwrap();
        let (small, big) = (uuid_of(&small), uuid_of(&big));
        let port = |vn: Uuid, n: u8| {
            let id = Uuid::from_u128(0x100 + u128::from(n));
            let rec: PortRecord = serde_json::from_value(json!({
                "id": id.to_string(), "instance-id": Uuid::from_u128(9).to_string(),
                "vn-id": vn.to_string(), "vm-project-id": Uuid::from_u128(8).to_string(),
                "mac-address": format!("02:00:00:00:00:{n:02x}"), "system-name": format!("tap{n}"),
                "display-name": "", "ip-address": format!("198.18.0.{n}"), "ip6-address": "None",
                "rx-vlan-id": -1, "tx-vlan-id": -1, "type": 0}))
            .unwrap();
            (id, rec)
        };
        let ports = BTreeMap::from([port(small, 3), port(big, 4)]);
        let limits = Limits {
            max_vifs: 64,
            max_vrfs: 4096,
        };
        let rebuild = |vrfs: &mut BTreeMap<Uuid, u16>| {
            build_with_rib(
                &cfg.snapshot().unwrap(),
                &ports,
                &mut BTreeMap::new(),
                vrfs,
                limits,
                Arc::default(),
            )
        };
        let mut vrfs = BTreeMap::new();
        let m = rebuild(&mut vrfs);
        assert!(m.vn_problems.is_empty() && m.problems.is_empty());
        assert_eq!((m.vns[&small].vrf, m.vns[&small].vni), (5, 5));
        assert_eq!(
            (m.vns[&big].vrf, m.vns[&big].vni),
            (4095, 70_000),
            "the highest free VRF; the VNI stays the network id"
        );
        assert_eq!(m.ports.len(), 2);
        // Kept: a new network whose id is big's VRF takes another one.
        let mid = uuid_of(&cfg.create("virtual-network", vn("mid", 4095)).unwrap());
        let m = rebuild(&mut vrfs);
        assert_eq!(
            (m.vns[&small].vrf, m.vns[&big].vrf, m.vns[&mid].vrf),
            (5, 4095, 4094)
        );
        // Forgotten once gone.
        cfg.delete("virtual-network", &mid).unwrap();
        let m = rebuild(&mut vrfs);
        assert_eq!(m.vns.len(), 2);
        assert_eq!(vrfs.len(), 2);
        // A table with one VRF for networks: one network is refused, with
        // its port, and says why.
        let m = build(
            &cfg.snapshot().unwrap(),
            &ports,
            &mut BTreeMap::new(),
            Limits {
                max_vrfs: 2,
                ..limits
            },
        );
        assert_eq!((m.vns.len(), m.vn_problems.len(), m.ports.len()), (1, 1, 1));
        let p = &m.vn_problems[0];
        assert!(
            p.reason.contains("no VRF is free") && p.reason.contains('2'),
            "{}",
            p.reason
        );
        assert_eq!(m.problems.len(), 1);
        assert!(
            m.problems[0].reason.contains("cannot be programmed"),
            "{}",
            m.problems[0].reason
        );
    }
}
