//! Tunnel headers and small per-packet rewrites shared by the stages.

use super::*;

/// Outer IP + UDP/GRE + label/VNI bytes of a tunnel (without Ethernet).
#[inline]
pub(super) fn tunnel_ip_overhead(kind: TunnelKind) -> usize {
    match kind {
        TunnelKind::MplsOverGre => IPV4_LEN + GRE_LEN + MPLS_LEN,
        TunnelKind::MplsOverUdp => IPV4_LEN + UDP_LEN + MPLS_LEN,
        TunnelKind::Vxlan => IPV4_LEN + UDP_LEN + VXLAN_LEN,
    }
}

/// Write outer Ethernet, IPv4, UDP/GRE and MPLS/VXLAN into `h` (exactly
/// `ETH_LEN + tunnel_ip_overhead(kind)` bytes) for `inner_len` bytes of
/// payload.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_tunnel(
    h: &mut [u8],
    kind: TunnelKind,
    sip: &[u8; 4],
    dip: &[u8; 4],
    encap: &[u8; 14],
    label: u32,
    inner_len: usize,
    entropy: u32,
    ip_id: u16,
) -> Option<()> {
    let overhead = tunnel_ip_overhead(kind);
    let ip_total = u16::try_from(overhead + inner_len).ok()?;
    h.get_mut(0..ETH_LEN)?.copy_from_slice(encap);
    let ip: &mut [u8; IPV4_LEN] = h.get_mut(ETH_LEN..ETH_LEN + IPV4_LEN)?.try_into().ok()?;
    let proto = if kind == TunnelKind::MplsOverGre {
        PROTO_GRE
    } else {
        PROTO_UDP
    };
    // The header checksum from the values, not read back from the bytes
    // just written (wide loads over narrow stores stall store forwarding:
    // that read was half of this function's samples).
    let words = 0x4500
        + u64::from(ip_total)
        + u64::from(ip_id)
        + (64 << 8 | u64::from(proto))
        + u64::from(u32::from_be_bytes(*sip))
        + u64::from(u32::from_be_bytes(*dip));
    let c = !checksum::fold(words);
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0, 0]);
    ip[8] = 64;
    ip[9] = proto;
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip[12..16].copy_from_slice(sip);
    ip[16..20].copy_from_slice(dip);
    let l4 = ETH_LEN + IPV4_LEN;
    match kind {
        TunnelKind::MplsOverGre => {
            wr32(h, l4, ETHERTYPE_MPLS as u32)?;
            wr32(h, l4 + GRE_LEN, mpls_word(label))?;
        }
        TunnelKind::MplsOverUdp | TunnelKind::Vxlan => {
            // Source port from the inner flow hash, in 49152..65535, for
            // underlay ECMP entropy (RFC 7510 / RFC 7348).
            let sport = 0xc000 | (entropy as u16 & 0x3fff);
            let dport = if kind == TunnelKind::Vxlan {
                PORT_VXLAN
            } else {
                PORT_MPLS
            };
            wr16(h, l4, sport)?;
            wr16(h, l4 + 2, dport)?;
            wr16(h, l4 + 4, (ip_total as usize - IPV4_LEN) as u16)?;
            wr16(h, l4 + 6, 0)?;
            if kind == TunnelKind::Vxlan {
                wr32(h, l4 + UDP_LEN, 0x0800_0000)?;
                wr32(h, l4 + UDP_LEN + 4, (label & 0x00ff_ffff) << 8)?;
            } else {
                wr32(h, l4 + UDP_LEN, mpls_word(label))?;
            }
        }
    }
    Some(())
}

#[inline]
pub(super) fn mpls_word(label: u32) -> u32 {
    ((label & 0x000f_ffff) << 12) | 0x100 | 64
}

