//! A control-node peer for tests (not a product): the server side of the
//! agent's XMPP dialect, faithful to upstream's `contrail-control` where
//! the agent can tell:
//!
//! * sessions as upstream's XMPP server runs them ([`xmpp::session`]:
//!   stream header answer, optional STARTTLS, keepalives, hold timer);
//! * IF-MAP config pushed from a `vnc-api` store to each agent that
//!   subscribed its virtual-router and virtual machines, updated when the
//!   store changes ([`ifmap`]);
//! * routes checked as upstream checks them ([`validate`]) and reflected
//!   between the agents subscribed to the same routing instance (and to
//!   instances of policy-connected networks), with end-of-RIB markers
//!   ([`core`]).
//!
//! It can be stopped (every session dropped at once, as a crash would),
//! started again on the same address, and run twice for failover tests.
//! What it does not do: BGP, route targets, multicast trees, graceful
//! restart on its side, DNS.

pub mod core;
pub mod ifmap;
pub mod validate;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use vnc_api::Store;
use xmpp::session::{self, Event, ServerConfig};

/// What happened, for tests to assert on.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub sessions: u64,
    pub agents: Vec<String>,
    pub subscriptions: Vec<(String, Vec<String>)>,
    /// (instance, family, id) -> number of agents advertising it.
    pub routes: Vec<((String, String, String), usize)>,
    pub accepted: u64,
    pub withdrawn: u64,
    /// Why items were rejected, in order.
    pub rejected: Vec<String>,
    /// Why sessions were closed by the peer.
    pub closed_by_peer: Vec<String>,
    pub malformed: u64,
    pub ignored: u64,
    pub updates_sent: u64,
    pub config_messages: u64,
    pub eor_received: u64,
}

/// Peer settings.
#[derive(Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// End-of-RIB this long after an agent's last subscription change.
    pub eor_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            eor_delay: Duration::from_secs(1),
        }
    }
}

/// A running peer.
pub struct Peer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    events: mpsc::Sender<core::Ev>,
    stats: Arc<Mutex<Stats>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

static CONN: AtomicU64 = AtomicU64::new(1);

impl Peer {
    /// Listen on `addr` and serve agents config from `store`.
    pub async fn start(addr: SocketAddr, store: Arc<Store>, cfg: Config) -> std::io::Result<Peer> {
        let l = TcpListener::bind(addr).await?;
        let addr = l.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let stats: Arc<Mutex<Stats>> = Arc::default();
        let (ev_tx, ev_rx) = mpsc::channel(8192);
        let core = core::Core::new(store, Arc::clone(&stats), cfg.eor_delay);
        let mut tasks = vec![tokio::spawn(core.run(ev_rx, stop_rx.clone()))];
        let accept_ev = ev_tx.clone();
        let server = cfg.server.clone();
        let mut accept_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    r = accept_stop.changed() => if r.is_err() || *accept_stop.borrow() { break },
                    a = l.accept() => {
                        let Ok((tcp, from)) = a else { continue };
                        let ev = accept_ev.clone();
                        let server = server.clone();
                        let stop = accept_stop.clone();
                        conns.spawn(serve(tcp, from, server, ev, stop));
                    }
                }
            }
            // Dropping the set aborts every session: the agents see the
            // connection go, as when a control node dies.
            conns.abort_all();
        }));
        Ok(Peer {
            addr,
            stop,
            events: ev_tx,
            stats,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send `text` as is to every session of the agent named `agent`.
    pub async fn inject(&self, agent: &str, text: &str) {
        let _ = self
            .events
            .send(core::Ev::Inject {
                agent: agent.to_string(),
                text: text.to_string(),
            })
            .await;
    }

    /// Stop: the listener and every session go at once.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve(
    tcp: tokio::net::TcpStream,
    from: SocketAddr,
    cfg: ServerConfig,
    ev: mpsc::Sender<core::Ev>,
    mut stop: watch::Receiver<bool>,
) {
    let mut s = match session::accept(tcp, &cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%from, error = %e, "XMPP open failed");
            return;
        }
    };
    let conn = CONN.fetch_add(1, Ordering::Relaxed);
    let (close_tx, mut close_rx) = oneshot::channel::<String>();
    if ev
        .send(core::Ev::Connected {
            conn,
            name: s.peer.clone(),
            tx: s.sender(),
            close: close_tx,
        })
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(%from, agent = %s.peer, "agent session established");
    loop {
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { break },
            why = &mut close_rx => {
                tracing::info!(agent = %s.peer, reason = ?why.ok(), "closing the session");
                break;
            }
            e = s.recv() => match e {
                Event::Stanza(text) => {
                    if ev.send(core::Ev::Stanza { conn, text }).await.is_err() {
                        break;
                    }
                }
                Event::Closed(reason) => {
                    tracing::info!(agent = %s.peer, %reason, "agent session closed");
                    break;
                }
            }
        }
    }
    let _ = ev.send(core::Ev::Closed { conn }).await;
}
