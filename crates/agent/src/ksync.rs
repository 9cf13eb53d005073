//! The agent's ksync client: pipelined requests to the datapath.
//!
//! Every request of a batch becomes its own netlink message with its own
//! sequence number; the whole batch goes out in one write and the answers
//! are collected in order. [`KsyncClient::send`] and [`KsyncClient::take`]
//! split the two, so that a caller (the flow engine) writes its next batch
//! while the datapath still answers earlier ones. The datapath applies a
//! buffer's messages one after the other, so a later request sees what an
//! earlier one did (flow setup relies on it: the reverse entry is created,
//! then the forward entry finds it by key). A write that waits for room
//! reads the answers already sent meanwhile ([`channels::KsyncConn::send`]),
//! so a datapath that stops reading requests while its answers wait for
//! room (upstream's DPDK vRouter does) cannot deadlock with a large batch.

use channels::KsyncConn;
use sandesh::frame::{self, Frame, Meta, Style, GENL_ID_VROUTER, NLM_F_MULTI, NLM_F_REQUEST};
use sandesh::{Message, Messages, Sandesh, VrFlowReq, VrResponse};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// `VR_MESSAGE_DUMP_INCOMPLETE`: more objects follow the page.
const DUMP_INCOMPLETE: i32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum KsyncError {
    #[error("ksync channel {path}: {source}")]
    Channel {
        path: String,
        #[source]
        source: channels::Error,
    },
    #[error("ksync channel closed by the datapath")]
    Closed,
    #[error("ksync protocol: {0}")]
    Protocol(String),
    #[error("the datapath refused {what}: errno {code}")]
    Refused { what: String, code: i32 },
}

impl KsyncError {
    /// The connection is unusable (reconnect), as opposed to one refused
    /// request.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, KsyncError::Refused { .. })
    }
}

/// A decoded answer: the `vr_response` code and the objects after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: i32,
    pub objects: Vec<Message>,
}

pub struct KsyncClient {
    conn: KsyncConn,
    path: PathBuf,
    seq: u32,
    pid: u32,
    buf: Vec<u8>,
    /// Sequence number of the next answer to read.
    expect: u32,
    /// Requests sent whose answers are not read yet.
    unread: usize,
    /// Answers to [`Self::send`]s that [`Self::call`] read past.
    stash: VecDeque<Reply>,
    /// Requests sent, for introspect.
    pub sent: u64,
}

impl KsyncClient {
    pub async fn connect(path: &Path) -> Result<Self, KsyncError> {
        let conn = KsyncConn::connect(path)
            .await
            .map_err(|source| KsyncError::Channel {
                path: path.display().to_string(),
                source,
            })?;
        Ok(KsyncClient {
            conn,
            path: path.to_owned(),
            seq: 0,
            pid: std::process::id(),
            buf: Vec::with_capacity(64 * 1024),
            expect: 1,
            unread: 0,
            stash: VecDeque::new(),
            sent: 0,
        })
    }

    fn chan(&self, source: channels::Error) -> KsyncError {
        KsyncError::Channel {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Send `msgs` in one write without waiting: their answers are read
    /// later by [`Self::take`], in order. Requests sent this way and not
    /// yet taken are [`Self::unanswered`].
    pub async fn send(&mut self, msgs: &[Message]) -> Result<(), KsyncError> {
        self.send_each(msgs, Message::name, Message::encode).await
    }

    /// [`Self::send`] for flow requests (the flow thread's batches).
    pub async fn send_flows(&mut self, msgs: &[VrFlowReq]) -> Result<(), KsyncError> {
        self.send_each(msgs, |_| VrFlowReq::NAME, |m, o| m.encode(o))
            .await
    }

    async fn send_each<M>(
        &mut self,
        msgs: &[M],
        name: fn(&M) -> &'static str,
        encode: fn(&M, &mut Vec<u8>),
    ) -> Result<(), KsyncError> {
        if msgs.is_empty() {
            return Ok(());
        }
        self.buf.clear();
        for m in msgs {
            self.seq = self.seq.wrapping_add(1);
            let meta = Meta {
                family: GENL_ID_VROUTER,
                flags: NLM_F_REQUEST,
                seq: self.seq,
                pid: self.pid,
                version: 0,
            };
            frame::write_sandesh(&mut self.buf, &meta, Style::Request, |o| encode(m, o))
                .map_err(|e| KsyncError::Protocol(format!("encoding {}: {e}", name(m))))?;
        }
        let buf = std::mem::take(&mut self.buf);
        let sent = self.conn.send(&buf).await;
        self.buf = buf;
        sent.map_err(|e| self.chan(e))?;
        self.sent += msgs.len() as u64;
        self.unread += msgs.len();
        Ok(())
    }

    /// Answers sent with [`Self::send`] and not yet taken.
    pub fn unanswered(&self) -> usize {
        self.unread + self.stash.len()
    }

    /// The answers to the oldest `n` requests sent with [`Self::send`].
    pub async fn take(&mut self, n: usize) -> Result<Vec<Reply>, KsyncError> {
        if n > self.unanswered() {
            return Err(KsyncError::Protocol(format!(
                "{n} answers wanted, {} outstanding",
                self.unanswered()
            )));
        }
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            match self.stash.pop_front() {
                Some(r) => replies.push(r),
                None => {
                    let r = self.recv_one().await?;
                    self.unread -= 1;
                    replies.push(r);
                }
            }
        }
        Ok(replies)
    }

    /// Send `msgs` in one write; their answers, in order. Answers to
    /// earlier [`Self::send`]s that arrive first are kept for
    /// [`Self::take`].
    pub async fn call(&mut self, msgs: &[Message]) -> Result<Vec<Reply>, KsyncError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let earlier = self.unread;
        self.send(msgs).await?;
        for _ in 0..earlier {
            let r = self.recv_one().await?;
            self.stash.push_back(r);
        }
        let mut replies = Vec::with_capacity(msgs.len());
        for _ in 0..msgs.len() {
            replies.push(self.recv_one().await?);
        }
        self.unread -= earlier + msgs.len();
        Ok(replies)
    }

