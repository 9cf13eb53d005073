//! ksync stream transport over real sockets / named pipes.

mod common;

use std::time::Duration;

use channels::ksync::{NlMsgHdr, KSYNC_MAX_MSG};
use channels::{Error, KsyncConn, KsyncListener};
use common::{msg, paths, within};

async fn pair(l: &mut KsyncListener) -> (KsyncConn, KsyncConn) {
    let addr = l.local_addr().to_owned();
    let (s, c) = within(async { tokio::join!(l.accept(), KsyncConn::connect(&addr)) }).await;
    (s.expect("accept"), c.expect("connect"))
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn batches_and_split_writes_arrive_whole_and_in_order() {
    let (_d, p) = paths();
    let mut l = KsyncListener::bind(&p.ksync).unwrap();
    let (mut server, mut client) = pair(&mut l).await;

    let m: Vec<Vec<u8>> = [20, 16, 333, 48, 64, 1000, 40, 200_000, 17]
        .iter()
        .enumerate()
        .map(|(i, &len)| msg(len, i as u32))
        .collect();

    // The reader runs alongside: a pipe buffers only 64 KiB, so the
    // 200 KB message cannot be written ahead of it.
    let writer = async {
        // Three messages in one write.
        client.send_all(&m[0..3]).await.unwrap();
        // Two messages joined in one buffer, one `send`.
        client
            .send(&[m[3].clone(), m[4].clone()].concat())
            .await
            .unwrap();
        // A message split inside its header, then one split in its body,
        // sharing a write with the end of the previous one.
        client.write_raw(&m[5][..10]).await.unwrap();
        pause().await;
        client.write_raw(&m[5][10..]).await.unwrap();
        client.write_raw(&m[6][..20]).await.unwrap();
        pause().await;
        client
            .write_raw(&[&m[6][20..], &m[7][..70_000]].concat())
            .await
            .unwrap();
        pause().await;
        client
            .write_raw(&[&m[7][70_000..], &m[8][..]].concat())
            .await
            .unwrap();
    };
    let reader = async {
        for (i, want) in m.iter().enumerate() {
            let got = server.recv().await.unwrap().expect("message");
            assert_eq!(&got[..], &want[..], "message {i}");
            assert_eq!(NlMsgHdr::parse(&got).unwrap().seq, i as u32);
        }
    };
    within(async { tokio::join!(writer, reader) }).await;

    // Replies the other way, a batch in one write.
    let replies = [msg(24, 100), msg(16, 101)];
    server.send_all(&replies).await.unwrap();
    for r in &replies {
        assert_eq!(&within(client.recv()).await.unwrap().unwrap()[..], &r[..]);
    }

    // A clean close between messages is `None`, repeatedly.
    drop(client);
    assert!(within(server.recv()).await.unwrap().is_none());
    assert!(within(server.recv()).await.unwrap().is_none());
}

#[tokio::test]
async fn bad_length_closes_the_receive_side_but_not_the_send_side() {
    let (_d, p) = paths();
    let mut l = KsyncListener::bind(&p.ksync).unwrap();

    // Undersize.
    let (mut server, mut client) = pair(&mut l).await;
    let mut bad = msg(24, 1);
    bad[..4].copy_from_slice(&8u32.to_ne_bytes());
    client.write_raw(&bad).await.unwrap();
    match within(server.recv()).await {
        Err(Error::BadLength {
            len: 8,
            min: 16,
            max,
        }) => assert_eq!(max, KSYNC_MAX_MSG),
        other => panic!("want BadLength, got {other:?}"),
    }
    assert!(matches!(
        within(server.recv()).await,
        Err(Error::Desynchronized)
    ));
    // The datapath can still answer before closing.
    let reply = msg(32, 9);
    server.send(&reply).await.unwrap();
    assert_eq!(
        &within(client.recv()).await.unwrap().unwrap()[..],
        &reply[..]
    );

    // Oversize: rejected from the header alone, nothing allocated or
    // awaited for the announced 2 MiB.
    let (mut server, mut client) = pair(&mut l).await;
    let mut big = msg(16, 2);
    big[..4].copy_from_slice(&(2u32 << 20).to_ne_bytes());
    client.write_raw(&big).await.unwrap();
    assert!(matches!(
        within(server.recv()).await,
        Err(Error::BadLength { len, .. }) if len == 2 << 20
    ));
    assert!(matches!(
        within(server.recv()).await,
        Err(Error::Desynchronized)
    ));
    drop(client);

    // Closed inside a message.
    let (mut server, mut client) = pair(&mut l).await;
    client.write_raw(&msg(100, 3)[..60]).await.unwrap();
    drop(client);
    assert!(matches!(
        within(server.recv()).await,
        Err(Error::Truncated { have: 60 })
    ));
}

#[tokio::test]
async fn send_checks_framing_before_writing() {
    let (_d, p) = paths();
    let mut l = KsyncListener::bind(&p.ksync).unwrap();
    let (mut server, mut client) = pair(&mut l).await;

    let good = msg(20, 1);
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        client.send(&trailing).await,
        Err(Error::BadMessage { .. })
    ));
    assert!(matches!(
        client.send(&[]).await,
        Err(Error::BadMessage { .. })
    ));
    assert!(matches!(
        client.send_all(&[good.clone(), good[..10].to_vec()]).await,
        Err(Error::BadMessage { .. })
    ));
    let mut tiny = good.clone();
    tiny[..4].copy_from_slice(&4u32.to_ne_bytes());
    assert!(matches!(
        client.send(&tiny).await,
        Err(Error::BadLength { .. })
    ));
    // None of that reached the wire.
    client.send(&good).await.unwrap();
    assert_eq!(
        &within(server.recv()).await.unwrap().unwrap()[..],
        &good[..]
    );
}

