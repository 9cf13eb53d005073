//! Addresses: the config API's allocator is the only one.
//!
//! Every container address is an instance-ip made by the config API, which
//! picks it (its allocator honours `addr_from_start`, allocation pools,
//! `subnet_uuid` and its own hints) or checks a requested one (in the
//! subnet, not the gateway or DNS address, not in use). The driver never
//! lists addresses and scans for a free one.
//!
//! Docker asks the IPAM driver for an address (`RequestAddress`) before it
//! creates the endpoint, which names no endpoint yet. So `RequestAddress`
//! makes an instance-ip that refers only to the VN, a *reservation*
//! (annotated `docker-reservation` = its creation time), and
//! `CreateEndpoint` claims it: adds its VMI reference and the endpoint's
//! annotations. `ReleaseAddress` deletes an unclaimed reservation; reconcile
//! deletes reservations nobody claimed within [`RESERVATION_TTL`]. An
//! address from another IPAM (or `--ip` with `--ipam-driver null`) is
//! created as an instance-ip with that address at `CreateEndpoint`; with no
//! address at all, the config API picks one there.

use std::net::IpAddr;

use serde_json::{json, Value};
use uuid::Uuid;
use vnc_client::ListQuery;

use super::*;
use crate::backend::ContainerNetworking;
use crate::vn::{Subnet, VnInfo};

/// Annotation key marking an unclaimed reservation (value: unix seconds).
pub const RESERVATION_KEY: &str = "docker-reservation";

pub(super) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn family(a: Option<IpAddr>, sub: &Subnet) -> &'static str {
    let v6 = a.map_or(matches!(sub.net, ipnet::IpNet::V6(_)), |a| a.is_ipv6());
    if v6 {
        "v6"
    } else {
        "v4"
    }
}

