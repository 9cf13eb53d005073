//! DHCPv6 (RFC 8415) messages between a client and a server: a zero-copy
//! view of the 4-byte header (message type, transaction id) and its
//! options, an options iterator, and a writer for a server's answer.
//!
//! Hand-written because smoltcp has no DHCPv6 at all. Relay messages
//! (RELAY-FORW / RELAY-REPL, a different header) are recognised by type
//! only; the agent serves clients on its own links and never relays.

use crate::{Error, Result};

/// UDP port servers listen on.
pub const SERVER_PORT: u16 = 547;
/// UDP port clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// Message type + transaction id.
pub const HEADER_LEN: usize = 4;

/// Message types.
pub mod message_type {
    pub const SOLICIT: u8 = 1;
    pub const ADVERTISE: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const CONFIRM: u8 = 4;
    pub const RENEW: u8 = 5;
    pub const REBIND: u8 = 6;
    pub const REPLY: u8 = 7;
    pub const RELEASE: u8 = 8;
    pub const DECLINE: u8 = 9;
    pub const RECONFIGURE: u8 = 10;
    pub const INFORMATION_REQUEST: u8 = 11;
    pub const RELAY_FORW: u8 = 12;
    pub const RELAY_REPL: u8 = 13;
}

/// Option codes used here.
pub mod option {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const ELAPSED_TIME: u16 = 8;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
}

/// Status codes (option 13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const UNSPEC_FAIL: u16 = 1;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const USE_MULTICAST: u16 = 5;
}

/// A DHCPv6 client/server message over a byte buffer (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking that it holds the header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Whether the buffer holds the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or(0)
    }

    /// The 24-bit transaction id, as its three bytes.
    pub fn transaction_id(&self) -> [u8; 3] {
        let b = self.buffer.as_ref();
        [
            b.get(1).copied().unwrap_or(0),
            b.get(2).copied().unwrap_or(0),
            b.get(3).copied().unwrap_or(0),
        ]
    }

    /// The options after the header.
    pub fn options(&self) -> Options<'_> {
        Options::new(self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[]))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        if let Some(b) = self.buffer.as_mut().first_mut() {
            *b = t;
        }
    }

    pub fn set_transaction_id(&mut self, id: [u8; 3]) {
        if let Some(b) = self.buffer.as_mut().get_mut(1..4) {
            b.copy_from_slice(&id);
        }
    }

    /// The options area, for an [`OptionsWriter`].
    pub fn options_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// One option: code and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcpv6Option<'a> {
    pub code: u16,
    pub data: &'a [u8],
}

/// Iterator over a sequence of options (a message's, or those inside an
/// IA_NA / IAADDR). Stops at an option whose length runs past the buffer
/// (then [`truncated`](Self::truncated) is true).
#[derive(Debug, Clone)]
pub struct Options<'a> {
    buf: &'a [u8],
    truncated: bool,
}

impl<'a> Options<'a> {
    pub const fn new(buf: &'a [u8]) -> Self {
        Options {
            buf,
            truncated: false,
        }
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The data of the first option with `code`.
    pub fn get(&self, code: u16) -> Option<&'a [u8]> {
        Iterator::find(&mut self.clone(), |o| o.code == code).map(|o| o.data)
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Dhcpv6Option<'a>;

    fn next(&mut self) -> Option<Dhcpv6Option<'a>> {
        match *self.buf {
            [] => None,
            [c0, c1, l0, l1, ref rest @ ..] => {
                let len = usize::from(u16::from_be_bytes([l0, l1]));
                if rest.len() < len {
                    self.truncated = true;
                    self.buf = &[];
                    return None;
                }
                let (data, rest) = rest.split_at(len);
                self.buf = rest;
                Some(Dhcpv6Option {
                    code: u16::from_be_bytes([c0, c1]),
                    data,
                })
            }
            _ => {
                self.truncated = true;
                self.buf = &[];
                None
            }
        }
    }
}

/// An identity association (IA_NA: id, T1, T2; IA_TA: id only) and the
/// addresses the client named in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ia<'a> {
    pub iaid: [u8; 4],
    /// T1 and T2, for IA_NA.
    pub times: Option<(u32, u32)>,
    /// The options inside (IAADDR, status).
    pub options: &'a [u8],
}

