//! pkt0 datagram transport over real sockets / named pipes.

mod common;

use std::time::Duration;

use channels::pkt0::PKT0_MAX_FRAME;
use channels::{Error, Pkt0Agent, Pkt0Datapath};
use common::{frame, paths, within};

/// Frame sizes that cross the interesting limits: minimum Ethernet + agent
/// header, MTU, > 4 KiB (the first read of a Windows pipe), jumbo, maximum.
const SIZES: [usize; 7] = [9000, 60, 1514, 44, 4097, 1, PKT0_MAX_FRAME];

#[tokio::test]
async fn frames_both_ways_keep_their_boundaries() {
    let (_d, p) = paths();
    let mut dp = Pkt0Datapath::bind(&p).unwrap();
    let mut agent = Pkt0Agent::bind(&p).unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];

    // Agent -> datapath, back to back, while the datapath reads (on
    // Windows the datapath accepts the agent inside `recv`).
    let sent: Vec<Vec<u8>> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(n, i as u8))
        .collect();
    let tx = async {
        for f in &sent {
            agent.send(f).await.unwrap();
        }
    };
    let rx = async {
        let mut got = Vec::new();
        for _ in &sent {
            let n = dp.recv(&mut buf).await.unwrap();
            got.push(buf[..n].to_vec());
        }
        got
    };
    let ((), got) = within(async { tokio::join!(tx, rx) }).await;
    assert_eq!(got, sent);

    // Datapath -> agent; the first frame is bigger than 4 KiB.
    let sent: Vec<Vec<u8>> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(n, 0x80 | i as u8))
        .collect();
    let mut abuf = vec![0u8; PKT0_MAX_FRAME];
    let sender = dp.sender();
    let tx = async {
        for f in &sent {
            sender.send(f).await.unwrap();
        }
    };
    let rx = async {
        let mut got = Vec::new();
        for _ in &sent {
            let n = agent.recv(&mut abuf).await.unwrap();
            got.push(abuf[..n].to_vec());
        }
        got
    };
    let ((), got) = within(async { tokio::join!(tx, rx) }).await;
    assert_eq!(got, sent);
}

#[tokio::test]
async fn absent_peer_is_a_typed_error() {
    let (_d, p) = paths();
    {
        let dp = Pkt0Datapath::bind(&p).unwrap();
        let e = within(dp.send(&frame(64, 1))).await.unwrap_err();
        assert!(e.is_peer_not_present(), "{e}");
    }
    let agent = Pkt0Agent::bind(&p).unwrap();
    let e = within(agent.send(&frame(64, 2))).await.unwrap_err();
    assert!(matches!(e, Error::PeerNotPresent { .. }), "{e}");
}

#[tokio::test]
async fn frame_limits() {
    let (_d, p) = paths();
    let mut dp = Pkt0Datapath::bind(&p).unwrap();
    let agent = Pkt0Agent::bind(&p).unwrap();
    assert!(matches!(
        agent.send(&[]).await,
        Err(Error::FrameTooLarge { len: 0, .. })
    ));
    assert!(matches!(
        agent.send(&vec![0; PKT0_MAX_FRAME + 1]).await,
        Err(Error::FrameTooLarge { .. })
    ));
    // A frame longer than the caller's buffer is dropped with an error;
    // the next one arrives intact.
    within(agent.send(&frame(2000, 1))).await.unwrap();
    within(agent.send(&frame(100, 2))).await.unwrap();
    let mut small = [0u8; 1000];
    assert!(matches!(
        within(dp.recv(&mut small)).await,
        Err(Error::BufferTooSmall {
            len: 2000,
            cap: 1000
        })
    ));
    let n = within(dp.recv(&mut small)).await.unwrap();
    assert_eq!(&small[..n], &frame(100, 2)[..]);
}

#[tokio::test]
async fn agent_follows_a_datapath_restart() {
    let (_d, p) = paths();
    let mut agent = Pkt0Agent::bind(&p).unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];
    for round in 0..2u8 {
        let mut dp = Pkt0Datapath::bind(&p).unwrap();
        within(agent.send(&frame(300, round))).await.unwrap();
        let n = within(dp.recv(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], &frame(300, round)[..]);
        within(dp.send(&frame(5000, round))).await.unwrap();
        let n = within(agent.recv(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], &frame(5000, round)[..]);
        drop(dp);
        // Gone: the agent learns it on a send. On Linux the next one; a
        // Windows pipe write completes in the background, so a frame sent
        // right after the datapath left may be lost silently and a later
        // send reports it.
        within(async {
            loop {
                match agent.send(&frame(10, 9)).await {
                    Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) if e.is_peer_not_present() => break,
                    Err(e) => panic!("round {round}: {e}"),
                }
            }
        })
        .await;
    }
}

