//! Cutting the byte stream into frames, the way upstream's `XmppSession`
//! does.
//!
//! Upstream never parses the stream as one XML document. It matches the
//! stream header (`<stream:stream` up to the `>` after the namespace), then
//! each stanza from `<iq` or `<message` to the first `</iq>` /
//! `</message>`, and treats any run of whitespace between them (space,
//! tab, CR, LF and U+0200, which is what it sends as a keepalive) as a
//! keepalive. TLS negotiation adds `<stream:features>`, `<starttls/>` and
//! `<proceed/>`; `</stream:stream>` closes. An XML declaration before a
//! stanza is allowed (the control node's config messages carry one).
//!
//! [`Framer`] does the same on a growing buffer: feed it what the socket
//! gave, take frames until it needs more. Bytes that start none of the
//! above are skipped up to the next frame start and reported as
//! [`Frame::Junk`] (upstream logs and drops them too); a frame larger than
//! the limit is an error (the session must close).

/// What the stream carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `<stream:stream ...>`: its attributes.
    StreamOpen(Vec<(String, String)>),
    /// `<stream:features>`; whether it offers STARTTLS.
    Features { starttls: bool },
    /// `<starttls .../>` (client to server).
    StartTls,
    /// `<proceed .../>` (server to client).
    Proceed,
    /// `<failure .../>` during TLS negotiation.
    Failure,
    /// A complete `<iq>` or `<message>` stanza, as text.
    Stanza(String),
    /// Whitespace (and U+0200): a keepalive.
    Keepalive,
    /// `</stream:stream>`.
    StreamClose,
    /// Bytes that are none of the above, skipped (for the log).
    Junk(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame larger than {0} bytes")]
    TooLarge(usize),
    #[error("stanza is not UTF-8")]
    Utf8,
    #[error("malformed stream header")]
    BadHeader,
}

/// The keepalive upstream sends: U+0200 in UTF-8.
pub const KEEPALIVE: &str = "\u{200}";

/// Default bound on one frame (upstream's config messages can be large).
pub const MAX_FRAME: usize = 64 << 20;

pub struct Framer {
    buf: Vec<u8>,
    max: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(MAX_FRAME)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The index just after the `>` that ends the start tag at `buf[0]`
/// (quoted attribute values may hold `>`).
fn tag_end(buf: &[u8]) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in buf.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i + 1),
            None => {}
        }
    }
    None
}

/// After the start tag, the index just after `</name` + optional
/// whitespace + `>`; for a self-closing start tag, the tag's end.
fn element_end(buf: &[u8], name: &[u8]) -> Option<usize> {
    let start_end = tag_end(buf)?;
    if start_end >= 2 && buf.get(start_end - 2) == Some(&b'/') {
        return Some(start_end);
    }
    let mut close = Vec::with_capacity(name.len() + 2);
    close.extend_from_slice(b"</");
    close.extend_from_slice(name);
    let mut from = start_end;
    loop {
        let i = from + find(buf.get(from..)?, &close)?;
        let mut j = i + close.len();
        while buf.get(j).is_some_and(|b| is_ws(*b)) {
            j += 1;
        }
        match buf.get(j) {
            Some(b'>') => return Some(j + 1),
            Some(_) => from = i + 1,
            None => return None,
        }
    }
}

/// Does `buf` start with `<name` followed by a delimiter?
fn starts_tag(buf: &[u8], name: &[u8]) -> Option<bool> {
    if buf.len() < name.len() + 2 {
        let pre = b"<".iter().chain(name.iter()).copied().collect::<Vec<u8>>();
        return if pre.starts_with(buf) {
            None
        } else {
            Some(false)
        };
    }
    if buf.first() != Some(&b'<') || buf.get(1..1 + name.len()) != Some(name) {
        return Some(false);
    }
    Some(matches!(
        buf.get(1 + name.len()),
        Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/')
    ))
}

const STARTS: [&[u8]; 8] = [
    b"stream:stream",
    b"/stream:stream",
    b"stream:features",
    b"starttls",
    b"proceed",
    b"failure",
    b"iq",
    b"message",
];

