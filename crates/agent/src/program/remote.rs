//! Datapath objects for what lives on other compute nodes: the routes the
//! control nodes sent ([`crate::rib`]) become tunnel next hops, ECMP
//! composites, inet routes and bridge entries, as upstream's agent
//! programs them.
//!
//! * Each next hop gets the encapsulation the global-vrouter-config's
//!   priorities pick among those it advertises (MPLSoGRE, MPLSoUDP,
//!   VXLAN); one tunnel next hop per (compute node, encapsulation), the
//!   outer Ethernet header towards the compute node's (or its gateway's)
//!   MAC on the fabric. A compute node whose MAC is not known yet is left
//!   out (its routes wait) and reported, so the caller resolves it.
//! * A route with several next hops points to a composite ECMP next hop
//!   with each member's label.
//! * Inet routes get proxy ARP. When the address's EVPN route goes over
//!   VXLAN, the remote MAC is stitched: the container then addresses the
//!   remote container directly and the frame is bridged into the VXLAN
//!   tunnel (VXLAN carries Ethernet); over MPLS the vRouter's MAC is
//!   answered and the packet is routed with the L3 label.
//! * EVPN routes become bridge entries (L2 label or VNI).
//! * What exists locally wins: a local port's address or MAC, the
//!   gateway's receive route.

use super::{route, Ids, RouteKey, State, RECEIVE_NH};
use crate::model::Model;
use crate::rib::{choose, Encap, RemoteNh, RouteId};
use dp_core::nexthop::{Component, AF_INET};
use dp_core::route::{rt_flags, Prefix, RouteData};
use dp_core::{Nexthop, NhFlags, NhKind, TunnelKind};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

/// This compute node on the fabric.
#[derive(Clone, Debug)]
pub struct Fabric {
    /// Our tunnel address (`control_network_ip`).
    pub sip: Ipv4Addr,
    /// The fabric vif's MAC (vif 0).
    pub smac: [u8; 6],
    /// MACs of the tunnel destinations (or their gateways) on the fabric.
    pub neighbors: HashMap<Ipv4Addr, [u8; 6]>,
}

impl Default for Fabric {
    fn default() -> Self {
        Fabric {
            sip: Ipv4Addr::UNSPECIFIED,
            smac: [0; 6],
            neighbors: HashMap::new(),
        }
    }
}

fn kind_code(k: TunnelKind) -> u8 {
    match k {
        TunnelKind::MplsOverGre => 0,
        TunnelKind::MplsOverUdp => 1,
        TunnelKind::Vxlan => 2,
    }
}

/// Ids of tunnel and composite next hops: kept while in use, re-learned
/// from the datapath after a restart, so that a route keeps its next hop.
#[derive(Clone, Debug, Default)]
pub struct TunnelIds {
    tunnels: BTreeMap<(Ipv4Addr, u8), u32>,
    composites: BTreeMap<Vec<(u32, u32)>, u32>,
}

impl TunnelIds {
    /// Take over the tunnel and composite next hops the datapath holds.
    pub fn adopt(&mut self, ids: &Ids, cur: &State) {
        for (id, nh) in &cur.nhs {
            match &nh.kind {
                NhKind::Tunnel { dip, kind, .. }
                    if (ids.tunnel_base()..ids.composite_base()).contains(id) =>
                {
                    self.tunnels
                        .entry((Ipv4Addr::from(*dip), kind_code(*kind)))
                        .or_insert(*id);
                }
                NhKind::Composite { components }
                    if (ids.composite_base()..ids.composite_base() + super::COMPOSITE_NHS)
                        .contains(id) =>
                {
                    self.composites.entry(comp_key(components)).or_insert(*id);
                }
                _ => {}
            }
        }
    }

