//! Internet checksum (RFC 1071) and incremental updates (RFC 1624).
//!
//! Conventions: a *sum* is the folded 16-bit one's-complement sum of some
//! data (not inverted); a *checksum* is the value stored in a header, i.e.
//! `!sum`. The incremental updates take and return stored checksums.
//!
//! UDP over IPv4 may carry checksum 0 meaning "none": callers must not run
//! the incremental updates on it (and must store a computed 0 as 0xffff).

/// One's-complement sum of `data`, folded to 16 bits (not inverted).
///
/// Words are read 8 bytes at a time in native byte order and the result is
/// byte-swapped once at the end (RFC 1071 §2(B): the sum is byte-order
/// independent), so the loop is one load and an add-with-carry per 8 bytes.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc = add64(acc, u64::from_ne_bytes(w));
    }
    // The tail (up to 7 bytes) as native 16-bit words, whose sum is the
    // same as that of the zero-padded 64-bit word (2^16 = 1 modulo
    // 2^16 - 1). Loaded directly: copying it into a zeroed buffer and
    // reading that back as one word stalled on store forwarding (an IPv4
    // header is 2 words and a 4-byte tail).
    let mut rest = chunks.remainder();
    if let Some((w, r)) = rest.split_first_chunk::<4>() {
        acc = add64(acc, u64::from(u32::from_ne_bytes(*w)));
        rest = r;
    }
    if let Some((w, r)) = rest.split_first_chunk::<2>() {
        acc = add64(acc, u64::from(u16::from_ne_bytes(*w)));
        rest = r;
    }
    if let Some(&b) = rest.first() {
        // An odd last byte is the high byte of its 16-bit word (RFC 1071).
        acc = add64(acc, u64::from(u16::from_ne_bytes([b, 0])));
    }
    let s = fold(acc);
    if cfg!(target_endian = "little") {
        s.swap_bytes()
    } else {
        s
    }
}

#[inline(always)]
fn add64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // Cannot overflow: after a carry, s <= u64::MAX - 1.
    s + u64::from(carry)
}

/// Folds a wide one's-complement accumulator to 16 bits (end-around carry).
#[inline]
pub const fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// One's-complement addition of two 16-bit sums.
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// Sum of the IPv4 pseudo-header (RFC 768 / RFC 793): addresses, protocol
/// and the L4 length.
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, len: u16) -> u16 {
    let acc = u64::from(u32::from_be_bytes(*src))
        + u64::from(u32::from_be_bytes(*dst))
        + u64::from(proto)
        + u64::from(len);
    fold(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, upper-layer
/// length and next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, len: u32) -> u16 {
    let mut acc = u64::from(proto) + u64::from(len >> 16) + u64::from(len & 0xffff);
    for a in [src, dst] {
        for w in a.chunks_exact(4) {
            let mut b = [0u8; 4];
            b.copy_from_slice(w);
            acc += u64::from(u32::from_be_bytes(b));
        }
    }
    fold(acc)
}

/// The checksum to store for an L4 segment (`l4` with its checksum field
/// zeroed, or with the old value in place when verifying) under the IPv4
/// pseudo-header. For UDP, store 0xffff if this returns 0.
#[inline]
pub fn l4_checksum_v4(src: &[u8; 4], dst: &[u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let len = u16::try_from(l4.len()).unwrap_or(u16::MAX);
    !add(pseudo_header_v4(src, dst, proto, len), sum(l4))
}

/// The checksum to store for an L4 segment under the IPv6 pseudo-header.
#[inline]
pub fn l4_checksum_v6(src: &[u8; 16], dst: &[u8; 16], proto: u8, l4: &[u8]) -> u16 {
    let len = u32::try_from(l4.len()).unwrap_or(u32::MAX);
    !add(pseudo_header_v6(src, dst, proto, len), sum(l4))
}

/// Whether `data` (including its stored checksum) sums to 0xffff.
#[inline]
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

/// The IPv4 header checksum to store for `header` (its checksum field,
/// bytes 10..12, is ignored). `header` should be exactly IHL*4 bytes.
#[inline]
pub fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let s = sum(header);
    // Remove the stored checksum instead of copying the header to zero it.
    let stored = crate::be::u16_at(header, 10).unwrap_or(0);
    !add(s, !stored)
}

/// RFC 1624 eqn. 3: the new stored checksum after a 16-bit word of the
/// covered data changed from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub const fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u64 + !old as u64 + new as u64)
}

