//! Software receive offload: consecutive TCP/IPv4 segments of one flow that
//! leave on the same GSO-capable port within a batch are merged into one
//! super-packet with a virtio-net GSO header.
//!
//! Decapsulated overlay traffic arrives as MTU-sized segments. Handing them
//! to a container veth one by one costs a `sendmsg` each and makes the
//! container's TCP stack process (and ACK) every segment, since veth does no
//! GRO for packets injected this way. Merging them as GRO would (same
//! rules: same headers, options and ACK, contiguous sequence numbers, only
//! ACK/PSH flags, all but the last segment of equal size) restores what a
//! kernel VXLAN/VTEP path gets from GRO. Hand-written: it works on the
//! core's output buffers, which no GRO crate knows about.

use crate::vnet::{flags, gso, VnetHdr};
use packet::checksum;

const ETH: usize = 14;
const L4: usize = ETH + 20;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Most segments per super-packet (the kernel's GSO limit is 64 KB).
const MAX_SEGS: usize = 44;
const MAX_IP_LEN: usize = 65535;

/// One aggregate being built.
pub struct Gro {
    buf: Vec<u8>,
    vif: u16,
    segs: usize,
    mss: usize,
    hdr_len: usize,
    next_seq: u32,
    open: bool,
    psh: bool,
}

impl Default for Gro {
    fn default() -> Self {
        Gro {
            buf: Vec::with_capacity(ETH + MAX_IP_LEN),
            vif: 0,
            segs: 0,
            mss: 0,
            hdr_len: 0,
            next_seq: 0,
            open: false,
            psh: false,
        }
    }
}

#[inline]
fn rd16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
#[inline]
fn rd32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Header length and payload length of a mergeable TCP/IPv4 frame
/// (untagged, no IP options, not a fragment, flags ACK or ACK|PSH, data).
fn tcp4(frame: &[u8]) -> Option<(usize, usize, u8)> {
    if rd16(frame, 12)? != 0x0800 || *frame.get(ETH)? != 0x45 || *frame.get(ETH + 9)? != 6 {
        return None;
    }
    if rd16(frame, ETH + 6)? & 0x3fff != 0 || rd16(frame, ETH + 2)? as usize + ETH != frame.len() {
        return None;
    }
    let doff = (*frame.get(L4 + 12)? >> 4) as usize * 4;
    let fl = *frame.get(L4 + 13)?;
    if doff < 20 || (fl != TCP_ACK && fl != TCP_ACK | TCP_PSH) {
        return None;
    }
    let hdr_len = L4 + doff;
    let payload = frame.len().checked_sub(hdr_len).filter(|p| *p > 0)?;
    Some((hdr_len, payload, fl))
}

/// What to do with an offered frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Merged or kept: do not send it.
    Absorbed,
    /// Send the pending aggregate ([`Gro::finish`]), then offer again.
    FlushFirst,
    /// Not mergeable and nothing pending: send it as is.
    Send,
}

impl Gro {
    /// Offer a complete frame leaving on `vif` (a port that takes GSO).
    pub fn offer(&mut self, vif: u16, frame: &[u8]) -> Offer {
        let Some((hdr_len, plen, fl)) = tcp4(frame) else {
            return if self.segs > 0 {
                Offer::FlushFirst
            } else {
                Offer::Send
            };
        };
        if self.segs > 0 {
            if !(self.open && self.fits(vif, frame, hdr_len, plen)) {
                return Offer::FlushFirst;
            }
            self.buf
                .extend_from_slice(frame.get(hdr_len..).unwrap_or(&[]));
            self.segs += 1;
            self.next_seq = self.next_seq.wrapping_add(plen as u32);
            self.psh = fl & TCP_PSH != 0;
            self.open = plen == self.mss && !self.psh && self.segs < MAX_SEGS;
            return Offer::Absorbed;
        }
        if fl != TCP_ACK {
            // A PSH segment alone gains nothing.
            return Offer::Send;
        }
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        self.vif = vif;
        self.segs = 1;
        self.mss = plen;
        self.hdr_len = hdr_len;
        self.next_seq = rd32(frame, L4 + 4).unwrap_or(0).wrapping_add(plen as u32);
        self.open = true;
        self.psh = false;
        Offer::Absorbed
    }

    fn fits(&self, vif: u16, f: &[u8], hdr_len: usize, plen: usize) -> bool {
        let b = &self.buf;
        let same =
            |r: core::ops::Range<usize>| b.get(r.clone()).is_some() && b.get(r.clone()) == f.get(r);
        vif == self.vif
            && hdr_len == self.hdr_len
            && plen <= self.mss
            && b.len() + plen <= ETH + MAX_IP_LEN
            && rd32(f, L4 + 4) == Some(self.next_seq)
            // MACs, ethertype, version/IHL/TOS
            && same(0..ETH + 2)
            // DF, TTL, protocol (id and checksum differ)
            && same(ETH + 6..ETH + 10)
            // addresses, ports
            && same(ETH + 12..L4 + 4)
            // ACK number, data offset, window, options (flags checked apart)
            && same(L4 + 8..L4 + 13)
            && same(L4 + 14..L4 + 16)
            && same(L4 + 20..hdr_len)
    }

    /// Whether an aggregate is pending.
    pub fn pending(&self) -> bool {
        self.segs > 0
    }

