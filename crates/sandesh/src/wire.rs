//! The Sandesh binary protocol: Thrift's binary protocol (big-endian,
//! `type:u8 id:i16` field headers, `T_STOP` terminator, `elem:u8 count:i32`
//! list headers, `len:i32` + bytes strings) plus Sandesh's extra types.
//!
//! Encoding appends to a `Vec<u8>` and cannot fail. Decoding goes through a
//! [`Reader`], which checks every length against what is left of the input
//! before it slices or allocates, and bounds nesting by [`MAX_DEPTH`].

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::DecodeError;

/// Deepest nesting of structs and containers the decoder follows. The ksync
/// messages are flat (depth 1 for their lists); the bound only keeps hostile
/// input from exhausting the stack in [`Reader::skip`].
pub const MAX_DEPTH: u8 = 16;

/// `AF_INET` as written in an `ipaddr` value.
pub const AF_INET: u8 = 2;
/// `AF_INET6` as Linux writes it in an `ipaddr` value (upstream writes the
/// host's `AF_INET6`, so a Windows peer would write [`AF_INET6_WINDOWS`]).
pub const AF_INET6: u8 = 10;
/// `AF_INET6` on Windows; accepted when decoding.
pub const AF_INET6_WINDOWS: u8 = 23;

/// Wire type codes: Thrift's, plus Sandesh's `U16`..`IPADDR` and `SANDESH`.
///
/// Apache Thrift later gave code 16 to its own `UUID`; Sandesh's UUID is 23
/// and 16 (`UTF8`) never appears on a Sandesh wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TType {
    Stop = 0,
    Void = 1,
    Bool = 2,
    Byte = 3,
    Double = 4,
    I16 = 6,
    I32 = 8,
    U64 = 9,
    I64 = 10,
    String = 11,
    Struct = 12,
    Map = 13,
    Set = 14,
    List = 15,
    Utf8 = 16,
    Utf16 = 17,
    /// A nested sandesh (name string, fields, stop); only the C++ library
    /// knows it, and only to skip it.
    Sandesh = 18,
    U16 = 19,
    U32 = 20,
    /// Encoded like `STRING`.
    Xml = 21,
    /// A `u32` in network order.
    Ipv4 = 22,
    /// 16 raw bytes.
    Uuid = 23,
    /// A family byte (`AF_INET`/`AF_INET6`), then 4 or 16 address bytes.
    IpAddr = 24,
}

impl TType {
    /// The type for a wire code, if it is one.
    pub const fn from_u8(v: u8) -> Option<TType> {
        Some(match v {
            0 => TType::Stop,
            1 => TType::Void,
            2 => TType::Bool,
            3 => TType::Byte,
            4 => TType::Double,
            6 => TType::I16,
            8 => TType::I32,
            9 => TType::U64,
            10 => TType::I64,
            11 => TType::String,
            12 => TType::Struct,
            13 => TType::Map,
            14 => TType::Set,
            15 => TType::List,
            16 => TType::Utf8,
            17 => TType::Utf16,
            18 => TType::Sandesh,
            19 => TType::U16,
            20 => TType::U32,
            21 => TType::Xml,
            22 => TType::Ipv4,
            23 => TType::Uuid,
            24 => TType::IpAddr,
            _ => return None,
        })
    }

    /// Fewest bytes a value of this type takes on the wire, or `None` for
    /// types that have no encoding (`STOP`, `VOID`, `UTF8`, `UTF16`).
    /// Used to reject element counts the remaining input cannot hold.
    pub const fn min_size(self) -> Option<usize> {
        Some(match self {
            TType::Bool | TType::Byte | TType::Struct => 1,
            TType::I16 | TType::U16 => 2,
            TType::I32 | TType::U32 | TType::Ipv4 | TType::String | TType::Xml => 4,
            TType::I64 | TType::U64 | TType::Double => 8,
            TType::Uuid => 16,
            TType::IpAddr | TType::List | TType::Set => 5,
            TType::Map => 6,
            // name (len 0) + stop
            TType::Sandesh => 5,
            TType::Stop | TType::Void | TType::Utf8 | TType::Utf16 => return None,
        })
    }

