//! Where the configuration comes from: the embedded store (one host, the
//! default) or the control nodes (IF-MAP over XMPP). The model reads both
//! through the same [`vnc_api::Snapshot`].

use tokio::sync::watch;
use vnc_api::{Snapshot, Store};

/// A source of configuration snapshots and change notifications.
pub trait ConfigView: Send + Sync + 'static {
    /// A consistent view of every object.
    fn snapshot(&self) -> anyhow::Result<Snapshot>;
    /// Announces each new revision.
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Whether a port's config may arrive after the port: with control
    /// nodes the agent asks for a VM's config only once it knows the
    /// VM's port, so a port for a network not seen yet is kept. The
    /// embedded store is local and complete: such a port is refused.
    fn arrives_after_ports(&self) -> bool {
        false
    }
}

impl ConfigView for Store {
    fn snapshot(&self) -> anyhow::Result<Snapshot> {
        Ok(Store::snapshot(self)?)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        Store::subscribe(self)
    }
}

/// `--config-source`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The embedded store and its VNC API on this host.
    #[default]
    Embedded,
    /// The control nodes of a cluster, over XMPP.
    Controller,
}