    fn tunnel(&mut self, ids: &Ids, dip: Ipv4Addr, kind: TunnelKind) -> Option<u32> {
        let key = (dip, kind_code(kind));
        if let Some(id) = self.tunnels.get(&key) {
            return Some(*id);
        }
        let used: BTreeSet<u32> = self.tunnels.values().copied().collect();
        let id = (ids.tunnel_base()..ids.composite_base()).find(|i| !used.contains(i))?;
        self.tunnels.insert(key, id);
        Some(id)
    }

    fn composite(&mut self, ids: &Ids, comps: &[Component]) -> Option<u32> {
        let key = comp_key(comps);
        if let Some(id) = self.composites.get(&key) {
            return Some(*id);
        }
        let used: BTreeSet<u32> = self.composites.values().copied().collect();
        let base = ids.composite_base();
        let id = (base..base + super::COMPOSITE_NHS).find(|i| !used.contains(i))?;
        self.composites.insert(key, id);
        Some(id)
    }

    /// Forget what `want` no longer uses.
    pub fn retain_used(&mut self, want: &State) {
        self.tunnels.retain(|_, id| want.nhs.contains_key(id));
        self.composites.retain(|_, id| want.nhs.contains_key(id));
    }

    pub fn tunnel_count(&self) -> usize {
        self.tunnels.len()
    }
}

fn comp_key(c: &[Component]) -> Vec<(u32, u32)> {
    c.iter().map(|c| (c.nh, c.label)).collect()
}

/// One next hop made concrete: tunnel next hop id and label.
fn member(
    s: &mut State,
    ids: &Ids,
    fabric: &Fabric,
    tids: &mut TunnelIds,
    prio: &[Encap],
    nh: &RemoteNh,
    unresolved: &mut BTreeSet<Ipv4Addr>,
) -> Option<(Component, Encap)> {
    if nh.addr == fabric.sip || nh.addr.is_unspecified() {
        return None;
    }
    let enc = choose(prio, &nh.encaps).unwrap_or(Encap::Gre);
    let Some(dmac) = fabric.neighbors.get(&nh.addr) else {
        unresolved.insert(nh.addr);
        return None;
    };
    let kind = enc.kind();
    let id = tids.tunnel(ids, nh.addr, kind)?;
    let mut encap = [0u8; 14];
    encap[0..6].copy_from_slice(dmac);
    encap[6..12].copy_from_slice(&fabric.smac);
    encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let flags = NhFlags::VALID
        | match kind {
            TunnelKind::MplsOverGre => NhFlags::TUNNEL_GRE,
            TunnelKind::MplsOverUdp => NhFlags::TUNNEL_UDP_MPLS,
            TunnelKind::Vxlan => NhFlags::TUNNEL_VXLAN,
        };
    s.nhs.insert(
        id,
        Nexthop {
            id,
            family: AF_INET,
            flags,
            vrf: 0,
            kind: NhKind::Tunnel {
                oif: 0,
                kind,
                sip: fabric.sip.octets(),
                dip: nh.addr.octets(),
                encap,
            },
        },
    );
    let label = if enc == Encap::Vxlan && nh.vni != 0 {
        nh.vni
    } else {
        nh.label
    };
    Some((Component { nh: id, label }, enc))
}

/// The next hop (tunnel or ECMP composite) and label of a route; `None`
/// when no member is usable yet.
fn route_nh(
    s: &mut State,
    ids: &Ids,
    fabric: &Fabric,
    tids: &mut TunnelIds,
    prio: &[Encap],
    nhs: &[RemoteNh],
    unresolved: &mut BTreeSet<Ipv4Addr>,
) -> Option<(u32, Option<u32>, Encap)> {
    let mut members: Vec<(Component, Encap)> = nhs
        .iter()
        .filter_map(|n| member(s, ids, fabric, tids, prio, n, unresolved))
        .collect();
    members.sort_by_key(|(c, _)| (c.nh, c.label));
    members.dedup_by_key(|(c, _)| (c.nh, c.label));
    match members.as_slice() {
        [] => None,
        [(c, e)] => Some((c.nh, Some(c.label), *e)),
        more => {
            let comps: Vec<Component> = more.iter().map(|(c, _)| *c).collect();
            let id = tids.composite(ids, &comps)?;
            s.nhs.insert(
                id,
                Nexthop {
                    id,
                    family: AF_INET,
                    flags: NhFlags::VALID | NhFlags::COMPOSITE_ECMP,
                    vrf: 0,
                    kind: NhKind::Composite { components: comps },
                },
            );
            Some((id, None, more[0].1))
        }
    }
}

