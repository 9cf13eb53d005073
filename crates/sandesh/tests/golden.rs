//! Golden encodings: for every message a small realistic object, checked
//! byte for byte against bytes assembled here by hand from `vr.sandesh`'s
//! field table (every field, in id order, as upstream's generated C writer
//! emits them), and decoded back. The small messages are written out as
//! literal bytes; the wide ones with the tiny assembler below, which shares
//! nothing with the crate's encoder.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use sandesh::*;

/// Hand assembler for expected bytes.
#[derive(Default)]
struct G(Vec<u8>);

const BYTE: u8 = 3;
const I16: u8 = 6;
const I32: u8 = 8;
const U64: u8 = 9;
const I64: u8 = 10;
const STRING: u8 = 11;
const LIST: u8 = 15;
const U16: u8 = 19;
const U32: u8 = 20;

impl G {
    fn new(name: &str) -> G {
        let mut g = G::default();
        g.0.extend_from_slice(&(name.len() as u32).to_be_bytes());
        g.0.extend_from_slice(name.as_bytes());
        g
    }
    fn hdr(&mut self, t: u8, id: i16) -> &mut Self {
        self.0.push(t);
        self.0.extend_from_slice(&id.to_be_bytes());
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn byte(&mut self, id: i16, v: u8) -> &mut Self {
        self.hdr(BYTE, id).raw(&[v])
    }
    fn i16(&mut self, id: i16, v: i16) -> &mut Self {
        self.hdr(I16, id).raw(&v.to_be_bytes())
    }
    fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.hdr(I32, id).raw(&v.to_be_bytes())
    }
    fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.hdr(I64, id).raw(&v.to_be_bytes())
    }
    fn u16(&mut self, id: i16, v: u16) -> &mut Self {
        self.hdr(U16, id).raw(&v.to_be_bytes())
    }
    fn u32(&mut self, id: i16, v: u32) -> &mut Self {
        self.hdr(U32, id).raw(&v.to_be_bytes())
    }
    fn u64(&mut self, id: i16, v: u64) -> &mut Self {
        self.hdr(U64, id).raw(&v.to_be_bytes())
    }
    fn string(&mut self, id: i16, s: &str) -> &mut Self {
        self.hdr(STRING, id)
            .raw(&(s.len() as u32).to_be_bytes())
            .raw(s.as_bytes())
    }
    fn list(&mut self, id: i16, elem: u8, n: usize, body: &[u8]) -> &mut Self {
        self.hdr(LIST, id)
            .raw(&[elem])
            .raw(&(n as u32).to_be_bytes())
            .raw(body)
    }
    fn bytes(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.list(id, BYTE, v.len(), v)
    }
    fn i32s(&mut self, id: i16, v: &[i32]) -> &mut Self {
        let body: Vec<u8> = v.iter().flat_map(|x| x.to_be_bytes()).collect();
        self.list(id, I32, v.len(), &body)
    }
    fn empty(&mut self, id: i16, elem: u8) -> &mut Self {
        self.list(id, elem, 0, &[])
    }
    /// Zero-valued i64 fields for every id in the range.
    fn zero_i64s(&mut self, ids: std::ops::RangeInclusive<i16>) -> &mut Self {
        for id in ids {
            self.i64(id, 0);
        }
        self
    }
    fn zero_i32s(&mut self, ids: std::ops::RangeInclusive<i16>) -> &mut Self {
        for id in ids {
            self.i32(id, 0);
        }
        self
    }
    fn stop(&mut self) -> Vec<u8> {
        self.0.push(0);
        core::mem::take(&mut self.0)
    }
}

/// Checks both directions, through the typed and the enum API.
fn check<T: Sandesh + core::fmt::Debug + PartialEq + Clone + Into<Message>>(m: T, golden: &[u8]) {
    let ours = m.to_bytes();
    assert_eq!(ours, golden, "{}: encoding differs", T::NAME);
    assert_eq!(T::decode(golden).unwrap(), (m.clone(), golden.len()));
    let msg: Message = m.into();
    assert_eq!(msg.to_bytes(), golden);
    assert_eq!(Message::decode_one(golden).unwrap(), (msg, golden.len()));
}

