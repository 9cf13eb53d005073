//! One XMPP session over TCP (tokio), client (agent) or server (control
//! node) side, as upstream's state machine runs it.
//!
//! * **Open**: the client sends its stream header; the server answers with
//!   its own. With TLS the server then offers `<stream:features>` with a
//!   required STARTTLS, the client sends `<starttls/>`, the server
//!   `<proceed/>`, both run the TLS handshake and the client opens the
//!   stream again inside TLS. Each step must complete within the open
//!   time (upstream's `kOpenTime`, 15 s).
//! * **Established**: each side sends a keepalive (U+0200) at once and
//!   then every third of the hold time (upstream's default hold time is
//!   90 s); anything received restarts the hold timer; when it expires the
//!   session closes ("hold timer expired").
//!
//! A session is two tasks: the reader (framing, hold timer) and the writer
//! (queued stanzas, keepalives), so that neither side can deadlock the
//! other by writing while it does not read. Dropping the [`Session`] stops
//! both and closes the connection.
//!
//! TLS is the platform's (OpenSSL on Linux, SChannel on Windows) through
//! `native-tls`. As upstream (boost::asio over OpenSSL, verify-peer only),
//! the chain is checked against the configured CA but not the host name,
//! and the client presents its certificate. `native-tls` has no way to
//! require a client certificate on the accepting side, so the server side
//! (only the test control-node peer uses it) does not check one.

use crate::frame::{Frame, Framer, KEEPALIVE};
use crate::stanza::{self, PROCEED, STARTTLS, STREAM_CLOSE, STREAM_FEATURES_TLS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Upstream's default hold time.
pub const HOLD_TIME: Duration = Duration::from_secs(90);
/// Upstream's open timer.
pub const OPEN_TIME: Duration = Duration::from_secs(15);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type BoxIo = Box<dyn Io>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] native_tls::Error),
    #[error("no stream open within {0:?}")]
    OpenTimeout(Duration),
    #[error("the peer closed the connection during the open")]
    Eof,
    #[error("protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Frame(#[from] crate::frame::FrameError),
}

/// What a session delivers.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete stanza (`<iq>` or `<message>`), as received.
    Stanza(String),
    /// The session is over (the reason, for the log); nothing follows.
    Closed(String),
}

#[derive(Clone)]
pub struct ClientConfig {
    /// Our name (the agent name; `from` of the stream header).
    pub from: String,
    /// The control node's JID.
    pub to: String,
    /// The stream's `xmlns`: upstream puts the subcluster name there.
    pub xmlns: String,
    pub hold_time: Duration,
    pub open_time: Duration,
    /// STARTTLS with this connector (client certificate, CA).
    pub tls: Option<native_tls::TlsConnector>,
}

impl ClientConfig {
    pub fn new(from: impl Into<String>) -> Self {
        ClientConfig {
            from: from.into(),
            to: crate::jid::CONTROL_NODE_JID.into(),
            xmlns: String::new(),
            hold_time: HOLD_TIME,
            open_time: OPEN_TIME,
            tls: None,
        }
    }
}

#[derive(Clone)]
pub struct ServerConfig {
    /// Our JID (`from` of the answer).
    pub from: String,
    pub hold_time: Duration,
    pub open_time: Duration,
    /// Require STARTTLS with this acceptor.
    pub tls: Option<native_tls::TlsAcceptor>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            from: crate::jid::CONTROL_NODE_JID.into(),
            hold_time: HOLD_TIME,
            open_time: OPEN_TIME,
            tls: None,
        }
    }
}

/// A TLS connector as upstream's agent uses TLS: its own certificate and
/// key (PEM; the key PKCS#8), the CA that signed the control node's, no
/// host name check.
pub fn tls_client(
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_pem: &[u8],
) -> Result<native_tls::TlsConnector, native_tls::Error> {
    native_tls::TlsConnector::builder()
        .identity(native_tls::Identity::from_pkcs8(cert_pem, key_pem)?)
        .add_root_certificate(native_tls::Certificate::from_pem(ca_pem)?)
        .disable_built_in_roots(true)
        .danger_accept_invalid_hostnames(true)
        .build()
}

