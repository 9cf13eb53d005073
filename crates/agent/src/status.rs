//! What the agent's tasks report about themselves, shared with introspect
//! and metrics (a separate module so that the tasks and introspect do not
//! import each other).

use crate::flows::FlowStats;
use crate::program::State;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What the tasks report, for introspect and metrics.
#[derive(Default)]
pub struct Shared {
    pub ksync_connected: bool,
    pub reconciles: u64,
    pub last_reconcile_changes: usize,
    pub last_reconcile_ms: u64,
    pub requests_applied: u64,
    pub program_errors: u64,
    pub last_error: Option<String>,
    pub applied: Arc<State>,
    pub flow_stats: FlowStats,
    /// Flow pairs the agent tracks (refreshed every aging tick, 250 ms).
    pub tracked_flows: usize,
    /// Asks the flow task for its flows: the `/flows` view is built on
    /// request, not kept up to date (formatting every tracked flow once a
    /// second cost the flow task 5-7% of its time under a flood).
    pub flow_query: Option<FlowQuery>,
    pub pkt0_rx: u64,
    pub pkt0_tx: u64,
    pub services: BTreeMap<&'static str, u64>,
    /// Why the agent cannot run against this datapath (its tables are too
    /// small for the agent's limits): the agent stops and says so.
    pub fatal: Option<String>,
}

pub type SharedRef = Arc<Mutex<Shared>>;

/// A request for the flow task's flows, answered on the oneshot.
pub type FlowQuery = tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Vec<FlowView>>>;

pub fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn shared() -> SharedRef {
    Arc::new(Mutex::new(Shared::default()))
}

#[derive(Clone, Debug, Serialize)]
pub struct FlowView {
    pub index: u32,
    pub gen: u8,
    pub reverse: Option<u32>,
    pub proto: u8,
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    pub nh: u32,
    pub action: &'static str,
    pub why: String,
}
