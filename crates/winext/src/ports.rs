//! The switch's ports and NICs, and which vif each one is.
//!
//! The Hyper-V switch tells the extension about NICs with OIDs (create,
//! connect, update, disconnect, delete); the agent tells it about vifs with
//! ksync. A vif and a NIC meet here:
//!
//! | vif type | binds to |
//! |---|---|
//! | `Physical` | the external NIC (`NdisSwitchNicTypeExternal`, index 0: the external adapter, which picks the physical NIC or team member itself); packets *from* any index of the external port (the physical adapters, 1..32) are the physical vif's |
//! | `Host` | the internal NIC (the host's vNIC) whose name matches the vif's, else the only internal NIC |
//! | `Virtual` | the NIC whose `NetCfgInstanceId` equals `vifr_if_guid` (upstream's Windows agent sends it), else whose friendly name, NIC name or VM name equals the vif name (ASCII case-insensitive; HNS names a container's NIC after its endpoint, and our Docker driver's endpoint name is the port's `system-name`) |
//! | `Agent` | nothing: pkt0 is the device the agent reads |
//!
//! A binding is made whichever arrives first: a vif added before its
//! container's NIC connects waits for it, and a NIC that connects before
//! the agent knows its port forwards nothing until the vif arrives.
//!
//! A vif's NIC is a *destination* only while the NIC is connected: from the
//! successful completion of `OID_SWITCH_NIC_CONNECT` until the extension
//! sees `OID_SWITCH_NIC_DISCONNECT` (the switch forbids sending to a NIC
//! outside that window). As a *source* the binding holds from connect to
//! delete, so packets still in flight when a NIC disconnects are attributed
//! to the right vif (and then find no destination).
//!
//! Lookups on the packet path are O(1): a hash map from (port, NIC index) to
//! the source, and an array indexed by vif for the destination. Upstream's
//! Windows extension scanned every vif per packet.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use dp_core::VifType;
use hashbrown::HashMap;

/// `NDIS_SWITCH_PORT_ID`.
pub type PortId = u32;
/// `NDIS_SWITCH_NIC_INDEX`.
pub type NicIndex = u16;

/// `NDIS_SWITCH_DEFAULT_PORT_ID`: the source of packets the extension makes.
pub const DEFAULT_PORT_ID: PortId = 0;
/// `NDIS_SWITCH_DEFAULT_NIC_INDEX`.
pub const DEFAULT_NIC_INDEX: NicIndex = 0;

/// One NIC connection on one switch port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortNic {
    pub port: PortId,
    pub nic: NicIndex,
}

impl PortNic {
    pub const fn new(port: PortId, nic: NicIndex) -> Self {
        PortNic { port, nic }
    }
}

/// `NDIS_SWITCH_NIC_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicKind {
    External,
    Synthetic,
    Emulated,
    Internal,
}

impl NicKind {
    /// From the `NDIS_SWITCH_NIC_TYPE` value; unknown types count as VM NICs.
    pub fn from_raw(v: u32) -> Self {
        match v {
            0 => NicKind::External,
            2 => NicKind::Emulated,
            3 => NicKind::Internal,
            _ => NicKind::Synthetic,
        }
    }
}

/// Where a NIC is in its life (the switch's states, plus "connecting":
/// the extension saw the connect OID but it has not completed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicState {
    Created,
    Connecting,
    Connected,
    Disconnected,
}

/// What the switch says about a NIC (`NDIS_SWITCH_NIC_PARAMETERS`, decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicInfo {
    pub id: PortNic,
    pub kind: NicKind,
    pub name: String,
    pub friendly_name: String,
    pub vm_name: String,
    /// `NetCfgInstanceId`, as the 16 bytes of the GUID in memory.
    pub netcfg_instance_id: [u8; 16],
    pub mac: [u8; 6],
    pub mtu: u32,
}

impl NicInfo {
    /// A NIC with only an id and a kind (tests, the external NIC's index
    /// entries).
    pub fn new(id: PortNic, kind: NicKind) -> Self {
        NicInfo {
            id,
            kind,
            name: String::new(),
            friendly_name: String::new(),
            vm_name: String::new(),
            netcfg_instance_id: [0; 16],
            mac: [0; 6],
            mtu: 1500,
        }
    }
}

