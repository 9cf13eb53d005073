//! Interfaces (upstream `vr_interface`): the ports of the vRouter.

use crate::error::ConfigError;
use alloc::vec::Vec;

/// Interface type, upstream `VIF_TYPE_*` numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum VifType {
    /// vhost: the host's own stack.
    Host = 0,
    /// pkt0: the agent.
    Agent = 1,
    /// The fabric NIC.
    Physical = 2,
    /// A container or VM port.
    Virtual = 3,
}

impl TryFrom<u16> for VifType {
    type Error = ConfigError;
    fn try_from(v: u16) -> Result<Self, ConfigError> {
        Ok(match v {
            0 => VifType::Host,
            1 => VifType::Agent,
            2 => VifType::Physical,
            3 => VifType::Virtual,
            _ => return Err(ConfigError::Invalid("vif type")),
        })
    }
}

bitflags::bitflags! {
    /// Upstream `VIF_FLAG_*`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct VifFlags: u32 {
        const POLICY_ENABLED = 0x1;
        const XCONNECT = 0x2;
        const SERVICE_IF = 0x4;
        const MIRROR_RX = 0x8;
        const MIRROR_TX = 0x10;
        const TX_CSUM_OFFLOAD = 0x20;
        const L3_ENABLED = 0x40;
        const L2_ENABLED = 0x80;
        const DHCP_ENABLED = 0x100;
        const VHOST_PHYS = 0x200;
        const PROMISCOUS = 0x400;
        const NATIVE_VLAN_TAG = 0x800;
        const NO_ARP_PROXY = 0x1000;
        const PMD = 0x2000;
        const FILTERING_OFFLOAD = 0x4000;
        const MONITORED = 0x8000;
        const UNKNOWN_UC_FLOOD = 0x10000;
        const VLAN_OFFLOAD = 0x20000;
        const DROP_NEW_FLOWS = 0x40000;
        const MAC_LEARN = 0x80000;
        const MAC_PROXY = 0x100000;
        const _ = !0;
    }
}

/// Interface names are kept for dumps; upstream's limit is IFNAMSIZ-ish,
/// Windows adapter names are longer, so allow 64 bytes.
pub const VIF_NAME_MAX: usize = 64;

/// What the configuration API sets on a vif (`vr_interface_req` subset the
/// forwarding core acts on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifConfig {
    pub idx: u16,
    pub vif_type: VifType,
    pub name: heapless_name::Name,
    /// Host OS interface index (ifindex on Linux, NDIS port on Windows).
    pub os_idx: u32,
    /// The vRouter's MAC on this port (upstream sets 00:00:5e:00:01:00 on
    /// VM ports: the source MAC of routed packets and proxy-ARP answers).
    pub mac: [u8; 6],
    pub ip: [u8; 4],
    pub ip6: [u8; 16],
    pub vrf: u16,
    pub mtu: u16,
    pub flags: VifFlags,
    /// The interface's own next hop: the flow key next hop of packets it sends.
    pub nh_id: u32,
    /// Host <-> physical cross-connect for pass-through traffic.
    pub cross_connect: Option<u16>,
}

impl VifConfig {
    /// A vif with defaults for everything but index and type.
    pub fn new(idx: u16, vif_type: VifType) -> Self {
        VifConfig {
            idx,
            vif_type,
            name: heapless_name::Name::default(),
            os_idx: 0,
            mac: [0; 6],
            ip: [0; 4],
            ip6: [0; 16],
            vrf: 0,
            mtu: 1500,
            flags: VifFlags::L3_ENABLED | VifFlags::L2_ENABLED,
            nh_id: 0,
            cross_connect: None,
        }
    }
}

/// Per-vif counters (upstream `vifr_*packets/bytes/errors`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    pub ipackets: u64,
    pub ibytes: u64,
    pub ierrors: u64,
    pub opackets: u64,
    pub obytes: u64,
    pub oerrors: u64,
    pub drops: u64,
}

/// A configured interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    pub cfg: VifConfig,
    pub stats: VifStats,
}

/// The interface table, sized at creation like upstream's `vr_interfaces`.
pub struct VifTable {
    slots: Vec<Option<Vif>>,
}

impl VifTable {
    pub(crate) fn new(max: u16) -> Self {
        let mut slots = Vec::with_capacity(max as usize);
        slots.resize_with(max as usize, || None);
        VifTable { slots }
    }

    /// Table size.
    pub fn capacity(&self) -> u16 {
        self.slots.len() as u16
    }

    #[inline]
    pub fn get(&self, idx: u16) -> Option<&Vif> {
        self.slots.get(idx as usize)?.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: u16) -> Option<&mut Vif> {
        self.slots.get_mut(idx as usize)?.as_mut()
    }

    /// Add or change (upstream semantics: an add of an existing index updates
    /// it and keeps its counters).
    pub(crate) fn set(&mut self, cfg: VifConfig) -> Result<(), ConfigError> {
        let slot = self
            .slots
            .get_mut(cfg.idx as usize)
            .ok_or(ConfigError::OutOfRange("vif"))?;
        match slot {
            Some(vif) => vif.cfg = cfg,
            None => {
                *slot = Some(Vif {
                    cfg,
                    stats: VifStats::default(),
                })
            }
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, idx: u16) -> Result<Vif, ConfigError> {
        self.slots
            .get_mut(idx as usize)
            .ok_or(ConfigError::OutOfRange("vif"))?
            .take()
            .ok_or(ConfigError::NotFound("vif"))
    }

    /// Configured vifs in index order.
    pub fn iter(&self) -> impl Iterator<Item = &Vif> {
        self.slots.iter().flatten()
    }

    /// The first vif of a type (the agent and fabric vifs are singletons).
    pub fn find_type(&self, t: VifType) -> Option<&Vif> {
        self.iter().find(|v| v.cfg.vif_type == t)
    }
}

/// A short, fixed-capacity name, so a vif needs no heap string.
pub mod heapless_name {
    use super::VIF_NAME_MAX;
    use core::fmt;

    #[derive(Clone, PartialEq, Eq)]
    pub struct Name {
        len: u8,
        bytes: [u8; VIF_NAME_MAX],
    }

    impl Default for Name {
        fn default() -> Self {
            Name {
                len: 0,
                bytes: [0; VIF_NAME_MAX],
            }
        }
    }

    impl Name {
        /// `None` if longer than [`VIF_NAME_MAX`] bytes.
        pub fn new(s: &str) -> Option<Name> {
            let mut n = Name::default();
            n.bytes.get_mut(..s.len())?.copy_from_slice(s.as_bytes());
            n.len = s.len() as u8;
            Some(n)
        }

        pub fn as_str(&self) -> &str {
            // Built only from a &str, so always valid UTF-8.
            self.bytes
                .get(..self.len as usize)
                .and_then(|b| core::str::from_utf8(b).ok())
                .unwrap_or("")
        }
    }

    impl fmt::Debug for Name {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(self.as_str(), f)
        }
    }

    impl fmt::Display for Name {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.as_str())
        }
    }
}
