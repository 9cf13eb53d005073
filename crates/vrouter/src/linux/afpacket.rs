//! AF_PACKET port bound to one interface, read with `recvmmsg` and written
//! with `sendmmsg`, with `PACKET_VNET_HDR` offload metadata.
//!
//! Why not a TPACKET_V3 ring: both copy each frame once from the skb (into
//! the ring or into our buffer), and the ring only saves the per-batch
//! syscall, but a V3 block is handed to user space when full or when its
//! retire timer (1 ms at least) fires, which puts 0.5-3 ms on every packet
//! at low rates; V2 avoids that but needs 64 KB fixed frames for GSO
//! super-packets. `recvmmsg` of up to 32 frames per call gives per-packet
//! wake-ups at low rate and one syscall per 32 frames under load
//! (measurements in the crate docs).
//!
//! # Sending: a queue, `sendmmsg`, and UDP GSO for tunnels
//!
//! [`Port::send`] copies a plain frame into a per-port queue; the datapath
//! calls [`Port::flush`] after each batch, and the whole queue leaves in one
//! `sendmmsg`. The copy (at most an MTU per frame) is far cheaper than the
//! syscall it saves, and it keeps the port independent of the lifetime of
//! the datapath's buffers. GSO super-packets and jumbo frames skip the queue
//! (after flushing it, so order is kept).
//!
//! Profiling the cross-host MPLSoUDP path showed that the syscall is not the
//! main cost: every segment is one skb that the kernel allocates, pushes
//! through the fabric device and, on the peer, through the packet taps and
//! the host IP stack. So runs of overlay UDP frames (destination port 6635
//! or 4789) of one outer flow (same Ethernet/IP/UDP header apart from
//! lengths, id and checksum) and equal size (the last may be shorter) are
//! merged into one UDP GSO (`VIRTIO_NET_HDR_GSO_UDP_L4`, "USO") super-packet:
//! one outer header, the tunnel payloads back to back, `gso_size` = payload
//! size. The kernel (or the NIC) cuts it into exactly the original datagrams
//! (each with the outer header, a fresh IP id and a computed UDP checksum)
//! only where it must; over veth it stays one skb up to the receiver, whose
//! GRO-aware UDP socket or vRouter datapath segments it. If the kernel
//! refuses USO (`EINVAL`), the port falls back to plain frames for good.
//!
//! # What the device takes
//!
//! A packet socket that bypasses the qdisc layer drops (`ENOBUFS`) a GSO
//! skb the device cannot transmit as it is, instead of segmenting it: a
//! veth with `tx off` (no checksum offload, hence no TSO) refuses every
//! TCP super-packet. So the port reads the device's active offloads
//! (`sys::tx_features`) when it opens and on [`Port::refresh_offloads`],
//! reports only what the device takes ([`Port::offloads`]; the datapath
//! then merges and grafts only those kinds), and a super-packet the device
//! does not take after all (offloads turned off meanwhile) is cut into
//! plain segments here and sent, counted in `PortStats::gso_fallback`.
use super::sys::{self, PacketMreq, TpacketStats, TxFeatures};
use crate::port::{Offloads, Port, PortStats, RxSlot, MAX_BATCH};
use crate::vnet::{flags, gso, Gso, VnetHdr, VNET_HDR_LEN};
use packet::be::{put_u16 as wr16, u16_at as rd16};
use packet::checksum;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Most frames queued before the queue is flushed (and most messages per
/// `sendmmsg`).
const TX_QUEUE: usize = 64;
/// Bytes of queued frames: 64 MTU-sized frames (jumbo frames flush
/// earlier). Allocated on first use, so idle ports cost nothing.
const TX_ARENA: usize = 128 * 1024;
/// Larger frames are sent at once (GSO super-packets, jumbo frames).
const TX_COPY_MAX: usize = 9216 + 64;
/// The kernel's `UDP_MAX_SEGMENTS` (64 since 4.18, raised later).
const USO_MAX_SEGS: usize = 64;
/// Outer Ethernet + IPv4 (no options) + UDP.
const USO_HDR: usize = 14 + 20 + 8;
const PROTO_UDP: u8 = 17;

#[derive(Clone, Copy, Debug)]
pub struct AfPacketOptions {
    /// Receive frames for any MAC (VM ports: the container talks to the
    /// vRouter's MAC, not the host veth's).
    pub promisc: bool,
    /// Carry virtio-net headers (`PACKET_VNET_HDR`).
    pub vnet_hdr: bool,
    /// Socket buffer sizes (set with the *FORCE variants as root).
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Queue plain frames until [`Port::flush`] and send them with one
    /// `sendmmsg` (false: one `sendmsg` per frame, at once).
    pub tx_batch: bool,
    /// Merge runs of overlay UDP frames into UDP GSO super-packets (needs
    /// `vnet_hdr` and `tx_batch`).
    pub tunnel_uso: bool,
    /// Put 802.1Q tags the kernel took out of the data (VLAN offload, as
    /// veth does for a VLAN device on its peer) back in the frame, from
    /// `PACKET_AUXDATA`: the datapath demultiplexes VLAN sub-interfaces
    /// on them. Without it a tagged frame arrives untagged.
    pub vlan_tags: bool,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            promisc: true,
            vnet_hdr: true,
            rcvbuf: 4 << 20,
            sndbuf: 4 << 20,
            tx_batch: true,
            tunnel_uso: true,
            vlan_tags: false,
        }
    }
}