/// What a vif asks to be bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifWant {
    pub idx: u16,
    pub vif_type: VifType,
    pub name: String,
    /// `vifr_if_guid`, when it is 16 bytes and not all zero.
    pub guid: Option<[u8; 16]>,
}

#[derive(Clone, Debug)]
struct Nic {
    info: NicInfo,
    state: NicState,
    vif: Option<u16>,
}

/// Where a packet came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A NIC bound to this vif.
    Vif(u16),
    /// A NIC the switch announced but no vif is bound to.
    Unbound(NicKind),
    /// A port/NIC the extension never heard of (or the extension itself).
    Unknown,
}

/// Where a vif's packets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Nic(PortNic),
    /// The agent vif: pkt0.
    Agent,
    /// No connected NIC (yet, or any more).
    None,
}

/// The port/NIC table (see the module docs).
#[derive(Debug)]
pub struct Ports {
    nics: BTreeMap<PortNic, Nic>,
    /// Packet-path source lookup; mirrors `nics`.
    src: HashMap<PortNic, Source>,
    /// Packet-path destination of each vif index.
    dst: Vec<Dest>,
    wants: BTreeMap<u16, VifWant>,
}

impl Ports {
    /// A table for vif indices below `max_vifs`.
    pub fn new(max_vifs: u16) -> Self {
        Ports {
            nics: BTreeMap::new(),
            src: HashMap::new(),
            dst: vec![Dest::None; usize::from(max_vifs)],
            wants: BTreeMap::new(),
        }
    }

    // ---- the packet path -----------------------------------------------

    /// The source of a packet from `pn` (O(1)).
    #[inline]
    pub fn source(&self, pn: PortNic) -> Source {
        self.src.get(&pn).copied().unwrap_or(Source::Unknown)
    }

    /// Where vif `idx` sends (O(1)).
    #[inline]
    pub fn dest(&self, idx: u16) -> Dest {
        self.dst
            .get(usize::from(idx))
            .copied()
            .unwrap_or(Dest::None)
    }

    /// Where traffic that is not the overlay's goes when no vif carries it:
    /// the external NIC and the host's vNIC are bridged, so enabling the
    /// extension (or an agent that is not running) never cuts the host off
    /// its network. VM NICs get nothing.
    pub fn bridge_peer(&self, from: PortNic) -> Option<PortNic> {
        let kind = self.nics.get(&from)?.info.kind;
        let want = match kind {
            NicKind::External => NicKind::Internal,
            NicKind::Internal => NicKind::External,
            _ => return None,
        };
        self.nics
            .iter()
            .find(|(id, n)| {
                n.info.kind == want
                    && n.state == NicState::Connected
                    && (want != NicKind::External || id.nic == DEFAULT_NIC_INDEX)
            })
            .map(|(id, _)| *id)
    }

    // ---- NIC lifecycle (OIDs) ------------------------------------------

    /// `OID_SWITCH_NIC_CREATE` (or a NIC found in `OID_SWITCH_NIC_ARRAY`
    /// with `connected`): remember it.
    pub fn nic_create(&mut self, info: NicInfo, connected: bool) {
        let id = info.id;
        let state = if connected {
            NicState::Connected
        } else {
            NicState::Created
        };
        let prev = self.nics.insert(
            id,
            Nic {
                info,
                state,
                vif: None,
            },
        );
        if let Some(v) = prev.and_then(|p| p.vif) {
            self.unbind_vif(v);
        }
        self.src.insert(id, Source::Unbound(self.kind(id)));
        self.rebind();
    }

    /// `OID_SWITCH_NIC_UPDATED`: names or MAC changed.
    pub fn nic_update(&mut self, info: NicInfo) {
        let id = info.id;
        match self.nics.get_mut(&id) {
            Some(n) => n.info = info,
            None => return self.nic_create(info, false),
        }
        // A rename can move the binding.
        if let Some(v) = self.nics.get(&id).and_then(|n| n.vif) {
            self.unbind_vif(v);
        }
        self.rebind();
    }

    /// `OID_SWITCH_NIC_CONNECT` seen on its way down.
    pub fn nic_connecting(&mut self, info: NicInfo) {
        let id = info.id;
        match self.nics.get_mut(&id) {
            Some(n) => {
                n.info = info;
                n.state = NicState::Connecting;
            }
            None => {
                self.nic_create(info, false);
                if let Some(n) = self.nics.get_mut(&id) {
                    n.state = NicState::Connecting;
                }
            }
        }
        self.rebind();
    }

