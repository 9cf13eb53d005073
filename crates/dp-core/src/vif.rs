//! Interfaces (upstream `vr_interface`): the ports of the vRouter.

use crate::error::ConfigError;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// VLAN ids a sub-interface may carry: upstream refuses `>= VLAN_ID_MAX`.
pub const VLAN_ID_MAX: u16 = 4096;

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
    /// A VLAN sub-interface of a container/VM port (upstream
    /// `VIF_TYPE_VIRTUAL_VLAN`): no port of its own; it receives the
    /// frames its parent receives with its VLAN tag, and transmits through
    /// the parent.
    VirtualVlan = 7,
}

impl TryFrom<u16> for VifType {
    type Error = ConfigError;
    fn try_from(v: u16) -> Result<Self, ConfigError> {
        Ok(match v {
            0 => VifType::Host,
            1 => VifType::Agent,
            2 => VifType::Physical,
            3 => VifType::Virtual,
            7 => VifType::VirtualVlan,
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
    /// A [`VifType::VirtualVlan`] sub-interface: its parent and tags.
    pub sub: Option<SubIf>,
}

/// What makes a vif a VLAN sub-interface (`vifr_parent_vif_idx`,
/// `vifr_vlan_id`, `vifr_ovlan_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubIf {
    /// The vif whose frames tagged `vlan` are this vif's.
    pub parent: u16,
    /// The VLAN id of frames received from the parent.
    pub vlan: u16,
    /// The tag pushed on frames sent out (0: none, as upstream).
    pub ovlan: u16,
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
            sub: None,
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
    /// (parent, VLAN id) -> sub-interface: the receive demultiplexer
    /// (upstream's `vif_sub_interfaces`). Changed only by configuration,
    /// so the per-packet lookup allocates nothing. A parent's entries go
    /// with the parent: its sub-interfaces stay configured but detached,
    /// as upstream's keep a reference to a deleted parent.
    subs: BTreeMap<(u16, u16), u16>,
}

impl VifTable {
    pub(crate) fn new(max: u16) -> Self {
        let mut slots = Vec::with_capacity(max as usize);
        slots.resize_with(max as usize, || None);
        VifTable {
            slots,
            subs: BTreeMap::new(),
        }
    }

    /// The sub-interface of `parent` for VLAN `vlan`, if any.
    #[inline]
    pub fn sub_interface(&self, parent: u16, vlan: u16) -> Option<u16> {
        if self.subs.is_empty() {
            return None;
        }
        self.subs.get(&(parent, vlan)).copied()
    }

    /// Whether `parent` has any sub-interface (then tagged frames it
    /// receives are demultiplexed).
    pub fn has_sub_interfaces(&self, parent: u16) -> bool {
        self.subs
            .range((parent, 0)..=(parent, u16::MAX))
            .next()
            .is_some()
    }

    /// The port a frame sent out of `idx` leaves through and the tag it
    /// gets: `Some((idx, None))` for a vif with a port, `Some((parent,
    /// Some(tag)))` for an attached sub-interface (tag 0: none), `None`
    /// for a sub-interface whose parent is gone.
    #[inline]
    pub fn tx_port(&self, idx: u16) -> Option<(u16, Option<u16>)> {
        let v = self.get(idx)?;
        match v.cfg.sub {
            None => Some((idx, None)),
            Some(s) => (self.sub_interface(s.parent, s.vlan) == Some(idx))
                .then_some((s.parent, Some(s.ovlan))),
        }
    }

    /// Upstream `vlan_drv_add`'s checks: the parent exists and can carry
    /// sub-interfaces, the ids are below 4096, the VLAN is free.
    fn check_sub(&self, cfg: &VifConfig) -> Result<Option<SubIf>, ConfigError> {
        if cfg.vif_type != VifType::VirtualVlan {
            return Ok(None);
        }
        let s = cfg
            .sub
            .ok_or(ConfigError::Invalid("sub-interface without a parent"))?;
        if s.vlan >= VLAN_ID_MAX || s.ovlan >= VLAN_ID_MAX {
            return Err(ConfigError::Invalid("VLAN id (must be below 4096)"));
        }
        if s.parent == cfg.idx {
            return Err(ConfigError::Invalid("sub-interface parent (itself)"));
        }
        let p = self
            .get(s.parent)
            .ok_or(ConfigError::Invalid("sub-interface parent (no such vif)"))?;
        if p.cfg.vif_type != VifType::Virtual {
            return Err(ConfigError::Invalid(
                "sub-interface parent (must be a virtual vif)",
            ));
        }
        match self.subs.get(&(s.parent, s.vlan)) {
            Some(other) if *other != cfg.idx => Err(ConfigError::Exists("VLAN on this parent")),
            _ => Ok(Some(s)),
        }
    }

    /// What [`crate::Router::vif_add`] would refuse of a sub-interface,
    /// checked without changing anything (a host opens ports only for
    /// requests the core will take).
    pub fn check_sub_interface(&self, cfg: &VifConfig) -> Result<(), ConfigError> {
        self.check_sub(cfg).map(|_| ())
    }

    /// Forget the demultiplexer entry of vif `idx`, if it has one.
    fn unlink_sub(&mut self, idx: u16) {
        if let Some(s) = self.get(idx).and_then(|v| v.cfg.sub) {
            if self.subs.get(&(s.parent, s.vlan)) == Some(&idx) {
                self.subs.remove(&(s.parent, s.vlan));
            }
        }
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
    pub(crate) fn set(&mut self, mut cfg: VifConfig) -> Result<(), ConfigError> {
        if cfg.idx as usize >= self.slots.len() {
            return Err(ConfigError::OutOfRange("vif"));
        }
        let sub = self.check_sub(&cfg)?;
        if cfg.vif_type != VifType::VirtualVlan {
            cfg.sub = None;
        }
        if self
            .get(cfg.idx)
            .is_some_and(|v| v.cfg.vif_type != cfg.vif_type)
        {
            // A vif re-added as another type loses what the old type had.
            self.drop_children(cfg.idx);
        }
        self.unlink_sub(cfg.idx);
        if let Some(s) = sub {
            self.subs.insert((s.parent, s.vlan), cfg.idx);
        }
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
        if self.get(idx).is_some() {
            self.unlink_sub(idx);
            self.drop_children(idx);
        }
        self.slots
            .get_mut(idx as usize)
            .ok_or(ConfigError::OutOfRange("vif"))?
            .take()
            .ok_or(ConfigError::NotFound("vif"))
    }

    /// Detach the sub-interfaces of `parent` (they stay configured).
    fn drop_children(&mut self, parent: u16) {
        self.subs.retain(|(p, _), _| *p != parent);
    }

    /// Sub-interfaces in the demultiplexer (for leak checks).
    pub fn sub_interface_count(&self) -> usize {
        self.subs.len()
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
