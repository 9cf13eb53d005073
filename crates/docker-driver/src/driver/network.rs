//! Docker networks: which virtual network each one is, recorded on the VN.

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::backend::ContainerNetworking;

impl<B: ContainerNetworking> Driver<B> {
    pub fn capabilities(&self) -> Value {
        json!({"Scope": "local", "ConnectivityScope": "local"})
    }

    pub async fn create_network(&self, r: CreateNetworkRequest) -> Result<()> {
        api::check_docker_id(&r.network_id, "NetworkID").map_err(invalid)?;
        let pools: Vec<&IpamData> = r
            .ipv4_data
            .iter()
            .flatten()
            .chain(r.ipv6_data.iter().flatten())
            .collect();
        let mut parsed = Vec::with_capacity(pools.len());
        for p in &pools {
            if let Some(n) = check_ipam_data(p)? {
                parsed.push(n);
            }
        }
        // docker's null IPAM hands out 0.0.0.0/0 (and ::/0), upstream's
        // Windows users passed --subnet 0.0.0.0/32 through the `windows`
        // IPAM: "any subnet of the VN", the driver allocates; so does our
        // IPAM before it knows the VN (an unbound pool).
        let real: Vec<IpNet> = parsed
            .into_iter()
            .filter(|n| n.prefix_len() != 0 && !is_any_subnet(n))
            .collect();
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
        r.check().map_err(invalid)?;
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

    pub(super) async fn network(&self, network: &str) -> Result<Arc<NetInfo>> {
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
}

/// `--subnet 0.0.0.0/32`: any subnet of the VN.
pub(super) fn is_any_subnet(n: &IpNet) -> bool {
    n.to_string() == api::ANY_SUBNET
}

/// One `IPv4Data` / `IPv6Data` entry of CreateNetwork: its pool must be a
/// prefix, its gateway an address (CIDR form, as docker sends it) inside
/// the pool, its auxiliary addresses addresses. Returns the pool (None when
/// docker gave none).
fn check_ipam_data(d: &IpamData) -> Result<Option<IpNet>> {
    let pool = if d.pool.is_empty() {
        None
    } else {
        Some(
            d.pool
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|_| invalid(format!("bad pool {:?}: not a prefix", d.pool)))?,
        )
    };
    let addr = |s: &str, what: &str| -> Result<std::net::IpAddr> {
        let a = s
            .parse::<IpNet>()
            .map(|n| n.addr())
            .or_else(|_| s.parse())
            .map_err(|_| invalid(format!("bad {what} {s:?}: not an IP address")))?;
        if let Some(p) = pool.filter(|p| !is_any_subnet(p)) {
            if !p.contains(&a) {
                return Err(invalid(format!("{what} {s} is not inside pool {p}")));
            }
        }
        Ok(a)
    };
    if !d.gateway.is_empty() {
        addr(&d.gateway, "gateway")?;
    }
    for (k, v) in d.aux_addresses.iter().flatten() {
        addr(v, &format!("auxiliary address {k:?}"))?;
    }
    Ok(pool)
}
