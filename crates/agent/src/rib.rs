//! Routes learned from the control nodes, per routing instance: what the
//! controller task keeps per control node and hands, merged, to the
//! programming task (and to the model, for the flows' view of remote
//! endpoints).
//!
//! A route has the next hops one control node sent for it (several:
//! ECMP). With two control nodes each sends its own copy; the merged view
//! takes the first fresh copy in control-node order, and a stale copy (the
//! control node is gone, the route is kept for a while as upstream's
//! graceful restart does) only when no fresh one exists.

use dp_core::TunnelKind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

/// A tunnel encapsulation as the route items name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Encap {
    /// `gre`: MPLS over GRE.
    Gre,
    /// `udp`: MPLS over UDP.
    Udp,
    /// `vxlan`.
    Vxlan,
}

impl Encap {
    pub fn parse(s: &str) -> Option<Encap> {
        match s.trim() {
            "gre" => Some(Encap::Gre),
            "udp" => Some(Encap::Udp),
            "vxlan" => Some(Encap::Vxlan),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encap::Gre => "gre",
            Encap::Udp => "udp",
            Encap::Vxlan => "vxlan",
        }
    }

    pub fn kind(self) -> TunnelKind {
        match self {
            Encap::Gre => TunnelKind::MplsOverGre,
            Encap::Udp => TunnelKind::MplsOverUdp,
            Encap::Vxlan => TunnelKind::Vxlan,
        }
    }

    /// From global-vrouter-config's `encapsulation_priorities` names.
    pub fn from_priority(s: &str) -> Option<Encap> {
        match s {
            "MPLSoGRE" => Some(Encap::Gre),
            "MPLSoUDP" => Some(Encap::Udp),
            "VXLAN" => Some(Encap::Vxlan),
            _ => None,
        }
    }
}

/// Upstream's default priority (global-vrouter-config without one).
pub const DEFAULT_PRIORITY: [Encap; 3] = [Encap::Gre, Encap::Udp, Encap::Vxlan];

/// Pick the encapsulation for a next hop: the first of `priority` the
/// next hop offers, else the first it offers (upstream falls back too).
pub fn choose(priority: &[Encap], offered: &[Encap]) -> Option<Encap> {
    priority
        .iter()
        .copied()
        .find(|e| offered.contains(e))
        .or_else(|| offered.first().copied())
}

/// One next hop of a remote route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteNh {
    /// The compute node (tunnel destination).
    pub addr: Ipv4Addr,
    /// MPLS label, or the VNI for VXLAN.
    pub label: u32,
    /// A VNI given separately (inet items carry `<vni>`).
    pub vni: u32,
    /// As advertised, in order.
    pub encaps: Vec<Encap>,
    /// The next hop's virtual network (fq name).
    pub vn: String,
}

/// A route's identity in a routing instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteId {
    /// An inet/inet6 prefix.
    Inet(IpAddr, u8),
    /// An EVPN MAC (+ IP) route.
    Evpn([u8; 6], Option<IpAddr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoute {
    pub nhs: Vec<RemoteNh>,
    /// Security group ids (upstream's `security-group-list`).
    pub sgs: Vec<i64>,
    /// The route's virtual network (the first next hop's, else the
    /// entry's).
    pub vn: String,
    /// Kept from a control node that is gone.
    pub stale: bool,
}

/// Compute nodes (tunnel destinations) by routing instance.
pub type Sources = BTreeMap<String, BTreeSet<Ipv4Addr>>;

/// Routes by routing instance (its fq name) and identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rib {
    pub ris: BTreeMap<String, BTreeMap<RouteId, RemoteRoute>>,
}

impl Rib {
    pub fn route_count(&self) -> usize {
        self.ris.values().map(BTreeMap::len).sum()
    }

    pub fn get(&self, ri: &str) -> Option<&BTreeMap<RouteId, RemoteRoute>> {
        self.ris.get(ri)
    }

