//! The driver logic: libnetwork calls mapped onto VNC objects, the host
//! backend and the agent's port API.
//!
//! State: only caches. A docker network's VN is recorded on the VN itself
//! (annotation `docker-network:<network id>` = host), every VNC object an
//! endpoint owns is named after the docker endpoint id and annotated with
//! the owner, the host, the docker network and endpoint; the host side is
//! recognised by the backend. So a restarted driver finds everything again
//! (see [`Driver::reconcile`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::Method;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::{Client, ListQuery};

use crate::api::{self, *};
use crate::backend::{BackendError, ContainerNetworking, EndpointSpec, HostEndpoint};
use crate::vn::{refers_to, Subnet, VnInfo};

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
/// How long a RequestAddress reservation waits for its CreateEndpoint.
const RESERVATION_TTL: Duration = Duration::from_secs(120);

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
    reserved: Mutex<HashMap<(Uuid, IpAddr), Instant>>,
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
            reserved: Mutex::default(),
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

    /// Addresses of the VN's instance-ips plus live reservations.
    async fn used_addresses(&self, vn: &Uuid) -> Result<HashSet<IpAddr>> {
        let q = ListQuery {
            detail: true,
            ..ListQuery::default()
        };
        let iips = self.vnc.list("instance-ip", &q).await?;
        let mut used: HashSet<IpAddr> = iips
            .iter()
            .filter(|i| refers_to(i, "virtual_network_refs", vn))
            .filter_map(|i| i.get("instance_ip_address")?.as_str()?.parse().ok())
            .collect();
        let now = Instant::now();
        let mut r = lock(&self.reserved);
        r.retain(|_, t| now.duration_since(*t) < RESERVATION_TTL);
        used.extend(r.keys().filter(|(v, _)| v == vn).map(|(_, a)| *a));
        Ok(used)
    }

    fn reserve(&self, vn: Uuid, a: IpAddr) {
        lock(&self.reserved).insert((vn, a), Instant::now());
    }

    fn unreserve(&self, vn: Uuid, a: IpAddr) {
        lock(&self.reserved).remove(&(vn, a));
    }

    // ---------------------------------------------------------------- IPAM

    pub fn ipam_capabilities(&self) -> Value {
        json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
    }

    pub fn ipam_address_spaces(&self) -> Value {
        json!({"LocalDefaultAddressSpace": "ContrailLocal",
               "GlobalDefaultAddressSpace": "ContrailGlobal"})
    }

    pub async fn request_pool(&self, r: RequestPoolRequest) -> Result<RequestPoolResponse> {
        let opt = |k: &str| {
            r.options
                .as_ref()
                .and_then(|o| o.get(k))
                .map(String::as_str)
                .filter(|s| !s.is_empty())
        };
        let want: Option<IpNet> = if r.pool.is_empty() {
            None
        } else {
            Some(
                r.pool
                    .parse::<IpNet>()
                    .map_err(|_| invalid(format!("bad subnet {:?}", r.pool)))?
                    .trunc(),
            )
        };
        let vn = match (opt("tenant"), opt("network"), want) {
            (Some(t), Some(n), _) => self.vn_by_name(t, n).await?,
            (Some(_), None, _) => {
                return Err(invalid(
                    "IPAM option \"network\" is required (--ipam-opt network=...)",
                ))
            }
            (None, Some(_), _) => {
                return Err(invalid(
                    "IPAM option \"tenant\" is required (--ipam-opt tenant=...)",
                ))
            }
            (None, None, Some(net)) => {
                self.vn_by_subnet(&net, "--ipam-opt tenant=... --ipam-opt network=...")
                    .await?
            }
            (None, None, None) if !r.v6 => return self.unbound_pool().await,
            (None, None, None) => {
                return Err(invalid(
                    "the Contrail IPAM needs the virtual network for IPv6: add --ipam-opt \
                     tenant=<project> --ipam-opt network=<vn> (docker passes --opt to the \
                     network driver only), or --subnet <one of the VN's subnets>",
                ))
            }
        };
        let sub = match want {
            Some(net) => vn.subnet_eq(&net).ok_or_else(|| {
                invalid(format!(
                    "subnet {net} is not a subnet of virtual network {} (its subnets: {})",
                    vn.fq_str(),
                    vn.subnets_str()
                ))
            })?,
            None => vn.first(r.v6).ok_or_else(|| {
                invalid(format!(
                    "virtual network {} has no IPv{} subnet",
                    vn.fq_str(),
                    if r.v6 { 6 } else { 4 }
                ))
            })?,
        };
        if matches!(sub.net, IpNet::V6(_)) != r.v6 {
            return Err(invalid(format!(
                "subnet {} is not IPv{}",
                sub.net,
                if r.v6 { 6 } else { 4 }
            )));
        }
        if !r.sub_pool.is_empty() {
            let sp: IpNet = r
                .sub_pool
                .parse()
                .map_err(|_| invalid(format!("bad --ip-range {:?}", r.sub_pool)))?;
            if !sub.net.contains(&sp) {
                return Err(invalid(format!(
                    "--ip-range {sp} is not inside {}",
                    sub.net
                )));
            }
        }
        let mut data = BTreeMap::new();
        if let Some(g) = sub.gateway_cidr() {
            data.insert(api::GATEWAY_KEY.to_string(), g);
        }
        Ok(RequestPoolResponse {
            pool_id: pool_id(&vn.uuid, &sub.net),
            pool: sub.net.to_string(),
            data,
        })
    }

    /// A pool for `docker network create -d Contrail --ipam-driver Contrail
    /// --opt tenant=T --opt network=N` (no `--ipam-opt`, no `--subnet`):
    /// libnetwork asks the IPAM for the pool *before* the network driver
    /// sees `--opt`, and gives the IPAM only `--ipam-opt`. So the IPAM hands
    /// out `0.0.0.0/0` (which libnetwork exempts from its overlap check, as
    /// for the null IPAM) with a unique placeholder gateway `0.x.y.z/0`, the
    /// token; CreateNetwork gets that gateway in `IPv4Data`, finds the VN
    /// from `--opt` and records the token on the VN; RequestAddress then
    /// allocates in the VN's subnet. `docker network inspect` shows the
    /// placeholder (docker has no way for a driver to update it).
    async fn unbound_pool(&self) -> Result<RequestPoolResponse> {
        let taken: HashSet<Ipv4Addr> = self
            .all_vns()
            .await?
            .iter()
            .flat_map(|(v, _)| annotation_keys(v, POOL_KEY_PREFIX))
            .filter_map(|k| k.parse().ok())
            .collect();
        let now = Instant::now();
        let mut u = lock(&self.unbound);
        u.retain(|_, t| now.duration_since(*t) < RESERVATION_TTL);
        let token = loop {
            let b = Uuid::new_v4().into_bytes();
            let t = Ipv4Addr::new(0, b[0], b[1], b[2]);
            if !t.is_unspecified() && !taken.contains(&t) && !u.contains_key(&t) {
                break t;
            }
        };
        u.insert(token, now);
        let mut data = BTreeMap::new();
        data.insert(api::GATEWAY_KEY.to_string(), format!("{token}/0"));
        Ok(RequestPoolResponse {
            pool_id: format!("{UNBOUND}{token}"),
            pool: "0.0.0.0/0".into(),
            data,
        })
    }

    /// The VN that claimed an unbound pool.
    async fn vn_of_token(&self, token: Ipv4Addr) -> Result<VnInfo> {
        let key = format!("{POOL_KEY_PREFIX}{token}");
        self.all_vns()
            .await?
            .into_iter()
            .find(|(v, _)| annotation(v, &key).is_some())
            .map(|(_, vn)| vn)
            .ok_or_else(|| {
                invalid(format!(
                    "pool {UNBOUND}{token} is not bound to a virtual network: create the network \
                     with --opt tenant=<project> --opt network=<vn>"
                ))
            })
    }

    pub async fn release_pool(&self, r: ReleasePoolRequest) -> Result<()> {
        if let Ok(PoolRef::Unbound(t)) = parse_pool_id(&r.pool_id) {
            lock(&self.unbound).remove(&t);
        }
        Ok(())
    }

    pub async fn request_address(
        &self,
        r: RequestAddressRequest,
    ) -> Result<RequestAddressResponse> {
        let (vn, net) = match parse_pool_id(&r.pool_id)? {
            PoolRef::Vn(id, net) => (self.read_vn(&id).await?, net),
            PoolRef::Unbound(t) => {
                let vn = self.vn_of_token(t).await?;
                let net = vn
                    .first(false)
                    .ok_or_else(|| {
                        invalid(format!(
                            "virtual network {} has no IPv4 subnet",
                            vn.fq_str()
                        ))
                    })?
                    .net;
                (vn, net)
            }
        };
        let vn_id = vn.uuid;
        let sub = vn
            .subnet_eq(&net)
            .ok_or_else(|| {
                invalid(format!(
                    "virtual network {} no longer has subnet {net}",
                    vn.fq_str()
                ))
            })?
            .clone();
        let asked = if r.address.is_empty() {
            None
        } else {
            Some(
                parse_addr(&r.address)
                    .ok_or_else(|| invalid(format!("bad address {:?}", r.address)))?,
            )
        };
        let cidr = |a: IpAddr| format!("{a}/{}", net.prefix_len());
        let gw_request = r
            .options
            .as_ref()
            .and_then(|o| o.get(api::REQUEST_ADDRESS_TYPE))
            .is_some_and(|t| t == api::GATEWAY_KEY);
        if gw_request {
            let gw = sub.gateway.ok_or_else(|| {
                invalid(format!("subnet {net} of {} has no gateway", vn.fq_str()))
            })?;
            if asked.is_some_and(|a| a != gw) {
                return Err(invalid(format!(
                    "the gateway of subnet {net} of {} is {gw}: --gateway must be that or absent",
                    vn.fq_str()
                )));
            }
            return Ok(RequestAddressResponse {
                address: cidr(gw),
                data: BTreeMap::new(),
            });
        }
        let used = self.used_addresses(&vn_id).await?;
        let a = match asked {
            Some(a) => {
                check_assignable(&vn, &sub, a)?;
                if used.contains(&a) {
                    return Err(invalid(format!(
                        "address {a} is already in use in {}",
                        vn.fq_str()
                    )));
                }
                a
            }
            None => sub
                .pick(&used)
                .ok_or_else(|| invalid(format!("subnet {net} of {} is full", vn.fq_str())))?,
        };
        self.reserve(vn_id, a);
        Ok(RequestAddressResponse {
            address: cidr(a),
            data: BTreeMap::new(),
        })
    }

    pub async fn release_address(&self, r: ReleaseAddressRequest) -> Result<()> {
        let vn = match parse_pool_id(&r.pool_id) {
            Ok(PoolRef::Vn(vn, _)) => Some(vn),
            Ok(PoolRef::Unbound(t)) => self.vn_of_token(t).await.ok().map(|v| v.uuid),
            Err(_) => None,
        };
        if let (Some(vn), Some(a)) = (vn, parse_addr(&r.address)) {
            self.unreserve(vn, a);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- networks

    pub fn capabilities(&self) -> Value {
        json!({"Scope": "local", "ConnectivityScope": "local"})
    }

    pub async fn create_network(&self, r: CreateNetworkRequest) -> Result<()> {
        if r.network_id.is_empty() {
            return Err(invalid("NetworkID is empty"));
        }
        let pools: Vec<&IpamData> = r
            .ipv4_data
            .iter()
            .flatten()
            .chain(r.ipv6_data.iter().flatten())
            .collect();
        let parsed: Vec<IpNet> = pools
            .iter()
            .filter(|p| !p.pool.is_empty())
            .map(|p| {
                p.pool
                    .parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|_| invalid(format!("bad pool {:?}", p.pool)))
            })
            .collect::<Result<_>>()?;
        // docker's null IPAM hands out 0.0.0.0/0 (and ::/0): the driver
        // allocates; so does ours before it knows the VN (an unbound pool).
        let real: Vec<IpNet> = parsed.into_iter().filter(|n| n.prefix_len() != 0).collect();
        let token = pools.iter().find_map(|p| unbound_token(p));
        let tenant = generic_opt(&r.options, "tenant");
        let network = generic_opt(&r.options, "network");
        let vn = match (tenant, network) {
            (Some(t), Some(n)) => self.vn_by_name(t, n).await?,
            (None, _) if real.is_empty() => return Err(DriverError::MissingOption("tenant")),
            (_, None) if real.is_empty() => return Err(DriverError::MissingOption("network")),
            // The IPAM chose the VN; find it back by its subnet.
            (t, n) => {
                let missing = if t.is_none() { "tenant" } else { "network" };
                let how =
                    format!("--opt tenant=... --opt network=... (option {missing:?} is missing)");
                let vn = self.vn_by_subnet(&real[0], &how).await?;
                if let Some(t) = t {
                    if vn.fq.get(1).map(String::as_str) != Some(t) {
                        return Err(invalid(format!(
                            "subnet {} belongs to {}, not to tenant {t}",
                            real[0],
                            vn.fq_str()
                        )));
                    }
                }
                if let Some(n) = n {
                    if vn.fq.get(2).map(String::as_str) != Some(n) {
                        return Err(invalid(format!(
                            "subnet {} belongs to {}, not to network {n}",
                            real[0],
                            vn.fq_str()
                        )));
                    }
                }
                vn
            }
        };
        for net in &real {
            if vn.subnet_eq(net).is_none() {
                return Err(invalid(format!(
                    "subnet {net} is not a subnet of virtual network {} (its subnets: {})",
                    vn.fq_str(),
                    vn.subnets_str()
                )));
            }
        }
        if token.is_some() && vn.first(false).is_none() {
            return Err(invalid(format!(
                "virtual network {} has no IPv4 subnet",
                vn.fq_str()
            )));
        }
        self.set_net_annotation(&vn.uuid, &r.network_id, true, token)
            .await?;
        if let Some(t) = token {
            lock(&self.unbound).remove(&t);
        }
        lock(&self.nets).insert(r.network_id, Arc::new(NetInfo { vn }));
        Ok(())
    }

    pub async fn delete_network(&self, r: NetworkRequest) -> Result<()> {
        let cached = lock(&self.nets).remove(&r.network_id);
        let vn = match cached {
            Some(n) => Some(n.vn.uuid),
            None => self.find_net(&r.network_id).await?.map(|n| n.vn.uuid),
        };
        if let Some(vn) = vn {
            self.set_net_annotation(&vn, &r.network_id, false, None)
                .await?;
        }
        Ok(())
    }

    /// Adds or removes `docker-network:<id>` on the VN, with the unbound
    /// pool `docker-pool:<token>` the network claimed (removed with it).
    async fn set_net_annotation(
        &self,
        vn: &Uuid,
        network: &str,
        add: bool,
        token: Option<Ipv4Addr>,
    ) -> Result<()> {
        let _g = self.ann.lock().await;
        let v = match self.vnc.read_opt("virtual-network", vn).await? {
            Some(v) => v,
            None if !add => return Ok(()),
            None => return Err(invalid(format!("virtual network {vn} vanished"))),
        };
        let key = format!("{NET_KEY_PREFIX}{network}");
        let mut kvs: Vec<Value> = v
            .pointer("/annotations/key_value_pair")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let pool_key = token.map(|t| format!("{POOL_KEY_PREFIX}{t}"));
        let has = |k: &str| {
            kvs.iter()
                .any(|kv| kv.get("key").and_then(Value::as_str) == Some(k))
        };
        let had = has(&key) && pool_key.as_deref().is_none_or(has);
        if had == add {
            return Ok(());
        }
        // Ours: the network's key, and the pools it claimed.
        let ours = |kv: &Value| {
            let k = kv.get("key").and_then(Value::as_str).unwrap_or_default();
            k == key
                || (k.starts_with(POOL_KEY_PREFIX)
                    && kv.get("value").and_then(Value::as_str) == Some(network))
        };
        kvs.retain(|kv| !ours(kv));
        if add {
            kvs.push(json!({"key": key, "value": self.cfg.host}));
            if let Some(k) = pool_key {
                kvs.push(json!({"key": k, "value": network}));
            }
        }
        self.vnc
            .update(
                "virtual-network",
                vn,
                json!({"annotations": {"key_value_pair": kvs}}),
            )
            .await?;
        Ok(())
    }

    /// The VN recorded for a docker network (no cache).
    async fn find_net(&self, network: &str) -> Result<Option<NetInfo>> {
        let key = format!("{NET_KEY_PREFIX}{network}");
        Ok(self
            .all_vns()
            .await?
            .into_iter()
            .find(|(v, _)| annotation(v, &key).is_some())
            .map(|(_, vn)| NetInfo { vn }))
    }

    async fn network(&self, network: &str) -> Result<Arc<NetInfo>> {
        if let Some(n) = lock(&self.nets).get(network) {
            return Ok(Arc::clone(n));
        }
        let n = self.find_net(network).await?.ok_or_else(|| {
            invalid(format!(
                "network {network} is not known to the Contrail driver (no virtual network records it)"
            ))
        })?;
        let n = Arc::new(n);
        lock(&self.nets).insert(network.to_string(), Arc::clone(&n));
        Ok(n)
    }

    // ---------------------------------------------------------------- endpoints

    pub async fn create_endpoint(
        &self,
        r: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse> {
        let _g = self.ops.read().await;
        if r.endpoint_id.is_empty() {
            return Err(invalid("EndpointID is empty"));
        }
        let net = self.network(&r.network_id).await?;
        // A retried CreateEndpoint (docker after a failure): start clean.
        self.delete_endpoint_objects(&r.network_id, &r.endpoint_id, Some(&net.vn))
            .await?;
        let vn = net.vn.clone();
        let iface = r.interface.unwrap_or_default();
        let mut reply = EndpointInterface::default();

        let vmi = Uuid::new_v4();
        let mac = if iface.mac_address.is_empty() {
            let m = mac_for(&vmi);
            reply.mac_address = format_mac(&m);
            m
        } else {
            parse_mac(&iface.mac_address)
                .ok_or_else(|| invalid(format!("bad MAC address {:?}", iface.mac_address)))?
        };
        let v4 = if !iface.address.is_empty() {
            let n: Ipv4Net = iface
                .address
                .parse()
                .map_err(|_| invalid(format!("bad IPv4 address {:?}", iface.address)))?;
            let sub = vn.subnet_of(IpAddr::V4(n.addr())).ok_or_else(|| {
                invalid(format!(
                    "address {} is not in any subnet of virtual network {} (its subnets: {})",
                    n.addr(),
                    vn.fq_str(),
                    vn.subnets_str()
                ))
            })?;
            check_assignable(&vn, sub, IpAddr::V4(n.addr()))?;
            Some((n, sub.clone(), true))
        } else if let Some(sub) = vn.first(false) {
            let used = self.used_addresses(&vn.uuid).await?;
            let a = sub
                .pick(&used)
                .ok_or_else(|| invalid(format!("subnet {} of {} is full", sub.net, vn.fq_str())))?;
            let IpAddr::V4(a4) = a else {
                return Err(invalid("IPv4 subnet gave an IPv6 address"));
            };
            let n = Ipv4Net::new(a4, sub.net.prefix_len()).map_err(|e| invalid(e.to_string()))?;
            reply.address = n.to_string();
            self.reserve(vn.uuid, a);
            Some((n, sub.clone(), false))
        } else {
            None
        };
        let v6 = if !iface.address_ipv6.is_empty() {
            let n: Ipv6Net = iface
                .address_ipv6
                .parse()
                .map_err(|_| invalid(format!("bad IPv6 address {:?}", iface.address_ipv6)))?;
            let sub = vn.subnet_of(IpAddr::V6(n.addr())).ok_or_else(|| {
                invalid(format!(
                    "address {} is not in any subnet of virtual network {} (its subnets: {})",
                    n.addr(),
                    vn.fq_str(),
                    vn.subnets_str()
                ))
            })?;
            Some((n, sub.clone()))
        } else {
            None
        };

        let mut made = Made::default();
        let res = self
            .build_endpoint(
                &r.network_id,
                &r.endpoint_id,
                &vn,
                vmi,
                mac,
                &v4,
                &v6,
                &mut made,
            )
            .await;
        if let Some((n, _, _)) = &v4 {
            self.unreserve(vn.uuid, IpAddr::V4(n.addr()));
        }
        match res {
            Ok(info) => {
                lock(&self.eps).insert(r.endpoint_id.clone(), info);
                let empty = reply == EndpointInterface::default();
                Ok(CreateEndpointResponse {
                    interface: (!empty).then_some(reply),
                })
            }
            Err(e) => {
                if let Err(u) = self.undo(&made).await {
                    tracing::error!(endpoint = %r.endpoint_id, "rollback incomplete: {u}");
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_endpoint(
        &self,
        network: &str,
        endpoint: &str,
        vn: &VnInfo,
        vmi: Uuid,
        mac: [u8; 6],
        v4: &Option<(Ipv4Net, Subnet, bool)>,
        v6: &Option<(Ipv6Net, Subnet)>,
        made: &mut Made,
    ) -> Result<EpInfo> {
        let ann = annotations(&self.cfg, network, endpoint);
        let tenant = vn.fq.get(1).cloned().unwrap_or_default();
        let vm_fq = vec![endpoint.to_string()];
        let vmi_fq = vec![
            self.cfg.domain.clone(),
            tenant.clone(),
            endpoint.to_string(),
        ];
        let vm = Uuid::new_v4();
        self.vnc
            .create(
                "virtual-machine",
                json!({"uuid": vm, "fq_name": vm_fq, "display_name": endpoint, "annotations": ann}),
            )
            .await?;
        made.vm = Some(vm);

        let sg_fq = vec![self.cfg.domain.clone(), tenant, "default".to_string()];
        let sg_refs = match self.vnc.fqname_to_id("security-group", &sg_fq).await? {
            Some(sg) => json!([{"to": sg_fq, "uuid": sg, "attr": null}]),
            None => json!([]),
        };
        self.vnc
            .create(
                "virtual-machine-interface",
                json!({
                    "uuid": vmi,
                    "fq_name": vmi_fq,
                    "parent_type": "project",
                    "parent_uuid": vn.project,
                    "display_name": endpoint,
                    "annotations": ann,
                    "virtual_network_refs": [{"to": vn.fq, "uuid": vn.uuid, "attr": null}],
                    "virtual_machine_refs": [{"to": vm_fq, "uuid": vm, "attr": null}],
                    "security_group_refs": sg_refs,
                    "virtual_machine_interface_mac_addresses": {"mac_address": [format_mac(&mac)]},
                }),
            )
            .await?;
        made.vmi = Some(vmi);

        let iip = |addr: IpAddr, sub: &Subnet, fam: &str| {
            json!({
                "uuid": Uuid::new_v4(),
                "fq_name": [format!("{endpoint}-{fam}")],
                "display_name": endpoint,
                "annotations": ann,
                "instance_ip_address": addr.to_string(),
                "instance_ip_family": fam,
                "subnet_uuid": sub.uuid,
                "virtual_network_refs": [{"to": vn.fq, "uuid": vn.uuid, "attr": null}],
                "virtual_machine_interface_refs": [{"to": vmi_fq, "uuid": vmi, "attr": null}],
            })
        };
        if let Some((n, sub, _)) = v4 {
            let body = iip(IpAddr::V4(n.addr()), sub, "v4");
            let r = self.vnc.create("instance-ip", body).await.map_err(|e| {
                if e.status() == Some(hyper::StatusCode::CONFLICT) {
                    invalid(format!(
                        "address {} is already in use: {}",
                        n.addr(),
                        e.server_message()
                    ))
                } else {
                    e.into()
                }
            })?;
            made.iips.extend(vnc_client::uuid_of(&r));
        }
        if let Some((n, sub)) = v6 {
            let r = self
                .vnc
                .create("instance-ip", iip(IpAddr::V6(n.addr()), sub, "v6"))
                .await?;
            made.iips.extend(vnc_client::uuid_of(&r));
        }

        let gw = |sub: &Subnet| sub.gateway;
        let gateway4 = v4.as_ref().and_then(|(_, s, _)| match gw(s) {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        });
        let gateway6 = v6.as_ref().and_then(|(_, s)| match gw(s) {
            Some(IpAddr::V6(g)) => Some(g),
            _ => None,
        });
        let spec = EndpointSpec {
            vmi,
            mac,
            ipv4: v4.as_ref().map(|(n, _, _)| *n),
            gateway4,
            ipv6: v6.as_ref().map(|(n, _)| *n),
            gateway6,
            mtu: self.cfg.mtu,
            network: network.to_string(),
            endpoint: endpoint.to_string(),
        };
        made.backend = Some(vmi);
        let host = self.backend.create(&spec).await?;

        let port = json!({
            "id": vmi.to_string(),
            "instance-id": vm.to_string(),
            "vn-id": vn.uuid.to_string(),
            "vm-project-id": vn.project.to_string(),
            "mac-address": format_mac(&mac),
            "ip-address": spec.ipv4.map_or("0.0.0.0".to_string(), |n| n.addr().to_string()),
            "ip6-address": spec.ipv6.map_or("None".to_string(), |n| n.addr().to_string()),
            "system-name": host.system_name,
            "display-name": endpoint,
            "type": 0,
            "rx-vlan-id": -1,
            "tx-vlan-id": -1,
            "time": unix_time_str(),
        });
        made.port = Some(vmi);
        self.agent
            .call(Method::POST, "/port", Some(&port))
            .await
            .map_err(DriverError::Agent)?;
        Ok(EpInfo {
            network: network.to_string(),
            vn: vn.clone(),
            vm,
            vmi,
            mac,
            ipv4: spec.ipv4,
            gateway4,
            ipv6: spec.ipv6,
            gateway6,
            host,
        })
    }

    /// Removes what a failed CreateEndpoint made, newest first; goes on past
    /// failures (reconcile catches what is left) and returns the first.
    async fn undo(&self, m: &Made) -> Result<()> {
        let mut first = Ok(());
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!("rollback: {e}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        };
        if let Some(p) = m.port {
            keep(self.delete_port(&p).await);
        }
        if let Some(b) = m.backend {
            keep(self.backend.delete(&b).await.map_err(Into::into));
        }
        for i in &m.iips {
            keep(self.vnc.delete("instance-ip", i).await.map_err(Into::into));
        }
        if let Some(v) = m.vmi {
            keep(
                self.vnc
                    .delete("virtual-machine-interface", &v)
                    .await
                    .map_err(Into::into),
            );
        }
        if let Some(v) = m.vm {
            keep(
                self.vnc
                    .delete("virtual-machine", &v)
                    .await
                    .map_err(Into::into),
            );
        }
        first
    }

    async fn delete_port(&self, vmi: &Uuid) -> Result<()> {
        match self
            .agent
            .call(Method::DELETE, &format!("/port/{vmi}"), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(DriverError::Agent(e)),
        }
    }

    /// Deletes every object of an endpoint found by its names: port, host
    /// interface, instance-ips, VMI, VM. Absent pieces are fine.
    async fn delete_endpoint_objects(
        &self,
        network: &str,
        endpoint: &str,
        vn: Option<&VnInfo>,
    ) -> Result<bool> {
        let vmi = match vn.and_then(|v| v.fq.get(1)) {
            Some(tenant) => {
                let fq = vec![
                    self.cfg.domain.clone(),
                    tenant.clone(),
                    endpoint.to_string(),
                ];
                self.vnc
                    .fqname_to_id("virtual-machine-interface", &fq)
                    .await?
            }
            None => {
                // The network is gone from VNC: look the VMI up by its tag.
                let q = ListQuery {
                    detail: true,
                    ..ListQuery::default()
                };
                self.vnc
                    .list("virtual-machine-interface", &q)
                    .await?
                    .iter()
                    .filter(|v| annotation(v, "docker-endpoint") == Some(endpoint))
                    .filter(|v| annotation(v, "docker-network") == Some(network))
                    .find_map(vnc_client::uuid_of)
            }
        };
        // Best effort past failures, so one unreachable piece (the agent)
        // does not keep the rest alive; the first error is returned.
        let mut found = false;
        let mut first = Ok(());
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(endpoint, "delete: {e}");
                if first.is_ok() {
                    first = Err(e);
                }
            }
        };
        if let Some(vmi) = vmi {
            found = true;
            keep(self.delete_port(&vmi).await);
            keep(self.backend.delete(&vmi).await.map_err(Into::into));
        }
        for fam in ["v4", "v6"] {
            let fq = vec![format!("{endpoint}-{fam}")];
            if let Some(i) = self.vnc.fqname_to_id("instance-ip", &fq).await? {
                found = true;
                keep(self.vnc.delete("instance-ip", &i).await.map_err(Into::into));
            }
        }
        if let Some(vmi) = vmi {
            keep(
                self.vnc
                    .delete("virtual-machine-interface", &vmi)
                    .await
                    .map_err(Into::into),
            );
        }
        if let Some(vm) = self
            .vnc
            .fqname_to_id("virtual-machine", &[endpoint.to_string()])
            .await?
        {
            found = true;
            keep(
                self.vnc
                    .delete("virtual-machine", &vm)
                    .await
                    .map_err(Into::into),
            );
        }
        first.map(|()| found)
    }

    pub async fn delete_endpoint(&self, r: EndpointRequest) -> Result<()> {
        let _g = self.ops.read().await;
        let cached = lock(&self.eps).remove(&r.endpoint_id);
        let vn = match cached {
            Some(ep) => Some(ep.vn),
            None => match self.network(&r.network_id).await {
                Ok(n) => Some(n.vn.clone()),
                Err(DriverError::Invalid(_)) => None,
                Err(e) => return Err(e),
            },
        };
        self.delete_endpoint_objects(&r.network_id, &r.endpoint_id, vn.as_ref())
            .await?;
        Ok(())
    }

    fn endpoint(&self, id: &str) -> Result<EpInfo> {
        lock(&self.eps).get(id).cloned().ok_or_else(|| {
            invalid(format!(
                "endpoint {id} is not known to this driver instance (it restarted since CreateEndpoint)"
            ))
        })
    }

    pub async fn endpoint_oper_info(&self, r: EndpointRequest) -> Result<Value> {
        let mut value = serde_json::Map::new();
        if let Ok(ep) = self.endpoint(&r.endpoint_id) {
            value.insert(api::MAC_KEY.into(), json!(format_mac(&ep.mac)));
            if let Some(h) = ep.host.hcn_endpoint {
                value.insert("hnsid".into(), json!(h));
            }
        }
        Ok(json!({ "Value": value }))
    }

    pub async fn join(&self, r: EndpointRequest) -> Result<JoinResponse> {
        let ep = self.endpoint(&r.endpoint_id)?;
        let mut resp = JoinResponse {
            interface_name: ep.host.container_ifname.clone().map(|src| InterfaceName {
                src_name: src,
                dst_prefix: "eth".into(),
            }),
            ..JoinResponse::default()
        };
        if let (Some(n), Some(g)) = (ep.ipv4, ep.gateway4) {
            resp.gateway = g.to_string();
            // A gateway outside the interface's prefix needs a route to it.
            if !n.contains(&g) {
                resp.static_routes.push(StaticRoute {
                    destination: format!("{g}/32"),
                    route_type: 1,
                    next_hop: String::new(),
                });
            }
        }
        if let (Some(n), Some(g)) = (ep.ipv6, ep.gateway6) {
            resp.gateway_ipv6 = g.to_string();
            if !n.contains(&g) {
                resp.static_routes.push(StaticRoute {
                    destination: format!("{g}/128"),
                    route_type: 1,
                    next_hop: String::new(),
                });
            }
        }
        Ok(resp)
    }

    // ---------------------------------------------------------------- reconcile

    /// Removes what no docker endpoint can still use, by this rule: an
    /// endpoint of this host (VNC objects tagged with this host) lives while
    /// its host interface exists; a host interface of ours lives while its
    /// VMI exists; an agent port lives while both do. Docker endpoints whose
    /// container died took their interfaces with them (the netns is gone), so
    /// they are removed; running containers keep theirs. (The old driver
    /// wiped everything at start, breaking running containers.)
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let _g = self.ops.write().await;
        let mut rep = ReconcileReport::default();
        let live: HashSet<Uuid> = self.backend.list().await?.into_iter().collect();
        let q = ListQuery {
            detail: true,
            ..ListQuery::default()
        };
        let vmis = self.vnc.list("virtual-machine-interface", &q).await?;
        let mut kept = HashSet::new();
        let mut kept_eps = HashSet::new();
        for v in vmis.iter().filter(|v| is_ours(v, &self.cfg.host)) {
            let Some(id) = vnc_client::uuid_of(v) else {
                continue;
            };
            let ep = annotation(v, "docker-endpoint")
                .unwrap_or_default()
                .to_string();
            if live.contains(&id) {
                kept.insert(id);
                kept_eps.insert(ep);
                continue;
            }
            self.delete_port(&id).await?;
            for fam in ["v4", "v6"] {
                if let Some(i) = self
                    .vnc
                    .fqname_to_id("instance-ip", &[format!("{ep}-{fam}")])
                    .await?
                {
                    self.vnc.delete("instance-ip", &i).await?;
                }
            }
            self.vnc.delete("virtual-machine-interface", &id).await?;
            lock(&self.eps).remove(&ep);
            rep.endpoints.push(id);
        }
        for id in live.difference(&kept) {
            self.backend.delete(id).await?;
            rep.host_interfaces.push(*id);
        }
        // Leftovers of an interrupted create/delete: VMs and IIPs of ours
        // whose endpoint has no VMI any more.
        for ty in ["instance-ip", "virtual-machine"] {
            for o in self.vnc.list(ty, &q).await? {
                if !is_ours(&o, &self.cfg.host) {
                    continue;
                }
                let ep = annotation(&o, "docker-endpoint").unwrap_or_default();
                if !kept_eps.contains(ep) {
                    if let Some(id) = vnc_client::uuid_of(&o) {
                        self.vnc.delete(ty, &id).await?;
                        rep.objects += 1;
                    }
                }
            }
        }
        // Agent ports of ours without a live endpoint.
        let ports = self
            .agent
            .call(Method::GET, "/ports", None)
            .await
            .map_err(DriverError::Agent)?;
        let ports: Vec<Value> = match ports {
            Value::Array(a) => a,
            Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        };
        let ours_vmis: HashSet<Uuid> = vmis
            .iter()
            .filter(|v| is_ours(v, &self.cfg.host))
            .filter_map(vnc_client::uuid_of)
            .collect();
        let all_vmis: HashSet<Uuid> = vmis.iter().filter_map(vnc_client::uuid_of).collect();
        for p in ports {
            let Some(id) = p
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            else {
                continue;
            };
            // Ours: its VMI is ours, or its VMI is gone and it carried our
            // host interface name for a docker endpoint.
            let ours = ours_vmis.contains(&id)
                || (!all_vmis.contains(&id)
                    && p.get("system-name").and_then(Value::as_str)
                        == Some(crate::backend::tap_name(&id).as_str()));
            if ours && !kept.contains(&id) {
                self.delete_port(&id).await?;
                rep.ports.push(id);
            }
        }
        Ok(rep)
    }
}

fn check_assignable(vn: &VnInfo, sub: &Subnet, a: IpAddr) -> Result<()> {
    if !sub.net.contains(&a) {
        return Err(invalid(format!(
            "address {a} is not in subnet {} of virtual network {}",
            sub.net,
            vn.fq_str()
        )));
    }
    if !sub.assignable(a) {
        return Err(invalid(format!(
            "address {a} is reserved in subnet {} of virtual network {} (network, broadcast, \
             gateway, DNS or outside the allocation pools)",
            sub.net,
            vn.fq_str()
        )));
    }
    Ok(())
}

fn unix_time_str() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().to_string())
        .unwrap_or_default()
}

/// What CreateEndpoint made so far (for rollback).
#[derive(Debug, Default)]
struct Made {
    vm: Option<Uuid>,
    vmi: Option<Uuid>,
    iips: Vec<Uuid>,
    backend: Option<Uuid>,
    port: Option<Uuid>,
}
