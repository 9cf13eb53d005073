//! MPLS label stack entries (RFC 3032).
//!
//! ```text
//!  0                   1                   2                   3
//! +---------------------------------------+-----+-+---------------+
//! |                Label                  | TC  |S|      TTL      |
//! +---------------------------------------+-----+-+---------------+
//! ```
//!
//! vRouter uses MPLS over GRE (EtherType [`ETHERTYPE_MPLS`](crate::ETHERTYPE_MPLS)
//! in the GRE protocol field) and MPLS over UDP (port
//! [`UDP_PORT_MPLS`](crate::UDP_PORT_MPLS)); the label selects the nexthop.

use crate::be;
use crate::{Error, Result};

/// Length of one label stack entry.
pub const HEADER_LEN: usize = 4;
/// Largest label value (20 bits).
pub const LABEL_MAX: u32 = 0x000f_ffff;

/// A read/write view of one 4-byte label stack entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MplsLabel<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MplsLabel<T> {
    /// Length of one label stack entry.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        MplsLabel { buffer }
    }

    /// Wraps a buffer and checks it holds a whole entry.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds a 4-byte entry.
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

    /// The whole entry as a 32-bit word.
    #[inline]
    pub fn raw(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), 0).unwrap_or(0)
    }

    /// The 20-bit label.
    #[inline]
    pub fn label(&self) -> u32 {
        self.raw() >> 12
    }

    /// Traffic class (3 bits, formerly EXP).
    #[inline]
    pub fn tc(&self) -> u8 {
        ((self.raw() >> 9) & 7) as u8
    }

    /// Bottom-of-stack bit.
    #[inline]
    pub fn bos(&self) -> bool {
        self.raw() & 0x100 != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        (self.raw() & 0xff) as u8
    }

    /// The bytes after this entry.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MplsLabel<T> {
    /// Sets the whole entry.
    #[inline]
    pub fn set_raw(&mut self, raw: u32) {
        let _ = be::put_u32(self.buffer.as_mut(), 0, raw);
    }

    /// Sets the label (low 20 bits used).
    pub fn set_label(&mut self, label: u32) {
        self.set_raw((self.raw() & 0xfff) | ((label & LABEL_MAX) << 12));
    }

    /// Sets the traffic class (low 3 bits used).
    pub fn set_tc(&mut self, tc: u8) {
        self.set_raw((self.raw() & !0xe00) | (u32::from(tc & 7) << 9));
    }

    /// Sets the bottom-of-stack bit.
    pub fn set_bos(&mut self, bos: bool) {
        self.set_raw((self.raw() & !0x100) | if bos { 0x100 } else { 0 });
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.set_raw((self.raw() & !0xff) | u32::from(ttl));
    }
}

/// A parsed label stack entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MplsRepr {
    /// 20-bit label.
    pub label: u32,
    /// Traffic class (3 bits).
    pub tc: u8,
    /// Bottom of stack.
    pub bos: bool,
    /// Time to live.
    pub ttl: u8,
}

impl MplsRepr {
    /// Reads an entry from a view.
    pub fn parse<T: AsRef<[u8]>>(l: &MplsLabel<T>) -> Result<Self> {
        l.check_len()?;
        Ok(MplsRepr {
            label: l.label(),
            tc: l.tc(),
            bos: l.bos(),
            ttl: l.ttl(),
        })
    }

    /// The entry as a 32-bit word (fields masked to their widths).
    #[inline]
    pub const fn to_raw(&self) -> u32 {
        ((self.label & LABEL_MAX) << 12)
            | ((self.tc as u32 & 7) << 9)
            | if self.bos { 0x100 } else { 0 }
            | self.ttl as u32
    }

    /// Writes the entry into the first 4 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        be::put_u32(buf, 0, self.to_raw()).ok_or(Error::NoSpace)?;
        Ok(HEADER_LEN)
    }
}

/// Iterates the label stack at the start of a buffer, yielding entries up to
/// and including the one with the bottom-of-stack bit. Stops early (and
/// [`MplsStack::payload_offset`] stays `None`) if the buffer ends first.
#[derive(Debug, Clone)]
pub struct MplsStack<'a> {
    buf: &'a [u8],
    offset: usize,
    done: bool,
    bos_seen: bool,
}

impl<'a> MplsStack<'a> {
    /// Starts iterating the stack at the beginning of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        MplsStack {
            buf,
            offset: 0,
            done: false,
            bos_seen: false,
        }
    }

    /// Offset of the payload after the bottom-of-stack entry, once it has
    /// been reached.
    pub fn payload_offset(&self) -> Option<usize> {
        self.bos_seen.then_some(self.offset)
    }
}

impl<'a> Iterator for MplsStack<'a> {
    type Item = MplsLabel<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = self.buf.get(self.offset..self.offset + HEADER_LEN);
        let Some(entry) = entry else {
            self.done = true;
            return None;
        };
        let label = MplsLabel::new_unchecked(entry);
        self.offset += HEADER_LEN;
        if label.bos() {
            self.done = true;
            self.bos_seen = true;
        }
        Some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two-entry stack: label 16 (TC 0, TTL 255), then label 0x12345 (TC 5,
    // BOS, TTL 64), then the first byte of an IPv4 header.
    const STACK: [u8; 9] = [0x00, 0x01, 0x00, 0xff, 0x12, 0x34, 0x5b, 0x40, 0x45];

    #[test]
    fn entry() {
        let l = MplsLabel::new_checked(&STACK[4..]).unwrap();
        assert_eq!(l.label(), 0x12345);
        assert_eq!(l.tc(), 5);
        assert!(l.bos());
        assert_eq!(l.ttl(), 64);
        assert_eq!(l.payload(), &[0x45]);
        let r = MplsRepr::parse(&l).unwrap();
        let mut b = [0u8; 4];
        r.emit(&mut b).unwrap();
        assert_eq!(b, STACK[4..8]);
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 4];
        let mut l = MplsLabel::new_unchecked(&mut b[..]);
        l.set_label(0xfffff);
        l.set_tc(7);
        l.set_bos(true);
        l.set_ttl(1);
        assert_eq!(b, [0xff, 0xff, 0xff, 0x01]);
        let mut l = MplsLabel::new_unchecked(&mut b[..]);
        l.set_label(3);
        l.set_bos(false);
        l.set_tc(0);
        assert_eq!(l.raw(), 0x0000_3001);
    }

    #[test]
    fn stack() {
        let mut s = MplsStack::new(&STACK);
        assert_eq!(s.next().map(|l| l.label()), Some(16));
        assert_eq!(s.payload_offset(), None);
        assert_eq!(s.next().map(|l| l.label()), Some(0x12345));
        assert_eq!(s.next(), None);
        assert_eq!(s.payload_offset(), Some(8));
        // Truncated: no bottom of stack.
        let mut s = MplsStack::new(&STACK[..6]);
        assert_eq!(s.by_ref().count(), 1);
        assert_eq!(s.payload_offset(), None);
    }
}
