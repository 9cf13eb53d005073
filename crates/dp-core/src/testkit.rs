//! A small topology builder and packet runner shared by the scenario tests,
//! the benchmarks and the hosts' tests (feature `testkit`).
//!
//! The layout follows upstream vRouter's datapath tests: vif 0 is the fabric
//! NIC, vif 1 the host (vhost), vif 2 the agent (pkt0); VM ports follow.
//! Each local VM gets an L3 interface next hop and an L2 one, an MPLS label
//! for each (`label` and `label + 1`), a /32 (and /128) route with the
//! proxy-ARP flag and its MAC stitched, and a bridge entry.

#![allow(clippy::indexing_slicing)]

use crate::nexthop::{AF_BRIDGE, AF_INET};
use crate::route::rt_flags;
use crate::*;
use alloc::vec;
use alloc::vec::Vec;

pub const FABRIC_VIF: u16 = 0;
pub const HOST_VIF: u16 = 1;
pub const AGENT_VIF: u16 = 2;
/// This host's fabric address and MAC.
pub const FABRIC_IP: [u8; 4] = [192, 0, 2, 1];
pub const FABRIC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The fabric neighbour (the other compute node or its gateway).
pub const PEER_IP: [u8; 4] = [192, 0, 2, 2];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const AGENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
/// Next hop 0 discards (upstream NH_DISCARD_ID); 1 receives.
pub const DISCARD_NH: u32 = 0;
pub const RECEIVE_NH: u32 = 1;
/// The fabric VRF.
pub const FABRIC_VRF: u16 = 0;

/// A local VM port.
#[derive(Clone, Copy, Debug)]
pub struct Vm {
    pub vif: u16,
    pub vrf: u16,
    pub mac: [u8; 6],
    pub ip: [u8; 4],
    pub ip6: [u8; 16],
    /// L3 interface next hop (also the vif's flow-key next hop).
    pub nh: u32,
    /// L2 interface next hop.
    pub l2_nh: u32,
    /// MPLS label of `nh`; `label + 1` is the L2 label of `l2_nh`.
    pub label: u32,
}

/// A materialised action, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Tx { vif: u16, bytes: Vec<u8> },
    Hold { flow: u32 },
    Drop(DropReason),
    PassThrough,
    Consumed,
}

/// A router with fabric, host and agent vifs configured.
pub struct Topo {
    pub router: Router,
    next_nh: u32,
    next_label: u32,
    actions: Actions,
}

impl Topo {
    pub fn new(cfg: RouterConfig) -> Topo {
        Topo::with_router(Router::new(cfg).expect("router"))
    }

    /// [`Topo::new`] around a router the caller built (e.g. with its flow
    /// table in memory of its choosing: [`Router::with_flow_table`]).
    pub fn with_router(mut router: Router) -> Topo {
        let mut fabric = VifConfig::new(FABRIC_VIF, VifType::Physical);
        fabric.mac = FABRIC_MAC;
        fabric.ip = FABRIC_IP;
        fabric.mtu = 1500;
        fabric.cross_connect = Some(HOST_VIF);
        router.vif_add(fabric).expect("fabric vif");
        let mut host = VifConfig::new(HOST_VIF, VifType::Host);
        host.mac = FABRIC_MAC;
        host.cross_connect = Some(FABRIC_VIF);
        router.vif_add(host).expect("host vif");
        let mut agent = VifConfig::new(AGENT_VIF, VifType::Agent);
        agent.mac = AGENT_MAC;
        router.vif_add(agent).expect("agent vif");
        router
            .nh_add(Nexthop {
                id: DISCARD_NH,
                family: AF_INET,
                flags: NhFlags::VALID,
                vrf: 0,
                kind: NhKind::Discard,
            })
            .expect("discard nh");
        router
            .nh_add(Nexthop {
                id: RECEIVE_NH,
                family: AF_INET,
                flags: NhFlags::VALID,
                vrf: 0,
                kind: NhKind::Receive,
            })
            .expect("receive nh");
        router
            .route_add(
                FABRIC_VRF,
                Prefix::V4(FABRIC_IP, 32),
                RouteData {
                    nh: RECEIVE_NH,
                    ..RouteData::default()
                },
            )
            .expect("fabric receive route");
        Topo {
            router,
            next_nh: 10,
            next_label: 16,
            actions: Actions::with_capacity(1024),
        }
    }

    pub fn alloc_nh(&mut self) -> u32 {
        let n = self.next_nh;
        self.next_nh += 1;
        n
    }

