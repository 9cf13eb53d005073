//! Windows backend: a container port is an HCN endpoint on a Transparent
//! network whose Hyper-V switch has the vRouter forwarding extension
//! enabled; the extension (our datapath) then sees the endpoint's switch
//! port and the agent learns it under the endpoint's name.
//!
//! Layout in HNS, which is also our only state (the driver keeps none):
//! * one network per Docker network, named `Contrail:<docker network id>`
//!   (upstream's driver used `Contrail:<docker net id>:<tenant>:<net>:<cidr>`:
//!   the same prefix, so `Get-HnsNetwork` shows both alike), type
//!   Transparent, policies `NetAdapterName` (the dataplane adapter) and
//!   `VSwitchExtension` (the vRouter extension, enabled), one static
//!   subnet per address family with its default gateway;
//! * one endpoint per VMI, named `Contrail-<vmi uuid>`, with the MAC, IP
//!   and gateway Contrail allocated. Its name is the port's `system-name`:
//!   on Windows Server 2019+ a container's NIC is named after its HNS
//!   endpoint (upstream's driver sent the endpoint name as `system-name`
//!   there; on 2016 it sent `Container NIC <first 8 hex of the id>`).
//!
//! HNS calls are synchronous (done when they return) and run on tokio's
//! blocking pool; one lock serialises them so two endpoints of a new
//! network do not both create it. No sleeps: upstream's v1 driver slept
//! 5 s (doubling, up to 90 s) when network creation failed with an
//! "unspecified error" while the adapter reconnected; a failure here is
//! returned to Docker, which reports it to the user.

use std::net::IpAddr;
use std::sync::Arc;

use hcn::{EndpointAddress, Hcn, HcnError, HostComputeNetwork, StaticSubnet, Uuid};

use super::{BackendError, ContainerNetworking, EndpointSpec, HostEndpoint};

/// Name prefix of our HCN networks.
pub const NETWORK_PREFIX: &str = "Contrail:";
/// Name prefix of our HCN endpoints.
pub const ENDPOINT_PREFIX: &str = "Contrail-";

/// Where to put networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcnConfig {
    /// The host's dataplane adapter (upstream's default: `Ethernet0`).
    pub adapter: String,
    /// Switch extensions to enable on our networks' switch, by `Id`.
    pub extensions: Vec<String>,
}

impl Default for HcnConfig {
    fn default() -> Self {
        Self {
            adapter: "Ethernet0".to_owned(),
            extensions: vec![hcn::VROUTER_EXTENSION_ID.to_owned()],
        }
    }
}

/// [`ContainerNetworking`] on HNS. `H` is `hcn::ComputeNetwork` in
/// production and `hcn::fake::FakeHcn` in tests.
pub struct HcnBackend<H> {
    hcn: Arc<H>,
    cfg: Arc<HcnConfig>,
    /// Serialises HNS work (see the module docs).
    lock: tokio::sync::Mutex<()>,
}

impl<H> std::fmt::Debug for HcnBackend<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HcnBackend")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The HCN network of Docker network `docker_network`.
pub fn network_name(docker_network: &str) -> String {
    format!("{NETWORK_PREFIX}{docker_network}")
}

/// The HCN endpoint (and `system-name`) of VMI `vmi`.
pub fn endpoint_name(vmi: &Uuid) -> String {
    format!("{ENDPOINT_PREFIX}{}", vmi.hyphenated())
}

/// The VMI of one of our endpoint names.
pub fn vmi_of(endpoint_name: &str) -> Option<Uuid> {
    Uuid::parse_str(endpoint_name.strip_prefix(ENDPOINT_PREFIX)?).ok()
}

fn backend_err(what: &str, e: HcnError) -> BackendError {
    BackendError::failed(format!("HNS {what}"), e)
}

impl<H: Hcn + 'static> HcnBackend<H> {
    pub fn new(hcn: H, cfg: HcnConfig) -> Self {
        Self::with_shared(Arc::new(hcn), cfg)
    }

    /// Shares `hcn` with the caller (tests look into the fake).
    pub fn with_shared(hcn: Arc<H>, cfg: HcnConfig) -> Self {
        Self {
            hcn,
            cfg: Arc::new(cfg),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `f` on the blocking pool, one at a time.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&H, &HcnConfig) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let _guard = self.lock.lock().await;
        let (hcn, cfg) = (self.hcn.clone(), self.cfg.clone());
        tokio::task::spawn_blocking(move || f(&hcn, &cfg))
            .await
            .map_err(|e| BackendError::failed("HNS worker", e))?
    }
}