    /// Size of values of fixed-size types, for skipping them in bulk.
    const fn fixed_size(self) -> Option<usize> {
        match self {
            TType::Bool | TType::Byte => Some(1),
            TType::I16 | TType::U16 => Some(2),
            TType::I32 | TType::U32 | TType::Ipv4 => Some(4),
            TType::I64 | TType::U64 | TType::Double => Some(8),
            TType::Uuid => Some(16),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- encoding

/// Appends a byte.
#[inline]
pub fn write_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

/// Appends a big-endian `i16`.
#[inline]
pub fn write_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian `i32`.
#[inline]
pub fn write_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian `i64`.
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a length prefix; lengths beyond `i32::MAX` cannot be expressed
/// and are clamped (callers write at most that many items, see
/// [`write_binary`] and the `Vec` [`Value`] impl).
#[inline]
fn write_len(out: &mut Vec<u8>, len: usize) -> usize {
    let n = len.min(i32::MAX as usize);
    out.extend_from_slice(&(n as u32).to_be_bytes());
    n
}

/// Appends Thrift `binary`/`string`: `len:i32`, then the bytes (no NUL).
pub fn write_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = write_len(out, bytes.len());
    out.extend_from_slice(bytes.get(..n).unwrap_or(bytes));
}

/// Appends a string (as [`write_binary`]).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    write_binary(out, s.as_bytes());
}

/// Field ids from here on are this project's extensions of upstream's
/// messages: written only when they differ from their default (upstream's
/// decoders skip unknown ids), so an answer without them is upstream's
/// byte for byte.
pub const EXTENSION_FIELD_ID: i16 = 100;

/// Appends a field header: type byte, big-endian field id.
#[inline]
pub fn write_field_header(out: &mut Vec<u8>, ttype: TType, id: i16) {
    out.push(ttype as u8);
    write_i16(out, id);
}

/// Appends `T_STOP`, which ends a struct.
#[inline]
pub fn write_stop(out: &mut Vec<u8>) {
    out.push(TType::Stop as u8);
}

/// Appends a list header: element type, big-endian `i32` count.
/// Returns the count written (clamped to `i32::MAX`).
pub fn write_list_header(out: &mut Vec<u8>, elem: TType, count: usize) -> usize {
    out.push(elem as u8);
    write_len(out, count)
}

/// Appends the name that starts a sandesh object (Sandesh's
/// `writeSandeshBegin` is `writeString(name)`).
pub fn write_sandesh_begin(out: &mut Vec<u8>, name: &str) {
    write_string(out, name);
}

// ---------------------------------------------------------------- decoding

/// A bounds-checked cursor over an encoded buffer.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u8,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes consumed so far.
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rewind(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads a byte.
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `i16`.
    pub fn read_i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `i32`.
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian `i64`.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a length or count and checks that `min_elem` bytes per item fit
    /// in what is left, so that no caller ever allocates for data that is
    /// not there.
    fn read_count(&mut self, min_elem: usize) -> Result<usize, DecodeError> {
        let n = self.read_i32()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::NegativeLength)?;
        let need = n.checked_mul(min_elem).ok_or(DecodeError::Truncated)?;
        if need > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    /// Reads Thrift `binary`/`string` (zero-copy).
    pub fn read_binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.read_count(1)?;
        self.take(n)
    }

    /// Reads a UTF-8 string (zero-copy).
    pub fn read_str(&mut self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.read_binary()?).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// Reads a field header: `None` at `T_STOP`, else the raw type byte and
    /// the field id.
    pub fn read_field_header(&mut self) -> Result<Option<(u8, i16)>, DecodeError> {
        let t = self.read_u8()?;
        if t == TType::Stop as u8 {
            return Ok(None);
        }
        Ok(Some((t, self.read_i16()?)))
    }

    /// Reads a list (or set) header: the raw element type and the count,
    /// checked against the remaining input.
    pub fn read_list_header(&mut self) -> Result<(u8, usize), DecodeError> {
        let t = self.read_u8()?;
        let min = TType::from_u8(t)
            .and_then(TType::min_size)
            .ok_or(DecodeError::UnknownType(t))?;
        Ok((t, self.read_count(min)?))
    }

