//! GRE header (RFC 2784 with the key and sequence number extensions of
//! RFC 2890).
//!
//! ```text
//! +-+-+-+-+-------------+-----+-------------------------------+
//! |C| |K|S| Reserved0   | Ver |         Protocol Type         |
//! +-+-+-+-+-------------+-----+-------------------------------+
//! |      Checksum (optional)    |       Reserved1 (optional)  |
//! +-----------------------------+-----------------------------+
//! |                     Key (optional)                        |
//! +-----------------------------------------------------------+
//! |               Sequence Number (optional)                  |
//! +-----------------------------------------------------------+
//! ```
//!
//! vRouter's MPLSoGRE uses the plain 4-byte header with protocol
//! [`ETHERTYPE_MPLS`](crate::ETHERTYPE_MPLS) ([`emit_mpls`]).

use crate::be;
use crate::{checksum, Error, Result};

/// Length of the base header (no optional fields).
pub const HEADER_LEN: usize = 4;
/// Checksum present.
pub const FLAG_C: u16 = 0x8000;
/// Key present (RFC 2890).
pub const FLAG_K: u16 = 0x2000;
/// Sequence number present (RFC 2890).
pub const FLAG_S: u16 = 0x1000;
/// The plain MPLSoGRE header: no flags, version 0, protocol 0x8847.
pub const MPLS_HEADER: [u8; 4] = [0x00, 0x00, 0x88, 0x47];

/// A read/write view of a GRE header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Length of the base header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wraps a buffer and checks it holds the header including the optional
    /// fields its flags announce.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the whole header ([`header_len`](Self::header_len)).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The first 16 bits: flags, reserved0 and version.
    #[inline]
    pub fn flags_version(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), 0).unwrap_or(0)
    }

    /// C bit: checksum and reserved1 present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags_version() & FLAG_C != 0
    }

    /// K bit: key present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags_version() & FLAG_K != 0
    }

    /// S bit: sequence number present.
    #[inline]
    pub fn sequence_present(&self) -> bool {
        self.flags_version() & FLAG_S != 0
    }

    /// GRE version (3 bits, 0 for RFC 2784).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags_version() & 7) as u8
    }

    /// Protocol type (an EtherType) of the payload.
    #[inline]
    pub fn protocol(&self) -> u16 {
        be::u16_at(self.buffer.as_ref(), 2).unwrap_or(0)
    }

    /// Header length including the optional fields the flags announce.
    #[inline]
    pub fn header_len(&self) -> usize {
        let f = self.flags_version();
        HEADER_LEN
            + 4 * (usize::from(f & FLAG_C != 0)
                + usize::from(f & FLAG_K != 0)
                + usize::from(f & FLAG_S != 0))
    }

    fn key_offset(&self) -> usize {
        HEADER_LEN + if self.checksum_present() { 4 } else { 0 }
    }

    fn sequence_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// The checksum, if present.
    pub fn checksum(&self) -> Option<u16> {
        if self.checksum_present() {
            be::u16_at(self.buffer.as_ref(), HEADER_LEN)
        } else {
            None
        }
    }

    /// The key, if present.
    pub fn key(&self) -> Option<u32> {
        if self.key_present() {
            be::u32_at(self.buffer.as_ref(), self.key_offset())
        } else {
            None
        }
    }

    /// The sequence number, if present.
    pub fn sequence(&self) -> Option<u32> {
        if self.sequence_present() {
            be::u32_at(self.buffer.as_ref(), self.sequence_offset())
        } else {
            None
        }
    }

    /// Verifies the checksum over header and payload (true when absent).
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::sum(self.buffer.as_ref()) == 0xffff
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Sets the first 16 bits (flags, reserved0, version). Changing C/K/S
    /// moves the optional fields: write them afterwards.
    #[inline]
    pub fn set_flags_version(&mut self, v: u16) {
        let _ = be::put_u16(self.buffer.as_mut(), 0, v);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let f = self.flags_version();
        self.set_flags_version(if on { f | flag } else { f & !flag });
    }

    /// Sets or clears the C bit.
    pub fn set_checksum_present(&mut self, on: bool) {
        self.set_flag(FLAG_C, on)
    }

    /// Sets or clears the K bit.
    pub fn set_key_present(&mut self, on: bool) {
        self.set_flag(FLAG_K, on)
    }

    /// Sets or clears the S bit.
    pub fn set_sequence_present(&mut self, on: bool) {
        self.set_flag(FLAG_S, on)
    }

    /// Sets the version (low 3 bits used).
    pub fn set_version(&mut self, v: u8) {
        let f = self.flags_version();
        self.set_flags_version((f & !7) | u16::from(v & 7));
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol(&mut self, p: u16) {
        let _ = be::put_u16(self.buffer.as_mut(), 2, p);
    }

    /// Writes the key; fails if the K bit is clear or the buffer too short.
    pub fn set_key(&mut self, key: u32) -> Result<()> {
        if !self.key_present() {
            return Err(Error::Malformed);
        }
        let off = self.key_offset();
        be::put_u32(self.buffer.as_mut(), off, key).ok_or(Error::NoSpace)
    }

    /// Writes the sequence number; fails if the S bit is clear or the buffer
    /// too short.
    pub fn set_sequence(&mut self, seq: u32) -> Result<()> {
        if !self.sequence_present() {
            return Err(Error::Malformed);
        }
        let off = self.sequence_offset();
        be::put_u32(self.buffer.as_mut(), off, seq).ok_or(Error::NoSpace)
    }

    /// Computes and writes the checksum over the whole buffer (header and
    /// payload) and zeroes reserved1; fails if the C bit is clear.
    pub fn fill_checksum(&mut self) -> Result<()> {
        if !self.checksum_present() {
            return Err(Error::Malformed);
        }
        let b = self.buffer.as_mut();
        be::put_u32(b, HEADER_LEN, 0).ok_or(Error::NoSpace)?;
        let c = !checksum::sum(b);
        be::put_u16(b, HEADER_LEN, c).ok_or(Error::NoSpace)
    }

    /// The mutable payload after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let off = self.header_len();
        self.buffer.as_mut().get_mut(off..).unwrap_or(&mut [])
    }
}