#[test]
fn vr_response_literal() {
    #[rustfmt::skip]
    let golden = [
        0, 0, 0, 11, b'v', b'r', b'_', b'r', b'e', b's', b'p', b'o', b'n', b's', b'e',
        8, 0, 1, 0, 0, 0, 4,                 // h_op = RESPONSE
        8, 0, 2, 0xff, 0xff, 0xff, 0xfe,     // resp_code = -ENOENT
        0,
    ];
    check(
        VrResponse {
            h_op: SandeshOp::Response,
            resp_code: -2,
        },
        &golden,
    );
}

#[test]
fn vr_vxlan_req_literal() {
    #[rustfmt::skip]
    let golden = [
        0, 0, 0, 12, b'v', b'r', b'_', b'v', b'x', b'l', b'a', b'n', b'_', b'r', b'e', b'q',
        8, 0, 1, 0, 0, 0, 0,                 // h_op = ADD
        6, 0, 2, 0, 0,                       // vxlanr_rid
        8, 0, 3, 0, 0, 0x13, 0x88,           // vxlanr_vnid = 5000
        8, 0, 4, 0, 0, 0, 21,                // vxlanr_nhid
        0,
    ];
    check(
        VrVxlanReq {
            h_op: SandeshOp::Add,
            vxlanr_rid: 0,
            vxlanr_vnid: 5000,
            vxlanr_nhid: 21,
        },
        &golden,
    );
}

#[test]
fn vr_mpls_req_literal() {
    #[rustfmt::skip]
    let golden = [
        0, 0, 0, 11, b'v', b'r', b'_', b'm', b'p', b'l', b's', b'_', b'r', b'e', b'q',
        8, 0, 1, 0, 0, 0, 2,                 // h_op = DEL
        8, 0, 2, 0, 0, 0, 16,                // mr_label
        6, 0, 3, 0, 0,                       // mr_rid
        8, 0, 4, 0, 0, 0, 20,                // mr_nhid
        8, 0, 5, 0xff, 0xff, 0xff, 0xff,     // mr_marker = -1
        0,
    ];
    check(
        VrMplsReq {
            h_op: SandeshOp::Del,
            mr_label: 16,
            mr_rid: 0,
            mr_nhid: 20,
            mr_marker: -1,
        },
        &golden,
    );
}

