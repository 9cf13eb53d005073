//! The port API (upstream agent's `port_ipc`, 127.0.0.1:9091) and the
//! ports directory.
//!
//! What upstream's agent serves, with its bodies and replies: `{}` on
//! success, `{"error": "..."}` on failure (with a 4xx status naming what is
//! wrong where upstream answers 500 for everything; 5xx only when the agent
//! itself failed):
//!
//! | call | what |
//! |---|---|
//! | `POST /port` | one port (upstream's body, key for key) or a JSON array of ports, all or none |
//! | `GET /port/<uuid>` | the port's live state: addresses with prefix length, gateway and DNS server (IPv4 and `v6-*`), as the agent programs them; 404 while it is not programmed (its VN or address not in the config) |
//! | `DELETE /port/<uuid>` | idempotent |
//! | `POST /syncports` | starts a resync: ports not announced again within `stale_interface_cleanup_timeout` (60 s) are deleted |
//! | `PUT /enable-port/<uuid>`, `/disable-port/<uuid>` | link state of a remote port (type 2), persisted |
//! | `POST /vm` | a VM-based subscription (the Kubernetes CNI's): VM, VN, VMI and host interface; MAC and addresses come from the config |
//! | `DELETE /vm/<vm uuid>` | the VM's subscriptions |
//! | `GET /vm/<vm uuid>[/<vmi uuid>]` | live state of the VM's ports (a list) |
//! | `GET /vm-cfg/<vm name>`, `/vm-cfg-by-uuid/<uuid>` | the VM's interfaces in the config (id, VN, MAC) |
//! | `GET /ports` | ours: every stored port as written |
//!
//! Upstream's `/gateway` (simple gateway interfaces) does not apply to
//! container hosts and is not served.
//!
//! A port file holds the body as posted plus `vhostuser-mode`,
//! `link-state` and `author` (upstream persists them too).

pub mod ifname;
pub mod record;
pub mod store;
pub mod vm;

pub use record::{parse_mac, PortRecord, AUTHOR, TYPE_NAMESPACE, TYPE_REMOTE, TYPE_VM};
pub use store::{PortStore, PortsError};
pub use vm::{VmKey, VmPort};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// One address of a programmed port with its subnet's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveAddr<A> {
    pub addr: A,
    pub plen: u8,
    pub gateway: Option<A>,
    pub dns: Option<A>,
}

/// A port as the agent programs it (what `GET /port/<uuid>` reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePort {
    pub v4: Option<LiveAddr<Ipv4Addr>>,
    pub v6: Option<LiveAddr<Ipv6Addr>>,
}

/// What the port API needs from the rest of the agent.
pub trait PortCheck: Send + Sync + 'static {
    /// Checks a port against the configuration before it is accepted.
    /// `Err((status, message))` refuses it.
    fn check(&self, rec: &PortRecord) -> Result<(), (StatusCode, String)>;

    /// The live state of port `rec`: `Err(why)` while it is not programmed.
    fn live(&self, rec: &PortRecord) -> Result<LivePort, String> {
        let _ = rec;
        Err("no live view in this setup".into())
    }

    /// The configuration, for `/vm-cfg` (None: not available).
    fn config(&self) -> Option<vnc_api::Snapshot> {
        None
    }
}

/// Settings of the port API.
#[derive(Clone, Copy, Debug)]
pub struct PortApiOptions {
    /// How long after `/syncports` ports not announced again are deleted
    /// (upstream's `stale_interface_cleanup_timeout`).
    pub stale_timeout: Duration,
}