    /// Reads the name that starts a sandesh object.
    pub fn read_sandesh_begin(&mut self) -> Result<&'a [u8], DecodeError> {
        self.read_binary()
    }

    /// Runs `f` one nesting level deeper.
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// Skips one value of wire type `ttype`, as Thrift's `skip` does, for
    /// every type Thrift or Sandesh can put on the wire.
    pub fn skip(&mut self, ttype: u8) -> Result<(), DecodeError> {
        let t = TType::from_u8(ttype).ok_or(DecodeError::UnknownType(ttype))?;
        if let Some(n) = t.fixed_size() {
            self.take(n)?;
            return Ok(());
        }
        match t {
            TType::String | TType::Xml => {
                self.read_binary()?;
            }
            TType::IpAddr => {
                let af = self.read_u8()?;
                self.take(ip_len(af)?)?;
            }
            TType::Struct => self.nested(Self::skip_fields)?,
            TType::Sandesh => self.nested(|r| {
                r.read_binary()?;
                r.skip_fields()
            })?,
            TType::List | TType::Set => self.nested(|r| {
                let (elem, n) = r.read_list_header()?;
                r.skip_n(elem, n)
            })?,
            TType::Map => self.nested(|r| {
                let k = r.read_u8()?;
                let v = r.read_u8()?;
                let kmin = TType::from_u8(k).and_then(TType::min_size);
                let vmin = TType::from_u8(v).and_then(TType::min_size);
                let (Some(kmin), Some(vmin)) = (kmin, vmin) else {
                    return Err(DecodeError::UnknownType(if kmin.is_none() { k } else { v }));
                };
                let n = r.read_count(kmin + vmin)?;
                for _ in 0..n {
                    r.skip(k)?;
                    r.skip(v)?;
                }
                Ok(())
            })?,
            _ => return Err(DecodeError::UnknownType(ttype)),
        }
        Ok(())
    }

    /// Skips `n` values of type `elem` (fixed-size ones in one step).
    fn skip_n(&mut self, elem: u8, n: usize) -> Result<(), DecodeError> {
        if let Some(sz) = TType::from_u8(elem).and_then(TType::fixed_size) {
            self.take(sz.checked_mul(n).ok_or(DecodeError::Truncated)?)?;
            return Ok(());
        }
        for _ in 0..n {
            self.skip(elem)?;
        }
        Ok(())
    }

    /// Skips fields up to and including `T_STOP`.
    pub fn skip_fields(&mut self) -> Result<(), DecodeError> {
        while let Some((t, _)) = self.read_field_header()? {
            self.skip(t)?;
        }
        Ok(())
    }
}

fn ip_len(af: u8) -> Result<usize, DecodeError> {
    match af {
        AF_INET => Ok(4),
        AF_INET6 | AF_INET6_WINDOWS => Ok(16),
        _ => Err(DecodeError::BadAddressFamily(af)),
    }
}

// ---------------------------------------------------------------- values

/// A Rust type with a Sandesh wire encoding.
pub trait Value: Sized {
    /// The field type byte written before values of this type.
    const TTYPE: TType;
    /// For lists, the element type; `STOP` for everything else. Lets the
    /// message macro check at compile time that a field's Rust type matches
    /// its declared wire type.
    const ELEM: TType = TType::Stop;

    /// Appends the value (without field header).
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value whose field header said [`Self::TTYPE`].
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! int_value {
    ($($t:ty => $tt:ident, $n:literal;)*) => {$(
        impl Value for $t {
            const TTYPE: TType = TType::$tt;
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            #[inline]
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(r.array::<$n>()?))
            }
        }
    )*};
}

int_value! {
    i8 => Byte, 1;
    u8 => Byte, 1;
    i16 => I16, 2;
    u16 => U16, 2;
    i32 => I32, 4;
    u32 => U32, 4;
    i64 => I64, 8;
    u64 => U64, 8;
}

impl Value for bool {
    const TTYPE: TType = TType::Bool;
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.read_u8()? != 0)
    }
}