pub struct AfPacketPort {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    vnet: bool,
    /// `PACKET_AUXDATA` is on: offloaded VLAN tags go back in the frame.
    vlan_tags: bool,
    stats: PortStats,
    kernel_drops: Cell<u64>,
    tx: TxQueue,
    tx_batch: bool,
    uso: bool,
    /// Queued frames that could not be sent, reported by the next flush.
    tx_dropped: usize,
    uso_sent: u64,
    uso_frames: u64,
    /// The device's transmit offloads, as last read.
    feat: TxFeatures,
    /// The device's MTU when the port opened.
    mtu: Option<u16>,
    /// Scratch for segments of a super-packet the device refused.
    seg_buf: Vec<u8>,
}

/// One queued frame: `arena[off..off + len]`.
#[derive(Clone, Copy)]
struct TxEntry {
    off: usize,
    len: usize,
    vnet: VnetHdr,
}

struct TxQueue {
    arena: Box<[u8]>,
    used: usize,
    entries: Vec<TxEntry>,
}

impl TxQueue {
    fn new() -> TxQueue {
        TxQueue {
            arena: Box::default(),
            used: 0,
            entries: Vec::with_capacity(TX_QUEUE),
        }
    }

    fn frame(&self, e: &TxEntry) -> &[u8] {
        self.arena.get(e.off..e.off + e.len).unwrap_or(&[])
    }

    fn fits(&self, len: usize) -> bool {
        self.entries.len() < TX_QUEUE && self.used + len <= TX_ARENA
    }

    /// Copy `head` + `body` in (the caller checked [`TxQueue::fits`]).
    fn push(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> bool {
        if self.arena.is_empty() {
            self.arena = vec![0u8; TX_ARENA].into_boxed_slice();
        }
        let off = self.used;
        let len = head.len() + body.len();
        let Some(dst) = self.arena.get_mut(off..off + len) else {
            return false;
        };
        let (h, b) = dst.split_at_mut(head.len());
        h.copy_from_slice(head);
        b.copy_from_slice(body);
        self.used += len;
        self.entries.push(TxEntry {
            off,
            len,
            vnet: *vnet,
        });
        true
    }

    fn clear(&mut self) {
        self.used = 0;
        self.entries.clear();
    }
}

/// The UDP payload length of `f` if it is an overlay datagram that may join
/// a USO run: untagged IPv4 without options, not a fragment, no padding,
/// UDP to the MPLSoUDP or VXLAN port, a non-empty payload.
fn uso_candidate(f: &[u8]) -> Option<usize> {
    if f.len() <= USO_HDR || rd16(f, 12)? != 0x0800 || *f.get(14)? != 0x45 {
        return None;
    }
    if *f.get(23)? != PROTO_UDP || rd16(f, 20)? & 0x3fff != 0 {
        return None;
    }
    if rd16(f, 16)? as usize != f.len() - 14 || rd16(f, 38)? as usize != f.len() - 34 {
        return None;
    }
    if !matches!(rd16(f, 36)?, 6635 | 4789) {
        return None;
    }
    Some(f.len() - USO_HDR)
}

/// `a` and `b` belong to one outer flow: equal Ethernet header, TOS, DF,
/// TTL, addresses and ports.
fn same_outer(a: &[u8], b: &[u8]) -> bool {
    let df = |f: &[u8]| rd16(f, 20).map(|v| v & 0x4000);
    a.get(..16) == b.get(..16)
        && df(a) == df(b)
        && a.get(22..24) == b.get(22..24)
        && a.get(26..38) == b.get(26..38)
}

/// Length of the USO run of `frames` starting at the first one (1: no run):
/// candidates of one outer flow, all of the first one's payload size except
/// possibly the last, within the kernel's segment and 64 KB limits.
fn uso_run<'a>(mut frames: impl Iterator<Item = (&'a [u8], VnetHdr)>) -> usize {
    let Some((first, vh)) = frames.next() else {
        return 0;
    };
    let Some(size) = uso_candidate(first).filter(|_| vh == VnetHdr::NONE) else {
        return 1;
    };
    let mut n = 1;
    let mut total = size;
    for (f, vh) in frames {
        if n == USO_MAX_SEGS || vh != VnetHdr::NONE || !same_outer(first, f) {
            break;
        }
        let Some(p) = uso_candidate(f).filter(|p| *p <= size) else {
            break;
        };
        if total + p > 65535 - 28 {
            break;
        }
        total += p;
        n += 1;
        if p < size {
            break;
        }
    }
    n
}