    /// Merge per-control-node RIBs (in control-node order): a fresh copy
    /// beats a stale one, an earlier control node a later one.
    pub fn merge<'a>(peers: impl IntoIterator<Item = &'a Rib>) -> Rib {
        let mut out = Rib::default();
        for p in peers {
            for (ri, routes) in &p.ris {
                let dst = out.ris.entry(ri.clone()).or_default();
                for (id, r) in routes {
                    match dst.get(id) {
                        Some(cur) if !cur.stale || r.stale => {}
                        _ => {
                            dst.insert(*id, r.clone());
                        }
                    }
                }
            }
        }
        out
    }

    /// Mark every route stale.
    pub fn mark_stale(&mut self) {
        for r in self.ris.values_mut().flat_map(BTreeMap::values_mut) {
            r.stale = true;
        }
    }

    /// How many routes are stale.
    pub fn stale_count(&self) -> usize {
        self.ris
            .values()
            .flat_map(BTreeMap::values)
            .filter(|r| r.stale)
            .count()
    }

    /// The (routing instance, compute node) pairs this RIB has fresh
    /// routes from: what a control node has re-sent since it came back.
    pub fn fresh_sources(&self) -> Sources {
        let mut out = Sources::new();
        for (ri, routes) in &self.ris {
            let nodes: BTreeSet<Ipv4Addr> = routes
                .values()
                .filter(|r| !r.stale)
                .flat_map(|r| r.nhs.iter().map(|nh| nh.addr))
                .collect();
            if !nodes.is_empty() {
                out.insert(ri.clone(), nodes);
            }
        }
        out
    }

    /// Remove the stale routes that `heard` vouches for: those whose every
    /// next hop is at a compute node some control node has re-sent routes
    /// from in the same routing instance. The others stay (their compute
    /// node may not have reconnected yet); how many went.
    pub fn sweep_heard(&mut self, heard: &Sources) -> usize {
        let none = BTreeSet::new();
        let mut n = 0;
        for (ri, routes) in self.ris.iter_mut() {
            let nodes = heard.get(ri).unwrap_or(&none);
            let before = routes.len();
            routes.retain(|_, r| !r.stale || !r.nhs.iter().all(|nh| nodes.contains(&nh.addr)));
            n += before - routes.len();
        }
        self.ris.retain(|_, r| !r.is_empty());
        n
    }

    /// Remove the stale routes; how many.
    pub fn sweep(&mut self) -> usize {
        let mut n = 0;
        for routes in self.ris.values_mut() {
            let before = routes.len();
            routes.retain(|_, r| !r.stale);
            n += before - routes.len();
        }
        self.ris.retain(|_, r| !r.is_empty());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(addr: [u8; 4], stale: bool) -> RemoteRoute {
        RemoteRoute {
            nhs: vec![RemoteNh {
                addr: Ipv4Addr::from(addr),
                label: 20,
                vni: 0,
                encaps: vec![Encap::Gre, Encap::Udp],
                vn: "d:p:v".into(),
            }],
            sgs: vec![],
            vn: "d:p:v".into(),
            stale,
        }
    }

    #[test]
    fn merge_prefers_fresh_then_order() {
        let id = RouteId::Inet(IpAddr::from([10, 0, 0, 1]), 32);
        let mut a = Rib::default();
        a.ris
            .entry("ri".into())
            .or_default()
            .insert(id, route([192, 0, 2, 1], true));
        let mut b = Rib::default();
        b.ris
            .entry("ri".into())
            .or_default()
            .insert(id, route([192, 0, 2, 2], false));
        let m = Rib::merge([&a, &b]);
        assert_eq!(m.ris["ri"][&id].nhs[0].addr, Ipv4Addr::new(192, 0, 2, 2));
        a.ris.get_mut("ri").unwrap().get_mut(&id).unwrap().stale = false;
        let m = Rib::merge([&a, &b]);
        assert_eq!(m.ris["ri"][&id].nhs[0].addr, Ipv4Addr::new(192, 0, 2, 1));
        a.mark_stale();
        assert_eq!(a.sweep(), 1);
        assert!(a.ris.is_empty());
    }

    /// A control node that came back vouches only for the compute nodes
    /// it has re-sent routes from: stale routes via others stay.
    #[test]
    fn sweep_heard_keeps_routes_of_compute_nodes_not_heard_from() {
        let ip = |d: u8| IpAddr::from([10, 0, 0, d]);
        let mut back = Rib::default();
        back.ris
            .entry("ri".into())
            .or_default()
            .insert(RouteId::Inet(ip(1), 32), route([192, 0, 2, 1], false));
        let mut old = Rib::default();
        let t = old.ris.entry("ri".into()).or_default();
        // Gone from a node that has re-sent its routes: swept.
        t.insert(RouteId::Inet(ip(2), 32), route([192, 0, 2, 1], true));
        // Via a node not heard from yet: kept.
        t.insert(RouteId::Inet(ip(3), 32), route([192, 0, 2, 2], true));
        // ECMP over both: kept until both are heard from.
        let mut ecmp = route([192, 0, 2, 1], true);
        ecmp.nhs.extend(route([192, 0, 2, 2], true).nhs);
        t.insert(RouteId::Inet(ip(4), 32), ecmp);
        // Fresh: never swept.
        t.insert(RouteId::Inet(ip(5), 32), route([192, 0, 2, 2], false));
        // Heard from in another instance only: kept.
        old.ris
            .entry("other".into())
            .or_default()
            .insert(RouteId::Inet(ip(6), 32), route([192, 0, 2, 1], true));

        let heard = back.fresh_sources();
        assert_eq!(old.stale_count(), 4);
        assert_eq!(old.sweep_heard(&heard), 1);
        let t = &old.ris["ri"];
        assert!(!t.contains_key(&RouteId::Inet(ip(2), 32)));
        for d in [3, 4, 5] {
            assert!(t.contains_key(&RouteId::Inet(ip(d), 32)), "{d}");
        }
        assert_eq!(old.stale_count(), 3);
        // The second node reconnects: the rest of what it left goes.
        back.ris
            .entry("ri".into())
            .or_default()
            .insert(RouteId::Inet(ip(7), 32), route([192, 0, 2, 2], false));
        assert_eq!(old.sweep_heard(&back.fresh_sources()), 2);
        assert_eq!(old.stale_count(), 1);
        assert!(old.ris["other"].contains_key(&RouteId::Inet(ip(6), 32)));
    }

    #[test]
    fn encap_choice_follows_priority() {
        use Encap::*;
        assert_eq!(choose(&[Udp, Gre, Vxlan], &[Gre, Udp]), Some(Udp));
        assert_eq!(choose(&[Vxlan], &[Gre, Udp]), Some(Gre));
        assert_eq!(choose(&DEFAULT_PRIORITY, &[Vxlan]), Some(Vxlan));
        assert_eq!(choose(&DEFAULT_PRIORITY, &[]), None);
    }
}
