//! virtio-net offload metadata (`struct virtio_net_hdr`) and the software
//! offloads the datapath does itself: completing partial checksums and
//! segmenting TCP/UDP GSO super-packets.
//!
//! Linux veth and TAP devices hand AF_PACKET (`PACKET_VNET_HDR`) and TAP
//! (`IFF_VNET_HDR`) readers frames of up to 64 KB whose L4 checksum is only
//! *partial* (the field holds the pseudo-header sum, the device is expected
//! to finish it) and that are meant to be cut into `gso_size` segments on
//! the way out. The 10-byte header in front of every frame says so. A frame
//! that stays on such a device can keep its header (the receiving kernel
//! finishes the job); one that is tunnelled or trapped must be finished
//! here. The kernel's own helpers (`skb_checksum_help`, `skb_gso_segment`)
//! are not reachable from user space, and no crate does this over plain
//! byte slices, hence the hand-written code.

use packet::checksum;
use packet::parse::{Family, PacketInfo};

/// Size of `struct virtio_net_hdr` (without `num_buffers`), the header that
/// `PACKET_VNET_HDR` and `IFF_VNET_HDR` (default `TUNSETVNETHDRSZ`) use.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_*`.
pub mod flags {
    /// The L4 checksum is partial: finish it from `csum_start`, store it at
    /// `csum_start + csum_offset`.
    pub const NEEDS_CSUM: u8 = 1;
    /// The checksum was verified by the sender.
    pub const DATA_VALID: u8 = 2;
}

/// `VIRTIO_NET_HDR_GSO_*`.
pub mod gso {
    pub const NONE: u8 = 0;
    pub const TCPV4: u8 = 1;
    /// UFO (IPv4 fragmentation offload): not produced by veth; unsupported.
    pub const UDP: u8 = 3;
    pub const TCPV6: u8 = 4;
    pub const UDP_L4: u8 = 5;
    /// Flag: the TCP stream uses ECN (CWR must survive only in segment 0).
    pub const ECN: u8 = 0x80;
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// One `struct virtio_net_hdr`. The kernel writes it in host byte order for
/// legacy (non-`VNET_LE`) AF_PACKET and TAP sockets, which is what we use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// No offload: a complete frame.
    pub const NONE: VnetHdr = VnetHdr {
        flags: 0,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    pub fn parse(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let [f, g, h0, h1, s0, s1, c0, c1, o0, o1] = *b;
        VnetHdr {
            flags: f,
            gso_type: g,
            hdr_len: u16::from_ne_bytes([h0, h1]),
            gso_size: u16::from_ne_bytes([s0, s1]),
            csum_start: u16::from_ne_bytes([c0, c1]),
            csum_offset: u16::from_ne_bytes([o0, o1]),
        }
    }

    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let [h0, h1] = self.hdr_len.to_ne_bytes();
        let [s0, s1] = self.gso_size.to_ne_bytes();
        let [c0, c1] = self.csum_start.to_ne_bytes();
        let [o0, o1] = self.csum_offset.to_ne_bytes();
        [self.flags, self.gso_type, h0, h1, s0, s1, c0, c1, o0, o1]
    }

    /// The frame is a GSO super-packet.
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso_type & !gso::ECN != gso::NONE
    }

    /// The frame's L4 checksum is partial.
    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & flags::NEEDS_CSUM != 0
    }
}

/// Why an offloaded frame could not be finished in software.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("checksum offsets outside the frame")]
    BadCsumOffsets,
    #[error("GSO frame is not TCP/UDP over IPv4/IPv6")]
    NotL4,
    #[error("GSO type {0} not supported")]
    UnsupportedGso(u8),
    #[error("GSO segment size 0")]
    ZeroGsoSize,
    #[error("segment does not fit the output buffer")]
    NoRoom,
}

/// End of the IP packet in `frame` (drops Ethernet padding), or the frame
/// length when it does not parse as IP.
pub fn l3_end(frame: &[u8]) -> usize {
    match PacketInfo::parse(frame) {
        Ok(i) if matches!(i.family, Family::Ipv4 | Family::Ipv6) => {
            (i.l3_offset as usize + i.l3_len as usize).min(frame.len())
        }
        _ => frame.len(),
    }
}

/// Finish a partial checksum (`NEEDS_CSUM`) over `frame[..end]`, as a NIC
/// would: the one's-complement sum from `csum_start` (the field already holds
/// the pseudo-header sum) stored, complemented, at `csum_start +
/// csum_offset`. A result of 0 is stored as 0xffff like the kernel does
/// (`CSUM_MANGLED_0`), which UDP requires and TCP does not mind.
pub fn complete_csum(frame: &mut [u8], end: usize, h: &VnetHdr) -> Result<(), OffloadError> {
    let start = h.csum_start as usize;
    let at = start + h.csum_offset as usize;
    let end = end.min(frame.len());
    if start >= end || at + 2 > end {
        return Err(OffloadError::BadCsumOffsets);
    }
    let covered = frame.get(start..end).ok_or(OffloadError::BadCsumOffsets)?;
    let mut c = !checksum::sum(covered);
    if c == 0 {
        c = 0xffff;
    }
    frame
        .get_mut(at..at + 2)
        .ok_or(OffloadError::BadCsumOffsets)?
        .copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    Tcp,
    Udp,
}