impl Framer {
    pub fn new(max: usize) -> Self {
        Framer {
            buf: Vec::new(),
            max,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            // Whitespace and U+0200 between frames: a keepalive.
            let mut i = 0;
            while i < self.buf.len() {
                match self.buf[i] {
                    b if is_ws(b) => i += 1,
                    0xC8 if self.buf.get(i + 1) == Some(&0x80) => i += 2,
                    0xC8 if i + 1 == self.buf.len() => break,
                    _ => break,
                }
            }
            if i > 0 {
                self.take(i);
                return Ok(Some(Frame::Keepalive));
            }
            if self.buf.is_empty() || self.buf == [0xC8] {
                return Ok(None);
            }
            if self.buf.starts_with(b"<?") {
                let Some(e) = find(&self.buf, b"?>") else {
                    return self.need_more();
                };
                self.take(e + 2);
                continue;
            }
            if self.buf.starts_with(b"<!--") {
                let Some(e) = find(&self.buf, b"-->") else {
                    return self.need_more();
                };
                self.take(e + 3);
                continue;
            }
            if self.buf.len() < 4 && b"<!--".starts_with(&self.buf) {
                return Ok(None);
            }
            let mut which = None;
            let mut undecided = false;
            for s in STARTS {
                match starts_tag(&self.buf, s) {
                    Some(true) => {
                        which = Some(s);
                        break;
                    }
                    None => undecided = true,
                    Some(false) => {}
                }
            }
            let Some(name) = which else {
                if undecided {
                    return Ok(None);
                }
                return Ok(Some(self.junk()));
            };
            let end = match name {
                b"stream:stream" => {
                    let Some(e) = tag_end(&self.buf) else {
                        return self.need_more();
                    };
                    let raw = self.take(e);
                    let s = String::from_utf8(raw).map_err(|_| FrameError::Utf8)?;
                    return Ok(Some(Frame::StreamOpen(header_attrs(&s)?)));
                }
                b"/stream:stream" => tag_end(&self.buf),
                _ => element_end(&self.buf, name),
            };
            let Some(end) = end else {
                return self.need_more();
            };
            let raw = self.take(end);
            let text = String::from_utf8(raw).map_err(|_| FrameError::Utf8)?;
            return Ok(Some(match name {
                b"/stream:stream" => Frame::StreamClose,
                b"stream:features" => Frame::Features {
                    starttls: text.contains("<starttls"),
                },
                b"starttls" => Frame::StartTls,
                b"proceed" => Frame::Proceed,
                b"failure" => Frame::Failure,
                _ => Frame::Stanza(text),
            }));
        }
    }

    fn need_more(&self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() > self.max {
            Err(FrameError::TooLarge(self.max))
        } else {
            Ok(None)
        }
    }

