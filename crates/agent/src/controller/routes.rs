//! Route events from a control node (`<items node="<afi>/<safi>/<ri>">`
//! with `<item>`s and `<retract id>`s), read into RIB changes.
//!
//! An item is used only if it reads as upstream's schema and makes sense:
//! a prefix of the node's family, at least one next hop with a non-zero
//! IPv4 address and a label that fits (20 bits for MPLS, 24 for a VNI).
//! Anything else is reported and skipped; the rest of the message still
//! applies, and the session stays up.

use crate::rib::{Encap, RemoteNh, RemoteRoute, RouteId};
use std::net::{IpAddr, Ipv4Addr};
use xmpp::enet::EnetItem;
use xmpp::unicast::{af, safi, InetItem};
use xmpp::xml::Element;

/// What a route event asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RibChange {
    pub ri: String,
    pub adds: Vec<(RouteId, RemoteRoute)>,
    pub dels: Vec<RouteId>,
    /// Why items or retracts were skipped.
    pub rejected: Vec<String>,
}

/// The address families the agent takes routes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
    Evpn,
}

/// `<afi>/<safi>/<routing instance>`.
pub fn parse_node(node: &str) -> Option<(Family, &str)> {
    let mut it = node.splitn(3, '/');
    let a: i64 = it.next()?.parse().ok()?;
    let s: i64 = it.next()?.parse().ok()?;
    let ri = it.next().filter(|r| !r.is_empty())?;
    let f = match (a, s) {
        (af::IPV4, safi::UNICAST) => Family::Inet,
        (af::IPV6, safi::UNICAST) => Family::Inet6,
        (af::L2VPN, safi::ENET) => Family::Evpn,
        _ => return None,
    };
    Some((f, ri))
}

/// `a.b.c.d/len` or `x::y/len` of the right family.
pub fn parse_prefix(s: &str, v6: bool) -> Option<(IpAddr, u8)> {
    let (a, l) = s.trim().split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    let max = if ip.is_ipv6() { 128 } else { 32 };
    (ip.is_ipv6() == v6 && len <= max).then_some((ip, len))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

fn nh(
    address: &str,
    label: i64,
    vni: i64,
    encaps: &[String],
    vn: &str,
) -> Result<RemoteNh, String> {
    let addr: Ipv4Addr = address
        .trim()
        .parse()
        .map_err(|_| format!("next hop address {address:?}"))?;
    if addr.is_unspecified() {
        return Err("next hop address 0.0.0.0".into());
    }
    let encaps: Vec<Encap> = encaps.iter().filter_map(|e| Encap::parse(e)).collect();
    let max = if encaps == [Encap::Vxlan] {
        0xFF_FFFF
    } else {
        0xF_FFFF
    };
    let label = u32::try_from(label)
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("label {label}"))?;
    let vni = u32::try_from(vni)
        .ok()
        .filter(|v| *v <= 0xFF_FFFF)
        .ok_or_else(|| format!("vni {vni}"))?;
    Ok(RemoteNh {
        addr,
        label,
        vni,
        encaps,
        vn: vn.to_string(),
    })
}

fn inet(item: &Element, v6: bool) -> Result<(RouteId, RemoteRoute), String> {
    let it = InetItem::parse(item).map_err(|e| e.to_string())?;
    let want = if v6 { af::IPV6 } else { af::IPV4 };
    if it.nlri.af != want {
        return Err(format!("address family {} in a {want} event", it.nlri.af));
    }
    let (ip, len) = parse_prefix(&it.nlri.address, v6)
        .ok_or_else(|| format!("prefix {:?}", it.nlri.address))?;
    let nhs = it
        .next_hops
        .iter()
        .map(|n| nh(&n.address, n.label, n.vni, &n.encap, &n.virtual_network))
        .collect::<Result<Vec<_>, _>>()?;
    if nhs.is_empty() {
        return Err(format!("no next hop for {}", it.nlri.address));
    }
    let vn = nhs
        .iter()
        .map(|n| n.vn.clone())
        .find(|v| !v.is_empty())
        .unwrap_or(it.virtual_network);
    Ok((
        RouteId::Inet(ip, len),
        RemoteRoute {
            nhs,
            sgs: it.security_groups,
            vn,
            stale: false,
        },
    ))
}

