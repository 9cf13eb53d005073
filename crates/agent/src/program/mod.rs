//! From the model to datapath objects, and reconciliation: the datapath's
//! objects are dumped over ksync and converged to the desired set with the
//! fewest changes (no duplicates, no leftovers).
//!
//! Ids are derived, not allocated, so that an agent restarted with no
//! memory computes the same ones as before and finds nothing to change:
//! a port on vif `v` has its L3 next hop `16 + 2v`, L2 next hop `17 + 2v`
//! and the same numbers as MPLS labels; a virtual network's VRF is its
//! `virtual_network_network_id`, its VXLAN next hop `16 + 2·max_vifs + vrf`.
//! Next hops towards other compute nodes ([`remote`]) are allocated in two
//! ranges after those and re-learned from the datapath after a restart.

use crate::ksync::{KsyncClient, KsyncError};
use crate::model::{Model, Port};
use dp_core::nexthop::{Nexthop, NhFlags, NhKind, AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::route::{be_flags, rt_flags, BridgeEntry, Prefix, RouteData};
use dp_core::vif::{Vif, VifConfig, VifFlags, VifStats, VifType};
use dp_core::VROUTER_MAC;
use ksync::convert;
use sandesh::{Message, SandeshOp, VrMplsReq, VrVxlanReq};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

pub mod remote;

pub const DISCARD_NH: u32 = 0;
pub const RECEIVE_NH: u32 = 1;
/// VRF next hops reserved before the tunnels (upstream's default `vr_vrfs`).
pub const MAX_VRFS: u32 = dp_core::sizing::VRF_NEXTHOPS;
/// Tunnel next hops (one per remote compute node and encapsulation).
pub const TUNNEL_NHS: u32 = dp_core::sizing::TUNNEL_NEXTHOPS;
/// ECMP composite next hops (one per distinct set of next hops).
pub const COMPOSITE_NHS: u32 = dp_core::sizing::COMPOSITE_NEXTHOPS;

#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub max_vifs: u16,
}

impl Ids {
    pub fn l3_nh(&self, vif: u16) -> u32 {
        16 + 2 * u32::from(vif)
    }
    pub fn l2_nh(&self, vif: u16) -> u32 {
        17 + 2 * u32::from(vif)
    }
    /// The vif whose L3 next hop is `nh` (flow keys carry it).
    pub fn vif_of_nh(&self, nh: u32) -> Option<u16> {
        if nh >= 16 && nh.is_multiple_of(2) {
            u16::try_from((nh - 16) / 2)
                .ok()
                .filter(|v| *v < self.max_vifs)
        } else {
            None
        }
    }
    pub fn vrf_nh(&self, vrf: u16) -> u32 {
        16 + 2 * u32::from(self.max_vifs) + u32::from(vrf)
    }
    /// First tunnel next hop id (after the VRF next hops).
    pub fn tunnel_base(&self) -> u32 {
        16 + 2 * u32::from(self.max_vifs) + MAX_VRFS
    }
    /// First ECMP composite next hop id (after the tunnels).
    pub fn composite_base(&self) -> u32 {
        self.tunnel_base() + TUNNEL_NHS
    }
}

/// A route's identity: VRF, family, address (IPv4 in the first 4 bytes,
/// a MAC in the first 6), length. Fixed-size: 100 000 routes are 100 000
/// keys, not 100 000 heap blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub vrf: u16,
    pub family: u8,
    pub addr: [u8; 16],
    pub plen: u8,
}

fn widen<const N: usize>(a: [u8; N]) -> [u8; 16] {
    let mut w = [0u8; 16];
    w[..N].copy_from_slice(&a);
    w
}

impl RouteKey {
    pub fn of(vrf: u16, p: Prefix) -> Self {
        match p {
            Prefix::V4(a, l) => RouteKey {
                vrf,
                family: AF_INET,
                addr: widen(a),
                plen: l,
            },
            Prefix::V6(a, l) => RouteKey {
                vrf,
                family: AF_INET6,
                addr: a,
                plen: l,
            },
            Prefix::Mac(m) => RouteKey {
                vrf,
                family: AF_BRIDGE,
                addr: widen(m),
                plen: 48,
            },
        }
    }

    pub fn prefix(&self) -> Option<Prefix> {
        Some(match self.family {
            AF_INET => Prefix::V4(self.addr.get(..4)?.try_into().ok()?, self.plen),
            AF_INET6 => Prefix::V6(self.addr, self.plen),
            _ => Prefix::Mac(self.addr.get(..6)?.try_into().ok()?),
        })
    }
}