    /// `OID_SWITCH_NIC_CONNECT` completed: the NIC is a destination now if
    /// it succeeded, back to created if not.
    pub fn nic_connected(&mut self, id: PortNic, ok: bool) {
        if let Some(n) = self.nics.get_mut(&id) {
            n.state = if ok {
                NicState::Connected
            } else {
                NicState::Created
            };
        }
        self.rebind();
    }

    /// `OID_SWITCH_NIC_DISCONNECT`: no more packets to it. Returns the vif
    /// it was bound to, if any.
    pub fn nic_disconnect(&mut self, id: PortNic) -> Option<u16> {
        let n = self.nics.get_mut(&id)?;
        n.state = NicState::Disconnected;
        let vif = n.vif;
        if let Some(v) = vif {
            if let Some(d) = self.dst.get_mut(usize::from(v)) {
                *d = Dest::None;
            }
        }
        self.rebind();
        vif
    }

    /// `OID_SWITCH_NIC_DELETE`: forget it (a vif bound to it waits for a
    /// new NIC).
    pub fn nic_delete(&mut self, id: PortNic) -> Option<u16> {
        let n = self.nics.remove(&id)?;
        self.src.remove(&id);
        if let Some(v) = n.vif {
            self.unbind_vif(v);
        }
        self.rebind();
        n.vif
    }

    /// `OID_SWITCH_PORT_DELETE` / teardown: every NIC of the port.
    pub fn port_delete(&mut self, port: PortId) -> Vec<u16> {
        let ids: Vec<PortNic> = self
            .nics
            .keys()
            .filter(|k| k.port == port)
            .copied()
            .collect();
        ids.into_iter()
            .filter_map(|id| self.nic_delete(id))
            .collect()
    }

    /// Everything is gone (detach).
    pub fn clear_nics(&mut self) {
        self.nics.clear();
        self.src.clear();
        for d in &mut self.dst {
            if matches!(d, Dest::Nic(_)) {
                *d = Dest::None;
            }
        }
    }

    // ---- vifs (ksync) -------------------------------------------------

    /// A vif was added or changed. Never fails: a vif without its NIC waits
    /// for it.
    pub fn vif_add(&mut self, want: VifWant) {
        let idx = want.idx;
        self.unbind_vif(idx);
        if want.vif_type == VifType::Agent {
            if let Some(d) = self.dst.get_mut(usize::from(idx)) {
                *d = Dest::Agent;
            }
        }
        self.wants.insert(idx, want);
        self.rebind();
    }

    /// A vif was deleted.
    pub fn vif_del(&mut self, idx: u16) {
        self.unbind_vif(idx);
        self.wants.remove(&idx);
        if let Some(d) = self.dst.get_mut(usize::from(idx)) {
            *d = Dest::None;
        }
        self.rebind();
    }

    /// The NIC vif `idx` is bound to (connected or not).
    pub fn nic_of(&self, idx: u16) -> Option<PortNic> {
        self.nics
            .iter()
            .find(|(_, n)| n.vif == Some(idx))
            .map(|(id, _)| *id)
    }

    /// A NIC's state.
    pub fn nic_state(&self, id: PortNic) -> Option<NicState> {
        self.nics.get(&id).map(|n| n.state)
    }

    /// Known NICs.
    pub fn nics(&self) -> impl Iterator<Item = (&NicInfo, NicState, Option<u16>)> {
        self.nics.values().map(|n| (&n.info, n.state, n.vif))
    }

    fn kind(&self, id: PortNic) -> NicKind {
        self.nics
            .get(&id)
            .map_or(NicKind::Synthetic, |n| n.info.kind)
    }

    /// Forget vif `idx`'s binding (callers `rebind` afterwards, which
    /// recomputes the source table).
    fn unbind_vif(&mut self, idx: u16) {
        for n in self.nics.values_mut() {
            if n.vif == Some(idx) {
                n.vif = None;
            }
        }
        for s in self.src.values_mut() {
            if *s == Source::Vif(idx) {
                *s = Source::Unknown;
            }
        }
        if let Some(d) = self.dst.get_mut(usize::from(idx)) {
            if matches!(d, Dest::Nic(_)) {
                *d = Dest::None;
            }
        }
    }