impl Default for PortApiOptions {
    fn default() -> Self {
        PortApiOptions {
            stale_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
struct Api {
    store: Arc<PortStore>,
    check: Arc<dyn PortCheck>,
    opts: PortApiOptions,
    /// One change at a time: a check and its write see the same ports.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// Upstream's success body.
fn done() -> Response {
    (StatusCode::OK, Json(json!({}))).into_response()
}

/// Upstream's failure body `{"error": ...}` with a status that says whose
/// fault it is.
fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    if status.is_server_error() {
        tracing::warn!(%status, "port API: {msg}");
    } else {
        tracing::info!(%status, "port API refused: {msg}");
    }
    (status, Json(json!({"error": msg}))).into_response()
}

/// A refused call (sent as [`err`]); small, unlike a [`Response`].
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        err(self.0, self.1)
    }
}

fn parse_id(id: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(id).map_err(|_| Refusal(StatusCode::BAD_REQUEST, format!("not a UUID: {id:?}")))
}

/// The port API router with upstream's defaults.
pub fn router(store: Arc<PortStore>, check: Arc<dyn PortCheck>) -> Router {
    router_with(store, check, PortApiOptions::default())
}

/// The port API router.
pub fn router_with(
    store: Arc<PortStore>,
    check: Arc<dyn PortCheck>,
    opts: PortApiOptions,
) -> Router {
    Router::new()
        .route("/port", post(add_port))
        .route("/port/{id}", get(get_port).delete(del_port))
        .route("/ports", get(list_ports))
        .route("/syncports", post(sync_ports))
        .route("/enable-port/{id}", put(enable_port))
        .route("/disable-port/{id}", put(disable_port))
        .route("/vm", post(add_vm))
        .route("/vm/{vm}", get(get_vm).delete(del_vm))
        .route("/vm/{vm}/{vmi}", get(get_vm_port))
        .route("/vm-cfg/{name}", get(vm_cfg_by_name))
        .route("/vm-cfg-by-uuid/{id}", get(vm_cfg_by_uuid))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "Unknown Request") })
        .method_not_allowed_fallback(|| async {
            err(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .with_state(Api {
            store,
            check,
            opts,
            writing: Arc::new(tokio::sync::Mutex::new(())),
        })
}

/// A body must be a JSON object (or, for `/port`, an array of them).
fn body_json(body: &[u8]) -> Result<Value, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "empty body: a port is required".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("Invalid Json string: {e}")))
}

fn one_port(v: Value, at: &str) -> Result<(Uuid, PortRecord), Refusal> {
    if !v.is_object() {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{at}must be a JSON object (a port)"),
        ));
    }
    let mut rec: PortRecord = serde_json::from_value(v)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("{at}bad port body: {e}")))?;
    let id = rec
        .validate()
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("{at}{e}")))?;
    rec.author.get_or_insert_with(|| AUTHOR.to_string());
    Ok((id, rec))
}

