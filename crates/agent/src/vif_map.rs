//! The vif index of every port, kept in `<state-dir>/vifs.json` so that an
//! agent restarted on a fresh datapath (both restarted, a reboot) programs
//! every port on the vif it had before: the datapath's state is then the
//! same as before the restart, not just the same in number.
//!
//! Precedence when the agent starts: the index of a port whose interface
//! the datapath still has (found by name in a dump, as upstream's agent
//! re-learns its interfaces from the kernel), then the saved index, then
//! the lowest free one ([`crate::model::build`]).
//!
//! The VRF of every virtual network is kept the same way, in
//! `<state-dir>/vrfs.json` ([`crate::model::assign_vrfs`]).

use std::collections::BTreeMap;
use std::path::Path;
use uuid::Uuid;

/// The saved map; empty when there is none or it does not parse (it is
/// only a preference: indices are derived again). `what` names it in logs.
pub fn load(path: &Path, what: &str) -> BTreeMap<Uuid, u16> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    match serde_json::from_str::<BTreeMap<Uuid, u16>>(&text) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "{what} map unreadable; deriving afresh");
            BTreeMap::new()
        }
    }
}

/// Write `map` if it differs from `saved` (what was written last), through
/// a temporary file and a rename so a crash leaves the old or the new map.
pub fn save_if_changed(
    path: &Path,
    what: &str,
    map: &BTreeMap<Uuid, u16>,
    saved: &mut BTreeMap<Uuid, u16>,
) {
    if map == saved {
        return;
    }
    let tmp = path.with_extension("json.tmp");
    let res = serde_json::to_vec_pretty(map)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, path));
    match res {
        Ok(()) => saved.clone_from(map),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the {what} map")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vifs.json");
        assert!(load(&p, "vif index").is_empty());
        let mut m = BTreeMap::new();
        m.insert(Uuid::from_u128(1), 3u16);
        m.insert(Uuid::from_u128(2), 7u16);
        let mut saved = BTreeMap::new();
        save_if_changed(&p, "vif index", &m, &mut saved);
        assert_eq!(saved, m);
        assert_eq!(load(&p, "vif index"), m);
        std::fs::write(&p, "not json").unwrap();
        assert!(load(&p, "vif index").is_empty());
    }
}
