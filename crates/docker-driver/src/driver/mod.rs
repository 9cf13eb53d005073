//! The driver logic: libnetwork calls mapped onto VNC objects, the host
//! backend and the agent's port API.
//!
//! State: only caches. A docker network's VN is recorded on the VN itself
//! (annotation `docker-network:<network id>` = host), every VNC object an
//! endpoint owns is named after the docker endpoint id and annotated with
//! the owner, the host, the docker network and endpoint; the host side is
//! recognised by the backend. So a restarted driver finds everything again
//! (see [`Driver::reconcile`]).
//!
//! One file per concern: `ipam` (the IPAM driver), `network`,
//! `endpoint`, `reconcile`; this one holds the state and the VNC reads
//! they share.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::{Client, ListQuery};

use crate::api::{self, *};
use crate::backend::{BackendError, ContainerNetworking, HostEndpoint};
use crate::vn::VnInfo;

mod address;
mod endpoint;
mod ipam;
mod network;
mod reconcile;

/// Annotation value of `owner` on every object the driver creates.
pub const OWNER: &str = "contrail-docker-driver";
/// Prefix of the VN annotation key recording a docker network.
pub const NET_KEY_PREFIX: &str = "docker-network:";
/// Prefix of the VN annotation key binding an unbound IPAM pool (see
/// [`Driver::request_pool`]) to the docker network that claimed it; the
/// value is the docker network id.
pub const POOL_KEY_PREFIX: &str = "docker-pool:";
/// Pool id prefix of an unbound pool: `unbound/<token>`.
const UNBOUND: &str = "unbound/";
/// How long a RequestAddress reservation (and an unbound pool) waits for
/// its CreateEndpoint (its CreateNetwork) before reconcile removes it.
pub const RESERVATION_TTL: Duration = Duration::from_secs(120);

/// Driver settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// VNC domain of the `tenant` option (`default-domain`).
    pub domain: String,
    /// This host's name: objects are tagged with it so several hosts can
    /// share one config API and each reconciles only its own.
    pub host: String,
    pub mtu: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: "default-domain".into(),
            host: "localhost".into(),
            mtu: 1500,
        }
    }
}

/// A failed call; the text is what `docker` prints.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("option {0:?} is required (docker network create --opt {0}=...)")]
    MissingOption(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("config API: {0}")]
    Vnc(#[from] vnc_client::Error),
    #[error("vrouter agent port API: {0}")]
    Agent(vnc_client::Error),
    #[error("host interface: {0}")]
    Backend(#[from] BackendError),
}

type Result<T, E = DriverError> = core::result::Result<T, E>;

fn invalid(msg: impl Into<String>) -> DriverError {
    DriverError::Invalid(msg.into())
}

/// A docker network as the driver knows it.
#[derive(Debug, Clone)]
pub struct NetInfo {
    pub vn: VnInfo,
}

/// An endpoint created by this process (Join needs the container ifname).
#[derive(Debug, Clone)]
pub struct EpInfo {
    pub network: String,
    pub vn: VnInfo,
    pub vm: Uuid,
    pub vmi: Uuid,
    pub mac: [u8; 6],
    pub ipv4: Option<Ipv4Net>,
    pub gateway4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub host: HostEndpoint,
}

/// What reconcile removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub endpoints: Vec<Uuid>,
    pub host_interfaces: Vec<Uuid>,
    pub ports: Vec<Uuid>,
    pub objects: usize,
}

pub struct Driver<B> {
    vnc: Client,
    agent: Client,
    backend: B,
    cfg: Config,
    nets: Mutex<HashMap<String, Arc<NetInfo>>>,
    eps: Mutex<HashMap<String, EpInfo>>,
    /// Unbound pools handed out and not yet claimed (token -> when).
    unbound: Mutex<HashMap<Ipv4Addr, Instant>>,
    /// Endpoint operations share it; reconcile takes it alone so it never
    /// sees an endpoint half made.
    ops: tokio::sync::RwLock<()>,
    /// Serialises read-modify-write of VN annotations.
    ann: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn format_mac(m: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *m;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Upstream's MAC for a VMI: `02:` + the uuid's first 5 bytes.
pub fn mac_for(vmi: &Uuid) -> [u8; 6] {
    let b = vmi.as_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

/// A `--opt` value from `CreateNetwork.Options["com.docker.network.generic"]`.
fn generic_opt<'a>(opts: &'a Option<BTreeMap<String, Value>>, key: &str) -> Option<&'a str> {
    opts.as_ref()?
        .get(api::GENERIC_OPTIONS)?
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn annotations(cfg: &Config, network: &str, endpoint: &str) -> Value {
    json!({"key_value_pair": [
        {"key": "owner", "value": OWNER},
        {"key": "host", "value": cfg.host},
        {"key": "docker-network", "value": network},
        {"key": "docker-endpoint", "value": endpoint},
    ]})
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/annotations/key_value_pair")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some(key))?
        .get("value")?
        .as_str()
}

/// The keys of `obj`'s annotations starting with `prefix`, without it.
fn annotation_keys<'a>(obj: &'a Value, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    obj.pointer("/annotations/key_value_pair")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |kv| kv.get("key")?.as_str()?.strip_prefix(prefix))
}