    /// The next answer on the connection (all parts of a multi-part one).
    /// Not cancel-safe: only awaited to completion.
    async fn recv_one(&mut self) -> Result<Reply, KsyncError> {
        let expect = self.expect;
        // The `vr_response` code once read; the objects after it are
        // decoded straight into the reply (a `Message` is a kilobyte, and
        // the flow thread reads two answers per new flow).
        let mut code = None;
        let mut objects = Vec::new();
        loop {
            let m = self
                .conn
                .recv()
                .await
                .map_err(|e| self.chan(e))?
                .ok_or(KsyncError::Closed)?;
            let (f, _) = Frame::parse(&m).map_err(|e| KsyncError::Protocol(e.to_string()))?;
            if f.header().seq != expect {
                return Err(KsyncError::Protocol(format!(
                    "answer to request {} while waiting for {expect}",
                    f.header().seq
                )));
            }
            let done = match f {
                Frame::Sandesh {
                    header, payload, ..
                } => {
                    for o in Messages::new(payload) {
                        let o = o.map_err(|e| KsyncError::Protocol(e.to_string()))?;
                        match (code, o) {
                            (None, Message::Response(VrResponse { resp_code, .. })) => {
                                code = Some(resp_code);
                            }
                            (None, other) => return Err(not_response_first(Some(&other))),
                            (Some(_), o) => objects.push(o),
                        }
                    }
                    header.flags & NLM_F_MULTI == 0
                }
                Frame::Done(_) => true,
                Frame::Error { error, .. } => {
                    return Err(KsyncError::Protocol(format!("netlink error {error}")))
                }
                Frame::Other { header, .. } => {
                    return Err(KsyncError::Protocol(format!(
                        "netlink message of type {}",
                        header.msg_type
                    )))
                }
            };
            if done {
                self.expect = expect.wrapping_add(1);
                let code = code.ok_or_else(|| not_response_first(None))?;
                return Ok(Reply { code, objects });
            }
        }
    }

    /// Resolves when the datapath closes the connection. Only for an idle
    /// client (no request outstanding); cancel-safe.
    pub async fn closed(&mut self) {
        loop {
            match self.conn.recv().await {
                Ok(Some(_)) => tracing::debug!("unsolicited ksync message ignored"),
                _ => return,
            }
        }
    }

    /// Apply `msgs` (ADD/DEL) and fail on the first refused one.
    pub async fn apply(&mut self, msgs: &[Message]) -> Result<(), KsyncError> {
        let replies = self.call(msgs).await?;
        for (m, r) in msgs.iter().zip(&replies) {
            if r.code < 0 {
                return Err(KsyncError::Refused {
                    what: describe(m),
                    code: r.code,
                });
            }
        }
        Ok(())
    }

    /// A whole dump, paged like upstream: `req(last)` builds the request
    /// resuming after the last object received.
    pub async fn dump(
        &mut self,
        mut req: impl FnMut(Option<&Message>) -> Message,
    ) -> Result<Vec<Message>, KsyncError> {
        let mut all: Vec<Message> = Vec::new();
        loop {
            let m = req(all.last());
            let mut r = self.call(std::slice::from_ref(&m)).await?;
            let r = r
                .pop()
                .ok_or_else(|| KsyncError::Protocol("dump without an answer".into()))?;
            if r.code < 0 {
                return Err(KsyncError::Refused {
                    what: describe(&m),
                    code: r.code,
                });
            }
            let got = r.objects.len();
            all.extend(r.objects);
            if r.code & DUMP_INCOMPLETE == 0 {
                return Ok(all);
            }
            if got == 0 {
                return Err(KsyncError::Protocol(
                    "dump page marked incomplete but empty".into(),
                ));
            }
        }
    }
}

impl KsyncClient {
    /// Every vif, paged.
    pub async fn dump_vifs(&mut self) -> Result<Vec<sandesh::VrInterfaceReq>, KsyncError> {
        let all = self.dump(::ksync::dump::vifs).await?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                Message::Interface(v) => Some(v),
                _ => None,
            })
            .collect())
    }
}

/// A short description of a request for errors and logs.
pub fn describe(m: &Message) -> String {
    match m {
        Message::Interface(r) => format!("vif {} ({})", r.vifr_idx, r.vifr_name),
        Message::Nexthop(r) => format!("nexthop {}", r.nhr_id),
        Message::Route(r) => format!(
            "route vrf {} family {} {:?}/{}",
            r.rtr_vrf_id, r.rtr_family, r.rtr_prefix, r.rtr_prefix_len
        ),
        Message::Mpls(r) => format!("mpls label {}", r.mr_label),
        Message::Vxlan(r) => format!("vxlan vni {}", r.vxlanr_vnid),
        Message::Flow(r) => format!("flow {}", r.fr_index),
        other => other.name().to_string(),
    }
}

/// An answer that does not start with a `vr_response`.
fn not_response_first(got: Option<&Message>) -> KsyncError {
    KsyncError::Protocol(format!(
        "expected vr_response first, got {:?}",
        got.map(Message::name)
    ))
}