    /// Bind every unbound vif that has a matching NIC, and refresh the
    /// packet-path tables. Control-path only (OIDs and ksync).
    fn rebind(&mut self) {
        let wants: Vec<VifWant> = self
            .wants
            .values()
            .filter(|w| w.vif_type != VifType::Agent)
            .cloned()
            .collect();
        for w in &wants {
            let bound = self.nics.values().any(|n| n.vif == Some(w.idx));
            if bound {
                continue;
            }
            if let Some(id) = self.find_nic(w) {
                if let Some(n) = self.nics.get_mut(&id) {
                    n.vif = Some(w.idx);
                }
            }
        }
        // Packets from the wire arrive from the external port with the
        // physical adapter's index (1..32): they are the physical vif's too.
        let external: BTreeMap<PortId, u16> = self
            .nics
            .iter()
            .filter(|(_, n)| n.info.kind == NicKind::External)
            .filter_map(|(id, n)| n.vif.map(|v| (id.port, v)))
            .collect();
        // Packet-path tables from the bindings.
        for (id, n) in &self.nics {
            let s = match (n.vif, external.get(&id.port)) {
                (Some(v), _) => Source::Vif(v),
                (None, Some(v)) if n.info.kind == NicKind::External => Source::Vif(*v),
                (None, _) => Source::Unbound(n.info.kind),
            };
            self.src.insert(*id, s);
            if let Some(v) = n.vif {
                if let Some(d) = self.dst.get_mut(usize::from(v)) {
                    *d = if n.state == NicState::Connected {
                        Dest::Nic(*id)
                    } else {
                        Dest::None
                    };
                }
            }
        }
    }

    /// The free NIC vif `w` should bind to.
    fn find_nic(&self, w: &VifWant) -> Option<PortNic> {
        let free = |n: &&Nic| n.vif.is_none() && n.state != NicState::Disconnected;
        let by = |pred: &dyn Fn(&Nic) -> bool| {
            self.nics
                .iter()
                .filter(|(_, n)| free(n))
                .find(|(_, n)| pred(n))
                .map(|(id, _)| *id)
        };
        match w.vif_type {
            // A VLAN sub-interface sends through its parent's NIC.
            VifType::Agent | VifType::VirtualVlan => None,
            VifType::Physical => {
                by(&|n| n.info.kind == NicKind::External && n.info.id.nic == DEFAULT_NIC_INDEX)
            }
            VifType::Host => by(&|n| n.info.kind == NicKind::Internal && name_matches(w, &n.info))
                .or_else(|| {
                    let mut internal = self
                        .nics
                        .values()
                        .filter(|n| n.info.kind == NicKind::Internal);
                    match (internal.next(), internal.next()) {
                        (Some(n), None) if n.vif.is_none() => Some(n.info.id),
                        _ => None,
                    }
                }),
            VifType::Virtual => by(&|n| {
                !matches!(n.info.kind, NicKind::External | NicKind::Internal)
                    && (w.guid.is_some_and(|g| g == n.info.netcfg_instance_id)
                        || name_matches(w, &n.info))
            }),
        }
    }
}

