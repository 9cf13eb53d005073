//! The configuration learned from the control node: the IF-MAP graph,
//! served to the model as VNC objects.
//!
//! A virtual network normally carries its `virtual_network_network_id`
//! (the config API allocates it, and the VRF id is taken from it as in
//! embedded mode). When one does not (upstream's test configurations), a
//! local id is allocated and kept in `<state-dir>/controller-vn-ids.json`
//! so that a restarted agent uses the same VRF.

use crate::source::ConfigView;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use vnc_api::Snapshot;
use xmpp::ifmap::graph::Graph;
use xmpp::ifmap::Change;

/// Largest VRF id a local allocation uses (the datapath's VRF table).
const MAX_LOCAL_VN_ID: u64 = 4095;

struct Inner {
    graph: Graph,
    revision: u64,
    local_ids: BTreeMap<String, u64>,
}

pub struct ControllerConfig {
    inner: Mutex<Inner>,
    tx: watch::Sender<u64>,
    ids_path: PathBuf,
}

impl ControllerConfig {
    pub fn open(state_dir: &std::path::Path) -> Arc<ControllerConfig> {
        let ids_path = state_dir.join("controller-vn-ids.json");
        let local_ids = std::fs::read(&ids_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let (tx, _) = watch::channel(0);
        Arc::new(ControllerConfig {
            inner: Mutex::new(Inner {
                graph: Graph::default(),
                revision: 0,
                local_ids,
            }),
            tx,
            ids_path,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, inner: &mut Inner) {
        inner.revision += 1;
        self.tx.send_replace(inner.revision);
    }

    /// Apply IF-MAP changes; whether anything changed.
    pub fn apply(&self, changes: &[Change]) -> bool {
        let mut i = self.lock();
        let changed = i.graph.apply(changes);
        if changed {
            self.bump(&mut i);
        }
        changed
    }

    /// Replace the whole graph (a new control node's full config).
    pub fn replace(&self, graph: Graph) {
        let mut i = self.lock();
        i.graph = graph;
        self.bump(&mut i);
    }

    pub fn is_empty(&self) -> bool {
        self.lock().graph.node_count() == 0
    }

    /// (nodes, links, revision).
    pub fn stats(&self) -> (usize, usize, u64) {
        let i = self.lock();
        (i.graph.node_count(), i.graph.link_count(), i.revision)
    }
}

impl ConfigView for ControllerConfig {
    fn arrives_after_ports(&self) -> bool {
        true
    }

    fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut i = self.lock();
        let mut b = Snapshot::builder(i.revision);
        let mut vns: Vec<(uuid::Uuid, Value)> = Vec::new();
        let mut taken: BTreeSet<u64> = BTreeSet::new();
        for (ty, uuid, obj) in i.graph.objects() {
            if ty == "virtual-network" {
                if let Some(id) = obj
                    .get("virtual_network_network_id")
                    .and_then(Value::as_u64)
                {
                    taken.insert(id);
                }
                vns.push((uuid, obj));
            } else {
                b.insert(ty, uuid, obj);
            }
        }
        let mut allocated = false;
        let names: BTreeSet<String> = vns
            .iter()
            .filter(|(_, o)| o.get("virtual_network_network_id").is_none())
            .map(|(_, o)| crate::model::fq_name(o))
            .collect();
        // Forget local ids of VNs that now carry their own or are gone.
        let before = i.local_ids.len();
        i.local_ids.retain(|n, _| names.contains(n));
        allocated |= before != i.local_ids.len();
        taken.extend(i.local_ids.values().copied());
        for (uuid, mut obj) in vns {
            if obj.get("virtual_network_network_id").is_none() {
                let name = crate::model::fq_name(&obj);
                let id = match i.local_ids.get(&name) {
                    Some(id) => Some(*id),
                    None => {
                        let free = (1..=MAX_LOCAL_VN_ID).rev().find(|n| !taken.contains(n));
                        if let Some(n) = free {
                            taken.insert(n);
                            i.local_ids.insert(name, n);
                            allocated = true;
                        }
                        free
                    }
                };
                if let (Some(id), Some(m)) = (id, obj.as_object_mut()) {
                    m.insert("virtual_network_network_id".into(), json!(id));
                }
            }
            b.insert("virtual-network", uuid, obj);
        }
        if allocated {
            if let Ok(bytes) = serde_json::to_vec(&i.local_ids) {
                if let Err(e) = std::fs::write(&self.ids_path, bytes) {
                    tracing::warn!(path = %self.ids_path.display(), error = %e, "keeping local VN ids");
                }
            }
        }
        Ok(b.build())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp::stanza::{IqBody, Stanza};

    #[test]
    fn upstream_config_becomes_a_model() {
        let text = include_str!(
            "../../../xmpp/tests/upstream/ifmap-config-cn-to-agent/cli1_vn1_vm3_add.master_output"
        );
        let dir = tempfile::tempdir().unwrap();
        let c = ControllerConfig::open(dir.path());
        for part in text.split("</iq>").filter(|p| p.contains("<iq")) {
            let Stanza::Iq(iq) = Stanza::parse(&format!("{part}</iq>")).unwrap() else {
                panic!()
            };
            let IqBody::Config(cfg) = iq.body else {
                panic!()
            };
            c.apply(&xmpp::ifmap::parse_config(&cfg).0);
        }
        let snap = c.snapshot().unwrap();
        assert_eq!(snap.len("virtual-network"), 1);
        let mut vifs = std::collections::BTreeMap::new();
        let m = crate::model::build(
            &snap,
            &Default::default(),
            &mut vifs,
            crate::model::Limits {
                max_vifs: 64,
                max_vrfs: 4096,
            },
        );
        let vn = m.vns.values().next().unwrap();
        assert_eq!(vn.fq_name, "default-domain:demo:vn27");
        assert_eq!(vn.vrf, 4095);
        assert_eq!(vn.ri, "default-domain:demo:vn27:vn27");
        assert_eq!(vn.subnets.len(), 1);
        // The id is kept for the next start.
        let c2 = ControllerConfig::open(dir.path());
        assert_eq!(
            c2.lock().local_ids.get("default-domain:demo:vn27"),
            Some(&4095)
        );
    }
}