impl Value for String {
    const TTYPE: TType = TType::String;
    fn encode(&self, out: &mut Vec<u8>) {
        write_string(out, self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(String::from(r.read_str()?))
    }
}

/// Sandesh `ipv4`: an IPv4 address, on the wire as a network-order `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4(pub Ipv4Addr);

impl Default for Ipv4 {
    fn default() -> Self {
        Ipv4(Ipv4Addr::UNSPECIFIED)
    }
}

impl From<Ipv4Addr> for Ipv4 {
    fn from(a: Ipv4Addr) -> Self {
        Ipv4(a)
    }
}

impl Value for Ipv4 {
    const TTYPE: TType = TType::Ipv4;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.octets());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ipv4(Ipv4Addr::from(r.array::<4>()?)))
    }
}

/// Sandesh `ipaddr`: an IPv4 or IPv6 address, on the wire as a family byte
/// ([`AF_INET`] or [`AF_INET6`]) and the address bytes. The default is
/// `0.0.0.0` (upstream's zeroed C value has family 0 and cannot be written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpAddress(pub IpAddr);

impl Default for IpAddress {
    fn default() -> Self {
        IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl From<IpAddr> for IpAddress {
    fn from(a: IpAddr) -> Self {
        IpAddress(a)
    }
}

impl Value for IpAddress {
    const TTYPE: TType = TType::IpAddr;
    fn encode(&self, out: &mut Vec<u8>) {
        match self.0 {
            IpAddr::V4(a) => {
                out.push(AF_INET);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(AF_INET6);
                out.extend_from_slice(&a.octets());
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let af = r.read_u8()?;
        Ok(IpAddress(match ip_len(af)? {
            4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
            _ => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        }))
    }
}

/// Sandesh `uuid_t`: 16 raw bytes, in the order of the textual form
/// (RFC 4122 / boost `uuid::data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Value for Uuid {
    const TTYPE: TType = TType::Uuid;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Uuid(r.array()?))
    }
}

/// Thrift `list<T>`. Upstream's C generator always writes list fields, an
/// unset (NULL) one as a header with count 0, and so do we.
impl<T: Value> Value for Vec<T> {
    const TTYPE: TType = TType::List;
    const ELEM: TType = T::TTYPE;
    fn encode(&self, out: &mut Vec<u8>) {
        let n = write_list_header(out, T::TTYPE, self.len());
        for v in self.iter().take(n) {
            v.encode(out);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.nested(|r| {
            let (elem, n) = r.read_list_header()?;
            if elem != T::TTYPE as u8 {
                return Err(DecodeError::ElementTypeMismatch);
            }
            // `read_list_header` checked n * min_size <= remaining, so this
            // allocation is bounded by a small multiple of the input size.
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(T::decode(r)?);
            }
            Ok(v)
        })
    }
}

/// The fields of a struct or sandesh object, in declaration order: what the
/// [`sandesh!`](crate::sandesh) macro generates.
pub trait Fields: Sized + Default {
    /// Appends every field (header and value, ascending ids) and `T_STOP`.
    fn encode_fields(&self, out: &mut Vec<u8>);

    /// Reads fields up to `T_STOP`. Unknown ids, and known ids carrying
    /// another type, are skipped; missing fields keep their default; a
    /// repeated field keeps its last value.
    fn decode_fields(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Decodes a field whose header matched `T::TTYPE` into `slot`. A list with
/// the wrong element type is skipped and leaves `slot` alone, like a field
/// of the wrong type.
#[doc(hidden)]
pub fn decode_field<T: Value>(r: &mut Reader<'_>, slot: &mut T) -> Result<(), DecodeError> {
    let start = r.position();
    match T::decode(r) {
        Ok(v) => {
            *slot = v;
            Ok(())
        }
        Err(DecodeError::ElementTypeMismatch) => {
            r.rewind(start);
            r.skip(T::TTYPE as u8)
        }
        Err(e) => Err(e),
    }
}

/// `true` if the ids are strictly ascending (checked at compile time for
/// every message, so that encoding emits fields in upstream's order).
#[doc(hidden)]
#[allow(clippy::indexing_slicing)] // const fn, evaluated at compile time only
pub const fn ids_ascending(ids: &[i16]) -> bool {
    let mut i = 1;
    while i < ids.len() {
        if ids[i - 1] >= ids[i] {
            return false;
        }
        i += 1;
    }
    true
}
