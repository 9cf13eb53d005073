//! Linux: `/proc/net/route` (longest match, gateway if any) and
//! `/proc/net/arp` (complete entries).

use super::FabricOs;
use std::net::Ipv4Addr;

pub struct Linux;

/// `/proc/net/route` holds addresses as host-order hex of the in-memory
/// (network-order) value.
fn hex_addr(s: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(s, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

/// The next hop towards `ip` (the gateway, or `ip` when on-link).
pub(crate) fn next_hop(routes: &str, ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for l in routes.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (Some(dst), Some(gw), Some(flags), Some(mask)) = (
            f.get(1).and_then(|s| hex_addr(s)),
            f.get(2).and_then(|s| hex_addr(s)),
            f.get(3).and_then(|s| u32::from_str_radix(s, 16).ok()),
            f.get(7).and_then(|s| hex_addr(s)),
        ) else {
            continue;
        };
        if flags & 0x1 == 0 {
            continue; // not up
        }
        let m = u32::from(mask);
        if u32::from(ip) & m != u32::from(dst) & m {
            continue;
        }
        if best.is_none_or(|(bm, _)| m.count_ones() > bm) {
            let via = if flags & 0x2 != 0 { gw } else { ip };
            best = Some((m.count_ones(), via));
        }
    }
    best.map(|(_, v)| v)
}

/// The MAC of a complete entry for `ip`.
pub(crate) fn arp_entry(arp: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    for l in arp.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first().and_then(|s| s.parse::<Ipv4Addr>().ok()) != Some(ip) {
            continue;
        }
        let flags = f
            .get(2)
            .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok())?;
        if flags & 0x2 == 0 {
            return None;
        }
        let mac = crate::ports::parse_mac(f.get(3)?)?;
        return (mac != [0; 6]).then_some(mac);
    }
    None
}

impl FabricOs for Linux {
    fn lookup(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        let routes = std::fs::read_to_string("/proc/net/route").ok()?;
        let via = next_hop(&routes, ip)?;
        arp_entry(&std::fs::read_to_string("/proc/net/arp").ok()?, via)
    }

    fn probe(&self, ip: Ipv4Addr) {
        super::udp_probe(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
fab\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device\n\
192.0.2.2        0x1         0x2         02:11:00:00:00:02     *        fab\n\
192.0.2.3        0x1         0x0         00:00:00:00:00:00     *        fab\n\
172.18.0.1       0x1         0x2         02:42:ac:12:00:01     *        eth0\n";

    #[test]
    fn on_link_and_via_gateway() {
        assert_eq!(
            next_hop(ROUTES, Ipv4Addr::new(192, 0, 2, 2)),
            Some(Ipv4Addr::new(192, 0, 2, 2))
        );
        assert_eq!(
            next_hop(ROUTES, Ipv4Addr::new(8, 8, 8, 8)),
            Some(Ipv4Addr::new(172, 18, 0, 1))
        );
        assert_eq!(
            arp_entry(ARP, Ipv4Addr::new(192, 0, 2, 2)),
            Some([2, 0x11, 0, 0, 0, 2])
        );
        assert_eq!(arp_entry(ARP, Ipv4Addr::new(192, 0, 2, 3)), None);
        assert_eq!(arp_entry(ARP, Ipv4Addr::new(192, 0, 2, 9)), None);
    }
}
