//! VXLAN header (RFC 7348), carried in UDP to port
//! [`UDP_PORT_VXLAN`](crate::UDP_PORT_VXLAN).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-----------------------------------------------+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +---------------+-----------------------------------------------+
//! |          VXLAN Network Identifier (VNI)       |   Reserved    |
//! +-----------------------------------------------+---------------+
//! ```

use crate::be;
use crate::{Error, Result};

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid. RFC 7348 requires it set.
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// A read/write view of a VXLAN header and the inner Ethernet frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Length of the VXLAN header.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps a buffer and checks it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the buffer holds the 8-byte header.
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

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    /// Whether the I flag (VNI valid) is set.
    #[inline]
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        be::u32_at(self.buffer.as_ref(), 4).unwrap_or(0) >> 8
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        if let Some(b) = self.buffer.as_mut().first_mut() {
            *b = flags;
        }
    }

    /// Sets the VNI (low 24 bits), keeping the reserved byte after it.
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let b = self.buffer.as_mut();
        let low = b.get(7).copied().unwrap_or(0);
        let _ = be::put_u32(b, 4, ((vni & VNI_MAX) << 8) | u32::from(low));
    }

    /// Writes a complete header: I flag, `vni`, reserved fields zero.
    pub fn emit(&mut self, vni: u32) {
        let _ = be::put_u32(self.buffer.as_mut(), 0, u32::from(FLAG_I) << 24);
        let _ = be::put_u32(self.buffer.as_mut(), 4, (vni & VNI_MAX) << 8);
    }

    /// The mutable inner Ethernet frame.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// Writes a VXLAN header for `vni` into the first 8 bytes of `buf`.
pub fn emit(buf: &mut [u8], vni: u32) -> Result<usize> {
    let mut p = VxlanPacket::new_checked(buf).map_err(|_| Error::NoSpace)?;
    p.emit(vni);
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VXLAN header with VNI 0x123456 as captured from a Linux VTEP, followed
    /// by the first bytes of the inner frame.
    const HDR: [u8; 10] = [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0x00, 0xaa, 0xbb];

    #[test]
    fn parse() {
        let p = VxlanPacket::new_checked(&HDR[..]).unwrap();
        assert!(p.vni_valid());
        assert_eq!(p.flags(), 0x08);
        assert_eq!(p.vni(), 0x123456);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn build() {
        let mut b = [0xffu8; 10];
        assert_eq!(emit(&mut b, 0x0112_3456), Ok(8));
        assert_eq!(&b[..8], &HDR[..8]);
        let mut p = VxlanPacket::new_unchecked(&mut b[..]);
        p.set_vni(7);
        p.set_flags(0);
        assert_eq!(p.vni(), 7);
        assert!(!p.vni_valid());
        assert_eq!(emit(&mut [0u8; 7], 1), Err(Error::NoSpace));
    }

    #[test]
    fn short() {
        assert_eq!(
            VxlanPacket::new_checked(&[8u8; 7][..]),
            Err(Error::Truncated)
        );
        let p = VxlanPacket::new_unchecked(&[][..]);
        assert_eq!((p.flags(), p.vni()), (0, 0));
    }
}
