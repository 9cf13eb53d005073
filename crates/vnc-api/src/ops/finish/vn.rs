//! virtual-network: subnets, properties, network id.

use crate::error::{bad, conflict, ApiError};
use crate::ipam::{self};
use crate::ops::common::{describe_list, join};
use crate::ops::finish::alloc_id;
use crate::ops::VN_ID_MAX;
use crate::schema::Ty;
use crate::store::{fq_of, State};
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use uuid::Uuid;

pub(crate) fn finish_vn(
    st: &State,
    uuid: Uuid,
    obj: &mut Map<String, Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    ipam::complete_vn_subnets(obj, old)?;
    if old.is_none() && !obj.contains_key("virtual_network_properties") {
        // Upstream shows the properties with null members (inherit the
        // global defaults: l2_l3, VNI = network id).
        obj.insert(
            "virtual_network_properties".into(),
            json!({"forwarding_mode": null, "vxlan_network_identifier": null}),
        );
    }
    if let Some(p) = obj
        .get("virtual_network_properties")
        .filter(|p| !p.is_null())
    {
        let p = p
            .as_object()
            .ok_or_else(|| bad("virtual_network_properties must be an object"))?;
        match p.get("forwarding_mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(m)) if matches!(m.as_str(), "l2_l3" | "l2" | "l3") => {}
            Some(m) => {
                return Err(bad(format!(
                    "virtual_network_properties.forwarding_mode must be l2_l3, l2 or l3, got {m}"
                )))
            }
        }
        match p.get("vxlan_network_identifier") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some_and(|n| (1..=VN_ID_MAX).contains(&n)) => {}
            Some(v) => {
                return Err(bad(format!(
                    "virtual_network_properties.vxlan_network_identifier must be an integer in 1..=16777215, got {v}"
                )))
            }
        }
    }
    alloc_id(
        obj,
        "virtual_network_network_id",
        old,
        &st.vn_ids,
        1,
        VN_ID_MAX,
    )?;
    if old.is_some() {
        // Addresses in use must stay inside the VN's subnets.
        let subs = ipam::vn_subnets(&Value::Object(obj.clone()));
        let name = join(&fq_of(&Value::Object(obj.clone())));
        let mut orphans = Vec::new();
        for &(t, iu) in st.back.get(&uuid).into_iter().flatten() {
            if t != Ty::InstanceIp {
                continue;
            }
            let ip = st
                .get(t, &iu)
                .and_then(|o| o.get("instance_ip_address"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok());
            if let Some(ip) = ip {
                if !subs.iter().any(|s| s.net.contains(&ip)) {
                    orphans.push((t, iu));
                }
            }
        }
        if !orphans.is_empty() {
            return Err(conflict(format!(
                "cannot remove subnets of virtual-network {name} still in use by {}",
                describe_list(st, &orphans)
            )));
        }
    }
    Ok(())
}
