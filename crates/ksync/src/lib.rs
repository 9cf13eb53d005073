//! The datapath side of the vRouter ksync protocol (`no_std` + `alloc`).
//!
//! The agent (and `vrctl`, and upstream's tools) configure the datapath by
//! sending netlink-framed Sandesh requests (`vr_interface_req`,
//! `vr_nexthop_req`, ...; framing in [`sandesh::frame`]). [`Handler`] takes
//! one received buffer, applies every request in it to a
//! [`dp_core::Router`] and appends the answers, byte for byte as upstream
//! vRouter answers them. It does no I/O: the Linux host feeds it from the
//! unix socket, the Windows kernel shim from its named pipe, and the host
//! learns about interface and flow events through [`HostOps`].
//!
//! # Answers, as upstream (`dp-core/vr_message.c`, `linux/vr_genetlink.c`)
//!
//! * Every request object is answered. ADD/DEL/RESET: a `vr_response`
//!   whose `resp_code` is 0 or a negative errno ([`errno`]; dp-core's
//!   [`ConfigError::errno`](dp_core::ConfigError::errno)). GET: one
//!   message holding `vr_response` then the object (no object on error).
//!   A FLOW_SET answer always carries a `vr_flow_response` after the
//!   `vr_response`, error or not, as upstream's.
//! * DUMP: resumes after the request's marker (`vifr_marker`,
//!   `nhr_marker`, `mr_marker`, `vrf_marker`: the last index returned, -1
//!   to start; `vxlanr_vnid`: the last VNI, 0 to start; routes: see
//!   below). Objects fill one page of [`VR_MESSAGE_PAGE_SIZE`] bytes
//!   (upstream's 4096 - 128; at least one object per page). The answer is
//!   *two* messages: a `vr_response` whose `resp_code` is the number of
//!   objects, OR-ed with [`VR_MESSAGE_DUMP_INCOMPLETE`] (bit 30) when more
//!   remain, then one message with all the page's objects (left out when
//!   there are none). Clients (upstream `utils/*.c`) print the objects,
//!   keep the last one's id as the marker and ask again while the
//!   incomplete bit is set.
//! * Framing ([`sandesh::frame::Framing`]): each answer goes back as its
//!   own netlink message with the request's type (any type is served, as
//!   upstream's datapaths do not look at it: its agent sends 10 on the DPDK
//!   socket, its tools `GENL_ID_VROUTER`), `seq` and `genlmsghdr`, `pid` 0,
//!   `nla_len` = payload length. Which upstream datapath's conventions the
//!   rest follows depends on the transport:
//!
//!   | transport | framing | why |
//!   |---|---|---|
//!   | Linux unix socket `dpdk_netlink` (the `vrouter` host) | [`Framing::Dpdk`](sandesh::frame::Framing::Dpdk): payload = `nlmsg_len - 24`, no padding, `NLM_F_MULTI` on all but the last answer, no `NLMSG_DONE` | the socket stands in for upstream's DPDK datapath socket, where upstream's agent and tools connect; its agent decodes `nlmsg_len - 24` bytes and takes `NLM_F_MULTI` as "more to come" |
//!   | Windows named pipe `\\.\pipe\vrouterKsync` | [`Framing::Windows`](sandesh::frame::Framing::Windows): payload = `nla_len - 4`, 4-byte padding, `NLM_F_MULTI` on every answer and a closing `NLMSG_DONE` | the pipe stands in for upstream's Windows driver device `\\.\vrouterKsync` (`windows/vr_ksync_kernel.c`, `KsyncHandleWrite`, before 2019-08-22), which answered so; upstream's Windows agent read that |
//!
//!   [`Handler::new`] uses [`Framing::NATIVE`](sandesh::frame::Framing::NATIVE)
//!   (Windows on Windows, DPDK elsewhere); [`Handler::with_framing`] picks
//!   one. A lone answer has flags 0 either way, so a client that reads until
//!   a message without `NLM_F_MULTI` (as upstream's agent, its tools, our
//!   agent and `vrctl` do) works with both.
//! * Batching: a buffer may hold several netlink messages, and a message's
//!   attribute several Sandesh objects (upstream's `sandesh_decode` loops
//!   the same way); each is answered in order, and the answers of one
//!   netlink message form one multipart run.
//! * Bad input never tears anything down: an object upstream's decoder
//!   cannot read (an unknown name, bad bytes) is answered -1, as upstream
//!   does, and decoding of that message's remaining objects stops; the
//!   next netlink message is served normally. A message too short for its
//!   headers is answered -1 too. A netlink header whose length is unusable
//!   ends the buffer (there is no way to find the next message): it is
//!   answered with `-EINVAL` if its header can be read, and
//!   [`Handled::malformed`] says so, so the host can drop the connection.
//!
//! # Error numbers, as upstream
//!
//! | request | condition | `resp_code` | upstream |
//! |---|---|---|---|
//! | any | undecodable object, unknown Sandesh name | -1 | `sandesh_decode` |
//! | `vr_interface_req` ADD | index beyond the table | `-EINVAL` | `vr_interface_add` |
//! | `vr_interface_req` DEL | no such vif (index or name) | `-ENODEV` | `vr_interface_delete` |
//! | `vr_interface_req` GET | no such vif | `-ENOENT` | `vr_interface_get` |
//! | `vr_interface_req` RESET | clears the counters (idx -1: all) | 0 | `vr_interface_clear_stats` |
//! | `vr_nexthop_req` ADD | id beyond the table, bad type/family | `-EINVAL` | `vr_nexthop_valid_request`, `nh_*_add` |
//! | `vr_nexthop_req` ADD | encap out of a missing vif / tunnel out of a missing vif | `-EINVAL` / `-ENODEV` | `nh_encap_add` / `nh_tunnel_add` |
//! | `vr_nexthop_req` DEL | no such next hop | `-EINVAL` | `vr_nexthop_delete` |
//! | `vr_nexthop_req` GET | beyond the table / a hole | `-ENODEV` / `-ENOENT` | `vr_nexthop_get` |
//! | `vr_route_req` ADD/DEL | family without a table | `-ENOENT` | `vr_route_add` |
//! | `vr_route_req` ADD/DEL | VRF beyond the table, bad prefix length | `-EINVAL` | `inet_route_add`, `bridge_entry_add` |
//! | `vr_route_req` ADD | next hop missing | `-ENOENT` | `mtrie_add` |
//! | `vr_route_req` ADD | tunnel next hop without a label | `-EINVAL` | `mtrie_add` |
//! | `vr_route_req` ADD | bridge table full | `-ENOMEM` | `__bridge_table_add` |
//! | `vr_route_req` DEL | inet prefix absent in a VRF with routes | 0 | `mtrie_delete` |
//! | `vr_route_req` DEL | VRF without routes / missing bridge entry | `-ENOENT` | `mtrie_delete`, `bridge_table_delete` |
//! | `vr_mpls_req` any | label beyond the table; ADD with a missing next hop | `-EINVAL` | `vr_mpls_*` |
//! | `vr_mpls_req` DEL | label not set | 0 | `vr_mpls_del` |
//! | `vr_vxlan_req` ADD | missing next hop, VNI beyond 24 bits | `-EINVAL` | `vr_vxlan_add` |
//! | `vr_vxlan_req` DEL | VNI not set | 0 | `vr_vxlan_del` |
//! | `vr_vrf_req` ADD/DEL | beyond the table; DEL of an absent VRF | `-EINVAL` | `vr_vrf_table_entry_*` |
//! | `vr_vrf_req` GET | beyond the table / absent | `-ENODEV` / `-ENOENT` | `vr_vrf_table_entry_get` |
//! | `vr_flow_req` FLOW_SET | entry's generation differs | `-EBADF` | `vr_flow_set_req_is_invalid` |
//! | `vr_flow_req` FLOW_SET | entry's key differs | `-EFAULT` | same |
//! | `vr_flow_req` FLOW_SET | ACTIVE for an index not in use; delete of one | `-ENOENT` | same, `vr_flow_set` |
//! | `vr_flow_req` FLOW_SET | reverse flow not in use, `dvrf` beyond the table | `-EINVAL` | same |
//! | `vr_flow_req` FLOW_SET | new flow whose key a trapped packet added meanwhile | `-EEXIST` (+ its index and generation) | `vr_flow_set` |
//! | `vr_flow_req` FLOW_SET | table full | `-ENOSPC` | `vr_flow_set` |
//! | `vr_flow_req` | any other `fr_op` | `-EINVAL` + a `vr_flow_response` | `vr_flow_req_process` |
//! | `vr_drop_stats_req`, `vr_mem_stats_req`, `vrouter_ops`, `vr_interface_req`, `vr_nexthop_req` | unsupported op | `-EOPNOTSUPP` | their `*_process` |
//!
//! # Routes
//!
//! Inet dumps resume after `(rtr_marker, rtr_marker_plen)` in
//! (address, length) order; an empty marker (or upstream `rt`'s first
//! all-zero marker with length 0) starts from the beginning. Upstream dumps
//! its expanded trie buckets and resumes after the bucket holding the
//! marker address; dp-core holds prefixes, so we dump each installed
//! prefix once with `PPL` (`rtr_replace_plen`) equal to its own length.
//! Bridge dumps resume after the MAC in `rtr_mac`, in MAC order.
//! `rtr_replace_plen` of ADD/DEL is ignored: dp-core finds the covering
//! route of a deleted prefix itself. GET answers the exact prefix if it
//! is installed, else the longest match of the address (upstream `rt
//! --get` semantics). As upstream, a route ADD needs an existing next hop
//! (`-ENOENT`) and a tunnel next hop needs a valid label (`-EINVAL`).
//!
//! # Objects
//!
//! Handled: `vr_interface_req`, `vr_nexthop_req`, `vr_route_req`,
//! `vr_mpls_req`, `vr_vxlan_req`, `vr_vrf_req` (ADD validates and records
//! the VRF, DEL is [`Router::vrf_reset`](dp_core::Router::vrf_reset)),
//! `vr_flow_req` (FLOW_SET, delete, FLOW_TABLE_GET), `vr_flow_table_data`
//! (FLOW_TABLE_GET), `vr_drop_stats_req` (GET, RESET), `vr_mem_stats_req`
//! (counts of live objects; allocator totals are zero), `vrouter_ops`
//! (GET; RESET = upstream's soft reset, every object deleted; ADD is
//! accepted and ignored: its knobs are tuning of upstream's kernel module).
//! The other `vr.sandesh` objects answer `-EOPNOTSUPP`.
//!
//! # Differences from upstream
//!
//! * A request with an empty payload is answered -1; upstream sends
//!   nothing back (its decoder loop never runs), which leaves a client
//!   waiting forever.
//! * Ops upstream ignores without an answer (`vr_mpls_req`, `vr_vxlan_req`,
//!   `vr_vrf_req`, `vr_route_req` with an op other than ADD/GET/DEL/DUMP)
//!   are answered `-EOPNOTSUPP`, for the same reason; so are the
//!   `vr.sandesh` objects dp-core has nothing for (`vr_mirror_req`,
//!   `vr_vrf_assign_req`, `vr_qos_map_req`, ...), which upstream serves.
//! * `vr_vrf_req` DEL also removes the VRF's routes and bridge entries
//!   (upstream's VRF table only holds host-based-services settings).
//! * `vr_route_req` DEL does not need the replacement next hop
//!   (`rtr_nh_id`) to exist: dp-core finds the covering route itself.
//! * A composite next hop whose component is missing is refused
//!   (`-EINVAL`); upstream keeps it with that component inactive.
//! * A FLOW_SET with an unknown key family or action is refused
//!   (`-EINVAL`); upstream answers `-ENOSPC` for the family and stores any
//!   action.
//! * Per-vif drop statistics are not kept, so `VIF_FLAG_GET_DROP_STATS`
//!   adds nothing to a vif GET.
//! * Bridge entries added through ksync get `VR_BE_VALID` and, with a
//!   label, `VR_BE_LABEL_VALID`; other `VR_BE_*` request flags are not
//!   stored.
//! * A flow created by the agent keeps `fe_vrf` 0: dp-core's `FlowSet`
//!   has no source VRF.
//!
//! # Why hand-written
//!
//! It is the glue between two crates of this project (the codec and the
//! core); there is nothing to reuse.

