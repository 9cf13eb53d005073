//! Packet buffers and the actions the core hands back to its host.

use crate::drop::DropReason;

/// Headroom a host should leave in front of every received frame: enough
/// for the largest encapsulation we push (outer Ethernet + IPv4 + UDP +
/// VXLAN = 50 bytes) and for a trap (Ethernet + `agent_hdr` = 44 bytes).
pub const HEADROOM: usize = 64;

/// A frame in a host-owned buffer. The core moves `head` to push or pull
/// headers in place, so encapsulation and decapsulation copy nothing.
#[derive(Debug)]
pub struct Packet<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
    gso: bool,
    csum_partial: bool,
}

impl<'a> Packet<'a> {
    /// A frame of `len` bytes at `buf[head..]`; `None` if it does not fit.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Option<Self> {
        if head.checked_add(len)? > buf.len() {
            return None;
        }
        Some(Packet {
            buf,
            head,
            len,
            gso: false,
            csum_partial: false,
        })
    }

    /// Mark the frame's checksums as not computed yet (a sender that
    /// offloads them, upstream's `VP_FLAG_CSUM_PARTIAL`): the core then
    /// does not check them. The Linux host finishes partial checksums
    /// before the core sees a frame and never sets this; a host that hands
    /// frames over as the sender left them (a Hyper-V switch extension with
    /// checksum offload) must.
    #[inline]
    pub fn set_csum_partial(&mut self, partial: bool) {
        self.csum_partial = partial;
    }

    /// See [`Packet::set_csum_partial`].
    #[inline]
    pub fn is_csum_partial(&self) -> bool {
        self.csum_partial
    }

    /// Mark the frame as (a segment of) a GSO/LSO super-packet: upstream
    /// truncates what it traps of those (see [`crate::agent::trap_len`]).
    #[inline]
    pub fn set_gso(&mut self, gso: bool) {
        self.gso = gso;
    }

    /// See [`Packet::set_gso`].
    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // In range by construction; `get` keeps a broken invariant from
        // becoming a panic in kernel mode.
        self.buf.get(self.head..self.head + self.len).unwrap_or(&[])
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buf
            .get_mut(self.head..self.head + self.len)
            .unwrap_or(&mut [])
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the frame in the buffer.
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }

    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Grow the frame at the front by `n` bytes and return them.
    #[inline]
    pub(crate) fn push(&mut self, n: usize) -> Option<&mut [u8]> {
        let head = self.head.checked_sub(n)?;
        self.head = head;
        self.len += n;
        self.buf.get_mut(head..head + n)
    }

    /// Remove `n` bytes from the front.
    #[inline]
    pub(crate) fn pull(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.head += n;
        self.len -= n;
        true
    }

    /// Make the frame exactly `len` bytes long, starting at the current head
    /// if the buffer has room, else earlier (for replies built in place
    /// that are longer than the request). Returns the frame bytes.
    pub(crate) fn reset(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.head + len > self.buf.len() {
            self.head = self.buf.len().checked_sub(len)?;
        }
        self.len = len;
        self.buf.get_mut(self.head..self.head + len)
    }

    /// Cut the frame to `len` bytes (drops Ethernet padding and trailers).
    #[inline]
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Most bytes a copy action can prepend: outer Ethernet/IPv4/UDP/VXLAN plus
/// an inner Ethernet and a full inner IPv4 header (fragments).
pub const PREPEND_MAX: usize = 128;

/// Header bytes to put in front of a copy, built on the stack by the
/// pipeline and then stored in the [`Actions`] arena.
#[derive(Clone, Copy)]
pub(crate) struct Prepend {
    len: u8,
    bytes: [u8; PREPEND_MAX],
}

impl Prepend {
    pub const EMPTY: Prepend = Prepend {
        len: 0,
        bytes: [0; PREPEND_MAX],
    };

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len as usize).unwrap_or(&[])
    }

    /// Reserve `n` more bytes at the end and return them.
    #[inline]
    pub(crate) fn extend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.len as usize;
        let end = start.checked_add(n).filter(|e| *e <= PREPEND_MAX)?;
        self.len = end as u8;
        self.bytes.get_mut(start..end)
    }
}

impl core::fmt::Debug for Prepend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Prepend")
            .field("bytes", &self.as_slice())
            .finish()
    }
}