async fn add_port(State(api): State<Api>, body: axum::body::Bytes) -> Response {
    let batch: Vec<(Uuid, PortRecord)> = match body_json(&body) {
        Err(r) => return r.into_response(),
        Ok(Value::Array(items)) => {
            if items.is_empty() {
                return err(StatusCode::BAD_REQUEST, "empty array: no ports");
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.into_iter().enumerate() {
                match one_port(v, &format!("[{i}]: ")) {
                    Ok(p) => out.push(p),
                    Err(r) => return r.into_response(),
                }
            }
            out
        }
        Ok(v) => match one_port(v, "") {
            Ok(p) => vec![p],
            Err(r) => return r.into_response(),
        },
    };
    let _w = api.writing.lock().await;
    let existing = api.store.all();
    // One port per interface and VLAN (-1: the untagged port, which is
    // the parent of the interface's VLAN sub-interface ports).
    let mut names: std::collections::HashMap<(&str, i64), Uuid> = existing
        .iter()
        .filter(|(u, _)| !batch.iter().any(|(b, _)| b == *u))
        .map(|(u, r)| ((r.system_name.as_str(), r.rx_vlan_id), *u))
        .collect();
    let parents: std::collections::HashSet<&str> = existing
        .iter()
        .filter(|(u, _)| !batch.iter().any(|(b, _)| b == *u))
        .map(|(_, r)| r)
        .chain(batch.iter().map(|(_, r)| r))
        .filter(|r| !r.is_sub_interface() && r.port_type != TYPE_REMOTE)
        .map(|r| r.system_name.as_str())
        .collect();
    let mut ids = std::collections::HashSet::new();
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for (id, rec) in &batch {
        if !ids.insert(*id) {
            return err(
                StatusCode::BAD_REQUEST,
                format!("port {id} appears twice in the array"),
            );
        }
        if let Err((s, m)) = api.check.check(rec) {
            return err(s, m);
        }
        if rec.is_sub_interface() && !parents.contains(rec.system_name.as_str()) {
            return err(
                StatusCode::NOT_FOUND,
                format!(
                    "rx-vlan-id: a VLAN sub-interface port needs its parent, the untagged port of \
                     system-name {}: there is none (add it first)",
                    rec.system_name
                ),
            );
        }
        // Another port with the same interface (and VLAN) would fight over it.
        match names.insert((rec.system_name.as_str(), rec.rx_vlan_id), *id) {
            Some(other) if other != *id => {
                return err(
                    StatusCode::CONFLICT,
                    if rec.is_sub_interface() {
                        format!(
                            "rx-vlan-id: VLAN {} of system-name {} is already port {other}",
                            rec.rx_vlan_id, rec.system_name
                        )
                    } else {
                        format!(
                            "system-name {} is already used by port {other}",
                            rec.system_name
                        )
                    },
                )
            }
            _ => {}
        }
        let same = existing.get(id).is_some_and(|old| {
            // A re-announcement differs only by its time stamp.
            PortRecord {
                time: rec.time.clone(),
                ..old.clone()
            } == *rec
        });
        if same {
            unchanged.push(*id);
        } else {
            changed.push((*id, rec.clone()));
        }
    }
    for id in &unchanged {
        api.store.touch(id);
    }
    if changed.is_empty() {
        return done();
    }
    let store = Arc::clone(&api.store);
    let n = changed.len();
    let ids: Vec<Uuid> = changed.iter().map(|(u, _)| *u).collect();
    match tokio::task::spawn_blocking(move || store.put_many(changed)).await {
        Ok(Ok(())) => {
            tracing::info!(ports = n, ?ids, "ports added");
            done()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing port files (nothing added): {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Upstream's `GET /port` reply for a live port.
fn live_json(rec: &PortRecord, live: &LivePort) -> Value {
    let mut o = json!({
        "id": rec.id,
        "instance-id": rec.instance_id,
        "vn-id": rec.vn_id,
        "vm-project-id": rec.vm_project_id,
        "mac-address": rec.mac_address,
        "system-name": rec.system_name,
        "display-name": rec.display_name,
        "rx-vlan-id": rec.rx_vlan_id,
        "tx-vlan-id": rec.tx_vlan_id,
        "vhostuser-mode": rec.vhostuser_mode,
        "type": rec.port_type,
        "link-state": i64::from(rec.link_up()),
        "author": AUTHOR,
        "time": unix_time(),
    });
    let s =
        |a: Option<std::net::IpAddr>, unspec: &str| a.map_or(unspec.to_string(), |a| a.to_string());
    if let Some(v4) = &live.v4 {
        o["ip-address"] = json!(v4.addr.to_string());
        o["plen"] = json!(v4.plen);
        o["gateway"] = json!(s(v4.gateway.map(Into::into), "0.0.0.0"));
        o["dns-server"] = json!(s(v4.dns.map(Into::into), "0.0.0.0"));
    }
    if let Some(v6) = &live.v6 {
        o["v6-ip-address"] = json!(v6.addr.to_string());
        o["v6-plen"] = json!(v6.plen);
        o["v6-gateway"] = json!(s(v6.gateway.map(Into::into), "::"));
        o["v6-dns-server"] = json!(s(v6.dns.map(Into::into), "::"));
    }
    o
}

fn unix_time() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros().to_string())
        .unwrap_or_default()
}

/// The live view of a stored (or subscribed) port, or the reply saying why
/// there is none.
fn live_reply(api: &Api, id: &Uuid) -> Result<Value, Refusal> {
    let rec = match api.store.get(id) {
        Some(r) => r,
        None => {
            let sub = api.store.vm_ports().get(id).cloned();
            let resolved = sub.and_then(|s| api.check.config().and_then(|c| s.resolve(&c)));
            resolved
                .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("port {id} Not Found")))?
        }
    };
    match api.check.live(&rec) {
        Ok(l) => Ok(live_json(&rec, &l)),
        Err(why) => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("port {id} is not active (retry): {why}"),
        )),
    }
}

async fn get_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    let u = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    match live_reply(&api, &u) {
        Ok(v) => Json(v).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn del_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    let u = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let _w = api.writing.lock().await;
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.remove(&u)).await {
        Ok(Ok(had)) => {
            if had {
                tracing::info!(port = %u, "port deleted");
            }
            done()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("removing port file: {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn list_ports(State(api): State<Api>) -> Response {
    Json(api.store.all().into_values().collect::<Vec<_>>()).into_response()
}

async fn sync_ports(State(api): State<Api>) -> Response {
    let generation = api.store.start_sync();
    let store = Arc::clone(&api.store);
    let after = api.opts.stale_timeout;
    tracing::info!(generation, ?after, "port sync started");
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        match tokio::task::spawn_blocking(move || store.sweep(generation)).await {
            Ok(Ok(gone)) if !gone.is_empty() => {
                tracing::info!(?gone, "stale ports removed after sync")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "removing stale ports"),
            Err(e) => tracing::warn!(error = %e, "removing stale ports"),
        }
    });
    done()
}