#![no_std]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod convert;
pub mod dump;
pub mod errno;
mod handler;

use alloc::string::String;

pub use handler::{FlowOpStats, Handled, Handler};

pub use dp_core::ConfigChange;
use dp_core::VifConfig;
use sandesh::VrInterfaceReq;

/// Bytes of objects in one dump page (upstream `VR_MESSAGE_PAGE_SIZE`).
pub const VR_MESSAGE_PAGE_SIZE: usize = 4096 - 128;
/// `resp_code` bit of a dump answer: more objects remain.
pub const VR_MESSAGE_DUMP_INCOMPLETE: i32 = 1 << 30;
/// `fresp_flags`: the FLOW_SET deleted the flow.
pub const VR_FLOW_RESP_FLAG_DELETED: u16 = 0x0001;
/// `vrf_flags` of an existing VRF.
pub const VRF_FLAG_VALID: i32 = 0x0001;

/// What the host that owns the ports and the held packets must do when
/// ksync changes the configuration. Called synchronously from
/// [`Handler::handle`].
pub trait HostOps {
    /// A vif is about to be added or changed (`cfg.idx` may already
    /// exist). Called *before* the core learns it: the Linux host opens the
    /// interface named `cfg.name` here, the Windows host binds the NIC
    /// `req.vifr_if_guid`. An error (a negative errno) fails the request
    /// and leaves the core unchanged.
    fn vif_add(&mut self, cfg: &VifConfig, req: &VrInterfaceReq) -> Result<(), i32>;

