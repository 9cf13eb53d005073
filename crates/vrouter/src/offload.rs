//! The host side of a kernel fast path (`vrouter --fast-path`): which
//! flows are installed, keeping them exact, and folding the kernel's
//! counters back into the flow table.
//!
//! The core reports flows it forwarded with an action the fast path
//! reproduces ([`dp_core::OffloadHint`]); [`Offloader`] installs them
//! through a platform [`FastPath`] (Linux: TC + socket-filter BPF,
//! `crate::linux::TcFastPath`). Rules that keep it exact:
//! - a ksync buffer that only changes routes, vifs, MPLS labels or VXLAN
//!   VNIs, adds objects or deletes next hops no lookup leads to removes
//!   the entries of the flows those changes may redirect
//!   ([`Router::offload_depends_on`]: the flow's addresses or MACs in a
//!   route's prefix, a tunnelled flow and a fabric route, the flow's own
//!   vifs, the label it was decapsulated with): in a cluster every
//!   container started or stopped anywhere changes routes on every host,
//!   and each used to empty the fast path;
//! - every other control command that may change forwarding state (a next
//!   hop in use changed or deleted, a VRF deleted, vRouter settings, more
//!   than 64 such changes in one buffer) folds the counters and removes
//!   *all* entries; the next packet of each flow goes through the core
//!   again and re-installs it;
//! - a ksync buffer of flow requests only removes the entries of the flows
//!   it created, changed or deleted (and their reverse flows): the agent
//!   sets up flows all the time, and each setup used to empty the fast
//!   path, with a lost packet per flow in flight each time;
//! - once a second the counters are folded into the flow entries (the
//!   agent ages flows by them) and an entry whose flow no longer has the
//!   same key, generation and plain FORWARD action is removed;
//! - a container's port that closes has the entries of flows in or out of
//!   it and its program removed (the others stay); the fabric's port
//!   closing removes every entry;
//! - flows into or out of a tunnel are offloaded only once the fabric port
//!   accepted [`FastPath::fabric`].

use crate::port::Port;
use dp_core::{ConfigChange, OffloadHint, Router};
use std::collections::HashMap;
use std::io;

/// A kernel fast path on one platform.
pub trait FastPath: Send {
    /// Start offloading frames received on `port` (a VM port).
    fn attach(&mut self, port: &dyn Port) -> io::Result<()>;
    /// Encapsulated flows will be redirected to `port` (the fabric), and
    /// decapsulated ones taken from it; an error (`Unsupported`: not
    /// wanted) keeps them in user space.
    fn fabric(&mut self, port: &dyn Port) -> io::Result<()> {
        let _ = port;
        Ok(())
    }
    /// Stop offloading on the interface `os_index` (its port is closing).
    fn detach(&mut self, os_index: u32);
    /// Forward the flow of `h`, arriving on `in_os`, to `out_os`.
    fn insert(&mut self, in_os: u32, out_os: u32, h: &OffloadHint) -> io::Result<()>;
    fn remove(&mut self, in_os: u32, h: &OffloadHint);
    /// Remove every entry, `entries` being all of them (a configuration
    /// change); by default one by one.
    fn remove_all(&mut self, entries: &mut dyn Iterator<Item = (u32, &OffloadHint)>) {
        for (in_os, h) in entries {
            self.remove(in_os, h);
        }
    }
    /// Packets and bytes forwarded for the entry since it was inserted.
    fn counters(&self, in_os: u32, h: &OffloadHint) -> Option<(u64, u64)>;
    /// Called with every fold (about once a second): deferred cleanup.
    fn tick(&mut self) {}
}

