//! instance-ip: address allocation or check.

use crate::error::{bad, conflict, not_found, ApiError};
use crate::ipam::{self, Sub};
use crate::ops::common::join;
use crate::schema::Ty;
use crate::store::{fq_of, uuid_at, Txn};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use uuid::Uuid;

pub(crate) fn finish_iip(
    txn: &mut Txn<'_>,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let vns: Vec<Uuid> = obj
        .get("virtual_network_refs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| uuid_at(r, "uuid"))
        .collect();
    let [vn] = vns[..] else {
        return Err(bad(
            "instance-ip needs exactly one virtual_network_refs entry (the network to take the address from)",
        ));
    };
    if old.is_some() {
        return Ok(());
    }
    let st = txn.st();
    let vn_obj = st
        .get(Ty::VirtualNetwork, &vn)
        .ok_or_else(|| not_found(format!("virtual-network {vn} not found")))?;
    let vn_name = join(&fq_of(vn_obj));
    let subs = ipam::vn_subnets(vn_obj);
    if subs.is_empty() {
        return Err(conflict(format!(
            "virtual-network {vn_name} has no subnets"
        )));
    }
    let family = match obj.get("instance_ip_family") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if f == "v4" => Some(false),
        Some(Value::String(f)) if f == "v6" => Some(true),
        Some(f) => return Err(bad(format!("instance_ip_family must be v4 or v6, got {f}"))),
    };
    let want_subnet = match obj.get("subnet_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !subs.iter().any(|x| x.uuid == *s) {
                return Err(bad(format!(
                    "subnet_uuid {s} is not a subnet of virtual-network {vn_name}"
                )));
            }
            Some(s.clone())
        }
        Some(_) => return Err(bad("subnet_uuid must be a string")),
    };
    let candidates: Vec<&Sub> = subs
        .iter()
        .filter(|s| want_subnet.as_ref().is_none_or(|w| *w == s.uuid))
        .filter(|s| family.is_none_or(|v6| s.net.addr().is_ipv6() == v6))
        .collect();
    let (ip, sub) = match obj.get("instance_ip_address") {
        None | Some(Value::Null) => {
            // Upstream's default family is v4.
            let mut ordered = candidates.clone();
            ordered.sort_by_key(|s| s.net.addr().is_ipv6());
            let found = ordered
                .iter()
                .find_map(|s| ipam::allocate(st, &st.hints, vn, s).map(|ip| (ip, (*s).clone())));
            found.ok_or_else(|| {
                conflict(format!(
                    "virtual-network {vn_name} has exhausted its subnet(s) {}",
                    candidates
                        .iter()
                        .map(|s| s.net.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
        }
        Some(v) => {
            let s = v
                .as_str()
                .ok_or_else(|| bad("instance_ip_address must be a string"))?;
            let ip: IpAddr = s
                .parse()
                .map_err(|_| bad(format!("instance_ip_address \"{s}\" is not an IP address")))?;
            if family.is_some_and(|v6| ip.is_ipv6() != v6) {
                return Err(bad(format!(
                    "instance_ip_address {ip} does not match instance_ip_family"
                )));
            }
            let sub = subs.iter().find(|x| x.net.contains(&ip)).ok_or_else(|| {
                bad(format!(
                    "instance_ip_address {ip} is not inside any subnet of virtual-network {vn_name}"
                ))
            })?;
            if want_subnet.as_ref().is_some_and(|w| *w != sub.uuid) {
                return Err(bad(format!(
                    "instance_ip_address {ip} is not inside subnet {}",
                    want_subnet.unwrap_or_default()
                )));
            }
            ipam::check_requested(st, vn, &vn_name, sub, ip)?;
            (ip, sub.clone())
        }
    };
    obj.insert("instance_ip_address".into(), json!(ip.to_string()));
    obj.insert(
        "instance_ip_family".into(),
        json!(if ip.is_ipv6() { "v6" } else { "v4" }),
    );
    obj.insert("subnet_uuid".into(), json!(sub.uuid));
    txn.set_hint(sub.uuid, ipam::to_u128(ip));
    Ok(())
}
