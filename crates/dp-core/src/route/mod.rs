//! Routes: per-VRF IPv4/IPv6 longest-prefix match and the bridge (MAC) table.

pub mod mtrie;

use crate::error::ConfigError;
use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashMap;
use mtrie::{Mtrie4, Mtrie6};

/// Upstream `VR_RT_*_FLAG` (inet routes).
pub mod rt_flags {
    pub const LABEL_VALID: u8 = 0x1;
    pub const ARP_PROXY: u8 = 0x2;
    pub const ARP_TRAP: u8 = 0x4;
    pub const ARP_FLOOD: u8 = 0x8;
}

/// Upstream `VR_BE_*_FLAG` (bridge entries).
pub mod be_flags {
    pub const VALID: u16 = 0x01;
    pub const LABEL_VALID: u16 = 0x02;
    pub const FLOOD_DHCP: u16 = 0x04;
}

/// What an inet route resolves to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteData {
    pub nh: u32,
    /// MPLS label (or VNI) to push when the next hop is a tunnel.
    pub label: u32,
    /// `rt_flags::*`.
    pub flags: u8,
    /// The MAC a proxy-ARP/NDP answer gives for this address ("stitched"
    /// MAC); zero means "the vRouter's MAC on the asking vif".
    pub mac: [u8; 6],
}

impl RouteData {
    #[inline]
    pub fn label(&self) -> Option<u32> {
        (self.flags & rt_flags::LABEL_VALID != 0).then_some(self.label)
    }
}

/// What a bridge entry resolves to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeEntry {
    pub nh: u32,
    pub label: u32,
    /// `be_flags::*`.
    pub flags: u16,
}

impl BridgeEntry {
    #[inline]
    pub fn label(&self) -> Option<u32> {
        (self.flags & be_flags::LABEL_VALID != 0).then_some(self.label)
    }
}

/// The prefix of a route request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    V4([u8; 4], u8),
    V6([u8; 16], u8),
    Mac([u8; 6]),
}

fn mtrie_err(e: mtrie::MtrieError) -> ConfigError {
    match e {
        mtrie::MtrieError::InvalidPrefixLen => ConfigError::Invalid("prefix length"),
        mtrie::MtrieError::OutOfMemory => ConfigError::NoSpace("route table memory"),
    }
}

/// One VRF's routing tables.
pub struct Vrf {
    pub inet4: Mtrie4<RouteData>,
    pub inet6: Mtrie6<RouteData>,
}

/// All VRFs plus the bridge table (keyed by VRF and MAC, like upstream's
/// single bridge hash table).
pub struct RouteTables {
    vrfs: Vec<Option<Box<Vrf>>>,
    bridge: HashMap<(u16, [u8; 6]), BridgeEntry>,
    bridge_max: usize,
    /// Routes (inet and bridge, all VRFs) per next hop: whether a next hop
    /// is still routed to, without walking every table when one goes.
    nh_users: HashMap<u32, u32>,
}

impl RouteTables {
    pub(crate) fn new(max_vrfs: u16, bridge_entries: u32) -> Self {
        let mut vrfs = Vec::with_capacity(max_vrfs as usize);
        vrfs.resize_with(max_vrfs as usize, || None);
        RouteTables {
            vrfs,
            // Reserve up front so inserts below the limit never reallocate.
            bridge: HashMap::with_capacity(bridge_entries as usize),
            bridge_max: bridge_entries as usize,
            nh_users: HashMap::new(),
        }
    }

    /// How many routes (inet and bridge, in any VRF) lead to next hop `nh`.
    pub fn nh_users(&self, nh: u32) -> u32 {
        self.nh_users.get(&nh).copied().unwrap_or(0)
    }

    fn count(&mut self, added: Option<u32>, removed: Option<u32>) {
        if added == removed {
            return;
        }
        if let Some(nh) = added {
            *self.nh_users.entry(nh).or_insert(0) += 1;
        }
        if let Some(nh) = removed {
            if let Some(n) = self.nh_users.get_mut(&nh) {
                *n -= 1;
                if *n == 0 {
                    self.nh_users.remove(&nh);
                }
            }
        }
    }

    pub fn max_vrfs(&self) -> u16 {
        self.vrfs.len() as u16
    }

    #[inline]
    pub fn vrf(&self, vrf: u16) -> Option<&Vrf> {
        self.vrfs.get(vrf as usize)?.as_deref()
    }

    fn vrf_mut(&mut self, vrf: u16) -> Result<&mut Vrf, ConfigError> {
        let slot = self
            .vrfs
            .get_mut(vrf as usize)
            .ok_or(ConfigError::OutOfRange("vrf"))?;
        // VRFs come into being with their first route, as upstream.
        Ok(slot.get_or_insert_with(|| {
            Box::new(Vrf {
                inet4: Mtrie4::new(),
                inet6: Mtrie6::new(),
            })
        }))
    }

