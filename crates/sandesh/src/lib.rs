//! The Sandesh binary codec and the ksync messages of upstream vRouter's
//! `sandesh/vr.sandesh` (`no_std` + `alloc`).
//!
//! This is what the agent and the datapath exchange over ksync, byte for
//! byte as upstream's generated C code (`*_write_binary_to_buffer` /
//! `*_read_binary_from_buffer`) writes and reads it, so that upstream tools
//! (`vif`, `nh`, `rt`, `flow`, the contrail agent) can talk to us.
//!
//! # Wire format
//!
//! An object is its name as a Thrift string (`i32` big-endian length, then
//! the ASCII bytes: Sandesh's `writeSandeshBegin` is `writeString(name)`),
//! then Thrift binary-protocol fields (`type:u8`, `id:i16` big-endian, value)
//! and a `T_STOP` (0) byte. Integers are big-endian; a string is `len:i32`
//! plus bytes without NUL; a list is `elem_type:u8`, `count:i32`, elements.
//! Sandesh adds types to Thrift's ([`TType`]): `U16` 19, `U32` 20, `U64` 9,
//! `XML` 21 (as a string), `IPV4` 22 (network-order `u32`), `UUID` 23 (16 raw
//! bytes), `IPADDR` 24 (family byte `AF_INET` 2 / `AF_INET6`, then 4 or 16
//! bytes). Several objects follow each other in one buffer; a datapath
//! answer is a `vr_response` followed by the object(s) it returns.
//!
//! # Behaviour, matching upstream
//!
//! * Encoding writes every field in ascending id order (upstream's C
//!   generator writes all non-optional fields in declaration order and
//!   `vr.sandesh` has no optional ones). A list that is empty is written as
//!   a header with count 0, exactly as upstream writes a NULL list.
//!   Field ids from [`wire::EXTENSION_FIELD_ID`] (100) up are this
//!   project's additions (e.g. `vr_flow_table_data.ftable_hold_expired`):
//!   written only when non-default, skipped by upstream's readers.
//! * Decoding skips unknown field ids, and known ids that carry another wire
//!   type (or a list with another element type), like Thrift's generated
//!   readers. Missing fields keep their default (zero / empty).
//! * Decoding never panics and never allocates more than a small multiple of
//!   the input: every length and count is checked against the bytes left
//!   before anything is sliced or allocated, and nesting is bounded by
//!   [`wire::MAX_DEPTH`]. Unlike upstream's C skip (which consumes nothing
//!   for types it does not know, and does not handle `IPADDR`), unknown
//!   type codes are an error.
//!
//! # Why hand-written
//!
//! The `thrift` crate needs `std` and has none of Sandesh's extra types, and
//! the Sandesh compiler only emits C, C++ and Python. The protocol is small;
//! the message definitions are a declarative table ([`sandesh!`]) that reads
//! like `vr.sandesh`, with compile-time checks of types and id order. The
//! `thrift` crate is used in tests to cross-check the standard encodings.
//!
//! # API
//!
//! * [`Message`]: any `vr.sandesh` object; [`Message::decode_one`],
//!   [`Message::encode`], [`Messages`] to iterate over a buffer.
//! * One struct per object ([`VrInterfaceReq`], [`VrNexthopReq`], ...)
//!   implementing [`Sandesh`] (`encode`, `to_bytes`, typed `decode`).
//! * [`sandesh!`]: declares more objects or structs from a field table.
//! * [`wire`]: the primitive codec ([`Reader`], `write_*`, [`Value`], and
//!   [`Ipv4`], [`IpAddress`], [`Uuid`] for Sandesh's `ipv4`, `ipaddr`,
//!   `uuid_t`).
//! * [`frame`]: the ksync netlink framing around a Sandesh payload
//!   (`nlmsghdr` + `genlmsghdr` + `nlattr`), zero-copy parser and builders.
#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;

mod enums;
mod error;
pub mod frame;
#[macro_use]
mod macros;
mod messages;
pub mod wire;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;

pub use enums::{FlowOp, SandeshOp};
pub use error::DecodeError;
pub use messages::*;
pub use wire::{IpAddress, Ipv4, Reader, TType, Uuid, Value};

/// A Sandesh object type: a named struct (see [`sandesh!`]).
pub trait Sandesh: wire::Fields {
    /// The object name, written before the fields.
    const NAME: &'static str;

    /// Appends the object: its name, then its fields and `T_STOP`.
    fn encode(&self, out: &mut Vec<u8>) {
        wire::write_sandesh_begin(out, Self::NAME);
        self.encode_fields(out);
    }

    /// The encoded object as a new buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes an object of this type at the start of `buf`; returns it and
    /// the bytes it took. [`DecodeError::WrongObject`] if the name differs.
    fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        if r.read_sandesh_begin()? != Self::NAME.as_bytes() {
            return Err(DecodeError::WrongObject);
        }
        let v = Self::decode_fields(&mut r)?;
        Ok((v, r.position()))
    }
}

#[doc(hidden)]
pub mod __private {
    pub use alloc::vec::Vec;
}
