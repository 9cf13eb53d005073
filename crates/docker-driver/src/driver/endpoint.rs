//! Endpoints: the VNC objects, the host interface and the agent port of
//! each container interface; Join and operational info.

use std::net::IpAddr;

use hyper::Method;
use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::ListQuery;

use super::*;
use crate::api::{self};
use crate::backend::{ContainerNetworking, EndpointSpec};
use crate::vn::{Subnet, VnInfo};

impl<B: ContainerNetworking> Driver<B> {
    pub async fn create_endpoint(
        &self,
        r: CreateEndpointRequest,
    ) -> Result<CreateEndpointResponse> {
        r.check().map_err(invalid)?;
        let _g = self.ops.read().await;
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
        // What each family gets: the address docker gives (from our IPAM's
        // reservation, another IPAM or --ip), or one the config API picks
        // in the VN's first subnet of that family (IPv4 only: IPv6 only
        // when docker asks for it).
        let v4 = if !iface.address.is_empty() {
            let n: Ipv4Net = iface
                .address
                .parse()
                .map_err(|_| invalid(format!("bad IPv4 address {:?}", iface.address)))?;
            Some((
                Some(IpAddr::V4(n.addr())),
                self.subnet_for(&vn, n.addr().into())?,
            ))
        } else {
            vn.first(false).map(|s| (None, s.clone()))
        };
        let v6 = if !iface.address_ipv6.is_empty() {
            let n: Ipv6Net = iface
                .address_ipv6
                .parse()
                .map_err(|_| invalid(format!("bad IPv6 address {:?}", iface.address_ipv6)))?;
            Some((
                Some(IpAddr::V6(n.addr())),
                self.subnet_for(&vn, n.addr().into())?,
            ))
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
        match res {
            Ok(info) => {
                if v4.as_ref().is_some_and(|(want, _)| want.is_none()) {
                    reply.address = info.ipv4.map(|n| n.to_string()).unwrap_or_default();
                }
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
        v4: &Option<(Option<IpAddr>, Subnet)>,
        v6: &Option<(Option<IpAddr>, Subnet)>,
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

        let mut ipv4 = None;
        if let Some((want, sub)) = v4 {
            let (u, a) = self
                .endpoint_iip(vn, sub, *want, &vmi, &vmi_fq, endpoint, &ann)
                .await?;
            made.iips.push(u);
            let IpAddr::V4(a) = a else {
                return Err(invalid(format!(
                    "the config API gave {a} for an IPv4 subnet"
                )));
            };
            ipv4 = Some(Ipv4Net::new(a, sub.net.prefix_len()).map_err(|e| invalid(e.to_string()))?);
        }
        let mut ipv6 = None;
        if let Some((want, sub)) = v6 {
            let (u, a) = self
                .endpoint_iip(vn, sub, *want, &vmi, &vmi_fq, endpoint, &ann)
                .await?;
            made.iips.push(u);
            let IpAddr::V6(a) = a else {
                return Err(invalid(format!(
                    "the config API gave {a} for an IPv6 subnet"
                )));
            };
            ipv6 = Some(Ipv6Net::new(a, sub.net.prefix_len()).map_err(|e| invalid(e.to_string()))?);
        }

        let gateway4 = v4.as_ref().and_then(|(_, s)| match s.gateway {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        });
        let gateway6 = v6.as_ref().and_then(|(_, s)| match s.gateway {
            Some(IpAddr::V6(g)) => Some(g),
            _ => None,
        });
        let spec = EndpointSpec {
            vmi,
            mac,
            ipv4,
            gateway4,
            ipv6,
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

    pub(super) async fn delete_port(&self, vmi: &Uuid) -> Result<()> {
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
        // Its instance-ips (named by their uuids), and those of a driver
        // before this one (named `<endpoint>-v4`, `-v6`).
        let mut iips = match vmi {
            Some(v) => self.iips_of_vmi(&v).await?,
            None => Vec::new(),
        };
        for fam in ["v4", "v6"] {
            let fq = vec![format!("{endpoint}-{fam}")];
            iips.extend(self.vnc.fqname_to_id("instance-ip", &fq).await?);
        }
        for i in iips {
            found = true;
            keep(self.vnc.delete("instance-ip", &i).await.map_err(Into::into));
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
        r.check().map_err(invalid)?;
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
        r.check().map_err(invalid)?;
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
        r.check().map_err(invalid)?;
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
