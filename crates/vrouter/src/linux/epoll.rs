//! [`Poller`] over epoll, woken by an eventfd.

use super::sys;
use crate::port::{Poller, Port, Waker};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

const WAKE_TOKEN: u64 = u64::MAX;

struct EventFd(OwnedFd);

impl Waker for EventFd {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. EAGAIN (counter
        // saturated) still leaves it readable, which is all we need.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }
}

pub struct EpollPoller {
    ep: OwnedFd,
    wake: Arc<EventFd>,
    events: Vec<libc::epoll_event>,
}

impl EpollPoller {
    pub fn new() -> io::Result<EpollPoller> {
        // SAFETY: plain syscalls returning new descriptors.
        let ep = sys::owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let efd = sys::owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        let p = EpollPoller {
            ep,
            wake: Arc::new(EventFd(efd)),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
        };
        p.ctl(libc::EPOLL_CTL_ADD, p.wake.0.as_raw_fd(), WAKE_TOKEN)?;
        Ok(p)
    }

    fn ctl(&self, op: libc::c_int, fd: i32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is live; the kernel copies it.
        sys::cvt(unsafe { libc::epoll_ctl(self.ep.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }
}

impl Poller for EpollPoller {
    fn add(&mut self, port: &dyn Port, token: u64) -> io::Result<()> {
        let fd = port.poll_fd().ok_or_else(|| {
            io::Error::new(io::ErrorKind::Unsupported, "port has no descriptor to poll")
        })?;
        self.ctl(libc::EPOLL_CTL_ADD, fd, token)
    }

    fn remove(&mut self, port: &dyn Port) -> io::Result<()> {
        match port.poll_fd() {
            Some(fd) => self.ctl(libc::EPOLL_CTL_DEL, fd, 0),
            None => Ok(()),
        }
    }

    fn wait(&mut self, ready: &mut Vec<u64>, timeout: Duration) -> io::Result<()> {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `events` has the capacity we pass.
        let n = sys::cvt(unsafe {
            libc::epoll_wait(
                self.ep.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                ms,
            )
        })?;
        for ev in self.events.iter().take(n as usize) {
            let tok = ev.u64;
            if tok == WAKE_TOKEN {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 (non-blocking).
                unsafe {
                    libc::read(self.wake.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
                }
            } else {
                ready.push(tok);
            }
        }
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.wake.clone()
    }
}
