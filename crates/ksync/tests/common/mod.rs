//! A datapath driven through real netlink + Sandesh bytes, and the checks
//! every answer must pass.

#![allow(dead_code, clippy::unwrap_used)]

use dp_core::{Router, RouterConfig, VifConfig};
use ksync::{Handled, Handler, HostInfo, HostOps, VR_MESSAGE_DUMP_INCOMPLETE};
use sandesh::frame::{
    self, Frame, Framing, Meta, Style, GENL_ID_VROUTER, NLM_F_MULTI, NLM_F_REQUEST,
};
use sandesh::{Message, VrInterfaceReq, VrResponse};

/// Records what the handler asked of the host.
#[derive(Debug, Default)]
pub struct TestHost {
    pub added: Vec<u16>,
    pub deleted: Vec<u16>,
    pub released: Vec<u32>,
    pub dropped: Vec<u32>,
    pub fail_add: Option<i32>,
    pub guids: Vec<Vec<u8>>,
    pub info: HostInfo,
}

impl HostOps for TestHost {
    fn vif_add(&mut self, cfg: &VifConfig, req: &VrInterfaceReq) -> Result<(), i32> {
        if let Some(e) = self.fail_add {
            return Err(e);
        }
        self.added.push(cfg.idx);
        self.guids.push(req.vifr_if_guid.clone());
        Ok(())
    }
    fn vif_del(&mut self, idx: u16) {
        self.deleted.push(idx);
    }
    fn flow_released(&mut self, idx: u32) {
        self.released.push(idx);
    }
    fn flow_deleted(&mut self, idx: u32) {
        self.dropped.push(idx);
    }
    fn host_info(&self) -> HostInfo {
        self.info.clone()
    }
}

/// One answer message: its objects.
pub type Answer = Vec<Message>;

pub struct Dp {
    pub router: Router,
    pub handler: Handler,
    pub host: TestHost,
    pub seq: u32,
    pub last: Handled,
}

/// One request message holding `objs`, as upstream clients frame it.
pub fn request(objs: &[Message], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let meta = Meta {
        family: GENL_ID_VROUTER,
        flags: NLM_F_REQUEST,
        seq,
        pid: 4242,
        version: 0,
    };
    frame::write_sandesh(&mut out, &meta, Style::Request, |o| {
        for m in objs {
            m.encode(o);
        }
    })
    .unwrap();
    out
}

/// Splits `out` into the answers of each request (by seq order), checking
/// the framing of upstream's datapath of that kind byte for byte: type
/// echoed, `pid` 0, `nla_len` = payload length; DPDK: no padding,
/// `nlmsg_len` = 24 + payload, `NLM_F_MULTI` on all but the last, no
/// `NLMSG_DONE`; Windows: 4-byte padding, `NLM_F_MULTI` on every message
/// and a closing `NLMSG_DONE` when there are several. A lone answer has
/// flags 0 in both.
pub fn answers(out: &[u8], framing: Framing) -> Vec<(u32, Vec<Answer>)> {
    let frames: Vec<Frame<'_>> = frame::parse_all(out).collect::<Result<_, _>>().unwrap();
    let mut res: Vec<(u32, Vec<Answer>)> = Vec::new();
    let mut at = 0usize;
    let mut i = 0;
    let mut group: Vec<Answer> = Vec::new();
    let mut group_seq = None;
    while i < frames.len() {
        match &frames[i] {
            Frame::Sandesh {
                header, payload, ..
            } => {
                let nla_len = u16::from_ne_bytes([out[at + 20], out[at + 21]]) as usize;
                assert_eq!(nla_len, payload.len(), "nla_len is the payload length");
                match framing {
                    Framing::Dpdk => assert_eq!(header.len as usize, 24 + payload.len()),
                    Framing::Windows => {
                        assert_eq!(header.len % 4, 0, "padded to 4 bytes");
                        assert!(header.len as usize - 24 - payload.len() < 4);
                    }
                }
                assert_eq!(header.msg_type, GENL_ID_VROUTER);
                assert_eq!(header.pid, 0);
                if let Some(s) = group_seq {
                    assert_eq!(header.seq, s, "parts of one answer share the seq");
                }
                group_seq = Some(header.seq);
                group.push(Message::decode_all(payload).unwrap());
                at += header.len as usize;
                let more = header.flags & NLM_F_MULTI != 0;
                assert_eq!(header.flags & !NLM_F_MULTI, 0);
                match framing {
                    Framing::Dpdk if !more => {
                        res.push((header.seq, std::mem::take(&mut group)));
                        group_seq = None;
                    }
                    Framing::Windows if !more => {
                        assert_eq!(group.len(), 1, "a lone answer has flags 0");
                        res.push((header.seq, std::mem::take(&mut group)));
                        group_seq = None;
                    }
                    _ => {}
                }
            }
            Frame::Done(h) => {
                assert_eq!(framing, Framing::Windows, "DPDK sends no NLMSG_DONE");
                assert_eq!((Some(h.seq), h.len, h.flags, h.pid), (group_seq, 16, 0, 0));
                assert!(group.len() > 1, "NLM_F_MULTI on a lone answer");
                res.push((h.seq, std::mem::take(&mut group)));
                group_seq = None;
                at += 16;
            }
            other => panic!("unexpected {other:?}"),
        }
        i += 1;
    }
    assert!(group.is_empty(), "answer not terminated");
    assert_eq!(at, out.len());
    res
}