async fn set_link(api: Api, id: String, up: bool) -> Response {
    let u = match parse_id(&id) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let _w = api.writing.lock().await;
    let Some(mut rec) = api.store.get(&u) else {
        return err(StatusCode::NOT_FOUND, format!("Port Not found {u}"));
    };
    if rec.port_type != TYPE_REMOTE {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "Incorrect Port type for {u}: only a remote port (type 2) has a link state set by API"
            ),
        );
    }
    let want = i64::from(up);
    if rec.link_state == Some(want) {
        return done();
    }
    rec.link_state = Some(want);
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.put(u, rec)).await {
        Ok(Ok(())) => {
            tracing::info!(port = %u, up, "port link state set");
            done()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing port file: {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn enable_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    set_link(api, id, true).await
}

async fn disable_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    set_link(api, id, false).await
}

async fn add_vm(State(api): State<Api>, body: axum::body::Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) if v.is_object() => v,
        Ok(_) => {
            return err(
                StatusCode::BAD_REQUEST,
                "Arrays not supported in json for vm: the body must be one JSON object",
            )
        }
        Err(r) => return r.into_response(),
    };
    let mut sub: VmPort = match serde_json::from_value(v) {
        Ok(s) => s,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad vm body: {e}")),
    };
    let (_, vmi) = match sub.validate() {
        Ok(x) => x,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    sub.author.get_or_insert_with(|| AUTHOR.to_string());
    let _w = api.writing.lock().await;
    if api.store.get(&vmi).is_some() {
        return err(
            StatusCode::CONFLICT,
            format!("vmi-uuid {vmi} is already a port (POST /port); delete it first"),
        );
    }
    let clash = api
        .store
        .names()
        .into_iter()
        .find(|(u, n)| *u != vmi && *n == sub.host_ifname);
    if let Some((other, _)) = clash {
        return err(
            StatusCode::CONFLICT,
            format!(
                "host-ifname {} is already used by port {other}",
                sub.host_ifname
            ),
        );
    }
    if api.store.vm_ports().get(&vmi).is_some_and(|old| {
        VmPort {
            time: sub.time.clone(),
            ..old.clone()
        } == sub
    }) {
        api.store.touch(&vmi);
        return done();
    }
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.put_vm(vmi, sub)).await {
        Ok(Ok(())) => {
            tracing::info!(vmi = %vmi, "VM port subscription added");
            done()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing vm port file: {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn del_vm(State(api): State<Api>, UrlPath(vm): UrlPath<String>) -> Response {
    let u = match parse_id(&vm) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let _w = api.writing.lock().await;
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.remove_vm(&u)).await {
        Ok(Ok(n)) => {
            if n > 0 {
                tracing::info!(vm = %u, ports = n, "VM port subscriptions deleted");
            }
            done()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("removing vm port files: {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The ports of VM `vm`: subscriptions and `/port` ports alike.
fn ports_of_vm(api: &Api, vm: &Uuid) -> Vec<Uuid> {
    let vm_s = vm.to_string();
    let mut ids: Vec<Uuid> = api
        .store
        .all()
        .into_iter()
        .filter(|(_, r)| r.instance_id == vm_s)
        .map(|(u, _)| u)
        .collect();
    ids.extend(
        api.store
            .vm_ports()
            .into_iter()
            .filter(|(_, s)| s.vm_uuid == vm_s)
            .map(|(u, _)| u),
    );
    ids.sort_unstable();
    ids.dedup();
    ids
}

async fn get_vm(State(api): State<Api>, UrlPath(vm): UrlPath<String>) -> Response {
    let u = match parse_id(&vm) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let ids = ports_of_vm(&api, &u);
    if ids.is_empty() {
        return err(StatusCode::NOT_FOUND, format!("vm {u} Not Found"));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match live_reply(&api, &id) {
            Ok(v) => out.push(v),
            Err(r) => return r.into_response(),
        }
    }
    Json(Value::Array(out)).into_response()
}

async fn get_vm_port(
    State(api): State<Api>,
    UrlPath((vm, vmi)): UrlPath<(String, String)>,
) -> Response {
    let (vm, vmi) = match (parse_id(&vm), parse_id(&vmi)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    if !ports_of_vm(&api, &vm).contains(&vmi) {
        return err(
            StatusCode::NOT_FOUND,
            format!("port {vmi} of vm {vm} Not Found"),
        );
    }
    match live_reply(&api, &vmi) {
        Ok(v) => Json(json!([v])).into_response(),
        Err(r) => r.into_response(),
    }
}

fn vm_cfg_reply(api: &Api, key: VmKey<'_>) -> Response {
    let Some(snap) = api.check.config() else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration available",
        );
    };
    match vm::vm_cfg(&snap, key) {
        Some(l) => Json(Value::Array(l)).into_response(),
        None => err(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn vm_cfg_by_name(State(api): State<Api>, UrlPath(name): UrlPath<String>) -> Response {
    vm_cfg_reply(&api, VmKey::Name(&name))
}

async fn vm_cfg_by_uuid(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    match parse_id(&id) {
        Ok(u) => vm_cfg_reply(&api, VmKey::Uuid(u)),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests;