/// A TLS acceptor with the server's certificate and key (PEM, PKCS#8).
pub fn tls_server(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<native_tls::TlsAcceptor, native_tls::Error> {
    native_tls::TlsAcceptor::new(native_tls::Identity::from_pkcs8(cert_pem, key_pem)?)
}

/// Reads frames during the open, before the session's tasks exist.
struct Opening {
    io: BoxIo,
    framer: Framer,
    deadline: Instant,
    open_time: Duration,
}

impl Opening {
    async fn frame(&mut self) -> Result<Frame, SessionError> {
        let mut buf = [0u8; 4096];
        loop {
            match self.framer.next_frame()? {
                Some(Frame::Keepalive) | Some(Frame::Junk(_)) => continue,
                Some(f) => return Ok(f),
                None => {}
            }
            let n = tokio::time::timeout_at(self.deadline, self.io.read(&mut buf))
                .await
                .map_err(|_| SessionError::OpenTimeout(self.open_time))??;
            if n == 0 {
                return Err(SessionError::Eof);
            }
            self.framer.push(&buf[..n]);
        }
    }

    async fn send(&mut self, s: &str) -> Result<(), SessionError> {
        self.io.write_all(s.as_bytes()).await?;
        self.io.flush().await?;
        Ok(())
    }

    async fn expect_open(&mut self) -> Result<Vec<(String, String)>, SessionError> {
        match self.frame().await? {
            Frame::StreamOpen(a) => Ok(a),
            other => Err(SessionError::Protocol(format!(
                "expected a stream header, got {other:?}"
            ))),
        }
    }
}

fn attr(a: &[(String, String)], k: &str) -> String {
    a.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Connect to a control node and open the stream.
pub async fn connect(addr: SocketAddr, cfg: &ClientConfig) -> Result<Session, SessionError> {
    let tcp = tokio::time::timeout(cfg.open_time, TcpStream::connect(addr))
        .await
        .map_err(|_| SessionError::OpenTimeout(cfg.open_time))?
        .map_err(|source| SessionError::Connect { addr, source })?;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    let mut o = Opening {
        io: Box::new(tcp),
        framer: Framer::default(),
        deadline: Instant::now() + cfg.open_time,
        open_time: cfg.open_time,
    };
    let open = stanza::agent_stream_open(&cfg.from, &cfg.to, &cfg.xmlns);
    o.send(&open).await?;
    let mut server = o.expect_open().await?;
    if let Some(tls) = &cfg.tls {
        match o.frame().await? {
            Frame::Features { starttls: true } => {}
            other => {
                return Err(SessionError::Protocol(format!(
                    "TLS configured but the control node does not offer STARTTLS ({other:?})"
                )))
            }
        }
        o.send(STARTTLS).await?;
        match o.frame().await? {
            Frame::Proceed => {}
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected <proceed/>, got {other:?}"
                )))
            }
        }
        if o.framer.pending() > 0 {
            return Err(SessionError::Protocol("data after <proceed/>".into()));
        }
        let connector = tokio_native_tls::TlsConnector::from(tls.clone());
        let Opening { io, .. } = o;
        let tls_io = connector.connect(&addr.ip().to_string(), io).await?;
        o = Opening {
            io: Box::new(tls_io),
            framer: Framer::default(),
            deadline: Instant::now() + cfg.open_time,
            open_time: cfg.open_time,
        };
        o.send(&open).await?;
        server = o.expect_open().await?;
    }
    Ok(Session::start(
        o,
        attr(&server, "from"),
        cfg.hold_time,
        local,
    ))
}

/// Serve one accepted connection: read the client's header, answer, and
/// (with TLS) negotiate STARTTLS.
pub async fn accept(tcp: TcpStream, cfg: &ServerConfig) -> Result<Session, SessionError> {
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    let mut o = Opening {
        io: Box::new(tcp),
        framer: Framer::default(),
        deadline: Instant::now() + cfg.open_time,
        open_time: cfg.open_time,
    };
    let client = o.expect_open().await?;
    let peer = attr(&client, "from");
    if peer.is_empty() {
        return Err(SessionError::Protocol("stream header without from".into()));
    }
    o.send(&stanza::server_stream_open(&cfg.from, &peer))
        .await?;
    if let Some(tls) = &cfg.tls {
        o.send(STREAM_FEATURES_TLS).await?;
        match o.frame().await? {
            Frame::StartTls => {}
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected <starttls/>, got {other:?}"
                )))
            }
        }
        o.send(PROCEED).await?;
        let acceptor = tokio_native_tls::TlsAcceptor::from(tls.clone());
        let Opening { io, .. } = o;
        let tls_io = acceptor.accept(io).await?;
        o = Opening {
            io: Box::new(tls_io),
            framer: Framer::default(),
            deadline: Instant::now() + cfg.open_time,
            open_time: cfg.open_time,
        };
        o.expect_open().await?;
        o.send(&stanza::server_stream_open(&cfg.from, &peer))
            .await?;
    }
    Ok(Session::start(o, peer, cfg.hold_time, local))
}