/// [`update_u16`] for a 32-bit field (e.g. an IPv4 address), aligned on a
/// 16-bit boundary of the covered data.
#[inline]
pub const fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let acc = !csum as u64
        + (!old >> 16) as u64
        + (!old & 0xffff) as u64
        + (new >> 16) as u64
        + (new & 0xffff) as u64;
    !fold(acc)
}

/// [`update_u16`] for a byte field of any length (e.g. a 16-byte IPv6
/// address) that starts on a 16-bit boundary. `old` and `new` must have the
/// same length; if they differ, only the common prefix is accounted for.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let n = old.len().min(new.len());
    let (old, new) = (old.get(..n).unwrap_or(&[]), new.get(..n).unwrap_or(&[]));
    // ~HC + ~sum(old) + sum(new): one's-complement negation is linear.
    !add(add(!csum, !sum(old)), sum(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 reference: big-endian 16-bit words.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header() {
        // A real IPv4 header (example from Wikipedia's checksum article):
        // checksum 0xb861.
        let h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        assert!(verify(&h));
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(ipv4_header_checksum(&z), 0xb861);
    }

    #[test]
    fn odd_lengths_match_reference() {
        let data: [u8; 37] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        for n in 0..data.len() {
            assert_eq!(sum(&data[..n]), reference(&data[..n]), "len {n}");
        }
    }

    #[test]
    fn ttl_decrement() {
        let mut h: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let c = update_u16(0xb861, old, new);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(c, ipv4_header_checksum(&h));
        assert!(verify(&h));
    }

    #[test]
    fn pseudo_headers() {
        // UDP 192.0.2.1:1234 -> 192.0.2.2:80, payload "hi".
        let mut udp = [0x04, 0xd2, 0x00, 0x50, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let c = l4_checksum_v4(&[192, 0, 2, 1], &[192, 0, 2, 2], 17, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let pkt = smoltcp::wire::UdpPacket::new_checked(&udp[..]).unwrap();
        assert!(pkt.verify_checksum(
            &smoltcp::wire::Ipv4Address::new(192, 0, 2, 1).into(),
            &smoltcp::wire::Ipv4Address::new(192, 0, 2, 2).into()
        ));
        let s6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let d6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        udp[6..8].fill(0);
        let c = l4_checksum_v6(&s6, &d6, 17, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        let pkt = smoltcp::wire::UdpPacket::new_checked(&udp[..]).unwrap();
        assert!(pkt.verify_checksum(
            &smoltcp::wire::Ipv6Address::from(s6).into(),
            &smoltcp::wire::Ipv6Address::from(d6).into()
        ));
    }

    mod props {
        use super::super::*;
        use super::reference;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..200)) {
                prop_assert_eq!(sum(&data), reference(&data));
            }

            #[test]
            fn incremental_equals_full(
                mut data in proptest::collection::vec(any::<u8>(), 40..120),
                pos in 0usize..10,
                new16 in any::<u16>(),
                new32 in any::<u32>(),
                new128 in any::<[u8; 16]>(),
            ) {
                // Byte 0..2 hold the checksum; fields start at even offsets.
                data[0] = 0;
                data[1] = 0;
                let c = !sum(&data);
                data[..2].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&data));

                let off = 2 + 2 * pos;
                let old = u16::from_be_bytes([data[off], data[off + 1]]);
                let c = update_u16(c, old, new16);
                data[off..off + 2].copy_from_slice(&new16.to_be_bytes());
                data[..2].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&data));

                let mut o = [0u8; 4];
                o.copy_from_slice(&data[off..off + 4]);
                let c = update_u32(c, u32::from_be_bytes(o), new32);
                data[off..off + 4].copy_from_slice(&new32.to_be_bytes());
                data[..2].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&data));

                let mut o = [0u8; 16];
                o.copy_from_slice(&data[off..off + 16]);
                let c = update_bytes(c, &o, &new128);
                data[off..off + 16].copy_from_slice(&new128);
                data[..2].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&data));
            }

            #[test]
            fn ipv4_header_checksum_verifies(mut h in any::<[u8; 20]>()) {
                let c = ipv4_header_checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&h));
            }
        }
    }
}
