//! The ksync framing around Sandesh payloads: generic netlink, as upstream
//! vRouter uses it on every transport (a `NETLINK_GENERIC` socket to the
//! Linux module, a unix/TCP stream to the DPDK datapath, the
//! `\\.\vrouterKsync` device on Windows).
//!
//! ```text
//! nlmsghdr   len:u32 type:u16 flags:u16 seq:u32 pid:u32   16 bytes
//! genlmsghdr cmd:u8 (SANDESH_REQUEST = 1) version:u8 reserved:u16
//! nlattr     len:u16 type:u16 (NL_ATTR_VR_MESSAGE_PROTOCOL = 1)
//! payload    Sandesh objects
//! ```
//!
//! All header fields are in host byte order, as in netlink (the DPDK and
//! Windows transports copy the same C structs).
//!
//! # How upstream's datapaths answer ([`Framing`])
//!
//! Every upstream datapath answers each request message with one netlink
//! message per queued answer, echoing the request's `nlmsg_type` and
//! `seq`, `pid` 0, the request's `genlmsghdr` copied, and `nla_len` = the
//! payload length *without* the 4-byte attribute header. They differ in the
//! rest:
//!
//! | | DPDK (`dpdk/vr_dpdk_netlink.c`) | Windows driver (`windows/vr_ksync_kernel.c`, until 2019) |
//! |---|---|---|
//! | request payload | `nlmsg_len - 24` bytes; type, `nla_len` and `cmd` not looked at | `nla_len - 4` bytes |
//! | padding | none: `nlmsg_len` = 24 + payload | `NLMSG_ALIGN`ed to 4 bytes, counted in `nlmsg_len` |
//! | several answers | `NLM_F_MULTI` on all but the last, which has flags 0 | `NLM_F_MULTI` on all, then an `NLMSG_DONE` |
//!
//! (The Linux kernel module answers like the Windows driver.) A lone
//! answer has flags 0 in both. A client that reads answers until one
//! without `NLM_F_MULTI` handles both, as upstream's agent and tools do.
//!
//! The parser here ([`Frame::parse`]) accepts either answer convention for
//! `nla_len` (the two cannot be confused while the message is padded by
//! less than 4 bytes, which is all `NLMSG_ALIGN` adds), and any family id:
//! upstream's agent uses 10 on the DPDK socket, its tools `GENL_ID_VROUTER`.
//! On Linux netlink the id is resolved by name ([`FAMILY_NAME`]) through the
//! generic netlink controller ([`write_get_family`], [`ctrl_family_id`]).

use alloc::vec::Vec;
use core::fmt;

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Length of `struct genlmsghdr`.
pub const GENL_HDRLEN: usize = 4;
/// Length of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// Everything before the Sandesh payload (upstream's `NETLINK_HEADER_LEN`).
pub const HEADER_LEN: usize = NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN;

/// `nlmsg_flags`: a request.
pub const NLM_F_REQUEST: u16 = 1;
/// `nlmsg_flags`: part of a multipart answer.
pub const NLM_F_MULTI: u16 = 2;
/// `nlmsg_flags`: the sender wants an acknowledgement.
pub const NLM_F_ACK: u16 = 4;

/// `nlmsg_type`: nothing.
pub const NLMSG_NOOP: u16 = 1;
/// `nlmsg_type`: an error (or ACK, error 0) followed by the offending header.
pub const NLMSG_ERROR: u16 = 2;
/// `nlmsg_type`: the end of a multipart answer.
pub const NLMSG_DONE: u16 = 3;
/// `nlmsg_type`: data lost (never sent by a vRouter).
pub const NLMSG_OVERRUN: u16 = 4;
/// `nlmsg_type`: first type not reserved by netlink.
pub const NLMSG_MIN_TYPE: u16 = 0x10;
/// The family id upstream's agent puts in its requests on the DPDK socket
/// (`SetNetlinkFamilyId(10)` in `ksync_sock_uds.cc`); the datapath echoes it.
pub const AGENT_DPDK_FAMILY: u16 = 10;
/// `nlmsg_type` of the generic netlink controller.
pub const GENL_ID_CTRL: u16 = 0x10;
/// Family id of vRouter where there is no netlink controller (upstream's
/// `GENL_ID_VROUTER`, `NLMSG_MIN_TYPE + 0x10`).
pub const GENL_ID_VROUTER: u16 = NLMSG_MIN_TYPE + 0x10;
/// Name of the vRouter generic netlink family.
pub const FAMILY_NAME: &str = "vrouter";
/// Version the Linux module registers its family with.
pub const FAMILY_VERSION: u8 = 1;
/// Name of the vRouter multicast group (where the module broadcasts).
pub const MCAST_GROUP_NAME: &str = "VRouterGroup";

