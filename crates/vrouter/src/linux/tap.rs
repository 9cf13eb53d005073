//! TAP port (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`): an
//! interface the datapath creates and owns, e.g. a vhost-like host
//! interface. The device lives as long as the port (not persistent).

use super::sys;
use crate::port::{Offloads, Port, PortStats, RxSlot};
use crate::vnet::{VnetHdr, VNET_HDR_LEN};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

pub struct TapPort {
    fd: OwnedFd,
    name: String,
    stats: PortStats,
}

impl TapPort {
    /// Create (or attach to a persistent) TAP device `name` and bring it up.
    pub fn create(name: &str) -> io::Result<TapPort> {
        // SAFETY: open(2) of a constant path.
        let fd = sys::owned(unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        let mut ifr = sys::ifreq(name)?;
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        let hdr_sz = VNET_HDR_LEN as libc::c_int;
        // The offloads we accept from the kernel: partial checksums and TCP
        // GSO (UDP GSO is asked for separately: older kernels refuse it).
        let base = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: the tun ioctls read `ifr`/integers that are live here.
        unsafe {
            sys::cvt(libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr))?;
            sys::cvt(libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr_sz))?;
            let with_uso = base | libc::TUN_F_USO4 | libc::TUN_F_USO6;
            if libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                with_uso as libc::c_ulong,
            ) < 0
            {
                sys::cvt(libc::ioctl(
                    fd.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    base as libc::c_ulong,
                ))?;
            }
        }
        let name = sys::ifreq_name(&ifr);
        sys::set_up(&name)?;
        Ok(TapPort {
            fd,
            name,
            stats: PortStats::default(),
        })
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize> {
        let mut n = 0;
        for slot in slots.iter_mut() {
            let mut h = [0u8; VNET_HDR_LEN];
            let area = slot.frame_area();
            let iov = [
                libc::iovec {
                    iov_base: h.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: area.as_mut_ptr().cast(),
                    iov_len: area.len(),
                },
            ];
            // SAFETY: both iovecs point at live, writable buffers.
            let r = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            let total = match sys::cvt_size(r) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            self.stats.rx_frames += 1;
            if total < VNET_HDR_LEN + 14 {
                slot.len = 0;
                self.stats.rx_truncated += 1;
            } else {
                slot.len = total - VNET_HDR_LEN;
                slot.vnet = VnetHdr::parse(&h);
            }
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        let h = vnet.emit();
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: VNET_HDR_LEN,
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
        // SAFETY: the iovecs point at live buffers the kernel only reads.
        let r = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 3) };
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
        // The kernel builds (and, if it must, segments) what is written
        // to a TAP device itself.
        Offloads::ALL
    }

    fn os_index(&self) -> Option<u32> {
        sys::ifindex(&self.name).ok()
    }

    fn mtu(&self) -> Option<u16> {
        sys::mtu_of(&self.name).ok()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