/// An established session.
pub struct Session {
    /// The other side's name (`from` of its stream header).
    pub peer: String,
    /// Our address on the connection.
    pub local_addr: Option<SocketAddr>,
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<Event>,
    tasks: Tasks,
}

/// The session's tasks, stopped when the session goes.
struct Tasks {
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = &self.writer {
            w.abort();
        }
    }
}

/// Sends on a session from elsewhere (cheap to clone).
#[derive(Clone)]
pub struct Sender(mpsc::Sender<String>);

/// The session is closed.
#[derive(Debug, thiserror::Error)]
#[error("XMPP session closed")]
pub struct Closed;

impl Sender {
    pub async fn send(&self, s: String) -> Result<(), Closed> {
        self.0.send(s).await.map_err(|_| Closed)
    }
}

impl Session {
    fn start(o: Opening, peer: String, hold: Duration, local_addr: Option<SocketAddr>) -> Session {
        let Opening { io, framer, .. } = o;
        let (mut rd, mut wr) = tokio::io::split(io);
        let (ev_tx, rx) = mpsc::channel::<Event>(4096);
        let (tx, mut out_rx) = mpsc::channel::<String>(4096);
        let wr_ev = ev_tx.clone();
        let keepalive = (hold / 3).max(Duration::from_millis(100));
        let writer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(keepalive);
            let reason = loop {
                let r = tokio::select! {
                    m = out_rx.recv() => match m {
                        Some(m) => wr.write_all(m.as_bytes()).await,
                        None => {
                            let _ = wr.write_all(STREAM_CLOSE.as_bytes()).await;
                            let _ = wr.shutdown().await;
                            break "closed locally".to_string();
                        }
                    },
                    // The first tick is immediate: upstream sends a
                    // keepalive as soon as the session is established.
                    _ = tick.tick() => wr.write_all(KEEPALIVE.as_bytes()).await,
                };
                if let Err(e) = r {
                    break format!("write: {e}");
                }
            };
            let _ = wr_ev.send(Event::Closed(reason)).await;
        });
        let reader = tokio::spawn(async move {
            let mut framer = framer;
            let mut buf = vec![0u8; 64 * 1024];
            let mut deadline = Instant::now() + hold;
            let reason = 'outer: loop {
                loop {
                    match framer.next_frame() {
                        Ok(None) => break,
                        Ok(Some(f)) => match f {
                            Frame::Stanza(s) => {
                                if ev_tx.send(Event::Stanza(s)).await.is_err() {
                                    break 'outer "dropped".to_string();
                                }
                            }
                            Frame::Keepalive => {}
                            Frame::StreamClose => break 'outer "the peer closed the stream".into(),
                            Frame::Junk(j) => {
                                tracing::warn!(junk = %j, "XMPP: dropped bytes that are no stanza")
                            }
                            Frame::Features { starttls: true } => {
                                break 'outer "the control node requires TLS (xmpp_auth_enable)"
                                    .into()
                            }
                            other => {
                                tracing::warn!(frame = ?other, "XMPP: unexpected frame ignored")
                            }
                        },
                        Err(e) => break 'outer format!("framing: {e}"),
                    }
                }
                tokio::select! {
                    r = rd.read(&mut buf) => match r {
                        Ok(0) => break "connection closed by the peer".to_string(),
                        Ok(n) => {
                            framer.push(&buf[..n]);
                            deadline = Instant::now() + hold;
                        }
                        Err(e) => break format!("read: {e}"),
                    },
                    _ = tokio::time::sleep_until(deadline) => break "hold timer expired".to_string(),
                }
            };
            let _ = ev_tx.send(Event::Closed(reason)).await;
        });
        Session {
            peer,
            local_addr,
            tx,
            rx,
            tasks: Tasks {
                reader,
                writer: Some(writer),
            },
        }
    }

    /// Queue a stanza (waits when the queue is full).
    pub async fn send(&self, s: String) -> Result<(), Closed> {
        self.tx.send(s).await.map_err(|_| Closed)
    }

    pub fn sender(&self) -> Sender {
        Sender(self.tx.clone())
    }

    /// The next event; after [`Event::Closed`] the session is over.
    pub async fn recv(&mut self) -> Event {
        self.rx
            .recv()
            .await
            .unwrap_or_else(|| Event::Closed("session ended".into()))
    }

    /// Close gracefully: queued stanzas go out, then `</stream:stream>`.
    pub async fn close(self) {
        let Session { tx, mut tasks, .. } = self;
        drop(tx);
        if let Some(w) = tasks.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair(
        client: ClientConfig,
        server: ServerConfig,
    ) -> (Result<Session, SessionError>, Result<Session, SessionError>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let s = tokio::spawn(async move {
            let (t, _) = l.accept().await.unwrap();
            accept(t, &server).await
        });
        let c = connect(addr, &client).await;
        (c, s.await.unwrap())
    }

    fn tls_material(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[tokio::test]
    async fn plain_session_exchanges_stanzas_and_keepalives() {
        let mut cc = ClientConfig::new("worker-3");
        cc.hold_time = Duration::from_millis(600);
        let sc = ServerConfig {
            hold_time: Duration::from_millis(600),
            ..ServerConfig::default()
        };
        let (c, s) = pair(cc, sc).await;
        let (mut c, mut s) = (c.unwrap(), s.unwrap());
        assert_eq!(s.peer, "worker-3");
        assert_eq!(c.peer, crate::jid::CONTROL_NODE_JID);
        c.send(stanza::vr_subscribe("worker-3")).await.unwrap();
        assert_eq!(
            s.recv().await,
            Event::Stanza(stanza::vr_subscribe("worker-3").trim_end().to_string())
        );
        // Idle for several hold times: keepalives keep both up.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.send("<message to='worker-3/bgp-peer'/>".into())
            .await
            .unwrap();
        assert_eq!(
            c.recv().await,
            Event::Stanza("<message to='worker-3/bgp-peer'/>".into())
        );
        c.close().await;
        assert!(matches!(s.recv().await, Event::Closed(_)));
    }

    #[tokio::test]
    async fn a_silent_peer_expires_the_hold_timer() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // A "control node" that answers the header and then says nothing.
        let srv = tokio::spawn(async move {
            let (mut t, _) = l.accept().await.unwrap();
            let mut b = [0u8; 512];
            let _ = t.read(&mut b).await;
            t.write_all(stanza::server_stream_open(crate::jid::CONTROL_NODE_JID, "a").as_bytes())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
        });
        let mut cc = ClientConfig::new("a");
        cc.hold_time = Duration::from_millis(500);
        let mut c = connect(addr, &cc).await.unwrap();
        let t0 = Instant::now();
        assert_eq!(c.recv().await, Event::Closed("hold timer expired".into()));
        assert!(t0.elapsed() < Duration::from_millis(1500));
        srv.abort();
    }

    // Under Wine, schannel cannot import a PKCS#8 identity ("File not
    // found" from its key store); docs/windows.md lists it for a real
    // Windows machine.
    #[tokio::test]
    #[cfg_attr(windows, ignore = "Wine's schannel cannot import a PKCS#8 identity")]
    async fn starttls_with_a_client_certificate() {
        let mut cc = ClientConfig::new("worker-3");
        cc.tls = Some(
            tls_client(
                &tls_material("client.pem"),
                &tls_material("client.key"),
                &tls_material("ca.pem"),
            )
            .unwrap(),
        );
        let sc = ServerConfig {
            tls: Some(
                tls_server(&tls_material("server.pem"), &tls_material("server.key")).unwrap(),
            ),
            open_time: Duration::from_secs(2),
            ..ServerConfig::default()
        };
        let (c, s) = pair(cc.clone(), sc.clone()).await;
        let (c, mut s) = (c.unwrap(), s.unwrap());
        c.send("<iq type='set' to='x/config'/>".into())
            .await
            .unwrap();
        assert_eq!(
            s.recv().await,
            Event::Stanza("<iq type='set' to='x/config'/>".into())
        );
        // A control node whose certificate another CA signed is refused.
        cc.tls = Some(
            tls_client(
                &tls_material("client.pem"),
                &tls_material("client.key"),
                &tls_material("other-ca.pem"),
            )
            .unwrap(),
        );
        let (c, _) = pair(cc, sc.clone()).await;
        assert!(
            matches!(c, Err(SessionError::Tls(_)) | Err(SessionError::Io(_))),
            "{:?}",
            c.err()
        );
        // A client without TLS is told why.
        let (c, _) = pair(ClientConfig::new("x"), sc).await;
        assert_eq!(
            c.unwrap().recv().await,
            Event::Closed("the control node requires TLS (xmpp_auth_enable)".into())
        );
    }
}