#[tokio::test]
async fn agent_waits_for_a_late_datapath() {
    let (_d, p) = paths();
    let mut agent = Pkt0Agent::bind(&p).unwrap();
    let waiting = tokio::spawn(async move {
        let mut buf = vec![0u8; PKT0_MAX_FRAME];
        let n = agent.recv(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut dp = Pkt0Datapath::bind(&p).unwrap();
    let want = frame(1500, 7);
    within(async {
        // On Windows the agent connects within its retry period; the
        // datapath notices the connection when it sends or receives.
        loop {
            match dp.send(&want).await {
                Ok(()) => break,
                Err(e) if e.is_peer_not_present() => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(within(waiting).await.unwrap(), want);
    // The datapath keeps serving afterwards.
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), dp.recv(&mut buf))
            .await
            .is_err()
    );
}

/// The runtime-free API of the Linux endpoints: a datapath packet loop on
/// a plain thread, and back-pressure from a full agent queue.
#[cfg(unix)]
#[test]
fn unix_nonblocking_without_runtime() {
    let (_d, p) = paths();
    let dp = Pkt0Datapath::bind(&p).unwrap();
    assert!(matches!(
        dp.try_send(&frame(64, 0)),
        Err(Error::PeerNotPresent { .. })
    ));
    let agent = Pkt0Agent::bind(&p).unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];
    assert_eq!(dp.try_recv(&mut buf).unwrap(), None);

    let loop_thread = std::thread::spawn(move || {
        // Echo 100 frames back, polling.
        let mut buf = vec![0u8; PKT0_MAX_FRAME];
        let mut echoed = 0;
        while echoed < 100 {
            match dp.try_recv(&mut buf).unwrap() {
                Some(n) => loop {
                    match dp.try_send(&buf[..n]) {
                        Ok(()) => {
                            echoed += 1;
                            break;
                        }
                        Err(Error::WouldBlock { .. }) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                },
                None => std::thread::yield_now(),
            }
        }
        dp
    });
    let mut got = 0;
    let mut sent = 0;
    while got < 100 {
        if sent < 100 {
            match agent.try_send(&frame(100 + sent, sent as u8)) {
                Ok(()) => sent += 1,
                Err(Error::WouldBlock { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        if let Some(n) = agent.try_recv(&mut buf).unwrap() {
            assert_eq!(&buf[..n], &frame(100 + got, got as u8)[..]);
            got += 1;
        }
    }
    let dp = loop_thread.join().unwrap();

    // Fill the agent's queue: the datapath gets WouldBlock, not a block.
    let mut queued = 0;
    loop {
        match dp.try_send(&frame(1000, 1)) {
            Ok(()) => queued += 1,
            Err(Error::WouldBlock { .. }) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(queued < 100_000, "queue never filled");
    }
    // An async send waits for room instead.
    let mut read = 0;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dp = &dp;
        let last = frame(77, 7);
        let send = dp.send(&last);
        tokio::pin!(send);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut send)
                .await
                .is_err(),
            "send should wait while the queue is full"
        );
        // Make room (a socket whose peer follows it reports room once
        // most of its send buffer is free), and the send completes.
        within(async {
            loop {
                tokio::select! {
                    biased;
                    r = &mut send => break r.unwrap(),
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
                if agent.try_recv(&mut buf).unwrap().is_some() {
                    read += 1;
                }
            }
        })
        .await;
    });
    let mut n = read;
    while let Some(len) = agent.try_recv(&mut buf).unwrap() {
        n += 1;
        if len == 77 {
            assert_eq!(n, queued + 1, "the waited-for frame comes last");
        }
    }
    assert_eq!(n, queued + 1);
}

#[cfg(unix)]
#[test]
fn unix_socket_files() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, p) = paths();
    let dp = Pkt0Datapath::bind(&p).unwrap();
    assert_eq!(
        std::fs::metadata(&p.pkt0_datapath)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(matches!(
        Pkt0Datapath::bind(&p),
        Err(Error::AddrInUse { .. })
    ));
    drop(dp);
    assert!(!p.pkt0_datapath.exists());
    // A stale socket file is replaced.
    drop(std::os::unix::net::UnixDatagram::bind(&p.pkt0_agent).unwrap());
    assert!(p.pkt0_agent.exists());
    let _agent = Pkt0Agent::bind(&p).unwrap();
}

/// `net.unix.max_dgram_qlen`: how many datagrams a unix socket queues from
/// a sender it does not follow.
#[cfg(unix)]
fn dgram_qlen() -> usize {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10)
}

/// A batch send stops where the agent's queue is full (a partial
/// `sendmmsg`), reports how many went, and the rest go later, in order.
/// Once the agent has received a frame it follows the datapath's socket and
/// its queue takes far more than `max_dgram_qlen`.
#[cfg(unix)]
#[test]
fn unix_batches_partial_sends_and_a_deeper_queue_once_followed() {
    let (_d, p) = paths();
    let dp = Pkt0Datapath::bind(&p).unwrap();
    let agent = Pkt0Agent::bind(&p).unwrap();
    let qlen = dgram_qlen();
    let frames: Vec<Vec<u8>> = (0..600).map(|i| frame(60 + i % 200, i as u8)).collect();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];

    // Not followed yet: one batch stops at the socket's queue limit.
    let first = dp.try_send_many(frames.iter().map(Vec::as_slice)).unwrap();
    assert!(
        first < channels::pkt0::SEND_BATCH,
        "{first} of a batch went"
    );
    assert!(first <= qlen + 1, "{first} queued, limit {qlen}");
    assert!(matches!(
        dp.try_send_many(frames[first..].iter().map(Vec::as_slice)),
        Err(Error::WouldBlock { .. })
    ));

    // The agent reads them (and follows the sender from the first).
    let mut got = Vec::new();
    while let Some(n) = agent.try_recv(&mut buf).unwrap() {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got.len(), first);

    // Now many more queue before the agent reads.
    let mut sent = first;
    while sent < frames.len() {
        match dp.try_send_many(frames[sent..].iter().map(Vec::as_slice)) {
            Ok(n) => sent += n,
            Err(Error::WouldBlock { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        sent - first > 10 * qlen,
        "only {} queued while followed",
        sent - first
    );
    // The rest goes as the agent reads; everything arrives whole, in order.
    while got.len() < frames.len() {
        if sent < frames.len() {
            match dp.try_send_many(frames[sent..].iter().map(Vec::as_slice)) {
                Ok(n) => sent += n,
                Err(Error::WouldBlock { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        while let Some(n) = agent.try_recv(&mut buf).unwrap() {
            got.push(buf[..n].to_vec());
        }
    }
    assert_eq!(got, frames);

    // A frame too big for pkt0 is refused at the head of a batch only;
    // the frames before it go.
    let big = vec![0u8; PKT0_MAX_FRAME + 1];
    let batch = [&frames[0][..], &frames[1][..], &big[..]];
    assert_eq!(dp.try_send_many(batch).unwrap(), 2);
    assert!(matches!(
        dp.try_send_many([&big[..]]),
        Err(Error::FrameTooLarge { .. })
    ));
}

/// The agent follows the datapath's socket; a restarted datapath (a new
/// socket) is refused (`WouldBlock`) until the agent looks again, which
/// its waiting `recv` does by itself within its refresh period.
#[cfg(unix)]
#[tokio::test]
async fn unix_agent_hears_a_restarted_datapath_again() {
    let (_d, p) = paths();
    let mut agent = Pkt0Agent::bind(&p).unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];
    let dp = Pkt0Datapath::bind(&p).unwrap();
    dp.try_send(&frame(100, 1)).unwrap();
    let n = within(agent.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], &frame(100, 1)[..]);
    drop(dp);

    // By hand: refused until `refresh_peer`.
    let dp = Pkt0Datapath::bind(&p).unwrap();
    assert!(matches!(
        dp.try_send(&frame(100, 2)),
        Err(Error::WouldBlock { .. })
    ));
    agent.refresh_peer();
    dp.try_send(&frame(100, 2)).unwrap();
    let n = within(agent.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], &frame(100, 2)[..]);
    drop(dp);

    // By itself: the waiting receive looks again.
    let dp = Pkt0Datapath::bind(&p).unwrap();
    let started = std::time::Instant::now();
    let sender = std::thread::spawn(move || loop {
        match dp.try_send(&frame(100, 3)) {
            Ok(()) => return dp,
            Err(Error::WouldBlock { .. }) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    });
    let n = within(agent.recv(&mut buf)).await.unwrap();
    assert_eq!(&buf[..n], &frame(100, 3)[..]);
    assert!(started.elapsed() < Duration::from_secs(2));
    let _dp = sender.join().unwrap();
}
