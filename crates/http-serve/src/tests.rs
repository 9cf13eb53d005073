//! The limits against a real TCP server on loopback, with raw sockets as
//! the misbehaving clients.
#![allow(clippy::unwrap_used)]

use super::*;
use axum::body::Bytes;
use axum::routing::{get, post};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_millis(400);

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/echo", post(|b: Bytes| async move { b }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
}

async fn server() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let h = tokio::spawn(serve_tcp(l, app(), Timeouts::uniform(LIMIT), async {
        let _ = rx.await;
    }));
    (addr, tx, h)
}

/// Reads until the server closes; returns what it sent and when it closed
/// (None if it did not within `max`).
async fn until_closed(s: &mut TcpStream, max: Duration) -> (String, Option<Duration>) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
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

/// Open for at least half the limit (the server cannot close early),
/// closed within a generous bound (a loaded CI machine is slow, never fast).
fn closed_by_limit(closed: Option<Duration>) {
    let d = closed.expect("the server never closed the connection");
    assert!(d >= LIMIT / 2, "closed after {d:?}, before the limit");
    assert!(d < LIMIT * 10, "closed after {d:?}");
}

#[tokio::test]
async fn silent_client_is_dropped() {
    let (addr, _stop, _h) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (got, closed) = until_closed(&mut s, LIMIT * 10).await;
    closed_by_limit(closed);
    // hyper answers nothing to a client that never started a request.
    assert!(!got.contains("200"), "{got}");
}

#[tokio::test]
async fn partial_head_is_dropped() {
    let (addr, _stop, _h) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A byte now and then does not keep it alive: the head has a deadline.
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(LIMIT / 4).await;
            if s.write_all(b"X").await.is_err() {
                break;
            }
        }
    };
    let t0 = Instant::now();
    trickle.await;
    let (_, closed) = until_closed(&mut s, LIMIT * 10).await;
    assert!(closed.is_some(), "still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() < LIMIT * 10, "{:?}", t0.elapsed());
}

#[tokio::test]
async fn idle_keep_alive_is_dropped() {
    let (addr, _stop, _h) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("hello"),
        "{head}"
    );
    // Kept alive: a second request on the same connection works...
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // ...and then, idle, it is closed.
    let (_, closed) = until_closed(&mut s, LIMIT * 10).await;
    closed_by_limit(closed);
}

#[tokio::test]
async fn stalled_body_is_refused() {
    let (addr, _stop, _h) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let (got, closed) = until_closed(&mut s, LIMIT * 10).await;
    closed_by_limit(closed);
    // The handler saw a failed body: an error status, never the echo.
    assert!(got.starts_with("HTTP/1.1 4"), "{got}");
    assert!(!got.contains("0123456789"), "{got}");
}

#[tokio::test]
async fn well_behaved_clients_are_served_and_shutdown_is_graceful() {
    let (addr, stop, h) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
        .await
        .unwrap();
    tokio::time::sleep(LIMIT / 4).await;
    s.write_all(b"llo").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("hello"),
        "{got}"
    );
    // A request in flight when shutdown comes is answered.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).unwrap();
    let (got, closed) = until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("done"),
        "{got}"
    );
    assert!(closed.is_some());
    tokio::time::timeout(Duration::from_secs(5), h)
        .await
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn serve_connection_applies_the_limits_to_any_stream() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(serve_connection(a, app(), Timeouts::uniform(LIMIT)));
    let t0 = Instant::now();
    // The client half says nothing: the server ends the connection.
    let r = tokio::time::timeout(LIMIT * 10, server).await;
    let elapsed = t0.elapsed();
    assert!(
        r.is_ok(),
        "serve_connection still running after {elapsed:?}"
    );
    assert!(elapsed >= LIMIT / 2, "{elapsed:?}");
    drop(b);
}