/// The `resp_code` of an answer that starts with a `vr_response`.
pub fn code(a: &Answer) -> i32 {
    match a.first() {
        Some(Message::Response(VrResponse { resp_code, .. })) => *resp_code,
        other => panic!("answer does not start with vr_response: {other:?}"),
    }
}

impl Dp {
    pub fn new() -> Dp {
        Dp::with(Handler::new(), RouterConfig::small())
    }

    pub fn with(handler: Handler, cfg: RouterConfig) -> Dp {
        Dp {
            router: Router::new(cfg).unwrap(),
            handler,
            host: TestHost::default(),
            seq: 0,
            last: Handled::default(),
        }
    }

    /// Feeds raw bytes; returns the raw answer bytes.
    pub fn raw(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.last = self
            .handler
            .handle(&mut self.router, &mut self.host, input, &mut out);
        out
    }

    /// Feeds raw bytes; their answers, split and checked by [`answers`].
    pub fn answers(&mut self, input: &[u8]) -> Vec<(u32, Vec<Answer>)> {
        let out = self.raw(input);
        answers(&out, self.handler.framing())
    }

    /// One request message with `objs`; its answers.
    pub fn send(&mut self, objs: &[Message]) -> Vec<Answer> {
        self.seq += 1;
        let out = self.raw(&request(objs, self.seq));
        let mut a = answers(&out, self.handler.framing());
        assert_eq!(a.len(), 1);
        let (seq, group) = a.pop().unwrap();
        assert_eq!(seq, self.seq);
        group
    }

    /// One request object; its (single) answer message.
    pub fn one(&mut self, m: impl Into<Message>) -> Answer {
        let mut g = self.send(&[m.into()]);
        assert_eq!(g.len(), 1, "expected one answer message: {g:?}");
        g.pop().unwrap()
    }

    /// The `resp_code` of a request that answers with a lone vr_response.
    pub fn code(&mut self, m: impl Into<Message>) -> i32 {
        let a = self.one(m);
        assert_eq!(a.len(), 1, "expected a lone vr_response: {a:?}");
        code(&a)
    }

    /// A GET: the object after a 0 vr_response, or the error code.
    pub fn get(&mut self, m: impl Into<Message>) -> Result<Message, i32> {
        let a = self.one(m);
        match code(&a) {
            0 => {
                assert_eq!(a.len(), 2, "{a:?}");
                Ok(a[1].clone())
            }
            e => {
                assert_eq!(a.len(), 1, "no object on error: {a:?}");
                Err(e)
            }
        }
    }

    /// One dump page: (resp_code, objects). Checks the count semantics.
    pub fn dump_page(&mut self, m: impl Into<Message>) -> (i32, Vec<Message>) {
        let g = self.send(&[m.into()]);
        let c = code(&g[0]);
        assert_eq!(g[0].len(), 1, "the count comes alone");
        let objs: Vec<Message> = g.get(1).cloned().unwrap_or_default();
        assert_eq!(g.len(), if objs.is_empty() { 1 } else { 2 });
        assert!(c >= 0);
        assert_eq!((c & !VR_MESSAGE_DUMP_INCOMPLETE) as usize, objs.len());
        (c, objs)
    }

    /// A whole dump, as upstream clients loop: ask again with the last
    /// object's marker while the incomplete bit is set. Returns the
    /// objects and the number of pages.
    pub fn dump_all(
        &mut self,
        mut req: impl FnMut(Option<&Message>) -> Message,
    ) -> (Vec<Message>, usize) {
        let mut all: Vec<Message> = Vec::new();
        let mut pages = 0;
        loop {
            let (c, objs) = self.dump_page(req(all.last()));
            pages += 1;
            all.extend(objs);
            if c & VR_MESSAGE_DUMP_INCOMPLETE == 0 {
                return (all, pages);
            }
            assert!(pages < 10_000, "dump does not end");
        }
    }
}
