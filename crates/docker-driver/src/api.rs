//! libnetwork remote plugin wire types (`drivers/remote/api` and
//! `ipams/remote/api` of moby/libnetwork): Go field names, so PascalCase.
//!
//! Requests tolerate absent fields (Go sends zero values, tests may omit
//! them); replies skip empty optional fields, which Go decodes as zero values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Content type of every plugin reply.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.x+json";
/// Key of the per-network generic options (`--opt`) in `CreateNetwork.Options`.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";
/// IPAM `Data` key carrying the pool's gateway (CIDR form).
pub const GATEWAY_KEY: &str = "com.docker.network.gateway";
/// `RequestAddress` option telling that docker asks for the gateway address.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// `EndpointOperInfo` key of the MAC address (what libnetwork's bridge uses).
pub const MAC_KEY: &str = "com.docker.network.endpoint.macaddress";
/// `--subnet 0.0.0.0/32`: upstream's Windows driver's way (with the
/// `windows` IPAM) of saying "any subnet of the VN".
pub const ANY_SUBNET: &str = "0.0.0.0/32";

/// Docker's network and endpoint ids are 64 lower-case hex characters
/// (`stringid.GenerateRandomID`); nothing else is one, and the driver names
/// objects, files and interfaces after them.
pub fn check_docker_id(id: &str, what: &str) -> Result<(), String> {
    let ok = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(80).collect();
        Err(format!(
            "{what} must be docker's id (64 lower-case hex characters), got {} characters: {shown:?}",
            id.chars().count()
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamData {
    pub address_space: String,
    pub pool: String,
    pub gateway: String,
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    pub options: Option<BTreeMap<String, Value>>,
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// DeleteNetwork, FreeNetwork.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

impl NetworkRequest {
    pub fn check(&self) -> Result<(), String> {
        check_docker_id(&self.network_id, "NetworkID")
    }
}

/// DeleteEndpoint, EndpointOperInfo, Join, Leave, Program/RevokeExternalConnectivity.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub sandbox_key: String,
}

impl EndpointRequest {
    pub fn check(&self) -> Result<(), String> {
        check_docker_id(&self.network_id, "NetworkID")?;
        check_docker_id(&self.endpoint_id, "EndpointID")
    }
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointInterface {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(rename = "AddressIPv6", skip_serializing_if = "String::is_empty")]
    pub address_ipv6: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub interface: Option<EndpointInterface>,
    pub options: Option<BTreeMap<String, Value>>,
}

impl CreateEndpointRequest {
    pub fn check(&self) -> Result<(), String> {
        check_docker_id(&self.network_id, "NetworkID")?;
        check_docker_id(&self.endpoint_id, "EndpointID")
    }
}

#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpointResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<EndpointInterface>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StaticRoute {
    pub destination: String,
    /// 0 = via `NextHop`, 1 = connected (on the interface).
    pub route_type: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<InterfaceName>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
}

// ---- IPAM ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestPoolRequest {
    pub address_space: String,
    pub pool: String,
    pub sub_pool: String,
    pub options: Option<BTreeMap<String, String>>,
    #[serde(rename = "V6")]
    pub v6: bool,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPoolResponse {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub pool: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddressResponse {
    pub address: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}
