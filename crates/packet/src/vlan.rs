//! IEEE 802.1Q VLAN tag.
//!
//! In a tagged frame the Ethernet header's EtherType is the TPID
//! ([`ETHERTYPE_VLAN`](crate::ETHERTYPE_VLAN)); the view here covers the 4
//! bytes after it (frame bytes 14..18), like smoltcp's `EthernetFrame::payload`
//! would hand them over:
//!
//! ```text
//!  0                   1                   2                   3
//! +-----+-+-----------------------+-------------------------------+
//! | PCP |D|         VID           |     inner EtherType           |
//! +-----+-+-----------------------+-------------------------------+
//! ```

use crate::be;
use crate::{Error, Result};

/// A read/write view of a 4-byte 802.1Q tag (TCI and inner EtherType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

/// Length of the tag (TCI + inner EtherType).
pub const HEADER_LEN: usize = 4;
/// Largest VLAN id (4095 is reserved, 0 means priority-tagged only).
pub const VID_MAX: u16 = 0x0fff;

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Length of the tag.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps a buffer and checks it holds the whole tag.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// Checks the buffer holds the 4-byte tag.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The 16-bit tag control information.
    #[inline]
    pub fn tci(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), 0).unwrap_or(0)
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & VID_MAX
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), 2).unwrap_or(0)
    }

    /// The bytes after the tag.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        let _ = be::put_u16(self.buffer.as_mut(), 0, tci);
    }

    /// Sets the priority code point (low 3 bits of `pcp` are used).
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 7) << 13);
        self.set_tci(tci);
    }

    /// Sets the drop eligible indicator.
    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Sets the VLAN id (low 12 bits of `vid` are used).
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & !VID_MAX) | (vid & VID_MAX);
        self.set_tci(tci);
    }

    /// Sets the inner EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        let _ = be::put_u16(self.buffer.as_mut(), 2, ethertype);
    }

    /// The mutable bytes after the tag.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// Builds a TCI from its parts (`pcp` and `vid` are masked).
#[inline]
pub const fn tci(pcp: u8, dei: bool, vid: u16) -> u16 {
    ((pcp as u16 & 7) << 13) | if dei { 0x1000 } else { 0 } | (vid & VID_MAX)
}

/// Inserts an 802.1Q tag into the Ethernet frame that occupies
/// `buf[start..start + len]`, moving the MAC addresses 4 bytes to the front
/// (so the caller must have 4 bytes of headroom: `start >= 4`).
/// Returns the new start of the frame.
pub fn push_tag(buf: &mut [u8], start: usize, len: usize, tci: u16) -> Result<usize> {
    let new_start = start.checked_sub(HEADER_LEN).ok_or(Error::NoSpace)?;
    let end = start.checked_add(len).ok_or(Error::Truncated)?;
    if len < crate::ETHERNET_HEADER_LEN || end > buf.len() {
        return Err(Error::Truncated);
    }
    buf.copy_within(start..start + 12, new_start);
    be::put_u16(buf, new_start + 12, crate::ETHERTYPE_VLAN).ok_or(Error::Truncated)?;
    be::put_u16(buf, new_start + 14, tci).ok_or(Error::Truncated)?;
    Ok(new_start)
}

/// Removes the outermost 802.1Q tag of the frame in `buf[start..start + len]`
/// by moving the MAC addresses 4 bytes back. Returns the new start and the
/// removed TCI; fails with [`Error::Malformed`] if the frame is untagged.
pub fn pop_tag(buf: &mut [u8], start: usize, len: usize) -> Result<(usize, u16)> {
    let end = start.checked_add(len).ok_or(Error::Truncated)?;
    if len < crate::ETHERNET_HEADER_LEN + HEADER_LEN || end > buf.len() {
        return Err(Error::Truncated);
    }
    let tpid = be::u16_at(buf, start + 12).ok_or(Error::Truncated)?;
    if tpid != crate::ETHERTYPE_VLAN && tpid != crate::ETHERTYPE_QINQ {
        return Err(Error::Malformed);
    }
    let tci = be::u16_at(buf, start + 14).ok_or(Error::Truncated)?;
    buf.copy_within(start..start + 12, start + HEADER_LEN);
    Ok((start + HEADER_LEN, tci))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tagged frame: dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb,
    // TPID 0x8100, PCP 5, DEI 0, VID 100, inner IPv4.
    const TAGGED: [u8; 18] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00,
    ];

    #[test]
    fn parse_tag() {
        let t = VlanTag::new_checked(&TAGGED[14..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(!t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), 0x0800);
        assert_eq!(t.tci(), tci(5, false, 100));
        assert!(t.payload().is_empty());
    }

    #[test]
    fn set_fields() {
        let mut b = [0u8; 4];
        let mut t = VlanTag::new_unchecked(&mut b[..]);
        t.set_vid(0xfff);
        t.set_pcp(7);
        t.set_dei(true);
        t.set_ethertype(0x86dd);
        assert_eq!(b, [0xff, 0xff, 0x86, 0xdd]);
        let mut t = VlanTag::new_unchecked(&mut b[..]);
        t.set_vid(1);
        t.set_dei(false);
        assert_eq!(t.tci(), 0xe001);
    }

    #[test]
    fn short() {
        assert_eq!(VlanTag::new_checked(&[0u8; 3][..]), Err(Error::Truncated));
        // Getters on an unchecked short view do not panic.
        let t = VlanTag::new_unchecked(&[1u8][..]);
        assert_eq!(t.tci(), 0);
        assert_eq!(t.payload(), &[] as &[u8]);
    }

    #[test]
    fn push_pop() {
        let mut buf = [0u8; 4 + 18];
        let untagged: [u8; 14] = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00,
        ];
        buf[8..22].copy_from_slice(&untagged);
        let s = push_tag(&mut buf, 8, 14, tci(5, false, 100)).unwrap();
        assert_eq!(s, 4);
        assert_eq!(&buf[4..22], &TAGGED);
        let (s, t) = pop_tag(&mut buf, 4, 18).unwrap();
        assert_eq!((s, t), (8, 0xa064));
        assert_eq!(&buf[8..22], &untagged);
        assert_eq!(pop_tag(&mut buf, 8, 14), Err(Error::Truncated));
        assert_eq!(push_tag(&mut buf, 2, 14, 0), Err(Error::NoSpace));
    }
}