#[test]
fn vr_interface_req_vif_add() {
    let mac = [0x02, 0x00, 0x5e, 0x00, 0x01, 0x01];
    let guid = [0x11; 16];
    let m = VrInterfaceReq {
        h_op: SandeshOp::Add,
        vifr_type: 3, // VIF_TYPE_VIRTUAL
        vifr_flags: 0x1,
        vifr_vrf: 1,
        vifr_idx: 4,
        vifr_os_idx: 17,
        vifr_mtu: 1514,
        vifr_name: "tap1234".into(),
        vifr_mac: mac.to_vec(),
        vifr_ip: 0xc000_0201,
        vifr_nh_id: 20,
        vifr_mir_id: -1,
        vifr_transport: 1,
        vifr_if_guid: guid.to_vec(),
        ..Default::default()
    };
    let mut g = G::new("vr_interface_req");
    g.i32(1, 0)
        .u32(2, 0)
        .i32(3, 3)
        .i32(4, 1)
        .i32(5, 1)
        .i32(6, 4)
        .i32(7, 0)
        .i32(8, 17)
        .i32(9, 1514);
    g.string(10, "tap1234");
    g.zero_i64s(11..=18).empty(19, I64).zero_i64s(20..=35);
    g.i32(36, 0)
        .i32(37, 0)
        .bytes(38, &mac)
        .u32(39, 0xc000_0201)
        .u64(40, 0)
        .u64(41, 0);
    g.i32(42, 0)
        .i16(43, -1)
        .i32(44, 0)
        .i32(45, 0)
        .i16(46, 0)
        .i32(47, 0)
        .i32(48, 20);
    g.empty(49, I32)
        .empty(50, BYTE)
        .empty(51, I32)
        .i16(52, 0)
        .byte(53, 1)
        .empty(54, I32);
    g.i16(55, 0)
        .empty(56, BYTE)
        .empty(57, BYTE)
        .u64(58, 0)
        .empty(59, I16)
        .u32(60, 0);
    g.empty(61, BYTE).byte(62, 0).i32(63, 0).bytes(64, &guid);
    g.empty(65, U64)
        .empty(66, U64)
        .empty(67, U64)
        .empty(68, U16);
    g.empty(77, U64)
        .empty(78, U64)
        .empty(79, BYTE)
        .empty(80, BYTE);
    g.empty(81, U64)
        .empty(82, U64)
        .empty(83, BYTE)
        .empty(84, BYTE);
    g.byte(85, 0)
        .empty(86, BYTE)
        .empty(87, BYTE)
        .byte(88, 0)
        .empty(89, BYTE)
        .empty(90, BYTE);
    g.u32(91, 0).empty(92, BYTE).u32(93, 0);
    let golden = g.stop();

    // The first bytes spelled out: name, h_op, vifr_core, vifr_type.
    #[rustfmt::skip]
    let head = [
        0, 0, 0, 16, b'v', b'r', b'_', b'i', b'n', b't', b'e', b'r', b'f', b'a', b'c', b'e',
        b'_', b'r', b'e', b'q',
        8, 0, 1, 0, 0, 0, 0,
        20, 0, 2, 0, 0, 0, 0,
        8, 0, 3, 0, 0, 0, 3,
    ];
    assert_eq!(golden[..head.len()], head);
    check(m, &golden);
}

#[test]
fn vr_nexthop_req_encap() {
    let encap = [
        0x02, 0x00, 0x5e, 0x00, 0x01, 0x01, 0x02, 0x00, 0x5e, 0x00, 0x00, 0x01, 0x08, 0x00,
    ];
    let m = VrNexthopReq {
        h_op: SandeshOp::Add,
        nhr_type: 2,   // NH_ENCAP
        nhr_family: 2, // AF_INET
        nhr_id: 20,
        nhr_encap_oif_id: vec![4],
        nhr_encap_len: 14,
        nhr_encap_family: 0x0806,
        nhr_vrf: 1,
        nhr_flags: 0x1 | 0x4, // VALID | POLICY
        nhr_encap: encap.to_vec(),
        ..Default::default()
    };
    let mut g = G::new("vr_nexthop_req");
    g.i32(1, 0)
        .byte(2, 2)
        .byte(3, 2)
        .i32(4, 20)
        .i32(5, 0)
        .i32s(6, &[4]);
    g.i32(7, 14)
        .i32(8, 0x0806)
        .i32(9, 1)
        .u32(10, 0)
        .u32(11, 0)
        .i16(12, 0)
        .i16(13, 0);
    g.i32(14, 0)
        .i32(15, 0)
        .u32(16, 5)
        .bytes(17, &encap)
        .empty(18, I32)
        .empty(19, I32);
    g.i16(20, 0)
        .empty(21, BYTE)
        .empty(22, BYTE)
        .byte(23, 0)
        .empty(24, BYTE);
    g.i32(25, 0)
        .i32(26, 0)
        .i32(27, 0)
        .empty(28, BYTE)
        .u32(29, 0)
        .empty(30, I32);
    check(m, &g.stop());
}

