//! Decisions about NDIS packets that are not forwarding decisions: how the
//! core may touch a frame, and what becomes of a NET_BUFFER_LIST once the
//! core has decided each of its NET_BUFFERs.

use dp_core::HEADROOM;

use crate::ports::PortNic;

/// How a NET_BUFFER's frame is laid out in memory, as the shim found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Frame length (`NET_BUFFER_DATA_LENGTH`).
    pub len: usize,
    /// The whole frame lies in the NB's current MDL.
    pub contiguous: bool,
    /// Unused bytes in front of the frame in that MDL (`CurrentMdlOffset`).
    pub backfill: usize,
    /// Another NB of the same list uses the same MDL (its "backfill"
    /// would be that NB's bytes).
    pub shared: bool,
    /// `None` when the switch marks all of the data safe
    /// (`IsPacketDataSafe`); else `SafePacketDataSize`: bytes from the
    /// start that are in host memory the VM cannot write.
    pub safe_len: Option<usize>,
}

/// Why a frame is copied before the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReason {
    /// Spread over several MDLs.
    Fragmented,
    /// No room in front for an encapsulation (the core pushes headers in
    /// place).
    NoBackfill,
    /// The MDL is shared with another NB of the list.
    Shared,
    /// Part of the frame is in memory the sending VM can still write: the
    /// switch's rule is to copy it before inspecting it.
    Untrusted,
}

/// How the core gets the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// In place, no copy.
    Direct,
    Copy(CopyReason),
}

/// Frames go to the core in place when they are contiguous, trusted and have
/// [`HEADROOM`] bytes of backfill; otherwise they are copied once into a
/// packet the extension owns (and the copy is counted by reason).
pub fn access(s: &Shape) -> Access {
    if !s.contiguous {
        Access::Copy(CopyReason::Fragmented)
    } else if s.shared {
        Access::Copy(CopyReason::Shared)
    } else if s.safe_len.is_some_and(|n| n < s.len) {
        Access::Copy(CopyReason::Untrusted)
    } else if s.backfill < HEADROOM {
        Access::Copy(CopyReason::NoBackfill)
    } else {
        Access::Direct
    }
}

/// What the core decided for one frame (one NET_BUFFER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// To this NIC, as now found at `head..head + len` of its buffer.
    /// `tci`: the list's out-of-band 802.1Q tag to set (0: none), taken
    /// out of the frame (see [`crate::vlan`]); `None` leaves the tag the
    /// switch gave the list (bridged traffic the core does not own).
    Forward {
        dst: PortNic,
        head: u32,
        len: u32,
        tci: Option<u16>,
    },
    /// Keep it until the agent decides `flow`, as now found at
    /// `head..head + len` (the core may have moved a VLAN tag).
    Hold {
        flow: u32,
        vif: u16,
        head: u32,
        len: u32,
    },
    /// Nothing more to send (dropped, consumed by copies, trapped).
    Done,
}

/// What becomes of one NET_BUFFER_LIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Every NB goes to the same NIC with the same VLAN tag: rewrite each
    /// in place and send the list itself with one destination (no copy, no
    /// allocation).
    Forward(PortNic),
    /// Nothing to send: complete the list to the switch.
    Complete,
    /// Its only NB waits for the agent: keep the list itself.
    Hold { flow: u32 },
    /// NBs go different ways: each forwarded or held NB moves to a list of
    /// its own that shares the original's MDLs (no data copy), and the
    /// original completes when the last of those completes.
    Split,
}

/// The plan for a list whose NBs' fates are `fates` (in order).
pub fn plan(fates: &[Fate]) -> Plan {
    let Some(first) = fates.first() else {
        return Plan::Complete;
    };
    if let [Fate::Hold { flow, .. }] = fates {
        return Plan::Hold { flow: *flow };
    }
    if fates.iter().all(|f| *f == Fate::Done) {
        return Plan::Complete;
    }
    if let Fate::Forward { dst, tci, .. } = *first {
        if fates
            .iter()
            .all(|f| matches!(f, Fate::Forward { dst: d, tci: t, .. } if *d == dst && *t == tci))
        {
            return Plan::Forward(dst);
        }
    }
    Plan::Split
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PortNic = PortNic::new(1, 0);
    const B: PortNic = PortNic::new(2, 0);

    fn fwd(dst: PortNic) -> Fate {
        Fate::Forward {
            dst,
            head: 64,
            len: 60,
            tci: Some(0),
        }
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&[]), Plan::Complete);
        assert_eq!(plan(&[Fate::Done, Fate::Done]), Plan::Complete);
        assert_eq!(plan(&[fwd(A)]), Plan::Forward(A));
        assert_eq!(plan(&[fwd(A), fwd(A), fwd(A)]), Plan::Forward(A));
        assert_eq!(plan(&[fwd(A), fwd(B)]), Plan::Split);
        assert_eq!(plan(&[fwd(A), Fate::Done]), Plan::Split);
        let tagged = |tci| match fwd(A) {
            Fate::Forward { dst, head, len, .. } => Fate::Forward {
                dst,
                head,
                len,
                tci,
            },
            f => f,
        };
        assert_eq!(
            plan(&[fwd(A), tagged(Some(100))]),
            Plan::Split,
            "one list carries one tag"
        );
        assert_eq!(
            plan(&[tagged(Some(100)), tagged(Some(100))]),
            Plan::Forward(A)
        );
        assert_eq!(plan(&[tagged(None), fwd(A)]), Plan::Split);
        let h = Fate::Hold {
            flow: 9,
            vif: 3,
            head: 64,
            len: 60,
        };
        assert_eq!(plan(&[h]), Plan::Hold { flow: 9 });
        assert_eq!(
            plan(&[h, h]),
            Plan::Split,
            "each held NB becomes its own list"
        );
    }

    #[test]
    fn access_rules() {
        let ok = Shape {
            len: 100,
            contiguous: true,
            backfill: HEADROOM,
            shared: false,
            safe_len: None,
        };
        assert_eq!(access(&ok), Access::Direct);
        assert_eq!(
            access(&Shape {
                contiguous: false,
                ..ok
            }),
            Access::Copy(CopyReason::Fragmented)
        );
        assert_eq!(
            access(&Shape { shared: true, ..ok }),
            Access::Copy(CopyReason::Shared)
        );
        assert_eq!(
            access(&Shape { backfill: 10, ..ok }),
            Access::Copy(CopyReason::NoBackfill)
        );
        assert_eq!(
            access(&Shape {
                safe_len: Some(64),
                ..ok
            }),
            Access::Copy(CopyReason::Untrusted)
        );
        assert_eq!(
            access(&Shape {
                safe_len: Some(128),
                ..ok
            }),
            Access::Direct,
            "all of it in trusted memory"
        );
    }
}
