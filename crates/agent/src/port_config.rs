//! The port API's view of the rest of the agent ([`PortCheck`]): what a
//! port must agree with in the configuration before it is accepted, and
//! the live state `GET /port/<uuid>` reports.
//!
//! A port's addresses must lie in its virtual network's subnets (a port
//! outside them would fail in the datapath at every change), and must be
//! its VMI's instance-ips when the config has them: the config API's
//! allocator is the one source of addresses, so a driver that disagrees
//! with it is told so, with both addresses, instead of the agent choosing.
//!
//! With control nodes (`--config-source controller`) a port whose virtual
//! network the agent has not seen yet is accepted and kept, as upstream's
//! agent does: the config arrives after the port (the agent asks for the
//! VM's config once it knows the port). It is programmed when the network
//! arrives; until then `GET /port` says why it is not live. The embedded
//! store is local and complete, so there such a port is refused (404).

use crate::model::{self, Model};
use crate::ports::{LiveAddr, LivePort, PortCheck, PortRecord, TYPE_REMOTE};
use crate::source::ConfigView;
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;
use vnc_api::Snapshot;

/// [`PortCheck`] over the config (the embedded store or the controller's
/// view) and, when the agent runs, its model.
pub struct ConfigPorts {
    store: Arc<dyn ConfigView>,
    model: Option<watch::Receiver<Arc<Model>>>,
}

impl ConfigPorts {
    /// Without a running agent (in-process tests of the API): the live
    /// state is derived from the config the same way the agent derives it.
    pub fn new<C: ConfigView>(store: Arc<C>) -> ConfigPorts {
        ConfigPorts { store, model: None }
    }

    /// The running agent: the live state is the model it programs.
    pub fn with_model(
        store: Arc<dyn ConfigView>,
        model: watch::Receiver<Arc<Model>>,
    ) -> ConfigPorts {
        ConfigPorts {
            store,
            model: Some(model),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, (StatusCode, String)> {
        self.store.snapshot().map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("config store: {e:#}"),
            )
        })
    }
}

fn fq(obj: &Value) -> String {
    model::fq_name(obj)
}

/// The addresses the config gives VMI `vmi` (its instance-ips), with the
/// instance-ip uuids.
fn instance_ips(snap: &Snapshot, vmi: &str) -> Vec<(IpAddr, Uuid)> {
    let mut out = Vec::new();
    for (u, iip) in snap.iter("instance-ip") {
        let mine = model::refs(iip, "virtual_machine_interface_refs")
            .iter()
            .any(|(r, _)| r.is_some_and(|r| r.to_string() == vmi));
        if !mine {
            continue;
        }
        if let Some(a) = iip
            .get("instance_ip_address")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            out.push((a, *u));
        }
    }
    out
}