#[test]
fn vr_route_req_ipv4_host_route() {
    let m = VrRouteReq {
        h_op: SandeshOp::Add,
        rtr_vrf_id: 1,
        rtr_family: 2,
        rtr_prefix: vec![192, 0, 2, 1],
        rtr_prefix_len: 32,
        rtr_label_flags: 0x1,
        rtr_label: 16,
        rtr_nh_id: 20,
        ..Default::default()
    };
    let mut g = G::new("vr_route_req");
    g.i32(1, 0)
        .i32(2, 1)
        .i32(3, 2)
        .bytes(4, &[192, 0, 2, 1])
        .i32(5, 32)
        .i16(6, 0);
    g.i16(7, 1)
        .i32(8, 16)
        .i32(9, 20)
        .empty(10, BYTE)
        .i32(11, 0)
        .empty(12, BYTE);
    g.i32(13, 0).i32(14, 0);
    check(m, &g.stop());
}

#[test]
fn vr_mirror_req_add() {
    let m = VrMirrorReq {
        h_op: SandeshOp::Add,
        mirr_index: 1,
        mirr_nhid: 30,
        mirr_vni: 7,
        mirr_vlan: 100,
        ..Default::default()
    };
    let mut g = G::new("vr_mirror_req");
    g.i32(1, 0)
        .i16(2, 1)
        .i16(3, 0)
        .i32(4, 30)
        .i32(5, 0)
        .i32(6, 0)
        .i32(7, 0)
        .i32(8, 7);
    g.i16(9, 100);
    check(m, &g.stop());
}

#[test]
fn vr_vrf_req_add() {
    let m = VrVrfReq {
        h_op: SandeshOp::Add,
        vrf_idx: 1,
        vrf_hbfl_vif_idx: -1,
        vrf_hbfr_vif_idx: -1,
        ..Default::default()
    };
    let mut g = G::new("vr_vrf_req");
    g.i32(1, 0)
        .i16(2, 0)
        .i32(3, 1)
        .i32(4, 0)
        .i32(5, -1)
        .i32(6, -1)
        .i32(7, 0);
    check(m, &g.stop());
}

#[test]
fn vr_flow_req_set() {
    let m = VrFlowReq {
        fr_op: FlowOp::FlowSet,
        fr_index: 123,
        fr_action: 2, // VR_FLOW_ACTION_FORWARD
        fr_flags: 1,  // VR_FLOW_FLAG_ACTIVE
        fr_rindex: 456,
        fr_family: 2,
        fr_flow_sip_l: 0xc000_0201,
        fr_flow_dip_l: 0xc000_0202,
        fr_flow_sport: 40000,
        fr_flow_dport: 80,
        fr_flow_proto: 6,
        fr_flow_vrf: 1,
        fr_flow_dvrf: 1,
        fr_mir_id: 0xffff,
        fr_sec_mir_id: 0xffff,
        fr_flow_nh_id: 20,
        fr_gen_id: 3,
        fr_ttl: 64,
        ..Default::default()
    };
    let mut g = G::new("vr_flow_req");
    g.i32(1, 0)
        .i16(2, 0)
        .i32(3, 123)
        .i16(4, 2)
        .i16(5, 1)
        .i32(6, 456)
        .i32(7, 2);
    g.u64(8, 0)
        .u64(9, 0xc000_0201)
        .u64(10, 0)
        .u64(11, 0xc000_0202);
    g.u16(12, 40000)
        .u16(13, 80)
        .byte(14, 6)
        .u16(15, 1)
        .u16(16, 1)
        .u16(17, 0xffff);
    g.u16(18, 0xffff)
        .u32(19, 0)
        .u16(20, 0)
        .empty(21, BYTE)
        .u16(22, 0)
        .u32(23, 0);
    g.u32(24, 0).u32(25, 20).u16(26, 0).byte(27, 3);
    g.u64(28, 0)
        .u64(29, 0)
        .u64(30, 0)
        .u64(31, 0)
        .u32(32, 0)
        .u16(33, 0)
        .u16(34, 0);
    g.u16(35, 0).byte(36, 64).i16(37, 0).i16(38, 0).byte(39, 0);
    check(m, &g.stop());
}

