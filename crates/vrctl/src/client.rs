//! A ksync client: one request out, its (possibly multipart) answer in.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use channels::KsyncConn;
use dp_core::Router;
use ksync::{Handler, HostOps, VR_MESSAGE_DUMP_INCOMPLETE};
use sandesh::frame::{self, Frame, Meta, Style, GENL_ID_VROUTER, NLM_F_MULTI, NLM_F_REQUEST};
use sandesh::{Message, VrResponse};

/// How long to wait for each answer message.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens at the ksync socket / pipe.
    #[error("cannot connect to the vRouter at {addr}: {reason} (is `vrouter` running?)")]
    Connect { addr: String, reason: String },
    /// The transport failed after connecting.
    #[error("ksync connection to the vRouter: {0}")]
    Io(String),
    /// The vRouter closed the connection before answering.
    #[error("the vRouter closed the connection before answering")]
    Closed,
    /// No answer in time.
    #[error("no answer from the vRouter within {0:?}")]
    Timeout(Duration),
    /// An answer this client cannot make sense of.
    #[error("unexpected answer from the vRouter: {0}")]
    Protocol(String),
    /// The vRouter refused the request: a negative errno, printed like
    /// upstream's tools print it.
    #[error("vRouter(Response): {} ({})", ksync::errno::describe(*.0), -*.0)]
    Vrouter(i32),
}

impl ClientError {
    /// The vRouter's errno, if it refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ClientError::Vrouter(e) => Some(*e),
            _ => None,
        }
    }
}

/// Moves whole netlink messages. [`SocketTransport`] is the real one
/// (`channels` unix socket / named pipe); [`LocalTransport`] runs a
/// [`Handler`] in-process (tests).
pub trait Transport {
    /// Send one or more whole messages.
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError>;
    /// The next whole message, `None` if the peer closed.
    fn recv(&mut self) -> Result<Option<Vec<u8>>, ClientError>;
}

/// The ksync channel of a running vRouter, driven from blocking code
/// through a small current-thread runtime.
pub struct SocketTransport {
    rt: tokio::runtime::Runtime,
    conn: KsyncConn,
    timeout: Duration,
}

impl SocketTransport {
    /// Connect to the ksync socket (Linux), pipe or device (Windows) `addr`.
    pub fn connect(addr: &Path) -> Result<Self, ClientError> {
        let shown = addr.display().to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let conn = rt
            .block_on(async {
                tokio::time::timeout(ANSWER_TIMEOUT, KsyncConn::connect(addr)).await
            })
            .map_err(|_| ClientError::Connect {
                addr: shown.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| ClientError::Connect {
                addr: shown,
                reason: if e.is_peer_not_present() {
                    "nobody is listening there".into()
                } else {
                    e.to_string()
                },
            })?;
        Ok(SocketTransport {
            rt,
            conn,
            timeout: ANSWER_TIMEOUT,
        })
    }
}

impl Transport for SocketTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let conn = &mut self.conn;
        self.rt
            .block_on(conn.send(bytes))
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    fn recv(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let conn = &mut self.conn;
        let t = self.timeout;
        match self
            .rt
            .block_on(async { tokio::time::timeout(t, conn.recv()).await })
        {
            Err(_) => Err(ClientError::Timeout(t)),
            Ok(Err(e)) => Err(ClientError::Io(e.to_string())),
            Ok(Ok(m)) => Ok(m.map(|b| b.to_vec())),
        }
    }
}

/// A [`Handler`] over a [`Router`] in this process.
pub struct LocalTransport<'a, H: HostOps> {
    pub handler: &'a mut Handler,
    pub router: &'a mut Router,
    pub host: &'a mut H,
    pending: VecDeque<Vec<u8>>,
}

impl<'a, H: HostOps> LocalTransport<'a, H> {
    pub fn new(handler: &'a mut Handler, router: &'a mut Router, host: &'a mut H) -> Self {
        LocalTransport {
            handler,
            router,
            host,
            pending: VecDeque::new(),
        }
    }
}

impl<H: HostOps> Transport for LocalTransport<'_, H> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let mut out = Vec::new();
        self.handler.handle(self.router, self.host, bytes, &mut out);
        let mut rest = out.as_slice();
        while let Ok((_, n)) = Frame::parse(rest) {
            let (msg, tail) = rest.split_at(n);
            self.pending.push_back(msg.to_vec());
            rest = tail;
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self.pending.pop_front())
    }
}

