//! The port API (upstream agent's `port_ipc`, 127.0.0.1:9091) and the
//! ports directory.
//!
//! The body of `POST /port` is upstream's, key for key; every port is kept
//! as a file `<ports-dir>/<uuid>` holding that body, exactly as upstream
//! keeps `/var/lib/contrail/ports/<uuid>`, so the ports survive an agent
//! restart. A file is written to a temporary name and renamed, so a crash
//! never leaves half a port.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// One port, upstream's `port_ipc` JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    pub id: String,
    #[serde(rename = "instance-id")]
    pub instance_id: String,
    #[serde(rename = "vn-id")]
    pub vn_id: String,
    #[serde(rename = "vm-project-id", default)]
    pub vm_project_id: String,
    #[serde(rename = "mac-address")]
    pub mac_address: String,
    #[serde(rename = "ip-address", default)]
    pub ip_address: String,
    #[serde(rename = "ip6-address", default)]
    pub ip6_address: String,
    #[serde(rename = "system-name")]
    pub system_name: String,
    #[serde(rename = "display-name", default)]
    pub display_name: String,
    #[serde(rename = "type", default)]
    pub port_type: i64,
    #[serde(rename = "rx-vlan-id", default = "no_vlan")]
    pub rx_vlan_id: i64,
    #[serde(rename = "tx-vlan-id", default = "no_vlan")]
    pub tx_vlan_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

fn no_vlan() -> i64 {
    -1
}

impl PortRecord {
    /// The IPv4 address, if any (upstream writes "0.0.0.0" or "None").
    pub fn ip4(&self) -> Option<Ipv4Addr> {
        self.ip_address
            .parse()
            .ok()
            .filter(|a: &Ipv4Addr| !a.is_unspecified())
    }

    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6_address
            .parse()
            .ok()
            .filter(|a: &Ipv6Addr| !a.is_unspecified())
    }

    /// Checks what upstream's port_ipc checks, and a bit more: every
    /// error names the field.
    pub fn validate(&self) -> Result<Uuid, String> {
        let id = Uuid::parse_str(&self.id).map_err(|_| format!("id: not a UUID: {:?}", self.id))?;
        Uuid::parse_str(&self.instance_id)
            .map_err(|_| format!("instance-id: not a UUID: {:?}", self.instance_id))?;
        Uuid::parse_str(&self.vn_id).map_err(|_| format!("vn-id: not a UUID: {:?}", self.vn_id))?;
        if !self.vm_project_id.is_empty() {
            Uuid::parse_str(&self.vm_project_id)
                .map_err(|_| format!("vm-project-id: not a UUID: {:?}", self.vm_project_id))?;
        }
        parse_mac(&self.mac_address)
            .ok_or_else(|| format!("mac-address: not a MAC: {:?}", self.mac_address))?;
        let ok_ip = |s: &str| s.is_empty() || s == "None" || s.parse::<std::net::IpAddr>().is_ok();
        if !ok_ip(&self.ip_address)
            || (!self.ip_address.is_empty() && self.ip_address.contains(':'))
        {
            return Err(format!(
                "ip-address: not an IPv4 address: {:?}",
                self.ip_address
            ));
        }
        if !ok_ip(&self.ip6_address) {
            return Err(format!(
                "ip6-address: not an IPv6 address: {:?}",
                self.ip6_address
            ));
        }
        if self.system_name.is_empty() || self.system_name.len() > 15 {
            return Err(format!(
                "system-name: must be an interface name of 1 to 15 bytes: {:?}",
                self.system_name
            ));
        }
        if self.system_name.contains(['/', '\0']) {
            return Err(format!(
                "system-name: invalid interface name {:?}",
                self.system_name
            ));
        }
        Ok(id)
    }
}

