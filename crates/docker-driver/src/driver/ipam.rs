//! The IPAM driver: pools from virtual-network subnets, addresses.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ipnet::IpNet;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::api::{self};
use crate::backend::ContainerNetworking;
use crate::vn::VnInfo;

impl<B: ContainerNetworking> Driver<B> {
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
        let want: Option<IpNet> = if r.pool.is_empty() || r.pool == api::ANY_SUBNET {
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
        if let PoolRef::Unbound(t) = parse_pool_id(&r.pool_id)? {
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
        if let Some(a) = asked {
            if !sub.net.contains(&a) {
                return Err(invalid(format!(
                    "address {a} is not in subnet {net} of virtual network {}",
                    vn.fq_str()
                )));
            }
        }
        // The config API allocates (or checks the asked address) and keeps
        // it as a reservation until CreateEndpoint claims it.
        let a = self.reserve(&vn, &sub, &r.pool_id, asked).await?;
        Ok(RequestAddressResponse {
            address: cidr(a),
            data: BTreeMap::new(),
        })
    }

    pub async fn release_address(&self, r: ReleaseAddressRequest) -> Result<()> {
        let pool = parse_pool_id(&r.pool_id)?;
        let a = parse_addr(&r.address)
            .ok_or_else(|| invalid(format!("bad address {:?}", r.address)))?;
        let vn = match pool {
            PoolRef::Vn(vn, _) => Some(vn),
            // A pool whose network is gone holds no reservation any more.
            PoolRef::Unbound(t) => self.vn_of_token(t).await.ok().map(|v| v.uuid),
        };
        if let Some(vn) = vn {
            self.unreserve(&vn, a).await?;
        }
        Ok(())
    }
}
