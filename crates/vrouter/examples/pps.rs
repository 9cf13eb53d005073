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
//!
//! ```text
//! pps syn --dst IP:PORT --secs S [--rate R]        # TCP SYNs, each a new flow
//! pps count-syn --iface IF --port PORT --secs S    # SYNs to PORT.. seen on IF
//! ```
//!
//! `syn` sends bare TCP SYNs from a raw socket, every one from a new
//! (source port, destination port) pair (from pair `--first` on), so every SYN is the first packet
//! of a new flow: at most `R` per second, for `S` seconds. `count-syn` counts
//! SYNs to destination ports `PORT..PORT+16` arriving on interface `IF`
//! (AF_PACKET), from the first one for `S` seconds. Together: new flows per
//! second through a datapath that must set each one up.

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
        Syn {
            #[arg(long)]
            dst: std::net::SocketAddrV4,
            #[arg(long, default_value_t = 2)]
            secs: u64,
            /// SYNs per second at most.
            #[arg(long, default_value_t = 100_000)]
            rate: u64,
            /// Index of the first (source port, destination port) pair, so
            /// that successive runs send new flows.
            #[arg(long, default_value_t = 0)]
            first: u32,
        },
        CountSyn {
            #[arg(long)]
            iface: String,
            #[arg(long)]
            port: u16,
            #[arg(long, default_value_t = 2)]
            secs: u64,
        },
    }

    pub fn main() -> Result<(), String> {
        match Args::parse().cmd {
            Cmd::Send { dst, secs, payload } => send(dst, secs, payload.clamp(1, 1472)),
            Cmd::Recv { bind, secs } => recv(bind, secs),
            Cmd::Syn {
                dst,
                secs,
                rate,
                first,
            } => syn(dst, secs, rate.max(1), first),
            Cmd::CountSyn { iface, port, secs } => count_syn(&iface, port, secs),
        }
    }

    /// Destination ports used by `syn`: 60 000 source ports each.
    const SYN_PORTS: u32 = 16;
    const SYN_SPORTS: u32 = 60_000;

    fn csum_fold(mut s: u32) -> u16 {
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn syn(dst: std::net::SocketAddrV4, secs: u64, rate: u64, first: u32) -> Result<(), String> {
        // The source address the kernel will use towards dst.
        let probe = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        probe.connect(dst).map_err(|e| e.to_string())?;
        let std::net::IpAddr::V4(src) = probe.local_addr().map_err(|e| e.to_string())?.ip() else {
            return Err("IPv4 only".into());
        };
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) };
        if fd < 0 {
            return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: sockaddr_in is plain old data.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes(dst.ip().octets());
        let (s, d) = (src.octets(), dst.ip().octets());
        // Pseudo-header + fixed part of the header, summed once.
        let mut base: u32 = 0;
        for w in [s, d] {
            base += u32::from(u16::from_be_bytes([w[0], w[1]]));
            base += u32::from(u16::from_be_bytes([w[2], w[3]]));
        }
        base += 6 + 20; // protocol, TCP length
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut sent: u64 = 0;
        let mut i: u32 = first;
        let mut seg = [0u8; 20];
        while Instant::now() < end {
            // Pace in 1 ms slices.
            let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let sport = 1024 + (i % SYN_SPORTS) as u16;
            let dport = dst.port() + ((i / SYN_SPORTS) % SYN_PORTS) as u16;
            i = i.wrapping_add(1);
            seg[0..2].copy_from_slice(&sport.to_be_bytes());
            seg[2..4].copy_from_slice(&dport.to_be_bytes());
            seg[4..8].copy_from_slice(&i.to_be_bytes()); // sequence
            seg[12] = 5 << 4; // data offset
            seg[13] = 0x02; // SYN
            seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
            seg[16..18].copy_from_slice(&[0, 0]);
            let mut sum = base;
            for c in seg.chunks_exact(2) {
                sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
            seg[16..18].copy_from_slice(&csum_fold(sum).to_be_bytes());
            // SAFETY: seg and sa are live for the call.
            let r = unsafe {
                libc::sendto(
                    fd,
                    seg.as_ptr().cast(),
                    seg.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            if r > 0 {
                sent += 1;
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
        let t = t0.elapsed().as_secs_f64();
        println!(
            "sent {sent} packets in {t:.2} s: {:.0} pps",
            sent as f64 / t
        );
        Ok(())
    }

    fn count_syn(iface: &str, port: u16, secs: u64) -> Result<(), String> {
        let name = std::ffi::CString::new(iface).map_err(|e| e.to_string())?;
        // SAFETY: plain calls with valid arguments.
        let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if idx == 0 {
            return Err(format!("{iface}: no such interface"));
        }
        let proto = (libc::ETH_P_IP as u16).to_be();
        // SAFETY: as above.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
        if fd < 0 {
            return Err(format!(
                "packet socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = proto;
        ll.sll_ifindex = idx as i32;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        let size: libc::c_int = 16 << 20;
        // SAFETY: valid pointers and sizes.
        unsafe {
            if libc::bind(
                fd,
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(format!("bind: {}", std::io::Error::last_os_error()));
            }
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        // The counter is the measurement's, not the datapath's, but it runs
        // in the softirq of whoever delivers to IF (the datapath's send):
        // keep it to the SYNs. Not the packets IF sends (the RSTs to the
        // SYNs), and only TCP SYNs of unfragmented IPv4 queued (the offsets
        // start at the IP header on a SOCK_DGRAM packet socket).
        let filter = [
            bpf(0x30, 0, 0, 9),      // ldb [9]: protocol
            bpf(0x15, 0, 7, 6),      // jeq #6 (TCP), else drop
            bpf(0x28, 0, 0, 6),      // ldh [6]: fragment offset
            bpf(0x45, 5, 0, 0x1fff), // jset #0x1fff: drop fragments
            bpf(0xb1, 0, 0, 0),      // ldxb 4*([0]&0xf): IP header length
            bpf(0x50, 0, 0, 13),     // ldb [x+13]: TCP flags
            bpf(0x54, 0, 0, 0x12),   // and #(SYN|ACK)
            bpf(0x15, 0, 1, 0x02),   // jeq #SYN, else drop
            bpf(0x06, 0, 0, 128),    // ret #128
            bpf(0x06, 0, 0, 0),      // ret #0
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        let one: libc::c_int = 1;
        // SAFETY: valid pointers and sizes; `filter` outlives the call
        // (the kernel copies the program).
        unsafe {
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as u32,
            ) != 0
            {
                return Err(format!("filter: {}", std::io::Error::last_os_error()));
            }
            // Best effort (Linux 4.20 and later); the filter drops RSTs anyway.
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        let mut bufs = vec![[0u8; 128]; BATCH];
        // SAFETY: as above.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let started = Instant::now();
        let give_up = started + Duration::from_secs(secs + 10);
        let mut first: Option<Instant> = None;
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
            // SAFETY: the messages point at live buffers; SO_RCVTIMEO
            // bounds the wait.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BATCH as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            for (m, b) in msgs.iter().zip(bufs.iter()).take(r.max(0) as usize) {
                let n = (m.msg_len as usize).min(b.len());
                let p = &b[..n];
                if n < 20 || p[9] != 6 {
                    continue;
                }
                let l4 = usize::from(p[0] & 0x0f) * 4;
                let Some(t) = p.get(l4..l4 + 14) else {
                    continue;
                };
                let dport = u16::from_be_bytes([t[2], t[3]]);
                if t[13] & 0x12 == 0x02 && dport.wrapping_sub(port) < SYN_PORTS as u16 {
                    first.get_or_insert_with(Instant::now);
                    got += 1;
                }
            }
        }
        // SAFETY: our fd.
        unsafe { libc::close(fd) };
        let t = first
            .map(|f| f.elapsed().as_secs_f64().min(secs as f64))
            .unwrap_or(0.0);
        let rate = if t > 0.0 { got as f64 / t } else { 0.0 };
        println!("received {got} packets in {t:.2} s: {rate:.0} pps");
        Ok(())
    }

    fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
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
