//! Single-pass header walk for the forwarding hot path.
//!
//! [`PacketInfo::parse`] reads Ethernet, up to three VLAN tags (TPID 0x8100,
//! 0x88a8 or 0x9100), ARP / IPv4 / IPv6 (walking IPv6 extension headers, and an IPsec
//! AH after IPv4) and the first
//! bytes of TCP, UDP, ICMP and ICMPv6 into one flat `Copy` struct. It never
//! allocates or panics: every read is bounds-checked, and the fixed-size
//! headers are read through `&[u8; N]` arrays so each needs one length check.
//!
//! Error policy: a frame whose L2 or L3 header is unusable is an `Err`
//! (the core drops it). A non-IP, non-ARP EtherType is `Ok` with
//! [`Family::None`] (the core may still bridge it). A missing or truncated L4
//! header is `Ok` with `l4_offset == 0` and zero ports.

use crate::{
    ParseError, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN,
    IP_PROTO_ICMP, IP_PROTO_ICMPV6, IP_PROTO_TCP, IP_PROTO_UDP,
};

/// Most VLAN tags the walk steps over (802.1ad S-tag, C-tag, and one more
/// for stacked service tags).
pub const MAX_VLAN_TAGS: usize = 3;
/// The pre-802.1ad QinQ TPID some switches still send.
const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;
/// Most IPv6 extension headers the walk steps over before giving up.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;

/// Network-layer family of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Family {
    /// Not ARP, IPv4 or IPv6.
    #[default]
    None,
    /// ARP (Ethernet/IPv4).
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// IP fragmentation fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragInfo {
    /// More-fragments set or a non-zero offset. (An IPv6 "atomic fragment",
    /// offset 0 without M, is not a fragment.) For IPv6 the other fields are
    /// the first Fragment header's; a later one that fragments (a nested
    /// fragment) also sets this.
    pub is_fragment: bool,
    /// More-fragments flag.
    pub more: bool,
    /// Fragment offset in bytes.
    pub offset: u16,
    /// Identification (16 bits for IPv4, 32 for IPv6). Only meaningful for
    /// IPv6 when a Fragment header is present.
    pub id: u32,
    /// IPv4 don't-fragment flag (always false for IPv6).
    pub df: bool,
}

/// Summary of a frame's headers.
///
/// Offsets are from the start of the buffer handed to the parser. For ARP,
/// `src`/`dst` hold the sender/target protocol addresses, `l3_len` is 28 and
/// `icmp_type` holds the low byte of the ARP operation (1 request, 2 reply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketInfo {
    /// Destination MAC (zero for `parse_l3`).
    pub dst_mac: [u8; 6],
    /// Source MAC (zero for `parse_l3`).
    pub src_mac: [u8; 6],
    /// VID of the outermost VLAN tag.
    pub vlan: Option<u16>,
    /// EtherType after the VLAN tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: u16,
    /// Network-layer family.
    pub family: Family,
    /// Source address (IPv4 in the first 4 bytes, the rest zero).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 bytes, the rest zero).
    pub dst: [u8; 16],
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// L4 protocol (after IPv6 extension headers or an IPv4 AH).
    pub proto: u8,
    /// IPv4 total length, or 40 + IPv6 payload length (both within the frame).
    pub l3_len: u16,
    /// Offset of the L4 header; 0 when absent (non-first fragment, no next
    /// header) or, for TCP/UDP/ICMP/ICMPv6, truncated.
    pub l4_offset: u16,
    /// TCP/UDP source port; ICMP/ICMPv6 echo identifier.
    pub sport: u16,
    /// TCP/UDP destination port.
    pub dport: u16,
    /// ICMP/ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// TCP flags (the low 8 bits: CWR ECE URG ACK PSH RST SYN FIN).
    pub tcp_flags: u8,
    /// Fragment fields.
    pub frag: FragInfo,
}