fn name_matches(w: &VifWant, n: &NicInfo) -> bool {
    !w.name.is_empty()
        && [&n.friendly_name, &n.name, &n.vm_name]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&w.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn nic(port: u32, idx: u16, kind: NicKind, friendly: &str) -> NicInfo {
        let mut n = NicInfo::new(PortNic::new(port, idx), kind);
        n.friendly_name = friendly.to_string();
        n
    }

    fn want(idx: u16, t: VifType, name: &str) -> VifWant {
        VifWant {
            idx,
            vif_type: t,
            name: name.to_string(),
            guid: None,
        }
    }

    #[test]
    fn vif_before_nic_and_nic_before_vif() {
        let mut p = Ports::new(16);
        // vif first: waits.
        p.vif_add(want(3, VifType::Virtual, "Contrail-aaaa"));
        assert_eq!(p.dest(3), Dest::None);
        let a = PortNic::new(5, 0);
        p.nic_create(nic(5, 0, NicKind::Synthetic, "contrail-AAAA"), false);
        assert_eq!(p.source(a), Source::Vif(3), "bound as a source at create");
        assert_eq!(p.dest(3), Dest::None, "not a destination before connect");
        p.nic_connecting(nic(5, 0, NicKind::Synthetic, "contrail-AAAA"));
        assert_eq!(p.dest(3), Dest::None, "not before the connect completes");
        p.nic_connected(a, true);
        assert_eq!(p.dest(3), Dest::Nic(a));
        // NIC first.
        let b = PortNic::new(6, 0);
        p.nic_create(nic(6, 0, NicKind::Synthetic, "other"), true);
        assert_eq!(p.source(b), Source::Unbound(NicKind::Synthetic));
        p.vif_add(want(4, VifType::Virtual, "OTHER"));
        assert_eq!(p.dest(4), Dest::Nic(b));
        assert_eq!(p.source(b), Source::Vif(4));
    }

    #[test]
    fn guid_wins_and_disconnect_delete() {
        let mut p = Ports::new(16);
        let mut n = nic(7, 0, NicKind::Synthetic, "x");
        n.netcfg_instance_id = [9; 16];
        p.nic_create(n, true);
        let mut w = want(5, VifType::Virtual, "not-the-name");
        w.guid = Some([9; 16]);
        p.vif_add(w);
        let id = PortNic::new(7, 0);
        assert_eq!(p.dest(5), Dest::Nic(id));
        assert_eq!(p.nic_disconnect(id), Some(5));
        assert_eq!(p.dest(5), Dest::None);
        assert_eq!(
            p.source(id),
            Source::Vif(5),
            "in-flight packets keep their source"
        );
        assert_eq!(p.nic_delete(id), Some(5));
        assert_eq!(p.source(id), Source::Unknown);
        // A new NIC with the same GUID binds again.
        let mut n = nic(8, 0, NicKind::Synthetic, "y");
        n.netcfg_instance_id = [9; 16];
        p.nic_create(n, true);
        assert_eq!(p.dest(5), Dest::Nic(PortNic::new(8, 0)));
    }

    #[test]
    fn physical_host_agent_and_bridge() {
        let mut p = Ports::new(16);
        p.nic_create(nic(1, 0, NicKind::External, "ext"), true);
        p.nic_create(nic(1, 1, NicKind::External, "phys"), true);
        p.nic_create(nic(2, 0, NicKind::Internal, "vEthernet (Ethernet0)"), true);
        p.nic_create(nic(9, 0, NicKind::Synthetic, "vm"), true);
        assert_eq!(
            p.bridge_peer(PortNic::new(1, 1)),
            Some(PortNic::new(2, 0)),
            "from a physical adapter to the host vNIC"
        );
        assert_eq!(p.bridge_peer(PortNic::new(2, 0)), Some(PortNic::new(1, 0)));
        assert_eq!(p.bridge_peer(PortNic::new(9, 0)), None);
        p.vif_add(want(0, VifType::Physical, "Ethernet0"));
        p.vif_add(want(1, VifType::Host, "vhost0"));
        p.vif_add(want(2, VifType::Agent, "pkt0"));
        assert_eq!(p.dest(0), Dest::Nic(PortNic::new(1, 0)));
        assert_eq!(
            p.dest(1),
            Dest::Nic(PortNic::new(2, 0)),
            "the only internal NIC"
        );
        assert_eq!(p.dest(2), Dest::Agent);
        assert_eq!(p.source(PortNic::new(1, 0)), Source::Vif(0));
        assert_eq!(
            p.source(PortNic::new(1, 1)),
            Source::Vif(0),
            "what the physical adapters receive is the physical vif's"
        );
        p.vif_del(1);
        assert_eq!(p.dest(1), Dest::None);
        assert_eq!(
            p.source(PortNic::new(2, 0)),
            Source::Unbound(NicKind::Internal)
        );
        assert_eq!(p.port_delete(1), vec![0]);
        assert_eq!(p.dest(0), Dest::None);
    }

    #[test]
    fn failed_connect_is_no_destination() {
        let mut p = Ports::new(4);
        p.vif_add(want(1, VifType::Virtual, "c"));
        p.nic_connecting(nic(3, 0, NicKind::Synthetic, "c"));
        p.nic_connected(PortNic::new(3, 0), false);
        assert_eq!(p.dest(1), Dest::None);
        assert_eq!(p.nic_state(PortNic::new(3, 0)), Some(NicState::Created));
        // Out-of-range vif indices are ignored, never a panic.
        p.vif_add(want(200, VifType::Virtual, "c"));
        assert_eq!(p.dest(200), Dest::None);
    }
}
