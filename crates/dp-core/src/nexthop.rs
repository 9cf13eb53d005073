//! Next hops (upstream `vr_nexthop`): what to do with a packet once a route,
//! label or VNI has been looked up.

use crate::error::ConfigError;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Upstream address families as used in `nhr_family` / `rtr_family`.
pub const AF_INET: u8 = 2;
pub const AF_BRIDGE: u8 = 7;
pub const AF_INET6: u8 = 10;

/// Upstream `enum nexthop_type`.
pub mod nh_type {
    pub const DEAD: u8 = 0;
    pub const RCV: u8 = 1;
    pub const ENCAP: u8 = 2;
    pub const TUNNEL: u8 = 3;
    pub const RESOLVE: u8 = 4;
    pub const DISCARD: u8 = 5;
    pub const COMPOSITE: u8 = 6;
    pub const VRF_TRANSLATE: u8 = 7;
    pub const L2_RCV: u8 = 8;
}

bitflags::bitflags! {
    /// Upstream `NH_FLAG_*`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NhFlags: u32 {
        const VALID = 0x1;
        const POLICY_ENABLED = 0x2;
        const TUNNEL_GRE = 0x8;
        const TUNNEL_UDP = 0x10;
        const MCAST = 0x20;
        const TUNNEL_UDP_MPLS = 0x40;
        const TUNNEL_VXLAN = 0x80;
        const RELAXED_POLICY = 0x100;
        const COMPOSITE_FABRIC = 0x200;
        const COMPOSITE_ECMP = 0x400;
        const COMPOSITE_LU_ECMP = 0x800;
        const COMPOSITE_EVPN = 0x1000;
        const COMPOSITE_ENCAP = 0x2000;
        const COMPOSITE_TOR = 0x4000;
        const ROUTE_LOOKUP = 0x8000;
        const UNKNOWN_UC_FLOOD = 0x10000;
        const TUNNEL_SIP_COPY = 0x20000;
        const FLOW_LOOKUP = 0x40000;
        const TUNNEL_PBB = 0x80000;
        const MAC_LEARN = 0x100000;
        const ETREE_ROOT = 0x200000;
        const INDIRECT = 0x400000;
        const L2_CONTROL_DATA = 0x800000;
        const CRYPT_TRAFFIC = 0x0100_0000;
        /// Routed traffic into a VXLAN tunnel: the inner Ethernet header
        /// goes to the remote router's MAC (`nhr_rw_dst_mac`).
        const L3_VXLAN = 0x0200_0000;
        const TUNNEL_MPLS_O_MPLS = 0x0400_0000;
        const VALIDATE_MCAST_SRC = 0x0800_0000;
        const TUNNEL_UNDERLAY_ECMP = 0x1000_0000;
        const _ = !0;
    }
}

/// Overlay encapsulation of a tunnel next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    /// MPLS over GRE (IP protocol 47, GRE protocol 0x8847).
    MplsOverGre,
    /// MPLS over UDP, destination port 6635.
    MplsOverUdp,
    /// VXLAN, destination port 4789.
    Vxlan,
}

/// One member of a composite next hop: a next hop and the label (or VNI) to
/// push when the packet leaves through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub nh: u32,
    pub label: u32,
}

/// The type-specific part of a next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NhKind {
    /// Upstream NH_DEAD: a placeholder that drops.
    Dead,
    /// Deliver to this host (the agent for VM-originated packets, the host
    /// stack otherwise).
    Receive,
    /// Local delivery with an L2 rewrite (`encap` is dmac, smac, ethertype).
    Encap { oif: u16, encap: [u8; 14] },
    /// Overlay tunnel out of the fabric vif.
    Tunnel {
        oif: u16,
        kind: TunnelKind,
        sip: [u8; 4],
        dip: [u8; 4],
        /// Outer Ethernet header: next-hop MAC, our fabric MAC, 0x0800.
        encap: [u8; 14],
    },
    /// Ask the agent to resolve (ARP for) the destination.
    Resolve,
    /// Drop.
    Discard,
    /// ECMP (flag COMPOSITE_ECMP) or multi-destination (flood) next hop.
    Composite { components: Vec<Component> },
    /// Continue the lookup in another VRF (also VXLAN VNI -> VRF).
    VrfTranslate { vrf: u16 },
    /// The bridge lookup found the vRouter's own MAC: route at L3.
    L2Receive,
}

/// A configured next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nexthop {
    pub id: u32,
    /// `AF_INET`, `AF_INET6` or `AF_BRIDGE` (the packet carries an L2 header).
    pub family: u8,
    pub flags: NhFlags,
    pub vrf: u16,
    pub kind: NhKind,
}

