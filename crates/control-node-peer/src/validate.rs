//! What upstream's control node accepts from an agent
//! (`BgpXmppChannel::ProcessItem`, `ProcessInet6Item`, `ProcessEnetItem`,
//! `ProcessMcastItem`), check for check: the item must read as its schema
//! (an integer field that is not one fails the item), the address family
//! must match, the prefix must parse, an add needs exactly one next hop
//! with a decodable, non-zero address, labels must fit, MAC and
//! replicator addresses must parse, multicast label ranges must be
//! `first-last` with `0 < first <= last`. A rejected item is logged and
//! ignored; the session stays (only a route for an instance the agent did
//! not subscribe to closes it, see [`crate::Peer`]).

use std::net::IpAddr;
use xmpp::enet::EnetItem;
use xmpp::mcast::McastItem;
use xmpp::unicast::{af, safi, InetItem};
use xmpp::xml::Element;

/// `EvpnPrefix::kMaxVniSigned`: labels and VNIs above are refused.
pub const MAX_LABEL: i64 = 0xFF_FFFF;

/// A route as the peer keeps it (the agent's item, checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    Inet(InetItem),
    Enet(EnetItem),
    Mcast(McastItem),
}

/// `XmppDecodeAddress`: the family must be IPv4, IPv6 or L2VPN; the
/// address must parse; zero only where allowed.
fn decode(family: i64, address: &str, zero_ok: bool) -> Option<IpAddr> {
    if ![af::IPV4, af::IPV6, af::L2VPN].contains(&family) {
        return None;
    }
    let a: IpAddr = address.parse().ok()?;
    (zero_ok || !a.is_unspecified()).then_some(a)
}

fn prefix(s: &str, v6: bool) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let len: u8 = l.parse().ok()?;
    if ip.is_ipv6() != v6 || len > if v6 { 128 } else { 32 } {
        return None;
    }
    Some((ip, len))
}

fn mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// An inet (`v6 = false`) or inet6 item; `master` is the default routing
/// instance (label 0 there).
pub fn inet(item: &Element, add: bool, v6: bool, master: bool) -> Result<InetItem, String> {
    let it = InetItem::parse(item).map_err(|e| format!("invalid inet route message ({e})"))?;
    let want = if v6 { af::IPV6 } else { af::IPV4 };
    if it.nlri.af != want {
        return Err(format!("unsupported address family {}", it.nlri.af));
    }
    let safi_ok = if v6 {
        it.nlri.safi == safi::UNICAST
    } else {
        it.nlri.safi == safi::UNICAST || it.nlri.safi == safi::MPLS
    };
    if !safi_ok {
        return Err(format!(
            "unsupported subsequent address family {}",
            it.nlri.safi
        ));
    }
    prefix(&it.nlri.address, v6).ok_or_else(|| format!("bad route {}", it.nlri.address))?;
    if !add {
        return Ok(it);
    }
    let [nh] = it.next_hops.as_slice() else {
        return Err(if it.next_hops.is_empty() {
            format!("missing next-hops for {}", it.nlri.address)
        } else {
            format!("more than one next hop for {}", it.nlri.address)
        });
    };
    decode(nh.af, &nh.address, false)
        .ok_or_else(|| format!("bad next-hop address {}", nh.address))?;
    if !v6 {
        let mpls = it.nlri.safi == safi::MPLS;
        if nh.label > MAX_LABEL || nh.label < 0 || (master && nh.label != 0 && !mpls) {
            return Err(format!("bad label {}", nh.label));
        }
        if (!master || mpls) && nh.label == 0 {
            return Err(format!(
                "bad label {} outside the master instance",
                nh.label
            ));
        }
    }
    if !nh.mac.is_empty() && mac(&nh.mac).is_none() {
        return Err(format!("bad next-hop MAC {}", nh.mac));
    }
    Ok(it)
}

