//! Upstream's VM-based port subscription (`POST /vm`, what the Kubernetes
//! CNI sends) and the VM config view (`GET /vm-cfg/<name>`).
//!
//! A subscription names the VM, the VN, the VMI and the host interface;
//! unlike `POST /port` it carries no MAC or address: those come from the
//! configuration (the VMI's MAC, its instance-ips). So a subscription
//! becomes a port (a [`PortRecord`]) only once its VMI is in the config,
//! and is re-resolved whenever the config changes.

use super::record::{PortRecord, AUTHOR, TYPE_NAMESPACE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_api::Snapshot;

/// One subscription, upstream's `/vm` body (also its file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmPort {
    #[serde(rename = "vm-uuid")]
    pub vm_uuid: String,
    #[serde(rename = "vm-name")]
    pub vm_name: String,
    #[serde(rename = "host-ifname")]
    pub host_ifname: String,
    #[serde(rename = "vn-uuid")]
    pub vn_uuid: String,
    #[serde(rename = "vmi-uuid")]
    pub vmi_uuid: String,
    #[serde(rename = "vm-id", default)]
    pub vm_id: String,
    #[serde(rename = "vm-ifname", default)]
    pub vm_ifname: String,
    #[serde(rename = "vm-namespace", default)]
    pub vm_namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl VmPort {
    /// `(vm, vmi)` uuids, or why the body is invalid.
    pub fn validate(&self) -> Result<(Uuid, Uuid), String> {
        let uuid = |v: &str, what: &str| {
            Uuid::parse_str(v).map_err(|_| format!("{what}: not a UUID: {v:?}"))
        };
        let vm = uuid(&self.vm_uuid, "vm-uuid")?;
        let vn = uuid(&self.vn_uuid, "vn-uuid")?;
        let vmi = uuid(&self.vmi_uuid, "vmi-uuid")?;
        if vn.is_nil() || vmi.is_nil() || vm.is_nil() {
            return Err("vm-uuid, vn-uuid and vmi-uuid must not be the nil UUID".into());
        }
        if self.vm_name.is_empty() || self.vm_name.chars().any(char::is_control) {
            return Err(format!(
                "vm-name: must be a non-empty name without control characters: {:?}",
                self.vm_name
            ));
        }
        super::ifname::validate(&self.host_ifname)
            .map_err(|e| e.replace("system-name", "host-ifname"))?;
        Ok((vm, vmi))
    }

    /// The port this subscription stands for, if its VMI is in the config:
    /// MAC from the VMI, addresses from its instance-ips, project from its
    /// parent.
    pub fn resolve(&self, snap: &Snapshot) -> Option<PortRecord> {
        let vmi_id = Uuid::parse_str(&self.vmi_uuid).ok()?;
        let vmi = snap.get("virtual-machine-interface", &vmi_id)?;
        let mac = vmi
            .pointer("/virtual_machine_interface_mac_addresses/mac_address/0")
            .and_then(Value::as_str)?
            .to_string();
        let (mut v4, mut v6) = (String::new(), String::new());
        for (_, iip) in snap.iter("instance-ip") {
            let mine = iip
                .get("virtual_machine_interface_refs")
                .and_then(Value::as_array)
                .is_some_and(|l| {
                    l.iter()
                        .any(|r| r.get("uuid").and_then(Value::as_str) == Some(&self.vmi_uuid))
                });
            if !mine {
                continue;
            }
            match iip
                .get("instance_ip_address")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            {
                Some(std::net::IpAddr::V4(a)) if v4.is_empty() => v4 = a.to_string(),
                Some(std::net::IpAddr::V6(a)) if v6.is_empty() => v6 = a.to_string(),
                _ => {}
            }
        }
        let project = vmi
            .get("parent_uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Some(PortRecord {
            id: self.vmi_uuid.clone(),
            instance_id: self.vm_uuid.clone(),
            vn_id: self.vn_uuid.clone(),
            vm_project_id: project,
            mac_address: mac,
            ip_address: if v4.is_empty() { "0.0.0.0".into() } else { v4 },
            ip6_address: if v6.is_empty() { "None".into() } else { v6 },
            system_name: self.host_ifname.clone(),
            display_name: self.vm_name.clone(),
            port_type: TYPE_NAMESPACE,
            rx_vlan_id: -1,
            tx_vlan_id: -1,
            vhostuser_mode: 0,
            link_state: None,
            author: Some(AUTHOR.into()),
            time: self.time.clone(),
        })
    }
}

/// Which VM `/vm-cfg` asks about.
#[derive(Clone, Copy, Debug)]
pub enum VmKey<'a> {
    Name(&'a str),
    Uuid(Uuid),
}

/// Upstream's `/vm-cfg/<name>` (and `/vm-cfg-by-uuid/<uuid>`) answer: the
/// configured interfaces of the VM (name: its fq_name or display name).
/// `None` when the VM or its interfaces are not in the config (yet).
pub fn vm_cfg(snap: &Snapshot, key: VmKey<'_>) -> Option<Vec<Value>> {
    let vm = match key {
        VmKey::Uuid(u) => snap.get("virtual-machine", &u).map(|_| u)?,
        VmKey::Name(n) => snap.iter("virtual-machine").find_map(|(u, o)| {
            let by_fq = o.pointer("/fq_name/0").and_then(Value::as_str) == Some(n);
            let by_display = o.get("display_name").and_then(Value::as_str) == Some(n);
            (by_fq || by_display).then_some(*u)
        })?,
    };
    let vm_s = vm.to_string();
    let mut out = Vec::new();
    for (u, vmi) in snap.iter("virtual-machine-interface") {
        let refs_vm = vmi
            .get("virtual_machine_refs")
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|r| r.get("uuid").and_then(Value::as_str) == Some(&vm_s))
            });
        if !refs_vm {
            continue;
        }
        let vn = vmi.pointer("/virtual_network_refs/0");
        let vn_id = vn
            .and_then(|r| r.get("uuid"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let vn_name = vn
            .and_then(|r| r.get("to"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        let mac = vmi
            .pointer("/virtual_machine_interface_mac_addresses/mac_address/0")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let vlan = vmi
            .pointer("/virtual_machine_interface_properties/sub_interface_vlan_tag")
            .and_then(Value::as_i64);
        let mut o = json!({
            "id": u.to_string(),
            "vm-uuid": vm_s,
            "vn-id": vn_id,
            "vn-name": vn_name,
            "mac-address": mac,
            "sub-interface": vlan.is_some(),
            "vlan-id": vlan.unwrap_or(-1),
        });
        // Upstream renders each annotation as the string "{key:value}".
        let ann: Vec<Value> = vmi
            .pointer("/annotations/key_value_pair")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|kv| {
                let s = |k: &str| kv.get(k).and_then(Value::as_str).unwrap_or_default();
                json!(format!("{{{}:{}}}", s("key"), s("value")))
            })
            .collect();
        if !ann.is_empty() {
            o["annotations"] = json!(ann);
        }
        out.push(o);
    }
    (!out.is_empty()).then_some(out)
}
