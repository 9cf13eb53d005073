//! Wire formats for the vRouter datapath (`no_std`, no allocation).
//!
//! * [`wire`] re-exports [smoltcp]'s wire module (Ethernet, ARP, IPv4, IPv6,
//!   UDP, TCP, ICMPv4, ICMPv6/NDISC, DHCPv4). Everything smoltcp already models
//!   well is used from there rather than rewritten.
//! * [`vlan`], [`gre`], [`mpls`] and [`vxlan`] are zero-copy views in smoltcp's
//!   style (`new_unchecked` / `new_checked` / `check_len` / getters / setters /
//!   `into_inner`). They are hand-written because smoltcp, being an end-host
//!   stack, has no 802.1Q, GRE, MPLS or VXLAN support at all.
//! * [`parse`] is a single-pass header walk for the forwarding hot path. It is
//!   hand-written rather than built from smoltcp's views because the views
//!   re-check lengths per field, smoltcp's `Ipv6Packet` does not walk
//!   extension headers for us, and the core needs one flat, `Copy` summary
//!   (addresses, ports, fragment fields, offsets) in well under 100 ns.
//! * [`checksum`] has a word-at-a-time one's-complement sum and the RFC 1624
//!   incremental updates that NAT and TTL rewrites need; smoltcp only offers a
//!   full recompute.
//! * [`icmp`] builds ICMP errors that quote the original datagram byte for
//!   byte (smoltcp's `Icmpv4Repr` re-emits the quoted header from a `Repr`,
//!   which drops IP options and cannot carry the next-hop MTU of RFC 1191).
//! * [`dhcpv6`] is a DHCPv6 message view, options iterator and writer
//!   (smoltcp has no DHCPv6).
//! * [`dhcp`] iterates and writes DHCPv4 options on top of smoltcp's
//!   `DhcpPacket` (smoltcp's `DhcpRepr` only knows the options its client uses
//!   and its option writer cannot report how much it wrote).
//!
//! Nothing here panics on input from the wire: every read is bounds-checked
//! and truncated input yields an error (or, for the L4 part of [`parse`], a
//! zeroed field).
#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod checksum;
pub mod dhcp;
pub mod dhcpv6;
mod error;
pub mod gre;
pub mod icmp;
pub mod mpls;
pub mod parse;
pub mod vlan;
pub mod vxlan;
pub mod wire;

pub use error::{Error, ParseError};

/// Result type of the views and builders in this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType (TPID) of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType (TPID) of an 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// EtherType of MPLS unicast.
pub const ETHERTYPE_MPLS: u16 = 0x8847;
/// UDP destination port of MPLS-in-UDP (RFC 7510).
pub const UDP_PORT_MPLS: u16 = 6635;
/// UDP destination port of VXLAN (RFC 7348).
pub const UDP_PORT_VXLAN: u16 = 4789;
/// IP protocol number of GRE.
pub const IP_PROTO_GRE: u8 = 47;
/// IP protocol number of ICMP.
pub const IP_PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IP_PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IP_PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const IP_PROTO_ICMPV6: u8 = 58;
/// Length of an untagged Ethernet header.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Bounds-checked big-endian reads and writes used by every view and by
/// the datapath's in-place rewrites. They return `None` instead of
/// panicking, and compile to a single length compare plus a load or store.
pub mod be {
    /// The big-endian `u16` at `off`.
    #[inline(always)]
    pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
        let s: [u8; 2] = b.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(u16::from_be_bytes(s))
    }

    /// The big-endian `u32` at `off`.
    #[inline(always)]
    pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
        let s: [u8; 4] = b.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_be_bytes(s))
    }

    /// Store `v` big-endian at `off`.
    #[inline(always)]
    pub fn put_u16(b: &mut [u8], off: usize, v: u16) -> Option<()> {
        b.get_mut(off..off.checked_add(2)?)?
            .copy_from_slice(&v.to_be_bytes());
        Some(())
    }

    /// Store `v` big-endian at `off`.
    #[inline(always)]
    pub fn put_u32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
        b.get_mut(off..off.checked_add(4)?)?
            .copy_from_slice(&v.to_be_bytes());
        Some(())
    }
}
