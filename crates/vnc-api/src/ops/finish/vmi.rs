//! virtual-machine-interface: network reference and MAC addresses.

use crate::error::{bad, conflict, ApiError};
use crate::store::State;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// `aa:bb:cc:dd:ee:ff`, lower case, from `-` or `:` separated input.
pub(crate) fn normalize_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = Vec::with_capacity(6);
    for p in parts {
        if p.len() != 2 {
            return None;
        }
        let b = u8::from_str_radix(p, 16).ok()?;
        out.push(format!("{b:02x}"));
    }
    Some(out.join(":"))
}

pub(crate) fn finish_vmi(
    st: &State,
    uuid: Uuid,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let has_vn = obj
        .get("virtual_network_refs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_vn {
        return Err(bad(
            "virtual-machine-interface needs virtual_network_refs (the network it is a port of)",
        ));
    }
    let key = "virtual_machine_interface_mac_addresses";
    let given: Vec<Value> = match obj.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => match m.get("mac_address") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(bad(format!("{key}.mac_address must be a list"))),
        },
        Some(_) => {
            return Err(bad(format!(
                "{key} must be an object {{\"mac_address\": [...]}}"
            )))
        }
    };
    let mut macs = Vec::new();
    for m in &given {
        let s = m.as_str().unwrap_or_default();
        let n =
            normalize_mac(s).ok_or_else(|| bad(format!("{key}: \"{m}\" is not a MAC address")))?;
        if let Some(other) = st.macs.get(&n).filter(|o| **o != uuid) {
            return Err(conflict(format!(
                "duplicate: MAC address {n} is already used by virtual-machine-interface {other}"
            )));
        }
        macs.push(n);
    }
    if macs.is_empty() {
        if let Some(o) = old {
            macs = crate::store::vmi_macs(o);
        }
    }
    if macs.is_empty() {
        // Upstream derives the MAC from the uuid: 02 + its first five bytes.
        let mac_of = |b: &[u8]| {
            let mut m = String::from("02");
            for x in b.iter().take(5) {
                m.push_str(&format!(":{x:02x}"));
            }
            m
        };
        let mut mac = mac_of(uuid.as_bytes());
        while st.macs.contains_key(&mac) {
            mac = mac_of(Uuid::new_v4().as_bytes());
        }
        macs.push(mac);
    }
    obj.insert(key.into(), json!({ "mac_address": macs }));
    Ok(())
}
