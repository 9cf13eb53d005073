//! Node properties between IF-MAP XML and the VNC REST JSON shapes: the
//! element `virtual-network-properties` is the key
//! `virtual_network_properties`, nested elements are objects, repeated or
//! list-typed elements arrays, integer and boolean fields typed
//! ([`super::schema`]), everything else strings.

use super::schema::{BOOLS, INTS, LISTS};
use crate::xml::Element;
use serde_json::{Map, Number, Value};

fn key(name: &str) -> String {
    name.replace('-', "_")
}

fn leaf_value(el: &Element) -> Value {
    let name = el.name.as_str();
    let Some(t) = el.text.as_deref() else {
        return if INTS.contains(&name) || BOOLS.contains(&name) {
            Value::Null
        } else {
            Value::String(String::new())
        };
    };
    if INTS.contains(&name) {
        let t = t.trim();
        if let Ok(v) = t.parse::<i64>() {
            return Value::Number(Number::from(v));
        }
        if let Ok(v) = t.parse::<u64>() {
            return Value::Number(Number::from(v));
        }
        if t.is_empty() {
            return Value::Null;
        }
    }
    if BOOLS.contains(&name) {
        match t.trim() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(t.to_string())
}

/// The JSON value of one property element.
pub fn value_of(el: &Element) -> Value {
    if el.children.is_empty() {
        return leaf_value(el);
    }
    Value::Object(to_json(&el.children))
}

/// The JSON object of a list of property elements.
pub fn to_json(props: &[Element]) -> Map<String, Value> {
    let mut m = Map::new();
    for p in props {
        let k = key(&p.name);
        let v = value_of(p);
        if LISTS.contains(&p.name.as_str()) {
            match m.get_mut(&k) {
                Some(Value::Array(a)) => a.push(v),
                _ => {
                    m.insert(k, Value::Array(vec![v]));
                }
            }
            continue;
        }
        match m.get_mut(&k) {
            // A repeated element of a type we do not know: a list too.
            Some(Value::Array(a)) => a.push(v),
            Some(old) => {
                let first = std::mem::take(old);
                *old = Value::Array(vec![first, v]);
            }
            None => {
                m.insert(k, v);
            }
        }
    }
    m
}

fn element(name: &str, v: &Value, out: &mut Vec<Element>) {
    match v {
        Value::Null => {}
        Value::Array(a) => {
            for x in a {
                element(name, x, out);
            }
        }
        Value::Object(o) => {
            let mut e = Element::new(name);
            e.children = from_json(o);
            out.push(e);
        }
        Value::Bool(b) => out.push(Element::leaf(name, b)),
        Value::Number(n) => out.push(Element::leaf(name, n)),
        Value::String(s) => out.push(Element::leaf(name, s)),
    }
}

/// The property elements of a JSON object (keys in their order).
pub fn from_json(obj: &Map<String, Value>) -> Vec<Element> {
    let mut out = Vec::new();
    for (k, v) in obj {
        element(&k.replace('_', "-"), v, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subnets_and_macs_become_vnc_json() {
        let v = Element::parse(
            "<value><ipam-subnets><subnet><ip-prefix>27.1.1.0</ip-prefix><ip-prefix-len>24</ip-prefix-len></subnet><default-gateway>27.1.1.254</default-gateway></ipam-subnets></value>",
        )
        .unwrap();
        assert_eq!(
            value_of(&v),
            json!({"ipam_subnets": [{"subnet": {"ip_prefix": "27.1.1.0", "ip_prefix_len": 24}, "default_gateway": "27.1.1.254"}]})
        );
        let m = Element::parse("<x><mac-address>02:ef:1e:98:28:05</mac-address></x>").unwrap();
        assert_eq!(value_of(&m), json!({"mac_address": ["02:ef:1e:98:28:05"]}));
        let p = Element::parse("<id-perms><enable>true</enable><uuid><uuid-mslong>18069416507517521380</uuid-mslong></uuid><description /></id-perms>").unwrap();
        assert_eq!(
            value_of(&p),
            json!({"enable": true, "uuid": {"uuid_mslong": 18069416507517521380u64}, "description": ""})
        );
    }

    #[test]
    fn json_round_trips_through_xml() {
        let obj = json!({
            "network_policy_entries": {"policy_rule": [{
                "direction": "<>", "protocol": "icmp",
                "src_addresses": [{"virtual_network": "d:p:a"}],
                "dst_addresses": [{"virtual_network": "d:p:b"}],
                "dst_ports": [{"start_port": -1, "end_port": -1}],
                "action_list": {"simple_action": "pass"}
            }]},
            "encapsulation_priorities": {"encapsulation": ["VXLAN"]},
            "virtual_network_network_id": 7,
            "id_perms": {"enable": true, "description": null}
        });
        let xml = from_json(obj.as_object().unwrap());
        let mut back = to_json(&xml);
        // null members are not sent.
        back["id_perms"]["description"] = Value::Null;
        assert_eq!(Value::Object(back), obj);
    }
}
