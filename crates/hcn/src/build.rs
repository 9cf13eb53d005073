//! Builders of the two documents the Contrail driver sends, and the MAC
//! format HNS wants.

use std::net::IpAddr;

use ipnet::IpNet;
use uuid::Uuid;

use crate::schema::{
    Dns, HostComputeEndpoint, HostComputeNetwork, IpConfig, Ipam, NetworkPolicy, NetworkType,
    Route, SchemaVersion, Subnet,
};

/// The `Id` (`Get-VMSwitchExtension`) of upstream's Hyper-V switch
/// extension, "OpenContrail's vRouter forwarding extension": its NDIS
/// filter unique name in upstream's Windows vRouter sources.
pub const VROUTER_EXTENSION_ID: &str = "56553588-1538-4BE6-B8E0-CB46402DC205";

/// The display name upstream's driver passed to `Enable-VMSwitchExtension
/// -Name` (the INF's name, not the driver's `FriendlyName`).
pub const VROUTER_EXTENSION_NAME: &str = "vRouter forwarding extension";

/// `aa:bb:..` bytes as HNS writes MACs: `AA-BB-CC-DD-EE-FF`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02X}-{b:02X}-{c:02X}-{d:02X}-{e:02X}-{f:02X}")
}

/// Parses a MAC in HNS's (`-`) or Contrail's (`:`) notation, any case.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(['-', ':']);
    for byte in &mut out {
        let p = parts.next()?;
        // from_str_radix alone would take a sign ("+1").
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A subnet with its default route: hcsshim refuses a prefix without a
/// default gateway (`0.0.0.0/0` or `::/0`), so do we.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSubnet {
    /// The subnet (host bits are cleared when building).
    pub prefix: IpNet,
    pub gateway: IpAddr,
}

/// A Transparent network on host adapter `adapter`, with the switch
/// extensions `extensions` enabled, one static IPAM entry for `subnets`
/// and `dns_servers`.
pub fn transparent_network(
    name: &str,
    adapter: &str,
    extensions: &[&str],
    subnets: &[StaticSubnet],
    dns_servers: &[IpAddr],
) -> HostComputeNetwork {
    let mut policies = vec![NetworkPolicy::net_adapter_name(adapter)];
    policies.extend(
        extensions
            .iter()
            .map(|id| NetworkPolicy::vswitch_extension(id, true)),
    );
    let ipams = if subnets.is_empty() {
        Vec::new()
    } else {
        vec![Ipam {
            r#type: "Static".to_owned(),
            subnets: subnets
                .iter()
                .map(|s| Subnet {
                    ip_address_prefix: s.prefix.trunc().to_string(),
                    routes: vec![Route {
                        next_hop: s.gateway.to_string(),
                        destination_prefix: default_prefix(s.gateway).to_owned(),
                        metric: 0,
                    }],
                    ..Subnet::default()
                })
                .collect(),
        }]
    };
    HostComputeNetwork {
        name: name.to_owned(),
        r#type: NetworkType::Transparent,
        policies,
        dns: Dns {
            server_list: dns_servers.iter().map(ToString::to_string).collect(),
            ..Dns::default()
        },
        ipams,
        schema_version: SchemaVersion::V2,
        ..HostComputeNetwork::default()
    }
}

fn default_prefix(gw: IpAddr) -> &'static str {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0",
        IpAddr::V6(_) => "::/0",
    }
}

/// One address of an endpoint and its gateway (the default route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddress {
    /// Address and prefix length (e.g. `10.0.0.3/24`).
    pub addr: IpNet,
    pub gateway: Option<IpAddr>,
}

/// An endpoint named `name` on network `network` with a fixed MAC, its
/// addresses (each with an optional default route) and DNS servers.
pub fn endpoint(
    name: &str,
    network: Uuid,
    mac: &[u8; 6],
    addrs: &[EndpointAddress],
    dns_servers: &[IpAddr],
) -> HostComputeEndpoint {
    HostComputeEndpoint {
        name: name.to_owned(),
        host_compute_network: Some(network),
        ip_configurations: addrs
            .iter()
            .map(|a| IpConfig {
                ip_address: a.addr.addr().to_string(),
                prefix_length: a.addr.prefix_len(),
            })
            .collect(),
        routes: addrs
            .iter()
            .filter_map(|a| {
                a.gateway.map(|gw| Route {
                    next_hop: gw.to_string(),
                    destination_prefix: default_prefix(gw).to_owned(),
                    metric: 0,
                })
            })
            .collect(),
        dns: Dns {
            server_list: dns_servers.iter().map(ToString::to_string).collect(),
            ..Dns::default()
        },
        mac_address: format_mac(mac),
        schema_version: SchemaVersion::V2,
        ..HostComputeEndpoint::default()
    }
}
