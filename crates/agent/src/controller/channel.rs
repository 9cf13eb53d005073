//! One control node: connect, keep the session, reconnect with upstream's
//! backoff (1, 2, 4, ... seconds, capped, ±10 % jitter; back to quick
//! retries once a session has lasted), and hand what arrives to the hub.

use super::hub::Ev;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use xmpp::session::{self, ClientConfig, Event};

pub(crate) async fn run(
    idx: usize,
    addr: SocketAddr,
    cfg: ClientConfig,
    backoff_max: Duration,
    ev: mpsc::Sender<Ev>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempts: u32 = 0;
    let mut last_error = String::new();
    loop {
        let connected = tokio::select! {
            _ = crate::run::stopped(&mut stop) => return,
            r = session::connect(addr, &cfg) => r,
        };
        match connected {
            Ok(mut s) => {
                let since = Instant::now();
                last_error.clear();
                if ev
                    .send(Ev::Up {
                        idx,
                        tx: s.sender(),
                        local: s.local_addr,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                let reason = loop {
                    tokio::select! {
                        _ = crate::run::stopped(&mut stop) => {
                            s.close().await;
                            return;
                        }
                        e = s.recv() => match e {
                            Event::Stanza(text) => {
                                if ev.send(Ev::Stanza { idx, text }).await.is_err() {
                                    return;
                                }
                            }
                            Event::Closed(r) => break r,
                        }
                    }
                };
                if ev.send(Ev::Down { idx, reason }).await.is_err() {
                    return;
                }
                // A session that lasted resets the backoff (upstream: three
                // keepalives).
                if since.elapsed() > Duration::from_secs(10) {
                    attempts = 0;
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!(server = %addr, error = %msg, "control node not reachable; retrying");
                    last_error = msg.clone();
                }
                if ev.send(Ev::Failed { idx, reason: msg }).await.is_err() {
                    return;
                }
            }
        }
        attempts = attempts.saturating_add(1);
        let delay = backoff(attempts, backoff_max);
        tokio::select! {
            _ = crate::run::stopped(&mut stop) => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Upstream's `GetConnectTime`: `2^(attempts-1)` seconds up to the cap,
/// 50 ms for the first retry, ±10 % jitter.
pub(crate) fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = if attempts <= 1 {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1u64 << (attempts - 2).min(6)).min(max)
    };
    let ms = base.as_millis() as u64;
    // Cheap jitter from the clock; no RNG needed for this.
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    let spread = ms / 5;
    let jitter = if spread == 0 { 0 } else { nanos % (spread + 1) };
    Duration::from_millis(ms - ms / 10 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let cap = Duration::from_secs(30);
        assert!(backoff(1, cap) < Duration::from_millis(60));
        let b2 = backoff(2, cap);
        assert!(b2 >= Duration::from_millis(900) && b2 <= Duration::from_millis(1100));
        let b4 = backoff(4, cap);
        assert!(b4 >= Duration::from_millis(3600) && b4 <= Duration::from_millis(4400));
        assert!(backoff(20, cap) <= Duration::from_secs(33));
        assert!(backoff(20, Duration::from_secs(2)) <= Duration::from_millis(2200));
    }
}