/// `genlmsghdr.cmd` of every ksync message.
pub const SANDESH_REQUEST: u8 = 1;
/// `nlattr.nla_type` of the Sandesh payload (`enum vnsw_nl_attrs`).
pub const NL_ATTR_VR_MESSAGE_PROTOCOL: u16 = 1;

/// Generic netlink controller: `CTRL_CMD_NEWFAMILY` (its answer).
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
/// Generic netlink controller: `CTRL_CMD_GETFAMILY`.
pub const CTRL_CMD_GETFAMILY: u8 = 3;
/// Controller attribute: family id (`u16`).
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
/// Controller attribute: family name (NUL-terminated).
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;

/// Attribute type bits that are flags, not the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `NLMSG_ALIGN` / `NLA_ALIGN`: rounds up to 4 bytes.
pub const fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Why a frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// Fewer bytes than a header, or than `nlmsg_len` says.
    Truncated,
    /// `nlmsg_len` is smaller than the headers it must hold.
    BadLength,
    /// The first attribute is not `NL_ATTR_VR_MESSAGE_PROTOCOL`, or its
    /// length fits neither the standard nor upstream's answer convention.
    BadAttribute,
    /// A payload too long for the 16-bit attribute length (builder only).
    TooLong,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Truncated => "netlink message truncated",
            FrameError::BadLength => "netlink message length too small",
            FrameError::BadAttribute => "bad sandesh netlink attribute",
            FrameError::TooLong => "sandesh payload too long for one netlink message",
        })
    }
}

impl core::error::Error for FrameError {}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([*s.first()?, *s.get(1)?]))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_ne_bytes(a))
}