impl<'a> Ia<'a> {
    /// Parses the data of an IA_NA (`temporary` false) or IA_TA option.
    pub fn parse(data: &'a [u8], temporary: bool) -> Result<Ia<'a>> {
        let iaid: [u8; 4] = data
            .get(0..4)
            .ok_or(Error::Truncated)?
            .try_into()
            .map_err(|_| Error::Truncated)?;
        if temporary {
            return Ok(Ia {
                iaid,
                times: None,
                options: data.get(4..).unwrap_or(&[]),
            });
        }
        let t1 = crate::be::u32_at(data, 4).ok_or(Error::Truncated)?;
        let t2 = crate::be::u32_at(data, 8).ok_or(Error::Truncated)?;
        Ok(Ia {
            iaid,
            times: Some((t1, t2)),
            options: data.get(12..).unwrap_or(&[]),
        })
    }

    /// The addresses of the IAADDR options inside.
    pub fn addresses(&self) -> impl Iterator<Item = [u8; 16]> + 'a {
        Options::new(self.options)
            .filter(|o| o.code == option::IAADDR)
            .filter_map(|o| o.data.get(0..16).and_then(|a| a.try_into().ok()))
    }
}

/// Writes options; every write fits whole or fails with
/// [`Error::NoSpace`] leaving the position unchanged. A container option
/// (IA_NA) is opened with [`begin`](Self::begin) and closed with
/// [`finish`](Self::finish), which fills in its length.
#[derive(Debug)]
pub struct OptionsWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionsWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        OptionsWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// One option with `data`.
    pub fn option(&mut self, code: u16, data: &[u8]) -> Result<()> {
        let len = u16::try_from(data.len()).map_err(|_| Error::InvalidArgument)?;
        let end = self.pos + 4 + data.len();
        let dst = self.buf.get_mut(self.pos..end).ok_or(Error::NoSpace)?;
        let (h, d) = dst.split_at_mut(4);
        let [c0, c1] = code.to_be_bytes();
        let [l0, l1] = len.to_be_bytes();
        h.copy_from_slice(&[c0, c1, l0, l1]);
        d.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    /// Opens a container option whose first bytes are `fixed`; returns the
    /// position to hand to [`finish`](Self::finish).
    pub fn begin(&mut self, code: u16, fixed: &[u8]) -> Result<usize> {
        let start = self.pos;
        self.option(code, fixed)?;
        Ok(start)
    }

    /// Closes the container option opened at `start`.
    pub fn finish(&mut self, start: usize) -> Result<()> {
        let len = u16::try_from(self.pos - start - 4).map_err(|_| Error::InvalidArgument)?;
        self.buf
            .get_mut(start + 2..start + 4)
            .ok_or(Error::NoSpace)?
            .copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// An IAADDR option: address, preferred and valid lifetimes.
    pub fn ia_addr(&mut self, addr: [u8; 16], preferred: u32, valid: u32) -> Result<()> {
        let mut d = [0u8; 24];
        d[0..16].copy_from_slice(&addr);
        d[16..20].copy_from_slice(&preferred.to_be_bytes());
        d[20..24].copy_from_slice(&valid.to_be_bytes());
        self.option(option::IAADDR, &d)
    }

    /// A status code option with a message.
    pub fn status(&mut self, code: u16, message: &str) -> Result<()> {
        let start = self.begin(option::STATUS_CODE, &code.to_be_bytes())?;
        let end = self.pos + message.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::NoSpace)?
            .copy_from_slice(message.as_bytes());
        self.pos = end;
        self.finish(start)
    }

    /// DNS recursive name servers (option 23).
    pub fn dns_servers(&mut self, addrs: &[[u8; 16]]) -> Result<()> {
        if addrs.is_empty() || addrs.len() > 8 {
            return Err(Error::InvalidArgument);
        }
        let mut d = [0u8; 128];
        for (dst, a) in d.chunks_exact_mut(16).zip(addrs) {
            dst.copy_from_slice(a);
        }
        self.option(
            option::DNS_SERVERS,
            d.get(..addrs.len() * 16).unwrap_or(&[]),
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A SOLICIT as a Linux client (dhclient -6) sends it: client id, an
    /// option request, elapsed time, an IA_NA without addresses.
    const SOLICIT: [u8; 56] = [
        1, 0x12, 0x34, 0x56, // SOLICIT, xid
        0, 1, 0, 14, 0, 1, 0, 1, 0x2a, 0x3b, 0x4c, 0x5d, 2, 0x42, 0xac, 0x11, 0,
        3, // client id
        0, 6, 0, 4, 0, 23, 0, 24, // ORO: DNS, domain list
        0, 8, 0, 2, 0, 0, // elapsed time
        0, 3, 0, 12, 0xaa, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0, 0, 0, 0, 0, // IA_NA
        0, 14, 0, 0, // rapid commit
    ];

    #[test]
    fn parses_a_client_message() {
        let p = Packet::new_checked(&SOLICIT[..]).unwrap();
        assert_eq!(p.msg_type(), message_type::SOLICIT);
        assert_eq!(p.transaction_id(), [0x12, 0x34, 0x56]);
        let opts = p.options();
        let codes: Vec<u16> = opts.clone().map(|o| o.code).collect();
        assert_eq!(
            codes,
            [
                option::CLIENTID,
                option::ORO,
                option::ELAPSED_TIME,
                option::IA_NA,
                option::RAPID_COMMIT
            ]
        );
        assert_eq!(opts.get(option::CLIENTID).unwrap().len(), 14);
        let ia = Ia::parse(opts.get(option::IA_NA).unwrap(), false).unwrap();
        assert_eq!(ia.iaid, [0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(ia.times, Some((0, 0)));
        assert_eq!(ia.addresses().count(), 0);
        assert!(!opts.clone().truncated());
    }

    #[test]
    fn truncated_options_stop_the_walk() {
        let mut m = SOLICIT.to_vec();
        m.truncate(28);
        let p = Packet::new_checked(&m[..]).unwrap();
        let mut it = p.options();
        assert_eq!(it.next().unwrap().code, option::CLIENTID);
        assert!(it.next().is_none());
        assert!(it.truncated());
        assert!(Packet::new_checked(&m[..3]).is_err());
        assert!(Ia::parse(&[1, 2, 3, 4, 0, 0], false).is_err());
        assert_eq!(Ia::parse(&[1, 2, 3, 4], true).unwrap().times, None);
    }

    #[test]
    fn writes_a_server_answer_that_parses_back() {
        let mut buf = [0u8; 200];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(message_type::ADVERTISE);
        p.set_transaction_id([1, 2, 3]);
        let mut w = OptionsWriter::new(p.options_mut());
        w.option(option::SERVERID, &[0, 3, 0, 1, 0, 0, 0x5e, 0, 1, 0])
            .unwrap();
        let mut fixed = [0u8; 12];
        fixed[0..4].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let ia = w.begin(option::IA_NA, &fixed).unwrap();
        let addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        w.ia_addr(addr, u32::MAX, u32::MAX).unwrap();
        w.finish(ia).unwrap();
        w.dns_servers(&[addr]).unwrap();
        w.status(status::SUCCESS, "ok").unwrap();
        let n = HEADER_LEN + w.len();
        let back = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(back.msg_type(), message_type::ADVERTISE);
        assert_eq!(back.transaction_id(), [1, 2, 3]);
        let ia = Ia::parse(back.options().get(option::IA_NA).unwrap(), false).unwrap();
        assert_eq!(ia.addresses().collect::<Vec<_>>(), [addr]);
        assert_eq!(back.options().get(option::DNS_SERVERS).unwrap(), &addr);
        assert_eq!(
            back.options().get(option::STATUS_CODE).unwrap(),
            &[0, 0, b'o', b'k']
        );
        // Out of room: nothing written.
        let mut small = [0u8; 6];
        let mut w = OptionsWriter::new(&mut small);
        assert_eq!(w.option(1, &[0; 4]), Err(Error::NoSpace));
        assert!(w.is_empty());
    }
}