pub fn enet(item: &Element, add: bool) -> Result<EnetItem, String> {
    let it = EnetItem::parse(item).map_err(|e| format!("invalid enet route message ({e})"))?;
    if it.nlri.af != af::L2VPN {
        return Err(format!("unsupported address family {}", it.nlri.af));
    }
    if it.nlri.safi != safi::ENET {
        return Err(format!(
            "unsupported subsequent address family {}",
            it.nlri.safi
        ));
    }
    let type6 = !it.nlri.group.is_empty();
    let m = mac(&it.nlri.mac).ok_or_else(|| format!("bad MAC address {}", it.nlri.mac))?;
    let type2 = !type6 && m != [0; 6];
    let broadcast = m == [0xff; 6];
    if !it.nlri.address.is_empty() {
        if !it.nlri.address.contains('/') {
            return Err(format!("missing / in address {}", it.nlri.address));
        }
        let v6 = it.nlri.address.contains(':');
        let (_, len) = prefix(&it.nlri.address, v6)
            .ok_or_else(|| format!("cannot parse prefix {}", it.nlri.address))?;
        let host = if v6 { 128 } else { 32 };
        let any = if v6 { "::/0" } else { "0.0.0.0/0" };
        if type2 && len != host && it.nlri.address != any {
            return Err(format!("bad address {}", it.nlri.address));
        }
    }
    if !add {
        return Ok(it);
    }
    let [nh] = it.next_hops.as_slice() else {
        return Err(if it.next_hops.is_empty() {
            "missing next-hops for enet route".into()
        } else {
            "more than one next hop for enet route".into()
        });
    };
    decode(nh.af, &nh.address, false)
        .ok_or_else(|| format!("bad next-hop address {}", nh.address))?;
    if !nh.mac.is_empty() && mac(&nh.mac).is_none() {
        return Err(format!("bad next-hop MAC {}", nh.mac));
    }
    if broadcast && !it.replicator_address.is_empty() {
        decode(af::IPV4, &it.replicator_address, false)
            .ok_or_else(|| format!("bad replicator address {}", it.replicator_address))?;
    }
    Ok(it)
}

pub fn mcast(item: &Element, add: bool) -> Result<McastItem, String> {
    let it =
        McastItem::parse(item).map_err(|e| format!("invalid multicast route message ({e})"))?;
    if it.nlri.af != af::IPV4 {
        return Err(format!("unsupported address family {}", it.nlri.af));
    }
    if it.nlri.safi != safi::MCAST {
        return Err(format!(
            "unsupported subsequent address family {}",
            it.nlri.safi
        ));
    }
    if !it.nlri.group.is_empty() {
        decode(it.nlri.af, &it.nlri.group, false)
            .ok_or_else(|| format!("bad group address {}", it.nlri.group))?;
    }
    if !it.nlri.source.is_empty() {
        decode(it.nlri.af, &it.nlri.source, true)
            .ok_or_else(|| format!("bad source address {}", it.nlri.source))?;
    }
    if !add {
        return Ok(it);
    }
    let [nh] = it.next_hops.as_slice() else {
        return Err(if it.next_hops.is_empty() {
            "missing next-hop for multicast route".into()
        } else {
            "more than one next hop for multicast route".into()
        });
    };
    let range: Vec<&str> = nh.label.split('-').collect();
    let nums: Option<Vec<u32>> = range.iter().map(|s| s.trim().parse().ok()).collect();
    match nums.as_deref() {
        Some([a, b]) if *a != 0 && *b != 0 && b >= a => {}
        _ => return Err(format!("bad label range {}", nh.label)),
    }
    decode(nh.af, &nh.address, false)
        .ok_or_else(|| format!("bad next-hop address {}", nh.address))?;
    Ok(it)
}

/// Check an item published to `node` (`<afi>/<safi>/...`).
pub fn check(node: &str, item: &Element, add: bool, master: bool) -> Result<Checked, String> {
    let mut p = node.split('/');
    let a: i64 = p.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
    let s: i64 = p.next().and_then(|s| s.parse().ok()).unwrap_or(-1);
    match (a, s) {
        (af::IPV4, safi::UNICAST | safi::MPLS) => inet(item, add, false, master).map(Checked::Inet),
        (af::IPV6, safi::UNICAST) => inet(item, add, true, master).map(Checked::Inet),
        (af::IPV4, safi::MCAST) => mcast(item, add).map(Checked::Mcast),
        (af::L2VPN, safi::ENET) => enet(item, add).map(Checked::Enet),
        _ => Err(format!("publish node {node:?}: unknown address family")),
    }
}