/// The datapath objects the agent owns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub vifs: BTreeMap<u16, VifConfig>,
    pub nhs: BTreeMap<u32, Nexthop>,
    pub routes: BTreeMap<RouteKey, RouteData>,
    pub mpls: BTreeMap<u32, u32>,
    pub vxlan: BTreeMap<u32, u32>,
}

impl State {
    pub fn vrfs(&self) -> BTreeSet<u16> {
        let mut s: BTreeSet<u16> = self.routes.keys().map(|k| k.vrf).collect();
        for v in self.vifs.values() {
            if v.vrf != u16::MAX {
                s.insert(v.vrf);
            }
        }
        for n in self.nhs.values() {
            if matches!(n.kind, NhKind::Encap { .. } | NhKind::VrfTranslate { .. }) {
                s.insert(n.vrf);
            }
            if let NhKind::VrfTranslate { vrf } = n.kind {
                s.insert(vrf);
            }
        }
        s
    }

    pub fn object_count(&self) -> usize {
        self.vifs.len() + self.nhs.len() + self.routes.len() + self.mpls.len() + self.vxlan.len()
    }
}

pub(crate) fn route(vrf: u16, p: Prefix, d: RouteData, out: &mut BTreeMap<RouteKey, RouteData>) {
    out.insert(RouteKey::of(vrf, p), d);
}

fn port_objects(ids: &Ids, p: &Port, out: &mut State) {
    let mut cfg = VifConfig::new(
        p.vif,
        if p.sub.is_some() {
            VifType::VirtualVlan
        } else {
            VifType::Virtual
        },
    );
    cfg.sub = p.sub;
    cfg.name = dp_core::vif::heapless_name::Name::new(&p.name).unwrap_or_default();
    cfg.mac = VROUTER_MAC;
    cfg.ip = p.ip4.map_or([0; 4], |a| a.octets());
    cfg.ip6 = p.ip6.map_or([0; 16], |a| a.octets());
    cfg.vrf = p.vrf;
    cfg.mtu = p.mtu;
    cfg.nh_id = ids.l3_nh(p.vif);
    cfg.flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED;
    if p.dhcp {
        cfg.flags |= VifFlags::DHCP_ENABLED;
    }
    if p.policy {
        cfg.flags |= VifFlags::POLICY_ENABLED;
    }
    out.vifs.insert(p.vif, cfg);

    let mut encap = [0u8; 14];
    encap[0..6].copy_from_slice(&p.mac);
    encap[6..12].copy_from_slice(&VROUTER_MAC);
    encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut flags = NhFlags::VALID;
    if p.policy {
        flags |= NhFlags::POLICY_ENABLED;
    }
    for (id, family) in [(ids.l3_nh(p.vif), AF_INET), (ids.l2_nh(p.vif), AF_BRIDGE)] {
        out.nhs.insert(
            id,
            Nexthop {
                id,
                family,
                flags,
                vrf: p.vrf,
                kind: NhKind::Encap { oif: p.vif, encap },
            },
        );
    }
    out.mpls.insert(ids.l3_nh(p.vif), ids.l3_nh(p.vif));
    out.mpls.insert(ids.l2_nh(p.vif), ids.l2_nh(p.vif));
}

/// Routes of port `p` in VRF `vrf` (its own or one it is leaked into).
fn port_routes(ids: &Ids, p: &Port, vrf: u16, out: &mut BTreeMap<RouteKey, RouteData>) {
    let rd = RouteData {
        nh: ids.l3_nh(p.vif),
        label: ids.l3_nh(p.vif),
        flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
        mac: p.mac,
    };
    if let Some(a) = p.ip4 {
        route(vrf, Prefix::V4(a.octets(), 32), rd, out);
    }
    if let Some(a) = p.ip6 {
        route(vrf, Prefix::V6(a.octets(), 128), rd, out);
    }
    if vrf == p.vrf {
        route(
            vrf,
            Prefix::Mac(p.mac),
            RouteData {
                nh: ids.l2_nh(p.vif),
                label: ids.l2_nh(p.vif),
                flags: rt_flags::LABEL_VALID,
                mac: [0; 6],
            },
            out,
        );
    }
}

