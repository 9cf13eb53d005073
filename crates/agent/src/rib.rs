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
use std::collections::BTreeMap;
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

    #[test]
    fn encap_choice_follows_priority() {
        use Encap::*;
        assert_eq!(choose(&[Udp, Gre, Vxlan], &[Gre, Udp]), Some(Udp));
        assert_eq!(choose(&[Vxlan], &[Gre, Udp]), Some(Gre));
        assert_eq!(choose(&DEFAULT_PRIORITY, &[Vxlan]), Some(Vxlan));
        assert_eq!(choose(&DEFAULT_PRIORITY, &[]), None);
    }
}