    /// Add or replace a route.
    pub(crate) fn add(
        &mut self,
        vrf: u16,
        prefix: Prefix,
        data: RouteData,
    ) -> Result<(), ConfigError> {
        let old = match prefix {
            Prefix::V4(a, l) => self
                .vrf_mut(vrf)?
                .inet4
                .insert(a, l, data)
                .map_err(mtrie_err)?
                .map(|d| d.nh),
            Prefix::V6(a, l) => self
                .vrf_mut(vrf)?
                .inet6
                .insert(a, l, data)
                .map_err(mtrie_err)?
                .map(|d| d.nh),
            Prefix::Mac(mac) => {
                let label_flag = if data.flags & rt_flags::LABEL_VALID != 0 {
                    be_flags::LABEL_VALID
                } else {
                    0
                };
                let entry = BridgeEntry {
                    nh: data.nh,
                    label: data.label,
                    flags: be_flags::VALID | label_flag,
                };
                return self.add_bridge(vrf, mac, entry);
            }
        };
        self.count(Some(data.nh), old);
        Ok(())
    }

    /// Add or replace a bridge entry with explicit `VR_BE_*` flags.
    pub(crate) fn add_bridge(
        &mut self,
        vrf: u16,
        mac: [u8; 6],
        entry: BridgeEntry,
    ) -> Result<(), ConfigError> {
        if vrf as usize >= self.vrfs.len() {
            return Err(ConfigError::OutOfRange("vrf"));
        }
        if !self.bridge.contains_key(&(vrf, mac)) && self.bridge.len() >= self.bridge_max {
            return Err(ConfigError::NoSpace("bridge table"));
        }
        let old = self.bridge.insert((vrf, mac), entry).map(|e| e.nh);
        self.count(Some(entry.nh), old);
        Ok(())
    }

    pub(crate) fn delete(&mut self, vrf: u16, prefix: Prefix) -> Result<(), ConfigError> {
        let table = self.vrfs.get_mut(vrf as usize).and_then(|v| v.as_mut());
        let removed = match prefix {
            Prefix::V4(a, l) => table.and_then(|v| v.inet4.remove(a, l)).map(|d| d.nh),
            Prefix::V6(a, l) => table.and_then(|v| v.inet6.remove(a, l)).map(|d| d.nh),
            Prefix::Mac(mac) => self.bridge.remove(&(vrf, mac)).map(|e| e.nh),
        };
        match removed {
            Some(nh) => {
                self.count(None, Some(nh));
                Ok(())
            }
            None => Err(ConfigError::NotFound("route")),
        }
    }

    /// Exact-match read of a route (`vr_route_req` GET).
    pub fn get(&self, vrf: u16, prefix: Prefix) -> Option<RouteData> {
        match prefix {
            Prefix::V4(a, l) => self.vrf(vrf)?.inet4.get(a, l),
            Prefix::V6(a, l) => self.vrf(vrf)?.inet6.get(a, l),
            Prefix::Mac(mac) => self.bridge.get(&(vrf, mac)).map(|e| RouteData {
                nh: e.nh,
                label: e.label,
                flags: if e.flags & be_flags::LABEL_VALID != 0 {
                    rt_flags::LABEL_VALID
                } else {
                    0
                },
                mac,
            }),
        }
    }

    #[inline]
    pub fn lookup4(&self, vrf: u16, addr: &[u8; 4]) -> Option<RouteData> {
        self.vrf(vrf)?.inet4.lookup(addr).map(|(_, d)| d)
    }

    #[inline]
    pub fn lookup6(&self, vrf: u16, addr: &[u8; 16]) -> Option<RouteData> {
        self.vrf(vrf)?.inet6.lookup(addr).map(|(_, d)| d)
    }

    #[inline]
    pub fn bridge_lookup(&self, vrf: u16, mac: &[u8; 6]) -> Option<BridgeEntry> {
        self.bridge.get(&(vrf, *mac)).copied()
    }

    /// Bridge entries of one VRF (order unspecified).
    pub fn bridge_iter(&self, vrf: u16) -> impl Iterator<Item = ([u8; 6], BridgeEntry)> + '_ {
        self.bridge
            .iter()
            .filter(move |((v, _), _)| *v == vrf)
            .map(|((_, m), e)| (*m, *e))
    }

    pub fn bridge_len(&self) -> usize {
        self.bridge.len()
    }

    /// Drop a whole VRF (`vr_vrf_req` DEL / RESET).
    pub(crate) fn reset_vrf(&mut self, vrf: u16) {
        let mut gone: Vec<u32> = Vec::new();
        if let Some(t) = self.vrfs.get_mut(vrf as usize).and_then(Option::take) {
            gone.extend(t.inet4.iter().map(|(_, _, d)| d.nh));
            gone.extend(t.inet6.iter().map(|(_, _, d)| d.nh));
        }
        self.bridge.retain(|(v, _), e| {
            if *v == vrf {
                gone.push(e.nh);
            }
            *v != vrf
        });
        for nh in gone {
            self.count(None, Some(nh));
        }
    }
}