/// The network's subnets: hcsshim (and so we) need a gateway per subnet.
fn subnets(spec: &EndpointSpec) -> Vec<StaticSubnet> {
    let v4 = spec.ipv4.zip(spec.gateway4).map(|(n, gw)| StaticSubnet {
        prefix: n.into(),
        gateway: gw.into(),
    });
    let v6 = spec.ipv6.zip(spec.gateway6).map(|(n, gw)| StaticSubnet {
        prefix: n.into(),
        gateway: gw.into(),
    });
    v4.into_iter().chain(v6).collect()
}

fn addresses(spec: &EndpointSpec) -> Vec<EndpointAddress> {
    let v4 = spec.ipv4.map(|a| EndpointAddress {
        addr: a.into(),
        gateway: spec.gateway4.map(IpAddr::from),
    });
    let v6 = spec.ipv6.map(|a| EndpointAddress {
        addr: a.into(),
        gateway: spec.gateway6.map(IpAddr::from),
    });
    v4.into_iter().chain(v6).collect()
}

/// Finds or creates the network of `spec.network`; returns its id.
fn ensure_network<H: Hcn>(
    hcn: &H,
    cfg: &HcnConfig,
    spec: &EndpointSpec,
) -> Result<Uuid, BackendError> {
    let name = network_name(&spec.network);
    let existing = hcn
        .network_by_name(&name)
        .map_err(|e| backend_err("look up network", e))?;
    let net: HostComputeNetwork = match existing {
        Some(n) => n,
        None => {
            let ext: Vec<&str> = cfg.extensions.iter().map(String::as_str).collect();
            let doc = hcn::transparent_network(&name, &cfg.adapter, &ext, &subnets(spec), &[]);
            hcn.create_network(&doc)
                .map_err(|e| backend_err(&format!("create network {name}"), e))?
        }
    };
    net.id
        .ok_or_else(|| BackendError::failed("HNS create network", format!("{name} has no ID")))
}

fn create_sync<H: Hcn>(
    hcn: &H,
    cfg: &HcnConfig,
    spec: &EndpointSpec,
) -> Result<HostEndpoint, BackendError> {
    let net = ensure_network(hcn, cfg, spec)?;
    let name = endpoint_name(&spec.vmi);
    let doc = hcn::endpoint(&name, net, &spec.mac, &addresses(spec), &[]);

    // A retried CreateEndpoint (or a restart mid-way) finds its endpoint:
    // the same one is reused, a different one replaced.
    let mut reuse = None;
    for old in hcn
        .endpoints_by_name(&name)
        .map_err(|e| backend_err("look up endpoint", e))?
    {
        let same = old.host_compute_network == Some(net)
            && hcn::parse_mac(&old.mac_address) == Some(spec.mac)
            && old.ip_configurations == doc.ip_configurations;
        match old.id {
            Some(id) if same && reuse.is_none() => reuse = Some(id),
            Some(id) => delete_ignoring_absent(hcn, &id)?,
            None => {}
        }
    }
    let id = match reuse {
        Some(id) => id,
        None => hcn
            .create_endpoint(&net, &doc)
            .map_err(|e| backend_err(&format!("create endpoint {name}"), e))?
            .id
            .ok_or_else(|| {
                BackendError::failed("HNS create endpoint", format!("{name} has no ID"))
            })?,
    };
    Ok(HostEndpoint {
        system_name: name,
        container_ifname: None,
        hcn_endpoint: Some(id.hyphenated().to_string()),
    })
}

fn delete_ignoring_absent<H: Hcn>(hcn: &H, id: &Uuid) -> Result<(), BackendError> {
    match hcn.delete_endpoint(id) {
        Err(e) if !e.is_not_found() => Err(backend_err(&format!("delete endpoint {id}"), e)),
        _ => Ok(()),
    }
}

