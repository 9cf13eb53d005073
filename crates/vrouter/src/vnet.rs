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
        let kind = match (h.gso_type & !gso::ECN, info.proto) {
            (gso::TCPV4, PROTO_TCP) if !v6 => GsoKind::Tcp,
            (gso::TCPV6, PROTO_TCP) if v6 => GsoKind::Tcp,
            (gso::UDP_L4, PROTO_UDP) => GsoKind::Udp,
            (t, _) => return Err(OffloadError::UnsupportedGso(t)),
        };
        let l3 = info.l3_offset as usize;
        let l4 = info.l4_offset as usize;
        let l4_hdr = match kind {
            GsoKind::Tcp => {
                let doff = frame.get(l4 + 12).ok_or(OffloadError::NotL4)? >> 4;
                (doff as usize * 4).max(20)
            }
            GsoKind::Udp => 8,
        };
        let hdr_len = l4 + l4_hdr;
        let end = (l3 + info.l3_len as usize).min(frame.len());
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
    /// can be sent whole with its virtio header. Refuses (returns false,
    /// `frame` untouched) when the rewrite changed the header length, the
    /// addresses (the partial checksum depends on them) or the L4 header
    /// (NAT): the caller then segments.
    pub fn graft(&self, frame: &mut [u8], probe: &[u8]) -> bool {
        self.try_graft(frame, probe).is_some()
    }

    fn try_graft(&self, frame: &mut [u8], probe: &[u8]) -> Option<()> {
        let (l3, l4, hl) = (self.l3, self.l4, self.hdr_len);
        if probe.len() != self.seg_len(0) {
            return None;
        }
        let addrs = if self.v6 {
            l3 + 8..l3 + 40
        } else {
            l3 + 12..l3 + 20
        };
        if probe.get(addrs.clone())? != frame.get(addrs)? {
            return None;
        }
        // L4 header minus the fields the segmentation rewrote.
        let skip = match self.kind {
            GsoKind::Tcp => l4 + 16..l4 + 18,
            GsoKind::Udp => l4 + 4..l4 + 8,
        };
        let same = |r: core::ops::Range<usize>| Some(probe.get(r.clone())? == frame.get(r)?);
        if !same(l4..skip.start)? || !same(skip.end..hl)? {
            return None;
        }
        // Everything up to L4 comes from the probe; the lengths go back to
        // the super-packet's.
        frame.get_mut(..l4)?.copy_from_slice(probe.get(..l4)?);
        if self.v6 {
            wr16(frame, l3 + 4, u16::try_from(self.end - l3 - 40).ok()?)?;
        } else {
            wr16(frame, l3 + 2, u16::try_from(self.end - l3).ok()?)?;
            let ihl = (*frame.get(l3)? as usize & 0x0f) * 4;
            wr16(frame, l3 + 10, 0)?;
            let c = checksum::ipv4_header_checksum(frame.get(l3..l3 + ihl)?);
            wr16(frame, l3 + 10, c)?;
        }
        Some(())
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
        assert!(g.graft(&mut sup, &probe));
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
        assert!(!g.graft(&mut sup, &p));
        assert_eq!(sup, f);
        let mut p = probe.clone();
        p[29] ^= 1; // source address
        assert!(!g.graft(&mut sup, &p));
        assert!(!g.graft(&mut sup, &probe[..n - 1]));
        assert_eq!(sup, f);
    }
}
