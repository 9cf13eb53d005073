//! Reconcile: remove what no docker endpoint can still use.

use std::collections::HashSet;

use hyper::Method;
use serde_json::Value;
use uuid::Uuid;
use vnc_client::ListQuery;

use super::*;
use crate::backend::ContainerNetworking;

impl<B: ContainerNetworking> Driver<B> {
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
            let mut iips = self.iips_of_vmi(&id).await?;
            for fam in ["v4", "v6"] {
                iips.extend(
                    self.vnc
                        .fqname_to_id("instance-ip", &[format!("{ep}-{fam}")])
                        .await?,
                );
            }
            for i in iips {
                self.vnc.delete("instance-ip", &i).await?;
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
        // whose endpoint has no VMI any more, and address reservations
        // nobody claimed in time (docker died between RequestAddress and
        // CreateEndpoint).
        let now = super::address::unix_secs();
        for ty in ["instance-ip", "virtual-machine"] {
            for o in self.vnc.list(ty, &q).await? {
                if !is_ours(&o, &self.cfg.host) {
                    continue;
                }
                let stale = if super::address::is_reservation(&o, &self.cfg.host) {
                    annotation(&o, super::address::RESERVATION_KEY)
                        .and_then(|t| t.parse::<u64>().ok())
                        .is_none_or(|t| now.saturating_sub(t) > RESERVATION_TTL.as_secs())
                } else {
                    let ep = annotation(&o, "docker-endpoint").unwrap_or_default();
                    !kept_eps.contains(ep)
                };
                if stale {
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