/// `struct nlmsghdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NlMsgHdr {
    /// Length of the whole message, header included.
    pub len: u32,
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlMsgHdr {
    /// Reads the header at the start of `buf` (no check of `len`). A stream
    /// reader uses it to learn how many bytes the message takes.
    pub fn parse(buf: &[u8]) -> Result<NlMsgHdr, FrameError> {
        let t = FrameError::Truncated;
        Ok(NlMsgHdr {
            len: ne_u32(buf, 0).ok_or(t)?,
            msg_type: ne_u16(buf, 4).ok_or(t)?,
            flags: ne_u16(buf, 6).ok_or(t)?,
            seq: ne_u32(buf, 8).ok_or(t)?,
            pid: ne_u32(buf, 12).ok_or(t)?,
        })
    }

    /// Appends the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_ne_bytes());
        out.extend_from_slice(&self.msg_type.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// One parsed netlink message; payloads borrow from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A vRouter message: the Sandesh objects of its
    /// `NL_ATTR_VR_MESSAGE_PROTOCOL` attribute.
    Sandesh {
        header: NlMsgHdr,
        /// `genlmsghdr.cmd` (always [`SANDESH_REQUEST`] upstream).
        cmd: u8,
        /// `genlmsghdr.version`.
        version: u8,
        payload: &'a [u8],
    },
    /// `NLMSG_DONE`: the end of a multipart answer.
    Done(NlMsgHdr),
    /// `NLMSG_ERROR`: a negative errno, or 0 for an acknowledgement.
    Error { header: NlMsgHdr, error: i32 },
    /// Anything else (`NLMSG_NOOP`, controller messages): the bytes after
    /// the `nlmsghdr`.
    Other { header: NlMsgHdr, payload: &'a [u8] },
}

impl<'a> Frame<'a> {
    /// Parses the message at the start of `buf`. Returns it and `nlmsg_len`,
    /// where the next message starts: on a stream transport messages follow
    /// each other exactly (DPDK's answers and upstream's requests are not
    /// padded), and what the Linux module and Windows driver send is padded
    /// inside `nlmsg_len` already.
    pub fn parse(buf: &'a [u8]) -> Result<(Frame<'a>, usize), FrameError> {
        let header = NlMsgHdr::parse(buf)?;
        let len = usize::try_from(header.len).map_err(|_| FrameError::Truncated)?;
        if len < NLMSG_HDRLEN {
            return Err(FrameError::BadLength);
        }
        let msg = buf.get(..len).ok_or(FrameError::Truncated)?;
        let body = msg.get(NLMSG_HDRLEN..).unwrap_or_default();
        let frame = match header.msg_type {
            NLMSG_DONE => Frame::Done(header),
            NLMSG_ERROR => {
                let e = ne_u32(body, 0).ok_or(FrameError::BadLength)?;
                Frame::Error {
                    header,
                    error: e as i32,
                }
            }
            // Netlink's own types and the controller; every other type is
            // a vRouter family id (10 from upstream's agent, 0x20 from its
            // tools, whatever the Linux controller assigned).
            NLMSG_NOOP | NLMSG_OVERRUN | GENL_ID_CTRL => Frame::Other {
                header,
                payload: body,
            },
            _ => {
                let cmd = *body.first().ok_or(FrameError::BadLength)?;
                let version = *body.get(1).ok_or(FrameError::BadLength)?;
                let nla_len = ne_u16(body, GENL_HDRLEN).ok_or(FrameError::BadLength)?;
                let nla_type = ne_u16(body, GENL_HDRLEN + 2).ok_or(FrameError::BadLength)?;
                if nla_type & NLA_TYPE_MASK != NL_ATTR_VR_MESSAGE_PROTOCOL {
                    return Err(FrameError::BadAttribute);
                }
                let avail = len - HEADER_LEN.min(len);
                let n = sandesh_len(usize::from(nla_len), avail)?;
                let payload = body
                    .get(GENL_HDRLEN + NLA_HDRLEN..GENL_HDRLEN + NLA_HDRLEN + n)
                    .ok_or(FrameError::Truncated)?;
                Frame::Sandesh {
                    header,
                    cmd,
                    version,
                    payload,
                }
            }
        };
        Ok((frame, len))
    }

    /// The netlink header.
    pub fn header(&self) -> &NlMsgHdr {
        match self {
            Frame::Sandesh { header, .. }
            | Frame::Done(header)
            | Frame::Error { header, .. }
            | Frame::Other { header, .. } => header,
        }
    }
}

/// The payload length an attribute of `nla_len` announces when `avail`
/// bytes follow its header: standard (`nla_len` counts the header) or
/// upstream's answer convention (it does not). At most 3 bytes of padding
/// may follow, which keeps the two apart.
fn sandesh_len(nla_len: usize, avail: usize) -> Result<usize, FrameError> {
    let fits = |n: usize| n <= avail && avail - n <= 3;
    match nla_len.checked_sub(NLA_HDRLEN) {
        Some(n) if fits(n) => Ok(n),
        _ if fits(nla_len) => Ok(nla_len),
        _ => Err(FrameError::BadAttribute),
    }
}

/// Iterator over the netlink messages of one buffer (a datagram, or what a
/// stream reader has collected), each starting where the previous one's
/// `nlmsg_len` ends. It stops after the first error.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        match Frame::parse(self.buf) {
            Ok((f, n)) => {
                self.buf = self.buf.get(n..).unwrap_or_default();
                Some(Ok(f))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Frames<'_> {}

/// Iterates over the netlink messages in `buf`.
pub fn parse_all(buf: &[u8]) -> Frames<'_> {
    Frames { buf, failed: false }
}

/// How the builder writes the Sandesh attribute and pads the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Style {
    /// As upstream's clients send requests: `nla_len` = 4 + payload,
    /// `nlmsg_len` exact, no padding.
    Request,
    /// As upstream's DPDK datapath answers: `nla_len` = payload length,
    /// `nlmsg_len` = 24 + payload, no padding.
    Response,
    /// As the Linux module and the Windows driver answer: `nla_len` =
    /// payload length, message zero-padded to 4 bytes (`NLMSG_ALIGN`) and
    /// `nlmsg_len` counting the padding.
    PaddedResponse,
}

/// Which upstream datapath's answer framing a server writes (see the
/// module docs for the differences).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Upstream's DPDK datapath on its unix socket: what upstream's agent
    /// and tools expect there.
    Dpdk,
    /// Upstream's Windows driver on `\\.\vrouterKsync` (and the Linux
    /// kernel module): padded, `NLM_F_MULTI` on every part, `NLMSG_DONE`.
    Windows,
}