    /// Skip to the next `<` that starts a known frame (or keep the last
    /// bytes, which might be the beginning of one).
    fn junk(&mut self) -> Frame {
        let mut cut = self.buf.len();
        for (i, &b) in self.buf.iter().enumerate().skip(1) {
            if b == b'<' {
                let rest = &self.buf[i..];
                if STARTS.iter().any(|s| starts_tag(rest, s) != Some(false))
                    || rest.starts_with(b"<?")
                {
                    cut = i;
                    break;
                }
            }
        }
        let raw = self.take(cut);
        let mut s = String::from_utf8_lossy(&raw).into_owned();
        if s.len() > 200 {
            let mut end = 200;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
        Frame::Junk(s)
    }
}

/// The attributes of a stream header (`<stream:stream a="b" ...>`).
fn header_attrs(s: &str) -> Result<Vec<(String, String)>, FrameError> {
    let t = s.trim_end();
    let body = t
        .strip_suffix("/>")
        .or_else(|| t.strip_suffix('>'))
        .ok_or(FrameError::BadHeader)?;
    let doc = format!("{body}/>");
    let el = crate::xml::Element::parse(&doc).map_err(|_| FrameError::BadHeader)?;
    Ok(el.attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<Frame> {
        let mut f = Framer::default();
        f.push(input);
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(fr);
        }
        out
    }

    #[test]
    fn frames_a_session() {
        let open = "<stream:stream from=\"worker-3\" to=\"network-control@contrailsystems.com\" version=\"1.0\" xml:lang=\"en\" xmlns=\"\" xmlns:stream=\"http://etherx.jabber.org/streams\"  >";
        let iq = "<iq type=\"set\" from=\"a\" to=\"b/config\">\n<pubsub><subscribe node=\"x\" /></pubsub>\n</iq >";
        let cfg = "<?xml version=\"1.0\"?>\n<iq type=\"set\"><config><update/></config></iq>";
        let msg = "\n<message from=\"c\" to=\"a/bgp-peer\">\n\t<event><items node=\"0/0/EndOfRib\"></items></event>\n</message>\n";
        let s = format!("{open}{KEEPALIVE}{iq}{cfg}{msg}</stream:stream>");
        let frames = all(s.as_bytes());
        let FrameKinds(k) = kinds(&frames);
        assert_eq!(
            k,
            ["open", "ka", "stanza", "ka", "stanza", "ka", "stanza", "ka", "close"]
        );
        let Frame::StreamOpen(a) = &frames[0] else {
            panic!()
        };
        assert!(a.contains(&("from".into(), "worker-3".into())));
        assert!(a.contains(&("xmlns".into(), String::new())));
        assert_eq!(frames[2], Frame::Stanza(iq.into()));
        assert_eq!(
            frames[4],
            Frame::Stanza("<iq type=\"set\"><config><update/></config></iq>".into())
        );
    }

    struct FrameKinds(Vec<&'static str>);
    fn kinds(f: &[Frame]) -> FrameKinds {
        FrameKinds(
            f.iter()
                .map(|f| match f {
                    Frame::StreamOpen(_) => "open",
                    Frame::Keepalive => "ka",
                    Frame::Stanza(_) => "stanza",
                    Frame::StreamClose => "close",
                    Frame::Features { .. } => "features",
                    Frame::StartTls => "starttls",
                    Frame::Proceed => "proceed",
                    Frame::Failure => "failure",
                    Frame::Junk(_) => "junk",
                })
                .collect(),
        )
    }

    #[test]
    fn byte_by_byte_gives_the_same_frames() {
        let s = format!(
            "<stream:stream to='x' a='>'>{KEEPALIVE}<iq id='a>b'><x>&lt;</x></iq><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message/>"
        );
        let whole = all(s.as_bytes());
        let mut f = Framer::default();
        let mut one = Vec::new();
        for b in s.as_bytes() {
            f.push(std::slice::from_ref(b));
            while let Some(fr) = f.next_frame().unwrap() {
                one.push(fr);
            }
        }
        assert_eq!(whole, one);
        assert_eq!(
            kinds(&whole).0,
            ["open", "ka", "stanza", "features", "proceed", "stanza"]
        );
        assert_eq!(whole[3], Frame::Features { starttls: true });
    }

    #[test]
    fn junk_is_skipped_not_fatal() {
        let frames = all(b"hello <foo>bar</foo><iq/><iqx/>");
        assert!(matches!(frames[0], Frame::Junk(_)));
        assert_eq!(
            frames
                .iter()
                .filter(|f| matches!(f, Frame::Stanza(_)))
                .count(),
            1
        );
        assert!(matches!(frames.last(), Some(Frame::Junk(_))));
    }

    #[test]
    fn oversized_frame_is_an_error() {
        let mut f = Framer::new(16);
        f.push(b"<iq type='set'>0123456789012345678901234567890");
        assert_eq!(f.next_frame(), Err(FrameError::TooLarge(16)));
    }

    #[test]
    fn partial_keepalive_and_prefixes_wait() {
        let mut f = Framer::default();
        f.push(&[0xC8]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&[0x80, b'<', b'i']);
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Keepalive));
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"q/>");
        assert_eq!(f.next_frame().unwrap(), Some(Frame::Stanza("<iq/>".into())));
    }
}