/// What the host must do. Every packet of a batch gets exactly one
/// *disposition* (`Tx`, `Hold`, `Drop` or `PassThrough`), preceded by any
/// number of `TxCopy` actions that read its bytes.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Send packet `pkt` (as rewritten in its buffer) out of `vif`.
    Tx { pkt: u16, vif: u16 },
    /// Send the bytes of `prepend` (see [`Actions::prepend`]) followed by
    /// `data()[from..to]` of packet `pkt` out of `vif`. Used for floods,
    /// fragments and traps of held packets.
    TxCopy {
        pkt: u16,
        vif: u16,
        prepend: PrependRef,
        from: u16,
        to: u16,
    },
    /// Keep packet `pkt`, unchanged, until the agent resolves flow `flow`;
    /// then feed it to [`crate::Router::process`] again with the same input
    /// vif (or drop it if the flow is deleted).
    Hold { pkt: u16, flow: u32 },
    /// Drop packet `pkt`; `reason` is already counted.
    Drop { pkt: u16, reason: DropReason },
    /// Not overlay traffic and no host vif to carry it: leave it to the host
    /// OS (on Linux the kernel saw the frame anyway).
    PassThrough { pkt: u16 },
    /// Fully handled by the `TxCopy` actions before it (a flood); the
    /// buffer can be recycled.
    Consumed { pkt: u16 },
}

/// Where a copy's header bytes sit in the [`Actions`] arena: the offset
/// (below 2^24) and the length in one `u32`, which keeps [`Action`] at 16
/// bytes: returned in two registers, not through memory (a 20-byte action
/// written field by field and reloaded whole waits for those stores, no
/// store forwarding: 3% of warm decap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrependRef(u32);

/// Largest arena offset a [`PrependRef`] holds.
const PREPEND_OFF_MAX: usize = (1 << 24) - 1;

const _: () = assert!(core::mem::size_of::<Action>() == 16 && PREPEND_MAX <= 255);

/// A bounded action list, allocated once by the host and reused for every
/// batch, so the forwarding path never allocates. Copies keep their header
/// bytes in a side arena, which keeps [`Action`] small.
pub struct Actions {
    list: alloc::vec::Vec<Action>,
    cap: usize,
    arena: alloc::vec::Vec<u8>,
}

impl Actions {
    /// Room for `cap` actions. A batch of N packets needs N plus one per
    /// extra copy (floods, fragments); when full, copies are dropped.
    pub fn with_capacity(cap: usize) -> Self {
        Actions {
            list: alloc::vec::Vec::with_capacity(cap),
            cap,
            arena: alloc::vec::Vec::with_capacity(cap * PREPEND_MAX),
        }
    }

    /// Append a copy action, storing its header bytes in the arena.
    #[inline]
    pub(crate) fn push_copy(
        &mut self,
        pkt: u16,
        vif: u16,
        prepend: &Prepend,
        from: u16,
        to: u16,
    ) -> bool {
        let bytes = prepend.as_slice();
        let off = self.arena.len();
        if self.list.len() >= self.cap
            || off + bytes.len() > self.arena.capacity()
            || off > PREPEND_OFF_MAX
        {
            return false;
        }
        // `bytes` is at most PREPEND_MAX (128) long: it fits the low byte.
        let r = PrependRef(((off as u32) << 8) | bytes.len() as u32);
        self.arena.extend_from_slice(bytes);
        self.list.push(Action::TxCopy {
            pkt,
            vif,
            prepend: r,
            from,
            to,
        });
        true
    }

    /// The header bytes of a `TxCopy`.
    #[inline]
    pub fn prepend(&self, r: PrependRef) -> &[u8] {
        let off = (r.0 >> 8) as usize;
        self.arena
            .get(off..off + (r.0 & 0xff) as usize)
            .unwrap_or(&[])
    }

    #[inline]
    pub(crate) fn push(&mut self, a: Action) -> bool {
        if self.list.len() >= self.cap {
            return false;
        }
        self.list.push(a);
        true
    }

    /// Room left for more actions.
    #[inline]
    pub(crate) fn room(&self) -> usize {
        self.cap - self.list.len()
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.arena.clear();
    }

    pub fn as_slice(&self) -> &[Action] {
        &self.list
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
