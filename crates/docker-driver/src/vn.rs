//! What the driver reads from a virtual-network: its subnets (upstream
//! `network_ipam_refs[].attr.ipam_subnets[]`). Addresses in them are the
//! config API's to allocate (see `driver/address.rs`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use uuid::Uuid;

/// One subnet of a VN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub net: IpNet,
    pub gateway: Option<IpAddr>,
    pub dns: Option<IpAddr>,
    /// Inclusive ranges; empty = the whole subnet.
    pub pools: Vec<(IpAddr, IpAddr)>,
    pub uuid: Option<String>,
}

impl Subnet {
    /// The gateway in CIDR form, as docker wants it in IPAM `Data`.
    pub fn gateway_cidr(&self) -> Option<String> {
        self.gateway
            .map(|g| format!("{g}/{}", self.net.prefix_len()))
    }
}

/// A virtual-network as the driver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnInfo {
    pub uuid: Uuid,
    pub fq: Vec<String>,
    pub project: Uuid,
    pub subnets: Vec<Subnet>,
}

impl VnInfo {
    pub fn fq_str(&self) -> String {
        self.fq.join(":")
    }

    pub fn subnets_str(&self) -> String {
        let s: Vec<String> = self.subnets.iter().map(|s| s.net.to_string()).collect();
        if s.is_empty() {
            "none".into()
        } else {
            s.join(", ")
        }
    }

    /// The subnet holding `a`.
    pub fn subnet_of(&self, a: IpAddr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.net.contains(&a))
    }

    /// The subnet equal to `net` (after truncation to its prefix).
    pub fn subnet_eq(&self, net: &IpNet) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.net == net.trunc())
    }

    /// The first subnet of a family.
    pub fn first(&self, v6: bool) -> Option<&Subnet> {
        self.subnets
            .iter()
            .find(|s| matches!(s.net, IpNet::V6(_)) == v6)
    }

    /// Parses a VN's inner JSON; `None` when uuid/fq_name/parent are missing.
    pub fn parse(v: &Value) -> Option<VnInfo> {
        let uuid = vnc_client::uuid_of(v)?;
        let fq = vnc_client::fq_name_of(v);
        let project = v.get("parent_uuid")?.as_str()?.parse().ok()?;
        let mut subnets = Vec::new();
        let refs = v.get("network_ipam_refs").and_then(Value::as_array);
        for r in refs.into_iter().flatten() {
            let subs = r.pointer("/attr/ipam_subnets").and_then(Value::as_array);
            for s in subs.into_iter().flatten() {
                if let Some(sub) = parse_subnet(s) {
                    subnets.push(sub);
                }
            }
        }
        Some(VnInfo {
            uuid,
            fq,
            project,
            subnets,
        })
    }
}

fn ip_field(v: &Value, key: &str) -> Option<IpAddr> {
    v.get(key)?
        .as_str()?
        .parse()
        .ok()
        .filter(|a: &IpAddr| !a.is_unspecified())
}

fn parse_subnet(s: &Value) -> Option<Subnet> {
    let p = s.get("subnet")?;
    let addr: IpAddr = p.get("ip_prefix")?.as_str()?.parse().ok()?;
    let len = u8::try_from(p.get("ip_prefix_len")?.as_u64()?).ok()?;
    let net = IpNet::new(addr, len).ok()?.trunc();
    let pools = s
        .get("allocation_pools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((ip_field(p, "start")?, ip_field(p, "end")?)))
                .collect()
        })
        .unwrap_or_default();
    Some(Subnet {
        net,
        gateway: ip_field(s, "default_gateway"),
        dns: ip_field(s, "dns_server_address"),
        pools,
        uuid: s
            .get("subnet_uuid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_subnets() {
        let v = json!({"uuid": "56297dc0-5553-4e6a-b87f-8423afc21e9d", "fq_name": ["d", "p", "vn"],
            "parent_uuid": "9970147c-33b1-4bf7-8944-8968e708d430",
            "network_ipam_refs": [{"to": ["d", "p", "ipam"], "attr": {"ipam_subnets": [
                {"subnet": {"ip_prefix": "10.1.0.0", "ip_prefix_len": 24}, "default_gateway": "10.1.0.1",
                 "dns_server_address": "10.1.0.2", "subnet_uuid": "s1"},
                {"subnet": {"ip_prefix": "10.2.0.7", "ip_prefix_len": 29}, "default_gateway": "0.0.0.0",
                 "allocation_pools": [{"start": "10.2.0.4", "end": "10.2.0.5"}]},
                {"subnet": {"ip_prefix": "fd00::", "ip_prefix_len": 64}, "default_gateway": "fd00::1"}]}}]});
        let vn = VnInfo::parse(&v).unwrap();
        assert_eq!(vn.subnets_str(), "10.1.0.0/24, 10.2.0.0/29, fd00::/64");
        let s = &vn.subnets[0];
        assert_eq!(s.gateway_cidr().as_deref(), Some("10.1.0.1/24"));
        assert_eq!(s.dns, Some("10.1.0.2".parse().unwrap()));
        assert_eq!(s.uuid.as_deref(), Some("s1"));
        let p = &vn.subnets[1];
        assert_eq!(p.gateway, None);
        assert_eq!(
            p.pools,
            vec![("10.2.0.4".parse().unwrap(), "10.2.0.5".parse().unwrap())]
        );
        assert_eq!(vn.first(true).unwrap().net.to_string(), "fd00::/64");
        assert!(vn.subnet_eq(&"10.1.0.9/24".parse().unwrap()).is_some());
        assert!(vn.subnet_of("10.3.0.1".parse().unwrap()).is_none());
        assert!(VnInfo::parse(&json!({"uuid": "x"})).is_none());
    }
}