/// Where the ksync channel is: `<sock_dir>/dpdk_netlink` on Linux (the
/// default dir is upstream's `/var/run/vrouter`); on Windows the kernel
/// extension's device `\\.\vrouterKsync` by default, the pipe
/// `\\.\pipe\vrouterKsync` given a `sock_dir` (which selects an instance
/// suffix, see `channels::ChannelPaths::new`).
pub fn ksync_path(sock_dir: Option<&Path>) -> PathBuf {
    match sock_dir {
        Some(d) => channels::ChannelPaths::new(d).ksync,
        None => channels::ChannelPaths::default().ksync,
    }
}

/// A decoded answer: the `vr_response` code and the objects after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: i32,
    pub objects: Vec<Message>,
}

/// Requests over a [`Transport`].
pub struct Client<T: Transport> {
    transport: T,
    seq: u32,
}

impl Client<SocketTransport> {
    /// Connect to the vRouter's ksync channel at `addr`.
    pub fn connect(addr: &Path) -> Result<Self, ClientError> {
        Ok(Client::new(SocketTransport::connect(addr)?))
    }
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        Client { transport, seq: 0 }
    }

    /// Send `msg` and collect its answer: every message up to one without
    /// `NLM_F_MULTI` (DPDK style) or an `NLMSG_DONE` (Linux, Windows).
    pub fn request(&mut self, msg: &Message) -> Result<Reply, ClientError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut buf = Vec::new();
        let meta = Meta {
            family: GENL_ID_VROUTER,
            flags: NLM_F_REQUEST,
            seq,
            pid: std::process::id(),
            version: 0,
        };
        frame::write_sandesh(&mut buf, &meta, Style::Request, |o| msg.encode(o))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.transport.send(&buf)?;
        let mut objects = Vec::new();
        loop {
            let m = self.transport.recv()?.ok_or(ClientError::Closed)?;
            let (f, _) = Frame::parse(&m).map_err(|e| ClientError::Protocol(e.to_string()))?;
            if f.header().seq != seq {
                return Err(ClientError::Protocol(format!(
                    "answer to request {} while waiting for {seq}",
                    f.header().seq
                )));
            }
            match f {
                Frame::Sandesh {
                    header, payload, ..
                } => {
                    let objs = Message::decode_all(payload)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    objects.extend(objs);
                    if header.flags & NLM_F_MULTI == 0 {
                        break;
                    }
                }
                Frame::Done(_) => break,
                Frame::Error { error, .. } => {
                    return Err(if error < 0 {
                        ClientError::Vrouter(error)
                    } else {
                        ClientError::Protocol(format!("netlink error {error}"))
                    })
                }
                Frame::Other { header, .. } => {
                    return Err(ClientError::Protocol(format!(
                        "netlink message of type {}",
                        header.msg_type
                    )))
                }
            }
        }
        let mut it = objects.into_iter();
        match it.next() {
            Some(Message::Response(VrResponse { resp_code, .. })) => Ok(Reply {
                code: resp_code,
                objects: it.collect(),
            }),
            other => Err(ClientError::Protocol(format!(
                "expected vr_response first, got {:?}",
                other.map(|m| m.name())
            ))),
        }
    }

    /// A request answered by a code alone (ADD, DEL): `Err` if negative.
    pub fn op(&mut self, msg: impl Into<Message>) -> Result<(), ClientError> {
        let r = self.request(&msg.into())?;
        if r.code < 0 {
            return Err(ClientError::Vrouter(r.code));
        }
        Ok(())
    }

    /// A GET: the object after a successful `vr_response`.
    pub fn get(&mut self, msg: impl Into<Message>) -> Result<Message, ClientError> {
        let r = self.request(&msg.into())?;
        if r.code < 0 {
            return Err(ClientError::Vrouter(r.code));
        }
        r.objects
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("GET answered without an object".into()))
    }

    /// A whole dump, paged like upstream's tools: `req(last)` builds the
    /// request resuming after the last object received (`None` first);
    /// asks again while the answer's incomplete bit is set.
    pub fn dump(
        &mut self,
        mut req: impl FnMut(Option<&Message>) -> Message,
    ) -> Result<Vec<Message>, ClientError> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let r = self.request(&req(all.last()))?;
            if r.code < 0 {
                return Err(ClientError::Vrouter(r.code));
            }
            let got = r.objects.len();
            all.extend(r.objects);
            if r.code & VR_MESSAGE_DUMP_INCOMPLETE == 0 {
                return Ok(all);
            }
            if got == 0 {
                return Err(ClientError::Protocol(
                    "dump page marked incomplete but empty".into(),
                ));
            }
        }
    }
}
