//! Every `buffer sandesh` of upstream vRouter's `sandesh/vr.sandesh`, with
//! the same names, field ids, field order and wire types.
//!
//! Rust types: `byte` is `u8` (vRouter uses its `byte` fields as unsigned:
//! types, families, MAC and IPv6 address bytes; the wire is the same),
//! `list<T>` is `Vec<T>`, `sandesh_op`/`flow_op` are [`SandeshOp`]/[`FlowOp`],
//! `string` is `String`. Absent fields decode to their default (0, empty),
//! which is what upstream's zeroed C structs hold.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{Fields, Reader};
use crate::{DecodeError, FlowOp, Sandesh, SandeshOp};

/// Declares every message with [`sandesh!`](crate::sandesh) and builds the
/// [`Message`] enum over them. Unit tests also get a proptest `Arbitrary`
/// for each message, built field by field so it scales to 90 fields.
macro_rules! vr_messages {
    ($(
        $(#[$meta:meta])*
        $variant:ident => pub struct $name:ident = $wire_name:literal {
            $( $id:literal : $wt:ident $(< $et:ident >)? $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        $(
            $crate::sandesh! {
                $(#[$meta])*
                pub struct $name = $wire_name {
                    $( $id : $wt $(< $et >)? $field : $ty ),*
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$variant(m)
                }
            }

            #[cfg(test)]
            impl proptest::arbitrary::Arbitrary for $name {
                type Parameters = ();
                type Strategy = proptest::strategy::BoxedStrategy<Self>;
                fn arbitrary_with(_: ()) -> Self::Strategy {
                    use proptest::prelude::*;
                    let s = Just(<$name>::default()).boxed();
                    $(
                        let s = (s, any::<$ty>())
                            .prop_map(|(mut m, v)| {
                                m.$field = v;
                                m
                            })
                            .boxed();
                    )*
                    s
                }
            }
        )*

        /// Any object of `vr.sandesh`.
        // Not boxed: objects are decoded one at a time and moved once; a box
        // would add an allocation per object and make matching clumsier.
        #[allow(clippy::large_enum_variant)]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Message {
            $( $(#[$meta])* $variant($name), )*
        }

        impl Message {
            /// The object name written on the wire.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Message::$variant(_) => <$name as Sandesh>::NAME, )*
                }
            }

            /// Appends the object: its name, then its fields.
            pub fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $( Message::$variant(m) => m.encode(out), )*
                }
            }

            /// Decodes the object at the start of `buf`, dispatching on its
            /// name. Returns it and the number of bytes it took.
            pub fn decode_one(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
                let mut r = Reader::new(buf);
                let name = r.read_sandesh_begin()?;
                $(
                    if name == <$name as Sandesh>::NAME.as_bytes() {
                        let m = <$name as Fields>::decode_fields(&mut r)?;
                        return Ok((Message::$variant(m), r.position()));
                    }
                )*
                Err(DecodeError::UnknownObject)
            }

            #[cfg(test)]
            pub(crate) fn arbitrary() -> impl proptest::strategy::Strategy<Value = Message> {
                use alloc::vec;
                use proptest::prelude::*;
                prop_oneof![
                    $( any::<$name>().prop_map(Message::$variant), )*
                ]
            }
        }

        /// Every object name this crate decodes.
        pub const NAMES: &[&str] = &[ $( $wire_name, )* ];
    };
}

vr_messages! {
    /// `vr_nexthop_req`: Nexthop add/delete/get/dump (`NH_*` types, encap, tunnel endpoints, composite members).
    Nexthop => pub struct VrNexthopReq = "vr_nexthop_req" {
        1: sandesh_op h_op: SandeshOp,
        2: byte nhr_type: u8,
        3: byte nhr_family: u8,
        4: i32 nhr_id: i32,
        5: i32 nhr_rid: i32,
        6: list<i32> nhr_encap_oif_id: Vec<i32>,
        7: i32 nhr_encap_len: i32,
        8: i32 nhr_encap_family: i32,
        9: i32 nhr_vrf: i32,
        10: u32 nhr_tun_sip: u32,
        11: u32 nhr_tun_dip: u32,
        12: i16 nhr_tun_sport: i16,
        13: i16 nhr_tun_dport: i16,
        14: i32 nhr_ref_cnt: i32,
        15: i32 nhr_marker: i32,
        16: u32 nhr_flags: u32,
        17: list<byte> nhr_encap: Vec<u8>,
        18: list<i32> nhr_nh_list: Vec<i32>,
        19: list<i32> nhr_label_list: Vec<i32>,
        20: i16 nhr_nh_count: i16,
        21: list<byte> nhr_tun_sip6: Vec<u8>,
        22: list<byte> nhr_tun_dip6: Vec<u8>,
        23: byte nhr_ecmp_config_hash: u8,
        24: list<byte> nhr_pbb_mac: Vec<u8>,
        25: i32 nhr_encap_crypt_oif_id: i32,
        26: i32 nhr_crypt_traffic: i32,
        27: i32 nhr_crypt_path_available: i32,
        28: list<byte> nhr_rw_dst_mac: Vec<u8>,
        29: u32 nhr_transport_label: u32,
        30: list<i32> nhr_encap_valid: Vec<i32>,
    }

    /// `vr_interface_req`: Virtual interface (vif) add/delete/get/dump, with its counters.
    Interface => pub struct VrInterfaceReq = "vr_interface_req" {
        1: sandesh_op h_op: SandeshOp,
        2: u32 vifr_core: u32,
        3: i32 vifr_type: i32,
        4: i32 vifr_flags: i32,
        5: i32 vifr_vrf: i32,
        6: i32 vifr_idx: i32,
        7: i32 vifr_rid: i32,
        8: i32 vifr_os_idx: i32,
        9: i32 vifr_mtu: i32,
        10: string vifr_name: String,
        11: i64 vifr_ibytes: i64,
        12: i64 vifr_ipackets: i64,
        13: i64 vifr_ierrors: i64,
        14: i64 vifr_obytes: i64,
        15: i64 vifr_opackets: i64,
        16: i64 vifr_oerrors: i64,
        17: i64 vifr_queue_ipackets: i64,
        18: i64 vifr_queue_ierrors: i64,
        19: list<i64> vifr_queue_ierrors_to_lcore: Vec<i64>,
        20: i64 vifr_queue_opackets: i64,
        21: i64 vifr_queue_oerrors: i64,
        22: i64 vifr_port_ipackets: i64,
        23: i64 vifr_port_ierrors: i64,
        24: i64 vifr_port_isyscalls: i64,
        25: i64 vifr_port_inombufs: i64,
        26: i64 vifr_port_opackets: i64,
        27: i64 vifr_port_oerrors: i64,
        28: i64 vifr_port_osyscalls: i64,
        29: i64 vifr_dev_ibytes: i64,
        30: i64 vifr_dev_ipackets: i64,
        31: i64 vifr_dev_ierrors: i64,
        32: i64 vifr_dev_inombufs: i64,
        33: i64 vifr_dev_obytes: i64,
        34: i64 vifr_dev_opackets: i64,
        35: i64 vifr_dev_oerrors: i64,
        36: i32 vifr_ref_cnt: i32,
        37: i32 vifr_marker: i32,
        38: list<byte> vifr_mac: Vec<u8>,
        39: u32 vifr_ip: u32,
        40: u64 vifr_ip6_u: u64,
        41: u64 vifr_ip6_l: u64,
        42: i32 vifr_context: i32,
        43: i16 vifr_mir_id: i16,
        44: i32 vifr_speed: i32,
        45: i32 vifr_duplex: i32,
        46: i16 vifr_vlan_id: i16,
        47: i32 vifr_parent_vif_idx: i32,
        48: i32 vifr_nh_id: i32,
        49: list<i32> vifr_cross_connect_idx: Vec<i32>,
        50: list<byte> vifr_src_mac: Vec<u8>,
        51: list<i32> vifr_bridge_idx: Vec<i32>,
        52: i16 vifr_ovlan_id: i16,
        53: byte vifr_transport: u8,
        54: list<i32> vifr_fat_flow_protocol_port: Vec<i32>,
        55: i16 vifr_qos_map_index: i16,
        56: list<byte> vifr_in_mirror_md: Vec<u8>,
        57: list<byte> vifr_out_mirror_md: Vec<u8>,
        58: u64 vifr_dpackets: u64,
        59: list<i16> vifr_hw_queues: Vec<i16>,
        60: u32 vifr_isid: u32,
        61: list<byte> vifr_pbb_mac: Vec<u8>,
        62: byte vifr_vhostuser_mode: u8,
        63: i32 vifr_mcast_vrf: i32,
        64: list<byte> vifr_if_guid: Vec<u8>,
        65: list<u64> vifr_fat_flow_exclude_ip_list: Vec<u64>,
        66: list<u64> vifr_fat_flow_exclude_ip6_u_list: Vec<u64>,
        67: list<u64> vifr_fat_flow_exclude_ip6_l_list: Vec<u64>,
        68: list<u16> vifr_fat_flow_exclude_ip6_plen_list: Vec<u16>,
        77: list<u64> vifr_fat_flow_src_prefix_h: Vec<u64>,
        78: list<u64> vifr_fat_flow_src_prefix_l: Vec<u64>,
        79: list<byte> vifr_fat_flow_src_prefix_mask: Vec<u8>,
        80: list<byte> vifr_fat_flow_src_aggregate_plen: Vec<u8>,
        81: list<u64> vifr_fat_flow_dst_prefix_h: Vec<u64>,
        82: list<u64> vifr_fat_flow_dst_prefix_l: Vec<u64>,
        83: list<byte> vifr_fat_flow_dst_prefix_mask: Vec<u8>,
        84: list<byte> vifr_fat_flow_dst_aggregate_plen: Vec<u8>,
        85: byte vifr_intf_status: u8,
        86: list<byte> vifr_fab_name: Vec<u8>,
        87: list<byte> vifr_fab_drv_name: Vec<u8>,
        88: byte vifr_num_bond_slave: u8,
        89: list<byte> vifr_bond_slave_name: Vec<u8>,
        90: list<byte> vifr_bond_slave_drv_name: Vec<u8>,
        91: u32 vifr_vlan_tag: u32,
        92: list<byte> vifr_vlan_name: Vec<u8>,
        93: u32 vifr_loopback_ip: u32,
    }

    /// `vr_vxlan_req`: VXLAN VNI -> nexthop.
    Vxlan => pub struct VrVxlanReq = "vr_vxlan_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vxlanr_rid: i16,
        3: i32 vxlanr_vnid: i32,
        4: i32 vxlanr_nhid: i32,
    }

    /// `vr_route_req`: Inet (IPv4/IPv6) or bridge (MAC) route in a VRF.
    Route => pub struct VrRouteReq = "vr_route_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i32 rtr_vrf_id: i32,
        3: i32 rtr_family: i32,
        4: list<byte> rtr_prefix: Vec<u8>,
        5: i32 rtr_prefix_len: i32,
        6: i16 rtr_rid: i16,
        7: i16 rtr_label_flags: i16,
        8: i32 rtr_label: i32,
        9: i32 rtr_nh_id: i32,
        10: list<byte> rtr_marker: Vec<u8>,
        11: i32 rtr_marker_plen: i32,
        12: list<byte> rtr_mac: Vec<u8>,
        13: i32 rtr_replace_plen: i32,
        14: i32 rtr_index: i32,
    }

    /// `vr_mpls_req`: MPLS label -> nexthop.
    Mpls => pub struct VrMplsReq = "vr_mpls_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i32 mr_label: i32,
        3: i16 mr_rid: i16,
        4: i32 mr_nhid: i32,
        5: i32 mr_marker: i32,
    }

    /// `vr_mirror_req`: Mirror entry.
    Mirror => pub struct VrMirrorReq = "vr_mirror_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 mirr_index: i16,
        3: i16 mirr_rid: i16,
        4: i32 mirr_nhid: i32,
        5: i32 mirr_users: i32,
        6: i32 mirr_flags: i32,
        7: i32 mirr_marker: i32,
        8: i32 mirr_vni: i32,
        9: i16 mirr_vlan: i16,
    }

    /// `vr_vrf_req`: VRF table entry.
    Vrf => pub struct VrVrfReq = "vr_vrf_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vrf_rid: i16,
        3: i32 vrf_idx: i32,
        4: i32 vrf_flags: i32,
        5: i32 vrf_hbfl_vif_idx: i32,
        6: i32 vrf_hbfr_vif_idx: i32,
        7: i32 vrf_marker: i32,
    }

    /// `vr_flow_req`: Flow table operation (set an entry, list, table get).
    Flow => pub struct VrFlowReq = "vr_flow_req" {
        1: flow_op fr_op: FlowOp,
        2: i16 fr_rid: i16,
        3: i32 fr_index: i32,
        4: i16 fr_action: i16,
        5: i16 fr_flags: i16,
        6: i32 fr_rindex: i32,
        7: i32 fr_family: i32,
        8: u64 fr_flow_sip_u: u64,
        9: u64 fr_flow_sip_l: u64,
        10: u64 fr_flow_dip_u: u64,
        11: u64 fr_flow_dip_l: u64,
        12: u16 fr_flow_sport: u16,
        13: u16 fr_flow_dport: u16,
        14: byte fr_flow_proto: u8,
        15: u16 fr_flow_vrf: u16,
        16: u16 fr_flow_dvrf: u16,
        17: u16 fr_mir_id: u16,
        18: u16 fr_sec_mir_id: u16,
        19: u32 fr_mir_sip: u32,
        20: u16 fr_mir_sport: u16,
        21: list<byte> fr_pcap_meta_data: Vec<u8>,
        22: u16 fr_mir_vrf: u16,
        23: u32 fr_ecmp_nh_index: u32,
        24: u32 fr_src_nh_index: u32,
        25: u32 fr_flow_nh_id: u32,
        26: u16 fr_drop_reason: u16,
        27: byte fr_gen_id: u8,
        28: u64 fr_rflow_sip_u: u64,
        29: u64 fr_rflow_sip_l: u64,
        30: u64 fr_rflow_dip_u: u64,
        31: u64 fr_rflow_dip_l: u64,
        32: u32 fr_rflow_nh_id: u32,
        33: u16 fr_rflow_sport: u16,
        34: u16 fr_rflow_dport: u16,
        35: u16 fr_qos_id: u16,
        36: byte fr_ttl: u8,
        37: i16 fr_extflags: i16,
        38: i16 fr_flags1: i16,
        39: byte fr_underlay_ecmp_index: u8,
    }

    /// `vr_vrf_assign_req`: VLAN -> VRF assignment on a vif.
    VrfAssign => pub struct VrVrfAssignReq = "vr_vrf_assign_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 var_rid: i16,
        3: i16 var_vif_index: i16,
        4: i32 var_vif_vrf: i32,
        5: i16 var_vlan_id: i16,
        6: i16 var_marker: i16,
        7: i32 var_nh_id: i32,
    }

    /// `vr_vrf_stats_req`: Per-VRF forwarding statistics.
    VrfStats => pub struct VrVrfStatsReq = "vr_vrf_stats_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vsr_rid: i16,
        3: i16 vsr_family: i16,
        4: i16 vsr_type: i16,
        5: i32 vsr_vrf: i32,
        6: i64 vsr_discards: i64,
        7: i64 vsr_resolves: i64,
        8: i64 vsr_receives: i64,
        9: i64 vsr_ecmp_composites: i64,
        10: i64 vsr_l2_mcast_composites: i64,
        11: i64 vsr_fabric_composites: i64,
        12: i64 vsr_udp_tunnels: i64,
        13: i64 vsr_udp_mpls_tunnels: i64,
        14: i64 vsr_gre_mpls_tunnels: i64,
        15: i64 vsr_l2_encaps: i64,
        16: i64 vsr_encaps: i64,
        17: i16 vsr_marker: i16,
        18: i64 vsr_gros: i64,
        19: i64 vsr_diags: i64,
        20: i64 vsr_encap_composites: i64,
        21: i64 vsr_evpn_composites: i64,
        22: i64 vsr_vrf_translates: i64,
        23: i64 vsr_vxlan_tunnels: i64,
        24: i64 vsr_arp_virtual_proxy: i64,
        25: i64 vsr_arp_virtual_stitch: i64,
        26: i64 vsr_arp_virtual_flood: i64,
        27: i64 vsr_arp_physical_stitch: i64,
        28: i64 vsr_arp_tor_proxy: i64,
        29: i64 vsr_arp_physical_flood: i64,
        30: i64 vsr_l2_receives: i64,
        31: i64 vsr_uuc_floods: i64,
        32: i64 vsr_pbb_tunnels: i64,
        33: i64 vsr_udp_mpls_over_mpls_tunnels: i64,
    }

    /// `vr_response`: The response header: `resp_code` is 0/positive on success or a negative errno; for a dump, the count of objects that follow or a marker.
    Response => pub struct VrResponse = "vr_response" {
        1: sandesh_op h_op: SandeshOp,
        2: i32 resp_code: i32,
    }

    /// `vrouter_ops`: Global vRouter parameters and table sizes.
    VrouterOps => pub struct VrouterOps = "vrouter_ops" {
        1: sandesh_op h_op: SandeshOp,
        2: i32 vo_rid: i32,
        3: i32 vo_mpls_labels: i32,
        4: i32 vo_nexthops: i32,
        5: i32 vo_bridge_entries: i32,
        6: i32 vo_oflow_bridge_entries: i32,
        7: i32 vo_flow_entries: i32,
        8: i32 vo_oflow_entries: i32,
        9: i32 vo_interfaces: i32,
        10: i32 vo_mirror_entries: i32,
        11: i32 vo_vrfs: i32,
        12: string vo_build_info: String,
        13: u32 vo_log_level: u32,
        14: list<i32> vo_log_type_enable: Vec<i32>,
        15: list<i32> vo_log_type_disable: Vec<i32>,
        16: i32 vo_perfr: i32,
        17: i32 vo_perfs: i32,
        18: i32 vo_from_vm_mss_adj: i32,
        19: i32 vo_to_vm_mss_adj: i32,
        20: i32 vo_perfr1: i32,
        21: i32 vo_perfr2: i32,
        22: i32 vo_perfr3: i32,
        23: i32 vo_perfp: i32,
        24: i32 vo_perfq1: i32,
        25: i32 vo_perfq2: i32,
        26: i32 vo_perfq3: i32,
        27: i32 vo_udp_coff: i32,
        28: i32 vo_flow_hold_limit: i32,
        29: i32 vo_mudp: i32,
        30: u32 vo_flow_used_entries: u32,
        31: u32 vo_flow_used_oentries: u32,
        32: u32 vo_bridge_used_entries: u32,
        33: u32 vo_bridge_used_oentries: u32,
        34: i32 vo_burst_tokens: i32,
        35: i32 vo_burst_interval: i32,
        36: i32 vo_burst_step: i32,
        37: i32 vo_memory_alloc_checks: i32,
        38: u32 vo_priority_tagging: u32,
        39: i32 vo_vif_bridge_entries: i32,
        40: i32 vo_vif_oflow_bridge_entries: i32,
        41: i32 vo_packet_dump: i32,
        42: i32 vo_pkt_droplog_bufsz: i32,
        43: byte vo_pkt_droplog_buf_en: u8,
        44: byte vo_pkt_droplog_en: u8,
        45: byte vo_pkt_droplog_min_en: u8,
        46: byte vo_uncond_close_flow_on_tcp_rst: u8,
        47: i16 vo_genetlink_group_id: i16,
    }

    /// `vr_mem_stats_req`: Memory allocation statistics per object kind.
    MemStats => pub struct VrMemStatsReq = "vr_mem_stats_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vms_rid: i16,
        3: i64 vms_alloced: i64,
        4: i64 vms_freed: i64,
        5: i64 vms_assembler_table_object: i64,
        6: i64 vms_bridge_mac_object: i64,
        7: i64 vms_btable_object: i64,
        8: i64 vms_build_info_object: i64,
        9: i64 vms_defer_object: i64,
        10: i64 vms_drop_stats_object: i64,
        11: i64 vms_drop_stats_req_object: i64,
        12: i64 vms_flow_queue_object: i64,
        13: i64 vms_flow_req_object: i64,
        14: i64 vms_flow_req_path_object: i64,
        15: i64 vms_flow_hold_stat_object: i64,
        16: i64 vms_flow_link_local_object: i64,
        17: i64 vms_flow_metadata_object: i64,
        18: i64 vms_flow_table_data_object: i64,
        19: i64 vms_flow_table_info_object: i64,
        20: i64 vms_fragment_object: i64,
        21: i64 vms_fragment_queue_object: i64,
        22: i64 vms_fragment_queue_element_object: i64,
        23: i64 vms_fragment_scanner_object: i64,
        24: i64 vms_hpacket_pool_object: i64,
        25: i64 vms_htable_object: i64,
        26: i64 vms_interface_object: i64,
        27: i64 vms_interface_mac_object: i64,
        28: i64 vms_interface_req_object: i64,
        29: i64 vms_interface_req_mac_object: i64,
        30: i64 vms_interface_req_name_object: i64,
        31: i64 vms_interface_stats_object: i64,
        32: i64 vms_interface_table_object: i64,
        33: i64 vms_interface_vrf_table_object: i64,
        34: i64 vms_itable_object: i64,
        35: i64 vms_malloc_object: i64,
        36: i64 vms_message_object: i64,
        37: i64 vms_message_response_object: i64,
        38: i64 vms_message_dump_object: i64,
        39: i64 vms_mem_stats_req_object: i64,
        40: i64 vms_mirror_object: i64,
        41: i64 vms_mirror_table_object: i64,
        42: i64 vms_mirror_meta_object: i64,
        43: i64 vms_mtrie_object: i64,
        44: i64 vms_mtrie_bucket_object: i64,
        45: i64 vms_mtrie_stats_object: i64,
        46: i64 vms_mtrie_table_object: i64,
        47: i64 vms_network_address_object: i64,
        48: i64 vms_nexthop_object: i64,
        49: i64 vms_nexthop_component_object: i64,
        50: i64 vms_nexthop_req_list_object: i64,
        51: i64 vms_nexthop_req_encap_object: i64,
        52: i64 vms_nexthop_req_object: i64,
        53: i64 vms_route_table_object: i64,
        54: i64 vms_route_req_mac_object: i64,
        55: i64 vms_timer_object: i64,
        56: i64 vms_usock_object: i64,
        57: i64 vms_usock_poll_object: i64,
        58: i64 vms_usock_buf_object: i64,
        59: i64 vms_usock_iovec_object: i64,
        60: i64 vms_vrouter_req_object: i64,
        61: i64 vms_interface_fat_flow_config_object: i64,
        62: i64 vms_qos_map_object: i64,
        63: i64 vms_fc_object: i64,
        64: i64 vms_interface_mirror_meta_object: i64,
        65: i64 vms_interface_req_mirror_meta_object: i64,
        66: i64 vms_interface_bridge_lock_object: i64,
        67: i64 vms_interface_queue_object: i64,
        68: i64 vms_interface_req_pbb_mac_object: i64,
        69: i64 vms_nexthop_req_bmac_object: i64,
        70: i64 vms_interface_req_bridge_id_object: i64,
        71: i64 vms_interface_fat_flow_ipv4_exclude_list_object: i64,
        72: i64 vms_interface_fat_flow_ipv6_exclude_list_object: i64,
    }

    /// `vr_info_req`: Introspection (`vr_info`) buffers.
    Info => pub struct VrInfoReq = "vr_info_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vdu_rid: i16,
        3: i16 vdu_index: i16,
        4: i16 vdu_buff_table_id: i16,
        5: i16 vdu_marker: i16,
        6: i16 vdu_msginfo: i16,
        7: i32 vdu_outbufsz: i32,
        8: list<byte> vdu_inbuf: Vec<u8>,
        9: list<byte> vdu_proc_info: Vec<u8>,
    }

    /// `vr_pkt_drop_log_req`: Packet drop log.
    PktDropLog => pub struct VrPktDropLogReq = "vr_pkt_drop_log_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vdl_rid: i16,
        3: i16 vdl_core: i16,
        4: i16 vdl_log_idx: i16,
        5: i16 vdl_max_num_cores: i16,
        6: i16 vdl_pkt_droplog_max_bufsz: i16,
        7: i16 vdl_pkt_droplog_en: i16,
        8: i16 vdl_pkt_droplog_sysctl_en: i16,
        9: list<byte> vdl_pkt_droplog_arr: Vec<u8>,
        10: byte vdl_pkt_droplog_type: u8,
        11: byte vdl_pkt_droplog_min_sysctl_en: u8,
        12: byte vdl_pkt_droplog_config: u8,
    }

    /// `vr_drop_stats_req`: Drop counters, one per reason (`vds_*`), optionally per core.
    DropStats => pub struct VrDropStatsReq = "vr_drop_stats_req" {
        1: sandesh_op h_op: SandeshOp,
        2: i16 vds_rid: i16,
        3: i16 vds_core: i16,
        4: i64 vds_discard: i64,
        5: byte vds_pcpu_stats_failure_status: u8,
        6: i64 vds_pull: i64,
        7: i64 vds_invalid_if: i64,
        8: i64 vds_invalid_arp: i64,
        9: i64 vds_trap_no_if: i64,
        10: i64 vds_nowhere_to_go: i64,
        11: i64 vds_flow_queue_limit_exceeded: i64,
        12: i64 vds_flow_no_memory: i64,
        13: i64 vds_flow_invalid_protocol: i64,
        14: i64 vds_flow_nat_no_rflow: i64,
        15: i64 vds_flow_action_drop: i64,
        16: i64 vds_flow_action_invalid: i64,
        17: i64 vds_flow_unusable: i64,
        18: i64 vds_flow_table_full: i64,
        19: i64 vds_interface_tx_discard: i64,
        20: i64 vds_interface_drop: i64,
        21: i64 vds_duplicated: i64,
        22: i64 vds_push: i64,
        23: i64 vds_ttl_exceeded: i64,
        24: i64 vds_invalid_nh: i64,
        25: i64 vds_invalid_label: i64,
        26: i64 vds_invalid_protocol: i64,
        27: i64 vds_interface_rx_discard: i64,
        28: i64 vds_invalid_mcast_source: i64,
        29: i64 vds_head_alloc_fail: i64,
        30: i64 vds_pcow_fail: i64,
        31: i64 vds_mcast_df_bit: i64,
        32: i64 vds_mcast_clone_fail: i64,
        33: i64 vds_no_memory: i64,
        34: i64 vds_rewrite_fail: i64,
        35: i64 vds_misc: i64,
        36: i64 vds_invalid_packet: i64,
        37: i64 vds_cksum_err: i64,
        38: i64 vds_no_fmd: i64,
        39: i64 vds_cloned_original: i64,
        40: i64 vds_invalid_vnid: i64,
        41: i64 vds_frag_err: i64,
        42: i64 vds_invalid_source: i64,
        43: i64 vds_l2_no_route: i64,
        44: i64 vds_fragment_queue_fail: i64,
        45: i64 vds_vlan_fwd_tx: i64,
        46: i64 vds_vlan_fwd_enq: i64,
        47: i64 vds_drop_new_flow: i64,
        48: i64 vds_flow_evict: i64,
        49: i64 vds_trap_original: i64,
        50: i64 vds_leaf_to_leaf: i64,
        51: i64 vds_bmac_isid_mismatch: i64,
        52: i64 vds_pkt_loop: i64,
        53: i64 vds_no_crypt_path: i64,
        54: i64 vds_invalid_hbs_pkt: i64,
        55: i64 vds_no_frag_entry: i64,
        56: i64 vds_icmp_error: i64,
        57: i64 vds_clone_fail: i64,
        58: i64 vds_invalid_underlay_ecmp: i64,
    }

    /// `vr_qos_map_req`: QoS map: DSCP/MPLS EXP/802.1p -> forwarding class.
    QosMap => pub struct VrQosMapReq = "vr_qos_map_req" {
        1: sandesh_op h_op: SandeshOp,
        2: u16 qmr_rid: u16,
        3: u16 qmr_id: u16,
        4: list<byte> qmr_dscp: Vec<u8>,
        5: list<byte> qmr_dscp_fc_id: Vec<u8>,
        6: list<byte> qmr_mpls_qos: Vec<u8>,
        7: list<byte> qmr_mpls_qos_fc_id: Vec<u8>,
        8: list<byte> qmr_dotonep: Vec<u8>,
        9: list<byte> qmr_dotonep_fc_id: Vec<u8>,
        10: i16 qmr_marker: i16,
    }

    /// `vr_fc_map_req`: Forwarding class -> DSCP/MPLS EXP/802.1p/queue.
    FcMap => pub struct VrFcMapReq = "vr_fc_map_req" {
        1: sandesh_op h_op: SandeshOp,
        2: u16 fmr_rid: u16,
        3: list<i16> fmr_id: Vec<i16>,
        4: list<byte> fmr_dscp: Vec<u8>,
        5: list<byte> fmr_mpls_qos: Vec<u8>,
        6: list<byte> fmr_dotonep: Vec<u8>,
        7: list<byte> fmr_queue_id: Vec<u8>,
        8: i16 fmr_marker: i16,
    }

    /// `vr_flow_response`: Answer to a `vr_flow_req` set.
    FlowResponse => pub struct VrFlowResponse = "vr_flow_response" {
        1: flow_op fresp_op: FlowOp,
        2: u16 fresp_rid: u16,
        3: u16 fresp_flags: u16,
        4: u32 fresp_index: u32,
        5: u32 fresp_bytes: u32,
        6: u32 fresp_packets: u32,
        7: u32 fresp_stats_oflow: u32,
        8: byte fresp_gen_id: u8,
    }

    /// `vr_flow_table_data`: Flow table geometry and counters (answer to `FLOW_TABLE_GET`).
    ///
    /// Field 101 is ours, not upstream's: `ftable_hold_expired`, the entries
    /// the datapath removed because they stayed on HOLD too long (its bound
    /// on lost flow traps). Decoders skip unknown ids, upstream's included,
    /// and the id is far from upstream's numbering.
    FlowTableData => pub struct VrFlowTableData = "vr_flow_table_data" {
        1: flow_op ftable_op: FlowOp,
        2: u16 ftable_rid: u16,
        3: u32 ftable_size: u32,
        4: u16 ftable_dev: u16,
        5: string ftable_file_path: String,
        6: u64 ftable_used_entries: u64,
        7: u64 ftable_processed: u64,
        8: u64 ftable_deleted: u64,
        9: u64 ftable_added: u64,
        10: u64 ftable_created: u64,
        11: u64 ftable_changed: u64,
        12: u32 ftable_hold_oflows: u32,
        13: u32 ftable_cpus: u32,
        14: u32 ftable_oflow_entries: u32,
        15: list<u32> ftable_hold_stat: Vec<u32>,
        16: u32 ftable_burst_free_tokens: u32,
        17: u32 ftable_hold_entries: u32,
        101: u64 ftable_hold_expired: u64,
    }

    /// `vr_bridge_table_data`: Bridge table geometry (for mapping it).
    BridgeTableData => pub struct VrBridgeTableData = "vr_bridge_table_data" {
        1: sandesh_op btable_op: SandeshOp,
        2: u16 btable_rid: u16,
        3: u32 btable_size: u32,
        4: u16 btable_dev: u16,
        5: string btable_file_path: String,
    }

    /// `vr_hugepage_config`: Huge page configuration (DPDK).
    HugepageConfig => pub struct VrHugepageConfig = "vr_hugepage_config" {
        1: sandesh_op vhp_op: SandeshOp,
        2: list<u64> vhp_mem: Vec<u64>,
        3: list<u32> vhp_psize: Vec<u32>,
        4: u32 vhp_resp: u32,
        5: list<u32> vhp_mem_sz: Vec<u32>,
        6: list<byte> vhp_file_paths: Vec<u8>,
        7: list<u32> vhp_file_path_sz: Vec<u32>,
    }
}

impl Message {
    /// The encoded object as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes every object in `buf` (e.g. a `vr_response` and the objects
    /// it announces).
    pub fn decode_all(buf: &[u8]) -> Result<Vec<Message>, DecodeError> {
        Messages::new(buf).collect()
    }
}

/// Iterator over the objects that follow each other in one buffer. It stops
/// after the first error.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    buf: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> Messages<'a> {
    /// Iterates over the objects in `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Messages {
            buf,
            offset: 0,
            failed: false,
        }
    }

    /// Bytes consumed by the objects returned so far.
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.offset..).filter(|r| !r.is_empty());
        let rest = match rest {
            Some(r) if !self.failed => r,
            _ => return None,
        };
        match Message::decode_one(rest) {
            Ok((m, n)) => {
                self.offset += n;
                Some(Ok(m))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Messages<'_> {}

/// Name of the object at the start of `buf`, without decoding it (e.g. to
/// log an [`UnknownObject`](DecodeError::UnknownObject)).
pub fn object_name(buf: &[u8]) -> Result<&[u8], DecodeError> {
    Reader::new(buf).read_sandesh_begin()
}