impl<H: Hcn + 'static> ContainerNetworking for HcnBackend<H> {
    async fn create(&self, spec: &EndpointSpec) -> Result<HostEndpoint, BackendError> {
        let spec = spec.clone();
        self.run(move |hcn, cfg| create_sync(hcn, cfg, &spec)).await
    }

    /// Deletes the VMI's endpoints; absent is fine. The network stays:
    /// other endpoints may use it, and deleting the last Transparent
    /// network on an adapter tears down the switch (and the host's vNIC).
    async fn delete(&self, vmi: &Uuid) -> Result<(), BackendError> {
        let name = endpoint_name(vmi);
        self.run(move |hcn, _| {
            for ep in hcn
                .endpoints_by_name(&name)
                .map_err(|e| backend_err("look up endpoint", e))?
            {
                if let Some(id) = ep.id {
                    delete_ignoring_absent(hcn, &id)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Uuid>, BackendError> {
        self.run(|hcn, _| {
            let mut vmis: Vec<Uuid> = hcn
                .list_endpoints(&hcn::HostComputeQuery::all())
                .map_err(|e| backend_err("list endpoints", e))?
                .iter()
                .filter_map(|e| vmi_of(&e.name))
                .collect();
            vmis.sort_unstable();
            vmis.dedup();
            Ok(vmis)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hcn::error::hresult;
    use hcn::fake::FakeHcn;
    use hcn::{HostComputeEndpoint, NetworkType};

    use super::*;

    const VMI: &str = "6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b";

    fn spec(vmi: &str, ip: &str) -> EndpointSpec {
        EndpointSpec {
            vmi: Uuid::parse_str(vmi).unwrap(),
            mac: [0x02, 0x6f, 0x1c, 0x2b, 0x3a, 0x4d],
            ipv4: Some(ip.parse().unwrap()),
            gateway4: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ipv6: None,
            gateway6: None,
            mtu: 1500,
            network: "d0c4e7".to_owned(),
            endpoint: "ep-1".to_owned(),
        }
    }

    fn backend() -> (Arc<FakeHcn>, HcnBackend<FakeHcn>) {
        let fake = Arc::new(FakeHcn::new());
        let b = HcnBackend::with_shared(fake.clone(), HcnConfig::default());
        (fake, b)
    }

    #[tokio::test]
    async fn create_makes_network_and_endpoint() {
        let (fake, b) = backend();
        let host = b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        assert_eq!(host.system_name, format!("Contrail-{VMI}"));
        assert_eq!(host.container_ifname, None);

        let nets = fake.networks();
        assert_eq!(nets.len(), 1);
        let n = &nets[0];
        assert_eq!(n.name, "Contrail:d0c4e7");
        assert_eq!(n.r#type, NetworkType::Transparent);
        assert_eq!(
            n.policies[0]
                .as_net_adapter_name()
                .unwrap()
                .network_adapter_name,
            "Ethernet0"
        );
        let ext = n.policies[1].as_vswitch_extension().unwrap();
        assert_eq!(ext.extension_id, hcn::VROUTER_EXTENSION_ID);
        assert!(ext.enable);
        assert_eq!(n.ipams[0].subnets[0].ip_address_prefix, "10.0.0.0/24");
        assert_eq!(n.ipams[0].subnets[0].routes[0].next_hop, "10.0.0.1");

        let eps = fake.endpoints();
        assert_eq!(eps.len(), 1);
        let e = &eps[0];
        assert_eq!(host.hcn_endpoint, e.id.map(|i| i.to_string()));
        assert_eq!(e.host_compute_network, n.id);
        assert_eq!(e.mac_address, "02-6F-1C-2B-3A-4D");
        assert_eq!(e.ip_configurations[0].ip_address, "10.0.0.3");
        assert_eq!(e.ip_configurations[0].prefix_length, 24);
        assert_eq!(e.routes[0].destination_prefix, "0.0.0.0/0");
    }

    #[tokio::test]
    async fn second_endpoint_reuses_network() {
        let (fake, b) = backend();
        b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        b.create(&spec("00000000-0000-4000-8000-000000000002", "10.0.0.4/24"))
            .await
            .unwrap();
        assert_eq!(fake.networks().len(), 1);
        assert_eq!(fake.endpoints().len(), 2);
        let creates = fake
            .calls()
            .iter()
            .filter(|c| *c == "HcnCreateNetwork")
            .count();
        assert_eq!(creates, 1);
    }

    #[tokio::test]
    async fn concurrent_creates_make_one_network() {
        let (fake, b) = backend();
        let b = Arc::new(b);
        let tasks: Vec<_> = (0..4u128)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move {
                    let mut s = spec(VMI, "10.0.0.3/24");
                    s.vmi = Uuid::from_u128(i + 1);
                    b.create(&s).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(fake.networks().len(), 1);
        assert_eq!(fake.endpoints().len(), 4);
    }

    #[tokio::test]
    async fn create_is_idempotent_and_replaces_stale() {
        let (fake, b) = backend();
        let first = b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        let again = b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(fake.endpoints().len(), 1);

        // Same VMI, new address: the old endpoint goes.
        let moved = b.create(&spec(VMI, "10.0.0.9/24")).await.unwrap();
        assert_ne!(moved.hcn_endpoint, first.hcn_endpoint);
        let eps = fake.endpoints();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].ip_configurations[0].ip_address, "10.0.0.9");
    }

    #[tokio::test]
    async fn dual_stack() {
        let (fake, b) = backend();
        let mut s = spec(VMI, "10.0.0.3/24");
        s.ipv6 = Some("fd00::3/64".parse().unwrap());
        s.gateway6 = Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        b.create(&s).await.unwrap();
        let n = &fake.networks()[0];
        assert_eq!(n.ipams[0].subnets.len(), 2);
        assert_eq!(n.ipams[0].subnets[1].ip_address_prefix, "fd00::/64");
        let e = &fake.endpoints()[0];
        assert_eq!(e.ip_configurations.len(), 2);
        assert_eq!(e.routes.len(), 2);
        assert_eq!(e.routes[1].destination_prefix, "::/0");
    }

    #[tokio::test]
    async fn delete_is_idempotent_and_keeps_network() {
        let (fake, b) = backend();
        let vmi = Uuid::parse_str(VMI).unwrap();
        b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        b.delete(&vmi).await.unwrap();
        assert!(fake.endpoints().is_empty());
        assert_eq!(fake.networks().len(), 1);
        b.delete(&vmi).await.unwrap();
        b.delete(&Uuid::from_u128(7)).await.unwrap();
    }

    #[tokio::test]
    async fn list_returns_ours_only() {
        let (fake, b) = backend();
        b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        b.create(&spec("00000000-0000-4000-8000-000000000002", "10.0.0.4/24"))
            .await
            .unwrap();
        // Somebody else's endpoints (e.g. Docker's nat network).
        let net = fake.networks()[0].id.unwrap();
        for name in ["nat-ep", "Contrail-not-a-uuid", "Contrail:x"] {
            fake.insert_endpoint(HostComputeEndpoint {
                name: name.to_owned(),
                host_compute_network: Some(net),
                ..HostComputeEndpoint::default()
            });
        }
        let mut want = vec![
            Uuid::parse_str(VMI).unwrap(),
            Uuid::parse_str("00000000-0000-4000-8000-000000000002").unwrap(),
        ];
        want.sort_unstable();
        assert_eq!(b.list().await.unwrap(), want);
    }

    #[tokio::test]
    async fn hns_errors_surface_with_hresult() {
        let (fake, b) = backend();
        fake.fail_next("HcnCreateNetwork", hresult::HCN_E_ADAPTER_NOT_FOUND);
        let err = b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("create network Contrail:d0c4e7"), "{text}");
        assert!(text.contains("0x803B0006"), "{text}");
        assert!(fake.endpoints().is_empty());

        fake.fail_next("HcnDeleteEndpoint", hresult::E_FAIL);
        b.create(&spec(VMI, "10.0.0.3/24")).await.unwrap();
        let err = b.delete(&Uuid::parse_str(VMI).unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("0x80004005"), "{err}");
        // Not-found while deleting is success (deleted meanwhile).
        fake.fail_next("HcnDeleteEndpoint", hresult::HCN_E_ENDPOINT_NOT_FOUND);
        b.delete(&Uuid::parse_str(VMI).unwrap()).await.unwrap();
    }

    #[test]
    fn names() {
        let vmi = Uuid::parse_str(VMI).unwrap();
        assert_eq!(endpoint_name(&vmi), format!("Contrail-{VMI}"));
        assert_eq!(vmi_of(&endpoint_name(&vmi)), Some(vmi));
        assert_eq!(vmi_of("Contrail:x"), None);
        assert_eq!(vmi_of("other"), None);
        assert_eq!(network_name("abc"), "Contrail:abc");
    }
}
