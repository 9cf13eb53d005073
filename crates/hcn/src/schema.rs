//! The HCN v2 JSON documents: what `HcnCreateNetwork`/`HcnCreateEndpoint`
//! take as settings, what the `HcnQuery*Properties` calls return, and the
//! query document of the enumerate/query calls.
//!
//! Key names, casing and values follow hcsshim's `hcn` package (the schema
//! HNS itself speaks): PascalCase keys, except `ID` and `ExtensionID`.
//! hcsshim tags every field `omitempty`; Go cannot omit an empty *struct*
//! (it sends `"Dns":{}`), we do: HNS treats a missing object as an empty
//! one. Unknown keys in HNS's answers (`State`, `Health`, `Resources`, ...)
//! are ignored so a newer HNS does not break parsing.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `SchemaVersion` of every v2 document and query (`{"Major":2,"Minor":0}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
}

impl SchemaVersion {
    /// The v2.0 schema, the one hcsshim's `V2SchemaVersion` sends.
    pub const V2: Self = Self { major: 2, minor: 0 };
}

impl Default for SchemaVersion {
    fn default() -> Self {
        Self::V2
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero16(v: &u16) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// A route of a subnet or an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Route {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_prefix: String,
    #[serde(skip_serializing_if = "is_zero16")]
    pub metric: u16,
}

/// A subnet of an [`Ipam`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Subnet {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip_address_prefix: String,
    /// Subnet policies (`VLAN`, `VSID`), kept as raw JSON: we send none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// `SubnetFlags`: 1 = do not reserve the gateway address.
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
}

/// Address management of a network: `Type` is `"Static"` or `"DHCP"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
}

/// One range of a [`MacPool`], MACs in HNS format (`00-15-5D-52-C0-00`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MacRange {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start_mac_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub end_mac_address: String,
}

/// The MACs HNS may hand out to endpoints created without one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MacPool {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<MacRange>,
}

impl MacPool {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// DNS settings of a network or an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Dns {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.domain.is_empty()
            && self.search.is_empty()
            && self.server_list.is_empty()
            && self.options.is_empty()
    }
}

/// hcsshim's `NetworkType`. HNS omits `Type` for NAT networks (NAT is
/// mode 0 in its own schema), so a missing type reads as [`Self::Nat`],
/// as hcsshim does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkType {
    #[default]
    #[serde(rename = "NAT")]
    Nat,
    Transparent,
    L2Bridge,
    L2Tunnel,
    #[serde(rename = "ICS")]
    Ics,
    Private,
    Overlay,
    /// A type this crate does not know, kept verbatim.
    #[serde(untagged)]
    Other(String),
}

/// A policy of a network: `Type` and type-specific `Settings`.
/// Kept loosely typed so that HNS's answers with policies we do not know
/// still parse; the constructors build the ones we send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPolicy {
    pub r#type: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

/// `NetAdapterNameNetworkPolicySetting`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetAdapterNameSetting {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_adapter_name: String,
}

/// `VSwitchExtensionNetworkPolicySetting`: enables (or disables) a Hyper-V
/// switch extension on the network's switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VSwitchExtensionSetting {
    #[serde(rename = "ExtensionID", skip_serializing_if = "String::is_empty")]
    pub extension_id: String,
    #[serde(rename = "Enable", skip_serializing_if = "is_false")]
    pub enable: bool,
}

impl NetworkPolicy {
    pub const NET_ADAPTER_NAME: &'static str = "NetAdapterName";
    pub const VSWITCH_EXTENSION: &'static str = "VSwitchExtension";

    /// Binds the network to the host adapter `name` (e.g. `Ethernet0`).
    pub fn net_adapter_name(name: &str) -> Self {
        Self::typed(
            Self::NET_ADAPTER_NAME,
            &NetAdapterNameSetting {
                network_adapter_name: name.to_owned(),
            },
        )
    }

    /// Enables the switch extension `extension_id` (its GUID, as
    /// `Get-VMSwitchExtension` shows it in `Id`) on the network's switch.
    pub fn vswitch_extension(extension_id: &str, enable: bool) -> Self {
        Self::typed(
            Self::VSWITCH_EXTENSION,
            &VSwitchExtensionSetting {
                extension_id: extension_id.to_owned(),
                enable,
            },
        )
    }

    fn typed<T: Serialize>(ty: &str, settings: &T) -> Self {
        Self {
            r#type: ty.to_owned(),
            // A struct of strings and bools always serialises.
            settings: serde_json::to_value(settings).unwrap_or_default(),
        }
    }