/// Created by this driver on this host.
fn is_ours(obj: &Value, host: &str) -> bool {
    annotation(obj, "owner") == Some(OWNER) && annotation(obj, "host") == Some(host)
}

/// `"<vn uuid>/<cidr>"`: the pool id carries the VN so no table is needed.
fn pool_id(vn: &Uuid, net: &IpNet) -> String {
    format!("{vn}/{net}")
}

/// What an IPAM pool id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolRef {
    /// A subnet of a known VN.
    Vn(Uuid, IpNet),
    /// A pool handed out before the VN was known, bound by CreateNetwork.
    Unbound(Ipv4Addr),
}

fn parse_pool_id(s: &str) -> Result<PoolRef> {
    let bad = || invalid(format!("unknown pool id {s:?}"));
    if let Some(t) = s.strip_prefix(UNBOUND) {
        return Ok(PoolRef::Unbound(t.parse().map_err(|_| bad())?));
    }
    let (u, n) = s.split_once('/').ok_or_else(bad)?;
    Ok(PoolRef::Vn(
        u.parse().map_err(|_| bad())?,
        n.parse().map_err(|_| bad())?,
    ))
}

/// The token of an unbound pool as the network driver sees it in
/// `CreateNetwork.IPv4Data`: pool `0.0.0.0/0`, gateway `<token>/0`.
fn unbound_token(d: &IpamData) -> Option<Ipv4Addr> {
    if d.pool != "0.0.0.0/0" {
        return None;
    }
    let (a, len) = d.gateway.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    (len == "0" && a.octets()[0] == 0 && !a.is_unspecified()).then_some(a)
}

/// "10.1.0.5/24" or "10.1.0.5" -> address.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let a = s.split('/').next()?;
    a.parse().ok()
}

impl<B: ContainerNetworking> Driver<B> {
    pub fn new(vnc: Client, agent: Client, backend: B, cfg: Config) -> Self {
        Driver {
            vnc,
            agent,
            backend,
            cfg,
            nets: Mutex::default(),
            eps: Mutex::default(),
            unbound: Mutex::default(),
            ops: tokio::sync::RwLock::new(()),
            ann: tokio::sync::Mutex::new(()),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ---------------------------------------------------------------- VNC reads

    async fn read_vn(&self, id: &Uuid) -> Result<VnInfo> {
        let v = self.vnc.read("virtual-network", id).await?;
        VnInfo::parse(&v).ok_or_else(|| invalid(format!("virtual network {id} is malformed")))
    }

    /// The VN `default-domain:<tenant>:<network>`.
    async fn vn_by_name(&self, tenant: &str, network: &str) -> Result<VnInfo> {
        let fq = vec![self.cfg.domain.clone(), tenant.into(), network.into()];
        match self.vnc.fqname_to_id("virtual-network", &fq).await? {
            Some(id) => self.read_vn(&id).await,
            None => Err(invalid(format!(
                "virtual network {} not found",
                fq.join(":")
            ))),
        }
    }

    async fn all_vns(&self) -> Result<Vec<(Value, VnInfo)>> {
        let q = ListQuery {
            detail: true,
            ..ListQuery::default()
        };
        let vns = self.vnc.list("virtual-network", &q).await?;
        Ok(vns
            .into_iter()
            .filter_map(|v| VnInfo::parse(&v).map(|i| (v, i)))
            .collect())
    }

    /// The only VN having exactly this subnet.
    async fn vn_by_subnet(&self, net: &IpNet, how: &str) -> Result<VnInfo> {
        let mut hits: Vec<VnInfo> = self
            .all_vns()
            .await?
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| i.subnet_eq(net).is_some())
            .collect();
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(invalid(format!(
                "no virtual network has subnet {net} ({how})"
            ))),
            _ => Err(invalid(format!(
                "subnet {net} is in several virtual networks ({}): name one with {how}",
                hits.iter()
                    .map(VnInfo::fq_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}
