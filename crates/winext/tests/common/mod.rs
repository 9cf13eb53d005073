//! A compute node in one process: the real shim callbacks on a fake
//! Hyper-V switch, programmed through the real ksync path the way the
//! agent programs it.
//!
//! The topology is dp-core's testkit layout (vif 0 fabric, 1 host, 2 agent,
//! VMs from 3), built on a scratch `Router`, dumped with the real ksync
//! handler and replayed as ADD requests on the extension's ksync device, so
//! every object reaches the extension as bytes, exactly as from the agent.

#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use dp_core::agent::{AgentHdr, AGENT_HDR_LEN};
use dp_core::nexthop::{AF_BRIDGE, AF_INET, AF_INET6};
use dp_core::testkit::{self, Topo, Vm};
use dp_core::{RouterConfig, TunnelKind};
use ksync::{Handler, NoopHost};
use sandesh::frame::{self, Frame, Meta, Style, GENL_ID_VROUTER, NLM_F_REQUEST};
use sandesh::{Message, SandeshOp, VrFlowReq, VrResponse};
use winext::fake::{FakeSwitch, NblSpec};
use winext::ndis::types::*;
use winext::session::Session;
use winext::{ExtConfig, PortNic};

pub const EXTERNAL: PortNic = PortNic::new(1, 0);
pub const PHYS: PortNic = PortNic::new(1, 1);
pub const HOST_NIC: PortNic = PortNic::new(2, 0);
pub const NIC_A: PortNic = PortNic::new(10, 0);
pub const NIC_B: PortNic = PortNic::new(11, 0);

pub const VRF: u16 = 5;
pub const MAC_A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 3];
pub const MAC_B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 4];
pub const MAC_C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 9];
pub const IP_A: [u8; 4] = [198, 18, 0, 3];
pub const IP_B: [u8; 4] = [198, 18, 0, 4];
/// A container on the other host, behind the tunnel.
pub const IP_C: [u8; 4] = [198, 18, 0, 9];
pub const LABEL_C: u32 = 40;
/// A's VLAN 100 sub-interface (vif 5, `Opts::vlan_sub`).
pub const SUB_VIF: u16 = 5;
pub const SUB_VLAN: u16 = 100;
pub const MAC_S: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x64];
pub const IP_S: [u8; 4] = [198, 18, 0, 100];

/// `NdisSwitchNicType*`.
pub const EXTERNAL_NIC: u32 = 0;
pub const SYNTHETIC_NIC: u32 = 1;
pub const INTERNAL_NIC: u32 = 3;

pub struct Node {
    pub sw: Box<FakeSwitch>,
    pub ksync: Session,
    pub a: Vm,
    pub b: Vm,
    seq: u32,
}

/// What the node looks like.
#[derive(Clone, Copy)]
pub struct Opts {
    pub policy: bool,
    pub tunnel: TunnelKind,
    /// The NICs existed before the filter attached: it learns them from
    /// `OID_SWITCH_NIC_ARRAY` at restart instead of from create/connect
    /// OIDs.
    pub preexisting: bool,
    /// A VLAN sub-interface on A: vif [`SUB_VIF`], VLAN [`SUB_VLAN`],
    /// [`IP_S`] in the same VRF.
    pub vlan_sub: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            policy: false,
            tunnel: TunnelKind::MplsOverUdp,
            preexisting: false,
            vlan_sub: false,
        }
    }
}

/// The node's NICs: id, NDIS_SWITCH_NIC_TYPE, friendly name.
pub const NICS: [(PortNic, u32, &str); 5] = [
    (EXTERNAL, EXTERNAL_NIC, "Microsoft Hyper-V Network Adapter"),
    (PHYS, EXTERNAL_NIC, "Intel(R) Ethernet"),
    (HOST_NIC, INTERNAL_NIC, "vEthernet (Ethernet0)"),
    (NIC_A, SYNTHETIC_NIC, "Contrail-a"),
    (NIC_B, SYNTHETIC_NIC, "Contrail-b"),
];

/// The vif names the agent sends: the NICs' names on Windows.
fn vif_name(idx: i32) -> &'static str {
    match idx {
        0 => "Ethernet0",
        1 => "vEthernet (Ethernet0)",
        2 => "pkt0",
        3 => "Contrail-a",
        4 => "Contrail-b",
        _ => "",
    }
}