impl Framing {
    /// The framing of this platform's transport: [`Framing::Windows`] on
    /// Windows (the pipe replaces upstream's Windows device), else
    /// [`Framing::Dpdk`] (the unix socket replaces upstream's DPDK socket).
    pub const NATIVE: Framing = if cfg!(windows) {
        Framing::Windows
    } else {
        Framing::Dpdk
    };

    /// The attribute and padding style of the answers.
    pub const fn style(self) -> Style {
        match self {
            Framing::Dpdk => Style::Response,
            Framing::Windows => Style::PaddedResponse,
        }
    }
}

/// One request message as an upstream datapath reads it ([`parse_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub header: NlMsgHdr,
    /// The `genlmsghdr` bytes, copied into every answer.
    pub genl: [u8; GENL_HDRLEN],
    /// The Sandesh objects.
    pub payload: &'a [u8],
}

/// The request message at the start of `buf`, read as an upstream
/// datapath of `framing` reads it: any `nlmsg_type`, any `cmd`; the payload
/// is `nlmsg_len - 24` bytes ([`Framing::Dpdk`]) or `nla_len - 4`
/// ([`Framing::Windows`]). Returns it and `nlmsg_len`.
///
/// Errors: [`FrameError::Truncated`] when `buf` is shorter than the header
/// or than `nlmsg_len`, [`FrameError::BadLength`] for an `nlmsg_len` below
/// 16 (neither delimits the message), [`FrameError::BadAttribute`] for a
/// message that is delimited but too short for the 24 header bytes, or
/// whose `nla_len` does not fit it (Windows).
pub fn parse_request(buf: &[u8], framing: Framing) -> Result<(Request<'_>, usize), FrameError> {
    let header = NlMsgHdr::parse(buf)?;
    let len = usize::try_from(header.len).map_err(|_| FrameError::Truncated)?;
    if len < NLMSG_HDRLEN {
        return Err(FrameError::BadLength);
    }
    let msg = buf.get(..len).ok_or(FrameError::Truncated)?;
    let genl: [u8; GENL_HDRLEN] = msg
        .get(NLMSG_HDRLEN..NLMSG_HDRLEN + GENL_HDRLEN)
        .and_then(|g| g.try_into().ok())
        .ok_or(FrameError::BadAttribute)?;
    let payload = match framing {
        Framing::Dpdk => msg.get(HEADER_LEN..),
        Framing::Windows => ne_u16(msg, NLMSG_HDRLEN + GENL_HDRLEN)
            .and_then(|n| usize::from(n).checked_sub(NLA_HDRLEN))
            .and_then(|n| msg.get(HEADER_LEN..HEADER_LEN.checked_add(n)?)),
    }
    .ok_or(FrameError::BadAttribute)?;
    Ok((
        Request {
            header,
            genl,
            payload,
        },
        len,
    ))
}

/// Fields of a message the builder writes; lengths are filled in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    /// The vRouter family id ([`GENL_ID_VROUTER`] off Linux).
    pub family: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// `genlmsghdr.version`: upstream clients send 0, answers echo it.
    pub version: u8,
}

