//! VLAN sub-interfaces (upstream `vlan_rx` / `vlan_tx`): a frame its
//! parent receives with an 802.1Q tag is the sub-interface's, untagged and
//! processed in the sub-interface's VRF with its flows and policy; what the
//! sub-interface sends leaves through the parent, tagged.

use super::*;
use crate::vif::VifTable;

const ETHERTYPE_VLAN: u16 = 0x8100;
const VLAN_TAG_LEN: usize = 4;

/// The VLAN id of a frame's outer 802.1Q tag.
#[inline]
pub(super) fn outer_vlan(d: &[u8]) -> Option<u16> {
    if rd16(d, 12)? != ETHERTYPE_VLAN {
        return None;
    }
    Some(rd16(d, 14)? & 0x0fff)
}

/// Remove the outer tag in place (the MACs move up by four bytes).
fn pop_tag(pkt: &mut Packet<'_>) -> Option<()> {
    let d = pkt.data_mut();
    if d.len() < ETH_LEN + VLAN_TAG_LEN {
        return None;
    }
    d.copy_within(0..12, VLAN_TAG_LEN);
    pkt.pull(VLAN_TAG_LEN).then_some(())
}

/// Insert an 802.1Q tag with VLAN id `vlan` after the MACs.
pub(super) fn push_tag(pkt: &mut Packet<'_>, vlan: u16) -> Option<()> {
    if pkt.len() < 12 {
        return None;
    }
    pkt.push(VLAN_TAG_LEN)?;
    let d = pkt.data_mut();
    d.copy_within(VLAN_TAG_LEN..VLAN_TAG_LEN + 12, 0);
    wr16(d, 12, ETHERTYPE_VLAN)?;
    wr16(d, 14, vlan & 0x0fff)
}

/// The header bytes of a copy of `data[from..to]` (after `prepend`) sent
/// out of a sub-interface: the tag goes after the first twelve bytes.
fn tagged_prepend(prepend: &Prepend, data: &[u8], from: u16, vlan: u16) -> Option<(Prepend, u16)> {
    let pre = prepend.as_slice();
    let (macs, rest, from) = if pre.len() >= 12 {
        (pre.get(..12)?, pre.get(12..)?, from)
    } else if pre.is_empty() {
        let f = from as usize;
        (data.get(f..f + 12)?, &[][..], from.checked_add(12)?)
    } else {
        return None;
    };
    let mut p = Prepend::EMPTY;
    p.extend(12)?.copy_from_slice(macs);
    let t = p.extend(VLAN_TAG_LEN)?;
    wr16(t, 0, ETHERTYPE_VLAN)?;
    wr16(t, 2, vlan & 0x0fff)?;
    p.extend(rest.len())?.copy_from_slice(rest);
    Some((p, from))
}

/// Queue a copy (`prepend` + `data[from..to]`) out of `vif`, through the
/// parent and tagged when `vif` is a sub-interface. False when it could not
/// be queued.
pub(super) fn copy_out(
    vifs: &VifTable,
    cx: &mut Cx<'_>,
    data: &[u8],
    vif: u16,
    prepend: &Prepend,
    from: u16,
    to: u16,
) -> bool {
    match vifs.tx_port(vif) {
        Some((port, None | Some(0))) => cx.copy(port, prepend, from, to),
        Some((port, Some(tag))) => match tagged_prepend(prepend, data, from, tag) {
            Some((p, from)) => cx.copy(port, &p, from, to),
            None => false,
        },
        None => false,
    }
}

impl Router {
    /// A tagged frame received on `parent`, which has sub-interfaces: to
    /// the sub-interface of its VLAN, or dropped when there is none.
    pub(super) fn rx_tagged(
        &mut self,
        parent: u16,
        vlan: u16,
        pkt: &mut Packet<'_>,
        cx: &mut Cx<'_>,
    ) -> Action {
        let Some(sub) = self
            .vifs
            .sub_interface(parent, vlan)
            .and_then(|s| self.vifs.get(s))
        else {
            // No sub-interface for this VLAN: counted on the parent, which
            // received it. (Upstream hands it on in the parent's VRF marked
            // with its VLAN, where ARP and routing skip tagged frames and
            // only bridging may carry it; we drop it, counted as addressed
            // to a missing interface.)
            if let Some(v) = self.vifs.get_mut(parent) {
                v.stats.ipackets += 1;
                v.stats.ibytes += pkt.len() as u64;
                v.stats.drops += 1;
            }
            return self.drop(cx, DropReason::InvalidIf);
        };
        let iv = InVif::of(sub);
        // Only the sub-interface counts the frame (upstream: no double
        // count, the two are different VMIs in different VRFs).
        if let Some(v) = self.vifs.get_mut(iv.idx) {
            v.stats.ipackets += 1;
            v.stats.ibytes += pkt.len() as u64;
        }
        if pop_tag(pkt).is_none() {
            return self.drop_input(cx, iv.idx, DropReason::Pull);
        }
        // The batch's parse and flow hash were the parent's.
        cx.pre = &Pre::None;
        let info = PacketInfo::parse(pkt.data());
        let disp = self.rx_vm(&iv, pkt, cx, info.as_ref().map_err(|e| *e));
        match disp {
            // A held frame is re-injected on the parent as received. (The
            // tag's four bytes were just pulled: pushing them back fits.)
            Action::Hold { .. } => {
                let _ = push_tag(pkt, vlan);
            }
            Action::Drop { .. } => {
                if let Some(v) = self.vifs.get_mut(iv.idx) {
                    v.stats.drops += 1;
                }
            }
            _ => {}
        }
        disp
    }
}