/// The geometry of a GSO super-packet, from its own headers (the
/// `hdr_len`/`csum_start` the sender wrote are not trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    pub l3: usize,
    pub l4: usize,
    /// Bytes of headers repeated in every segment (L2 + L3 + L4).
    pub hdr_len: usize,
    /// End of the IP packet.
    pub end: usize,
    pub v6: bool,
    pub kind: GsoKind,
    /// Payload bytes per segment.
    pub mss: usize,
    pub segs: usize,
    /// A tunnel super-packet: `l3`/`l4` are the inner packet's, these the
    /// outer headers each segment repeats.
    pub outer: Option<Outer>,
}

/// The outer headers of a tunnel super-packet: an overlay frame (MPLSoUDP,
/// MPLSoGRE, VXLAN over IPv4) whose *inner* TCP packet is a GSO
/// super-packet. The sender's kernel marks such an skb `SKB_GSO_UDP_TUNNEL`
/// or `SKB_GSO_GRE` with `SKB_GSO_TCPV4/6`; a packet socket's virtio-net
/// header cannot say "tunnel", so it arrives as plain TCP GSO with the
/// partial checksum at the inner TCP header (measured on 6.18: `gso_type`
/// TCPV4, `csum_start` the inner L4 offset). Each segment gets the outer
/// headers with its own lengths, the next IPv4 id and checksum, and a UDP
/// checksum of 0 (none, which IPv4 allows and the core accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    /// Offset of the outer IPv4 header.
    pub l3: usize,
    /// Offset of the outer UDP header (none for GRE).
    pub udp: Option<usize>,
}

/// The overlay UDP ports (MPLSoUDP, VXLAN) and GRE's protocol number.
const PORT_MPLS_UDP: u16 = 6635;
const PORT_VXLAN: u16 = 4789;
const PROTO_GRE: u8 = 47;
const VXLAN_LEN: usize = 8;

/// Where the inner packet of the overlay frame `frame` (outer headers
/// `outer`, already parsed) starts, and its headers: the inner IP packet
/// must end where the outer one does, carry TCP of the family the GSO type
/// says, and (when the kernel said where the partial checksum starts) have
/// its TCP header there. An MPLS payload is tried as IP first, then as an
/// Ethernet frame (an L2 label): only the layout the checksum offset
/// confirms is taken.
fn tunnel_inner(
    frame: &[u8],
    outer: &PacketInfo,
    h: &VnetHdr,
    v6: bool,
) -> Option<(Outer, PacketInfo, usize)> {
    use packet::{gre::GrePacket, mpls::MplsStack, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_MPLS};
    if outer.family != Family::Ipv4 || outer.frag.is_fragment || outer.l4_offset == 0 {
        return None;
    }
    let l4 = outer.l4_offset as usize;
    let end = (outer.l3_offset as usize + outer.l3_len as usize).min(frame.len());
    let body = frame.get(..end)?;
    let (udp, mpls, l2) = match (outer.proto, outer.dport) {
        (PROTO_UDP, PORT_VXLAN) => (Some(l4), None, Some(l4 + 8 + VXLAN_LEN)),
        (PROTO_UDP, PORT_MPLS_UDP) => (Some(l4), Some(l4 + 8), None),
        (PROTO_GRE, _) => {
            let gre = GrePacket::new_checked(body.get(l4..)?).ok()?;
            // A GRE checksum would have to be recomputed per segment; no
            // sender of ours sets it.
            if gre.protocol() != ETHERTYPE_MPLS || gre.checksum_present() || gre.version() != 0 {
                return None;
            }
            (None, Some(l4 + gre.header_len()), None)
        }
        _ => return None,
    };
    let fits = |at: usize, i: &PacketInfo| {
        let want = if v6 { Family::Ipv6 } else { Family::Ipv4 };
        let l4 = at + i.l4_offset as usize;
        i.family == want
            && i.proto == PROTO_TCP
            && !i.frag.is_fragment
            && i.l4_offset != 0
            && at + i.l3_offset as usize + i.l3_len as usize == end
            && (!h.needs_csum() || h.csum_start as usize == l4)
    };
    let as_ip = |at: usize| {
        let et = if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
        let i = PacketInfo::parse_l3(body.get(at..)?, et).ok()?;
        fits(at, &i).then_some((at, i))
    };
    let as_eth = |at: usize| {
        let i = PacketInfo::parse(body.get(at..)?).ok()?;
        fits(at, &i).then_some((at, i))
    };
    let (at, inner) = match (mpls, l2) {
        (Some(m), _) => {
            let mut labels = MplsStack::new(body.get(m..)?);
            labels.by_ref().for_each(drop);
            let p = m + labels.payload_offset()?;
            as_ip(p).or_else(|| as_eth(p))?
        }
        (None, Some(e)) => as_eth(e)?,
        (None, None) => return None,
    };
    Some((
        Outer {
            l3: outer.l3_offset as usize,
            udp,
        },
        inner,
        at,
    ))
}

