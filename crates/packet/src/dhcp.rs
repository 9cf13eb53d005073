//! DHCPv4 options (RFC 2132) on top of smoltcp's
//! [`DhcpPacket`](crate::wire::DhcpPacket), which handles the fixed
//! 240-byte BOOTP part.
//!
//! Hand-written because smoltcp's `DhcpRepr` only keeps the options its
//! client needs, its `DhcpPacket::options` indexes the buffer (panics on an
//! unchecked short packet), and its `DhcpOptionWriter` cannot report how many
//! bytes it wrote. Option overload (option 52: options in `sname`/`file`)
//! and RFC 3396 long-option concatenation are not supported: the iterator
//! yields the options area only, and the writer refuses values over 255 bytes.

use crate::wire::DhcpOption;
use crate::{Error, Result};

/// Offset of the options area in a DHCP message (after the magic cookie).
pub const OPTIONS_OFFSET: usize = 240;
/// The magic cookie at bytes 236..240.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Pad option.
pub const OPT_PAD: u8 = 0;
/// Subnet mask.
pub const OPT_SUBNET_MASK: u8 = 1;
/// Routers.
pub const OPT_ROUTER: u8 = 3;
/// DNS servers.
pub const OPT_DNS_SERVERS: u8 = 6;
/// Host name.
pub const OPT_HOSTNAME: u8 = 12;
/// Domain name.
pub const OPT_DOMAIN_NAME: u8 = 15;
/// Interface MTU.
pub const OPT_INTERFACE_MTU: u8 = 26;
/// Requested IP address.
pub const OPT_REQUESTED_IP: u8 = 50;
/// IP address lease time.
pub const OPT_LEASE_TIME: u8 = 51;
/// Option overload.
pub const OPT_OVERLOAD: u8 = 52;
/// DHCP message type.
pub const OPT_MESSAGE_TYPE: u8 = 53;
/// Server identifier.
pub const OPT_SERVER_ID: u8 = 54;
/// Parameter request list.
pub const OPT_PARAMETER_REQUEST_LIST: u8 = 55;
/// Renewal (T1) time.
pub const OPT_RENEWAL_TIME: u8 = 58;
/// Rebinding (T2) time.
pub const OPT_REBINDING_TIME: u8 = 59;
/// Client identifier.
pub const OPT_CLIENT_ID: u8 = 61;
/// End option.
pub const OPT_END: u8 = 255;

/// DHCP message types (option 53).
pub mod message_type {
    /// DHCPDISCOVER.
    pub const DISCOVER: u8 = 1;
    /// DHCPOFFER.
    pub const OFFER: u8 = 2;
    /// DHCPREQUEST.
    pub const REQUEST: u8 = 3;
    /// DHCPDECLINE.
    pub const DECLINE: u8 = 4;
    /// DHCPACK.
    pub const ACK: u8 = 5;
    /// DHCPNAK.
    pub const NAK: u8 = 6;
    /// DHCPRELEASE.
    pub const RELEASE: u8 = 7;
    /// DHCPINFORM.
    pub const INFORM: u8 = 8;
}

/// Iterator over the options of a DHCP message. Skips pad, stops at end,
/// at the end of the buffer, or at an option whose length runs past the
/// buffer (then [`truncated`](Self::truncated) is true).
#[derive(Debug, Clone)]
pub struct DhcpOptions<'a> {
    buf: &'a [u8],
    truncated: bool,
}

impl<'a> DhcpOptions<'a> {
    /// Iterates a bare options area.
    pub const fn new(options: &'a [u8]) -> Self {
        DhcpOptions {
            buf: options,
            truncated: false,
        }
    }

    /// Iterates the options of a whole DHCP message (the UDP payload); checks
    /// the length and the magic cookie.
    pub fn from_message(message: &'a [u8]) -> Result<Self> {
        let cookie = message.get(236..240).ok_or(Error::Truncated)?;
        if cookie != MAGIC_COOKIE {
            return Err(Error::Malformed);
        }
        Ok(Self::new(message.get(OPTIONS_OFFSET..).unwrap_or(&[])))
    }

    /// Iterates the options of a smoltcp `DhcpPacket` over a byte slice.
    pub fn from_packet(packet: &crate::wire::DhcpPacket<&'a [u8]>) -> Result<Self> {
        Self::from_message(packet.into_inner())
    }

    /// Whether iteration stopped at an option running past the buffer.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The data of the first option of `kind`.
    pub fn get(&self, kind: u8) -> Option<&'a [u8]> {
        Iterator::find(&mut self.clone(), |o| o.kind == kind).map(|o| o.data)
    }

    /// The message type (option 53).
    pub fn message_type(&self) -> Option<u8> {
        self.get(OPT_MESSAGE_TYPE)?.first().copied()
    }

    /// The requested IP address (option 50).
    pub fn requested_ip(&self) -> Option<[u8; 4]> {
        self.get(OPT_REQUESTED_IP)?.try_into().ok()
    }

    /// The server identifier (option 54).
    pub fn server_id(&self) -> Option<[u8; 4]> {
        self.get(OPT_SERVER_ID)?.try_into().ok()
    }

    /// The parameter request list (option 55).
    pub fn parameter_request_list(&self) -> Option<&'a [u8]> {
        self.get(OPT_PARAMETER_REQUEST_LIST)
    }

    /// The client identifier (option 61), type byte included.
    pub fn client_id(&self) -> Option<&'a [u8]> {
        self.get(OPT_CLIENT_ID)
    }

    /// The host name (option 12).
    pub fn hostname(&self) -> Option<&'a [u8]> {
        self.get(OPT_HOSTNAME)
    }
}

