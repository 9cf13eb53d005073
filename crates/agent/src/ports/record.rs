//! One port: upstream's `port_ipc` JSON, key for key, and what makes it
//! valid.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use uuid::Uuid;

/// Upstream's `PortSubscribeEntry::Type`.
pub const TYPE_VM: i64 = 0;
/// A port of a network namespace (containers): handled as a VM port.
pub const TYPE_NAMESPACE: i64 = 1;
/// A port with no interface in this host's OS (its link state is set
/// through `/enable-port` and `/disable-port`; disabled by default).
pub const TYPE_REMOTE: i64 = 2;

/// Who wrote a port file, as upstream's agent writes its program name.
pub const AUTHOR: &str = "vrouter-agent";

/// One port, upstream's `port_ipc` JSON (also the on-disk file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub id: String,
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    #[serde(rename = "vn-id")]
    pub vn_id: String,
    #[serde(rename = "vm-project-id", default)]
    pub vm_project_id: String,
    #[serde(rename = "mac-address")]
    pub mac_address: String,
    #[serde(rename = "ip-address", default)]
    pub ip_address: String,
    #[serde(rename = "ip6-address", default)]
    pub ip6_address: String,
    #[serde(rename = "system-name")]
    pub system_name: String,
    #[serde(rename = "display-name", default)]
    pub display_name: String,
    #[serde(rename = "type", default)]
    pub port_type: i64,
    #[serde(rename = "rx-vlan-id", default = "no_vlan")]
    pub rx_vlan_id: i64,
    #[serde(rename = "tx-vlan-id", default = "no_vlan")]
    pub tx_vlan_id: i64,
    /// DPDK vhost-user mode; kept and reported as upstream, not used.
    #[serde(rename = "vhostuser-mode", default)]
    pub vhostuser_mode: i64,
    /// 1 up, 0 down. Upstream's default: up, down for a remote port.
    #[serde(
        rename = "link-state",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub link_state: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

fn no_vlan() -> i64 {
    -1
}

/// "02:aa:…" or "02-aa-…" -> bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// "", "None" and the unspecified address mean "no address".
fn no_address(s: &str) -> bool {
    s.is_empty() || s == "None"
}

impl PortRecord {
    /// The IPv4 address, if any (upstream writes "0.0.0.0" or "None").
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        self.ip_address
            .parse()
            .ok()
            .filter(|a: &Ipv4Addr| !a.is_unspecified())
    }

    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6_address
            .parse()
            .ok()
            .filter(|a: &Ipv6Addr| !a.is_unspecified())
    }

    /// The link state in effect: as given, else up (down for a remote
    /// port), as upstream.
    pub fn link_up(&self) -> bool {
        self.link_state
            .map_or(self.port_type != TYPE_REMOTE, |s| s != 0)
    }

    /// A VLAN sub-interface port: the frames tagged `rx-vlan-id` on the
    /// interface of the untagged port with the same `system-name` (its
    /// parent), sent back tagged `tx-vlan-id` (upstream's VMI with a
    /// parent: `vifr_vlan_id`, `vifr_ovlan_id`).
    pub fn is_sub_interface(&self) -> bool {
        self.rx_vlan_id != -1
    }

    /// The name of the port's vif: the interface's, with `.<VLAN>` for a
    /// sub-interface (which has no interface of its own).
    pub fn vif_name(&self) -> String {
        if self.is_sub_interface() {
            format!("{}.{}", self.system_name, self.rx_vlan_id)
        } else {
            self.system_name.clone()
        }
    }

    /// Checks what upstream's port_ipc checks, and what it should: every
    /// error names the field. (Upstream's own checks are fewer: it takes a
    /// VLAN id of 99999999999 or a type of 99 as they come.)
    pub fn validate(&self) -> Result<Uuid, String> {
        let uuid = |v: &str, what: &str| {
            Uuid::parse_str(v).map_err(|_| format!("{what}: not a UUID: {v:?}"))
        };
        let id = uuid(&self.id, "id")?;
        uuid(&self.instance_id, "instance-id")?;
        let vn = uuid(&self.vn_id, "vn-id")?;
        if !self.vm_project_id.is_empty() {
            uuid(&self.vm_project_id, "vm-project-id")?;
        }
        if !matches!(self.port_type, TYPE_VM | TYPE_NAMESPACE | TYPE_REMOTE) {
            return Err(format!(
                "type: must be 0 (VM port), 1 (namespace port) or 2 (remote port), got {}",
                self.port_type
            ));
        }
        if vn.is_nil() && self.port_type != TYPE_REMOTE {
            return Err("vn-id: the nil UUID is not a virtual network".into());
        }
        let mac = parse_mac(&self.mac_address).ok_or_else(|| {
            format!(
                "mac-address: not a MAC address (xx:xx:xx:xx:xx:xx): {:?}",
                self.mac_address
            )
        })?;
        if mac == [0; 6] || mac[0] & 1 == 1 {
            return Err(format!(
                "mac-address: {} is not a unicast address",
                self.mac_address
            ));
        }
        if !no_address(&self.ip_address) {
            match self.ip_address.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if a.is_multicast() || a.is_broadcast() => {
                    return Err(format!("ip-address: {a} is not a host address"))
                }
                Ok(IpAddr::V4(_)) => {}
                _ => {
                    return Err(format!(
                        "ip-address: not an IPv4 address: {:?}",
                        self.ip_address
                    ))
                }
            }
        }
        if !no_address(&self.ip6_address) {
            match self.ip6_address.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) if a.is_multicast() => {
                    return Err(format!("ip6-address: {a} is not a host address"))
                }
                Ok(IpAddr::V6(_)) => {}
                _ => {
                    return Err(format!(
                        "ip6-address: not an IPv6 address: {:?}",
                        self.ip6_address
                    ))
                }
            }
        }
        super::ifname::validate(&self.system_name)?;
        if let Some(c) = self.display_name.chars().find(|c| c.is_control()) {
            return Err(format!(
                "display-name: control character {c:?} in {:?}",
                self.display_name
            ));
        }
        for (v, what) in [
            (self.rx_vlan_id, "rx-vlan-id"),
            (self.tx_vlan_id, "tx-vlan-id"),
        ] {
            if v != -1 && !(1..=4094).contains(&v) {
                return Err(format!(
                    "{what}: must be -1 (untagged) or a VLAN id 1-4094, got {v}"
                ));
            }
        }
        if (self.rx_vlan_id == -1) != (self.tx_vlan_id == -1) {
            // Upstream would program a sub-interface with VLAN 65535 one
            // way, which its datapath refuses (-EINVAL).
            return Err(format!(
                "rx-vlan-id/tx-vlan-id: a VLAN sub-interface needs both (got {}/{}); -1/-1 is an untagged port",
                self.rx_vlan_id, self.tx_vlan_id
            ));
        }
        if self.is_sub_interface() && self.port_type == TYPE_REMOTE {
            return Err("rx-vlan-id: a remote port (type 2) has no interface to tag on".into());
        }
        if !(0..=2).contains(&self.vhostuser_mode) {
            return Err(format!(
                "vhostuser-mode: must be 0, 1 or 2, got {}",
                self.vhostuser_mode
            ));
        }
        if let Some(s) = self.link_state.filter(|s| !matches!(s, 0 | 1)) {
            return Err(format!("link-state: must be 0 (down) or 1 (up), got {s}"));
        }
        Ok(id)
    }
}