/// Add the remote objects to `s` (which already holds the local ones);
/// the compute nodes whose fabric MAC is missing.
pub fn add_remote(
    s: &mut State,
    model: &Model,
    ids: &Ids,
    fabric: &Fabric,
    tids: &mut TunnelIds,
) -> BTreeSet<Ipv4Addr> {
    let mut unresolved = BTreeSet::new();
    // Packets tunnelled to us: the fabric VRF receives them.
    if !fabric.sip.is_unspecified() {
        route(
            0,
            Prefix::V4(fabric.sip.octets(), 32),
            RouteData {
                nh: RECEIVE_NH,
                label: dp_core_no_label(),
                flags: 0,
                mac: [0; 6],
            },
            &mut s.routes,
        );
    }
    let prio = &model.encap_priority;
    let vrfs = s.vrfs();
    for vn in model.vns.values() {
        if !vrfs.contains(&vn.vrf) {
            continue;
        }
        let Some(routes) = model.rib.get(&vn.ri) else {
            continue;
        };
        // EVPN first: bridge entries, and which addresses go over VXLAN.
        let mut vxlan_mac: HashMap<IpAddr, [u8; 6]> = HashMap::new();
        for (id, r) in routes {
            let RouteId::Evpn(mac, ip) = *id else {
                continue;
            };
            let key = RouteKey::of(vn.vrf, Prefix::Mac(mac));
            if s.routes.contains_key(&key) {
                continue;
            }
            let Some((nh, label, enc)) =
                route_nh(s, ids, fabric, tids, prio, &r.nhs, &mut unresolved)
            else {
                continue;
            };
            if let (Some(ip), Encap::Vxlan) = (ip, enc) {
                vxlan_mac.insert(ip, mac);
            }
            let (label, flags) = match label {
                Some(l) => (l, rt_flags::LABEL_VALID),
                None => (dp_core_no_label(), 0),
            };
            s.routes.insert(
                key,
                RouteData {
                    nh,
                    label,
                    flags,
                    mac: [0; 6],
                },
            );
        }
        for (id, r) in routes {
            let RouteId::Inet(ip, plen) = *id else {
                continue;
            };
            let prefix = match ip {
                IpAddr::V4(a) => Prefix::V4(a.octets(), plen),
                IpAddr::V6(a) => Prefix::V6(a.octets(), plen),
            };
            let key = RouteKey::of(vn.vrf, prefix);
            if s.routes.contains_key(&key) || model.by_addr.contains_key(&(vn.vrf, ip)) {
                continue;
            }
            let Some((nh, label, _)) =
                route_nh(s, ids, fabric, tids, prio, &r.nhs, &mut unresolved)
            else {
                continue;
            };
            let mut flags = rt_flags::ARP_PROXY;
            let label = match label {
                Some(l) => {
                    flags |= rt_flags::LABEL_VALID;
                    l
                }
                None => dp_core_no_label(),
            };
            s.routes.insert(
                key,
                RouteData {
                    nh,
                    label,
                    flags,
                    mac: vxlan_mac.get(&ip).copied().unwrap_or([0; 6]),
                },
            );
        }
    }
    tids.retain_used(s);
    unresolved
}

/// How a dump shows a route without a label.
fn dp_core_no_label() -> u32 {
    ksync::convert::NO_LABEL
}