use packet::be::{put_u16 as wr16, put_u32 as wr32, u16_at as rd16, u32_at as rd32};

impl Gso {
    pub fn new(frame: &[u8], h: &VnetHdr) -> Result<Gso, OffloadError> {
        let info = PacketInfo::parse(frame).map_err(|_| OffloadError::NotL4)?;
        let v6 = match info.family {
            Family::Ipv4 => false,
            Family::Ipv6 => true,
            _ => return Err(OffloadError::NotL4),
        };
        if info.l4_offset == 0 || info.frag.is_fragment {
            return Err(OffloadError::NotL4);
        }
        let t = h.gso_type & !gso::ECN;
        if matches!(t, gso::TCPV4 | gso::TCPV6) && info.proto != PROTO_TCP {
            // TCP GSO on an overlay frame: a tunnel super-packet.
            let (outer, inner, at) =
                tunnel_inner(frame, &info, h, t == gso::TCPV6).ok_or(OffloadError::NotL4)?;
            let l3 = at + inner.l3_offset as usize;
            let l4 = at + inner.l4_offset as usize;
            let end = l3 + inner.l3_len as usize;
            let v6 = inner.family == Family::Ipv6;
            return Gso::geometry(frame, h, (l3, l4, end), v6, GsoKind::Tcp, Some(outer));
        }
        let kind = match (t, info.proto) {
            (gso::TCPV4, PROTO_TCP) if !v6 => GsoKind::Tcp,
            (gso::TCPV6, PROTO_TCP) if v6 => GsoKind::Tcp,
            (gso::UDP_L4, PROTO_UDP) => GsoKind::Udp,
            _ => return Err(OffloadError::UnsupportedGso(t)),
        };
        let l3 = info.l3_offset as usize;
        let end = (l3 + info.l3_len as usize).min(frame.len());
        Gso::geometry(frame, h, (l3, info.l4_offset as usize, end), v6, kind, None)
    }

    /// The geometry of the packet whose (inner) IP header is at `l3`, L4
    /// header at `l4` and end at `end`.
    fn geometry(
        frame: &[u8],
        h: &VnetHdr,
        (l3, l4, end): (usize, usize, usize),
        v6: bool,
        kind: GsoKind,
        outer: Option<Outer>,
    ) -> Result<Gso, OffloadError> {
        let l4_hdr = match kind {
            GsoKind::Tcp => {
                let doff = frame.get(l4 + 12).ok_or(OffloadError::NotL4)? >> 4;
                (doff as usize * 4).max(20)
            }
            GsoKind::Udp => 8,
        };
        let hdr_len = l4 + l4_hdr;
        if hdr_len > end {
            return Err(OffloadError::NotL4);
        }
        let mss = h.gso_size as usize;
        if mss == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let payload = end - hdr_len;
        let segs = payload.div_ceil(mss).max(1);
        Ok(Gso {
            l3,
            l4,
            hdr_len,
            end,
            v6,
            kind,
            mss,
            segs,
            outer,
        })
    }

    /// Length of segment `i`.
    pub fn seg_len(&self, i: usize) -> usize {
        let off = self.hdr_len + i * self.mss;
        self.hdr_len + self.mss.min(self.end.saturating_sub(off))
    }

    /// Write segment `i` of `frame` into `out` with correct lengths, IPv4
    /// id, TCP sequence/flags and a full L4 checksum; returns its length.
    /// `keep_flags` keeps the super-packet's TCP flags (for a probe that is
    /// classified, never sent).
    pub fn write_segment(
        &self,
        frame: &[u8],
        i: usize,
        keep_flags: bool,
        out: &mut [u8],
    ) -> Result<usize, OffloadError> {
        self.write(frame, i, keep_flags, true, out)
            .ok_or(OffloadError::NoRoom)
    }

    /// As [`Gso::write_segment`], but an IPv4 UDP segment gets checksum 0
    /// ("none", RFC 768) instead of a computed one: for overlay datagrams
    /// the datapath decapsulates at once (their outer header is dropped,
    /// the core does not check segments the host cut), the checksum pass
    /// over every payload byte would be wasted. TCP and IPv6 segments are
    /// checksummed as by `write_segment`.
    pub fn write_segment_for_decap(
        &self,
        frame: &[u8],
        i: usize,
        out: &mut [u8],
    ) -> Result<usize, OffloadError> {
        let csum = self.v6 || !matches!(self.kind, GsoKind::Udp);
        self.write(frame, i, false, csum, out)
            .ok_or(OffloadError::NoRoom)
    }

