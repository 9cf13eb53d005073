use core::fmt;

/// Error of the zero-copy views and the builders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The input buffer is shorter than the header (or the length it declares).
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
    /// The output buffer is too small for what is to be written.
    NoSpace,
    /// An argument cannot be encoded (e.g. a DHCP option longer than 255 bytes).
    InvalidArgument,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "buffer truncated",
            Error::Malformed => "malformed header field",
            Error::NoSpace => "output buffer too small",
            Error::InvalidArgument => "argument cannot be encoded",
        })
    }
}

/// Error of [`PacketInfo::parse`](crate::parse::PacketInfo::parse): the L2 or
/// L3 headers are unusable. (A truncated L4 header is not an error.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The frame ends inside the Ethernet or VLAN header.
    TruncatedL2,
    /// The packet ends inside the ARP, IPv4 or IPv6 header or an IPv6
    /// extension header, or is shorter than its declared length.
    TruncatedL3,
    /// The IP version nibble does not match the EtherType.
    BadVersion,
    /// IPv4 IHL below 5, or total length below the header length.
    BadHeaderLen,
    /// ARP for something other than Ethernet/IPv4.
    BadArp,
    /// More IPv6 extension headers than the walk allows.
    TooManyExtHeaders,
    /// An offset or length does not fit the 16-bit fields of `PacketInfo`
    /// (only possible for frames above 64 KiB, e.g. GSO super-packets).
    TooLong,
    /// `parse_l3` was called with an EtherType that is not IPv4, IPv6 or ARP.
    UnsupportedEthertype,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::TruncatedL2 => "frame truncated in the L2 header",
            ParseError::TruncatedL3 => "packet truncated in the L3 header",
            ParseError::BadVersion => "IP version does not match the ethertype",
            ParseError::BadHeaderLen => "bad IPv4 header or total length",
            ParseError::BadArp => "ARP is not Ethernet/IPv4",
            ParseError::TooManyExtHeaders => "too many IPv6 extension headers",
            ParseError::TooLong => "packet too long for 16-bit offsets",
            ParseError::UnsupportedEthertype => "ethertype is not IPv4, IPv6 or ARP",
        })
    }
}

impl From<Error> for ParseError {
    fn from(e: Error) -> Self {
        match e {
            Error::Truncated => ParseError::TruncatedL3,
            _ => ParseError::BadHeaderLen,
        }
    }
}
