//! The Windows Host Compute Network service (HNS), v2 API, for the Contrail
//! Docker driver.
//!
//! * [`schema`]: the JSON documents HNS takes and returns
//!   ([`HostComputeNetwork`], [`HostComputeEndpoint`], [`HostComputeQuery`]),
//!   with hcsshim's key names and values.
//! * [`Hcn`]: the calls the driver needs, synchronous like HNS's own (a call
//!   returns once HNS has done the work: no waiting or polling, unlike
//!   upstream's v1 driver, which slept 5 s between retries).
//! * `ComputeNetwork` (Windows only): [`Hcn`] on `computenetwork.dll`.
//! * [`OnFirstUse`]: opens the real one on first use, so a service can start
//!   where HNS cannot be loaded yet.
//! * [`fake::FakeHcn`]: an in-memory [`Hcn`] for tests, since neither Linux
//!   nor Wine has HNS.
//! * Builders: [`transparent_network`] and [`endpoint`].
//!
//! Hand-written: there is no maintained Rust crate for HCN; the schema is
//! hcsshim's (Go), the functions are `computenetwork.h`'s.

pub mod build;
pub mod error;
pub mod fake;
pub mod lazy;
pub mod schema;
#[cfg(windows)]
mod windows;

pub use build::{
    endpoint, format_mac, parse_mac, transparent_network, EndpointAddress, StaticSubnet,
    VROUTER_EXTENSION_ID, VROUTER_EXTENSION_NAME,
};
pub use error::HcnError;
pub use lazy::OnFirstUse;
pub use schema::{
    Dns, EndpointPolicy, ErrorRecord, HostComputeEndpoint, HostComputeNetwork, HostComputeQuery,
    IpConfig, Ipam, MacPool, MacRange, NetworkPolicy, NetworkType, Route, SchemaVersion, Subnet,
};
pub use uuid::Uuid;
#[cfg(windows)]
pub use windows::ComputeNetwork;

/// The HNS calls the Contrail driver makes. Every call is synchronous and
/// may block for as long as HNS takes (creating the first network on an
/// adapter moves the host's IP to a new vNIC: seconds); async callers run
/// them on a blocking thread.
pub trait Hcn: Send + Sync {
    /// `HcnCreateNetwork` then a query: the network as HNS stored it, with
    /// its `ID`.
    fn create_network(&self, settings: &HostComputeNetwork)
        -> Result<HostComputeNetwork, HcnError>;
    /// `HcnOpenNetwork` + `HcnQueryNetworkProperties`; `None` if absent.
    fn get_network(&self, id: &Uuid) -> Result<Option<HostComputeNetwork>, HcnError>;
    /// `HcnEnumerateNetworks` with `query`, then each network's properties.
    fn list_networks(&self, query: &HostComputeQuery) -> Result<Vec<HostComputeNetwork>, HcnError>;
    /// `HcnDeleteNetwork`. A missing network is an error
    /// ([`HcnError::is_not_found`]).
    fn delete_network(&self, id: &Uuid) -> Result<(), HcnError>;

    /// `HcnOpenNetwork(network)` + `HcnCreateEndpoint` then a query.
    fn create_endpoint(
        &self,
        network: &Uuid,
        settings: &HostComputeEndpoint,
    ) -> Result<HostComputeEndpoint, HcnError>;
    /// `HcnOpenEndpoint` + `HcnQueryEndpointProperties`; `None` if absent.
    fn get_endpoint(&self, id: &Uuid) -> Result<Option<HostComputeEndpoint>, HcnError>;
    /// `HcnEnumerateEndpoints` with `query`, then each endpoint's properties.
    fn list_endpoints(
        &self,
        query: &HostComputeQuery,
    ) -> Result<Vec<HostComputeEndpoint>, HcnError>;
    /// `HcnDeleteEndpoint`. A missing endpoint is an error
    /// ([`HcnError::is_not_found`]).
    fn delete_endpoint(&self, id: &Uuid) -> Result<(), HcnError>;

    /// The network named `name` (the first, if HNS holds several).
    fn network_by_name(&self, name: &str) -> Result<Option<HostComputeNetwork>, HcnError> {
        Ok(self
            .list_networks(&HostComputeQuery::by_name(name))?
            .into_iter()
            .find(|n| n.name == name))
    }

    /// Endpoints named `name` (names are not unique in HNS).
    fn endpoints_by_name(&self, name: &str) -> Result<Vec<HostComputeEndpoint>, HcnError> {
        Ok(self
            .list_endpoints(&HostComputeQuery::by_name(name))?
            .into_iter()
            .filter(|e| e.name == name)
            .collect())
    }
}

impl<T: Hcn + ?Sized> Hcn for std::sync::Arc<T> {
    fn create_network(&self, s: &HostComputeNetwork) -> Result<HostComputeNetwork, HcnError> {
        (**self).create_network(s)
    }
    fn get_network(&self, id: &Uuid) -> Result<Option<HostComputeNetwork>, HcnError> {
        (**self).get_network(id)
    }
    fn list_networks(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeNetwork>, HcnError> {
        (**self).list_networks(q)
    }
    fn delete_network(&self, id: &Uuid) -> Result<(), HcnError> {
        (**self).delete_network(id)
    }
    fn create_endpoint(
        &self,
        n: &Uuid,
        s: &HostComputeEndpoint,
    ) -> Result<HostComputeEndpoint, HcnError> {
        (**self).create_endpoint(n, s)
    }
    fn get_endpoint(&self, id: &Uuid) -> Result<Option<HostComputeEndpoint>, HcnError> {
        (**self).get_endpoint(id)
    }
    fn list_endpoints(&self, q: &HostComputeQuery) -> Result<Vec<HostComputeEndpoint>, HcnError> {
        (**self).list_endpoints(q)
    }
    fn delete_endpoint(&self, id: &Uuid) -> Result<(), HcnError> {
        (**self).delete_endpoint(id)
    }
}

#[cfg(test)]
mod tests;
