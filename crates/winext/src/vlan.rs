//! 802.1Q tags between NDIS and the core.
//!
//! NDIS keeps a packet's VLAN tag out of band, in the list's
//! `NDIS_NET_BUFFER_LIST_8021Q_INFO`, never in its data: a container's VLAN
//! interface hands its frames to the switch untagged with the tag beside
//! them, and a VM port takes them the same way. The core reads and writes
//! tags in the frame (upstream's VLAN sub-interfaces, vif type 7). So the
//! extension moves the tag into the frame before the core sees a VM port's
//! frame, and out of the frame into the list when it sends one.

/// The 802.1Q TPID.
pub const TPID: u16 = 0x8100;
/// Bytes of one tag (TPID and TCI).
pub const TAG_LEN: usize = 4;
/// The two MAC addresses the tag follows.
const MACS: usize = 12;

/// The TCI (PCP:3 DEI:1 VID:12) of an `NDIS_NET_BUFFER_LIST_8021Q_INFO`
/// value. Its `TagHeader` bit fields, from bit 0: `UserPriority:3`,
/// `CanonicalFormatId:1`, `VlanId:12`.
pub fn tci_from_oob(value: usize) -> u16 {
    let pcp = value & 0x7;
    let cfi = (value >> 3) & 0x1;
    let vid = (value >> 4) & 0xfff;
    ((pcp << 13) | (cfi << 12) | vid) as u16
}

/// The `NDIS_NET_BUFFER_LIST_8021Q_INFO` value of a TCI (0: no tag).
pub fn oob_from_tci(tci: u16) -> usize {
    let t = tci as usize;
    let pcp = (t >> 13) & 0x7;
    let cfi = (t >> 12) & 0x1;
    let vid = t & 0xfff;
    pcp | (cfi << 3) | (vid << 4)
}

/// The VLAN id of a TCI.
pub fn vid(tci: u16) -> u16 {
    tci & 0xfff
}

/// Put a tag with `tci` into the frame at `buf[head..head + len]`, in the
/// bytes before it (the MACs move back by [`TAG_LEN`]). The frame's new
/// head, or `None` when there is no room or the frame has no MACs.
pub fn push_tag(buf: &mut [u8], head: usize, len: usize, tci: u16) -> Option<usize> {
    let new = head.checked_sub(TAG_LEN)?;
    if len < MACS || head.checked_add(len)? > buf.len() {
        return None;
    }
    buf.copy_within(head..head + MACS, new);
    let [tpid, tci] = [TPID.to_be_bytes(), tci.to_be_bytes()];
    buf.get_mut(new + MACS..new + MACS + TAG_LEN)?
        .copy_from_slice(&[tpid[0], tpid[1], tci[0], tci[1]]);
    Some(new)
}

/// Take the outer 802.1Q tag out of `frame` (the MACs move forward by
/// [`TAG_LEN`]; the frame then starts [`TAG_LEN`] bytes later). Its TCI, or
/// `None` (and nothing moved) when the frame is not tagged.
pub fn pop_tag(frame: &mut [u8]) -> Option<u16> {
    let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    // At least an ethertype after the tag.
    if be16(MACS)? != TPID || frame.len() < MACS + TAG_LEN + 2 {
        return None;
    }
    let tci = be16(MACS + 2)?;
    frame.copy_within(..MACS, TAG_LEN);
    Some(tci)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn frame() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xb]); // dst
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xa]); // src
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(b"payload");
        f
    }

    #[test]
    fn oob_bit_fields() {
        // VID 100, PCP 5, DEI 1: UserPriority=5 (bits 0-2), CFI (bit 3),
        // VlanId=100 (bits 4-15).
        let tci = (5 << 13) | (1 << 12) | 100;
        let v = oob_from_tci(tci);
        assert_eq!(v, 5 | (1 << 3) | (100 << 4));
        assert_eq!(tci_from_oob(v), tci);
        assert_eq!(vid(tci), 100);
        assert_eq!(oob_from_tci(0), 0);
        // Reserved bits above the tag header are ignored.
        assert_eq!(tci_from_oob(v | (0xffff << 16)), tci);
        for t in [0u16, 1, 4094, 4095, 0xffff, 0x8064] {
            assert_eq!(tci_from_oob(oob_from_tci(t)), t);
        }
    }

    #[test]
    fn push_then_pop_gives_the_frame_back() {
        let f = frame();
        let mut buf = alloc::vec![0xee; 8];
        buf.extend_from_slice(&f);
        let head = push_tag(&mut buf, 8, f.len(), 0x2064).unwrap();
        assert_eq!(head, 4);
        let tagged = &mut buf[head..head + f.len() + TAG_LEN];
        assert_eq!(&tagged[..12], &f[..12]);
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(&tagged[16..], &f[12..]);
        assert_eq!(pop_tag(tagged), Some(0x2064));
        assert_eq!(&tagged[TAG_LEN..], &f[..]);
    }

    #[test]
    fn no_room_short_or_untagged_frames_are_left_alone() {
        let f = frame();
        let mut buf = f.clone();
        assert_eq!(push_tag(&mut buf, 0, f.len(), 1), None, "no room in front");
        let mut buf = alloc::vec![0; 4];
        buf.extend_from_slice(&f[..10]);
        assert_eq!(push_tag(&mut buf, 4, 10, 1), None, "no MACs");
        assert_eq!(push_tag(&mut buf, 4, 100, 1), None, "past the buffer");
        let mut g = f.clone();
        assert_eq!(pop_tag(&mut g), None);
        assert_eq!(g, f, "untouched");
        let mut short = f[..12].to_vec();
        short.extend_from_slice(&[0x81, 0, 0, 1]);
        assert_eq!(pop_tag(&mut short), None, "a tag with nothing after it");
    }
}