#[test]
fn vr_vrf_assign_req_add() {
    let m = VrVrfAssignReq {
        h_op: SandeshOp::Add,
        var_vif_index: 4,
        var_vif_vrf: 2,
        var_vlan_id: 100,
        var_nh_id: 25,
        ..Default::default()
    };
    let mut g = G::new("vr_vrf_assign_req");
    g.i32(1, 0)
        .i16(2, 0)
        .i16(3, 4)
        .i32(4, 2)
        .i16(5, 100)
        .i16(6, 0)
        .i32(7, 25);
    check(m, &g.stop());
}

#[test]
fn vr_vrf_stats_req_get() {
    let m = VrVrfStatsReq {
        h_op: SandeshOp::Get,
        vsr_family: 2,
        vsr_vrf: 1,
        vsr_discards: 5,
        vsr_vxlan_tunnels: 99,
        ..Default::default()
    };
    let mut g = G::new("vr_vrf_stats_req");
    g.i32(1, 1)
        .i16(2, 0)
        .i16(3, 2)
        .i16(4, 0)
        .i32(5, 1)
        .i64(6, 5)
        .zero_i64s(7..=16);
    g.i16(17, 0)
        .zero_i64s(18..=22)
        .i64(23, 99)
        .zero_i64s(24..=33);
    check(m, &g.stop());
}

#[test]
fn vrouter_ops_get_answer() {
    let m = VrouterOps {
        h_op: SandeshOp::Get,
        vo_mpls_labels: 5120,
        vo_nexthops: 65536,
        vo_bridge_entries: 262144,
        vo_flow_entries: 524288,
        vo_oflow_entries: 8192,
        vo_interfaces: 4352,
        vo_vrfs: 4096,
        vo_build_info: "vrouter-rs".into(),
        vo_log_type_enable: vec![1, 2],
        vo_genetlink_group_id: 4,
        ..Default::default()
    };
    let mut g = G::new("vrouter_ops");
    g.i32(1, 1)
        .i32(2, 0)
        .i32(3, 5120)
        .i32(4, 65536)
        .i32(5, 262144)
        .i32(6, 0);
    g.i32(7, 524288)
        .i32(8, 8192)
        .i32(9, 4352)
        .i32(10, 0)
        .i32(11, 4096);
    g.string(12, "vrouter-rs")
        .u32(13, 0)
        .i32s(14, &[1, 2])
        .empty(15, I32);
    g.zero_i32s(16..=29)
        .u32(30, 0)
        .u32(31, 0)
        .u32(32, 0)
        .u32(33, 0);
    g.zero_i32s(34..=37).u32(38, 0).zero_i32s(39..=42);
    g.byte(43, 0).byte(44, 0).byte(45, 0).byte(46, 0).i16(47, 4);
    check(m, &g.stop());
}

#[test]
fn vr_mem_stats_req_answer() {
    let m = VrMemStatsReq {
        h_op: SandeshOp::Response,
        vms_alloced: 1000,
        vms_freed: 900,
        vms_interface_object: 7,
        ..Default::default()
    };
    let mut g = G::new("vr_mem_stats_req");
    g.i32(1, 4)
        .i16(2, 0)
        .i64(3, 1000)
        .i64(4, 900)
        .zero_i64s(5..=25)
        .i64(26, 7);
    g.zero_i64s(27..=72);
    check(m, &g.stop());
}

#[test]
fn vr_info_req_get() {
    let m = VrInfoReq {
        h_op: SandeshOp::Get,
        vdu_msginfo: 3,
        vdu_outbufsz: 4096,
        vdu_proc_info: b"ok".to_vec(),
        ..Default::default()
    };
    let mut g = G::new("vr_info_req");
    g.i32(1, 1)
        .i16(2, 0)
        .i16(3, 0)
        .i16(4, 0)
        .i16(5, 0)
        .i16(6, 3)
        .i32(7, 4096);
    g.empty(8, BYTE).bytes(9, b"ok");
    check(m, &g.stop());
}

