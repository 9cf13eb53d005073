//! Introspect (upstream's agent serves its views on 8085): JSON views of
//! ports, virtual networks, VRFs, routes, flows and the ksync channel, and
//! Prometheus `/metrics` (flows, flow-setup rate, datapath drops by reason,
//! per-vif counters, read over ksync at scrape time).

use crate::flows::FlowEngine;
use crate::ksync::KsyncClient;
use crate::model::Model;
use crate::status::{lock, FlowView, SharedRef};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dp_core::flow::table::{VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD, VR_FLOW_ACTION_HOLD};
use sandesh::{FlowOp, Message, SandeshOp, VrDropStatsReq, VrFlowTableData};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Introspect {
    pub model: watch::Receiver<Arc<Model>>,
    pub shared: SharedRef,
    pub ksync_path: PathBuf,
    /// The controller's status, with `--config-source controller`.
    pub controller: Option<crate::controller::StatusRef>,
}

#[derive(Clone)]
struct AppState {
    i: Introspect,
    /// (when, flow setups) at the previous scrape, for the rate.
    last: Arc<Mutex<Option<(Instant, u64)>>>,
}

fn action_name(a: u16) -> &'static str {
    match a {
        VR_FLOW_ACTION_DROP => "drop",
        VR_FLOW_ACTION_HOLD => "hold",
        VR_FLOW_ACTION_FORWARD => "forward",
        _ => "nat",
    }
}

fn ip_of(family: u8, a: &[u8; 16]) -> String {
    if family == dp_core::flow::table::AF_INET6 {
        std::net::Ipv6Addr::from(*a).to_string()
    } else {
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
    }
}

/// The tracked flows, for `/flows` (at most 10 000, lowest index first).
pub fn flow_views(e: &FlowEngine) -> Vec<FlowView> {
    e.tracked
        .values()
        .take(10_000)
        .map(|t| FlowView {
            index: t.fwd,
            gen: t.fgen,
            reverse: t.rev.map(|(r, _)| r),
            proto: t.fkey.proto,
            src: ip_of(t.fkey.family, &t.fkey.src()),
            dst: ip_of(t.fkey.family, &t.fkey.dst()),
            sport: t.fkey.sport(),
            dport: t.fkey.dport(),
            nh: t.fkey.nh_id(),
            action: action_name(t.action),
            why: t.why.clone(),
        })
        .collect()
}

pub fn router(i: Introspect) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/ports", get(ports))
        .route("/vns", get(vns))
        .route("/vrfs", get(vrfs))
        .route("/routes", get(routes))
        .route("/flows", get(flows))
        .route("/ksync", get(ksync))
        .route("/controller", get(controller))
        .route("/remote-routes", get(remote_routes))
        .route("/metrics", get(metrics))
        .with_state(AppState {
            i,
            last: Arc::new(Mutex::new(None)),
        })
}

async fn index() -> Json<Value> {
    Json(
        json!({"views": ["/ports", "/vns", "/vrfs", "/routes?vrf=N", "/flows", "/ksync", "/controller", "/remote-routes", "/metrics"]}),
    )
}

/// The XMPP sessions to the control nodes and the config learned.
async fn controller(State(s): State<AppState>) -> Json<Value> {
    match &s.i.controller {
        Some(c) => {
            let st = c.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Json(json!({"mode": "controller", "status": st}))
        }
        None => Json(json!({"mode": "embedded"})),
    }
}