/// What the datapath should hold for `model`.
pub fn desired(model: &Model, ids: &Ids) -> State {
    let mut s = State::default();
    s.nhs.insert(
        DISCARD_NH,
        Nexthop {
            id: DISCARD_NH,
            family: AF_INET,
            flags: NhFlags::VALID,
            vrf: 0,
            kind: NhKind::Discard,
        },
    );
    s.nhs.insert(
        RECEIVE_NH,
        Nexthop {
            id: RECEIVE_NH,
            family: AF_INET,
            flags: NhFlags::VALID,
            vrf: 0,
            kind: NhKind::Receive,
        },
    );
    for vn in model.vns.values() {
        // Only VNs with ports on this host get a VRF here.
        if !model.ports.values().any(|p| {
            model
                .vrf_members
                .get(&vn.vrf)
                .is_some_and(|m| m.contains(&p.vn))
                && p.vn == vn.uuid
        }) {
            continue;
        }
        let nh = ids.vrf_nh(vn.vrf);
        s.nhs.insert(
            nh,
            Nexthop {
                id: nh,
                family: AF_BRIDGE,
                flags: NhFlags::VALID,
                vrf: vn.vrf,
                kind: NhKind::VrfTranslate { vrf: vn.vrf },
            },
        );
        s.vxlan.insert(vn.vni, nh);
        for sn in &vn.subnets {
            let recv = RouteData {
                nh: RECEIVE_NH,
                label: 0,
                flags: rt_flags::ARP_PROXY,
                mac: [0; 6],
            };
            for a in [sn.gateway, sn.dns].into_iter().flatten() {
                match a {
                    IpAddr::V4(v) if !v.is_unspecified() => {
                        route(vn.vrf, Prefix::V4(v.octets(), 32), recv, &mut s.routes)
                    }
                    IpAddr::V6(v) if !v.is_unspecified() => {
                        route(vn.vrf, Prefix::V6(v.octets(), 128), recv, &mut s.routes)
                    }
                    _ => {}
                }
            }
        }
        // IPv6: the link-local address router advertisements come from
        // (upstream's PKT0_LINKLOCAL_ADDRESS route in every VRF), so the
        // datapath answers neighbour solicitations for the default router.
        if vn.subnets.iter().any(|s| s.prefix.is_ipv6()) {
            let recv = RouteData {
                nh: RECEIVE_NH,
                label: 0,
                flags: rt_flags::ARP_PROXY,
                mac: [0; 6],
            };
            let ll = crate::services::ndp::ROUTER_LINK_LOCAL.octets();
            route(vn.vrf, Prefix::V6(ll, 128), recv, &mut s.routes);
        }
        let members = model.vrf_members.get(&vn.vrf).cloned().unwrap_or_default();
        for p in model.ports.values() {
            if members.contains(&p.vn) {
                port_routes(ids, p, vn.vrf, &mut s.routes);
            }
        }
    }
    for p in model.ports.values() {
        port_objects(ids, p, &mut s);
    }
    // A route stitched label of 0 with LABEL_VALID unset comes back from a
    // dump as "no label": store the desired form the way a dump reads.
    for d in s.routes.values_mut() {
        if d.flags & rt_flags::LABEL_VALID == 0 {
            d.label = convert::NO_LABEL;
        }
    }
    s
}

/// [`desired`] plus what lives on other compute nodes (controller mode);
/// also the compute nodes whose fabric MAC is still unknown.
pub fn desired_with_remote(
    model: &Model,
    ids: &Ids,
    fabric: &remote::Fabric,
    tids: &mut remote::TunnelIds,
) -> (State, BTreeSet<std::net::Ipv4Addr>) {
    let mut s = desired(model, ids);
    let unresolved = remote::add_remote(&mut s, model, ids, fabric, tids);
    (s, unresolved)
}

// ---- reading the datapath ---------------------------------------------------

