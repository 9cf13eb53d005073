//! TCP MSS adjustment, as upstream's datapath does it for containers
//! (`vr_from_vm_mss_adj` / `vr_to_vm_mss_adj`, on by default on Linux):
//! the MSS option of a SYN leaving a container or delivered to one is
//! lowered to what fits the fabric MTU after the overlay headers, so TCP
//! between 1500-byte containers across a 1500-byte fabric never sends a
//! segment the tunnel cannot carry, with or without path MTU discovery.
//!
//! The limit is `fabric MTU - overlay - IP header - 20`, the overlay being
//! upstream's `VROUTER_OVERLAY_LEN` (40: outer IPv4, GRE with key or UDP,
//! up to three labels) for routed traffic and `VROUTER_L2_OVERLAY_LEN` (62:
//! also an inner Ethernet header and a control word) for bridged traffic.
//! Without a fabric vif nothing is adjusted.

use super::*;

pub(super) const TCP_SYN: u8 = 0x02;
/// Upstream `VROUTER_OVERLAY_LEN`.
pub(super) const OVERLAY_LEN: usize = 40;
/// Upstream `VROUTER_L2_OVERLAY_LEN`.
pub(super) const L2_OVERLAY_LEN: usize = 62;

const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

impl Router {
    /// Lower the MSS option of the TCP SYN described by `info` to what fits
    /// the fabric after `overlay` bytes of tunnel headers; the TCP checksum
    /// is updated incrementally. Anything unusual (no fabric, options cut
    /// short, a fragment) leaves the packet as it is.
    pub(super) fn adjust_mss(&self, pkt: &mut Packet<'_>, info: &PacketInfo, overlay: usize) {
        if info.frag.is_fragment || info.l4_offset == 0 {
            return;
        }
        let Some(mtu) = self
            .fabric_vif
            .and_then(|f| self.vifs.get(f))
            .map(|v| usize::from(v.cfg.mtu))
        else {
            return;
        };
        let l3 = info.l3_offset as usize;
        let l4 = info.l4_offset as usize;
        let iph = l4 - l3;
        let Some(max) = mtu
            .checked_sub(overlay + iph + 20)
            .and_then(|m| u16::try_from(m).ok())
        else {
            return;
        };
        let d = pkt.data_mut();
        let doff = d.get(l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
        let mut off = l4 + 20;
        let end = l4 + doff;
        while off < end {
            match d.get(off).copied() {
                Some(OPT_EOL) | None => return,
                Some(OPT_NOP) => off += 1,
                Some(OPT_MSS) => {
                    if d.get(off + 1) != Some(&4) || off + 4 > end {
                        return;
                    }
                    let Some(mss) = rd16(d, off + 2) else {
                        return;
                    };
                    if mss > max {
                        let old = rd16(d, l4 + 16).unwrap_or(0);
                        // The option is 16-bit aligned only if `off` is
                        // even relative to the TCP header; otherwise fix
                        // the checksum over the two words it straddles.
                        if (off - l4).is_multiple_of(2) {
                            let c = checksum::update_u16(old, mss, max);
                            let _ = wr16(d, off + 2, max);
                            let _ = wr16(d, l4 + 16, c);
                        } else {
                            let w = off + 1;
                            let (Some(a), Some(b)) = (rd16(d, w), rd16(d, w + 2)) else {
                                return;
                            };
                            let _ = wr16(d, off + 2, max);
                            let (Some(na), Some(nb)) = (rd16(d, w), rd16(d, w + 2)) else {
                                return;
                            };
                            let c = checksum::update_u16(checksum::update_u16(old, a, na), b, nb);
                            let _ = wr16(d, l4 + 16, c);
                        }
                    }
                    return;
                }
                Some(_) => match d.get(off + 1).copied() {
                    Some(len) if len >= 2 => off += usize::from(len),
                    _ => return,
                },
            }
        }
    }
}