    fn write(
        &self,
        frame: &[u8],
        i: usize,
        keep_flags: bool,
        l4_csum: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let (l3, l4, hl) = (self.l3, self.l4, self.hdr_len);
        let poff = hl.checked_add(i.checked_mul(self.mss)?)?;
        if i >= self.segs || poff > self.end {
            return None;
        }
        let plen = self.mss.min(self.end - poff);
        let len = hl + plen;
        out.get_mut(..hl)?.copy_from_slice(frame.get(..hl)?);
        out.get_mut(hl..len)?
            .copy_from_slice(frame.get(poff..poff + plen)?);
        let out = out.get_mut(..len)?;
        if self.v6 {
            wr16(out, l3 + 4, u16::try_from(len - l3 - 40).ok()?)?;
        } else {
            wr16(out, l3 + 2, u16::try_from(len - l3).ok()?)?;
            let id = rd16(frame, l3 + 4)?.wrapping_add(i as u16);
            wr16(out, l3 + 4, id)?;
            let ihl = (*out.get(l3)? as usize & 0x0f) * 4;
            wr16(out, l3 + 10, 0)?;
            let c = checksum::ipv4_header_checksum(out.get(l3..l3 + ihl)?);
            wr16(out, l3 + 10, c)?;
        }
        if let Some(o) = self.outer {
            wr16(out, o.l3 + 2, u16::try_from(len - o.l3).ok()?)?;
            let id = rd16(frame, o.l3 + 4)?.wrapping_add(i as u16);
            wr16(out, o.l3 + 4, id)?;
            let ihl = (*out.get(o.l3)? as usize & 0x0f) * 4;
            wr16(out, o.l3 + 10, 0)?;
            let c = checksum::ipv4_header_checksum(out.get(o.l3..o.l3 + ihl)?);
            wr16(out, o.l3 + 10, c)?;
            if let Some(u) = o.udp {
                wr16(out, u + 4, u16::try_from(len - u).ok()?)?;
                wr16(out, u + 6, 0)?;
            }
        }
        let (proto, csum_at) = match self.kind {
            GsoKind::Tcp => {
                let seq = rd32(frame, l4 + 4)?.wrapping_add((i * self.mss) as u32);
                wr32(out, l4 + 4, seq)?;
                if !keep_flags {
                    let fl = out.get_mut(l4 + 13)?;
                    if i + 1 < self.segs {
                        *fl &= !(TCP_FIN | TCP_PSH);
                    }
                    if i > 0 {
                        *fl &= !TCP_CWR;
                    }
                }
                (PROTO_TCP, l4 + 16)
            }
            GsoKind::Udp => {
                wr16(out, l4 + 4, u16::try_from(len - l4).ok()?)?;
                (PROTO_UDP, l4 + 6)
            }
        };
        wr16(out, csum_at, 0)?;
        if !l4_csum {
            return Some(len);
        }
        let c = if self.v6 {
            let src: [u8; 16] = out.get(l3 + 8..l3 + 24)?.try_into().ok()?;
            let dst: [u8; 16] = out.get(l3 + 24..l3 + 40)?.try_into().ok()?;
            checksum::l4_checksum_v6(&src, &dst, proto, out.get(l4..)?)
        } else {
            let src: [u8; 4] = out.get(l3 + 12..l3 + 16)?.try_into().ok()?;
            let dst: [u8; 4] = out.get(l3 + 16..l3 + 20)?.try_into().ok()?;
            checksum::l4_checksum_v4(&src, &dst, proto, out.get(l4..)?)
        };
        wr16(out, csum_at, if c == 0 { 0xffff } else { c })?;
        Some(len)
    }

    /// After the core forwarded the probe (segment 0 written with
    /// `keep_flags`) as a plain local transmit, carry its header rewrite
    /// (MACs, TTL, ...) over to the super-packet so that the super-packet
    /// can be sent whole: returns where the packet to send starts in
    /// `frame` (it ends at [`Gso::end`]) and its virtio header (`vnet`, the
    /// one received, for a plain super-packet). Refuses (None, `frame`
    /// untouched) when the rewrite changed the header length, the
    /// addresses (the partial checksum depends on them) or the L4 header
    /// (NAT): the caller then segments.
    ///
    /// A tunnel super-packet takes a decapsulating rewrite: the probe is the
    /// inner packet behind a new L2 header (the core pulled the outer
    /// headers off). Its headers replace the outer headers and the inner
    /// IP header in place, so the inner super-packet leaves whole as plain
    /// TCP GSO with no copy of its payload.
    pub fn graft(
        &self,
        frame: &mut [u8],
        probe: &[u8],
        vnet: &VnetHdr,
    ) -> Option<(usize, VnetHdr)> {
        if self.outer.is_some() {
            return self.try_graft_decap(frame, probe, vnet);
        }
        self.try_graft(frame, probe).map(|()| (0, *vnet))
    }

    /// The inner IP addresses and TCP header of `probe` (whose IP header
    /// is `d` bytes earlier than in `frame`) are the super-packet's.
    fn same_flow(&self, frame: &[u8], probe: &[u8], d: usize) -> Option<()> {
        let (l3, l4, hl) = (self.l3, self.l4, self.hdr_len);
        let addrs = if self.v6 {
            l3 + 8..l3 + 40
        } else {
            l3 + 12..l3 + 20
        };
        let same = |r: core::ops::Range<usize>| {
            (probe.get(r.start - d..r.end - d)? == frame.get(r)?).then_some(())
        };
        same(addrs)?;
        // L4 header minus the fields the segmentation rewrote.
        let skip = match self.kind {
            GsoKind::Tcp => l4 + 16..l4 + 18,
            GsoKind::Udp => l4 + 4..l4 + 8,
        };
        same(l4..skip.start)?;
        same(skip.end..hl)
    }

