//! Small-packet UDP rate for the performance harness: a `sendmmsg` flooder
//! and a `recvmmsg` counter (iperf3's UDP sender tops out far below what
//! the paths under test forward here).
//!
//! ```text
//! pps recv --bind IP:PORT --secs S   # counts for S s after the first packet
//! pps send --dst IP:PORT --secs S [--payload N]
//! ```
//!
//! Both are bounded: the sender stops after `S` seconds; the receiver gives
//! up `S + 10` s after starting if nothing arrives, and stops counting `S`
//! seconds after the first packet. The default 18-byte payload makes
//! 60-byte Ethernet frames (64 with the FCS): the classic "64-byte" rate.
//! Each prints one line: `sent N packets in T s: R pps` / `received ...`.

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = pps::main() {
        eprintln!("pps: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("pps: Linux only");
}

#[cfg(target_os = "linux")]
mod pps {
    use clap::{Parser, Subcommand};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    const BATCH: usize = 64;

    #[derive(Parser, Debug)]
    struct Args {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand, Debug)]
    enum Cmd {
        Send {
            #[arg(long)]
            dst: SocketAddr,
            #[arg(long, default_value_t = 5)]
            secs: u64,
            #[arg(long, default_value_t = 18)]
            payload: usize,
        },
        Recv {
            #[arg(long)]
            bind: SocketAddr,
            #[arg(long, default_value_t = 5)]
            secs: u64,
        },
    }

    pub fn main() -> Result<(), String> {
        match Args::parse().cmd {
            Cmd::Send { dst, secs, payload } => send(dst, secs, payload.clamp(1, 1472)),
            Cmd::Recv { bind, secs } => recv(bind, secs),
        }
    }

    fn send(dst: SocketAddr, secs: u64, payload: usize) -> Result<(), String> {
        let bind: SocketAddr = if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .map_err(|e| format!("{e}"))?;
        let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        s.connect(dst).map_err(|e| e.to_string())?;
        let buf = vec![0x5au8; payload];
        // SAFETY: iovec and mmsghdr are plain old data; zero is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            *v = libc::iovec {
                iov_base: buf.as_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut sent: u64 = 0;
        while Instant::now() < end {
            // SAFETY: the messages point at `iov`/`buf`, alive for the call.
            let r = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if r > 0 {
                sent += r as u64;
            } else {
                // ENOBUFS/ECONNREFUSED (an ICMP error came back): go on.
                std::thread::yield_now();
            }
        }
        let t = t0.elapsed().as_secs_f64();
        println!(
            "sent {sent} packets in {t:.2} s: {:.0} pps",
            sent as f64 / t
        );
        Ok(())
    }

    fn recv(bind: SocketAddr, secs: u64) -> Result<(), String> {
        let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let size: libc::c_int = 8 << 20;
        // SAFETY: valid option pointer and size; FORCE needs root, the
        // plain option is the fallback.
        unsafe {
            for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
                let r = libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
                if r == 0 {
                    break;
                }
            }
        }
        let mut bufs = vec![[0u8; 2048]; BATCH];
        // SAFETY: as above.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let started = Instant::now();
        let give_up = started + Duration::from_secs(secs + 10);
        let mut first: Option<Instant> = None;
        let mut last = started;
        let mut got: u64 = 0;
        loop {
            let now = Instant::now();
            match first {
                Some(f) if now >= f + Duration::from_secs(secs) => break,
                None if now >= give_up => break,
                _ => {}
            }
            for ((m, v), b) in msgs.iter_mut().zip(iov.iter_mut()).zip(bufs.iter_mut()) {
                *v = libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: the messages point at live buffers; the socket's
            // receive timeout bounds the wait.
            let r = unsafe {
                libc::recvmmsg(
                    s.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if r > 0 {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                got += r as u64;
            }
        }
        let t = first
            .map(|f| last.duration_since(f).as_secs_f64())
            .unwrap_or(0.0);
        let rate = if t > 0.0 { got as f64 / t } else { 0.0 };
        println!("received {got} packets in {t:.2} s: {rate:.0} pps");
        Ok(())
    }
}