/// The outer header and virtio header of the USO super-packet carrying
/// `segs` datagrams of `total` payload bytes, the first being `first`.
fn uso_header(first: &[u8], segs: usize, total: usize) -> Option<([u8; USO_HDR], VnetHdr)> {
    let mut h: [u8; USO_HDR] = first.get(..USO_HDR)?.try_into().ok()?;
    let size = first.len() - USO_HDR;
    if segs < 2 || total <= size {
        return None;
    }
    let udp_len = u16::try_from(8 + total).ok()?;
    wr16(&mut h, 16, u16::try_from(28 + total).ok()?)?;
    let c = checksum::ipv4_header_checksum(h.get(14..34)?);
    wr16(&mut h, 24, c)?;
    wr16(&mut h, 38, udp_len)?;
    // A partial checksum holds the pseudo-header sum; the kernel adjusts
    // its length per segment.
    let src: [u8; 4] = h.get(26..30)?.try_into().ok()?;
    let dst: [u8; 4] = h.get(30..34)?.try_into().ok()?;
    wr16(
        &mut h,
        40,
        checksum::pseudo_header_v4(&src, &dst, PROTO_UDP, udp_len),
    )?;
    let vh = VnetHdr {
        flags: flags::NEEDS_CSUM,
        gso_type: gso::UDP_L4,
        hdr_len: USO_HDR as u16,
        gso_size: u16::try_from(size).ok()?,
        csum_start: 34,
        csum_offset: 6,
    };
    Some((h, vh))
}