#[inline(always)]
fn arr<const N: usize>(b: &[u8], off: usize) -> Option<&[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
fn be16(b: &[u8; 2]) -> u16 {
    u16::from_be_bytes(*b)
}

#[inline(always)]
fn to_u16(v: usize) -> Result<u16, ParseError> {
    u16::try_from(v).map_err(|_| ParseError::TooLong)
}

impl PacketInfo {
    /// Parses an Ethernet frame.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<PacketInfo, ParseError> {
        let mut info = PacketInfo::default();
        info.parse_from(frame)?;
        Ok(info)
    }

    /// [`Self::parse`] into `self` (overwritten whatever the result; on an
    /// error its fields are unspecified). For the hot path: a caller that
    /// keeps the summary in place avoids moving the whole struct right
    /// after the parser wrote it field by field, a move whose wide loads
    /// stall on the parser's narrow stores still in flight (store
    /// forwarding fails).
    #[inline]
    pub fn parse_from(&mut self, frame: &[u8]) -> Result<(), ParseError> {
        *self = PacketInfo::default();
        let info = self;
        let eth: &[u8; 14] = arr(frame, 0).ok_or(ParseError::TruncatedL2)?;
        info.dst_mac.copy_from_slice(&eth[0..6]);
        info.src_mac.copy_from_slice(&eth[6..12]);
        let mut ethertype = be16(&[eth[12], eth[13]]);
        let mut off = 14usize;
        let mut tags = 0;
        while matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY
        ) && tags < MAX_VLAN_TAGS
        {
            let tag: &[u8; 4] = arr(frame, off).ok_or(ParseError::TruncatedL2)?;
            let [t0, t1, e0, e1] = *tag;
            if info.vlan.is_none() {
                info.vlan = Some(u16::from_be_bytes([t0, t1]) & 0x0fff);
            }
            ethertype = u16::from_be_bytes([e0, e1]);
            off += 4;
            tags += 1;
        }
        info.ethertype = ethertype;
        info.l3_offset = off as u16;
        let l3 = frame.get(off..).unwrap_or(&[]);
        match ethertype {
            ETHERTYPE_IPV4 => parse_ipv4(info, l3, off),
            ETHERTYPE_IPV6 => parse_ipv6(info, l3, off),
            ETHERTYPE_ARP => parse_arp(info, l3),
            _ => Ok(()),
        }
    }

    /// Parses a packet that starts at an ARP, IPv4 or IPv6 header
    /// (`l3_offset` = 0, MACs zero), e.g. the inner packet of MPLSoGRE or
    /// MPLSoUDP. Fails with [`ParseError::UnsupportedEthertype`] for other
    /// EtherTypes.
    #[inline]
    pub fn parse_l3(packet: &[u8], ethertype: u16) -> Result<PacketInfo, ParseError> {
        let mut info = PacketInfo::default();
        info.parse_l3_from(packet, ethertype)?;
        Ok(info)
    }

    /// [`Self::parse_l3`] into `self`, as [`Self::parse_from`].
    #[inline]
    pub fn parse_l3_from(&mut self, packet: &[u8], ethertype: u16) -> Result<(), ParseError> {
        *self = PacketInfo {
            ethertype,
            ..PacketInfo::default()
        };
        match ethertype {
            ETHERTYPE_IPV4 => parse_ipv4(self, packet, 0),
            ETHERTYPE_IPV6 => parse_ipv6(self, packet, 0),
            ETHERTYPE_ARP => parse_arp(self, packet),
            _ => Err(ParseError::UnsupportedEthertype),
        }
    }

    /// Source IPv4 address (meaningful for IPv4 and ARP).
    #[inline]
    pub fn src_v4(&self) -> [u8; 4] {
        let [a, b, c, d, ..] = self.src;
        [a, b, c, d]
    }

    /// Destination IPv4 address (meaningful for IPv4 and ARP).
    #[inline]
    pub fn dst_v4(&self) -> [u8; 4] {
        let [a, b, c, d, ..] = self.dst;
        [a, b, c, d]
    }

    /// Whether this is the first (or only) fragment, i.e. carries the L4 header.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.frag.offset == 0
    }

    /// The L3 packet (`l3_len` bytes from `l3_offset`) within the buffer that
    /// was parsed.
    #[inline]
    pub fn l3<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let s = usize::from(self.l3_offset);
        buf.get(s..s + usize::from(self.l3_len)).unwrap_or(&[])
    }

    /// The L4 header and payload (to the end of the L3 packet), or empty if
    /// `l4_offset` is 0.
    #[inline]
    pub fn l4<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        if self.l4_offset == 0 {
            return &[];
        }
        let end = usize::from(self.l3_offset) + usize::from(self.l3_len);
        buf.get(usize::from(self.l4_offset)..end).unwrap_or(&[])
    }
}

#[inline]
fn parse_arp(info: &mut PacketInfo, l3: &[u8]) -> Result<(), ParseError> {
    let a: &[u8; 28] = arr(l3, 0).ok_or(ParseError::TruncatedL3)?;
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
    if a[..6] != [0, 1, 8, 0, 6, 4] {
        return Err(ParseError::BadArp);
    }
    info.family = Family::Arp;
    info.icmp_type = a[7];
    info.src[..4].copy_from_slice(&a[14..18]);
    info.dst[..4].copy_from_slice(&a[24..28]);
    info.l3_len = 28;
    Ok(())
}