    /// Finish the aggregate: the vif, the virtio header and the frame.
    pub fn finish(&mut self) -> Option<(u16, VnetHdr, &[u8])> {
        if self.segs == 0 {
            return None;
        }
        let segs = std::mem::replace(&mut self.segs, 0);
        if segs == 1 {
            return Some((self.vif, VnetHdr::NONE, &self.buf));
        }
        let b = &mut self.buf;
        let ip_len = (b.len() - ETH) as u16;
        let l4_len = (b.len() - L4) as u16;
        b.get_mut(ETH + 2..ETH + 4)?
            .copy_from_slice(&ip_len.to_be_bytes());
        b.get_mut(ETH + 10..ETH + 12)?.copy_from_slice(&[0, 0]);
        let c = checksum::ipv4_header_checksum(b.get(ETH..L4)?);
        b.get_mut(ETH + 10..ETH + 12)?
            .copy_from_slice(&c.to_be_bytes());
        // The last segment's PSH, if any, is the aggregate's.
        if self.psh {
            *b.get_mut(L4 + 13)? |= TCP_PSH;
        }
        // A partial checksum: the pseudo-header sum, for the receiver to finish.
        let src: [u8; 4] = b.get(ETH + 12..ETH + 16)?.try_into().ok()?;
        let dst: [u8; 4] = b.get(ETH + 16..ETH + 20)?.try_into().ok()?;
        let ph = checksum::pseudo_header_v4(&src, &dst, 6, l4_len);
        b.get_mut(L4 + 16..L4 + 18)?
            .copy_from_slice(&ph.to_be_bytes());
        let vnet = VnetHdr {
            flags: flags::NEEDS_CSUM,
            gso_type: gso::TCPV4,
            hdr_len: self.hdr_len as u16,
            gso_size: self.mss as u16,
            csum_start: L4 as u16,
            csum_offset: 16,
        };
        Some((self.vif, vnet, &self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vnet::Gso;

    /// A TCP/IPv4 segment with a full checksum and timestamps option.
    fn seg(seq: u32, payload: usize, fl: u8, ts: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 0, 0, 0x5e, 0, 1, 0, 8, 0];
        let tot = (20 + 32 + payload) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(&[
            0, seq as u8, 0x40, 0, 63, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ]);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&77u32.to_be_bytes());
        f.extend_from_slice(&[0x80, fl, 0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, ts, 0, 0, 0, 9]);
        f.extend((0..payload).map(|i| (seq as usize + i) as u8));
        let l4 = f[34..].to_vec();
        let c = checksum::l4_checksum_v4(&[198, 18, 0, 1], &[198, 18, 0, 2], 6, &l4);
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn merges_a_run_and_resegments_to_the_originals() {
        let mut g = Gro::default();
        let segs: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                seg(
                    1000 + 100 * i,
                    if i < 3 { 100 } else { 40 },
                    if i < 3 { 0x10 } else { 0x18 },
                    5,
                )
            })
            .collect();
        for s in &segs {
            assert_eq!(g.offer(7, s), Offer::Absorbed);
        }
        // The short PSH segment closed the aggregate.
        assert_eq!(g.offer(7, &seg(1340, 100, 0x10, 5)), Offer::FlushFirst);
        let (vif, vh, f) = g.finish().unwrap();
        assert_eq!(vif, 7);
        assert_eq!(
            (vh.gso_type, vh.gso_size, vh.hdr_len),
            (gso::TCPV4, 100, 66)
        );
        let f = f.to_vec();
        assert_eq!(f.len(), 66 + 340);
        assert!(checksum::verify(&f[14..34]));
        // Segmenting the aggregate gives back the original segments (but
        // the IP ids, which GSO numbers from the first).
        let gs = Gso::new(&f, &vh).unwrap();
        assert_eq!(gs.segs, 4);
        for (i, orig) in segs.iter().enumerate() {
            let mut out = vec![0u8; 2000];
            let n = gs.write_segment(&f, i, false, &mut out).unwrap();
            let mut want = orig.clone();
            want[18..20].copy_from_slice(&out[18..20]);
            want[24..26].copy_from_slice(&out[24..26]);
            assert_eq!(&out[..n], &want[..], "segment {i}");
        }
        assert!(!g.pending());
    }

    #[test]
    fn refuses_what_gro_would_refuse() {
        let mut g = Gro::default();
        assert_eq!(g.offer(1, &seg(0, 100, 0x10, 1)), Offer::Absorbed);
        // Gap in sequence, other options, other vif, bigger payload.
        assert_eq!(g.offer(1, &seg(150, 100, 0x10, 1)), Offer::FlushFirst);
        assert_eq!(g.offer(1, &seg(100, 100, 0x10, 2)), Offer::FlushFirst);
        assert_eq!(g.offer(2, &seg(100, 100, 0x10, 1)), Offer::FlushFirst);
        assert_eq!(g.offer(1, &seg(100, 120, 0x10, 1)), Offer::FlushFirst);
        // SYN, pure ACK (no data), garbage.
        assert_eq!(g.offer(1, &seg(100, 100, 0x12, 1)), Offer::FlushFirst);
        assert_eq!(g.offer(1, &seg(100, 0, 0x10, 1)), Offer::FlushFirst);
        assert_eq!(g.offer(1, &[0u8; 20]), Offer::FlushFirst);
        // A single segment comes back untouched.
        let s = seg(0, 100, 0x10, 1);
        let (_, vh, f) = g.finish().unwrap();
        assert_eq!((vh, f), (VnetHdr::NONE, &s[..]));
        assert_eq!(g.offer(1, &[0u8; 20]), Offer::Send);
        assert_eq!(g.offer(1, &seg(0, 10, 0x18, 1)), Offer::Send, "lone PSH");
        assert!(g.finish().is_none());
    }
}
