//! The plugin's unix socket as dockerd reaches it, with misbehaving
//! clients: a client that connects and sends nothing, or stops in the
//! middle of a request head, or idles on a keep-alive connection, is
//! dropped after the limit; the socket keeps serving. No root needed.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use docker_driver::backend::MemoryBackend;
use docker_driver::http_serve::Timeouts;
use docker_driver::server::UnixSocket;
use docker_driver::{Config, Driver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const LIMIT: Duration = Duration::from_millis(500);

fn app() -> axum::Router {
    // Plugin.Activate needs neither the config API nor the agent.
    let client = || vnc_client::Client::new("http://127.0.0.1:9", None).unwrap();
    docker_driver::app(Arc::new(Driver::new(
        client(),
        client(),
        MemoryBackend::default(),
        Config::default(),
    )))
}

/// Reads until the server closes; what it sent, and when it closed counted
/// from `t0` (None if not within `max` of `t0`).
async fn closed_within(
    s: &mut UnixStream,
    t0: Instant,
    max: Duration,
) -> (String, Option<Duration>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = max.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&out).into(), Some(t0.elapsed()))
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn by_limit(d: Option<Duration>) {
    let d = d.expect("the plugin socket never closed a stalled connection");
    assert!(d >= LIMIT / 2, "closed after {d:?}, before the limit");
    assert!(d < LIMIT * 10, "closed after {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut sock = UnixSocket::bind(dir.path()).unwrap();
    assert_eq!(sock.timeouts, Timeouts::DEFAULT);
    sock.timeouts = Timeouts::uniform(LIMIT);
    let path = sock.path().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        sock.serve(app(), async {
            let _ = stopped.await;
        })
        .await;
    });

    let t0 = Instant::now();
    let mut silent = UnixStream::connect(&path).await.unwrap();
    let mut partial = UnixStream::connect(&path).await.unwrap();
    partial
        .write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\n")
        .await
        .unwrap();
    let mut idle = UnixStream::connect(&path).await.unwrap();
    idle.write_all(b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut body = UnixStream::connect(&path).await.unwrap();
    body.write_all(
        b"POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nHost: plugin\r\nContent-Length: 50\r\n\r\n{\"Net",
    )
    .await
    .unwrap();

    let (got, d) = closed_within(&mut silent, t0, LIMIT * 10).await;
    by_limit(d);
    assert!(got.is_empty(), "{got}");
    by_limit(closed_within(&mut partial, t0, LIMIT * 10).await.1);
    // Answered, then closed once idle.
    let (got, d) = closed_within(&mut idle, t0, LIMIT * 10).await;
    assert!(
        got.starts_with("HTTP/1.1 200") && got.contains("Implements"),
        "{got}"
    );
    by_limit(d);
    // A stalled body: the call fails (the driver never sees half a request).
    let (got, d) = closed_within(&mut body, t0, LIMIT * 10).await;
    by_limit(d);
    assert!(!got.contains("\"Err\":\"\""), "{got}");

    // The socket still serves.
    let mut ok = UnixStream::connect(&path).await.unwrap();
    ok.write_all(
        b"POST /Plugin.Activate HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let (got, _) = closed_within(&mut ok, Instant::now(), Duration::from_secs(5)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    stop.send(()).unwrap();
    server.await.unwrap();
    assert!(!path.exists(), "socket file left behind");
}
