//! Builders for the ICMP errors a router sends.
//!
//! Each builder writes a complete IP packet (IPv4 or IPv6 header, ICMP
//! header, quoted original datagram) into a caller buffer and returns its
//! length; the caller adds the L2 header. The quote is as long as the RFCs
//! allow and the buffer holds:
//!
//! * IPv4 (RFC 792, RFC 1812 §4.3.2.3): at least the original IP header plus
//!   8 bytes, the whole error at most 576 bytes.
//! * IPv6 (RFC 4443 §2.4(c)): as much as fits in 1280 bytes.
//!
//! The quote is cut at the original's own length field (not at any Ethernet
//! padding after it). Whether an error may be sent at all (not about an
//! ICMP error, a non-first fragment, a broadcast...) is
//! [`may_send_error`]'s job.
//!
//! Hand-written rather than smoltcp's `Icmpv4Repr`/`Icmpv6Repr` because those
//! re-emit the quoted IP header from a parsed `Repr` (losing options and any
//! field smoltcp does not model) and cannot express the RFC 1191 next-hop MTU.

use crate::be;
use crate::checksum;
use crate::parse::{Family, PacketInfo};
use crate::{Error, Result, IP_PROTO_ICMP, IP_PROTO_ICMPV6};

/// Most bytes of an IPv4 ICMP error (RFC 1812 §4.3.2.3).
pub const IPV4_ERROR_MAX: usize = 576;
/// Most bytes of an ICMPv6 error (RFC 4443 §2.4(c), the IPv6 minimum MTU).
pub const IPV6_ERROR_MAX: usize = 1280;
/// TTL / hop limit of generated errors.
pub const DEFAULT_TTL: u8 = 64;

/// ICMPv4 type Destination Unreachable.
pub const ICMPV4_DEST_UNREACHABLE: u8 = 3;
/// ICMPv4 type Time Exceeded.
pub const ICMPV4_TIME_EXCEEDED: u8 = 11;
/// ICMPv4 Destination Unreachable code: fragmentation needed and DF set.
pub const ICMPV4_CODE_FRAG_NEEDED: u8 = 4;
/// ICMPv6 type Destination Unreachable.
pub const ICMPV6_DEST_UNREACHABLE: u8 = 1;
/// ICMPv6 type Packet Too Big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 type Time Exceeded.
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;

const IPV4_HDR: usize = 20;
const IPV6_HDR: usize = 40;
const ICMP_HDR: usize = 8;

/// How many bytes of `original` (an IPv4 packet) to quote when at most
/// `room` bytes are available; errors if not even header + 8 bytes fit.
fn quote_len_v4(original: &[u8], room: usize) -> Result<usize> {
    let first = *original.first().ok_or(Error::Truncated)?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < IPV4_HDR || original.len() < ihl {
        return Err(Error::Malformed);
    }
    let total = usize::from(be::u16_at(original, 2).ok_or(Error::Truncated)?);
    let avail = original.len().min(total.max(ihl));
    let want = avail.min(room);
    if want < avail.min(ihl + 8) {
        return Err(Error::NoSpace);
    }
    Ok(want)
}

