//! IPAM subnets of virtual networks: validation, upstream's defaults, and
//! address allocation for instance-ips.

use crate::error::{bad, conflict, ApiError};
use crate::store::State;
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use uuid::Uuid;

/// One validated subnet of a VN.
#[derive(Clone, Debug)]
pub(crate) struct Sub {
    pub net: IpNet,
    pub gw: Option<IpAddr>,
    pub dns: Option<IpAddr>,
    /// Inclusive address ranges to allocate from (empty: the whole subnet).
    pub pools: Vec<(u128, u128)>,
    pub from_start: bool,
    pub uuid: String,
}

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        // Values of a v4 subnet always fit.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

fn first_last(net: &IpNet) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

/// "No address" spellings upstream accepts for gateway and DNS.
fn is_unspecified(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified()) || s.eq_ignore_ascii_case("none")
}

fn parse_addr(v: &Value, what: &str) -> Result<IpAddr, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{what} must be a string with an IP address")))?;
    s.parse()
        .map_err(|_| bad(format!("{what}: \"{s}\" is not an IP address")))
}

/// Validate and complete every `network_ipam_refs[].attr.ipam_subnets[]`
/// of a VN, in place: the prefix must be a network address, gateway and DNS
/// addresses default, as upstream, to the last usable address and the one
/// before it (`.254`, `.253` in a /24), or to the first and second host
/// addresses with `addr_from_start: true`; `enable_dhcp`
/// to true, `subnet_uuid` is kept from `old` for an unchanged prefix or
/// generated. Subnets of one VN may not overlap.
pub(crate) fn complete_vn_subnets(
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let old_uuids: HashMap<IpNet, String> = old
        .map(vn_subnets)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.net, s.uuid))
        .collect();
    let mut seen: Vec<(IpNet, String)> = Vec::new();
    let Some(refs) = obj
        .get_mut("network_ipam_refs")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for (ri, r) in refs.iter_mut().enumerate() {
        let Some(attr) = r.get_mut("attr").filter(|a| !a.is_null()) else {
            continue;
        };
        let attr = attr
            .as_object_mut()
            .ok_or_else(|| bad(format!("network_ipam_refs[{ri}].attr must be an object")))?;
        let Some(subs) = attr.get_mut("ipam_subnets").filter(|s| !s.is_null()) else {
            continue;
        };
        let subs = subs.as_array_mut().ok_or_else(|| {
            bad(format!(
                "network_ipam_refs[{ri}].attr.ipam_subnets must be a list"
            ))
        })?;
        for (si, s) in subs.iter_mut().enumerate() {
            let at = format!("network_ipam_refs[{ri}].attr.ipam_subnets[{si}]");
            let s = s
                .as_object_mut()
                .ok_or_else(|| bad(format!("{at} must be an object")))?;
            let net = complete_subnet(s, &at, &old_uuids)?;
            let uuid = s
                .get("subnet_uuid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            for (n, u) in &seen {
                if n.contains(&net.network()) || net.contains(&n.network()) {
                    return Err(bad(format!("{at}: subnet {net} overlaps subnet {n}")));
                }
                if *u == uuid {
                    return Err(bad(format!("{at}: duplicate subnet_uuid {uuid}")));
                }
            }
            seen.push((net, uuid));
        }
    }
    Ok(())
}