    /// The settings of a `NetAdapterName` policy.
    pub fn as_net_adapter_name(&self) -> Option<NetAdapterNameSetting> {
        self.settings_as(Self::NET_ADAPTER_NAME)
    }

    /// The settings of a `VSwitchExtension` policy.
    pub fn as_vswitch_extension(&self) -> Option<VSwitchExtensionSetting> {
        self.settings_as(Self::VSWITCH_EXTENSION)
    }

    fn settings_as<T: serde::de::DeserializeOwned>(&self, ty: &str) -> Option<T> {
        if self.r#type != ty {
            return None;
        }
        T::deserialize(&self.settings).ok()
    }
}

/// hcsshim's `NetworkFlags`.
pub mod network_flags {
    pub const NONE: u32 = 0;
    pub const ENABLE_NON_PERSISTENT: u32 = 8;
    pub const DISABLE_HOST_PORT: u32 = 1024;
    pub const ENABLE_IOV: u32 = 8192;
}

/// A network (`HostComputeNetwork`), as sent to `HcnCreateNetwork` and as
/// returned by `HcnQueryNetworkProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostComputeNetwork {
    /// Assigned by HNS; never sent on create.
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub r#type: NetworkType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<NetworkPolicy>,
    #[serde(skip_serializing_if = "MacPool::is_empty")]
    pub mac_pool: MacPool,
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipams: Vec<Ipam>,
    /// [`network_flags`].
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
    pub schema_version: SchemaVersion,
}

/// An address of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
    #[serde(skip_serializing_if = "is_zero8")]
    pub prefix_length: u8,
}

fn is_zero8(v: &u8) -> bool {
    *v == 0
}

/// A policy of an endpoint (`PortName`, `ACL`, `OutBoundNAT`, ...), kept
/// loosely typed like [`NetworkPolicy`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointPolicy {
    pub r#type: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

/// hcsshim's `EndpointFlags`.
pub mod endpoint_flags {
    pub const NONE: u32 = 0;
    pub const REMOTE_ENDPOINT: u32 = 1;
}

/// An endpoint (`HostComputeEndpoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostComputeEndpoint {
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The network's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_compute_network: Option<Uuid>,
    /// The namespace (compartment) the endpoint is attached to, once a
    /// container uses it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_compute_namespace: Option<Uuid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<EndpointPolicy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_configurations: Vec<IpConfig>,
    #[serde(skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// HNS format: upper-case hex, `-` separated (`00-15-5D-52-C0-00`);
    /// see [`crate::format_mac`].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// [`endpoint_flags`].
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
    pub schema_version: SchemaVersion,
}

/// hcsshim's `HostComputeQueryFlags`.
pub mod query_flags {
    /// The standard properties.
    pub const NONE: u32 = 0;
    /// All properties.
    pub const DETAILED: u32 = 1;
}

/// The query document of `HcnEnumerate*` and `HcnQuery*Properties`.
/// `Filter` is itself JSON *inside a string*, e.g. `"{\"Name\":\"x\"}"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostComputeQuery {
    pub schema_version: SchemaVersion,
    /// [`query_flags`].
    #[serde(skip_serializing_if = "is_zero")]
    pub flags: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter: String,
}

impl HostComputeQuery {
    /// hcsshim's `defaultQuery()`: v2.0, no flags, no filter.
    pub fn all() -> Self {
        Self::default()
    }

    /// Objects whose `key` equals `value` (hcsshim filters on `"ID"`,
    /// `"Name"` and, for endpoints of a network, `"VirtualNetwork"`).
    pub fn filter(key: &str, value: &str) -> Self {
        let mut m = serde_json::Map::new();
        m.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
        Self {
            filter: serde_json::Value::Object(m).to_string(),
            ..Self::default()
        }
    }

    /// Objects named `name`.
    pub fn by_name(name: &str) -> Self {
        Self::filter("Name", name)
    }

    /// The object with id `id`.
    pub fn by_id(id: &Uuid) -> Self {
        Self::filter("ID", &id.to_string())
    }

    /// Endpoints of network `network` (HNS still filters on the v1 key).
    pub fn endpoints_of(network: &Uuid) -> Self {
        Self::filter("VirtualNetwork", &network.to_string())
    }

    /// This query as the JSON string the HCN calls take.
    pub fn to_json(&self) -> String {
        // Strings and integers only: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// HNS's error record (the `ErrorRecord` out-parameter of every call): a
/// JSON object like `{"Success":false,"Error":"...","ErrorCode":...}`. The
/// exact shape is not documented; any field may be missing and the raw
/// text is always kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ErrorRecord {
    pub success: Option<bool>,
    pub error: Option<String>,
    pub error_code: Option<u32>,
}