impl Node {
    /// Attached, restarted, NICs connected, programmed.
    pub fn new(o: Opts) -> Node {
        winext::fake::set_now(100);
        let sw = FakeSwitch::new(ExtConfig::small());
        assert_eq!(sw.attach(), NDIS_STATUS_SUCCESS);
        let (st, backfill) = sw.restart();
        assert_eq!(st, NDIS_STATUS_SUCCESS);
        assert_eq!(
            backfill,
            dp_core::HEADROOM as u32,
            "restart asks for the core's headroom"
        );
        for (id, kind, name) in [
            (EXTERNAL, EXTERNAL_NIC, "Microsoft Hyper-V Network Adapter"),
            (PHYS, EXTERNAL_NIC, "Intel(R) Ethernet"),
            (HOST_NIC, INTERNAL_NIC, "vEthernet (Ethernet0)"),
            (NIC_A, SYNTHETIC_NIC, "Contrail-a"),
            (NIC_B, SYNTHETIC_NIC, "Contrail-b"),
        ] {
            assert_eq!(
                sw.add_nic(&FakeSwitch::nic(id, kind, name)),
                NDIS_STATUS_SUCCESS
            );
        }
        let mut topo = Topo::new(RouterConfig::small());
        let a = topo.add_vm(3, VRF, MAC_A, IP_A, [0; 16], o.policy);
        let b = topo.add_vm(4, VRF, MAC_B, IP_B, [0; 16], o.policy);
        topo.add_remote_vm(VRF, MAC_C, IP_C, [0; 16], o.tunnel, LABEL_C);
        if o.tunnel == TunnelKind::Vxlan {
            topo.add_vni(VRF, LABEL_C);
        }
        if o.vlan_sub {
            topo.add_vm(SUB_VIF, VRF, MAC_S, IP_S, [0; 16], o.policy);
            let mut c = topo.router.vif(SUB_VIF).unwrap().cfg.clone();
            c.vif_type = dp_core::VifType::VirtualVlan;
            c.sub = Some(dp_core::SubIf {
                parent: a.vif,
                vlan: SUB_VLAN,
                ovlan: SUB_VLAN,
            });
            topo.router.vif_add(c).unwrap();
        }
        let mut n = Node {
            sw,
            ksync: Session::new(),
            a,
            b,
            seq: 0,
        };
        n.replay(&mut topo);
        n
    }

    /// Dump `topo` with the real ksync handler and send every object as an
    /// ADD on the extension's ksync device.
    fn replay(&mut self, topo: &mut Topo) {
        let mut h = Handler::new();
        let mut objs: Vec<Message> = Vec::new();
        let mut dump = |req: &dyn Fn(Option<&Message>) -> Message, objs: &mut Vec<Message>| {
            let mut last: Option<Message> = None;
            loop {
                let bytes = request(&[req(last.as_ref())], 1);
                let mut out = Vec::new();
                h.handle(&mut topo.router, &mut NoopHost, &bytes, &mut out);
                let msgs = answer_objects(&out);
                let code = match msgs.first() {
                    Some(Message::Response(VrResponse { resp_code, .. })) => *resp_code,
                    _ => panic!("dump answer"),
                };
                let page: Vec<Message> = msgs.into_iter().skip(1).collect();
                last = page.last().cloned();
                objs.extend(page);
                if code & ksync::VR_MESSAGE_DUMP_INCOMPLETE == 0 {
                    break;
                }
            }
        };
        dump(&|l| ksync::dump::vifs(l), &mut objs);
        dump(&|l| ksync::dump::nexthops(l), &mut objs);
        for vrf in [testkit::FABRIC_VRF, VRF] {
            for fam in [AF_INET, AF_INET6, AF_BRIDGE] {
                dump(&|l| ksync::dump::routes(vrf, fam, l), &mut objs);
            }
        }
        dump(&|l| ksync::dump::labels(l), &mut objs);
        dump(&|l| ksync::dump::vnis(l), &mut objs);
        for mut m in objs {
            match &mut m {
                Message::Interface(v) => {
                    v.h_op = SandeshOp::Add;
                    v.vifr_name = vif_name(v.vifr_idx).to_string();
                }
                Message::Nexthop(x) => x.h_op = SandeshOp::Add,
                Message::Route(x) => x.h_op = SandeshOp::Add,
                Message::Mpls(x) => x.h_op = SandeshOp::Add,
                Message::Vxlan(x) => x.h_op = SandeshOp::Add,
                _ => continue,
            }
            let codes = self.ksync(&[m.clone()]);
            assert_eq!(codes, vec![0], "replaying {m:?}");
        }
    }