/// Appends one vRouter netlink message whose Sandesh payload `body`
/// writes (e.g. with [`Message::encode`](crate::Message::encode) for each
/// object). Returns the bytes appended.
///
/// [`FrameError::TooLong`] (and nothing appended) if the payload does not
/// fit the 16-bit `nla_len`; upstream's buffers are 4 to 16 KiB, so a
/// dump is split into several messages long before that.
pub fn write_sandesh(
    out: &mut Vec<u8>,
    meta: &Meta,
    style: Style,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<usize, FrameError> {
    let genl = [SANDESH_REQUEST, meta.version, 0, 0];
    write_sandesh_genl(out, meta, genl, style, body)
}

/// [`write_sandesh`] with the whole `genlmsghdr` given (`meta.version` is
/// not used): a datapath answers with a copy of the request's.
pub fn write_sandesh_genl(
    out: &mut Vec<u8>,
    meta: &Meta,
    genl: [u8; GENL_HDRLEN],
    style: Style,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<usize, FrameError> {
    let start = out.len();
    NlMsgHdr {
        len: 0,
        msg_type: meta.family,
        flags: meta.flags,
        seq: meta.seq,
        pid: meta.pid,
    }
    .write(out);
    out.extend_from_slice(&genl);
    let nla_at = out.len();
    out.extend_from_slice(&[0; NLA_HDRLEN]);
    let payload_at = out.len();
    body(out);
    let n = out.len() - payload_at;
    let nla_len = match style {
        Style::Request => n + NLA_HDRLEN,
        Style::Response | Style::PaddedResponse => n,
    };
    let Ok(nla_len) = u16::try_from(nla_len) else {
        out.truncate(start);
        return Err(FrameError::TooLong);
    };
    if style == Style::PaddedResponse {
        out.resize(start + align4(out.len() - start), 0);
    }
    let total = out.len() - start;
    patch(out, nla_at, &nla_len.to_ne_bytes());
    patch(out, nla_at + 2, &NL_ATTR_VR_MESSAGE_PROTOCOL.to_ne_bytes());
    // At most 16 + 4 + 4 + 65535 + 3 bytes: fits.
    patch(out, start, &(total as u32).to_ne_bytes());
    Ok(total)
}

fn patch(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Appends an `NLMSG_DONE` message (16 bytes, as upstream ends a
/// multipart answer).
pub fn write_done(out: &mut Vec<u8>, seq: u32, pid: u32) {
    NlMsgHdr {
        len: NLMSG_HDRLEN as u32,
        msg_type: NLMSG_DONE,
        flags: 0,
        seq,
        pid,
    }
    .write(out);
}

/// Appends a generic netlink controller request for the id of `family`
/// (`CTRL_CMD_GETFAMILY` with `CTRL_ATTR_FAMILY_NAME`).
pub fn write_get_family(out: &mut Vec<u8>, family: &str, seq: u32, pid: u32) {
    let start = out.len();
    NlMsgHdr {
        len: 0,
        msg_type: GENL_ID_CTRL,
        flags: NLM_F_REQUEST,
        seq,
        pid,
    }
    .write(out);
    out.extend_from_slice(&[CTRL_CMD_GETFAMILY, 0, 0, 0]);
    let name_len = family.len().min(usize::from(u16::MAX) - NLA_HDRLEN - 1) + 1;
    out.extend_from_slice(&((NLA_HDRLEN + name_len) as u16).to_ne_bytes());
    out.extend_from_slice(&CTRL_ATTR_FAMILY_NAME.to_ne_bytes());
    out.extend_from_slice(family.as_bytes().get(..name_len - 1).unwrap_or_default());
    out.push(0);
    out.resize(start + align4(out.len() - start), 0);
    let total = (out.len() - start) as u32;
    patch(out, start, &total.to_ne_bytes());
}

/// Standard netlink attributes (`nla_len` counts the header, each aligned
/// to 4 bytes): `(type, value)` pairs, the type without flag bits. Stops at
/// the first malformed attribute.
pub fn attributes(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    core::iter::from_fn(move || {
        let len = usize::from(ne_u16(buf, 0)?);
        let ty = ne_u16(buf, 2)? & NLA_TYPE_MASK;
        let value = buf.get(NLA_HDRLEN..len)?;
        buf = buf.get(align4(len).min(buf.len())..)?;
        Some((ty, value))
    })
}

/// The family id in a controller answer ([`Frame::Other`] of type
/// [`GENL_ID_CTRL`], command `CTRL_CMD_NEWFAMILY`), if it has one.
pub fn ctrl_family_id(frame: &Frame<'_>) -> Option<u16> {
    let Frame::Other { header, payload } = frame else {
        return None;
    };
    if header.msg_type != GENL_ID_CTRL || *payload.first()? != CTRL_CMD_NEWFAMILY {
        return None;
    }
    attributes(payload.get(GENL_HDRLEN..)?)
        .find(|(t, _)| *t == CTRL_ATTR_FAMILY_ID)
        .and_then(|(_, v)| ne_u16(v, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Sandesh, SandeshOp, VrResponse, VrVrfReq};
    use alloc::vec;

    fn resp() -> VrResponse {
        VrResponse {
            h_op: SandeshOp::Response,
            resp_code: 0,
        }
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn request_bytes() {
        let mut out = Vec::new();
        let meta = Meta {
            family: 0x20,
            flags: NLM_F_REQUEST,
            seq: 7,
            pid: 0,
            version: 0,
        };
        let req = VrVrfReq {
            h_op: SandeshOp::Get,
            vrf_idx: 1,
            ..Default::default()
        };
        let sandesh = req.to_bytes();
        let n = write_sandesh(&mut out, &meta, Style::Request, |o| {
            o.extend_from_slice(&sandesh)
        })
        .unwrap();
        let total = HEADER_LEN + sandesh.len();
        assert_eq!(n, total);
        let mut want = vec![];
        want.extend_from_slice(&(total as u32).to_le_bytes());
        want.extend_from_slice(&[0x20, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&((sandesh.len() + 4) as u16).to_le_bytes());
        want.extend_from_slice(&[1, 0]);
        want.extend_from_slice(&sandesh);
        assert_eq!(out, want);

        let (f, used) = Frame::parse(&out).unwrap();
        assert_eq!(used, out.len());
        let Frame::Sandesh {
            header,
            cmd,
            version,
            payload,
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!(
            (header.seq, header.flags, cmd, version),
            (7, NLM_F_REQUEST, 1, 0)
        );
        assert_eq!(payload, &sandesh[..]);
    }

    /// An upstream-style multipart answer: response-style attributes,
    /// padding, NLM_F_MULTI, then NLMSG_DONE; all in one datagram.
    #[test]
    fn multipart_answer() {
        let mut out = Vec::new();
        let meta = Meta {
            family: 0x1a,
            flags: NLM_F_MULTI,
            seq: 9,
            pid: 0,
            version: 0,
        };
        let vrfs: Vec<VrVrfReq> = (0..3)
            .map(|i| VrVrfReq {
                h_op: SandeshOp::Get,
                vrf_idx: i,
                ..Default::default()
            })
            .collect();
        for v in &vrfs {
            let n = write_sandesh(&mut out, &meta, Style::PaddedResponse, |o| {
                resp().encode(o);
                v.encode(o);
            })
            .unwrap();
            assert_eq!(n % 4, 0);
        }
        write_done(&mut out, 9, 0);

        let frames: Vec<_> = parse_all(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 4);
        for (f, v) in frames.iter().zip(&vrfs) {
            let Frame::Sandesh {
                header, payload, ..
            } = f
            else {
                panic!("{f:?}")
            };
            assert_eq!((header.flags, header.seq), (NLM_F_MULTI, 9));
            let msgs = Message::decode_all(payload).unwrap();
            assert_eq!(msgs, [Message::Response(resp()), Message::Vrf(v.clone())]);
        }
        assert!(matches!(frames[3], Frame::Done(h) if h.seq == 9 && h.len == 16));
    }

    /// DPDK answers are not padded and still use the answer convention.
    #[test]
    fn unpadded_answer_and_padded_request() {
        let body = resp().to_bytes(); // 34 bytes: not a multiple of 4
        assert_ne!(body.len() % 4, 0);
        for (nla_len, pad) in [
            (body.len(), 0),
            (body.len(), 3),
            (body.len() + 4, 0),
            (body.len() + 4, 2),
        ] {
            let mut m = Vec::new();
            let total = HEADER_LEN + body.len() + pad;
            NlMsgHdr {
                len: total as u32,
                msg_type: 0x20,
                ..Default::default()
            }
            .write(&mut m);
            m.extend_from_slice(&[1, 1, 0, 0]);
            m.extend_from_slice(&(nla_len as u16).to_ne_bytes());
            m.extend_from_slice(&1u16.to_ne_bytes());
            m.extend_from_slice(&body);
            m.resize(total, 0);
            let (f, _) = Frame::parse(&m).unwrap();
            assert!(matches!(f, Frame::Sandesh { payload, .. } if payload == &body[..]));
        }
    }

    #[test]
    fn errors_and_others() {
        assert_eq!(Frame::parse(&[0; 15]), Err(FrameError::Truncated));
        let mut m = Vec::new();
        NlMsgHdr {
            len: 8,
            msg_type: 0x20,
            ..Default::default()
        }
        .write(&mut m);
        assert_eq!(Frame::parse(&m), Err(FrameError::BadLength));
        let mut m = Vec::new();
        NlMsgHdr {
            len: 40,
            msg_type: 0x20,
            ..Default::default()
        }
        .write(&mut m);
        assert_eq!(Frame::parse(&m), Err(FrameError::Truncated));
        // Wrong attribute type.
        let mut m = Vec::new();
        write_sandesh(
            &mut m,
            &Meta {
                family: 0x20,
                ..Default::default()
            },
            Style::Request,
            |o| o.extend_from_slice(&[0; 8]),
        )
        .unwrap();
        m[HEADER_LEN - 2..HEADER_LEN].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(Frame::parse(&m), Err(FrameError::BadAttribute));
        // Attribute length that fits neither convention.
        m[HEADER_LEN - 2..HEADER_LEN].copy_from_slice(&1u16.to_ne_bytes());
        m[HEADER_LEN - 4..HEADER_LEN - 2].copy_from_slice(&40u16.to_ne_bytes());
        assert_eq!(Frame::parse(&m), Err(FrameError::BadAttribute));

        // NLMSG_ERROR with -EPERM and the offending header.
        let mut m = Vec::new();
        NlMsgHdr {
            len: 36,
            msg_type: NLMSG_ERROR,
            seq: 3,
            ..Default::default()
        }
        .write(&mut m);
        m.extend_from_slice(&(-1i32).to_ne_bytes());
        NlMsgHdr {
            len: 16,
            msg_type: 0x20,
            seq: 3,
            ..Default::default()
        }
        .write(&mut m);
        let (f, n) = Frame::parse(&m).unwrap();
        assert_eq!(n, 36);
        assert!(matches!(f, Frame::Error { error: -1, header } if header.seq == 3));
    }

    #[test]
    fn too_long() {
        let mut out = vec![1, 2, 3];
        let meta = Meta {
            family: GENL_ID_VROUTER,
            ..Default::default()
        };
        let r = write_sandesh(&mut out, &meta, Style::Request, |o| {
            o.resize(o.len() + 65532, 0)
        });
        assert_eq!(r, Err(FrameError::TooLong));
        assert_eq!(out, [1, 2, 3]);
        let r = write_sandesh(&mut out, &meta, Style::PaddedResponse, |o| {
            o.resize(o.len() + 65535, 0)
        });
        assert_eq!(r, Ok(HEADER_LEN + 65536));
        let (f, n) = Frame::parse(&out[3..]).unwrap();
        assert_eq!(n, HEADER_LEN + 65536);
        assert!(matches!(f, Frame::Sandesh { payload, .. } if payload.len() == 65535));
    }

    #[test]
    fn family_lookup() {
        let mut req = Vec::new();
        write_get_family(&mut req, FAMILY_NAME, 1, 0);
        assert_eq!(req.len(), 16 + 4 + 4 + 8);
        let (f, _) = Frame::parse(&req).unwrap();
        let Frame::Other { header, payload } = f else {
            panic!("{f:?}")
        };
        assert_eq!(
            (header.msg_type, header.flags),
            (GENL_ID_CTRL, NLM_F_REQUEST)
        );
        assert_eq!(payload[0], CTRL_CMD_GETFAMILY);
        let attrs: Vec<_> = attributes(&payload[4..]).collect();
        assert_eq!(attrs, [(CTRL_ATTR_FAMILY_NAME, &b"vrouter\0"[..])]);

        // A controller answer: name, then id 0x1c.
        let mut ans = Vec::new();
        NlMsgHdr {
            len: 0,
            msg_type: GENL_ID_CTRL,
            seq: 1,
            ..Default::default()
        }
        .write(&mut ans);
        ans.extend_from_slice(&[CTRL_CMD_NEWFAMILY, 2, 0, 0]);
        ans.extend_from_slice(&12u16.to_ne_bytes());
        ans.extend_from_slice(&CTRL_ATTR_FAMILY_NAME.to_ne_bytes());
        ans.extend_from_slice(b"vrouter\0");
        ans.extend_from_slice(&6u16.to_ne_bytes());
        ans.extend_from_slice(&CTRL_ATTR_FAMILY_ID.to_ne_bytes());
        ans.extend_from_slice(&0x1cu16.to_ne_bytes());
        ans.extend_from_slice(&[0, 0]);
        let len = ans.len() as u32;
        ans[..4].copy_from_slice(&len.to_ne_bytes());
        let (f, _) = Frame::parse(&ans).unwrap();
        assert_eq!(ctrl_family_id(&f), Some(0x1c));
    }

    /// DPDK answers: `nla_len` = payload, `nlmsg_len` = 24 + payload.
    #[test]
    fn dpdk_answer_is_exact() {
        let body = resp().to_bytes();
        let mut out = Vec::new();
        let meta = Meta {
            family: AGENT_DPDK_FAMILY,
            flags: NLM_F_MULTI,
            seq: 5,
            pid: 0,
            version: 0,
        };
        let n = write_sandesh_genl(&mut out, &meta, [1, 7, 9, 9], Style::Response, |o| {
            o.extend_from_slice(&body)
        })
        .unwrap();
        assert_eq!(n, HEADER_LEN + body.len());
        assert_eq!(out.len(), n);
        assert_eq!(&out[..4], &(n as u32).to_ne_bytes());
        assert_eq!(&out[16..20], &[1, 7, 9, 9]);
        assert_eq!(&out[20..22], &(body.len() as u16).to_ne_bytes());
        // Family 10 is a vRouter family, not a netlink control type.
        let (f, _) = Frame::parse(&out).unwrap();
        assert!(matches!(f, Frame::Sandesh { header, payload, .. }
            if header.msg_type == 10 && payload == &body[..]));
    }

    #[test]
    fn requests_as_each_datapath_reads_them() {
        let body = resp().to_bytes();
        let mut m = Vec::new();
        let meta = Meta {
            family: AGENT_DPDK_FAMILY,
            flags: NLM_F_REQUEST,
            seq: 1,
            pid: 77,
            version: 0,
        };
        write_sandesh(&mut m, &meta, Style::Request, |o| {
            o.extend_from_slice(&body)
        })
        .unwrap();
        for framing in [Framing::Dpdk, Framing::Windows] {
            let (r, n) = parse_request(&m, framing).unwrap();
            assert_eq!((n, r.payload, r.header.msg_type), (m.len(), &body[..], 10));
            assert_eq!(r.genl, [SANDESH_REQUEST, 0, 0, 0]);
        }
        // DPDK ignores nla_len and the attribute type; Windows reads nla_len.
        let mut odd = m.clone();
        odd[20..22].copy_from_slice(&8u16.to_ne_bytes());
        odd[22..24].copy_from_slice(&9u16.to_ne_bytes());
        assert_eq!(
            parse_request(&odd, Framing::Dpdk).unwrap().0.payload,
            &body[..]
        );
        assert_eq!(
            parse_request(&odd, Framing::Windows).unwrap().0.payload,
            &body[..4]
        );
        odd[20..22].copy_from_slice(&2u16.to_ne_bytes());
        assert_eq!(
            parse_request(&odd, Framing::Windows),
            Err(FrameError::BadAttribute)
        );
        odd[20..22].copy_from_slice(&999u16.to_ne_bytes());
        assert_eq!(
            parse_request(&odd, Framing::Windows),
            Err(FrameError::BadAttribute)
        );
        // Too short for the headers but delimited; not delimited; cut.
        let mut short = m[..20].to_vec();
        short[..4].copy_from_slice(&20u32.to_ne_bytes());
        assert_eq!(
            parse_request(&short, Framing::Dpdk),
            Err(FrameError::BadAttribute)
        );
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(
            parse_request(&short, Framing::Dpdk),
            Err(FrameError::BadLength)
        );
        assert_eq!(
            parse_request(&m[..m.len() - 1], Framing::Dpdk),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            Framing::NATIVE.style(),
            if cfg!(windows) {
                Style::PaddedResponse
            } else {
                Style::Response
            }
        );
    }
}
