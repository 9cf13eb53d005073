//! AF_PACKET port bound to one interface, read with `recvmmsg` and written
//! with `sendmsg`, with `PACKET_VNET_HDR` offload metadata.
//!
//! Why not a TPACKET_V3 ring: both copy each frame once from the skb (into
//! the ring or into our buffer), and the ring only saves the per-batch
//! syscall, but a V3 block is handed to user space when full or when its
//! retire timer (1 ms at least) fires, which puts 0.5-3 ms on every packet
//! at low rates; V2 avoids that but needs 64 KB fixed frames for GSO
//! super-packets. `recvmmsg` of up to 32 frames per call gives per-packet
//! wake-ups at low rate and one syscall per 32 frames under load
//! (measurements in the crate docs).

use super::sys::{self, PacketMreq, TpacketStats};
use crate::port::{Offloads, Port, PortStats, RxSlot, MAX_BATCH};
use crate::vnet::{VnetHdr, VNET_HDR_LEN};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

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
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            promisc: true,
            vnet_hdr: true,
            rcvbuf: 4 << 20,
            sndbuf: 4 << 20,
        }
    }
}

pub struct AfPacketPort {
    fd: OwnedFd,
    name: String,
    ifindex: u32,
    vnet: bool,
    stats: PortStats,
    kernel_drops: Cell<u64>,
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
        Ok(AfPacketPort {
            fd,
            name: name.to_string(),
            ifindex,
            vnet: opts.vnet_hdr,
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
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
        for ((slot, (h, io)), m) in slots
            .iter_mut()
            .zip(vh.iter_mut().zip(iov.iter_mut()))
            .zip(msgs.iter_mut())
            .take(n)
        {
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
        }
        Ok(got)
    }

    fn send(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
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

    fn poll_fd(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }

    fn offloads(&self) -> Offloads {
        Offloads {
            vnet_hdr: self.vnet,
            tx_gso: self.vnet,
        }
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