/// Counters of the fast path's bookkeeping (`DpStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffloadStats {
    pub installed: u64,
    pub install_errors: u64,
    pub removed: u64,
    pub flushes: u64,
    /// Packets and bytes the fast path forwarded, folded into flows.
    pub packets: u64,
    pub bytes: u64,
    /// Entries now in the kernel.
    pub active: u64,
    /// Entries removed because a flow request changed their flow.
    pub forgotten: u64,
    /// Entries removed because a route, vif or label their flow may depend
    /// on changed.
    pub rerouted: u64,
    /// Buffers of such changes that searched the entries instead of
    /// removing them all (a flush is counted in `flushes`).
    pub scoped_changes: u64,
    /// Of `installed` and `packets`: decapsulation entries (fabric to VM).
    pub decap_installed: u64,
    pub decap_packets: u64,
}

struct Installed {
    hint: OffloadHint,
    in_os: u32,
    packets: u64,
    bytes: u64,
}

/// The flows installed in a [`FastPath`], by flow index.
pub struct Offloader {
    fp: Box<dyn FastPath>,
    installed: HashMap<u32, Installed>,
    /// VM ports the fast path is attached to: vif index → OS index.
    attached: HashMap<u16, u32>,
    /// Fabric (physical) ports encapsulated flows may leave by.
    fabric: HashMap<u16, u32>,
    stats: OffloadStats,
}

impl Offloader {
    pub fn new(fp: Box<dyn FastPath>) -> Offloader {
        Offloader {
            fp,
            installed: HashMap::new(),
            attached: HashMap::new(),
            fabric: HashMap::new(),
            stats: OffloadStats::default(),
        }
    }

    pub fn stats(&self) -> OffloadStats {
        OffloadStats {
            active: self.installed.len() as u64,
            ..self.stats
        }
    }

    /// Whether flow `idx` has an entry in the fast path.
    pub fn is_installed(&self, idx: u32) -> bool {
        self.installed.contains_key(&idx)
    }

    /// A VM port opened for `vif`.
    pub fn port_opened(&mut self, vif: u16, port: &dyn Port) {
        let Some(os) = port.os_index() else {
            return;
        };
        match self.fp.attach(port) {
            Ok(()) => {
                self.attached.insert(vif, os);
            }
            Err(e) => {
                tracing::warn!(vif, port = port.name(), error = %e, "fast path not attached: this port's frames all take the user-space path");
            }
        }
    }

    /// A fabric port opened for the physical `vif`: encapsulated flows
    /// may be redirected to it (nothing is attached to it).
    pub fn fabric_opened(&mut self, vif: u16, port: &dyn Port) {
        let Some(os) = port.os_index() else {
            return;
        };
        match self.fp.fabric(port) {
            Ok(()) => {
                self.fabric.insert(vif, os);
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::debug!(vif, port = port.name(), error = %e, "fast path: encapsulated flows take the user-space path");
            }
            Err(e) => {
                tracing::warn!(vif, port = port.name(), error = %e, "fast path: encapsulated flows take the user-space path");
            }
        }
    }

    /// The port of `vif` is closing.
    pub fn port_closing(&mut self, router: &mut Router, vif: u16) {
        if let Some(os) = self.fabric.remove(&vif) {
            self.flush(router);
            self.fp.detach(os);
        }
        // A container's port: only the entries in or out of it go (a
        // container stopping must not empty the fast path of the others).
        if let Some(os) = self.attached.remove(&vif) {
            self.forget_changed(router, &[ConfigChange::Vif(vif)]);
            self.fp.detach(os);
        }
    }

    /// Install what the core reported since the last call.
    pub fn take_hints(&mut self, router: &mut Router) {
        let Offloader {
            fp,
            installed,
            attached,
            fabric,
            stats,
        } = self;
        router.take_offload_hints(|h| {
            let out = if h.tunnel.is_some() {
                fabric.get(&h.out_vif)
            } else {
                attached.get(&h.out_vif)
            };
            let inp = if h.decap.is_some() {
                fabric.get(&h.in_vif)
            } else {
                attached.get(&h.in_vif)
            };
            let (Some(&in_os), Some(&out_os)) = (inp, out) else {
                return;
            };
            if let Some(old) = installed.get(&h.flow) {
                if old.hint == *h {
                    return;
                }
            }
            // A flow index reused for another key: the old entry goes
            // (its last counters are lost with its flow).
            if let Some(old) = installed.remove(&h.flow) {
                fp.remove(old.in_os, &old.hint);
                stats.removed += 1;
            }
            match fp.insert(in_os, out_os, h) {
                Ok(()) => {
                    stats.installed += 1;
                    stats.decap_installed += u64::from(h.decap.is_some());
                    installed.insert(
                        h.flow,
                        Installed {
                            hint: *h,
                            in_os,
                            packets: 0,
                            bytes: 0,
                        },
                    );
                }
                Err(e) => {
                    stats.install_errors += 1;
                    if stats.install_errors.is_power_of_two() {
                        tracing::warn!(flow = h.flow, error = %e, errors = stats.install_errors, "fast path insert failed");
                    }
                }
            }
        });
    }