    /// A local VM on `vif` in `vrf`.
    pub fn add_vm(
        &mut self,
        vif: u16,
        vrf: u16,
        mac: [u8; 6],
        ip: [u8; 4],
        ip6: [u8; 16],
        policy: bool,
    ) -> Vm {
        let nh = self.alloc_nh();
        let l2_nh = self.alloc_nh();
        let label = self.next_label;
        self.next_label += 2;
        let mut cfg = VifConfig::new(vif, VifType::Virtual);
        cfg.mac = VROUTER_MAC;
        cfg.ip = ip;
        cfg.ip6 = ip6;
        cfg.vrf = vrf;
        cfg.mtu = 1500;
        cfg.nh_id = nh;
        cfg.flags = VifFlags::L3_ENABLED | VifFlags::L2_ENABLED | VifFlags::DHCP_ENABLED;
        if policy {
            cfg.flags |= VifFlags::POLICY_ENABLED;
        }
        self.router.vif_add(cfg).expect("vm vif");
        let mut encap = [0u8; 14];
        encap[0..6].copy_from_slice(&mac);
        encap[6..12].copy_from_slice(&VROUTER_MAC);
        encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut flags = NhFlags::VALID;
        if policy {
            flags |= NhFlags::POLICY_ENABLED;
        }
        self.router
            .nh_add(Nexthop {
                id: nh,
                family: AF_INET,
                flags,
                vrf,
                kind: NhKind::Encap { oif: vif, encap },
            })
            .expect("vm l3 nh");
        self.router
            .nh_add(Nexthop {
                id: l2_nh,
                family: AF_BRIDGE,
                flags,
                vrf,
                kind: NhKind::Encap { oif: vif, encap },
            })
            .expect("vm l2 nh");
        let rd = RouteData {
            nh,
            label,
            flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
            mac,
        };
        self.router
            .route_add(vrf, Prefix::V4(ip, 32), rd)
            .expect("vm /32");
        if ip6 != [0; 16] {
            self.router
                .route_add(vrf, Prefix::V6(ip6, 128), rd)
                .expect("vm /128");
        }
        self.router
            .route_add(
                vrf,
                Prefix::Mac(mac),
                RouteData {
                    nh: l2_nh,
                    label: label + 1,
                    flags: rt_flags::LABEL_VALID,
                    mac,
                },
            )
            .expect("vm bridge entry");
        self.router.mpls_add(label, nh).expect("l3 label");
        self.router.mpls_add(label + 1, l2_nh).expect("l2 label");
        Vm {
            vif,
            vrf,
            mac,
            ip,
            ip6,
            nh,
            l2_nh,
            label,
        }
    }

