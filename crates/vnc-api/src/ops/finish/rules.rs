//! network-policy and security-group rule lists.

use crate::error::{bad, ApiError};
use serde_json::{json, Map, Value};
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
        for key in ["src_addresses", "dst_addresses"] {
            let Some(a) = r.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            if !a.as_array().is_some_and(|l| l.iter().all(Value::is_object)) {
                return Err(bad(format!("{at}.{key} must be a list of objects")));
            }
        }
        if !r.get("rule_uuid").is_some_and(Value::is_string) {
            r.insert("rule_uuid".into(), json!(Uuid::new_v4().to_string()));
        }
    }
    Ok(())
}