/// The agent-owned objects the datapath holds. Vifs the datapath made
/// itself (fabric, vhost, pkt0) are not the agent's and are left out.
pub async fn dump(k: &mut KsyncClient, extra_vrfs: &BTreeSet<u16>) -> Result<State, KsyncError> {
    let mut s = State::default();
    for r in k.dump_vifs().await? {
        if let Ok((cfg, _)) = convert::vif_from_req(&r) {
            if matches!(cfg.vif_type, VifType::Virtual | VifType::VirtualVlan) {
                s.vifs.insert(cfg.idx, cfg);
            }
        }
    }
    let nhs = k.dump(ksync::dump::nexthops).await?;
    for m in nhs {
        if let Message::Nexthop(r) = m {
            if let Ok(nh) = convert::nh_from_req(&r) {
                s.nhs.insert(nh.id, nh);
            }
        }
    }
    let mpls = k.dump(ksync::dump::labels).await?;
    for m in mpls {
        if let Message::Mpls(r) = m {
            if let (Ok(l), Ok(n)) = (u32::try_from(r.mr_label), u32::try_from(r.mr_nhid)) {
                s.mpls.insert(l, n);
            }
        }
    }
    let vx = k.dump(ksync::dump::vnis).await?;
    for m in vx {
        if let Message::Vxlan(r) = m {
            if let (Ok(v), Ok(n)) = (u32::try_from(r.vxlanr_vnid), u32::try_from(r.vxlanr_nhid)) {
                s.vxlan.insert(v, n);
            }
        }
    }
    let mut vrfs = s.vrfs();
    vrfs.extend(extra_vrfs);
    for vrf in vrfs {
        for family in [AF_INET, AF_INET6, AF_BRIDGE] {
            let all = k
                .dump(|last| ksync::dump::routes(vrf, family, last))
                .await?;
            for m in all {
                if let Message::Route(r) = m {
                    if let Ok((vrf, p, d)) = convert::route_from_req(&r) {
                        s.routes.insert(RouteKey::of(vrf, p), d);
                    }
                }
            }
        }
    }
    Ok(s)
}

// ---- converging ---------------------------------------------------------------

fn vif_msg(cfg: &VifConfig, op: SandeshOp) -> Message {
    let v = Vif {
        cfg: cfg.clone(),
        stats: VifStats::default(),
    };
    convert::vif_to_req(&v, None, op).into()
}

fn route_msg(k: &RouteKey, d: &RouteData, op: SandeshOp) -> Option<Message> {
    let p = k.prefix()?;
    Some(match p {
        Prefix::Mac(m) => {
            let mut flags = be_flags::VALID;
            if d.flags & rt_flags::LABEL_VALID != 0 {
                flags |= be_flags::LABEL_VALID;
            }
            convert::bridge_route_to_req(
                k.vrf,
                m,
                &BridgeEntry {
                    nh: d.nh,
                    label: d.label,
                    flags,
                },
                op,
            )
            .into()
        }
        _ => convert::inet_route_to_req(k.vrf, p, d, op).into(),
    })
}

/// The requests that turn `cur` into `want`: additions and changes first
/// (vifs, next hops, labels, routes: each object after what it refers to),
/// then deletions in the reverse order. Lazy: converging 100 000 routes
/// never holds 100 000 requests.
pub fn plan<'a>(cur: &'a State, want: &'a State) -> impl Iterator<Item = Message> + 'a {
    // Parents before their VLAN sub-interfaces (the datapath refuses a
    // sub-interface without its parent); sub-interfaces that go, first
    // (their VLAN may be another's now).
    let changed = |(i, v): &(&u16, &VifConfig)| cur.vifs.get(i).is_none_or(|c| !same_vif(c, v));
    let is_sub = |v: &VifConfig| v.vif_type == VifType::VirtualVlan;
    let sub_del = cur
        .vifs
        .iter()
        .filter(move |(i, v)| is_sub(v) && want.vifs.get(i).is_none_or(|w| !same_vif(v, w)))
        .map(|(_, v)| vif_msg(v, SandeshOp::Del));
    let vif_add = want
        .vifs
        .iter()
        .filter(move |e| !is_sub(e.1) && changed(e))
        .chain(want.vifs.iter().filter(move |e| is_sub(e.1) && changed(e)))
        .map(|(_, v)| vif_msg(v, SandeshOp::Add));
    let nh_add = want
        .nhs
        .iter()
        .filter(|(i, n)| cur.nhs.get(i) != Some(n))
        .map(|(_, n)| convert::nh_to_req(n, SandeshOp::Add).into());
    let mpls_add = want
        .mpls
        .iter()
        .filter(|(l, n)| cur.mpls.get(l) != Some(n))
        .map(|(l, n)| mpls_msg(*l, *n, SandeshOp::Add));
    let vx_add = want
        .vxlan
        .iter()
        .filter(|(v, n)| cur.vxlan.get(v) != Some(n))
        .map(|(v, n)| vxlan_msg(*v, *n, SandeshOp::Add));
    let rt_add = want
        .routes
        .iter()
        .filter(|(k, d)| cur.routes.get(k) != Some(d))
        .filter_map(|(k, d)| route_msg(k, d, SandeshOp::Add));
    let rt_del = cur
        .routes
        .iter()
        .filter(|(k, _)| !want.routes.contains_key(k))
        .filter_map(|(k, d)| route_msg(k, d, SandeshOp::Del));
    let vx_del = cur
        .vxlan
        .iter()
        .filter(|(v, _)| !want.vxlan.contains_key(v))
        .map(|(v, n)| vxlan_msg(*v, *n, SandeshOp::Del));
    let mpls_del = cur
        .mpls
        .iter()
        .filter(|(l, _)| !want.mpls.contains_key(l))
        .map(|(l, n)| mpls_msg(*l, *n, SandeshOp::Del));
    let nh_del = cur
        .nhs
        .iter()
        .filter(|(i, _)| !want.nhs.contains_key(i))
        .map(|(_, n)| convert::nh_to_req(n, SandeshOp::Del).into());
    let vif_del = cur
        .vifs
        .iter()
        .filter(move |(i, v)| !is_sub(v) && !want.vifs.contains_key(i))
        .map(|(_, v)| vif_msg(v, SandeshOp::Del));
    sub_del
        .chain(vif_add)
        .chain(nh_add)
        .chain(mpls_add)
        .chain(vx_add)
        .chain(rt_add)
        .chain(rt_del)
        .chain(vx_del)
        .chain(mpls_del)
        .chain(nh_del)
        .chain(vif_del)
}