#[test]
fn vr_pkt_drop_log_req_get() {
    let m = VrPktDropLogReq {
        h_op: SandeshOp::Get,
        vdl_core: 1,
        vdl_max_num_cores: 2,
        vdl_pkt_droplog_arr: vec![0xaa, 0xbb],
        vdl_pkt_droplog_type: 1,
        ..Default::default()
    };
    let mut g = G::new("vr_pkt_drop_log_req");
    g.i32(1, 1)
        .i16(2, 0)
        .i16(3, 1)
        .i16(4, 0)
        .i16(5, 2)
        .i16(6, 0)
        .i16(7, 0)
        .i16(8, 0);
    g.bytes(9, &[0xaa, 0xbb])
        .byte(10, 1)
        .byte(11, 0)
        .byte(12, 0);
    check(m, &g.stop());
}

#[test]
fn vr_drop_stats_req_answer() {
    let m = VrDropStatsReq {
        h_op: SandeshOp::Response,
        vds_core: 0,
        vds_discard: 3,
        vds_invalid_if: 1,
        vds_ttl_exceeded: 12,
        vds_invalid_underlay_ecmp: 9,
        ..Default::default()
    };
    let mut g = G::new("vr_drop_stats_req");
    g.i32(1, 4)
        .i16(2, 0)
        .i16(3, 0)
        .i64(4, 3)
        .byte(5, 0)
        .i64(6, 0)
        .i64(7, 1);
    g.zero_i64s(8..=22)
        .i64(23, 12)
        .zero_i64s(24..=57)
        .i64(58, 9);
    check(m, &g.stop());
}

#[test]
fn vr_qos_map_req_add() {
    let m = VrQosMapReq {
        h_op: SandeshOp::Add,
        qmr_id: 1,
        qmr_dscp: vec![10, 46],
        qmr_dscp_fc_id: vec![1, 2],
        ..Default::default()
    };
    let mut g = G::new("vr_qos_map_req");
    g.i32(1, 0)
        .u16(2, 0)
        .u16(3, 1)
        .bytes(4, &[10, 46])
        .bytes(5, &[1, 2]);
    g.empty(6, BYTE)
        .empty(7, BYTE)
        .empty(8, BYTE)
        .empty(9, BYTE)
        .i16(10, 0);
    check(m, &g.stop());
}

#[test]
fn vr_fc_map_req_add() {
    let m = VrFcMapReq {
        h_op: SandeshOp::Add,
        fmr_id: vec![1, 2],
        fmr_dscp: vec![10, 46],
        fmr_queue_id: vec![0, 3],
        ..Default::default()
    };
    let mut g = G::new("vr_fc_map_req");
    g.i32(1, 0)
        .u16(2, 0)
        .list(3, I16, 2, &[0, 1, 0, 2])
        .bytes(4, &[10, 46]);
    g.empty(5, BYTE).empty(6, BYTE).bytes(7, &[0, 3]).i16(8, 0);
    check(m, &g.stop());
}

#[test]
fn vr_flow_response_set() {
    let m = VrFlowResponse {
        fresp_op: FlowOp::FlowSet,
        fresp_flags: 1,
        fresp_index: 123,
        fresp_gen_id: 3,
        ..Default::default()
    };
    let mut g = G::new("vr_flow_response");
    g.i32(1, 0)
        .u16(2, 0)
        .u16(3, 1)
        .u32(4, 123)
        .u32(5, 0)
        .u32(6, 0)
        .u32(7, 0)
        .byte(8, 3);
    check(m, &g.stop());
}

