//! Re-exports of the [smoltcp] wire types the datapath uses, so downstream
//! crates depend on one version through this crate.
//!
//! smoltcp is built with `default-features = false` and only
//! `proto-ipv4`, `proto-ipv6`, `medium-ethernet` and `proto-dhcpv4` (plus
//! `socket-raw`, because smoltcp insists on one socket type whenever
//! `medium-ethernet` is on; nothing here uses it): no `std`, no `alloc`.

pub use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpOption, DhcpPacket,
    DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4DstUnreachable,
    Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, Icmpv6DstUnreachable,
    Icmpv6Message, Icmpv6Packet, Icmpv6Repr, Icmpv6TimeExceeded, IpAddress, IpProtocol, IpVersion,
    Ipv4Address, Ipv4Cidr, Ipv4Packet, Ipv4Repr, Ipv6Address, Ipv6Cidr, Ipv6ExtHeader,
    Ipv6FragmentHeader, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscPrefixInfoFlags,
    NdiscPrefixInformation, NdiscRepr, NdiscRouterFlags, RawHardwareAddress, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, TCP_HEADER_LEN, UDP_HEADER_LEN,
};

/// smoltcp's wire error (a unit struct).
pub use smoltcp::wire::Error as SmoltcpError;

/// smoltcp's time span (NDISC lifetimes).
pub use smoltcp::time::Duration;

/// Checksum capabilities argument of smoltcp's `Repr::parse`/`emit`.
pub use smoltcp::phy::ChecksumCapabilities;
