//! Windows: `GetBestRoute2` for the next hop, `ResolveIpNetEntry2` for its
//! MAC (which also resolves it when the neighbour cache has nothing).

use super::FabricOs;
use std::net::Ipv4Addr;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetBestRoute2, ResolveIpNetEntry2, MIB_IPFORWARD_ROW2, MIB_IPNET_ROW2,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, SOCKADDR_INET};

pub struct Windows;

fn sockaddr(ip: Ipv4Addr) -> SOCKADDR_INET {
    let mut s = SOCKADDR_INET::default();
    s.Ipv4.sin_family = AF_INET;
    s.Ipv4.sin_addr.S_un.S_addr = u32::from_ne_bytes(ip.octets());
    s
}

fn v4(s: &SOCKADDR_INET) -> Option<Ipv4Addr> {
    // SAFETY: every variant starts with the family; the v4 fields are
    // read only when it says AF_INET.
    unsafe {
        (s.si_family == AF_INET).then(|| Ipv4Addr::from(s.Ipv4.sin_addr.S_un.S_addr.to_ne_bytes()))
    }
}

impl FabricOs for Windows {
    fn lookup(&self, ip: Ipv4Addr) -> Option<[u8; 6]> {
        let dst = sockaddr(ip);
        let mut route = MIB_IPFORWARD_ROW2::default();
        let mut src = SOCKADDR_INET::default();
        // SAFETY: pointers to initialised locals; null for the optional
        // interface and source.
        let rc = unsafe {
            GetBestRoute2(
                std::ptr::null(),
                0,
                std::ptr::null(),
                &dst,
                0,
                &mut route,
                &mut src,
            )
        };
        if rc != 0 {
            return None;
        }
        let via = v4(&route.NextHop)
            .filter(|a| !a.is_unspecified())
            .unwrap_or(ip);
        let mut row = MIB_IPNET_ROW2 {
            Address: sockaddr(via),
            InterfaceIndex: route.InterfaceIndex,
            ..MIB_IPNET_ROW2::default()
        };
        // SAFETY: row is initialised; null source address lets the stack
        // pick it.
        let rc = unsafe { ResolveIpNetEntry2(&mut row, std::ptr::null()) };
        if rc != 0 || row.PhysicalAddressLength != 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&row.PhysicalAddress[..6]);
        Some(mac)
    }

    fn probe(&self, ip: Ipv4Addr) {
        super::udp_probe(ip);
    }
}
