//! HTTP/1 serving for the node's small APIs: the VNC config API (8082) and
//! the port API (9091) of the agent, and the Docker plugin API of the
//! driver (a unix socket on Linux, a named pipe on Windows).
//!
//! Every connection gets the same limits, so that a client that connects
//! and sends nothing, stops in the middle of a request head, stalls a body,
//! or keeps an idle keep-alive connection open forever cannot pin a task and
//! a socket for the life of the process:
//!
//! * [`Timeouts::header`]: hyper's `header_read_timeout`. In hyper 1.x its
//!   clock runs whenever the connection waits for a request head, from the
//!   first byte of the connection and again after each response, so it
//!   bounds both a slow (or absent) request head and an idle keep-alive
//!   connection. The connection is closed when it fires.
//! * [`Timeouts::body`]: tower-http's `RequestBodyTimeout`: each piece of a
//!   request body must arrive within this time, else the body fails and the
//!   handler answers with an error.
//!
//! # Why a crate
//!
//! `axum::serve` has no such limits and no way to set them, so the agent
//! and the driver both need their own accept loop around hyper's connection
//! builder; this is that code, once. Nothing here is hand-written protocol:
//! hyper, hyper-util (graceful shutdown) and tower-http do the work.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tower_http::timeout::{RequestBodyTimeout, RequestBodyTimeoutLayer};

/// The limits of one connection (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A request head must arrive within this time of the connection
    /// starting to wait for it; an idle keep-alive connection is closed
    /// after this long.
    pub header: Duration,
    /// Longest wait for the next piece of a request body.
    pub body: Duration,
}

impl Timeouts {
    /// What the node's services use: 30 s each (hyper's own default header
    /// timeout). Generous for a local client, short enough that stalled
    /// connections do not pile up.
    pub const DEFAULT: Timeouts = Timeouts {
        header: Duration::from_secs(30),
        body: Duration::from_secs(30),
    };

    /// The same limit for both (tests use short ones).
    pub const fn uniform(d: Duration) -> Timeouts {
        Timeouts { header: d, body: d }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// How long a graceful shutdown waits for requests in flight.
const GRACE: Duration = Duration::from_secs(3);

type Svc = TowerToHyperService<RequestBodyTimeout<Router>>;

fn service(app: Router, t: Timeouts) -> Svc {
    TowerToHyperService::new(
        tower::ServiceBuilder::new()
            .layer(RequestBodyTimeoutLayer::new(t.body))
            .service(app),
    )
}

fn builder(t: Timeouts) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(t.header);
    b
}

/// Serves `app` on one connection (a unix socket, a named pipe, a TCP
/// stream) with the limits `t`, until the client or a limit ends it.
pub async fn serve_connection<IO>(io: IO, app: Router, t: Timeouts) -> Result<(), hyper::Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    builder(t)
        .serve_connection(TokioIo::new(io), service(app, t))
        .await
}

/// Serves `app` on every connection of `listener` with the limits `t` until
/// `shutdown` resolves; then stops accepting, lets requests in flight
/// finish (up to 3 s) and returns.
pub async fn serve_tcp(
    listener: tokio::net::TcpListener,
    app: Router,
    t: Timeouts,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let conn = builder(t)
                        .serve_connection(TokioIo::new(stream), service(app.clone(), t));
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "HTTP connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors or a transient error: keep serving.
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still busy after {GRACE:?}: dropped");
    }
}

#[cfg(test)]
mod tests;
