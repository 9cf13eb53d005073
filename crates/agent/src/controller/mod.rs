//! Joining a Tungsten Fabric / OpenSDN cluster: the agent's XMPP client
//! to up to two control nodes (`[CONTROL-NODE] servers`), as upstream's
//! `contrail-vrouter-agent` does it.
//!
//! * [`channel`]: one task per control node: connect (optionally with
//!   STARTTLS), keep the session (keepalives, hold timer), reconnect with
//!   backoff.
//! * `hub`: one task that owns the state: subscriptions and published
//!   routes per session, routes learned per control node (stale handling,
//!   end-of-RIB sweep), the config peer and its IF-MAP config.
//! * [`config`]: the IF-MAP graph as a [`crate::source::ConfigView`]: the
//!   model reads it as it reads the embedded store.
//! * [`routes`]: route events read into RIB changes; [`export`]: what we
//!   publish.
//!
//! The programming task receives the merged routes ([`crate::rib::Rib`])
//! and this node's tunnel address through watch channels; the hub follows
//! the model the programming task builds.

pub mod channel;
pub mod config;
pub mod export;
pub(crate) mod hub;
pub mod routes;

use crate::model::Model;
use crate::ports::PortStore;
use crate::program::Ids;
use crate::rib::Rib;
use anyhow::Context;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// Upstream's limit.
pub const MAX_SERVERS: usize = 2;

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How to reach the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Control nodes (`[CONTROL-NODE] servers`), at most two.
    pub servers: Vec<SocketAddr>,
    /// This node's name (`[DEFAULT] agent_name`, else `hostname`): its
    /// virtual-router is `default-global-system-config:<name>`.
    pub agent_name: String,
    /// Tunnel source (`[NETWORKS] control_network_ip`); by default the
    /// local address of the first XMPP connection.
    pub control_network_ip: Option<Ipv4Addr>,
    /// `[CONTROL-NODE] subcluster_name` (the stream's xmlns).
    pub subcluster_name: String,
    /// `[DEFAULT] xmpp_auth_enable` with its certificate files.
    pub tls: Option<TlsFiles>,
    pub hold_time: Duration,
    /// How long routes of a lost control node stay (graceful restart).
    pub stale_timeout: Duration,
    /// Sweep what a returning control node did not re-send after this
    /// long without its end-of-RIB marker.
    pub eor_timeout: Duration,
    /// A new config peer's config is complete after this quiet time.
    pub config_quiet: Duration,
    /// Reconnect backoff cap.
    pub reconnect_max: Duration,
}

impl Options {
    pub fn new(servers: Vec<SocketAddr>, agent_name: String) -> Self {
        Options {
            servers,
            agent_name,
            control_network_ip: None,
            subcluster_name: String::new(),
            tls: None,
            hold_time: xmpp::session::HOLD_TIME,
            stale_timeout: Duration::from_secs(300),
            eor_timeout: Duration::from_secs(60),
            config_quiet: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// `ip[:port] ip[:port]` (space or comma separated; port 5269 by default).
pub fn parse_servers(s: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for w in s.split([' ', ',']).filter(|w| !w.is_empty()) {
        let a = match w.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                let ip: std::net::IpAddr = w
                    .parse()
                    .with_context(|| format!("control node {w:?}: not ip or ip:port"))?;
                SocketAddr::new(ip, xmpp::jid::XMPP_PORT)
            }
        };
        out.push(a);
    }
    if out.is_empty() {
        anyhow::bail!("no control node in {s:?}");
    }
    if out.len() > MAX_SERVERS {
        tracing::warn!(
            servers = out.len(),
            "more than {MAX_SERVERS} control nodes: using the first {MAX_SERVERS}, as upstream"
        );
        out.truncate(MAX_SERVERS);
    }
    Ok(out)
}

/// One control node, for introspect.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerStatus {
    pub server: String,
    pub state: String,
    pub config_peer: bool,
    pub established_at: Option<SystemTime>,
    pub flaps: u64,
    pub rx: u64,
    pub tx: u64,
    pub routes: usize,
    pub stale_routes: usize,
    pub subscriptions: usize,
    pub published: usize,
    /// Stanzas or entries dropped as malformed or unexpected.
    pub dropped: u64,
    pub last_dropped: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub peers: Vec<PeerStatus>,
    pub config_nodes: usize,
    pub config_links: usize,
    pub config_revision: u64,
    pub config_pending: bool,
    pub tunnel_source: Option<String>,
}

pub type StatusRef = Arc<Mutex<Status>>;

/// The running controller: what the rest of the agent reads.
pub struct Controller {
    pub config: Arc<config::ControllerConfig>,
    pub rib: watch::Receiver<Arc<Rib>>,
    pub sip: watch::Receiver<Option<Ipv4Addr>>,
    pub status: StatusRef,
}

fn read(p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// Start the channel tasks and the hub on `tasks`.
pub fn spawn(
    opts: Options,
    ids: Ids,
    state_dir: &Path,
    ports: Arc<PortStore>,
    model_rx: watch::Receiver<Arc<Model>>,
    stop: watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<Controller> {
    let tls = match &opts.tls {
        Some(t) => Some(
            xmpp::session::tls_client(&read(&t.cert)?, &read(&t.key)?, &read(&t.ca)?)
                .context("xmpp_auth_enable: the certificate, key (PKCS#8 PEM) and CA")?,
        ),
        None => None,
    };
    let config = config::ControllerConfig::open(state_dir);
    let (rib_tx, rib) = watch::channel(Arc::new(Rib::default()));
    let (sip_tx, sip) = watch::channel(opts.control_network_ip);
    let status: StatusRef = Arc::default();
    let (ev_tx, ev_rx) = mpsc::channel(8192);
    for (idx, addr) in opts.servers.iter().enumerate() {
        let cfg = xmpp::session::ClientConfig {
            from: opts.agent_name.clone(),
            to: xmpp::jid::CONTROL_NODE_JID.into(),
            xmlns: opts.subcluster_name.clone(),
            hold_time: opts.hold_time,
            open_time: xmpp::session::OPEN_TIME,
            tls: tls.clone(),
        };
        tasks.spawn(channel::run(
            idx,
            *addr,
            cfg,
            opts.reconnect_max,
            ev_tx.clone(),
            stop.clone(),
        ));
    }
    let hub = hub::Hub::new(
        opts,
        ids,
        Arc::clone(&config),
        ports,
        rib_tx,
        sip_tx,
        Arc::clone(&status),
    );
    tasks.spawn(hub.run(ev_rx, model_rx, stop));
    Ok(Controller {
        config,
        rib,
        sip,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_as_upstream_writes_them() {
        let s = parse_servers("10.0.0.1:5269 10.0.0.2").unwrap();
        assert_eq!(
            s,
            vec![
                "10.0.0.1:5269".parse::<SocketAddr>().unwrap(),
                "10.0.0.2:5269".parse().unwrap()
            ]
        );
        assert_eq!(
            parse_servers("a,b,c")
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "control node \"a\": not ip or ip:port"
        );
        assert_eq!(parse_servers("1.1.1.1 2.2.2.2 3.3.3.3").unwrap().len(), 2);
        assert!(parse_servers("  ").is_err());
    }
}