/// The fields the agent sets; the datapath fills others (OS index, and
/// the MTU when `b` leaves it to the interface).
fn same_vif(a: &VifConfig, b: &VifConfig) -> bool {
    a.vif_type == b.vif_type
        && a.name == b.name
        && a.mac == b.mac
        && a.ip == b.ip
        && a.ip6 == b.ip6
        && a.vrf == b.vrf
        && (a.mtu == b.mtu || b.mtu == 0)
        && a.flags == b.flags
        && a.nh_id == b.nh_id
        && a.sub == b.sub
}

/// `cur` and `want` hold the same objects (what a restart must preserve).
pub fn same(cur: &State, want: &State) -> bool {
    cur.vifs.len() == want.vifs.len()
        && cur
            .vifs
            .iter()
            .zip(&want.vifs)
            .all(|((i, a), (j, b))| i == j && same_vif(a, b))
        && cur.nhs == want.nhs
        && cur.routes == want.routes
        && cur.mpls == want.mpls
        && cur.vxlan == want.vxlan
}

fn mpls_msg(label: u32, nh: u32, op: SandeshOp) -> Message {
    VrMplsReq {
        h_op: op,
        mr_label: label as i32,
        mr_nhid: nh as i32,
        ..Default::default()
    }
    .into()
}

fn vxlan_msg(vni: u32, nh: u32, op: SandeshOp) -> Message {
    VrVxlanReq {
        h_op: op,
        vxlanr_vnid: vni as i32,
        vxlanr_nhid: nh as i32,
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vif(idx: u16, sub: Option<(u16, u16)>) -> VifConfig {
        let mut c = VifConfig::new(
            idx,
            if sub.is_some() {
                VifType::VirtualVlan
            } else {
                VifType::Virtual
            },
        );
        c.name = dp_core::vif::heapless_name::Name::new(&format!("tap{idx}")).unwrap();
        c.sub = sub.map(|(parent, vlan)| dp_core::SubIf {
            parent,
            vlan,
            ovlan: vlan,
        });
        c
    }

    fn vif_ops(cur: &State, want: &State) -> Vec<(SandeshOp, i32)> {
        plan(cur, want)
            .filter_map(|m| match m {
                Message::Interface(r) => Some((r.h_op, r.vifr_idx)),
                _ => None,
            })
            .collect()
    }

    /// The datapath refuses a sub-interface without its parent, and a
    /// VLAN another sub-interface still holds: parents are added first,
    /// sub-interfaces that go are deleted first.
    #[test]
    fn parents_before_sub_interfaces() {
        let mut want = State::default();
        // The sub-interface has the lower index.
        want.vifs.insert(3, vif(3, Some((7, 100))));
        want.vifs.insert(7, vif(7, None));
        assert_eq!(
            vif_ops(&State::default(), &want),
            [(SandeshOp::Add, 7), (SandeshOp::Add, 3)]
        );
        // VLAN 100 moves from vif 3 to vif 5; the parent goes away later.
        let cur = want.clone();
        let mut want2 = State::default();
        want2.vifs.insert(7, vif(7, None));
        want2.vifs.insert(5, vif(5, Some((7, 100))));
        assert_eq!(
            vif_ops(&cur, &want2),
            [(SandeshOp::Del, 3), (SandeshOp::Add, 5)]
        );
        // Everything goes: sub-interfaces first, then the parent.
        assert_eq!(
            vif_ops(&want2, &State::default()),
            [(SandeshOp::Del, 5), (SandeshOp::Del, 7)]
        );
    }
}