    /// The vif was deleted from the core: close its port.
    fn vif_del(&mut self, idx: u16);

    /// The agent decided flow `idx`, which was on hold: re-inject the
    /// packets held for it.
    fn flow_released(&mut self, idx: u32);

    /// Flow `idx` was deleted while packets were held for it: drop them.
    fn flow_deleted(&mut self, idx: u32);

    /// Flow `idx` was created, changed or deleted (called for a decided
    /// flow's reverse entry too). A host that copies flow decisions
    /// elsewhere (a kernel fast path) drops its copies of these entries.
    fn flow_changed(&mut self, _idx: u32) {}

    /// A request that may change forwarding state other than flows (vif,
    /// next hop, route, label, VRF, vRouter settings) is about to be
    /// applied, or tried: the copied flow decisions `change` names may be
    /// stale ([`ConfigChange::Any`]: every one). Reads (`Get`, `Dump`,
    /// statistics) and flow requests do not call it.
    fn config_changed(&mut self, change: ConfigChange) {
        let _ = change;
    }

    /// Facts only the host knows (where the flow table is mapped, ...).
    fn host_info(&self) -> HostInfo {
        HostInfo::default()
    }

    /// Frames the operating system dropped on vif `idx`'s port before the
    /// datapath read them (a full receive queue), reported as
    /// `vifr_dev_ierrors`: upstream's DPDK datapath puts its NIC's receive
    /// errors there. Without it a datapath that falls behind loses frames
    /// no counter shows.
    fn dev_ierrors(&self, idx: u16) -> u64 {
        let _ = idx;
        0
    }