/// A parsed GRE header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Protocol type of the payload.
    pub protocol: u16,
    /// Whether the checksum field is present.
    pub checksum: bool,
    /// Key (RFC 2890).
    pub key: Option<u32>,
    /// Sequence number (RFC 2890).
    pub sequence: Option<u32>,
}

impl GreRepr {
    /// Parses a version-0 header.
    pub fn parse<T: AsRef<[u8]>>(p: &GrePacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 0 {
            return Err(Error::Malformed);
        }
        Ok(GreRepr {
            protocol: p.protocol(),
            checksum: p.checksum_present(),
            key: p.key(),
            sequence: p.sequence(),
        })
    }

    /// Header length this representation emits.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
            + if self.checksum { 4 } else { 0 }
            + if self.key.is_some() { 4 } else { 0 }
            + if self.sequence.is_some() { 4 } else { 0 }
    }

    /// Writes the header into the start of `buf`; the checksum field is left
    /// zero (call [`GrePacket::fill_checksum`] once the payload is in place).
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.header_len();
        let hdr = buf.get_mut(..len).ok_or(Error::NoSpace)?;
        hdr.fill(0);
        let mut p = GrePacket::new_unchecked(hdr);
        p.set_checksum_present(self.checksum);
        p.set_key_present(self.key.is_some());
        p.set_sequence_present(self.sequence.is_some());
        p.set_protocol(self.protocol);
        if let Some(k) = self.key {
            p.set_key(k)?;
        }
        if let Some(s) = self.sequence {
            p.set_sequence(s)?;
        }
        Ok(len)
    }
}

/// Writes the plain 4-byte MPLSoGRE header (no flags, version 0, protocol
/// 0x8847) into the start of `buf`. Returns 4.
#[inline]
pub fn emit_mpls(buf: &mut [u8]) -> Result<usize> {
    buf.get_mut(..HEADER_LEN)
        .ok_or(Error::NoSpace)?
        .copy_from_slice(&MPLS_HEADER);
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mpls() {
        let p = GrePacket::new_checked(&MPLS_HEADER[..]).unwrap();
        assert_eq!(p.header_len(), 4);
        assert_eq!(p.protocol(), crate::ETHERTYPE_MPLS);
        assert_eq!((p.key(), p.sequence(), p.checksum()), (None, None, None));
        assert_eq!(p.version(), 0);
        let mut b = [0xffu8; 5];
        assert_eq!(emit_mpls(&mut b), Ok(4));
        assert_eq!(&b[..4], &MPLS_HEADER);
        assert_eq!(emit_mpls(&mut [0u8; 3]), Err(Error::NoSpace));
    }

    #[test]
    fn all_options() {
        // C, K and S set; protocol IPv4; checksum 0x1234; key 0xdeadbeef; seq 7.
        let b: [u8; 16] = [
            0xb0, 0x00, 0x08, 0x00, 0x12, 0x34, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7,
        ];
        let p = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.checksum(), Some(0x1234));
        assert_eq!(p.key(), Some(0xdead_beef));
        assert_eq!(p.sequence(), Some(7));
        assert!(p.payload().is_empty());
        let r = GreRepr::parse(&p).unwrap();
        assert_eq!(r.header_len(), 16);
        let mut o = [0u8; 16];
        assert_eq!(r.emit(&mut o), Ok(16));
        assert_eq!(&o[4..6], &[0, 0]);
        assert_eq!(&o[6..], &b[6..]);
        assert_eq!(&o[..4], &b[..4]);
        assert_eq!(GrePacket::new_checked(&b[..15]), Err(Error::Truncated));
    }

    #[test]
    fn key_only_and_checksum() {
        let r = GreRepr {
            protocol: 0x6558,
            checksum: true,
            key: Some(42),
            sequence: None,
        };
        let mut b = [0u8; 12 + 3];
        let n = r.emit(&mut b).unwrap();
        assert_eq!(n, 12);
        b[12..].copy_from_slice(&[1, 2, 3]);
        let mut p = GrePacket::new_checked(&mut b[..]).unwrap();
        assert!(!p.verify_checksum() || p.checksum() == Some(0xffff));
        p.fill_checksum().unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.set_sequence(1), Err(Error::Malformed));
        let mut p = GrePacket::new_unchecked(&mut b[..4]);
        p.set_key_present(true);
        assert_eq!(p.set_key(1), Err(Error::NoSpace));
    }
}
