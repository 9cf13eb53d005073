//! Host side of an endpoint: the interface the container gets and the name
//! the vRouter agent knows it by. Linux: a veth pair; Windows: an HCN endpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use uuid::Uuid;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(windows)]
pub mod windows;

/// What the driver asks a backend to build for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSpec {
    pub vmi: Uuid,
    pub mac: [u8; 6],
    pub ipv4: Option<ipnet::Ipv4Net>,
    pub gateway4: Option<Ipv4Addr>,
    pub ipv6: Option<ipnet::Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u16,
    /// Docker network id.
    pub network: String,
    /// Docker endpoint id.
    pub endpoint: String,
}

/// What a backend built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEndpoint {
    /// Host-side name for the port API (`system-name`).
    pub system_name: String,
    /// Linux: the container-side interface docker moves into the sandbox (Join `SrcName`).
    pub container_ifname: Option<String>,
    /// Windows: the HCN endpoint id.
    pub hcn_endpoint: Option<String>,
}

/// A backend failure; `op` names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{op}: {msg}")]
    Failed { op: String, msg: String },
    #[error("{0}")]
    Unsupported(String),
}

impl BackendError {
    pub fn failed(op: impl Into<String>, msg: impl core::fmt::Display) -> Self {
        BackendError::Failed {
            op: op.into(),
            msg: msg.to_string(),
        }
    }
}

/// The per-OS container networking of the driver.
pub trait ContainerNetworking: Send + Sync + 'static {
    fn create(
        &self,
        spec: &EndpointSpec,
    ) -> impl Future<Output = Result<HostEndpoint, BackendError>> + Send;
    /// Idempotent: an absent endpoint is success.
    fn delete(&self, vmi: &Uuid) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// The endpoints of this driver present on this host.
    fn list(&self) -> impl Future<Output = Result<Vec<Uuid>, BackendError>> + Send;
}

/// Upstream's host-side name: `tap` + the first 11 characters of the VMI uuid.
pub fn tap_name(vmi: &Uuid) -> String {
    let s = vmi.hyphenated().to_string();
    format!("tap{}", s.get(..11).unwrap_or(&s))
}

/// A backend that only records (protocol tests, benchmarks, dry runs).
/// `fail_create` makes the next creates fail, to test rollback.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    pub endpoints: Mutex<BTreeMap<Uuid, EndpointSpec>>,
    pub fail_create: std::sync::atomic::AtomicBool,
}

impl MemoryBackend {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, EndpointSpec>> {
        self.endpoints.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn specs(&self) -> Vec<EndpointSpec> {
        self.map().values().cloned().collect()
    }
}

impl ContainerNetworking for MemoryBackend {
    async fn create(&self, spec: &EndpointSpec) -> Result<HostEndpoint, BackendError> {
        if self.fail_create.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(BackendError::failed("create", "injected failure"));
        }
        self.map().insert(spec.vmi, spec.clone());
        Ok(HostEndpoint {
            system_name: tap_name(&spec.vmi),
            container_ifname: Some(format!("ctn{}", &tap_name(&spec.vmi)[3..])),
            hcn_endpoint: None,
        })
    }
    async fn delete(&self, vmi: &Uuid) -> Result<(), BackendError> {
        self.map().remove(vmi);
        Ok(())
    }
    async fn list(&self) -> Result<Vec<Uuid>, BackendError> {
        Ok(self.map().keys().copied().collect())
    }
}
