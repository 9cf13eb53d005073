//! AF_PACKET receive: `recvmmsg` (what `AfPacketPort` does) against a
//! TPACKET_V3 ring, on a veth pair in a private network namespace.
//!
//! `cargo run --release -p vrouter --example rx_bench` as root. Prints, for
//! each reader, the receive rate under a flood of 60-byte frames and the
//! one-way latency of frames sent every 2 ms. Bounded: 400k frames, 200
//! latency samples, a few seconds; the namespace is deleted at the end.

#[cfg(target_os = "linux")]
fn main() {
    bench::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP: Linux only");
}

#[cfg(target_os = "linux")]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod bench {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use vrouter::linux::{enter_netns, AfPacketOptions, AfPacketPort};
    use vrouter::{Port, RxSlot, VnetHdr};

    const FLOOD: usize = 400_000;
    const SAMPLES: usize = 200;

    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    fn ip(args: &[&str]) {
        assert!(
            Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        );
    }

    /// A frame to the broadcast MAC with `t` (ns since `base`) inside.
    fn frame(t: u64) -> [u8; 60] {
        let mut f = [0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f[14..22].copy_from_slice(&t.to_ne_bytes());
        f
    }

    fn stamp(f: &[u8]) -> Option<u64> {
        if f.len() < 22 || f[12..14] != 0x88b5u16.to_be_bytes() {
            return None;
        }
        Some(u64::from_ne_bytes(f[14..22].try_into().ok()?))
    }

    /// The sender: `count` frames, as fast as possible or every `gap`.
    fn send(base: Instant, count: usize, gap: Option<Duration>) {
        let mut tx = AfPacketPort::open(
            "va",
            AfPacketOptions {
                vnet_hdr: false,
                promisc: false,
                // One frame per send: the latency samples are timed.
                tx_batch: false,
                ..AfPacketOptions::default()
            },
        )
        .unwrap();
        for _ in 0..count {
            let f = frame(base.elapsed().as_nanos() as u64);
            while tx.send(&VnetHdr::NONE, &[], &f).is_err() {
                std::thread::yield_now();
            }
            if let Some(g) = gap {
                std::thread::sleep(g);
            }
        }
    }

    trait Reader {
        /// Deliver received frames to `f`; wait at most ~10 ms.
        fn read(&mut self, f: &mut dyn FnMut(&[u8]));
    }

    struct Mmsg {
        port: AfPacketPort,
        slots: Vec<RxSlot>,
    }

    impl Reader for Mmsg {
        fn read(&mut self, f: &mut dyn FnMut(&[u8])) {
            let mut pfd = libc::pollfd {
                fd: self.port.poll_fd().unwrap(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 10) };
            let n = self.port.recv_batch(&mut self.slots).unwrap();
            for s in &self.slots[..n] {
                f(s.frame());
            }
        }
    }

    /// A minimal TPACKET_V3 RX ring reader.
    struct Ring {
        fd: OwnedFd,
        map: *mut u8,
        block_size: usize,
        blocks: usize,
        cur: usize,
    }

    const PACKET_RX_RING: i32 = 5;
    const PACKET_VERSION: i32 = 10;
    const TPACKET_V3: i32 = 2;

    impl Ring {
        fn open(ifname: &str, tov_ms: u32) -> Ring {
            // SAFETY: plain socket/setsockopt/bind/mmap calls on values we own.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                assert!(fd >= 0);
                let fd = OwnedFd::from_raw_fd(fd);
                let v: i32 = TPACKET_V3;
                let r = libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_VERSION,
                    (&v as *const i32).cast(),
                    4,
                );
                assert_eq!(r, 0);
                let (block_size, blocks) = (1usize << 20, 8usize);
                // block_size, block_nr, frame_size, frame_nr, retire_blk_tov, sizeof_priv, feature_req_word
                let req: [u32; 7] = [
                    block_size as u32,
                    blocks as u32,
                    2048,
                    (block_size / 2048 * blocks) as u32,
                    tov_ms,
                    0,
                    0,
                ];
                let r = libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_RX_RING,
                    req.as_ptr().cast(),
                    28,
                );
                assert_eq!(r, 0, "PACKET_RX_RING: {}", std::io::Error::last_os_error());
                let map = libc::mmap(
                    std::ptr::null_mut(),
                    block_size * blocks,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_LOCKED,
                    fd.as_raw_fd(),
                    0,
                );
                assert_ne!(
                    map,
                    libc::MAP_FAILED,
                    "mmap: {}",
                    std::io::Error::last_os_error()
                );
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
                sll.sll_ifindex = vrouter::linux::sys::ifindex(ifname).unwrap() as i32;
                let r = libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(r, 0);
                Ring {
                    fd,
                    map: map.cast(),
                    block_size,
                    blocks,
                    cur: 0,
                }
            }
        }
    }

    impl Drop for Ring {
        fn drop(&mut self) {
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(self.map.cast(), self.block_size * self.blocks) };
        }
    }

    impl Reader for Ring {
        fn read(&mut self, f: &mut dyn FnMut(&[u8])) {
            // SAFETY: offsets come from the kernel's block and frame
            // headers inside our mapping; status words are read volatile.
            unsafe {
                let blk = self.map.add(self.cur * self.block_size);
                let status = blk.add(8).cast::<u32>();
                if std::ptr::read_volatile(status) & 1 == 0 {
                    let mut pfd = libc::pollfd {
                        fd: self.fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    libc::poll(&mut pfd, 1, 10);
                    if std::ptr::read_volatile(status) & 1 == 0 {
                        return;
                    }
                }
                std::sync::atomic::fence(Ordering::Acquire);
                let num = std::ptr::read(blk.add(12).cast::<u32>());
                let mut off = std::ptr::read(blk.add(16).cast::<u32>()) as usize;
                for _ in 0..num {
                    let h = blk.add(off);
                    let next = std::ptr::read(h.cast::<u32>()) as usize;
                    let snap = std::ptr::read(h.add(12).cast::<u32>()) as usize;
                    let mac = std::ptr::read(h.add(24).cast::<u16>()) as usize;
                    f(std::slice::from_raw_parts(h.add(mac), snap));
                    off += next;
                }
                std::sync::atomic::fence(Ordering::Release);
                std::ptr::write_volatile(status, 0);
                self.cur = (self.cur + 1) % self.blocks;
            }
        }
    }

    fn run(name: &str, mut r: Box<dyn Reader>) {
        let base = Instant::now();
        // Flood.
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let sender = std::thread::spawn(move || {
            send(base, FLOOD, None);
            d2.store(true, Ordering::Release);
        });
        let t0 = Instant::now();
        let mut got = 0usize;
        let mut quiet = Instant::now();
        let deadline = t0 + Duration::from_secs(20);
        while Instant::now() < deadline {
            let before = got;
            r.read(&mut |f| {
                if stamp(f).is_some() {
                    got += 1;
                }
            });
            if got != before {
                quiet = Instant::now();
            } else if done.load(Ordering::Acquire) && quiet.elapsed() > Duration::from_millis(100) {
                break;
            }
        }
        let secs = (quiet - t0).as_secs_f64();
        sender.join().unwrap();
        // Latency at a low rate.
        let sender =
            std::thread::spawn(move || send(base, SAMPLES, Some(Duration::from_millis(2))));
        let mut lat = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while lat.len() < SAMPLES && Instant::now() < deadline {
            r.read(&mut |f| {
                if let Some(t) = stamp(f) {
                    lat.push(base.elapsed().as_nanos() as u64 - t);
                }
            });
        }
        sender.join().unwrap();
        lat.sort_unstable();
        let pct = |p: usize| lat.get(lat.len() * p / 100).copied().unwrap_or(0) as f64 / 1000.0;
        println!(
            "{name:>22}: flood {got}/{FLOOD} frames, {:.0} kpps; latency median {:.1} us, p99 {:.1} us ({} samples)",
            got as f64 / secs / 1000.0,
            pct(50),
            pct(99),
            lat.len()
        );
    }

    pub fn main() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: needs root");
            return;
        }
        let ns = Ns(format!("vrtbench{}", std::process::id()));
        ip(&["netns", "add", &ns.0]);
        ip(&[
            "-n", &ns.0, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", &ns.0, "link", "set", "va", "up"]);
        ip(&["-n", &ns.0, "link", "set", "vb", "up"]);
        let name = ns.0.clone();
        std::thread::spawn(move || {
            enter_netns(&name).unwrap();
            let opts = AfPacketOptions {
                promisc: false,
                ..AfPacketOptions::default()
            };
            let mmsg = Mmsg {
                port: AfPacketPort::open("vb", opts).unwrap(),
                slots: (0..32).map(|_| RxSlot::default()).collect(),
            };
            run("recvmmsg x32", Box::new(mmsg));
            run("TPACKET_V3 tov 1 ms", Box::new(Ring::open("vb", 1)));
            run("TPACKET_V3 tov 8 ms", Box::new(Ring::open("vb", 8)));
        })
        .join()
        .unwrap();
    }
}