#[tokio::test]
async fn several_clients_and_split_halves() {
    let (_d, p) = paths();
    let mut l = KsyncListener::bind(&p.ksync).unwrap();
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(pair(&mut l).await);
    }
    for (i, (s, c)) in conns.iter_mut().enumerate() {
        c.send(&msg(30 + i as u32, i as u32)).await.unwrap();
        let got = within(s.recv()).await.unwrap().unwrap();
        assert_eq!(NlMsgHdr::parse(&got).unwrap().seq, i as u32);
        s.send(&got).await.unwrap();
        assert_eq!(within(c.recv()).await.unwrap().unwrap(), got);
    }

    // Halves: a writer task pipelines while the reader collects.
    let (server, client) = conns.pop().unwrap();
    let (mut sr, mut sw) = server.into_split();
    let (mut cr, mut cw) = client.into_split();
    let echo = tokio::spawn(async move {
        while let Some(m) = sr.recv().await.unwrap() {
            sw.send(&m).await.unwrap();
        }
    });
    let sent: Vec<Vec<u8>> = (0..50).map(|i| msg(16 + i * 3, i)).collect();
    for chunk in sent.chunks(7) {
        cw.send_all(chunk).await.unwrap();
    }
    for want in &sent {
        assert_eq!(&within(cr.recv()).await.unwrap().unwrap()[..], &want[..]);
    }
    // The connection closes once both halves are gone (a pipe has no
    // half-close); the server side then sees the end.
    drop((cr, cw));
    within(echo).await.unwrap();
}

#[tokio::test]
async fn one_listener_per_address_and_absent_peer() {
    let (_d, p) = paths();
    assert!(matches!(
        KsyncConn::connect(&p.ksync).await,
        Err(Error::PeerNotPresent { .. })
    ));
    let l = KsyncListener::bind(&p.ksync).unwrap();
    match KsyncListener::bind(&p.ksync) {
        Err(Error::AddrInUse { .. }) => {}
        other => panic!("want AddrInUse, got {other:?}"),
    }
    drop(l);
    // Free again once the first listener is gone.
    let mut l = KsyncListener::bind(&p.ksync).unwrap();
    let (mut s, mut c) = pair(&mut l).await;
    c.send(&msg(16, 5)).await.unwrap();
    assert!(within(s.recv()).await.unwrap().is_some());
}

#[test]
fn bind_outside_a_runtime_is_an_error() {
    let (_d, p) = paths();
    assert!(matches!(
        KsyncListener::bind(&p.ksync),
        Err(Error::NoRuntime { .. })
    ));
}

/// Socket-file housekeeping, which only exists on unix.
#[cfg(unix)]
#[tokio::test]
async fn unix_socket_files() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let (dir, _) = paths();
    // The parent directory is created.
    let p = channels::ChannelPaths::new(dir.path().join("run/vrouter"));
    // A stale socket (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind({
        std::fs::create_dir_all(p.ksync.parent().unwrap()).unwrap();
        &p.ksync
    }));
    assert!(p.ksync.exists());
    let l = KsyncListener::bind(&p.ksync).unwrap();
    let meta = std::fs::symlink_metadata(&p.ksync).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    drop(l);
    assert!(!p.ksync.exists(), "socket file removed on drop");
    // A regular file is never removed.
    std::fs::write(&p.ksync, b"not a socket").unwrap();
    assert!(matches!(
        KsyncListener::bind(&p.ksync),
        Err(Error::Io { .. })
    ));
    assert!(p.ksync.exists());
}

/// A batch far larger than the socket buffers, to a peer that answers each
/// request before reading the next (upstream's DPDK vRouter reads nothing
/// while its answers wait for room): the
/// sender reads the answers while its write waits, so neither side blocks
/// for good, and the answers come out of `recv` whole and in order.
#[tokio::test]
async fn a_large_batch_to_a_peer_answering_as_it_reads_completes() {
    const N: u32 = 1000;
    let (_d, p) = paths();
    let mut l = KsyncListener::bind(&p.ksync).unwrap();
    let (server, mut client) = pair(&mut l).await;
    // Split halves: the server's writes do not read ahead.
    let (mut sr, mut sw) = server.into_split();
    let answer = tokio::spawn(async move {
        let mut n = 0;
        while let Some(m) = sr.recv().await.unwrap() {
            let seq = NlMsgHdr::parse(&m).unwrap().seq;
            sw.send(&msg(4096, seq)).await.unwrap();
            n += 1;
        }
        n
    });
    let batch: Vec<Vec<u8>> = (0..N).map(|i| msg(4096, i)).collect();
    within(client.send_all(&batch)).await.unwrap();
    for i in 0..N {
        let got = within(client.recv()).await.unwrap().expect("answer");
        assert_eq!(got.len(), 4096);
        assert_eq!(NlMsgHdr::parse(&got).unwrap().seq, i, "answers in order");
    }
    drop(client);
    assert_eq!(within(answer).await.unwrap(), N);
}