    /// `vif --clear` reset vif `idx`'s counters (`None`: every vif's): the
    /// host's own counters of those vifs ([`HostOps::dev_ierrors`]) start
    /// from 0 again, as upstream's `hif_clear_stats` clears its device's.
    fn vif_stats_cleared(&mut self, idx: Option<u16>) {
        let _ = idx;
    }
}

/// A host without ports or held packets (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopHost;

impl HostOps for NoopHost {
    fn vif_add(&mut self, _: &VifConfig, _: &VrInterfaceReq) -> Result<(), i32> {
        Ok(())
    }
    fn vif_del(&mut self, _: u16) {}
    fn flow_released(&mut self, _: u32) {}
    fn flow_deleted(&mut self, _: u32) {}
}

/// Host facts reported in `vr_flow_table_data` and `vrouter_ops`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// `ftable_file_path`: the flow table's shared-memory file (Linux) or
    /// mapping name (Windows); empty if not shared.
    pub flow_table_path: String,
    /// `ftable_size` in bytes; 0 means "the records": `(entries +
    /// overflow) * 256` (upstream `sizeof(struct vr_flow_entry)`).
    pub flow_table_size: u32,
    /// `ftable_dev` (upstream: the flow device's major number).
    pub flow_table_dev: u16,
    /// `vo_build_info`, upstream's JSON (`{"build-info": [{"build-version":
    /// ..., "build-user": ..., "build-hostname": ..., "build-time": ...}]}`);
    /// empty means this crate's version.
    pub build_info: String,
    /// `ftable_cpus` (at least 1 is reported).
    pub cpus: u32,
}

/// The default `vo_build_info`.
pub fn default_build_info() -> String {
    alloc::format!(
        "{{\"build-info\" : [{{\"build-version\" : \"{}\", \"build-user\" : \"vrouter-rs\", \
         \"build-hostname\" : \"\", \"build-time\" : \"\"}}]}}",
        env!("CARGO_PKG_VERSION")
    )
}