/// The routes learned from the control nodes, per routing instance.
async fn remote_routes(State(s): State<AppState>) -> Json<Value> {
    let m = Arc::clone(&s.i.model.borrow());
    let mut out = serde_json::Map::new();
    for (ri, routes) in &m.rib.ris {
        let list: Vec<Value> = routes
            .iter()
            .map(|(id, r)| {
                let key = match id {
                    crate::rib::RouteId::Inet(ip, l) => json!({"prefix": format!("{ip}/{l}")}),
                    crate::rib::RouteId::Evpn(m, ip) => json!({"mac": mac(m), "ip": ip}),
                };
                json!({
                    "route": key, "vn": r.vn, "stale": r.stale, "security_groups": r.sgs,
                    "next_hops": r.nhs.iter().map(|n| json!({
                        "address": n.addr, "label": n.label, "vni": n.vni,
                        "encap": n.encaps.iter().map(|e| e.name()).collect::<Vec<_>>(),
                        "vn": n.vn,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        out.insert(ri.clone(), Value::Array(list));
    }
    Json(Value::Object(out))
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn ports(State(s): State<AppState>) -> Json<Value> {
    let m = Arc::clone(&s.i.model.borrow());
    let ports: Vec<Value> = m
        .ports
        .values()
        .map(|p| {
            json!({
                "uuid": p.uuid, "vif": p.vif, "name": p.name, "mac": mac(&p.mac),
                "ip": p.ip4, "ip6": p.ip6, "vn": m.vns.get(&p.vn).map(|v| v.fq_name.clone()),
                "vrf": p.vrf, "security_groups": p.sgs, "policy": p.policy, "dhcp": p.dhcp,
                "mtu": p.mtu, "display_name": p.display_name,
            })
        })
        .collect();
    let problems: Vec<Value> = m
        .problems
        .iter()
        .map(|p| json!({"uuid": p.uuid, "reason": p.reason}))
        .collect();
    Json(json!({"ports": ports, "not_programmed": problems}))
}

async fn vns(State(s): State<AppState>) -> Json<Value> {
    let m = Arc::clone(&s.i.model.borrow());
    let vns: Vec<Value> = m
        .vns
        .values()
        .map(|v| {
            let subnets: Vec<Value> = v
                .subnets
                .iter()
                .map(|sn| json!({"prefix": format!("{}/{}", sn.prefix, sn.plen), "gateway": sn.gateway, "dns": sn.dns, "dhcp": sn.dhcp}))
                .collect();
            json!({"uuid": v.uuid, "fq_name": v.fq_name, "vrf": v.vrf, "vni": v.vni, "subnets": subnets, "has_policy": v.has_policy, "routing_instance": v.ri})
        })
        .collect();
    let refused: Vec<Value> = m
        .vn_problems
        .iter()
        .map(|p| json!({"uuid": p.uuid, "fq_name": p.fq_name, "reason": p.reason}))
        .collect();
    Json(json!({"virtual_networks": vns, "not_programmed": refused}))
}

async fn vrfs(State(s): State<AppState>) -> Json<Value> {
    let m = Arc::clone(&s.i.model.borrow());
    let applied = Arc::clone(&lock(&s.i.shared).applied);
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for k in applied.routes.keys() {
        *counts.entry(k.vrf).or_default() += 1;
    }
    let v: Vec<Value> = m
        .vrf_members
        .iter()
        .map(|(vrf, members)| {
            let names: Vec<String> = members
                .iter()
                .filter_map(|u| m.vns.get(u).map(|v| v.fq_name.clone()))
                .collect();
            json!({"vrf": vrf, "vn": m.vn_by_vrf(*vrf).map(|v| v.fq_name.clone()), "routes_from": names, "routes": counts.get(vrf).copied().unwrap_or(0)})
        })
        .collect();
    Json(json!({"vrfs": v}))
}

#[derive(serde::Deserialize)]
struct RouteQuery {
    vrf: Option<u16>,
}

async fn routes(State(s): State<AppState>, Query(q): Query<RouteQuery>) -> Json<Value> {
    let applied = Arc::clone(&lock(&s.i.shared).applied);
    let v: Vec<Value> = applied
        .routes
        .iter()
        .filter(|(k, _)| q.vrf.is_none_or(|v| v == k.vrf))
        .map(|(k, d)| {
            let prefix = match k.family {
                dp_core::nexthop::AF_INET | dp_core::nexthop::AF_INET6 => {
                    let ip: Option<IpAddr> = match k.prefix() {
                        Some(dp_core::Prefix::V4(a, _)) => Some(IpAddr::from(a)),
                        Some(dp_core::Prefix::V6(a, _)) => Some(IpAddr::from(a)),
                        _ => None,
                    };
                    format!("{}/{}", ip.map_or_else(|| "?".into(), |i| i.to_string()), k.plen)
                }
                _ => k.addr[..6]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            };
            json!({"vrf": k.vrf, "family": k.family, "prefix": prefix, "nh": d.nh, "label": d.label, "flags": d.flags})
        })
        .collect();
    Json(json!({"routes": v}))
}

/// Asked from the flow task, which answers between two batches.
async fn flows(State(s): State<AppState>) -> Response {
    let query = lock(&s.i.shared).flow_query.clone();
    let Some(query) = query else {
        let stats = lock(&s.i.shared).flow_stats;
        return Json(json!({"stats": stats, "flows": []})).into_response();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let wait = std::time::Duration::from_secs(5);
    let views = match tokio::time::timeout(wait, query.send(tx)).await {
        Ok(Ok(())) => tokio::time::timeout(wait, rx)
            .await
            .ok()
            .and_then(|r| r.ok()),
        _ => None,
    };
    let stats = lock(&s.i.shared).flow_stats;
    match views {
        Some(flows) => Json(json!({"stats": stats, "flows": flows})).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the flow task did not answer within 5 s", "stats": stats})),
        )
            .into_response(),
    }
}

async fn ksync(State(s): State<AppState>) -> Json<Value> {
    let sh = lock(&s.i.shared);
    Json(json!({
        "connected": sh.ksync_connected,
        "reconciles": sh.reconciles,
        "last_reconcile_changes": sh.last_reconcile_changes,
        "last_reconcile_ms": sh.last_reconcile_ms,
        "requests_applied": sh.requests_applied,
        "errors": sh.program_errors,
        "last_error": sh.last_error,
        "objects": {
            "vifs": sh.applied.vifs.len(), "nexthops": sh.applied.nhs.len(),
            "routes": sh.applied.routes.len(), "mpls": sh.applied.mpls.len(),
            "vxlan": sh.applied.vxlan.len(),
        },
        "pkt0": {"rx": sh.pkt0_rx, "tx": sh.pkt0_tx, "services": sh.services},
    }))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    let (vn_refused, ports_refused) = {
        let m = s.i.model.borrow();
        (m.vn_problems.len(), m.problems.len())
    };
    let (fs, nflows, pkt0_rx, pkt0_tx, errors, services) = {
        let sh = lock(&s.i.shared);
        (
            sh.flow_stats,
            sh.tracked_flows,
            sh.pkt0_rx,
            sh.pkt0_tx,
            sh.program_errors,
            sh.services.clone(),
        )
    };
    let rate = {
        let mut last = s.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let r = match *last {
            Some((t, n)) if now > t => {
                (fs.setups.saturating_sub(n)) as f64 / now.duration_since(t).as_secs_f64()
            }
            _ => 0.0,
        };
        *last = Some((now, fs.setups));
        r
    };
    let mut g = |name: &str, help: &str, kind: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    g(
        "vrouter_agent_flows",
        "Flow pairs the agent tracks.",
        "gauge",
        nflows as f64,
    );
    g(
        "vrouter_agent_flow_misses_total",
        "FLOW_MISS traps received.",
        "counter",
        fs.misses as f64,
    );
    g(
        "vrouter_agent_flow_action_holds_total",
        "FLOW_ACTION_HOLD traps received (a decided flow set back to hold).",
        "counter",
        fs.action_holds as f64,
    );
    g(
        "vrouter_agent_flow_setups_total",
        "Flows set up (miss to FLOW_SET accepted).",
        "counter",
        fs.setups as f64,
    );
    g(
        "vrouter_agent_flow_setup_rate",
        "Flow setups per second since the previous scrape.",
        "gauge",
        rate,
    );
    g(
        "vrouter_agent_flows_allowed_total",
        "Flows allowed by policy and security groups.",
        "counter",
        fs.allowed as f64,
    );
    g(
        "vrouter_agent_flows_denied_total",
        "Flows denied by policy or security groups.",
        "counter",
        fs.denied as f64,
    );
    g(
        "vrouter_agent_flows_denied_service_chain_total",
        "Flows denied by a policy rule that applies a service chain (not supported: such rules deny).",
        "counter",
        fs.service_chain_denied as f64,
    );
    g(
        "vrouter_agent_flows_aged_total",
        "Flows removed after the idle timeout.",
        "counter",
        fs.aged as f64,
    );
    g(
        "vrouter_agent_flows_closed_total",
        "TCP flows removed after FIN/RST.",
        "counter",
        fs.closed as f64,
    );
    g(
        "vrouter_agent_flows_audited_total",
        "Flow entries found on hold with no trap received (lost), decided by the hold audit.",
        "counter",
        fs.audited as f64,
    );
    g(
        "vrouter_agent_pkt0_rx_total",
        "Frames received on pkt0.",
        "counter",
        pkt0_rx as f64,
    );
    g(
        "vrouter_agent_pkt0_tx_total",
        "Frames sent on pkt0.",
        "counter",
        pkt0_tx as f64,
    );
    g(
        "vrouter_agent_program_errors_total",
        "Datapath programming errors.",
        "counter",
        errors as f64,
    );
    // What became of the service traps (ARP, DHCP, ICMP errors, NDP...):
    // answers sent, and every trap not answered with its reason.
    let _ = writeln!(
        out,
        "# HELP vrouter_agent_pkt0_outcomes_total Service traps by outcome.\n# TYPE vrouter_agent_pkt0_outcomes_total counter"
    );
    for (outcome, n) in &services {
        let label = outcome.replace(['\\', '"'], "'");
        let _ = writeln!(
            out,
            "vrouter_agent_pkt0_outcomes_total{{outcome=\"{label}\"}} {n}"
        );
    }

    let _ = writeln!(
        out,
        "# HELP vrouter_agent_refused_objects Config objects the agent cannot program (see /vns and /ports: not_programmed).\n# TYPE vrouter_agent_refused_objects gauge\nvrouter_agent_refused_objects{{kind=\"virtual_network\"}} {vn_refused}\nvrouter_agent_refused_objects{{kind=\"port\"}} {ports_refused}"
    );

    // Datapath counters, read now.
    match KsyncClient::connect(&s.i.ksync_path).await {
        Ok(mut k) => {
            if let Ok(mut r) = k
                .call(&[VrDropStatsReq {
                    h_op: SandeshOp::Get,
                    vds_core: 0,
                    ..Default::default()
                }
                .into()])
                .await
            {
                if let Some(Message::DropStats(mut d)) =
                    r.pop().and_then(|r| r.objects.into_iter().next())
                {
                    let _ = writeln!(out, "# HELP vrouter_drops_total Packets the datapath dropped, by reason.\n# TYPE vrouter_drops_total counter");
                    for reason in dp_core::DropReason::ALL {
                        let v = *ksync::convert::drop_field(&mut d, *reason);
                        let name = reason.field_name().trim_start_matches("vds_");
                        let _ = writeln!(out, "vrouter_drops_total{{reason=\"{name}\"}} {v}");
                    }
                }
            }
            if let Ok(mut r) = k
                .call(&[VrFlowTableData {
                    ftable_op: FlowOp::FlowTableGet,
                    ..Default::default()
                }
                .into()])
                .await
            {
                if let Some(Message::FlowTableData(d)) =
                    r.pop().and_then(|r| r.objects.into_iter().next())
                {
                    let _ = writeln!(
                        out,
                        "# HELP vrouter_flow_hold_entries Flow entries on hold (waiting for the agent) now.\n# TYPE vrouter_flow_hold_entries gauge\nvrouter_flow_hold_entries {}",
                        d.ftable_hold_entries
                    );
                    let _ = writeln!(
                        out,
                        "# HELP vrouter_flow_holds_expired_total Flow entries the datapath removed after its hold timeout (trap lost or no agent).\n# TYPE vrouter_flow_holds_expired_total counter\nvrouter_flow_holds_expired_total {}",
                        d.ftable_hold_expired
                    );
                }
            }
            let vifs = k.dump_vifs().await.unwrap_or_default();
            for (metric, help) in [
                (
                    "vrouter_vif_rx_packets_total",
                    "Packets received on the vif.",
                ),
                ("vrouter_vif_rx_bytes_total", "Bytes received on the vif."),
                ("vrouter_vif_tx_packets_total", "Packets sent on the vif."),
                ("vrouter_vif_tx_bytes_total", "Bytes sent on the vif."),
                ("vrouter_vif_drops_total", "Packets dropped on the vif."),
            ] {
                let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
                for v in &vifs {
                    {
                        let val = match metric {
                            "vrouter_vif_rx_packets_total" => v.vifr_ipackets as u64,
                            "vrouter_vif_rx_bytes_total" => v.vifr_ibytes as u64,
                            "vrouter_vif_tx_packets_total" => v.vifr_opackets as u64,
                            "vrouter_vif_tx_bytes_total" => v.vifr_obytes as u64,
                            _ => v.vifr_dpackets,
                        };
                        let _ = writeln!(
                            out,
                            "{metric}{{vif=\"{}\",name=\"{}\"}} {val}",
                            v.vifr_idx,
                            v.vifr_name.replace(['"', '\\', '\n'], "_")
                        );
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "# datapath not reachable: {}",
                e.to_string().replace('\n', " ")
            );
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}
