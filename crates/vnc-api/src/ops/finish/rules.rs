//! network-policy and security-group rule lists.

use crate::error::{bad, ApiError};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use uuid::Uuid;

pub(crate) fn rules(
    obj: &mut Map<String, Value>,
    field: &str,
    need_action: bool,
) -> Result<(), ApiError> {
    let Some(entries) = obj.get_mut(field).filter(|e| !e.is_null()) else {
        return Ok(());
    };
    let entries = entries.as_object_mut().ok_or_else(|| {
        bad(format!(
            "{field} must be an object {{\"policy_rule\": [...]}}"
        ))
    })?;
    let Some(list) = entries.get_mut("policy_rule").filter(|l| !l.is_null()) else {
        return Ok(());
    };
    let list = list
        .as_array_mut()
        .ok_or_else(|| bad(format!("{field}.policy_rule must be a list")))?;
    for (i, r) in list.iter_mut().enumerate() {
        let at = format!("{field}.policy_rule[{i}]");
        let r = r
            .as_object_mut()
            .ok_or_else(|| bad(format!("{at} must be an object")))?;
        match r.get("direction") {
            None | Some(Value::Null) => {
                r.insert("direction".into(), json!(">"));
            }
            Some(Value::String(d)) if d == ">" || d == "<>" => {}
            Some(d) => {
                return Err(bad(format!(
                    "{at}.direction must be \">\" or \"<>\", got {d}"
                )))
            }
        }
        match r.get("protocol") {
            None | Some(Value::Null) => {
                r.insert("protocol".into(), json!("any"));
            }
            Some(Value::String(p))
                if matches!(
                    p.to_ascii_lowercase().as_str(),
                    "any" | "tcp" | "udp" | "icmp" | "icmp6" | "sctp"
                ) || p.parse::<u8>().is_ok() => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 255) => {
                let s = n.to_string();
                r.insert("protocol".into(), json!(s));
            }
            Some(p) => {
                return Err(bad(format!(
                "{at}.protocol must be any, tcp, udp, icmp, icmp6, sctp or a number 0-255, got {p}"
            )))
            }
        }
        match r.get("ethertype") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) if e == "IPv4" || e == "IPv6" => {}
            Some(e) => return Err(bad(format!("{at}.ethertype must be IPv4 or IPv6, got {e}"))),
        }
        match r.get("action_list").filter(|a| !a.is_null()) {
            None if need_action => {
                return Err(bad(format!(
                    "{at}.action_list.simple_action (pass or deny) is required"
                )))
            }
            None => {}
            Some(a) => match a.get("simple_action") {
                Some(Value::String(s)) if s == "pass" || s == "deny" => {}
                None | Some(Value::Null) if !need_action => {}
                Some(s) => {
                    return Err(bad(format!(
                        "{at}.action_list.simple_action must be pass or deny, got {s}"
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "{at}.action_list.simple_action (pass or deny) is required"
                    )))
                }
            },
        }
        for key in ["src_ports", "dst_ports"] {
            let Some(ports) = r.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            let ports = ports
                .as_array()
                .ok_or_else(|| bad(format!("{at}.{key} must be a list")))?;
            for (pi, p) in ports.iter().enumerate() {
                for k in ["start_port", "end_port"] {
                    let ok = p
                        .get(k)
                        .and_then(Value::as_i64)
                        .is_some_and(|n| (-1..=65535).contains(&n));
                    if !ok {
                        return Err(bad(format!(
                            "{at}.{key}[{pi}].{k} must be an integer in -1..=65535"
                        )));
                    }
                }
            }
        }
        let ethertype = r.get("ethertype").and_then(Value::as_str).map(String::from);
        let mut local = false;
        for key in ["src_addresses", "dst_addresses"] {
            let Some(a) = r.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            let list = a
                .as_array()
                .filter(|l| l.iter().all(Value::is_object))
                .ok_or_else(|| bad(format!("{at}.{key} must be a list of objects")))?;
            for (ai, addr) in list.iter().enumerate() {
                let aat = format!("{at}.{key}[{ai}]");
                let mut nets = Vec::new();
                if let Some(sn) = addr.get("subnet").filter(|s| !s.is_null()) {
                    nets.push(subnet(sn, &format!("{aat}.subnet"))?);
                }
                if let Some(l) = addr.get("subnet_list").filter(|s| !s.is_null()) {
                    let l = l
                        .as_array()
                        .ok_or_else(|| bad(format!("{aat}.subnet_list must be a list")))?;
                    for (si, sn) in l.iter().enumerate() {
                        nets.push(subnet(sn, &format!("{aat}.subnet_list[{si}]"))?);
                    }
                }
                for n in &nets {
                    let v = if n.addr().is_ipv4() { "IPv4" } else { "IPv6" };
                    if !need_action && ethertype.as_deref().is_some_and(|e| e != v) {
                        return Err(bad(format!(
                            "{aat}: rule subnet {n} doesn't match ethertype {}",
                            ethertype.as_deref().unwrap_or_default()
                        )));
                    }
                }
                match addr.get("security_group") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(g)) if need_action => {
                        return Err(bad(format!(
                            "{aat}: a network-policy rule cannot refer to security group {g:?}"
                        )))
                    }
                    Some(Value::String(g)) => local |= g == "local",
                    Some(g) => {
                        return Err(bad(format!(
                            "{aat}.security_group must be a string, got {g}"
                        )))
                    }
                }
            }
        }
        if !need_action && !local {
            return Err(bad(format!(
                "{at}: at least one of source or destination addresses must be \"local\" \
                 ({{\"security_group\": \"local\"}})"
            )));
        }
        if !r.get("rule_uuid").is_some_and(Value::is_string) {
            r.insert("rule_uuid".into(), json!(Uuid::new_v4().to_string()));
        }
    }
    Ok(())
}

/// A rule's `{"ip_prefix", "ip_prefix_len"}`: an address and a length that
/// fits its family. (A rule with a bad subnet used to be stored and then
/// match nothing, silently denying what it was meant to allow.)
fn subnet(v: &Value, at: &str) -> Result<IpNet, ApiError> {
    let prefix = v.get("ip_prefix").and_then(Value::as_str).ok_or_else(|| {
        bad(format!(
            "{at}.ip_prefix must be a string with an IP address"
        ))
    })?;
    let ip: IpAddr = prefix
        .parse()
        .map_err(|_| bad(format!("{at}.ip_prefix: {prefix:?} is not an IP address")))?;
    let len = v
        .get("ip_prefix_len")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(format!("{at}.ip_prefix_len must be an integer")))?;
    u8::try_from(len)
        .ok()
        .and_then(|l| IpNet::new(ip, l).ok())
        .ok_or_else(|| bad(format!("{at}: invalid subnet {prefix}/{len}")))
}