    /// One request on the ksync device; the resp_code of each answer.
    pub fn ksync(&mut self, objs: &[Message]) -> Vec<i32> {
        self.seq += 1;
        let req = request(objs, self.seq);
        self.sw.ksync(&mut self.ksync, &req).expect("ksync write");
        let mut out = vec![0u8; 1 << 20];
        let mut got = Vec::new();
        loop {
            let n = self.ksync.read(&mut out);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&out[..n]);
        }
        answer_objects(&got)
            .into_iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r.resp_code),
                _ => None,
            })
            .collect()
    }

    /// Decide flow `idx` (the agent's FLOW_SET after a FLOW_MISS).
    pub fn decide(&mut self, hdr: &AgentHdr, action: u16) -> i32 {
        let req = VrFlowReq {
            fr_op: sandesh::FlowOp::FlowSet,
            fr_index: hdr.param as i32,
            fr_gen_id: hdr.param_5,
            fr_action: action as i16,
            fr_flags: dp_core::flow::table::VR_FLOW_FLAG_ACTIVE as i16,
            fr_rindex: -1,
            ..Default::default()
        };
        let r = self.flow_key_of(hdr.param, req);
        self.ksync(&[Message::Flow(r)])[0]
    }

    /// The FLOW_SET must carry the entry's key: read it from the table.
    fn flow_key_of(&self, idx: u32, mut req: VrFlowReq) -> VrFlowReq {
        let g = self.sw.driver.lock();
        let e = g.ext.router().flows().get(idx).expect("flow entry");
        ksync::convert::set_flow_key(&mut req, e.key());
        req
    }

    /// The next frame on pkt0, with its agent header.
    pub fn pkt0(&self) -> Option<(AgentHdr, Vec<u8>)> {
        let mut buf = vec![0u8; 65536];
        let n = self.sw.driver.pkt0_read(&mut buf).ok()?;
        buf.truncate(n);
        let hdr = AgentHdr::parse(&buf[14..14 + AGENT_HDR_LEN]).unwrap();
        Some((hdr, buf[14 + AGENT_HDR_LEN..].to_vec()))
    }

    /// Send one contiguous frame from `src` with the core's headroom.
    pub fn send(&self, src: PortNic, frame: &[u8]) -> u64 {
        self.sw
            .send(&[NblSpec::frame(src, frame, dp_core::HEADROOM)])[0]
    }
}

/// One request message holding `objs`, as upstream clients frame it.
pub fn request(objs: &[Message], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let meta = Meta {
        family: GENL_ID_VROUTER,
        flags: NLM_F_REQUEST,
        seq,
        pid: 4242,
        version: 0,
    };
    frame::write_sandesh(&mut out, &meta, Style::Request, |o| {
        for m in objs {
            m.encode(o);
        }
    })
    .unwrap();
    out
}

/// Every object of every answer message in `out`.
pub fn answer_objects(out: &[u8]) -> Vec<Message> {
    let mut objs = Vec::new();
    for f in frame::parse_all(out) {
        if let Ok(Frame::Sandesh { payload, .. }) = f {
            objs.extend(Message::decode_all(payload).unwrap());
        }
    }
    objs
}

// ---- frames ---------------------------------------------------------------

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = packet::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

/// An Ethernet + IPv4 + UDP frame.
pub fn udp(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ipv4(src, dst, 17, &u));
    f
}

/// A to B, routed (to the vRouter's MAC, as after proxy ARP).
pub fn a_to_b(sport: u16, payload: &[u8]) -> Vec<u8> {
    udp(
        dp_core::VROUTER_MAC,
        MAC_A,
        IP_A,
        IP_B,
        sport,
        5001,
        payload,
    )
}

pub fn b_to_a(dport: u16, payload: &[u8]) -> Vec<u8> {
    udp(
        dp_core::VROUTER_MAC,
        MAC_B,
        IP_B,
        IP_A,
        5001,
        dport,
        payload,
    )
}

pub fn a_to_c(sport: u16, payload: &[u8]) -> Vec<u8> {
    udp(
        dp_core::VROUTER_MAC,
        MAC_A,
        IP_A,
        IP_C,
        sport,
        5001,
        payload,
    )
}

/// What A's frame to B looks like when B receives it: B's MAC from the
/// vRouter's, TTL one less, checksum updated.
pub fn routed(frame: &[u8], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&dp_core::VROUTER_MAC);
    f[22] -= 1;
    f[24] = 0;
    f[25] = 0;
    let c = packet::checksum::ipv4_header_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// An agent frame on pkt0: Ethernet, `agent_hdr`, then `frame`.
pub fn agent_frame(hdr: &AgentHdr, frame: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let mut h = [0u8; AGENT_HDR_LEN];
    hdr.emit(&mut h);
    f.extend_from_slice(&h);
    f.extend_from_slice(frame);
    f
}