    /// The inner IP header's lengths (and IPv4 checksum) back to the
    /// super-packet's, after a graft.
    fn restore_lengths(&self, frame: &mut [u8]) -> Option<()> {
        let l3 = self.l3;
        if self.v6 {
            wr16(frame, l3 + 4, u16::try_from(self.end - l3 - 40).ok()?)
        } else {
            wr16(frame, l3 + 2, u16::try_from(self.end - l3).ok()?)?;
            let ihl = (*frame.get(l3)? as usize & 0x0f) * 4;
            wr16(frame, l3 + 10, 0)?;
            let c = checksum::ipv4_header_checksum(frame.get(l3..l3 + ihl)?);
            wr16(frame, l3 + 10, c)
        }
    }

    fn try_graft_decap(
        &self,
        frame: &mut [u8],
        probe: &[u8],
        vnet: &VnetHdr,
    ) -> Option<(usize, VnetHdr)> {
        let (l3, l4, hl) = (self.l3, self.l4, self.hdr_len);
        // The probe: a new L2 header, then segment 0's inner packet.
        let inner = self.seg_len(0) - l3;
        let pl3 = probe.len().checked_sub(inner)?;
        let want = if self.v6 { 0x86dd } else { 0x0800 };
        if pl3 < 14 || rd16(probe, pl3 - 2)? != want {
            return None;
        }
        // Decapsulated: at least an outer IP header's worth of bytes is
        // gone (a tunnel frame forwarded as it is, e.g. to the host, is
        // segmented).
        let d = l3.checked_sub(pl3)?;
        if d < 20 {
            return None;
        }
        self.same_flow(frame, probe, d)?;
        frame.get_mut(d..l4)?.copy_from_slice(probe.get(..l4 - d)?);
        self.restore_lengths(frame)?;
        let vh = VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: vnet.gso_type,
            hdr_len: u16::try_from(hl - d).ok()?,
            gso_size: u16::try_from(self.mss).ok()?,
            csum_start: u16::try_from(l4 - d).ok()?,
            csum_offset: 16,
        };
        Some((d, vh))
    }

    fn try_graft(&self, frame: &mut [u8], probe: &[u8]) -> Option<()> {
        if probe.len() != self.seg_len(0) {
            return None;
        }
        self.same_flow(frame, probe, 0)?;
        // Everything up to L4 comes from the probe; the lengths go back to
        // the super-packet's.
        let l4 = self.l4;
        frame.get_mut(..l4)?.copy_from_slice(probe.get(..l4)?);
        self.restore_lengths(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC4: [u8; 4] = [198, 18, 0, 1];
    const DST4: [u8; 4] = [198, 18, 0, 2];

    fn eth(et: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&et.to_be_bytes());
        f
    }

    /// A TCP/IPv4 super-packet with a partial checksum, as veth hands it.
    fn tcp4(payload: usize, tcp_flags: u8) -> (Vec<u8>, VnetHdr) {
        let mut f = eth(0x0800);
        let tot = 20 + 20 + payload;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&(tot as u16).to_be_bytes());
        f.extend_from_slice(&SRC4);
        f.extend_from_slice(&DST4);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        // TCP: ports, seq, ack, doff 5, flags, window, csum, urg
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        f.extend_from_slice(&1000u32.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&[0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend((0..payload).map(|i| (i * 7 + 3) as u8));
        // Partial checksum: the pseudo-header sum, not complemented.
        let ph = checksum::pseudo_header_v4(&SRC4, &DST4, 6, (20 + payload) as u16);
        f[50..52].copy_from_slice(&ph.to_be_bytes());
        let h = VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: 54,
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 16,
        };
        (f, h)
    }

    fn udp6(payload: usize) -> (Vec<u8>, VnetHdr) {
        let src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x89]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        let ph = checksum::pseudo_header_v6(&src, &dst, 17, (8 + payload) as u32);
        f.extend_from_slice(&ph.to_be_bytes());
        f.extend((0..payload).map(|i| (i * 13 + 1) as u8));
        let h = VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::UDP_L4,
            hdr_len: 62,
            gso_size: 500,
            csum_start: 54,
            csum_offset: 6,
        };
        (f, h)
    }

    fn l4_ok_v4(seg: &[u8]) -> bool {
        let ihl = (seg[14] & 0xf) as usize * 4;
        let src: [u8; 4] = seg[26..30].try_into().unwrap();
        let dst: [u8; 4] = seg[30..34].try_into().unwrap();
        let l4 = &seg[14 + ihl..];
        let ph = checksum::pseudo_header_v4(&src, &dst, seg[23], l4.len() as u16);
        checksum::add(ph, checksum::sum(l4)) == 0xffff
    }

    #[test]
    fn header_roundtrip() {
        let h = VnetHdr {
            flags: 1,
            gso_type: gso::TCPV6 | gso::ECN,
            hdr_len: 74,
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.emit()), h);
        assert!(h.is_gso() && h.needs_csum());
        assert!(!VnetHdr::NONE.is_gso());
    }

    #[test]
    fn completes_partial_checksum() {
        let (mut f, mut h) = tcp4(333, 0x18);
        h.gso_type = gso::NONE;
        let end = l3_end(&f);
        complete_csum(&mut f, end, &h).unwrap();
        assert!(l4_ok_v4(&f));
        // Ethernet padding is not summed.
        let (mut g, _) = tcp4(333, 0x18);
        g.extend_from_slice(&[0xaa; 7]);
        let end = l3_end(&g);
        complete_csum(&mut g, end, &h).unwrap();
        assert_eq!(&g[..f.len()], &f[..]);
    }

    #[test]
    fn bad_csum_offsets() {
        let (mut f, mut h) = tcp4(10, 0x18);
        h.csum_start = 60;
        h.csum_offset = 100;
        let end = f.len();
        assert_eq!(
            complete_csum(&mut f, end, &h),
            Err(OffloadError::BadCsumOffsets)
        );
        h.csum_start = u16::MAX;
        assert!(complete_csum(&mut f, end, &h).is_err());
    }

    #[test]
    fn segments_tcp4() {
        let (f, h) = tcp4(2500, 0x19); // FIN|PSH|ACK
        let g = Gso::new(&f, &h).unwrap();
        assert_eq!((g.hdr_len, g.segs, g.mss), (54, 3, 1000));
        let mut payload = Vec::new();
        for i in 0..g.segs {
            let mut out = vec![0u8; 2000];
            let n = g.write_segment(&f, i, false, &mut out).unwrap();
            let s = &out[..n];
            assert_eq!(n, g.seg_len(i));
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, n - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16);
            assert!(checksum::verify(&s[14..34]));
            assert!(l4_ok_v4(s), "segment {i} checksum");
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, 1000 + 1000 * i as u32);
            let last = i == g.segs - 1;
            assert_eq!(s[47], if last { 0x19 } else { 0x10 });
            payload.extend_from_slice(&s[54..]);
        }
        assert_eq!(payload, f[54..]);
        // Out of range and too small buffers fail without panicking.
        assert!(g.write_segment(&f, 3, false, &mut [0u8; 2000]).is_err());
        assert!(g.write_segment(&f, 0, false, &mut [0u8; 100]).is_err());
    }

    #[test]
    fn segments_udp6() {
        let (f, h) = udp6(1200);
        let g = Gso::new(&f, &h).unwrap();
        assert_eq!((g.segs, g.hdr_len), (3, 62));
        let mut total = 0;
        for i in 0..g.segs {
            let mut out = vec![0u8; 600];
            let n = g.write_segment(&f, i, false, &mut out).unwrap();
            let s = &out[..n];
            assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, n - 54);
            assert_eq!(u16::from_be_bytes([s[58], s[59]]) as usize, n - 54);
            let src: [u8; 16] = s[22..38].try_into().unwrap();
            let dst: [u8; 16] = s[38..54].try_into().unwrap();
            let ph = checksum::pseudo_header_v6(&src, &dst, 17, (n - 54) as u32);
            assert_eq!(checksum::add(ph, checksum::sum(&s[54..])), 0xffff);
            total += n - 62;
        }
        assert_eq!(total, 1200);
    }

    #[test]
    fn rejects_unsupported() {
        let (f, mut h) = tcp4(100, 0x10);
        h.gso_type = gso::UDP;
        assert_eq!(
            Gso::new(&f, &h),
            Err(OffloadError::UnsupportedGso(gso::UDP))
        );
        h.gso_type = gso::TCPV6;
        assert!(Gso::new(&f, &h).is_err());
        h.gso_type = gso::TCPV4;
        h.gso_size = 0;
        assert_eq!(Gso::new(&f, &h), Err(OffloadError::ZeroGsoSize));
        assert!(Gso::new(&f[..40], &h).is_err());
        assert!(Gso::new(&[], &h).is_err());
    }

    #[test]
    fn graft_carries_routed_rewrite() {
        let (f, h) = tcp4(3000, 0x18);
        let g = Gso::new(&f, &h).unwrap();
        let mut probe = vec![0u8; 2000];
        let n = g.write_segment(&f, 0, true, &mut probe).unwrap();
        probe.truncate(n);
        // What routing does: new MACs, TTL - 1 with the IP checksum fixed.
        probe[..12].copy_from_slice(&[9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8]);
        probe[22] -= 1;
        probe[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::ipv4_header_checksum(&probe[14..34]);
        probe[24..26].copy_from_slice(&c.to_be_bytes());
        let mut sup = f.clone();
        assert_eq!(g.graft(&mut sup, &probe, &h), Some((0, h)));
        assert_eq!(&sup[..12], &probe[..12]);
        assert_eq!(sup[22], 63);
        assert_eq!(
            u16::from_be_bytes([sup[16], sup[17]]) as usize,
            f.len() - 14
        );
        assert!(checksum::verify(&sup[14..34]));
        // The partial L4 checksum and payload are untouched.
        assert_eq!(&sup[34..], &f[34..]);
    }

    #[test]
    fn graft_refuses_nat_and_length_changes() {
        let (f, h) = tcp4(3000, 0x18);
        let g = Gso::new(&f, &h).unwrap();
        let mut probe = vec![0u8; 2000];
        let n = g.write_segment(&f, 0, true, &mut probe).unwrap();
        probe.truncate(n);
        let mut p = probe.clone();
        p[34] ^= 1; // source port
        let mut sup = f.clone();
        assert!(g.graft(&mut sup, &p, &h).is_none());
        assert_eq!(sup, f);
        let mut p = probe.clone();
        p[29] ^= 1; // source address
        assert!(g.graft(&mut sup, &p, &h).is_none());
        assert!(g.graft(&mut sup, &probe[..n - 1], &h).is_none());
        assert_eq!(sup, f);
    }

    /// Tunnel super-packets: an outer Ethernet/IPv4 header (no DF, id 0x99,
    /// UDP checksum 0) and `tunnel` (the UDP or GRE header and what follows
    /// up to the inner packet), around [`tcp4`]'s TCP super-packet whose
    /// Ethernet header is kept only when `inner_eth` (VXLAN, L2 MPLS). The
    /// virtio header is what a packet socket reports: plain TCPv4 GSO with
    /// the partial checksum at the inner TCP header.
    fn tunnel4(tunnel: &[u8], inner_eth: bool, payload: usize) -> (Vec<u8>, VnetHdr) {
        let (inner, h) = tcp4(payload, 0x19);
        let inner = if inner_eth { &inner[..] } else { &inner[14..] };
        let mut f = eth(0x0800);
        let tot = 20 + tunnel.len() + inner.len();
        let proto = if tunnel.len() > 2 && tunnel[2..4] == [0x88, 0x47] {
            47
        } else {
            17
        };
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0x99, 0, 0, 64, proto, 0, 0]);
        f[16..18].copy_from_slice(&(tot as u16).to_be_bytes());
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let mut t = tunnel.to_vec();
        if proto == 17 {
            t[4..6].copy_from_slice(&((tunnel.len() + inner.len()) as u16).to_be_bytes());
        }
        f.extend_from_slice(&t);
        let at = f.len();
        f.extend_from_slice(inner);
        let l4 = at + if inner_eth { 34 } else { 20 };
        let h = VnetHdr {
            hdr_len: (l4 + 20) as u16,
            csum_start: l4 as u16,
            ..h
        };
        (f, h)
    }

    const MPLS_UDP: [u8; 12] = [0xc3, 0x50, 0x19, 0xeb, 0, 0, 0, 0, 0, 0x12, 0x01, 0x40];
    const MPLS_GRE: [u8; 8] = [0, 0, 0x88, 0x47, 0, 0x12, 0x01, 0x40];
    const VXLAN: [u8; 16] = [
        0xc3, 0x50, 0x12, 0xb5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0x10, 0x92, 0,
    ];

    /// Each segment is a complete tunnel frame: outer lengths, next outer
    /// id and checksum, UDP checksum 0; the inner packet cut as a plain
    /// super-packet is (lengths, ids, sequence, flags, full checksum).
    #[test]
    fn segments_tunnel_super_packets() {
        for (name, tunnel, inner_eth) in [
            ("MPLSoUDP", &MPLS_UDP[..], false),
            ("MPLSoGRE", &MPLS_GRE[..], false),
            ("VXLAN", &VXLAN[..], true),
            ("L2 MPLSoUDP", &MPLS_UDP[..], true),
        ] {
            let (f, h) = tunnel4(tunnel, inner_eth, 2500);
            let g = Gso::new(&f, &h).unwrap_or_else(|e| panic!("{name}: {e}"));
            let l3 = 34 + tunnel.len() + if inner_eth { 14 } else { 0 };
            let udp = (tunnel.len() != 8).then_some(34);
            assert_eq!(g.outer, Some(Outer { l3: 14, udp }), "{name}");
            assert_eq!(
                (g.l3, g.l4, g.hdr_len, g.segs),
                (l3, l3 + 20, l3 + 40, 3),
                "{name}"
            );
            let mut payload = Vec::new();
            for i in 0..g.segs {
                let mut out = vec![0u8; 2000];
                let n = g.write_segment_for_decap(&f, i, &mut out).unwrap();
                let s = &out[..n];
                assert_eq!(
                    u16::from_be_bytes([s[16], s[17]]) as usize,
                    n - 14,
                    "{name}"
                );
                assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x99 + i as u16);
                assert!(checksum::verify(&s[14..34]), "{name} outer IP checksum");
                if let Some(u) = udp {
                    assert_eq!(u16::from_be_bytes([s[u + 4], s[u + 5]]) as usize, n - u);
                    assert_eq!(&s[u + 6..u + 8], &[0, 0], "{name} UDP checksum none");
                }
                // The rest of the tunnel headers as they were.
                let mut mask = vec![16, 17, 18, 19, 24, 25];
                if let Some(u) = udp {
                    mask.extend([u + 4, u + 5, u + 6, u + 7]);
                }
                for b in 0..l3 {
                    assert!(mask.contains(&b) || s[b] == f[b], "{name}: byte {b}");
                }
                assert_eq!(u16::from_be_bytes([s[l3 + 2], s[l3 + 3]]) as usize, n - l3);
                assert_eq!(
                    u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]),
                    0x1234 + i as u16
                );
                assert!(
                    checksum::verify(&s[l3..l3 + 20]),
                    "{name} inner IP checksum"
                );
                assert!(l4_ok_v4(&s[l3 - 14..]), "{name} segment {i} TCP checksum");
                let seq = u32::from_be_bytes(s[l3 + 24..l3 + 28].try_into().unwrap());
                assert_eq!(seq, 1000 + 1000 * i as u32);
                let last = i == g.segs - 1;
                assert_eq!(s[l3 + 33], if last { 0x19 } else { 0x10 }, "{name}");
                payload.extend_from_slice(&s[l3 + 40..]);
            }
            assert_eq!(payload, f[l3 + 40..], "{name}");
        }
    }

    /// The core's decapsulation of segment 0 (a new L2 header, TTL - 1)
    /// grafted on a tunnel super-packet: the inner super-packet, in place,
    /// as plain TCPv4 GSO behind the probe's L2 header.
    #[test]
    fn graft_decapsulates_tunnel_super_packets() {
        for (name, tunnel, inner_eth) in [
            ("MPLSoGRE", &MPLS_GRE[..], false),
            ("VXLAN", &VXLAN[..], true),
        ] {
            let (f, h) = tunnel4(tunnel, inner_eth, 3000);
            let g = Gso::new(&f, &h).unwrap();
            let mut seg = vec![0u8; 2000];
            let n = g.write_segment(&f, 0, true, &mut seg).unwrap();
            // What the core hands over: a VM's Ethernet header, the inner
            // packet with its TTL decremented.
            let mut probe = vec![9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 0];
            probe.extend_from_slice(&seg[g.l3..n]);
            probe[22] -= 1;
            probe[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::ipv4_header_checksum(&probe[14..34]);
            probe[24..26].copy_from_slice(&c.to_be_bytes());
            let mut sup = f.clone();
            let (start, vh) = g
                .graft(&mut sup, &probe, &h)
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(start, g.l3 - 14, "{name}");
            assert_eq!(
                vh,
                VnetHdr {
                    flags: flags::NEEDS_CSUM,
                    gso_type: gso::TCPV4,
                    hdr_len: 54,
                    gso_size: 1000,
                    csum_start: 34,
                    csum_offset: 16,
                }
            );
            let out = &sup[start..g.end];
            assert_eq!(&out[..14], &probe[..14], "{name}");
            assert_eq!(out[22], 63, "{name}");
            assert_eq!(
                u16::from_be_bytes([out[16], out[17]]) as usize,
                out.len() - 14
            );
            assert!(checksum::verify(&out[14..34]), "{name}");
            // The TCP header with its partial checksum and the payload as
            // they came.
            assert_eq!(&out[34..], &f[g.l4..], "{name}");
            // The whole, segmented as the receiving kernel would, is the
            // stream that was sent.
            let (plain, _) = tcp4(3000, 0x19);
            let g2 = Gso::new(out, &vh).unwrap();
            assert_eq!((g2.segs, g2.outer), (3, None));
            assert_eq!(&out[54..], &plain[54..]);
        }
    }

    #[test]
    fn tunnel_graft_and_parse_refusals() {
        let (f, h) = tunnel4(&MPLS_UDP, false, 3000);
        let g = Gso::new(&f, &h).unwrap();
        let mut seg = vec![0u8; 2000];
        let n = g.write_segment(&f, 0, true, &mut seg).unwrap();
        let mut sup = f.clone();
        // Forwarded as it is (not decapsulated): segmented instead.
        assert!(g.graft(&mut sup, &seg[..n], &h).is_none());
        // NAT of the inner ports.
        let mut probe = vec![9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 0];
        probe.extend_from_slice(&seg[g.l3..n]);
        probe[34] ^= 1;
        assert!(g.graft(&mut sup, &probe, &h).is_none());
        assert_eq!(sup, f, "untouched when refused");
        // A GRE checksum (not recomputed per segment): refused.
        let mut gre = MPLS_GRE.to_vec();
        gre.splice(4..4, [0u8; 4]);
        gre[0] = 0x80;
        let (f, h) = tunnel4(&gre, false, 3000);
        assert_eq!(Gso::new(&f, &h), Err(OffloadError::NotL4));
        // The kernel's checksum offset must be the inner TCP header.
        let (f, mut h) = tunnel4(&MPLS_UDP, false, 3000);
        h.csum_start -= 4;
        assert_eq!(Gso::new(&f, &h), Err(OffloadError::NotL4));
        // Outer and inner lengths disagree.
        let (mut f, h) = tunnel4(&MPLS_UDP, false, 3000);
        f.truncate(f.len() - 1);
        let tot = u16::from_be_bytes([f[16], f[17]]) - 1;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        assert!(Gso::new(&f, &h).is_err());
        // Another UDP port is not an overlay.
        let mut other = MPLS_UDP;
        other[3] = 0x35;
        let (f, h) = tunnel4(&other, false, 3000);
        assert!(Gso::new(&f, &h).is_err());
    }
}
