//! The model both channel tests program: one VN, two ports with a
//! security group, and the frames they send.

#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use agent::model::{Model, Port, Subnet, Vn};
use std::net::{IpAddr, Ipv4Addr};
use uuid::Uuid;

pub const MAC_A: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];

pub fn model() -> Model {
    let vn = Uuid::from_u128(0x1111);
    let mut m = Model {
        revision: 1,
        ..Model::default()
    };
    m.vns.insert(
        vn,
        Vn {
            uuid: vn,
            fq_name: "default-domain:p:blue".into(),
            vrf: 5,
            vni: 5,
            subnets: vec![Subnet {
                prefix: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
                plen: 24,
                gateway: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
                dns: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))),
                dhcp: true,
                dhcp_mtu: None,
            }],
            has_policy: false,
            ri: String::new(),
        },
    );
    for (vif, mac, last) in [(3u16, MAC_A, 3u8), (4, MAC_B, 4)] {
        let p = Port {
            uuid: Uuid::from_u128(u128::from(vif)),
            vif,
            name: format!("tapvif{vif}"),
            mac,
            ip4: Some(Ipv4Addr::new(198, 18, 0, last)),
            ip6: None,
            vn,
            vrf: 5,
            sgs: vec!["default-domain:p:default".into()],
            policy: true,
            dhcp: true,
            mtu: 1500,
            display_name: String::new(),
            sub: None,
        };
        m.by_addr.insert((5, IpAddr::V4(p.ip4.unwrap())), p.vif);
        m.ports.insert(vif, p);
    }
    m.vrf_members.insert(5, vec![vn]);
    // The default security group: ingress from itself, egress anywhere.
    let sg = serde_json::json!({
        "fq_name": ["default-domain", "p", "default"],
        "security_group_entries": {"policy_rule": [
            {"direction": ">", "protocol": "any", "ethertype": "IPv4",
             "src_addresses": [{"security_group": "default-domain:p:default"}],
             "dst_addresses": [{"security_group": "local"}],
             "src_ports": [{"start_port": 0, "end_port": 65535}],
             "dst_ports": [{"start_port": 0, "end_port": 65535}]},
            {"direction": ">", "protocol": "any", "ethertype": "IPv4",
             "src_addresses": [{"security_group": "local"}],
             "dst_addresses": [{"subnet": {"ip_prefix": "0.0.0.0", "ip_prefix_len": 0}}],
             "src_ports": [{"start_port": 0, "end_port": 65535}],
             "dst_ports": [{"start_port": 0, "end_port": 65535}]}
        ]}
    });
    let sg_id = Uuid::from_u128(0x5e);
    let (set, warnings) = policy::PolicySet::build([], [], [(&sg_id, &sg)]);
    assert!(warnings.is_empty(), "{warnings:?}");
    m.policy = Some(set);
    m
}

pub fn udp(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = dp_core::VROUTER_MAC.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 38, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = packet::checksum::ipv4_header_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 18, 0, 0]);
    f.extend_from_slice(&[0x5a; 10]);
    f
}