/// Label -> next hop (upstream `vr_mpls`), a flat array like upstream.
pub struct MplsTable {
    nh: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl MplsTable {
    pub(crate) fn new(max_labels: u32) -> Self {
        let mut nh = Vec::with_capacity(max_labels as usize);
        nh.resize(max_labels as usize, NONE);
        MplsTable { nh }
    }

    pub fn capacity(&self) -> u32 {
        self.nh.len() as u32
    }

    #[inline]
    pub fn get(&self, label: u32) -> Option<u32> {
        self.nh.get(label as usize).copied().filter(|n| *n != NONE)
    }

    pub(crate) fn set(&mut self, label: u32, nh: u32) -> Result<(), ConfigError> {
        *self
            .nh
            .get_mut(label as usize)
            .ok_or(ConfigError::OutOfRange("mpls label"))? = nh;
        Ok(())
    }

    pub(crate) fn remove(&mut self, label: u32) -> Result<(), ConfigError> {
        let slot = self
            .nh
            .get_mut(label as usize)
            .ok_or(ConfigError::OutOfRange("mpls label"))?;
        if *slot == NONE {
            return Err(ConfigError::NotFound("mpls label"));
        }
        *slot = NONE;
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.nh
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != NONE)
            .map(|(l, n)| (l as u32, *n))
    }
}

/// VNI -> next hop (upstream `vr_vxlan`). VNIs are 24-bit and sparse, so a
/// hash map bounded at creation.
pub struct VxlanTable {
    map: HashMap<u32, u32>,
    max: usize,
}

impl VxlanTable {
    pub(crate) fn new(max: u32) -> Self {
        VxlanTable {
            map: HashMap::with_capacity(max as usize),
            max: max as usize,
        }
    }

    #[inline]
    pub fn get(&self, vni: u32) -> Option<u32> {
        self.map.get(&vni).copied()
    }

    pub(crate) fn set(&mut self, vni: u32, nh: u32) -> Result<(), ConfigError> {
        if vni > 0x00ff_ffff {
            return Err(ConfigError::Invalid("vni"));
        }
        if !self.map.contains_key(&vni) && self.map.len() >= self.max {
            return Err(ConfigError::NoSpace("vxlan table"));
        }
        self.map.insert(vni, nh);
        Ok(())
    }

    pub(crate) fn remove(&mut self, vni: u32) -> Result<(), ConfigError> {
        self.map
            .remove(&vni)
            .map(|_| ())
            .ok_or(ConfigError::NotFound("vni"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.map.iter().map(|(v, n)| (*v, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(nh: u32) -> RouteData {
        RouteData {
            nh,
            ..Default::default()
        }
    }

    /// Routes counted per next hop through adds, replacements, deletes
    /// (found or not) and a VRF reset, inet and bridge alike.
    #[test]
    fn next_hop_users_follow_every_route_change() {
        let mut t = RouteTables::new(4, 16);
        let users = |t: &RouteTables| [5, 6, 7].map(|nh| t.nh_users(nh));
        t.add(1, Prefix::V4([10, 0, 0, 1], 32), to(5)).unwrap();
        t.add(1, Prefix::V4([10, 0, 0, 0], 24), to(5)).unwrap();
        t.add(2, Prefix::V6([1; 16], 128), to(6)).unwrap();
        t.add(1, Prefix::Mac([2, 0, 0, 0, 0, 1]), to(7)).unwrap();
        assert_eq!(users(&t), [2, 1, 1]);
        // Replaced: the old next hop loses a user, the new one gains it;
        // the same next hop again counts once.
        t.add(1, Prefix::V4([10, 0, 0, 1], 32), to(6)).unwrap();
        t.add(1, Prefix::V4([10, 0, 0, 1], 32), to(6)).unwrap();
        t.add(1, Prefix::Mac([2, 0, 0, 0, 0, 1]), to(5)).unwrap();
        assert_eq!(users(&t), [2, 2, 0]);
        // A delete of nothing counts nothing.
        assert!(t.delete(1, Prefix::V4([10, 9, 9, 9], 32)).is_err());
        assert!(t.delete(3, Prefix::Mac([2, 0, 0, 0, 0, 1])).is_err());
        t.delete(1, Prefix::V4([10, 0, 0, 1], 32)).unwrap();
        assert_eq!(users(&t), [2, 1, 0]);
        // A refused add (no such VRF) counts nothing.
        assert!(t.add(9, Prefix::V4([10, 0, 0, 2], 32), to(7)).is_err());
        t.reset_vrf(1);
        assert_eq!(users(&t), [0, 1, 0]);
        t.reset_vrf(2);
        assert_eq!(users(&t), [0, 0, 0]);
        assert!(t.nh_users.is_empty());
    }
}
