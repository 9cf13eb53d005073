//! The ports, in memory and on disk.
//!
//! Every port is a file `<dir>/<uuid>` holding its JSON, as upstream keeps
//! `/var/lib/contrail/ports/<uuid>`, and every VM subscription a file
//! `<dir>/vm/<vm uuid>/<vmi uuid>`, so both survive an agent restart. A file
//! is written to a temporary name and renamed, so a crash never leaves
//! half a port; a batch (a JSON array of ports) is written all or none.

use super::record::PortRecord;
use super::vm::VmPort;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;
use vnc_api::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("ports dir {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Default)]
struct Inner {
    ports: BTreeMap<Uuid, PortRecord>,
    /// VMI uuid -> subscription.
    vm_ports: BTreeMap<Uuid, VmPort>,
    /// `/syncports` generation each port was last announced in (upstream's
    /// version): ports older than the current one after a sync are stale.
    seen: HashMap<Uuid, u64>,
    generation: u64,
}

/// The ports, in memory and on disk.
pub struct PortStore {
    dir: PathBuf,
    inner: Mutex<Inner>,
    changed: tokio::sync::watch::Sender<u64>,
}

fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Files named by a uuid in `dir`, parsed; leftovers of an interrupted
/// write (`*.tmp`) are removed, unreadable files reported and left alone.
fn load<T: serde::de::DeserializeOwned>(dir: &Path) -> std::io::Result<Vec<(Uuid, T)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if !e.file_type()?.is_file() {
            continue;
        }
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
            .and_then(|b| serde_json::from_slice::<T>(&b).map_err(|e| e.to_string()))
        {
            Ok(v) => out.push((uuid, v)),
            Err(err) => {
                tracing::warn!(file = %e.path().display(), %err, "ignoring unreadable port file")
            }
        }
    }
    Ok(out)
}

