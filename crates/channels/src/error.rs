//! The crate's error type: one enum, each variant naming the endpoint or
//! mapping it is about so a log line is enough to act on.

use std::io;

use dp_core::flow::table::FlowTableError;

/// Result alias of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong on a channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What was being done ("bind", "connect", "read", ...).
        op: &'static str,
        /// The socket path, pipe or mapping name.
        addr: String,
        #[source]
        source: io::Error,
    },
    /// Nobody listens at `addr`: the other process is not running (yet).
    /// The datapath counts such pkt0 frames as drops; the agent retries.
    #[error("{addr}: peer not present")]
    PeerNotPresent { addr: String },
    /// A live process already owns `addr` (a second datapath?).
    #[error("{addr}: already in use by a live process")]
    AddrInUse { addr: String },
    /// An async endpoint was created outside a tokio runtime.
    #[error("{op}: must be called from inside a tokio runtime")]
    NoRuntime { op: &'static str },

    /// A received ksync message header announced a length outside
    /// `min..=max`. A byte stream cannot be resynchronised after this: the
    /// connection is unusable for receiving (see [`Error::Desynchronized`]).
    #[error("ksync message length {len} outside {min}..={max} bytes")]
    BadLength { len: u32, min: u32, max: u32 },
    /// The peer closed the connection in the middle of a message.
    #[error("ksync connection closed inside a message ({have} bytes of it received)")]
    Truncated { have: usize },
    /// `recv` after a framing error: the connection must be closed.
    #[error("ksync stream lost its framing after an earlier error; close the connection")]
    Desynchronized,
    /// A buffer handed to `send` is not a sequence of whole messages.
    #[error("ksync message to send is malformed: {reason}")]
    BadMessage { reason: &'static str },

    /// A pkt0 frame to send is larger than [`crate::pkt0::PKT0_MAX_FRAME`]
    /// (or empty).
    #[error("pkt0 frame of {len} bytes outside 1..={max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A received pkt0 frame did not fit the caller's buffer; it was
    /// consumed and dropped, the endpoint stays usable.
    #[error("pkt0 frame of {len} bytes does not fit the {cap}-byte buffer; dropped")]
    BufferTooSmall { len: usize, cap: usize },
    /// The peer's receive queue is full (non-blocking send only).
    #[error("{addr}: peer receive queue full")]
    WouldBlock { addr: String },

    /// No flow table mapping by that name: the datapath is not running.
    #[error("flow table {name}: not found (is the datapath running?)")]
    ShmNotFound { name: String },
    /// The mapping does not start with `VRFT`: not a flow table, or its
    /// creator has not finished initialising it.
    #[error("flow table {name}: bad magic {found:02x?}, expected \"VRFT\" (not a flow table, or still being created)")]
    ShmBadMagic { name: String, found: [u8; 4] },
    /// The header describes a layout this build does not understand.
    #[error("flow table {name}: {field} is {found}, this build expects {expected}")]
    ShmBadLayout {
        name: String,
        field: &'static str,
        found: u64,
        expected: u64,
    },
    /// The mapping is shorter than its header (or the requested size) needs.
    #[error("flow table {name}: mapping has {have} bytes, {need} needed")]
    ShmTooSmall { name: String, have: u64, need: u64 },
    /// The requested or recorded table size is invalid.
    #[error("flow table {name}: {entries} + {oflow} entries: {source}")]
    ShmBadSize {
        name: String,
        entries: u32,
        oflow: u32,
        #[source]
        source: FlowTableError,
    },
    /// Only the creator (the datapath) may build the writable table.
    #[error("flow table {name}: opened read-side; only its creator may write it")]
    NotCreator { name: String },
}

impl Error {
    /// An [`Error::Io`] about `addr`.
    pub(crate) fn io(
        op: &'static str,
        addr: &(impl AsDisplay + ?Sized),
        source: io::Error,
    ) -> Self {
        Self::Io {
            op,
            addr: addr.as_display(),
            source,
        }
    }

    /// The peer is absent: [`Error::PeerNotPresent`].
    pub fn is_peer_not_present(&self) -> bool {
        matches!(self, Self::PeerNotPresent { .. })
    }
}

/// Paths and names as they appear in messages.
pub(crate) trait AsDisplay {
    fn as_display(&self) -> String;
}

impl AsDisplay for std::path::Path {
    fn as_display(&self) -> String {
        self.display().to_string()
    }
}

impl AsDisplay for std::path::PathBuf {
    fn as_display(&self) -> String {
        self.display().to_string()
    }
}

impl AsDisplay for str {
    fn as_display(&self) -> String {
        self.to_owned()
    }
}