impl<'a> Iterator for DhcpOptions<'a> {
    type Item = DhcpOption<'a>;

    fn next(&mut self) -> Option<DhcpOption<'a>> {
        loop {
            match *self.buf {
                [] | [OPT_END, ..] => {
                    self.buf = &[];
                    return None;
                }
                [OPT_PAD, ref rest @ ..] => self.buf = rest,
                [kind, len, ref rest @ ..] if rest.len() >= usize::from(len) => {
                    let (data, rest) = rest.split_at(usize::from(len));
                    self.buf = rest;
                    return Some(DhcpOption { kind, data });
                }
                _ => {
                    self.truncated = true;
                    self.buf = &[];
                    return None;
                }
            }
        }
    }
}

/// Writes options into a buffer (usually the options area of a DHCP
/// message, from offset [`OPTIONS_OFFSET`]). Every write either fits whole
/// or fails with [`Error::NoSpace`] leaving the buffer position unchanged.
#[derive(Debug)]
pub struct OptionsWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> OptionsWriter<'a> {
    /// Starts writing at the beginning of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        OptionsWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Writes one option of `kind` with `data` (at most 255 bytes).
    pub fn option(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        let len = u8::try_from(data.len()).map_err(|_| Error::InvalidArgument)?;
        let end = self.pos + 2 + data.len();
        let dst = self.buf.get_mut(self.pos..end).ok_or(Error::NoSpace)?;
        let (h, d) = dst.split_at_mut(2);
        h.copy_from_slice(&[kind, len]);
        d.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    fn addrs(&mut self, kind: u8, addrs: &[[u8; 4]]) -> Result<()> {
        if addrs.is_empty() || addrs.len() > 63 {
            return Err(Error::InvalidArgument);
        }
        let mut tmp = [0u8; 252];
        for (d, a) in tmp.chunks_exact_mut(4).zip(addrs) {
            d.copy_from_slice(a);
        }
        self.option(kind, tmp.get(..addrs.len() * 4).unwrap_or(&[]))
    }

    /// Message type (53), see [`message_type`].
    pub fn message_type(&mut self, t: u8) -> Result<()> {
        self.option(OPT_MESSAGE_TYPE, &[t])
    }

    /// Server identifier (54).
    pub fn server_id(&mut self, addr: [u8; 4]) -> Result<()> {
        self.option(OPT_SERVER_ID, &addr)
    }

    /// Lease time in seconds (51).
    pub fn lease_time(&mut self, secs: u32) -> Result<()> {
        self.option(OPT_LEASE_TIME, &secs.to_be_bytes())
    }

    /// Renewal time T1 in seconds (58).
    pub fn renewal_time(&mut self, secs: u32) -> Result<()> {
        self.option(OPT_RENEWAL_TIME, &secs.to_be_bytes())
    }

    /// Rebinding time T2 in seconds (59).
    pub fn rebinding_time(&mut self, secs: u32) -> Result<()> {
        self.option(OPT_REBINDING_TIME, &secs.to_be_bytes())
    }

    /// Subnet mask (1).
    pub fn subnet_mask(&mut self, mask: [u8; 4]) -> Result<()> {
        self.option(OPT_SUBNET_MASK, &mask)
    }

    /// Routers (3), at least one.
    pub fn routers(&mut self, addrs: &[[u8; 4]]) -> Result<()> {
        self.addrs(OPT_ROUTER, addrs)
    }

    /// DNS servers (6), at least one.
    pub fn dns_servers(&mut self, addrs: &[[u8; 4]]) -> Result<()> {
        self.addrs(OPT_DNS_SERVERS, addrs)
    }

    /// Domain name (15).
    pub fn domain_name(&mut self, name: &str) -> Result<()> {
        self.option(OPT_DOMAIN_NAME, name.as_bytes())
    }

    /// Host name (12).
    pub fn hostname(&mut self, name: &str) -> Result<()> {
        self.option(OPT_HOSTNAME, name.as_bytes())
    }

    /// Interface MTU (26); RFC 2132 requires at least 68.
    pub fn interface_mtu(&mut self, mtu: u16) -> Result<()> {
        if mtu < 68 {
            return Err(Error::InvalidArgument);
        }
        self.option(OPT_INTERFACE_MTU, &mtu.to_be_bytes())
    }

    /// Requested IP address (50).
    pub fn requested_ip(&mut self, addr: [u8; 4]) -> Result<()> {
        self.option(OPT_REQUESTED_IP, &addr)
    }

    /// Parameter request list (55).
    pub fn parameter_request_list(&mut self, codes: &[u8]) -> Result<()> {
        self.option(OPT_PARAMETER_REQUEST_LIST, codes)
    }

    /// Client identifier (61): `id` includes the leading type byte.
    pub fn client_id(&mut self, id: &[u8]) -> Result<()> {
        self.option(OPT_CLIENT_ID, id)
    }

    /// Writes the end option and returns the total length written.
    pub fn end(&mut self) -> Result<usize> {
        let b = self.buf.get_mut(self.pos).ok_or(Error::NoSpace)?;
        *b = OPT_END;
        self.pos += 1;
        Ok(self.pos)
    }
}