/// The reservation of `a` in VN `vn`, if it is one of ours and unclaimed.
pub(super) fn is_reservation(iip: &Value, host: &str) -> bool {
    is_ours(iip, host)
        && annotation(iip, RESERVATION_KEY).is_some()
        && iip
            .get("virtual_machine_interface_refs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// The address of an instance-ip the config API returned.
fn address_of(iip: &Value) -> Result<IpAddr> {
    iip.get("instance_ip_address")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("the config API returned an instance-ip without an address"))
}

/// A config API refusal of an address, told as the driver's error.
fn refused(a: Option<IpAddr>, vn: &VnInfo, e: vnc_client::Error) -> DriverError {
    match e.status() {
        Some(s) if s.is_client_error() => {
            let what = a.map_or_else(|| "an address".to_string(), |a| format!("address {a}"));
            invalid(format!(
                "{what} in virtual network {}: {}",
                vn.fq_str(),
                e.server_message()
            ))
        }
        _ => e.into(),
    }
}

impl<B: ContainerNetworking> Driver<B> {
    /// The instance-ips of VN `vn` holding address `a`.
    pub(super) async fn iips_with(&self, vn: &Uuid, a: IpAddr) -> Result<Vec<Value>> {
        let q = ListQuery {
            back_ref: Some(*vn),
            detail: true,
            filters: vec![("instance_ip_address".into(), json!(a.to_string()))],
            ..ListQuery::default()
        };
        Ok(self
            .vnc
            .list("instance-ip", &q)
            .await?
            .into_iter()
            .filter(|i| vn_ref(i) == Some(*vn))
            .collect())
    }

    /// `RequestAddress`: a reservation in `sub` of `vn`, at `want` or where
    /// the config API puts it. Returns the address.
    pub(super) async fn reserve(
        &self,
        vn: &VnInfo,
        sub: &Subnet,
        pool: &str,
        want: Option<IpAddr>,
    ) -> Result<IpAddr> {
        let u = Uuid::new_v4();
        let mut body = json!({
            "uuid": u,
            "fq_name": [u],
            "display_name": format!("docker address reservation ({pool})"),
            "annotations": {"key_value_pair": [
                {"key": "owner", "value": OWNER},
                {"key": "host", "value": self.cfg.host},
                {"key": "docker-pool", "value": pool},
                {"key": RESERVATION_KEY, "value": unix_secs().to_string()},
            ]},
            "instance_ip_family": family(want, sub),
            "virtual_network_refs": [{"to": vn.fq, "uuid": vn.uuid, "attr": null}],
        });
        if let Some(s) = &sub.uuid {
            body["subnet_uuid"] = json!(s);
        }
        if let Some(a) = want {
            body["instance_ip_address"] = json!(a.to_string());
        }
        let r = self
            .vnc
            .create("instance-ip", body)
            .await
            .map_err(|e| refused(want, vn, e))?;
        address_of(&r)
    }

    /// `ReleaseAddress`: deletes our unclaimed reservation of `a` (a claimed
    /// one belongs to its endpoint, whose delete removes it).
    pub(super) async fn unreserve(&self, vn: &Uuid, a: IpAddr) -> Result<()> {
        for i in self.iips_with(vn, a).await? {
            if is_reservation(&i, &self.cfg.host) {
                if let Some(u) = vnc_client::uuid_of(&i) {
                    self.vnc.delete("instance-ip", &u).await?;
                }
            }
        }
        Ok(())
    }

    /// The instance-ip of an endpoint's address: its reservation claimed
    /// (address `want` from our IPAM), else a new one at `want`, else a new
    /// one wherever the config API puts it in `sub`. Returns its uuid and
    /// address.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn endpoint_iip(
        &self,
        vn: &VnInfo,
        sub: &Subnet,
        want: Option<IpAddr>,
        vmi: &Uuid,
        vmi_fq: &[String],
        endpoint: &str,
        ann: &Value,
    ) -> Result<(Uuid, IpAddr)> {
        let vmi_ref = json!([{"to": vmi_fq, "uuid": vmi, "attr": null}]);
        if let Some(a) = want {
            let mine = self
                .iips_with(&vn.uuid, a)
                .await?
                .into_iter()
                .find(|i| is_reservation(i, &self.cfg.host));
            if let Some(u) = mine.as_ref().and_then(vnc_client::uuid_of) {
                self.vnc
                    .update(
                        "instance-ip",
                        &u,
                        json!({"virtual_machine_interface_refs": vmi_ref,
                               "annotations": ann, "display_name": endpoint}),
                    )
                    .await?;
                return Ok((u, a));
            }
        }
        let u = Uuid::new_v4();
        let mut body = json!({
            "uuid": u,
            "fq_name": [u],
            "display_name": endpoint,
            "annotations": ann,
            "instance_ip_family": family(want, sub),
            "virtual_network_refs": [{"to": vn.fq, "uuid": vn.uuid, "attr": null}],
            "virtual_machine_interface_refs": vmi_ref,
        });
        if let Some(s) = &sub.uuid {
            body["subnet_uuid"] = json!(s);
        }
        if let Some(a) = want {
            body["instance_ip_address"] = json!(a.to_string());
        }
        let r = self
            .vnc
            .create("instance-ip", body)
            .await
            .map_err(|e| refused(want, vn, e))?;
        Ok((u, address_of(&r)?))
    }

    /// The subnet of `vn` holding `a` (a clear error naming the VN's
    /// subnets otherwise; the config API checks the rest).
    pub(super) fn subnet_for(&self, vn: &VnInfo, a: IpAddr) -> Result<Subnet> {
        vn.subnet_of(a).cloned().ok_or_else(|| {
            invalid(format!(
                "address {a} is not in any subnet of virtual network {} (its subnets: {})",
                vn.fq_str(),
                vn.subnets_str()
            ))
        })
    }

    /// The instance-ips referring to VMI `vmi` (its back-references).
    pub(super) async fn iips_of_vmi(&self, vmi: &Uuid) -> Result<Vec<Uuid>> {
        let Some(v) = self.vnc.read_opt("virtual-machine-interface", vmi).await? else {
            return Ok(Vec::new());
        };
        Ok(v.get("instance_ip_back_refs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(vnc_client::uuid_of)
            .collect())
    }
}

/// The VN an instance-ip refers to.
fn vn_ref(iip: &Value) -> Option<Uuid> {
    iip.pointer("/virtual_network_refs/0")
        .and_then(vnc_client::uuid_of)
}