/// "02:aa:…" or "02-aa-…" -> bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("ports dir {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// The ports, in memory and on disk.
pub struct PortStore {
    dir: PathBuf,
    ports: Mutex<BTreeMap<Uuid, PortRecord>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl PortStore {
    /// Load every port file of `dir` (created if missing). Files that do
    /// not parse are reported and left in place.
    pub fn open(dir: &Path) -> Result<Arc<PortStore>, PortsError> {
        let io = |source| PortsError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut ports = BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(uuid) = Uuid::parse_str(name) else {
                if name.ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
                continue;
            };
            match std::fs::read(e.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<PortRecord>(&b).map_err(|e| e.to_string()))
            {
                Ok(rec) => {
                    ports.insert(uuid, rec);
                }
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), %err, "ignoring unreadable port file")
                }
            }
        }
        tracing::info!(dir = %dir.display(), ports = ports.len(), "ports restored");
        let (changed, _) = tokio::sync::watch::channel(0);
        Ok(Arc::new(PortStore {
            dir: dir.to_owned(),
            ports: Mutex::new(ports),
            changed,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, PortRecord>> {
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> BTreeMap<Uuid, PortRecord> {
        self.lock().clone()
    }

    pub fn get(&self, id: &Uuid) -> Option<PortRecord> {
        self.lock().get(id).cloned()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Store `rec` (file first, then memory).
    pub fn put(&self, id: Uuid, rec: PortRecord) -> std::io::Result<()> {
        let body = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!("{id}.tmp"));
        std::fs::write(&tmp, &body)?;
        std::fs::rename(&tmp, self.dir.join(id.to_string()))?;
        self.lock().insert(id, rec);
        self.bump();
        Ok(())
    }

    /// Remove a port; `false` if there was none.
    pub fn remove(&self, id: &Uuid) -> std::io::Result<bool> {
        match std::fs::remove_file(self.dir.join(id.to_string())) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let had = self.lock().remove(id).is_some();
        if had {
            self.bump();
        }
        Ok(had)
    }
}

/// Checks a port against the configuration before it is accepted.
pub trait PortCheck: Send + Sync + 'static {
    /// `Err((status, message))` refuses the port.
    fn check(&self, rec: &PortRecord) -> Result<(), (StatusCode, String)>;
}

#[derive(Clone)]
struct Api {
    store: Arc<PortStore>,
    check: Arc<dyn PortCheck>,
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

/// The port API router.
pub fn router(store: Arc<PortStore>, check: Arc<dyn PortCheck>) -> Router {
    Router::new()
        .route("/port", post(add_port))
        .route("/port/{id}", get(get_port).delete(del_port))
        .route("/ports", get(list_ports))
        .with_state(Api { store, check })
}

async fn add_port(State(api): State<Api>, body: axum::body::Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let rec: PortRecord = match serde_json::from_value(v) {
        Ok(r) => r,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad port body: {e}")),
    };
    let id = match rec.validate() {
        Ok(id) => id,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    if let Err((s, m)) = api.check.check(&rec) {
        return err(s, m);
    }
    if let Some(old) = api.store.get(&id) {
        if old == rec {
            return (StatusCode::OK, "").into_response();
        }
    }
    // Another port with the same interface name would fight over it.
    if let Some((other, _)) = api
        .store
        .all()
        .into_iter()
        .find(|(u, r)| *u != id && r.system_name == rec.system_name)
    {
        return err(
            StatusCode::CONFLICT,
            format!(
                "system-name {} is already used by port {other}",
                rec.system_name
            ),
        );
    }
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.put(id, rec)).await {
        Ok(Ok(())) => {
            tracing::info!(port = %id, "port added");
            (StatusCode::OK, "").into_response()
        }
        Ok(Err(e)) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing port file: {e}"),
        ),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(u) = Uuid::parse_str(&id) else {
        return err(StatusCode::BAD_REQUEST, format!("not a UUID: {id}"));
    };
    match api.store.get(&u) {
        Some(r) => Json(r).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("port {u} not found")),
    }
}

async fn del_port(State(api): State<Api>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(u) = Uuid::parse_str(&id) else {
        return err(StatusCode::BAD_REQUEST, format!("not a UUID: {id}"));
    };
    let store = Arc::clone(&api.store);
    match tokio::task::spawn_blocking(move || store.remove(&u)).await {
        Ok(Ok(had)) => {
            if had {
                tracing::info!(port = %u, "port deleted");
            }
            (StatusCode::OK, "").into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_fixture_bodies_parse_and_round_trip() {
        let body = r#"{"ip-address": "11.0.0.3", "tx-vlan-id": -1, "display-name": "vm1", "id": "93c2c386-6e79-485e-bfa4-b9daa713133b", "instance-id": "69ce06bd-6d1e-43d0-8e48-a30043a49ed8", "ip6-address": "None", "rx-vlan-id": -1, "system-name": "tap93c2c386-6e", "vn-id": "56297dc0-5553-4e6a-b87f-8423afc21e9d", "vm-project-id": "9970147c-33b1-4bf7-8944-8968e708d430", "type": 0, "mac-address": "02:93:c2:c3:86:6e"}"#;
        let r: PortRecord = serde_json::from_str(body).unwrap();
        assert!(r.validate().is_ok());
        assert_eq!(r.ip4(), Some(Ipv4Addr::new(11, 0, 0, 3)));
        assert_eq!(r.ip6(), None);
        assert_eq!(r.system_name, "tap93c2c386-6e");
        let back: Value = serde_json::to_value(&r).unwrap();
        let orig: Value = serde_json::from_str(body).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn store_persists_and_restores() {
        let d = tempfile::tempdir().unwrap();
        let s = PortStore::open(d.path()).unwrap();
        let rec: PortRecord = serde_json::from_value(serde_json::json!({
            "id": "93c2c386-6e79-485e-bfa4-b9daa713133b",
            "instance-id": "69ce06bd-6d1e-43d0-8e48-a30043a49ed8",
            "vn-id": "56297dc0-5553-4e6a-b87f-8423afc21e9d",
            "mac-address": "02:93:c2:c3:86:6e",
            "system-name": "tap93c2c386-6e",
        }))
        .unwrap();
        let id = rec.validate().unwrap();
        s.put(id, rec.clone()).unwrap();
        drop(s);
        let s = PortStore::open(d.path()).unwrap();
        assert_eq!(s.get(&id), Some(rec));
        assert!(s.remove(&id).unwrap());
        assert!(!s.remove(&id).unwrap());
        assert!(PortStore::open(d.path()).unwrap().all().is_empty());
    }
}
