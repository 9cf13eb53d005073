//! What this compute node tells the control nodes: one subscription per
//! routing instance with ports here (its VRF id as instance id), and per
//! port its inet /32 (inet6 /128) and its EVPN MAC+IP route, with this
//! node's tunnel address, the port's labels and the encapsulations the
//! global-vrouter-config allows, as upstream's agent publishes them
//! (`ControllerSendV4V6UnicastRouteCommon`, `BuildEvpnUnicastMessage`).
//!
//! * inet: the L3 label, `gre`/`udp` (those of MPLSoGRE/MPLSoUDP the
//!   priorities list; both when they list neither);
//! * EVPN: with VXLAN first in the priorities, `vxlan` and the VNI as
//!   label; otherwise the L2 label and `gre`/`udp`.

use crate::model::Model;
use crate::program::Ids;
use crate::rib::Encap;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use xmpp::enet::{EnetItem, EnetNextHop, EnetNlri};
use xmpp::unicast::{af, safi, InetItem, NextHop, Nlri};
use xmpp::xml::Element;

/// Upstream's default path preference (`PathPreference::LOW`).
const LOCAL_PREF: i64 = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub ri: String,
    pub item: Element,
    /// EVPN (the `_l2` ids).
    pub l2: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exports {
    /// Routing instance -> instance id.
    pub subs: BTreeMap<String, u32>,
    /// (routing instance, publish node id) -> what to publish there (EVPN
    /// node ids do not name the instance).
    pub routes: BTreeMap<(String, String), Export>,
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The encapsulation lists for inet and EVPN routes.
fn encaps(prio: &[Encap]) -> (Vec<String>, bool) {
    let mut mpls: Vec<String> = [Encap::Gre, Encap::Udp]
        .into_iter()
        .filter(|e| prio.contains(e))
        .map(|e| e.name().to_string())
        .collect();
    if mpls.is_empty() {
        mpls = vec!["gre".into(), "udp".into()];
    }
    (mpls, prio.first() == Some(&Encap::Vxlan))
}

pub fn exports(model: &Model, ids: &Ids, sip: Ipv4Addr) -> Exports {
    let mut out = Exports::default();
    let (mpls, vxlan) = encaps(&model.encap_priority);
    for p in model.ports.values() {
        let Some(vn) = model.vns.get(&p.vn) else {
            continue;
        };
        out.subs.insert(vn.ri.clone(), u32::from(vn.vrf));
        let sgs: Vec<i64> = p
            .sgs
            .iter()
            .filter_map(|s| model.sg_ids.get(s).copied())
            .collect();
        let l3 = i64::from(ids.l3_nh(p.vif));
        let l2 = i64::from(ids.l2_nh(p.vif));
        let addrs: Vec<IpAddr> = p
            .ip4
            .map(IpAddr::V4)
            .into_iter()
            .chain(p.ip6.map(IpAddr::V6))
            .collect();
        for ip in &addrs {
            let (a, plen) = match ip {
                IpAddr::V4(_) => (af::IPV4, 32),
                IpAddr::V6(_) => (af::IPV6, 128),
            };
            let prefix = format!("{ip}/{plen}");
            let item = InetItem {
                nlri: Nlri {
                    af: a,
                    safi: safi::UNICAST,
                    address: prefix.clone(),
                },
                next_hops: vec![NextHop {
                    af: af::IPV4,
                    address: sip.to_string(),
                    label: l3,
                    encap: mpls.clone(),
                    virtual_network: vn.fq_name.clone(),
                    ..NextHop::default()
                }],
                version: 1,
                security_groups: sgs.clone(),
                local_preference: LOCAL_PREF,
                ..InetItem::default()
            };
            out.routes.insert(
                (
                    vn.ri.clone(),
                    format!("{a}/{}/{}/{prefix}", safi::UNICAST, vn.ri),
                ),
                Export {
                    ri: vn.ri.clone(),
                    item: item.encode(),
                    l2: false,
                },
            );
            let mac = mac_str(&p.mac);
            let item = EnetItem {
                nlri: EnetNlri {
                    af: af::L2VPN,
                    safi: safi::ENET,
                    mac: mac.clone(),
                    address: prefix.clone(),
                    ..EnetNlri::default()
                },
                next_hops: vec![EnetNextHop {
                    af: af::IPV4,
                    address: sip.to_string(),
                    label: if vxlan { i64::from(vn.vni) } else { l2 },
                    encap: if vxlan {
                        vec!["vxlan".into()]
                    } else {
                        mpls.clone()
                    },
                    ..EnetNextHop::default()
                }],
                security_groups: sgs.clone(),
                local_preference: LOCAL_PREF,
                ..EnetItem::default()
            };
            out.routes.insert(
                (
                    vn.ri.clone(),
                    format!("{}/{}/{mac},{prefix}", af::L2VPN, safi::ENET),
                ),
                Export {
                    ri: vn.ri.clone(),
                    item: item.encode(),
                    l2: true,
                },
            );
        }
    }
    out
}

/// The item of a withdrawal: upstream sends the EVPN one with next-hop
/// address 0.0.0.0, the inet one as published.
pub fn withdrawal(e: &Export) -> Element {
    if !e.l2 {
        return e.item.clone();
    }
    match EnetItem::parse(&e.item) {
        Ok(mut it) => {
            for n in &mut it.next_hops {
                n.address = "0.0.0.0".into();
            }
            it.encode()
        }
        Err(_) => e.item.clone(),
    }
}