fn evpn(item: &Element) -> Result<(RouteId, RemoteRoute), String> {
    let it = EnetItem::parse(item).map_err(|e| e.to_string())?;
    if it.nlri.af != af::L2VPN || it.nlri.safi != safi::ENET {
        return Err(format!(
            "afi/safi {}/{} in an EVPN event",
            it.nlri.af, it.nlri.safi
        ));
    }
    let mac = parse_mac(&it.nlri.mac).ok_or_else(|| format!("MAC {:?}", it.nlri.mac))?;
    if mac[0] & 1 != 0 {
        return Err(format!(
            "multicast MAC {:?} (no BUM replication here)",
            it.nlri.mac
        ));
    }
    let ip = match it.nlri.address.trim() {
        "" => None,
        a => {
            let (ip, len) =
                parse_prefix(a, a.contains(':')).ok_or_else(|| format!("address {a:?}"))?;
            let host = if ip.is_ipv6() { 128 } else { 32 };
            if len != host && !ip.is_unspecified() {
                return Err(format!("address {a:?} of a MAC route is no host"));
            }
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    let nhs = it
        .next_hops
        .iter()
        .map(|n| nh(&n.address, n.label, 0, &n.encap, &it.virtual_network))
        .collect::<Result<Vec<_>, _>>()?;
    if nhs.is_empty() {
        return Err(format!("no next hop for {}", it.nlri.mac));
    }
    Ok((
        RouteId::Evpn(mac, ip),
        RemoteRoute {
            nhs,
            sgs: it.security_groups,
            vn: it.virtual_network,
            stale: false,
        },
    ))
}

/// Retract ids: `a.b.c.d/len`; EVPN `[tag-]mac,ip/len[,group,source]`.
fn retract(f: Family, id: &str) -> Option<RouteId> {
    match f {
        Family::Inet | Family::Inet6 => {
            let (ip, len) = parse_prefix(id, f == Family::Inet6)?;
            Some(RouteId::Inet(ip, len))
        }
        Family::Evpn => {
            let rest = match id.split_once('-') {
                Some((tag, r)) if tag.chars().all(|c| c.is_ascii_digit()) => r,
                _ => id,
            };
            let mut parts = rest.split(',');
            let mac = parse_mac(parts.next()?)?;
            let ip = match parts.next() {
                Some(a) => {
                    let (ip, _) = parse_prefix(a, a.contains(':'))?;
                    (!ip.is_unspecified()).then_some(ip)
                }
                None => None,
            };
            Some(RouteId::Evpn(mac, ip))
        }
    }
}

/// Read one route event.
pub fn read_event(node: &str, items: &[Element], retracts: &[String]) -> Result<RibChange, String> {
    let (f, ri) = parse_node(node).ok_or_else(|| format!("items node {node:?}"))?;
    let mut c = RibChange {
        ri: ri.to_string(),
        ..RibChange::default()
    };
    for item in items {
        let r = match f {
            Family::Inet => inet(item, false),
            Family::Inet6 => inet(item, true),
            Family::Evpn => evpn(item),
        };
        match r {
            Ok(a) => c.adds.push(a),
            Err(e) => c.rejected.push(e),
        }
    }
    for id in retracts {
        match retract(f, id) {
            Some(r) => c.dels.push(r),
            None => c.rejected.push(format!("retract id {id:?}")),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp::stanza::{Message, Stanza};

    fn msg(s: &str) -> Message {
        match Stanza::parse(s).unwrap() {
            Stanza::Message(m) => m,
            _ => panic!(),
        }
    }

    #[test]
    fn reads_the_captured_update() {
        let m = msg(include_str!(
            "../../../xmpp/tests/upstream/xmpp/captured/cn_to_agent_route_update_inet.xml"
        ));
        let c = read_event(m.items_node.as_deref().unwrap(), &m.items, &m.retracts).unwrap();
        assert_eq!(c.ri, "default-domain:default:ext-vn2:ext-vn2");
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
        assert_eq!(c.adds.len(), 2);
        let (id, r) = &c.adds[0];
        assert_eq!(*id, RouteId::Inet(IpAddr::from([2, 0, 0, 2]), 32));
        assert_eq!(r.nhs[0].addr, Ipv4Addr::new(10, 1, 1, 3));
        assert_eq!(r.nhs[0].label, 47);
        assert_eq!(r.nhs[0].encaps, [Encap::Gre, Encap::Udp]);
        assert_eq!(r.vn, "default-domain:default:ext-vn2");
        assert_eq!(c.adds[1].1.vn, "default-domain:contrail:link-local");
    }

    #[test]
    fn retracts_and_evpn_ids() {
        assert_eq!(
            retract(Family::Evpn, "10-02:00:00:00:00:01,10.0.0.1/32"),
            Some(RouteId::Evpn(
                [2, 0, 0, 0, 0, 1],
                Some(IpAddr::from([10, 0, 0, 1]))
            ))
        );
        assert_eq!(
            retract(Family::Evpn, "02:00:00:00:00:01,0.0.0.0/32"),
            Some(RouteId::Evpn([2, 0, 0, 0, 0, 1], None))
        );
        assert_eq!(
            retract(Family::Inet6, "fd00::1/128"),
            Some(RouteId::Inet("fd00::1".parse().unwrap(), 128))
        );
        assert_eq!(retract(Family::Inet, "fd00::1/128"), None);
        assert_eq!(parse_node("0/0/EndOfRib"), None);
        assert_eq!(parse_node("1/1/a:b:c:c"), Some((Family::Inet, "a:b:c:c")));
    }
}
