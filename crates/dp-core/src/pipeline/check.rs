//! Header checks: what a frame must look like before the datapath forwards
//! it, and the upstream drop reason each failure is counted under.
//!
//! Upstream vRouter leaves most of this to the NIC and the host kernel
//! (bad checksums are flagged by the NIC, `ip_rcv` checks lengths); a
//! user-space or NDIS datapath sees the raw frames, so the core checks
//! them itself and counts each failure where upstream would:
//!
//! | failure | reason (upstream) |
//! |---|---|
//! | frame shorter than its Ethernet/VLAN headers | `vds_interface_drop` (`vr_pkt_type() < 0` → `vif_drop_pkt`), and the vif's input errors |
//! | IP packet shorter than its headers or its total length | `vds_pull` (a failed `pkt_pull`) |
//! | IPv4 IHL below 5, or an IP version other than the EtherType's | `vds_invalid_protocol` (`vr_ip_input`) |
//! | IPv4 header checksum, or a non-zero outer UDP checksum, wrong | `vds_cksum_err` |
//! | TCP header cut short | `vds_pull` (`vr_ip_transport_parse` → slow path) |
//! | UDP length below 8 or beyond the IP payload, TCP data offset below 5 | `vds_invalid_packet` |

use super::*;
use packet::ParseError;

/// The drop reason of a frame [`PacketInfo::parse`] refused.
pub(super) fn parse_drop(e: ParseError) -> DropReason {
    match e {
        ParseError::TruncatedL2 => DropReason::InterfaceDrop,
        ParseError::TruncatedL3 | ParseError::TooLong => DropReason::Pull,
        ParseError::BadVersion | ParseError::BadHeaderLen => DropReason::InvalidProtocol,
        ParseError::BadArp => DropReason::InvalidArp,
        ParseError::TooManyExtHeaders | ParseError::UnsupportedEthertype => {
            DropReason::InvalidPacket
        }
    }
}

/// The IPv4 header checksum of the packet at `info.l3_offset` is right.
#[inline]
pub(super) fn ipv4_header_ok(frame: &[u8], info: &PacketInfo) -> bool {
    let l3 = info.l3_offset as usize;
    let ihl = frame.get(l3).map_or(0, |b| usize::from(b & 0x0f) * 4);
    frame
        .get(l3..l3 + ihl)
        .is_some_and(|h| ihl >= IPV4_LEN && checksum::verify(h))
}

/// Checks of an IP packet a container sent: the IPv4 header checksum
/// (unless the host says checksums are not computed yet) and a usable
/// TCP/UDP/ICMP header (for the first fragment, or an unfragmented
/// packet). `frame` ends where the IP packet ends.
pub(super) fn check_ip(
    frame: &[u8],
    info: &PacketInfo,
    csum_partial: bool,
) -> Result<(), DropReason> {
    if info.family == Family::Ipv4 && !csum_partial && !ipv4_header_ok(frame, info) {
        return Err(DropReason::CksumErr);
    }
    if info.frag.offset != 0 {
        return Ok(());
    }
    let l4 = info.l4_offset as usize;
    let end = info.l3_offset as usize + info.l3_len as usize;
    match info.proto {
        PROTO_TCP => {
            if l4 == 0 {
                return Err(DropReason::Pull);
            }
            let doff = frame.get(l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
            if doff < 20 {
                return Err(DropReason::InvalidPacket);
            }
            if l4 + doff > end {
                return Err(DropReason::Pull);
            }
        }
        PROTO_UDP => {
            if l4 == 0 {
                return Err(DropReason::Pull);
            }
            let ulen = usize::from(rd16(frame, l4 + 4).unwrap_or(0));
            // A first fragment carries only part of the datagram.
            if ulen < UDP_LEN || (!info.frag.is_fragment && ulen > end - l4) {
                return Err(DropReason::InvalidPacket);
            }
        }
        PROTO_ICMP | PROTO_ICMPV6 if l4 == 0 => return Err(DropReason::Pull),
        _ => {}
    }
    Ok(())
}

/// For an overlay UDP datagram (MPLSoUDP, VXLAN) addressed to us: its
/// length must fit the IP payload (bytes after it are a trailer and are
/// cut, as the kernel's `udp_rcv` does) and a non-zero checksum must be
/// right. Segments the host cut from a GSO super-packet had their checksum
/// computed by the host and are not checked again.
pub(super) fn check_outer_udp(pkt: &mut Packet<'_>, info: &PacketInfo) -> Result<(), DropReason> {
    let l4 = info.l4_offset as usize;
    let end = info.l3_offset as usize + info.l3_len as usize;
    let d = pkt.data();
    let ulen = usize::from(rd16(d, l4 + 4).unwrap_or(0));
    if ulen < UDP_LEN || l4 + ulen > end {
        return Err(DropReason::InvalidPacket);
    }
    let csum = rd16(d, l4 + 6).unwrap_or(0);
    if csum != 0 && !pkt.is_gso() {
        let src: [u8; 4] = info.src_v4();
        let dst: [u8; 4] = info.dst_v4();
        let udp = d.get(l4..l4 + ulen).unwrap_or(&[]);
        if checksum::l4_checksum_v4(&src, &dst, PROTO_UDP, udp) != 0 {
            return Err(DropReason::CksumErr);
        }
    }
    pkt.truncate(l4 + ulen);
    Ok(())
}

/// The EtherType and offset of the L3 header, walking VLAN tags as
/// [`PacketInfo::parse`] does (for frames whose L3 header it refused).
pub(super) fn l3_start(frame: &[u8]) -> Option<(u16, usize)> {
    let mut et = rd16(frame, 12)?;
    let mut off = ETH_LEN;
    let mut tags = 0;
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) && tags < packet::parse::MAX_VLAN_TAGS {
        et = rd16(frame, off + 2)?;
        off += 4;
        tags += 1;
    }
    Some((et, off))
}
