use core::fmt;

/// Why a buffer could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The input ends inside a value, or a length/count promises more bytes
    /// than are left.
    Truncated,
    /// A string, binary or container length is negative.
    NegativeLength,
    /// A type byte that neither Thrift nor Sandesh defines (or one that has
    /// no wire encoding, such as `VOID`, `UTF8`, `UTF16`).
    UnknownType(u8),
    /// An `ipaddr` value whose family byte is neither `AF_INET` nor `AF_INET6`.
    BadAddressFamily(u8),
    /// A `string` field is not UTF-8.
    InvalidUtf8,
    /// Structs and containers are nested deeper than [`MAX_DEPTH`](crate::wire::MAX_DEPTH).
    TooDeep,
    /// A list's element type is not the one the field is declared with. A
    /// message decoder skips such a field instead of failing (as Thrift does
    /// for a field whose type does not match); callers of the low-level
    /// [`Value`](crate::Value) API may see it.
    ElementTypeMismatch,
    /// The object name is not one of the messages this crate knows.
    UnknownObject,
    /// A typed decode (`T::decode`) found an object with another name.
    WrongObject,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("sandesh buffer truncated"),
            DecodeError::NegativeLength => f.write_str("negative length or count"),
            DecodeError::UnknownType(t) => write!(f, "unknown field type {t}"),
            DecodeError::BadAddressFamily(af) => write!(f, "unknown ipaddr family {af}"),
            DecodeError::InvalidUtf8 => f.write_str("string is not UTF-8"),
            DecodeError::TooDeep => f.write_str("nesting too deep"),
            DecodeError::ElementTypeMismatch => f.write_str("list element type mismatch"),
            DecodeError::UnknownObject => f.write_str("unknown sandesh object"),
            DecodeError::WrongObject => f.write_str("unexpected sandesh object"),
        }
    }
}

impl core::error::Error for DecodeError {}