#[test]
fn vr_flow_table_data_get() {
    let m = VrFlowTableData {
        ftable_op: FlowOp::FlowTableGet,
        ftable_size: 80 << 20,
        ftable_file_path: "/dev/shm/flow".into(),
        ftable_used_entries: 10,
        ftable_cpus: 2,
        ftable_hold_stat: vec![1, 2],
        ..Default::default()
    };
    let mut g = G::new("vr_flow_table_data");
    g.i32(1, 2)
        .u16(2, 0)
        .u32(3, 80 << 20)
        .u16(4, 0)
        .string(5, "/dev/shm/flow");
    g.u64(6, 10)
        .u64(7, 0)
        .u64(8, 0)
        .u64(9, 0)
        .u64(10, 0)
        .u64(11, 0);
    g.u32(12, 0)
        .u32(13, 2)
        .u32(14, 0)
        .list(15, U32, 2, &[0, 0, 0, 1, 0, 0, 0, 2]);
    g.u32(16, 0).u32(17, 0);
    check(m, &g.stop());
}

#[test]
fn vr_bridge_table_data_get() {
    let m = VrBridgeTableData {
        btable_op: SandeshOp::Get,
        btable_size: 1 << 20,
        btable_file_path: "/dev/shm/bridge".into(),
        ..Default::default()
    };
    let mut g = G::new("vr_bridge_table_data");
    g.i32(1, 1)
        .u16(2, 0)
        .u32(3, 1 << 20)
        .u16(4, 0)
        .string(5, "/dev/shm/bridge");
    check(m, &g.stop());
}

#[test]
fn vr_hugepage_config_add() {
    let m = VrHugepageConfig {
        vhp_op: SandeshOp::Add,
        vhp_mem: vec![1 << 30],
        vhp_psize: vec![2048],
        vhp_file_paths: b"/hp\0".to_vec(),
        vhp_file_path_sz: vec![4],
        ..Default::default()
    };
    let mut g = G::new("vr_hugepage_config");
    g.i32(1, 0)
        .list(2, U64, 1, &(1u64 << 30).to_be_bytes())
        .list(3, U32, 1, &2048u32.to_be_bytes());
    g.u32(4, 0)
        .empty(5, U32)
        .bytes(6, b"/hp\0")
        .list(7, U32, 1, &4u32.to_be_bytes());
    check(m, &g.stop());
}

/// A datapath answer: `vr_response` followed by the object, in one buffer.
#[test]
fn response_then_object() {
    let resp = VrResponse {
        h_op: SandeshOp::Response,
        resp_code: 0,
    };
    let vrf = VrVrfReq {
        h_op: SandeshOp::Get,
        vrf_idx: 1,
        ..Default::default()
    };
    let mut buf = resp.to_bytes();
    let split = buf.len();
    vrf.encode(&mut buf);
    let mut it = Messages::new(&buf);
    assert_eq!(it.next(), Some(Ok(Message::Response(resp))));
    assert_eq!(it.offset(), split);
    assert_eq!(it.next(), Some(Ok(Message::Vrf(vrf))));
    assert_eq!(it.next(), None);
    assert_eq!(it.offset(), buf.len());
}

#[test]
fn errors() {
    assert_eq!(Message::decode_one(&[]), Err(DecodeError::Truncated));
    assert_eq!(
        Message::decode_one(&[0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::NegativeLength)
    );
    let mut unknown = G::new("vr_no_such_req");
    let unknown = unknown.stop();
    assert_eq!(
        Message::decode_one(&unknown),
        Err(DecodeError::UnknownObject)
    );
    assert_eq!(object_name(&unknown), Ok(&b"vr_no_such_req"[..]));
    let resp = VrResponse::default().to_bytes();
    assert_eq!(VrVrfReq::decode(&resp), Err(DecodeError::WrongObject));
    // An error stops the iterator.
    let mut buf = resp.clone();
    buf.extend_from_slice(&unknown);
    buf.extend_from_slice(&resp);
    let got: Vec<_> = Messages::new(&buf).collect();
    assert_eq!(
        got,
        [
            Ok(Message::Response(VrResponse::default())),
            Err(DecodeError::UnknownObject)
        ]
    );
}
