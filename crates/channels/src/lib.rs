//! Agent <-> datapath channels of the vRouter, on Linux and Windows.
//!
//! Upstream vRouter connects its agent and its datapath by three channels;
//! this crate carries them, moving bytes only (the Sandesh codec and the
//! pkt0 `agent_hdr` live elsewhere):
//!
//! | channel | what | Linux | Windows |
//! |---|---|---|---|
//! | [`ksync`] | netlink-framed Sandesh requests and replies | unix stream socket `/var/run/vrouter/dpdk_netlink` | the kernel extension's device `\\.\vrouterKsync`, or a byte-mode named pipe `\\.\pipe\vrouterKsync` |
//! | [`pkt0`] | trapped and injected frames | unix datagram sockets `dpdk_pkt0` / `agent_pkt0` | the device `\\.\vrouterPkt0`, or a message-mode named pipe `\\.\pipe\vrouterPkt0` |
//! | [`flow_shm`] | the flow table (upstream's 256-byte `vr_flow_entry` records from offset 0), written by the datapath, read by the agent | a file under `/dev/shm` (+ `.meta`), `mmap`ed | a named file mapping (+ `.meta`): the extension's sections `Global\vrouterFlowTable`, or `Local\vrouterFlowTable` |
//!
//! On Windows the datapath is the Hyper-V forwarding extension
//! (`crates/winext`), a kernel driver; its ksync and pkt0 are device
//! objects, and [`ChannelPaths::default`] names them. The named pipes are
//! the same channels served by a user-space datapath ([`KsyncListener`],
//! [`Pkt0Datapath`]; the tests and `ChannelPaths::new`). The client side
//! picks the transport by name: `\\.\pipe\...` is a pipe, any other
//! `\\.\...` a device, so one agent binary talks to either.
//!
//! The socket names are upstream's DPDK vRouter names, so upstream tools
//! pointed at the same directory find them.
//!
//! # Access control
//!
//! Both ends run privileged. On Windows the pipes and the mapping carry the
//! security descriptor [`WINDOWS_SDDL`] (SYSTEM and Administrators only, no
//! inherited entries); on Linux the sockets and the flow file are created
//! mode `0600` (their owner, root in production).
//!
//! # Platform code
//!
//! Platform code sits in `sys::unix` and `sys::windows`, which expose the
//! same small set of types and functions; the modules here hold the logic
//! (framing, header layout, validation) once. The async endpoints use
//! tokio; the Linux pkt0 endpoints also work without a runtime
//! (`try_recv`/`try_send`) for a datapath whose packet loop is a plain
//! thread.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> channels::Result<()> {
//! use channels::{ChannelPaths, FlowShm, KsyncConn, KsyncListener, Pkt0Agent, Pkt0Datapath};
//!
//! let paths = ChannelPaths::new("/var/run/vrouter"); // a --sock-dir
//!
//! // Datapath side.
//! let _ksync = KsyncListener::bind(&paths.ksync)?;
//! let _pkt0 = Pkt0Datapath::bind(&paths)?;
//! let _flows = FlowShm::create(&paths.flow_shm, 4096, 512)?.into_table()?;
//!
//! // Agent side (another process).
//! let mut conn = KsyncConn::connect(&paths.ksync).await?;
//! let _agent_pkt0 = Pkt0Agent::bind(&paths)?;
//! let _table = FlowShm::open(&paths.flow_shm)?;
//! # let request = [0u8; 16];
//! conn.send(&request).await?; // one or more netlink-framed messages
//! # Ok(()) }
//! ```

mod error;
pub mod flow_shm;
pub mod ksync;
pub mod pkt0;
mod sys;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};
pub use flow_shm::{FlowShm, SharedFlowTable};
pub use ksync::{KsyncConn, KsyncListener, KsyncReader, KsyncWriter};
pub use pkt0::{Pkt0Agent, Pkt0Datapath, Pkt0Sender};
/// A handle on one of the kernel extension's devices (overlapped reads,
/// writes and IOCTLs), for tools and tests.
#[cfg(windows)]
pub use sys::device::Device as WindowsDevice;
/// The [`WINDOWS_SDDL`] security attributes, for other pipes of the node.
#[cfg(windows)]
pub use sys::security::SecurityAttributes as WindowsSecurity;

/// Security descriptor of the Windows pipes and the flow mapping: a
/// protected DACL (`P`, nothing inherited) granting GENERIC_ALL to SYSTEM
/// (`SY`) and the Administrators group (`BA`) and nothing to anyone else.
pub const WINDOWS_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// Where the channels live: socket paths on Linux, pipe and mapping names
/// on Windows.
///
/// [`ChannelPaths::default`] gives upstream's locations; [`ChannelPaths::new`]
/// moves all of them under one directory (a `--sock-dir` option). Every
/// field may also be set by hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPaths {
    /// ksync: listening socket / pipe name.
    pub ksync: PathBuf,
    /// pkt0, datapath end: the socket the datapath binds (`dpdk_pkt0`), or
    /// the pipe it serves on Windows.
    pub pkt0_datapath: PathBuf,
    /// pkt0, agent end: the socket the agent binds (`agent_pkt0`). On
    /// Windows the agent is the pipe's client and this equals
    /// `pkt0_datapath`.
    pub pkt0_agent: PathBuf,
    /// The flow table: file path, or mapping name on Windows.
    pub flow_shm: PathBuf,
}

impl Default for ChannelPaths {
    /// Linux: `/var/run/vrouter/{dpdk_netlink,dpdk_pkt0,agent_pkt0}` and
    /// `/dev/shm/vrouter-rs/flow`. Windows: the kernel extension's
    /// `\\.\vrouterKsync`, `\\.\vrouterPkt0` and `Global\vrouterFlowTable`.
    fn default() -> Self {
        sys::default_paths()
    }
}

impl ChannelPaths {
    /// Linux socket names (upstream `VR_NETLINK_UNIX_NAME`,
    /// `VR_PACKET_UNIX_NAME`, `VR_PACKET_AGENT_UNIX_NAME`) and our flow file.
    pub const KSYNC_NAME: &'static str = "dpdk_netlink";
    pub const PKT0_DATAPATH_NAME: &'static str = "dpdk_pkt0";
    pub const PKT0_AGENT_NAME: &'static str = "agent_pkt0";
    pub const FLOW_SHM_NAME: &'static str = "flow";

    /// All channels under `sock_dir`.
    ///
    /// Linux: `sock_dir/dpdk_netlink`, `sock_dir/dpdk_pkt0`,
    /// `sock_dir/agent_pkt0` and `sock_dir/flow`.
    ///
    /// Windows has no directories for pipes and mappings, so `sock_dir`
    /// becomes an instance suffix: the default names followed by `.` and the
    /// path's text with every character outside `[A-Za-z0-9_.-]` replaced by
    /// `_` (the last 96 characters). Two processes given the same directory
    /// meet; tests given different temp dirs do not collide.
    pub fn new(sock_dir: impl AsRef<Path>) -> Self {
        sys::paths_in(sock_dir.as_ref())
    }
}