fn complete_subnet(
    s: &mut Map<String, Value>,
    at: &str,
    old_uuids: &HashMap<IpNet, String>,
) -> Result<IpNet, ApiError> {
    let sn = s
        .get("subnet")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("{at}: missing subnet {{ip_prefix, ip_prefix_len}}")))?;
    let prefix = sn
        .get("ip_prefix")
        .ok_or_else(|| bad(format!("{at}: missing subnet.ip_prefix")))?;
    let prefix = parse_addr(prefix, &format!("{at}: subnet.ip_prefix"))?;
    let len = sn
        .get("ip_prefix_len")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(format!("{at}: subnet.ip_prefix_len must be an integer")))?;
    let net = u8::try_from(len)
        .ok()
        .and_then(|l| IpNet::new(prefix, l).ok())
        .ok_or_else(|| bad(format!("{at}: invalid CIDR {prefix}/{len}")))?;
    if net.network() != prefix {
        return Err(bad(format!(
            "{at}: invalid CIDR {prefix}/{len}: host bits set (the network is {})",
            net.trunc()
        )));
    }
    let (first, last) = first_last(&net);
    if last - first < 3 {
        return Err(bad(format!(
            "{at}: subnet {net} is too small: it needs room for the gateway, the DNS address and hosts"
        )));
    }
    let v6 = net.addr().is_ipv6();
    // Upstream's default: gateway and DNS at the top of the subnet,
    // addresses handed out downwards.
    let from_start = match s.get("addr_from_start") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(format!("{at}: addr_from_start must be a boolean"))),
    };
    s.insert("addr_from_start".into(), Value::Bool(from_start));
    let default = |k: u128| {
        let a = if from_start { first + k } else { last - k };
        Value::String(from_u128(v6, a).to_string())
    };
    for (key, k) in [("default_gateway", 1), ("dns_server_address", 2)] {
        match s.get(key) {
            None | Some(Value::Null) => {
                s.insert(key.into(), default(k));
            }
            Some(v) => {
                let what = format!("{at}: {key}");
                let txt = v
                    .as_str()
                    .ok_or_else(|| bad(format!("{what} must be a string")))?;
                if !is_unspecified(txt) {
                    let a = parse_addr(v, &what)?;
                    if !net.contains(&a) {
                        return Err(bad(format!("{what} {a} is not inside subnet {net}")));
                    }
                }
            }
        }
    }
    match s.get("enable_dhcp") {
        None | Some(Value::Null) => {
            s.insert("enable_dhcp".into(), Value::Bool(true));
        }
        Some(Value::Bool(_)) => {}
        Some(_) => return Err(bad(format!("{at}: enable_dhcp must be a boolean"))),
    }
    if let Some(pools) = s.get("allocation_pools").filter(|p| !p.is_null()) {
        let pools = pools
            .as_array()
            .ok_or_else(|| bad(format!("{at}: allocation_pools must be a list")))?;
        for (pi, p) in pools.iter().enumerate() {
            let what = format!("{at}: allocation_pools[{pi}]");
            let start = parse_addr(
                p.get("start").unwrap_or(&Value::Null),
                &format!("{what}.start"),
            )?;
            let end = parse_addr(p.get("end").unwrap_or(&Value::Null), &format!("{what}.end"))?;
            if !net.contains(&start) || !net.contains(&end) {
                return Err(bad(format!(
                    "{what}: {start}-{end} is not inside subnet {net}"
                )));
            }
            if to_u128(start) > to_u128(end) {
                return Err(bad(format!("{what}: start {start} is after end {end}")));
            }
        }
    }
    match s.get("subnet_uuid") {
        None | Some(Value::Null) => {
            let u = old_uuids
                .get(&net)
                .cloned()
                .unwrap_or_else(|| Uuid::new_v4().to_string());
            s.insert("subnet_uuid".into(), Value::String(u));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(bad(format!("{at}: subnet_uuid must be a string"))),
    }
    Ok(net)
}