/// What `rec` must agree with in `snap`: its VN exists (unless
/// `vn_may_follow`: the config comes after the port, see the module doc),
/// its addresses are in the VN's subnets and are its VMI's instance-ips.
pub fn check_against(
    snap: &Snapshot,
    rec: &PortRecord,
    vn_may_follow: bool,
) -> Result<(), (StatusCode, String)> {
    let vn = Uuid::parse_str(&rec.vn_id).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("vn-id: not a UUID: {:?}", rec.vn_id),
        )
    })?;
    if vn.is_nil() && rec.port_type == TYPE_REMOTE {
        return Ok(());
    }
    let Some(vn_obj) = snap.get("virtual-network", &vn) else {
        if !vn_may_follow {
            return Err((
                StatusCode::NOT_FOUND,
                format!("vn-id: virtual-network {vn} does not exist"),
            ));
        }
        tracing::info!(port = %rec.id, vn = %vn, "port for a virtual network not in the config yet: kept, programmed when the network arrives");
        return Ok(());
    };
    let subnets = model::vn_subnets(vn_obj);
    let given: Vec<IpAddr> = rec
        .ip4()
        .map(IpAddr::V4)
        .into_iter()
        .chain(rec.ip6().map(IpAddr::V6))
        .collect();
    for a in &given {
        if !subnets.iter().any(|s| s.contains(*a)) {
            let list: Vec<String> = subnets
                .iter()
                .map(|s| format!("{}/{}", s.prefix, s.plen))
                .collect();
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "{}: {a} is not inside any subnet of virtual-network {} (its subnets: {})",
                    if a.is_ipv4() {
                        "ip-address"
                    } else {
                        "ip6-address"
                    },
                    fq(vn_obj),
                    if list.is_empty() {
                        "none".into()
                    } else {
                        list.join(", ")
                    }
                ),
            ));
        }
    }
    let iips = instance_ips(snap, &rec.id);
    for a in &given {
        let same_family: Vec<&(IpAddr, Uuid)> = iips
            .iter()
            .filter(|(i, _)| i.is_ipv4() == a.is_ipv4())
            .collect();
        if !same_family.is_empty() && !same_family.iter().any(|(i, _)| i == a) {
            let theirs: Vec<String> = same_family
                .iter()
                .map(|(i, u)| format!("{i} (instance-ip {u})"))
                .collect();
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "{}: the port says {a} but the config gives virtual-machine-interface {} the address {}: \
                     the config API allocates addresses; send that one (or 0.0.0.0)",
                    if a.is_ipv4() { "ip-address" } else { "ip6-address" },
                    rec.id,
                    theirs.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The live state of port `id` in `m`.
pub fn live_in(m: &Model, id: &Uuid) -> Result<LivePort, String> {
    if let Some(p) = m.problems.iter().find(|p| p.uuid == *id) {
        return Err(p.reason.clone());
    }
    let p = m
        .ports
        .values()
        .find(|p| p.uuid == *id)
        .ok_or("not programmed yet")?;
    let vn = m
        .vns
        .get(&p.vn)
        .ok_or_else(|| format!("virtual-network {} not in the config", p.vn))?;
    let sub = |a: IpAddr| vn.subnets.iter().find(|s| s.contains(a));
    let v4 = p.ip4.and_then(|a| {
        let s = sub(IpAddr::V4(a))?;
        let v4 = |x: Option<IpAddr>| match x {
            Some(IpAddr::V4(x)) => Some(x),
            _ => None,
        };
        Some(LiveAddr {
            addr: a,
            plen: s.plen,
            gateway: v4(s.gateway),
            dns: v4(s.dns),
        })
    });
    let v6 = p.ip6.and_then(|a| {
        let s = sub(IpAddr::V6(a))?;
        let v6 = |x: Option<IpAddr>| match x {
            Some(IpAddr::V6(x)) => Some(x),
            _ => None,
        };
        Some(LiveAddr {
            addr: a,
            plen: s.plen,
            gateway: v6(s.gateway),
            dns: v6(s.dns),
        })
    });
    if v4.is_none() && v6.is_none() {
        // Upstream: "Missing IPAM entry for request. Retry".
        return Err("no address in a subnet of its virtual network yet".into());
    }
    Ok(LivePort { v4, v6 })
}

impl PortCheck for ConfigPorts {
    fn check(&self, rec: &PortRecord) -> Result<(), (StatusCode, String)> {
        check_against(&self.snapshot()?, rec, self.store.arrives_after_ports())
    }

    fn live(&self, rec: &PortRecord) -> Result<LivePort, String> {
        let id = Uuid::parse_str(&rec.id).map_err(|_| "bad id".to_string())?;
        match &self.model {
            Some(rx) => {
                let m = Arc::clone(&rx.borrow());
                live_in(&m, &id)
            }
            None => {
                let snap = self.snapshot().map_err(|(_, e)| e)?;
                let one = BTreeMap::from([(id, rec.clone())]);
                let m = model::build(
                    &snap,
                    &one,
                    &mut BTreeMap::new(),
                    model::Limits {
                        max_vifs: u16::MAX,
                        max_vrfs: dp_core::sizing::DEFAULT_VRFS,
                    },
                );
                live_in(&m, &id)
            }
        }
    }

    fn config(&self) -> Option<Snapshot> {
        ConfigView::snapshot(&*self.store).ok()
    }
}