impl Nexthop {
    /// Upstream type number of this next hop.
    pub fn type_id(&self) -> u8 {
        match self.kind {
            NhKind::Dead => nh_type::DEAD,
            NhKind::Receive => nh_type::RCV,
            NhKind::Encap { .. } => nh_type::ENCAP,
            NhKind::Tunnel { .. } => nh_type::TUNNEL,
            NhKind::Resolve => nh_type::RESOLVE,
            NhKind::Discard => nh_type::DISCARD,
            NhKind::Composite { .. } => nh_type::COMPOSITE,
            NhKind::VrfTranslate { .. } => nh_type::VRF_TRANSLATE,
            NhKind::L2Receive => nh_type::L2_RCV,
        }
    }

    /// Whether packets to this next hop must pass the flow table.
    #[inline]
    pub fn policy(&self) -> bool {
        self.flags.contains(NhFlags::POLICY_ENABLED)
    }

    /// The tunnel kind the flags select (upstream encodes it in flags).
    pub fn tunnel_kind_from_flags(flags: NhFlags) -> Result<TunnelKind, ConfigError> {
        if flags.contains(NhFlags::TUNNEL_VXLAN) {
            Ok(TunnelKind::Vxlan)
        } else if flags.contains(NhFlags::TUNNEL_UDP_MPLS) {
            Ok(TunnelKind::MplsOverUdp)
        } else if flags.contains(NhFlags::TUNNEL_GRE) {
            Ok(TunnelKind::MplsOverGre)
        } else {
            Err(ConfigError::Invalid(
                "tunnel next hop without an encapsulation flag",
            ))
        }
    }

    fn validate(&self, max_nh: u32) -> Result<(), ConfigError> {
        if !matches!(self.family, AF_INET | AF_INET6 | AF_BRIDGE) {
            return Err(ConfigError::Invalid("next hop family"));
        }
        if let NhKind::Composite { components } = &self.kind {
            if components.is_empty() && self.flags.contains(NhFlags::COMPOSITE_ECMP) {
                // Upstream allows an empty ECMP set transiently; it drops.
                return Ok(());
            }
            if components.iter().any(|c| c.nh >= max_nh || c.nh == self.id) {
                return Err(ConfigError::Invalid("composite component"));
            }
        }
        Ok(())
    }
}

/// The next-hop table, sized at creation.
pub struct NhTable {
    slots: Vec<Option<Nexthop>>,
    /// Router MACs of L3 VXLAN next hops (few; kept apart so a next hop
    /// stays small).
    l3_macs: BTreeMap<u32, [u8; 6]>,
}

impl NhTable {
    pub(crate) fn new(max: u32) -> Self {
        let mut slots = Vec::with_capacity(max as usize);
        slots.resize_with(max as usize, || None);
        NhTable {
            slots,
            l3_macs: BTreeMap::new(),
        }
    }

    pub(crate) fn set_l3_mac(&mut self, id: u32, mac: [u8; 6]) -> Result<(), ConfigError> {
        let nh = self.get(id).ok_or(ConfigError::NotFound("nexthop"))?;
        if !matches!(
            nh.kind,
            NhKind::Tunnel {
                kind: TunnelKind::Vxlan,
                ..
            }
        ) {
            return Err(ConfigError::Invalid(
                "L3 VXLAN MAC on a next hop that is not VXLAN",
            ));
        }
        if mac == [0; 6] {
            return Err(ConfigError::Invalid(
                "L3 VXLAN next hop without a router MAC",
            ));
        }
        self.l3_macs.insert(id, mac);
        Ok(())
    }

    #[inline]
    pub(crate) fn l3_mac(&self, id: u32) -> Option<[u8; 6]> {
        if self.l3_macs.is_empty() {
            return None;
        }
        self.l3_macs.get(&id).copied()
    }

    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<&Nexthop> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub(crate) fn set(&mut self, nh: Nexthop) -> Result<(), ConfigError> {
        nh.validate(self.capacity())?;
        let id = nh.id;
        let slot = self
            .slots
            .get_mut(id as usize)
            .ok_or(ConfigError::OutOfRange("nexthop"))?;
        *slot = Some(nh);
        self.l3_macs.remove(&id);
        Ok(())
    }

    pub(crate) fn remove(&mut self, id: u32) -> Result<Nexthop, ConfigError> {
        self.l3_macs.remove(&id);
        self.slots
            .get_mut(id as usize)
            .ok_or(ConfigError::OutOfRange("nexthop"))?
            .take()
            .ok_or(ConfigError::NotFound("nexthop"))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Nexthop> {
        self.slots.iter().flatten()
    }
}