#[inline]
fn parse_ipv4(info: &mut PacketInfo, l3: &[u8], l3_off: usize) -> Result<(), ParseError> {
    let h: &[u8; 20] = arr(l3, 0).ok_or(ParseError::TruncatedL3)?;
    if h[0] >> 4 != 4 {
        return Err(ParseError::BadVersion);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(ParseError::BadHeaderLen);
    }
    let total = usize::from(be16(&[h[2], h[3]]));
    if total < ihl {
        return Err(ParseError::BadHeaderLen);
    }
    if total > l3.len() {
        return Err(ParseError::TruncatedL3);
    }
    let frag = be16(&[h[6], h[7]]);
    let offset = (frag & 0x1fff) << 3;
    let more = frag & 0x2000 != 0;
    info.frag = FragInfo {
        is_fragment: more || offset != 0,
        more,
        offset,
        id: u32::from(be16(&[h[4], h[5]])),
        df: frag & 0x4000 != 0,
    };
    info.family = Family::Ipv4;
    info.ttl = h[8];
    info.proto = h[9];
    info.src[..4].copy_from_slice(&h[12..16]);
    info.dst[..4].copy_from_slice(&h[16..20]);
    info.l3_len = total as u16;
    if offset == 0 {
        let pkt = l3.get(..total).unwrap_or(&[]);
        let mut off = ihl;
        if info.proto == EXT_AH {
            // An IPsec AH between IPv4 and L4 (RFC 4302), walked as in IPv6
            // so flows see the real transport protocol and ports.
            let &[next, len] = arr::<2>(pkt, off).ok_or(ParseError::TruncatedL3)?;
            let hlen = (usize::from(len) + 2) * 4;
            if off + hlen > pkt.len() {
                return Err(ParseError::TruncatedL3);
            }
            info.proto = next;
            off += hlen;
        }
        parse_l4(info, pkt.get(off..).unwrap_or(&[]), l3_off + off)?;
    }
    Ok(())
}

#[inline]
fn parse_ipv6(info: &mut PacketInfo, l3: &[u8], l3_off: usize) -> Result<(), ParseError> {
    let h: &[u8; 40] = arr(l3, 0).ok_or(ParseError::TruncatedL3)?;
    if h[0] >> 4 != 6 {
        return Err(ParseError::BadVersion);
    }
    let total = 40 + usize::from(be16(&[h[4], h[5]]));
    if total > l3.len() {
        return Err(ParseError::TruncatedL3);
    }
    info.family = Family::Ipv6;
    info.l3_len = to_u16(total)?;
    info.ttl = h[7];
    info.src.copy_from_slice(&h[8..24]);
    info.dst.copy_from_slice(&h[24..40]);
    let pkt = l3.get(..total).unwrap_or(&[]);
    let mut nh = h[6];
    let mut off = 40usize;
    let mut walked = 0;
    let mut seen_frag = false;
    while matches!(
        nh,
        EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_AH | EXT_FRAGMENT
    ) {
        if walked == MAX_IPV6_EXT_HEADERS {
            return Err(ParseError::TooManyExtHeaders);
        }
        walked += 1;
        let &[next, len] = arr::<2>(pkt, off).ok_or(ParseError::TruncatedL3)?;
        let hlen = match nh {
            EXT_FRAGMENT => 8,
            EXT_AH => (usize::from(len) + 2) * 4,
            _ => (usize::from(len) + 1) * 8,
        };
        if nh == EXT_FRAGMENT {
            let f: &[u8; 8] = arr(pkt, off).ok_or(ParseError::TruncatedL3)?;
            let fo = be16(&[f[2], f[3]]);
            let offset = fo & 0xfff8;
            let more = fo & 1 != 0;
            if seen_frag {
                // A further Fragment header (a fragmented packet inside an
                // atomic fragment, or a mangled chain): the first one is
                // this packet's, as upstream reads only the first; this one
                // still makes the packet a piece of something.
                info.frag.is_fragment |= more || offset != 0;
            } else {
                seen_frag = true;
                info.frag = FragInfo {
                    is_fragment: more || offset != 0,
                    more,
                    offset,
                    id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
                    df: false,
                };
            }
            if offset != 0 {
                // The rest of the chain is not in this fragment.
                info.proto = next;
                return Ok(());
            }
        } else if off + hlen > pkt.len() {
            return Err(ParseError::TruncatedL3);
        }
        nh = next;
        off += hlen;
    }
    info.proto = nh;
    if nh == 59 {
        // No Next Header: nothing follows.
        return Ok(());
    }
    let l4 = pkt.get(off..).unwrap_or(&[]);
    parse_l4(info, l4, l3_off + off)
}

#[inline]
fn parse_l4(info: &mut PacketInfo, l4: &[u8], l4_off: usize) -> Result<(), ParseError> {
    match info.proto {
        IP_PROTO_UDP => {
            let Some(u) = arr::<8>(l4, 0) else {
                return Ok(());
            };
            info.sport = be16(&[u[0], u[1]]);
            info.dport = be16(&[u[2], u[3]]);
        }
        IP_PROTO_TCP => {
            let Some(t) = arr::<20>(l4, 0) else {
                return Ok(());
            };
            info.sport = be16(&[t[0], t[1]]);
            info.dport = be16(&[t[2], t[3]]);
            info.tcp_flags = t[13];
        }
        IP_PROTO_ICMP | IP_PROTO_ICMPV6 => {
            let Some(c) = arr::<8>(l4, 0) else {
                return Ok(());
            };
            info.icmp_type = c[0];
            info.icmp_code = c[1];
            let echo = if info.proto == IP_PROTO_ICMP {
                matches!(c[0], 0 | 8)
            } else {
                matches!(c[0], 128 | 129)
            };
            if echo {
                info.sport = be16(&[c[4], c[5]]);
            }
        }
        _ => {}
    }
    info.l4_offset = to_u16(l4_off)?;
    Ok(())
}