    /// A tunnel next hop to `PEER_IP`.
    pub fn add_tunnel_nh(&mut self, kind: TunnelKind) -> u32 {
        let id = self.alloc_nh();
        let mut encap = [0u8; 14];
        encap[0..6].copy_from_slice(&PEER_MAC);
        encap[6..12].copy_from_slice(&FABRIC_MAC);
        encap[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let flags = NhFlags::VALID
            | match kind {
                TunnelKind::MplsOverGre => NhFlags::TUNNEL_GRE,
                TunnelKind::MplsOverUdp => NhFlags::TUNNEL_UDP_MPLS,
                TunnelKind::Vxlan => NhFlags::TUNNEL_VXLAN,
            };
        self.router
            .nh_add(Nexthop {
                id,
                family: AF_INET,
                flags,
                vrf: FABRIC_VRF,
                kind: NhKind::Tunnel {
                    oif: FABRIC_VIF,
                    kind,
                    sip: FABRIC_IP,
                    dip: PEER_IP,
                    encap,
                },
            })
            .expect("tunnel nh");
        id
    }

    /// A VM behind the peer: routes and a bridge entry through a tunnel.
    /// `label` is the L3 label (L2 label = label + 1) or, for VXLAN, the VNI.
    #[allow(clippy::too_many_arguments)]
    pub fn add_remote_vm(
        &mut self,
        vrf: u16,
        mac: [u8; 6],
        ip: [u8; 4],
        ip6: [u8; 16],
        kind: TunnelKind,
        label: u32,
    ) -> u32 {
        let tnh = self.add_tunnel_nh(kind);
        let l2_label = if kind == TunnelKind::Vxlan {
            label
        } else {
            label + 1
        };
        let rd = RouteData {
            nh: tnh,
            label,
            flags: rt_flags::LABEL_VALID | rt_flags::ARP_PROXY,
            mac,
        };
        self.router
            .route_add(vrf, Prefix::V4(ip, 32), rd)
            .expect("remote /32");
        if ip6 != [0; 16] {
            self.router
                .route_add(vrf, Prefix::V6(ip6, 128), rd)
                .expect("remote /128");
        }
        self.router
            .route_add(
                vrf,
                Prefix::Mac(mac),
                RouteData {
                    nh: tnh,
                    label: l2_label,
                    flags: rt_flags::LABEL_VALID,
                    mac,
                },
            )
            .expect("remote bridge entry");
        tnh
    }

    /// The VRF's VXLAN VNI: a VRF-translate next hop the VNI points to.
    pub fn add_vni(&mut self, vrf: u16, vni: u32) -> u32 {
        let id = self.alloc_nh();
        self.router
            .nh_add(Nexthop {
                id,
                family: AF_BRIDGE,
                flags: NhFlags::VALID,
                vrf,
                kind: NhKind::VrfTranslate { vrf },
            })
            .expect("vrf nh");
        self.router.vxlan_add(vni, id).expect("vni");
        id
    }

    /// The subnet gateway: a receive route with the proxy-ARP flag, so the
    /// vRouter answers ARP with its own MAC and traps traffic to it.
    pub fn add_gateway(&mut self, vrf: u16, ip: [u8; 4]) {
        self.router
            .route_add(
                vrf,
                Prefix::V4(ip, 32),
                RouteData {
                    nh: RECEIVE_NH,
                    label: 0,
                    flags: rt_flags::ARP_PROXY,
                    mac: [0; 6],
                },
            )
            .expect("gateway route");
    }

    /// Decide a held flow the way the agent does: FLOW_SET on its index and
    /// generation with `action` (upstream `VR_FLOW_ACTION_*`).
    pub fn decide_flow(&mut self, flow: u32, action: u16) -> Result<FlowSetOutcome, ConfigError> {
        let fe = *self
            .router
            .flows()
            .get_valid(flow)
            .ok_or(ConfigError::NotFound("flow"))?;
        self.router.flow_set(&FlowSet {
            index: Some(flow),
            gen_id: Some(fe.gen_id),
            key: *fe.key(),
            action,
            flags: 0,
            rflow: None,
            dvrf: None,
            ecmp_nh_index: -1,
            drop_reason: 0,
            src_nh_index: 0,
        })
    }

    /// Run one frame received on `vif` through the router.
    pub fn run(&mut self, vif: u16, frame: &[u8]) -> Vec<Output> {
        self.run_batch(vif, &[frame]).pop().unwrap_or_default()
    }

    /// Run one frame marked as (a segment of) a GSO super-packet
    /// ([`Packet::set_gso`]).
    pub fn run_gso(&mut self, vif: u16, frame: &[u8]) -> Vec<Output> {
        self.run_marked(vif, &[frame], true)
            .pop()
            .unwrap_or_default()
    }

    /// Run frames received on `vif` as one batch; the outputs of each.
    pub fn run_batch(&mut self, vif: u16, frames: &[&[u8]]) -> Vec<Vec<Output>> {
        self.run_marked(vif, frames, false)
    }

    fn run_marked(&mut self, vif: u16, frames: &[&[u8]], gso: bool) -> Vec<Vec<Output>> {
        let mut bufs: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut b = vec![0u8; HEADROOM + f.len() + 64];
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                b
            })
            .collect();
        let lens: Vec<usize> = frames.iter().map(|f| f.len()).collect();
        let mut pkts: Vec<Packet<'_>> = bufs
            .iter_mut()
            .zip(&lens)
            .map(|(b, l)| {
                let mut p = Packet::new(b, HEADROOM, *l).expect("packet");
                p.set_gso(gso);
                p
            })
            .collect();
        self.actions.clear();
        let n = self.router.process(vif, &mut pkts, &mut self.actions);
        assert_eq!(n, pkts.len(), "batch not fully processed");
        let mut outs: Vec<Vec<Output>> = vec![Vec::new(); pkts.len()];
        for a in self.actions.as_slice() {
            match *a {
                Action::Tx { pkt, vif } => outs[pkt as usize].push(Output::Tx {
                    vif,
                    bytes: pkts[pkt as usize].data().to_vec(),
                }),
                Action::TxCopy {
                    pkt,
                    vif,
                    prepend,
                    from,
                    to,
                } => {
                    let mut bytes = self.actions.prepend(prepend).to_vec();
                    bytes.extend_from_slice(&pkts[pkt as usize].data()[from as usize..to as usize]);
                    outs[pkt as usize].push(Output::Tx { vif, bytes });
                }
                Action::Hold { pkt, flow } => outs[pkt as usize].push(Output::Hold { flow }),
                Action::Drop { pkt, reason } => outs[pkt as usize].push(Output::Drop(reason)),
                Action::PassThrough { pkt } => outs[pkt as usize].push(Output::PassThrough),
                Action::Consumed { pkt } => outs[pkt as usize].push(Output::Consumed),
            }
        }
        outs
    }
}