/// The subnets of a stored (already validated) VN.
pub(crate) fn vn_subnets(vn: &Value) -> Vec<Sub> {
    let mut out = Vec::new();
    let refs = vn
        .get("network_ipam_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for r in refs {
        let subs = r
            .get("attr")
            .and_then(|a| a.get("ipam_subnets"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for s in subs {
            let sn = s.get("subnet");
            let prefix = sn
                .and_then(|x| x.get("ip_prefix"))
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<IpAddr>().ok());
            let len = sn
                .and_then(|x| x.get("ip_prefix_len"))
                .and_then(Value::as_u64)
                .and_then(|l| u8::try_from(l).ok());
            let Some(net) = prefix.zip(len).and_then(|(p, l)| IpNet::new(p, l).ok()) else {
                continue;
            };
            let addr = |k: &str| {
                s.get(k)
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .filter(|a| !a.is_unspecified())
            };
            let pools = s
                .get("allocation_pools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let a = |k: &str| {
                        p.get(k)
                            .and_then(Value::as_str)
                            .and_then(|a| a.parse::<IpAddr>().ok())
                            .map(to_u128)
                    };
                    Some((a("start")?, a("end")?))
                })
                .collect();
            out.push(Sub {
                net,
                gw: addr("default_gateway"),
                dns: addr("dns_server_address"),
                pools,
                from_start: s
                    .get("addr_from_start")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                uuid: s
                    .get("subnet_uuid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
    out
}

/// Why a given address cannot be used.
pub(crate) fn check_requested(
    st: &State,
    vn: Uuid,
    vn_name: &str,
    sub: &Sub,
    ip: IpAddr,
) -> Result<(), ApiError> {
    let (first, last) = first_last(&sub.net);
    let n = to_u128(ip);
    if n == first || (n == last && ip.is_ipv4()) {
        return Err(bad(format!(
            "IP address {ip} is the network or broadcast address of subnet {}",
            sub.net
        )));
    }
    if Some(ip) == sub.gw || Some(ip) == sub.dns {
        return Err(conflict(format!(
            "IP address {ip} is reserved (gateway or DNS address of subnet {}) in virtual-network {vn_name}",
            sub.net
        )));
    }
    if let Some(other) = st.ips.get(&(vn, ip)) {
        return Err(conflict(format!(
            "duplicate: IP address {ip} is already used by instance-ip {other} in virtual-network {vn_name}"
        )));
    }
    Ok(())
}

/// Upper bound on addresses looked at per allocation (a v6 /64 is never
/// scanned through).
const SCAN_LIMIT: u64 = 1 << 24;

/// A free address of `sub` in VN `vn`: ascending from the first host when
/// `addr_from_start`, descending from the last otherwise, continuing after
/// the previous allocation and wrapping around. Skips network, broadcast,
/// gateway, DNS and used addresses; honours allocation pools.
pub(crate) fn allocate(
    st: &State,
    hints: &HashMap<String, u128>,
    vn: Uuid,
    sub: &Sub,
) -> Option<IpAddr> {
    let (first, last) = first_last(&sub.net);
    let v6 = sub.net.addr().is_ipv6();
    let mut ranges: Vec<(u128, u128)> = if sub.pools.is_empty() {
        vec![(first + 1, last - 1)]
    } else {
        sub.pools.clone()
    };
    ranges.sort_unstable();
    let after = hints.get(&sub.uuid).copied();
    let mut budget = SCAN_LIMIT;
    let try_range = |lo: u128, hi: u128, budget: &mut u64| -> Option<IpAddr> {
        if lo > hi {
            return None;
        }
        let probe = |n: u128| {
            let ip = from_u128(v6, n);
            let free = n != first
                && n != last
                && Some(ip) != sub.gw
                && Some(ip) != sub.dns
                && !st.ips.contains_key(&(vn, ip));
            free.then_some(ip)
        };
        if sub.from_start {
            let mut n = lo;
            loop {
                if *budget == 0 {
                    return None;
                }
                *budget -= 1;
                if let Some(ip) = probe(n) {
                    return Some(ip);
                }
                if n == hi {
                    return None;
                }
                n += 1;
            }
        } else {
            let mut n = hi;
            loop {
                if *budget == 0 {
                    return None;
                }
                *budget -= 1;
                if let Some(ip) = probe(n) {
                    return Some(ip);
                }
                if n == lo {
                    return None;
                }
                n -= 1;
            }
        }
    };
    if sub.from_start {
        // Phase 1: addresses after the hint; phase 2: the rest.
        for &(lo, hi) in &ranges {
            let lo = after.map_or(lo, |a| lo.max(a.saturating_add(1)));
            if let Some(ip) = try_range(lo, hi, &mut budget) {
                return Some(ip);
            }
        }
        if let Some(a) = after {
            for &(lo, hi) in &ranges {
                if let Some(ip) = try_range(lo, hi.min(a), &mut budget) {
                    return Some(ip);
                }
            }
        }
    } else {
        for &(lo, hi) in ranges.iter().rev() {
            let hi = after.map_or(hi, |a| hi.min(a.saturating_sub(1)));
            if let Some(ip) = try_range(lo, hi, &mut budget) {
                return Some(ip);
            }
        }
        if let Some(a) = after {
            for &(lo, hi) in ranges.iter().rev() {
                if let Some(ip) = try_range(lo.max(a), hi, &mut budget) {
                    return Some(ip);
                }
            }
        }
    }
    None
}

/// The JSON of one default security-group rule (upstream's default SG).
pub(crate) fn sg_rule(ingress: bool, sg_fq: &str, ethertype: &str) -> Value {
    let remote = if ingress {
        json!({"security_group": sg_fq})
    } else if ethertype == "IPv6" {
        json!({"subnet": {"ip_prefix": "::", "ip_prefix_len": 0}})
    } else {
        json!({"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}})
    };
    let local = json!({"security_group": "local"});
    let (src, dst) = if ingress {
        (remote, local)
    } else {
        (local, remote)
    };
    json!({
        "rule_uuid": Uuid::new_v4().to_string(),
        "direction": ">",
        "protocol": "any",
        "ethertype": ethertype,
        "src_addresses": [src],
        "src_ports": [{"start_port": 0, "end_port": 65535}],
        "dst_addresses": [dst],
        "dst_ports": [{"start_port": 0, "end_port": 65535}],
    })
}
