//! virtual-router (a compute node) and global-vrouter-config (what every
//! compute node shares: encapsulation priorities, VNI mode).

use crate::error::{bad, ApiError};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Upstream's `EncapsulationType` values.
pub const ENCAPSULATIONS: [&str; 3] = ["MPLSoGRE", "MPLSoUDP", "VXLAN"];

pub(crate) fn finish_vr(obj: &mut Map<String, Value>) -> Result<(), ApiError> {
    match obj.get("virtual_router_ip_address") {
        Some(Value::String(s)) if s.parse::<IpAddr>().is_ok() => {}
        Some(v) => {
            return Err(bad(format!(
                "virtual_router_ip_address: {v} is not an IP address"
            )))
        }
        None => return Err(bad(
            "virtual-router needs virtual_router_ip_address (the compute node's tunnel address)",
        )),
    }
    match obj.get("virtual_router_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t))
            if matches!(t.as_str(), "embedded" | "tor-agent" | "tor-service-node") => {}
        Some(t) => {
            return Err(bad(format!(
                "virtual_router_type must be embedded, tor-agent or tor-service-node, got {t}"
            )))
        }
    }
    Ok(())
}

pub(crate) fn finish_gvc(obj: &mut Map<String, Value>) -> Result<(), ApiError> {
    if let Some(p) = obj.get("encapsulation_priorities").filter(|p| !p.is_null()) {
        let list = p
            .get("encapsulation")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                bad("encapsulation_priorities must be {\"encapsulation\": [\"MPLSoGRE\", \"MPLSoUDP\", \"VXLAN\"]}")
            })?;
        let mut seen: Vec<&str> = Vec::new();
        for e in list {
            let s = e.as_str().filter(|s| ENCAPSULATIONS.contains(s)).ok_or_else(|| {
                bad(format!(
                    "encapsulation_priorities.encapsulation: {e} is not one of MPLSoGRE, MPLSoUDP, VXLAN"
                ))
            })?;
            if seen.contains(&s) {
                return Err(bad(format!(
                    "encapsulation_priorities.encapsulation lists {s} twice"
                )));
            }
            seen.push(s);
        }
    }
    match obj.get("vxlan_network_identifier_mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "automatic" || m == "configured" => {}
        Some(m) => {
            return Err(bad(format!(
                "vxlan_network_identifier_mode must be automatic or configured, got {m}"
            )))
        }
    }
    Ok(())
}