impl PortStore {
    /// Load every port file of `dir` (created if missing) and the VM
    /// subscriptions under `dir/vm`.
    pub fn open(dir: &Path) -> Result<Arc<PortStore>, PortsError> {
        let io = |source| PortsError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut inner = Inner {
            ports: load::<PortRecord>(dir).map_err(io)?.into_iter().collect(),
            ..Inner::default()
        };
        let vm_dir = dir.join("vm");
        if let Ok(rd) = std::fs::read_dir(&vm_dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    inner
                        .vm_ports
                        .extend(load::<VmPort>(&e.path()).map_err(io)?);
                }
            }
        }
        tracing::info!(
            dir = %dir.display(),
            ports = inner.ports.len(),
            vm_ports = inner.vm_ports.len(),
            "ports restored"
        );
        let (changed, _) = tokio::sync::watch::channel(0);
        Ok(Arc::new(PortStore {
            dir: dir.to_owned(),
            inner: Mutex::new(inner),
            changed,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ports announced with `POST /port`.
    pub fn all(&self) -> BTreeMap<Uuid, PortRecord> {
        self.lock().ports.clone()
    }

    /// Every port the agent should program: those of `POST /port` and the
    /// VM subscriptions whose VMI is in `snap` (a `/port` wins over a
    /// subscription of the same VMI).
    pub fn effective(&self, snap: &Snapshot) -> BTreeMap<Uuid, PortRecord> {
        let g = self.lock();
        let mut out = g.ports.clone();
        for (vmi, sub) in &g.vm_ports {
            if !out.contains_key(vmi) {
                if let Some(rec) = sub.resolve(snap) {
                    out.insert(*vmi, rec);
                }
            }
        }
        out
    }

    /// `(port uuid, host interface)` of every port and subscription,
    /// config or not (to find their vifs in the datapath).
    pub fn names(&self) -> Vec<(Uuid, String)> {
        let g = self.lock();
        g.ports
            .iter()
            .map(|(u, r)| (*u, r.vif_name()))
            .chain(g.vm_ports.iter().map(|(u, s)| (*u, s.host_ifname.clone())))
            .collect()
    }

    /// The VMs of every port and VM subscription (what a controller is
    /// asked for: upstream's agent subscribes `virtual-machine:<uuid>`).
    pub fn vm_uuids(&self) -> std::collections::BTreeSet<Uuid> {
        let g = self.lock();
        g.ports
            .values()
            .map(|r| r.instance_id.as_str())
            .chain(g.vm_ports.values().map(|s| s.vm_uuid.as_str()))
            .filter_map(|s| Uuid::parse_str(s).ok())
            .filter(|u| !u.is_nil())
            .collect()
    }

    pub fn get(&self, id: &Uuid) -> Option<PortRecord> {
        self.lock().ports.get(id).cloned()
    }

    pub fn vm_ports(&self) -> BTreeMap<Uuid, VmPort> {
        self.lock().vm_ports.clone()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn file(&self, id: &Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Store `rec` (file first, then memory).
    pub fn put(&self, id: Uuid, rec: PortRecord) -> std::io::Result<()> {
        self.put_many(vec![(id, rec)])
    }

    /// Store several ports, all or none: if one file cannot be written, the
    /// ones written before it are put back as they were.
    pub fn put_many(&self, recs: Vec<(Uuid, PortRecord)>) -> std::io::Result<()> {
        let mut g = self.lock();
        let mut done: Vec<(Uuid, Option<PortRecord>)> = Vec::new();
        let mut failure = None;
        for (id, rec) in &recs {
            let r = serde_json::to_vec_pretty(rec)
                .map_err(std::io::Error::other)
                .and_then(|b| write_atomic(&self.file(id), &b));
            match r {
                Ok(()) => done.push((*id, g.ports.get(id).cloned())),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (id, old) in done {
                let undo = match old {
                    Some(o) => serde_json::to_vec_pretty(&o)
                        .map_err(std::io::Error::other)
                        .and_then(|b| write_atomic(&self.file(&id), &b)),
                    None => remove_if_exists(&self.file(&id)),
                };
                if let Err(u) = undo {
                    tracing::error!(port = %id, error = %u, "cannot undo a port file of a failed batch");
                }
            }
            return Err(e);
        }
        let generation = g.generation;
        for (id, rec) in recs {
            g.ports.insert(id, rec);
            g.seen.insert(id, generation);
        }
        drop(g);
        self.bump();
        Ok(())
    }

    /// Marks an unchanged port as announced again (after `/syncports`).
    pub fn touch(&self, id: &Uuid) {
        let mut g = self.lock();
        let generation = g.generation;
        g.seen.insert(*id, generation);
    }

    /// Remove a port; `false` if there was none.
    pub fn remove(&self, id: &Uuid) -> std::io::Result<bool> {
        let mut g = self.lock();
        remove_if_exists(&self.file(id))?;
        g.seen.remove(id);
        let had = g.ports.remove(id).is_some();
        drop(g);
        if had {
            self.bump();
        }
        Ok(had)
    }

    fn vm_file(&self, sub: &VmPort) -> (PathBuf, PathBuf) {
        let d = self.dir.join("vm").join(&sub.vm_uuid);
        let f = d.join(&sub.vmi_uuid);
        (d, f)
    }

    /// Store a VM subscription (keyed by its VMI).
    pub fn put_vm(&self, vmi: Uuid, sub: VmPort) -> std::io::Result<()> {
        let mut g = self.lock();
        let (d, f) = self.vm_file(&sub);
        std::fs::create_dir_all(&d)?;
        let b = serde_json::to_vec_pretty(&sub).map_err(std::io::Error::other)?;
        write_atomic(&f, &b)?;
        // A subscription moving to another VM leaves no file behind.
        if let Some(old) = g.vm_ports.get(&vmi).filter(|o| o.vm_uuid != sub.vm_uuid) {
            let (od, of) = self.vm_file(old);
            remove_if_exists(&of)?;
            let _ = std::fs::remove_dir(od);
        }
        let generation = g.generation;
        g.vm_ports.insert(vmi, sub);
        g.seen.insert(vmi, generation);
        drop(g);
        self.bump();
        Ok(())
    }

    /// Remove every subscription of VM `vm`; how many there were.
    pub fn remove_vm(&self, vm: &Uuid) -> std::io::Result<usize> {
        let mut g = self.lock();
        let vm_s = vm.to_string();
        let gone: Vec<Uuid> = g
            .vm_ports
            .iter()
            .filter(|(_, s)| s.vm_uuid == vm_s)
            .map(|(u, _)| *u)
            .collect();
        for u in &gone {
            if let Some(s) = g.vm_ports.get(u) {
                remove_if_exists(&self.vm_file(s).1)?;
            }
            g.vm_ports.remove(u);
            g.seen.remove(u);
        }
        let d = self.dir.join("vm").join(&vm_s);
        if d.exists() {
            let _ = std::fs::remove_dir_all(&d);
        }
        drop(g);
        if !gone.is_empty() {
            self.bump();
        }
        Ok(gone.len())
    }

    /// `/syncports`: starts a new generation; returns it. Ports and
    /// subscriptions not announced again by the time
    /// [`PortStore::sweep`] runs with this generation are stale.
    pub fn start_sync(&self) -> u64 {
        let mut g = self.lock();
        g.generation += 1;
        g.generation
    }

    /// Removes what was not announced since sync `generation` began, unless
    /// a newer sync started meanwhile (then that one sweeps). Returns the
    /// removed uuids.
    pub fn sweep(&self, generation: u64) -> std::io::Result<Vec<Uuid>> {
        let (ports, vms): (Vec<Uuid>, Vec<Uuid>) = {
            let g = self.lock();
            if g.generation != generation {
                return Ok(Vec::new());
            }
            let stale = |u: &Uuid| g.seen.get(u).copied().unwrap_or(0) < generation;
            (
                g.ports.keys().filter(|u| stale(u)).copied().collect(),
                g.vm_ports.keys().filter(|u| stale(u)).copied().collect(),
            )
        };
        let mut out = Vec::new();
        for u in ports {
            if self.remove(&u)? {
                out.push(u);
            }
        }
        for vmi in vms {
            let mut g = self.lock();
            if let Some(s) = g.vm_ports.remove(&vmi) {
                remove_if_exists(&self.vm_file(&s).1)?;
                let _ = std::fs::remove_dir(self.vm_file(&s).0);
                g.seen.remove(&vmi);
                out.push(vmi);
            }
        }
        if !out.is_empty() {
            self.bump();
        }
        Ok(out)
    }
}