    /// Fold the kernel's counters into the flow table; remove entries
    /// that are no longer exact.
    pub fn fold(&mut self, router: &mut Router) {
        let Offloader {
            fp,
            installed,
            stats,
            ..
        } = self;
        fp.tick();
        installed.retain(|_, e| {
            let keep = fold_entry(fp.as_ref(), router, e, stats);
            if !keep {
                fp.remove(e.in_os, &e.hint);
                stats.removed += 1;
            }
            keep
        });
    }

    /// Flow requests changed `flows` (and nothing else): fold and remove
    /// their entries; the others stay.
    pub fn forget(&mut self, router: &mut Router, flows: &[u32]) {
        for idx in flows {
            if self.remove_entry(router, *idx) {
                self.stats.forgotten += 1;
            }
        }
    }

    /// Fold and remove the entry of flow `idx`; false if none was
    /// installed.
    fn remove_entry(&mut self, router: &mut Router, idx: u32) -> bool {
        let Some(mut e) = self.installed.remove(&idx) else {
            return false;
        };
        fold_entry(self.fp.as_ref(), router, &mut e, &mut self.stats);
        self.fp.remove(e.in_os, &e.hint);
        self.stats.removed += 1;
        true
    }

    /// Routes, vifs or labels changed: fold and remove the entries whose
    /// flows they may redirect ([`Router::offload_depends_on`]); the others
    /// stay.
    pub fn forget_changed(&mut self, router: &mut Router, changes: &[ConfigChange]) {
        if changes.is_empty() || self.installed.is_empty() {
            return;
        }
        let gone: Vec<u32> = self
            .installed
            .iter()
            .filter(|(_, e)| {
                changes
                    .iter()
                    .any(|c| router.offload_depends_on(&e.hint, c))
            })
            .map(|(i, _)| *i)
            .collect();
        for idx in gone {
            if self.remove_entry(router, idx) {
                self.stats.rerouted += 1;
            }
        }
        self.stats.scoped_changes += 1;
    }

    /// Fold, then remove every entry (configuration changed).
    pub fn flush(&mut self, router: &mut Router) {
        if self.installed.is_empty() {
            return;
        }
        self.fold(router);
        self.fp
            .remove_all(&mut self.installed.values().map(|e| (e.in_os, &e.hint)));
        self.stats.removed += self.installed.len() as u64;
        self.installed.clear();
        self.stats.flushes += 1;
    }
}

/// Fold the kernel's counters of `e` into its flow; false when the flow no
/// longer has the entry's decision (the counters since the last fold are
/// then lost with it).
fn fold_entry(
    fp: &dyn FastPath,
    router: &mut Router,
    e: &mut Installed,
    stats: &mut OffloadStats,
) -> bool {
    let (p, b) = fp
        .counters(e.in_os, &e.hint)
        .unwrap_or((e.packets, e.bytes));
    let (dp, db) = (p.saturating_sub(e.packets), b.saturating_sub(e.bytes));
    (e.packets, e.bytes) = (p, b);
    let keep = router.fold_offloaded(&e.hint, dp, db);
    if keep {
        stats.packets += dp;
        stats.bytes += db;
        if e.hint.decap.is_some() {
            stats.decap_packets += dp;
        }
    }
    keep
}