impl AfPacketPort {
    /// Open a packet socket on interface `name` in the caller's network
    /// namespace.
    pub fn open(name: &str, opts: AfPacketOptions) -> io::Result<AfPacketPort> {
        let ifindex = sys::ifindex(name)?;
        // Protocol 0 until bound: no frames from other interfaces sneak in.
        // SAFETY: plain socket(2).
        let fd = sys::owned(unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        })?;
        let one: libc::c_int = 1;
        if opts.vnet_hdr {
            sys::setsockopt(&fd, libc::SOL_PACKET, sys::PACKET_VNET_HDR, &one)?;
        }
        if opts.vlan_tags {
            sys::setsockopt(&fd, libc::SOL_PACKET, sys::PACKET_AUXDATA, &one)?;
        }
        // Our own transmissions (and the host stack's) are not input.
        sys::setsockopt(&fd, libc::SOL_PACKET, sys::PACKET_IGNORE_OUTGOING, &one)?;
        // Skip the qdisc layer on send (veth has none; NICs: like DPDK).
        let _ = sys::setsockopt(&fd, libc::SOL_PACKET, sys::PACKET_QDISC_BYPASS, &one);
        for (force, plain, v) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, opts.rcvbuf),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, opts.sndbuf),
        ] {
            let v = libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
            if sys::setsockopt(&fd, libc::SOL_SOCKET, force, &v).is_err() {
                let _ = sys::setsockopt(&fd, libc::SOL_SOCKET, plain, &v);
            }
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        sys::cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        if opts.promisc {
            // Membership, not IFF_PROMISC: the kernel drops it with the socket.
            let mr = PacketMreq {
                mr_ifindex: ifindex as i32,
                mr_type: sys::PACKET_MR_PROMISC,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            sys::setsockopt(&fd, libc::SOL_PACKET, sys::PACKET_ADD_MEMBERSHIP, &mr)?;
        }
        let feat = if opts.vnet_hdr {
            sys::tx_features(name).unwrap_or_else(|e| {
                tracing::warn!(port = name, error = %e, "cannot read the device's offloads; sending plain frames");
                TxFeatures::default()
            })
        } else {
            TxFeatures::default()
        };
        Ok(AfPacketPort {
            fd,
            name: name.to_string(),
            ifindex,
            vnet: opts.vnet_hdr,
            vlan_tags: opts.vlan_tags,
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
            tx: TxQueue::new(),
            tx_batch: opts.tx_batch,
            uso: opts.tunnel_uso && opts.vnet_hdr && opts.tx_batch && feat.csum && feat.uso,
            tx_dropped: 0,
            uso_sent: 0,
            uso_frames: 0,
            feat,
            mtu: sys::mtu_of(name).ok(),
            seg_buf: Vec::new(),
        })
    }

    /// What the device takes now (see the module docs).
    fn current_offloads(&self) -> Offloads {
        let f = &self.feat;
        let csum = self.vnet && f.csum;
        let o = Offloads {
            vnet_hdr: self.vnet,
            tx_gso: false,
            tso4: csum && f.tso4,
            tso6: csum && f.tso6,
            uso: csum && f.uso,
        };
        Offloads {
            tx_gso: o.tso4 || o.tso6 || o.uso,
            ..o
        }
    }

    /// Send a super-packet the device does not take as plain segments
    /// (queued like any frame), and count it.
    fn send_segmented(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut frame = std::mem::take(&mut self.seg_buf);
        frame.clear();
        frame.extend_from_slice(head);
        frame.extend_from_slice(body);
        let g = match Gso::new(&frame, vnet) {
            Ok(g) => g,
            Err(e) => {
                self.seg_buf = frame;
                self.stats.tx_errors += 1;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        };
        let mut out = vec![0u8; g.hdr_len + g.mss];
        let mut sent = 0u64;
        let mut result = Ok(());
        for i in 0..g.segs {
            match g.write_segment(&frame, i, false, &mut out) {
                Ok(n) => {
                    let seg = out.get(..n).unwrap_or(&[]);
                    if let Err(e) = self.send(&VnetHdr::NONE, &[], seg) {
                        result = Err(e);
                    } else {
                        sent += 1;
                    }
                }
                Err(e) => {
                    self.stats.tx_errors += 1;
                    result = Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
        self.seg_buf = frame;
        self.stats.gso_fallback += 1;
        self.stats.gso_fallback_segments += sent;
        result
    }

    /// One `sendmsg` of `head` + `body`, now.
    fn send_now(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        let h = vnet.emit();
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: if self.vnet { VNET_HDR_LEN } else { 0 },
            },
            libc::iovec {
                iov_base: head.as_ptr() as *mut libc::c_void,
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: body.as_ptr() as *mut libc::c_void,
                iov_len: body.len(),
            },
        ];
        // SAFETY: msghdr is plain old data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len();
        // SAFETY: the iovecs point at live buffers the kernel only reads.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
        match sys::cvt_size(r) {
            Ok(_) => {
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(e) => {
                self.stats.tx_errors += 1;
                Err(e)
            }
        }
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// UDP GSO super-packets sent, and the frames they carried.
    pub fn uso_stats(&self) -> (u64, u64) {
        (self.uso_sent, self.uso_frames)
    }

    /// Split the queue from entry `start` into at most [`TX_QUEUE`]
    /// messages: single frames, or USO runs with their header.
    fn plan(&self, start: usize, plan: &mut [Msg; TX_QUEUE]) -> usize {
        let q = &self.tx;
        let mut m = 0;
        let mut i = start;
        while let (Some(e), Some(slot)) = (q.entries.get(i), plan.get_mut(m)) {
            let mut msg = Msg {
                first: i,
                count: 1,
                uso: None,
            };
            if self.uso {
                let rest = q.entries.get(i..).unwrap_or(&[]);
                let cnt = uso_run(rest.iter().map(|e| (q.frame(e), e.vnet)));
                let total: usize = rest
                    .iter()
                    .take(cnt)
                    .map(|e| e.len.saturating_sub(USO_HDR))
                    .sum();
                if cnt > 1 {
                    if let Some(h) = uso_header(q.frame(e), cnt, total) {
                        msg.count = cnt;
                        msg.uso = Some(h);
                    }
                }
            }
            i += msg.count;
            *slot = msg;
            m += 1;
        }
        m
    }

    /// Send the queue: up to [`TX_QUEUE`] messages per `sendmmsg`. A
    /// message the kernel refuses is dropped (and counted) and the rest
    /// still go. A refused USO message instead turns USO off for good and
    /// its frames go again as plain frames: `EINVAL`/`EOPNOTSUPP` (no UDP
    /// GSO in this kernel) or `ENOBUFS` (with `PACKET_QDISC_BYPASS` the
    /// kernel drops a GSO skb the device cannot take, instead of
    /// segmenting it). Bounded: every round sends or drops at least one
    /// message, or turns USO off.
    fn flush_queue(&mut self) {
        let n = self.tx.entries.len();
        let mut start = 0;
        let mut plan = [Msg::default(); TX_QUEUE];
        while start < n {
            let m = self.plan(start, &mut plan);
            let msgs = plan.get(..m).unwrap_or(&[]);
            match self.send_plan(msgs) {
                Ok(k) => {
                    // Resume after the last message sent (k >= 1).
                    if let Some(last) = msgs.get(k.saturating_sub(1)) {
                        start = last.first + last.count;
                    }
                }
                Err(e) => {
                    let Some(first) = msgs.first() else {
                        break;
                    };
                    let refused = matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOBUFS)
                    );
                    if first.uso.is_some() && refused {
                        tracing::warn!(port = %self.name, error = %e,
                            "UDP GSO refused; sending plain frames from now on");
                        self.uso = false;
                        continue;
                    }
                    tracing::trace!(port = %self.name, error = %e, frames = first.count, "tx failed");
                    self.stats.tx_errors += first.count as u64;
                    self.tx_dropped += first.count;
                    start = first.first + first.count;
                }
            }
        }
        self.tx.clear();
    }

    /// One `sendmmsg` of the planned messages; how many were sent (>= 1),
    /// or the error of the first.
    fn send_plan(&mut self, plan: &[Msg]) -> io::Result<usize> {
        const NO_IOV: libc::iovec = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        // Per message: virtio header, then the frame, or the USO header
        // and every datagram's payload: at most 2 * TX_QUEUE + entries.
        let mut iov = [NO_IOV; 3 * TX_QUEUE];
        let mut vhs = [[0u8; VNET_HDR_LEN]; TX_QUEUE];
        // SAFETY: mmsghdr is plain old data; zero is valid.
        let mut msgs: [libc::mmsghdr; TX_QUEUE] = unsafe { std::mem::zeroed() };
        // Where each message's iovecs start in `iov`.
        let mut bases = [0usize; TX_QUEUE];
        let hl = if self.vnet { VNET_HDR_LEN } else { 0 };
        let q = &self.tx;
        let mut used = 0;
        for (((msg, vh), m), b) in plan
            .iter()
            .zip(vhs.iter_mut())
            .zip(msgs.iter_mut())
            .zip(bases.iter_mut())
        {
            let entries = q
                .entries
                .get(msg.first..msg.first + msg.count)
                .unwrap_or(&[]);
            let Some(e0) = entries.first() else {
                break;
            };
            *b = used;
            let mut push = |p: *const u8, len: usize| {
                if let Some(slot) = iov.get_mut(used) {
                    *slot = libc::iovec {
                        iov_base: p as *mut libc::c_void,
                        iov_len: len,
                    };
                    used += 1;
                }
            };
            match &msg.uso {
                Some((h, v)) => {
                    *vh = v.emit();
                    push(vh.as_ptr(), hl);
                    push(h.as_ptr(), USO_HDR);
                    for e in entries {
                        let p = q.frame(e).get(USO_HDR..).unwrap_or(&[]);
                        push(p.as_ptr(), p.len());
                    }
                }
                None => {
                    let f = q.frame(e0);
                    *vh = e0.vnet.emit();
                    push(vh.as_ptr(), hl);
                    push(f.as_ptr(), f.len());
                }
            }
            m.msg_hdr.msg_iovlen = used - *b;
        }
        // Pointers into `iov` last: it is not written any more.
        for (m, &base) in msgs.iter_mut().zip(bases.iter()).take(plan.len()) {
            if let Some(slot) = iov.get_mut(base) {
                m.msg_hdr.msg_iov = slot;
            }
        }
        // SAFETY: every message points at iovecs inside `iov` over buffers
        // (`vhs`, the plan's headers, the queue arena) that outlive the
        // call and that the kernel only reads; `plan.len()` <= the array
        // lengths.
        let r = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                plan.len().min(TX_QUEUE) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let k = sys::cvt(r)? as usize;
        for msg in plan.iter().take(k) {
            self.stats.tx_frames += msg.count as u64;
            if msg.uso.is_some() {
                self.uso_sent += 1;
                self.uso_frames += msg.count as u64;
            }
        }
        if k == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(k)
    }
}

/// One message of a flush: `count` queued frames from `first`, sent as one
/// USO super-packet with `uso`'s header, or a single frame.
#[derive(Clone, Copy, Default)]
struct Msg {
    first: usize,
    count: usize,
    uso: Option<([u8; USO_HDR], VnetHdr)>,
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // Whatever is still queued goes out before the socket closes.
        if !self.tx.entries.is_empty() {
            self.flush_queue();
        }
    }
}

/// The VLAN tag (TPID, TCI) the kernel took out of a received frame, from
/// its `PACKET_AUXDATA` control message.
fn offloaded_vlan(h: &libc::msghdr) -> Option<(u16, u16)> {
    if h.msg_control.is_null() {
        return None;
    }
    // SAFETY: `h` is a msghdr the kernel filled by recvmmsg, its control
    // buffer live and `msg_controllen` bytes long; the CMSG macros stay
    // inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == sys::PACKET_AUXDATA {
                let a: libc::tpacket_auxdata = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if a.tp_status & sys::TP_STATUS_VLAN_VALID == 0 {
                    return None;
                }
                let tpid = if a.tp_status & sys::TP_STATUS_VLAN_TPID_VALID != 0 {
                    a.tp_vlan_tpid
                } else {
                    0x8100
                };
                return Some((tpid, a.tp_vlan_tci));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Put a tag back after the MACs of the frame in `slot` (the offload
/// offsets of the frame move with it). False if it does not fit.
fn reinsert_tag(slot: &mut RxSlot, tpid: u16, tci: u16) -> bool {
    let len = slot.len;
    let area = slot.frame_area();
    if len < 12 || len + 4 > area.len() {
        return false;
    }
    area.copy_within(12..len, 16);
    area[12..14].copy_from_slice(&tpid.to_be_bytes());
    area[14..16].copy_from_slice(&tci.to_be_bytes());
    slot.len = len + 4;
    if slot.vnet.needs_csum() {
        slot.vnet.csum_start = slot.vnet.csum_start.saturating_add(4);
    }
    if slot.vnet.is_gso() {
        slot.vnet.hdr_len = slot.vnet.hdr_len.saturating_add(4);
    }
    true
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize> {
        let n = slots.len().min(MAX_BATCH);
        let hl = if self.vnet { VNET_HDR_LEN } else { 0 };
        let mut vh = [[0u8; VNET_HDR_LEN]; MAX_BATCH];
        // SAFETY: iovec and mmsghdr are plain old data; zero is valid.
        let mut iov: [[libc::iovec; 2]; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        // Room for one `tpacket_auxdata` control message per frame.
        let mut ctl = [[0u64; 8]; MAX_BATCH];
        for (((slot, (h, io)), m), c) in slots
            .iter_mut()
            .zip(vh.iter_mut().zip(iov.iter_mut()))
            .zip(msgs.iter_mut())
            .zip(ctl.iter_mut())
            .take(n)
        {
            if self.vlan_tags {
                m.msg_hdr.msg_control = c.as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = std::mem::size_of_val(c) as _;
            }
            let area = slot.frame_area();
            io[0] = libc::iovec {
                iov_base: h.as_mut_ptr().cast(),
                iov_len: hl,
            };
            io[1] = libc::iovec {
                iov_base: area.as_mut_ptr().cast(),
                iov_len: area.len(),
            };
            m.msg_hdr.msg_iov = io.as_mut_ptr();
            m.msg_hdr.msg_iovlen = 2;
        }
        // SAFETY: every msg points at iovecs over live buffers that outlive
        // the call; `n` <= the array lengths.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        for ((slot, h), m) in slots.iter_mut().zip(vh.iter()).zip(msgs.iter()).take(got) {
            let total = m.msg_len as usize;
            self.stats.rx_frames += 1;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || total < hl + 14 {
                slot.len = 0;
                self.stats.rx_truncated += 1;
                continue;
            }
            slot.len = total - hl;
            slot.vnet = if self.vnet {
                VnetHdr::parse(h)
            } else {
                VnetHdr::NONE
            };
            if self.vlan_tags {
                if let Some((tpid, tci)) = offloaded_vlan(&m.msg_hdr) {
                    if !reinsert_tag(slot, tpid, tci) {
                        slot.len = 0;
                        self.stats.rx_truncated += 1;
                    }
                }
            }
        }
        Ok(got)
    }

    fn send(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        let len = head.len() + body.len();
        if vnet.is_gso() {
            if !self.current_offloads().accepts(vnet) {
                return self.send_segmented(vnet, head, body);
            }
            self.flush_queue();
            return match self.send_now(vnet, head, body) {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOBUFS | libc::EINVAL | libc::EOPNOTSUPP)
                    ) =>
                {
                    // The device's offloads changed under us: read them
                    // again, and send this one as plain segments.
                    self.stats.tx_errors = self.stats.tx_errors.saturating_sub(1);
                    self.refresh_offloads();
                    tracing::info!(port = %self.name, error = %e, offloads = ?self.current_offloads(),
                        "GSO frame refused by the device; sending plain segments");
                    self.send_segmented(vnet, head, body)
                }
                r => r,
            };
        }
        if !self.tx_batch || len > TX_COPY_MAX {
            self.flush_queue();
            return self.send_now(vnet, head, body);
        }
        if !self.tx.fits(len) {
            self.flush_queue();
        }
        if self.tx.push(vnet, head, body) {
            Ok(())
        } else {
            self.send_now(vnet, head, body)
        }
    }

    fn flush(&mut self) -> usize {
        if !self.tx.entries.is_empty() {
            self.flush_queue();
        }
        std::mem::take(&mut self.tx_dropped)
    }

    fn poll_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }

    fn offloads(&self) -> Offloads {
        self.current_offloads()
    }

    fn refresh_offloads(&mut self) -> Offloads {
        if self.vnet {
            if let Ok(f) = sys::tx_features(&self.name) {
                if f != self.feat {
                    tracing::info!(port = %self.name, before = ?self.feat, now = ?f, "device offloads changed");
                }
                self.feat = f;
            }
        }
        self.current_offloads()
    }

    fn os_index(&self) -> Option<u32> {
        Some(self.ifindex)
    }

    fn mtu(&self) -> Option<u16> {
        self.mtu
    }

    fn clear_kernel_drops(&mut self) {
        // Reading resets the kernel's counters.
        let _ = self.stats();
        self.kernel_drops.set(0);
    }

    fn stats(&self) -> PortStats {
        // PACKET_STATISTICS resets the kernel's counters on every read.
        if let Ok(s) = sys::getsockopt::<TpacketStats>(
            self.fd.as_raw_fd(),
            libc::SOL_PACKET,
            sys::PACKET_STATISTICS,
        ) {
            self.kernel_drops
                .set(self.kernel_drops.get() + u64::from(s.tp_drops));
        }
        PortStats {
            kernel_drops: self.kernel_drops.get(),
            ..self.stats
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::vnet::Gso;

    /// An outer Ethernet/IPv4/UDP frame to `dport` with `payload` bytes
    /// (pattern seeded by `seed`), IP id `id`, UDP checksum 0 as the core
    /// writes tunnels.
    fn frame(sport: u16, dport: u16, payload: usize, id: u16, seed: u8) -> Vec<u8> {
        let mut f = vec![0u8; USO_HDR + payload];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((28 + payload) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&id.to_be_bytes());
        f[22] = 64;
        f[23] = PROTO_UDP;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[192, 0, 2, 2]);
        let c = checksum::ipv4_header_checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[38..40].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        for (i, b) in f[USO_HDR..].iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        f
    }

    fn run_of(frames: &[Vec<u8>]) -> usize {
        uso_run(frames.iter().map(|f| (f.as_slice(), VnetHdr::NONE)))
    }

    #[test]
    fn candidates_are_plain_overlay_udp() {
        assert_eq!(uso_candidate(&frame(50000, 6635, 100, 1, 0)), Some(100));
        assert_eq!(uso_candidate(&frame(50000, 4789, 100, 1, 0)), Some(100));
        assert_eq!(uso_candidate(&frame(50000, 53, 100, 1, 0)), None);
        assert_eq!(uso_candidate(&frame(50000, 6635, 0, 1, 0)), None);
        let mut f = frame(50000, 6635, 100, 1, 0);
        f[20] = 0x20; // more fragments
        assert_eq!(uso_candidate(&f), None);
        let mut f = frame(50000, 6635, 100, 1, 0);
        f[14] = 0x46; // IP options
        assert_eq!(uso_candidate(&f), None);
        let mut f = frame(50000, 6635, 100, 1, 0);
        f.push(0); // padding after the IP packet
        assert_eq!(uso_candidate(&f), None);
        let mut f = frame(50000, 6635, 100, 1, 0);
        f[23] = 6;
        assert_eq!(uso_candidate(&f), None);
        let mut f = frame(50000, 6635, 100, 1, 0);
        f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        assert_eq!(uso_candidate(&f), None);
        assert_eq!(uso_candidate(&[0u8; 10]), None);
    }

    #[test]
    fn runs_follow_flow_size_and_limits() {
        let same = |n: usize, p: usize| -> Vec<Vec<u8>> {
            (0..n).map(|i| frame(50000, 6635, p, i as u16, 0)).collect()
        };
        assert_eq!(run_of(&[]), 0);
        assert_eq!(run_of(&same(1, 100)), 1);
        assert_eq!(run_of(&same(5, 100)), 5);
        // A shorter datagram ends the run (it is the last segment).
        let mut v = same(3, 100);
        v.push(frame(50000, 6635, 40, 9, 0));
        v.push(frame(50000, 6635, 100, 9, 0));
        assert_eq!(run_of(&v), 4);
        // A longer one cannot follow.
        let mut v = same(2, 100);
        v.push(frame(50000, 6635, 101, 9, 0));
        assert_eq!(run_of(&v), 2);
        // Another outer flow (source port) or overlay breaks it.
        let mut v = same(2, 100);
        v.push(frame(50001, 6635, 100, 9, 0));
        assert_eq!(run_of(&v), 2);
        let mut v = same(2, 100);
        v.push(frame(50000, 4789, 100, 9, 0));
        assert_eq!(run_of(&v), 2);
        let mut v = same(2, 100);
        v[1][22] = 63; // TTL
        assert_eq!(run_of(&v), 1);
        // A non-candidate first frame is sent alone.
        let mut v = same(3, 100);
        v[0][36..38].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(run_of(&v), 1);
        // Offload metadata on a frame breaks it.
        let v = same(3, 100);
        let gso = VnetHdr {
            flags: flags::NEEDS_CSUM,
            ..VnetHdr::NONE
        };
        let n = uso_run(
            v.iter()
                .enumerate()
                .map(|(i, f)| (f.as_slice(), if i == 2 { gso } else { VnetHdr::NONE })),
        );
        assert_eq!(n, 2);
        // The kernel's segment limit and the 64 KB IP limit.
        assert_eq!(run_of(&same(100, 10)), USO_MAX_SEGS);
        assert_eq!(run_of(&same(60, 1400)), (65535 - 28) / 1400);
    }

    /// The super-packet, cut the way the kernel's UDP GSO cuts it (here by
    /// the crate's own software GSO), gives back the original datagrams
    /// (apart from the IP id sequence and the now computed UDP checksum).
    #[test]
    fn header_describes_the_original_datagrams() {
        let mut v: Vec<Vec<u8>> = (0..5)
            .map(|i| frame(50000, 6635, 1000, 7, i as u8))
            .collect();
        v.push(frame(50000, 6635, 333, 7, 99));
        assert_eq!(run_of(&v), 6);
        let total: usize = v.iter().map(|f| f.len() - USO_HDR).sum();
        let (h, vh) = uso_header(&v[0], v.len(), total).unwrap();
        assert_eq!(vh.gso_type, gso::UDP_L4);
        assert_eq!(vh.gso_size, 1000);
        assert_eq!((vh.csum_start, vh.csum_offset), (34, 6));
        assert!(checksum::verify(&h[14..34]), "IP header checksum");
        assert_eq!(u16::from_be_bytes([h[16], h[17]]) as usize, 28 + total);
        assert_eq!(u16::from_be_bytes([h[38], h[39]]) as usize, 8 + total);
        let pseudo = checksum::pseudo_header_v4(
            &[192, 0, 2, 1],
            &[192, 0, 2, 2],
            PROTO_UDP,
            (8 + total) as u16,
        );
        assert_eq!(u16::from_be_bytes([h[40], h[41]]), pseudo);
        let mut sup = h.to_vec();
        for f in &v {
            sup.extend_from_slice(&f[USO_HDR..]);
        }
        let g = Gso::new(&sup, &vh).unwrap();
        assert_eq!(g.segs, v.len());
        for (i, orig) in v.iter().enumerate() {
            let mut out = vec![0u8; 2048];
            let n = g.write_segment(&sup, i, false, &mut out).unwrap();
            let mut seg = out[..n].to_vec();
            assert_eq!(u16::from_be_bytes([seg[18], seg[19]]), 7 + i as u16);
            assert!(checksum::verify(&seg[14..34]));
            // Mask what legitimately differs: id (+ header checksum), UDP
            // checksum.
            for b in [18, 19, 24, 25, 40, 41] {
                seg[b] = 0;
            }
            let mut o = orig.clone();
            for b in [18, 19, 24, 25, 40, 41] {
                o[b] = 0;
            }
            assert_eq!(seg, o, "segment {i}");
        }
        // One datagram, or a total not above one segment: no super-packet.
        assert!(uso_header(&v[0], 1, 1000).is_none());
        assert!(uso_header(&v[0], 2, 1000).is_none());
    }
}