fn emit_v4(
    out: &mut [u8],
    src: [u8; 4],
    original: &[u8],
    icmp_type: u8,
    code: u8,
    rest: u32,
) -> Result<usize> {
    let room = out
        .len()
        .min(IPV4_ERROR_MAX)
        .saturating_sub(IPV4_HDR + ICMP_HDR);
    let q = quote_len_v4(original, room)?;
    let dst = crate::be::u32_at(original, 12).ok_or(Error::Truncated)?;
    let total = IPV4_HDR + ICMP_HDR + q;
    let pkt = out.get_mut(..total).ok_or(Error::NoSpace)?;
    let (ip, icmp) = pkt.split_at_mut(IPV4_HDR);
    // Version 4, IHL 5; TOS 0xc0 (internetwork control, as routers use for
    // ICMP); id 0 with DF set (an atomic datagram, RFC 6864).
    ip.copy_from_slice(&[
        0x45,
        0xc0,
        0,
        0,
        0,
        0,
        0x40,
        0,
        DEFAULT_TTL,
        IP_PROTO_ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    be::put_u16(ip, 2, total as u16).ok_or(Error::NoSpace)?;
    ip.get_mut(12..16)
        .ok_or(Error::NoSpace)?
        .copy_from_slice(&src);
    be::put_u32(ip, 16, dst).ok_or(Error::NoSpace)?;
    let c = checksum::ipv4_header_checksum(ip);
    be::put_u16(ip, 10, c).ok_or(Error::NoSpace)?;

    let (h, body) = icmp.split_at_mut(ICMP_HDR);
    h.copy_from_slice(&[icmp_type, code, 0, 0, 0, 0, 0, 0]);
    be::put_u32(h, 4, rest).ok_or(Error::NoSpace)?;
    body.copy_from_slice(original.get(..q).ok_or(Error::Truncated)?);
    let c = !checksum::sum(icmp);
    be::put_u16(icmp, 2, c).ok_or(Error::NoSpace)?;
    Ok(total)
}

/// ICMPv4 Time Exceeded (type 11, code 0: TTL exceeded in transit) about
/// `original` (an IPv4 packet starting at its header), sent from `src` to the
/// original's source.
pub fn time_exceeded_v4(out: &mut [u8], src: [u8; 4], original: &[u8]) -> Result<usize> {
    emit_v4(out, src, original, ICMPV4_TIME_EXCEEDED, 0, 0)
}

/// ICMPv4 Destination Unreachable (type 3) with `code`.
pub fn dest_unreachable_v4(
    out: &mut [u8],
    src: [u8; 4],
    original: &[u8],
    code: u8,
) -> Result<usize> {
    emit_v4(out, src, original, ICMPV4_DEST_UNREACHABLE, code, 0)
}

/// ICMPv4 Destination Unreachable / Fragmentation Needed (type 3, code 4)
/// with the next-hop MTU (RFC 1191).
pub fn frag_needed_v4(out: &mut [u8], src: [u8; 4], original: &[u8], mtu: u16) -> Result<usize> {
    emit_v4(
        out,
        src,
        original,
        ICMPV4_DEST_UNREACHABLE,
        ICMPV4_CODE_FRAG_NEEDED,
        u32::from(mtu),
    )
}

fn emit_v6(
    out: &mut [u8],
    src: [u8; 16],
    original: &[u8],
    icmp_type: u8,
    code: u8,
    rest: u32,
) -> Result<usize> {
    let first = *original.first().ok_or(Error::Truncated)?;
    if first >> 4 != 6 || original.len() < IPV6_HDR {
        return Err(Error::Malformed);
    }
    let declared = IPV6_HDR + usize::from(be::u16_at(original, 4).ok_or(Error::Truncated)?);
    let avail = original.len().min(declared);
    let room = out
        .len()
        .min(IPV6_ERROR_MAX)
        .saturating_sub(IPV6_HDR + ICMP_HDR);
    let q = avail.min(room);
    if q < IPV6_HDR.min(avail) {
        return Err(Error::NoSpace);
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(original.get(8..24).ok_or(Error::Truncated)?);
    let icmp_len = ICMP_HDR + q;
    let total = IPV6_HDR + icmp_len;
    let pkt = out.get_mut(..total).ok_or(Error::NoSpace)?;
    let (ip, icmp) = pkt.split_at_mut(IPV6_HDR);
    ip.fill(0);
    ip.get_mut(..8).ok_or(Error::NoSpace)?.copy_from_slice(&[
        0x60,
        0,
        0,
        0,
        0,
        0,
        IP_PROTO_ICMPV6,
        DEFAULT_TTL,
    ]);
    be::put_u16(ip, 4, icmp_len as u16).ok_or(Error::NoSpace)?;
    ip.get_mut(8..24)
        .ok_or(Error::NoSpace)?
        .copy_from_slice(&src);
    ip.get_mut(24..40)
        .ok_or(Error::NoSpace)?
        .copy_from_slice(&dst);

    let (h, body) = icmp.split_at_mut(ICMP_HDR);
    h.copy_from_slice(&[icmp_type, code, 0, 0, 0, 0, 0, 0]);
    be::put_u32(h, 4, rest).ok_or(Error::NoSpace)?;
    body.copy_from_slice(original.get(..q).ok_or(Error::Truncated)?);
    let c = checksum::l4_checksum_v6(&src, &dst, IP_PROTO_ICMPV6, icmp);
    be::put_u16(icmp, 2, c).ok_or(Error::NoSpace)?;
    Ok(total)
}

/// ICMPv6 Time Exceeded (type 3, code 0: hop limit exceeded in transit)
/// about `original` (an IPv6 packet), sent from `src` to its source.
pub fn time_exceeded_v6(out: &mut [u8], src: [u8; 16], original: &[u8]) -> Result<usize> {
    emit_v6(out, src, original, ICMPV6_TIME_EXCEEDED, 0, 0)
}

/// ICMPv6 Packet Too Big (type 2, code 0) with the link MTU.
pub fn packet_too_big_v6(
    out: &mut [u8],
    src: [u8; 16],
    original: &[u8],
    mtu: u32,
) -> Result<usize> {
    emit_v6(out, src, original, ICMPV6_PACKET_TOO_BIG, 0, mtu)
}

/// ICMPv6 Destination Unreachable (type 1) with `code`.
pub fn dest_unreachable_v6(
    out: &mut [u8],
    src: [u8; 16],
    original: &[u8],
    code: u8,
) -> Result<usize> {
    emit_v6(out, src, original, ICMPV6_DEST_UNREACHABLE, code, 0)
}

/// Whether an ICMP error may be sent about the packet `info` describes
/// (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e)): not about an ICMP error, a
/// non-first fragment, or a packet whose source is unspecified, multicast,
/// broadcast or loopback, or (IPv4) whose destination is multicast or
/// limited broadcast. Packet Too Big may be sent for multicast destinations
/// (RFC 4443 §2.4(e.3)): pass `packet_too_big` true.
pub fn may_send_error(info: &PacketInfo, packet_too_big: bool) -> bool {
    if info.frag.offset != 0 {
        return false;
    }
    match info.family {
        Family::Ipv4 => {
            let s = info.src_v4();
            let d = info.dst_v4();
            if info.proto == IP_PROTO_ICMP
                && (info.l4_offset == 0 || !matches!(info.icmp_type, 0 | 8 | 13..=18))
            {
                return false;
            }
            !(s == [0; 4]
                || s == [255; 4]
                || s[0] >= 224
                || s[0] == 127
                || d == [255; 4]
                || (224..240).contains(&d[0]))
        }
        Family::Ipv6 => {
            if info.proto == IP_PROTO_ICMPV6 && (info.l4_offset == 0 || info.icmp_type < 128) {
                return false;
            }
            let loopback = {
                let mut l = [0u8; 16];
                l[15] = 1;
                l
            };
            !(info.src == [0; 16]
                || info.src[0] == 0xff
                || info.src == loopback
                || (info.dst[0] == 0xff && !packet_too_big))
        }
        _ => false,
    }
}