/// Decrement the IPv4 TTL (with an incremental checksum update) or the
/// IPv6 hop limit of the packet at `info.l3_offset`.
#[inline]
pub(super) fn decrement_ttl(d: &mut [u8], info: &PacketInfo) -> Option<()> {
    let l3 = info.l3_offset as usize;
    match info.family {
        Family::Ipv4 => {
            let ttl_proto = rd16(d, l3 + 8)?;
            let new = ttl_proto.wrapping_sub(0x100);
            wr16(d, l3 + 8, new)?;
            let c = rd16(d, l3 + 10)?;
            wr16(d, l3 + 10, checksum::update_u16(c, ttl_proto, new))
        }
        Family::Ipv6 => {
            let h = d.get_mut(l3 + 7)?;
            *h = h.saturating_sub(1);
            Some(())
        }
        _ => Some(()),
    }
}

/// Hash of the 5-tuple for ECMP choice and tunnel source ports.
#[inline]
pub(super) fn ecmp_hash(info: &PacketInfo) -> u32 {
    let mut h: u64 = ((info.sport as u64) << 16 | info.dport as u64) ^ ((info.proto as u64) << 40);
    // The four 8-byte words of source and destination, little-endian,
    // unrolled (an iterator chain here was a quarter of `emit`'s time).
    let (src, dst) = (u128::from_le_bytes(info.src), u128::from_le_bytes(info.dst));
    for w in [
        src as u64,
        (src >> 64) as u64,
        dst as u64,
        (dst >> 64) as u64,
    ] {
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 31;
    }
    (h ^ (h >> 32)) as u32
}

/// Write the destination and source MACs of the Ethernet header at the
/// start of `d`.
#[inline]
pub(super) fn set_macs(d: &mut [u8], dmac: &[u8; 6], smac: &[u8; 6]) -> Option<()> {
    d.get_mut(0..6)?.copy_from_slice(dmac);
    d.get_mut(6..12)?.copy_from_slice(smac);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hash as first written (an iterator over 8-byte chunks): the
    /// unrolled one must give the same values, or tunnel source ports and
    /// ECMP choices would change.
    fn ecmp_hash_reference(info: &PacketInfo) -> u32 {
        let mut h: u64 =
            ((info.sport as u64) << 16 | info.dport as u64) ^ ((info.proto as u64) << 40);
        for c in info.src.chunks_exact(8).chain(info.dst.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 31;
        }
        (h ^ (h >> 32)) as u32
    }

    proptest! {
        #[test]
        fn tunnel_ip_header_checksum_verifies(
            sip in any::<[u8; 4]>(), dip in any::<[u8; 4]>(),
            len in 0usize..65000, id in any::<u16>(), label in any::<u32>(),
            kind in prop_oneof![
                Just(TunnelKind::MplsOverGre),
                Just(TunnelKind::MplsOverUdp),
                Just(TunnelKind::Vxlan),
            ],
        ) {
            let mut h = [0u8; 64];
            let n = ETH_LEN + tunnel_ip_overhead(kind);
            let ok = write_tunnel(&mut h[..n], kind, &sip, &dip, &[0; 14], label, len, 7, id);
            prop_assert_eq!(ok.is_some(), n - ETH_LEN + len <= 0xffff);
            if ok.is_some() {
                let ip = &h[ETH_LEN..ETH_LEN + IPV4_LEN];
                prop_assert!(checksum::verify(ip));
                let mut zeroed = [0u8; IPV4_LEN];
                zeroed.copy_from_slice(ip);
                zeroed[10] = 0;
                zeroed[11] = 0;
                prop_assert_eq!(
                    checksum::ipv4_header_checksum(&zeroed).to_be_bytes(),
                    [ip[10], ip[11]]
                );
            }
        }

        #[test]
        fn ecmp_hash_is_the_reference(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            sport in any::<u16>(), dport in any::<u16>(), proto in any::<u8>(),
        ) {
            let info = PacketInfo { src, dst, sport, dport, proto, ..PacketInfo::default() };
            prop_assert_eq!(ecmp_hash(&info), ecmp_hash_reference(&info));
        }
    }
}
