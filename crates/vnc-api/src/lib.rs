//! The agent's embedded configuration store and the subset of the
//! OpenSDN / Tungsten Fabric VNC config REST API it serves.
//!
//! # Why hand-written
//!
//! No Rust crate implements the VNC API (upstream's server is Python over
//! Cassandra/ZooKeeper, generated from `vnc_cfg.xsd`). This crate keeps the
//! API's wire shapes so that a client (the Docker driver, `vnc-client`,
//! upstream's `vnc_api` library, curl from the upstream docs) works against
//! it and against a real config API server alike, for the resource types a
//! single container host needs: `domain`, `project`, `network-ipam`,
//! `virtual-network`, `network-policy`, `security-group`,
//! `virtual-machine`, `virtual-machine-interface`, `instance-ip`, and for
//! joining a cluster `global-system-config`, `virtual-router` (one per
//! compute node: its name and `virtual_router_ip_address`) and
//! `global-vrouter-config` (`encapsulation_priorities`,
//! `vxlan_network_identifier_mode`).
//!
//! # Shapes
//!
//! * Bodies are envelopes `{"virtual-network": {...}}`; the inner object is
//!   upstream's JSON: `uuid`, `fq_name` (list), `name`, `parent_type`,
//!   `parent_uuid`, `display_name`, `id_perms`, properties by their upstream
//!   names, and `<type>_refs: [{"to": [fq...], "uuid", "attr"}]`.
//! * `POST /<type>s` creates (`fq_name` required; `parent_type`,
//!   `parent_uuid` and `name` must agree with it; uuid optional) and returns
//!   the stored object with `href`, `parent_href` and allocated fields.
//!   `GET /<type>/<uuid>` adds `href`s, `<type>_back_refs` and children
//!   lists (`virtual_networks: [{"to","href","uuid"}]`); `?fields=a,b`,
//!   `?exclude_back_refs=true`, `?exclude_children=true`.
//!   `PUT` merges the given fields (a refs list replaces the stored one, a
//!   `null` removes a property); uuid, fq_name, parent and server-allocated
//!   ids cannot change (400). `DELETE` refuses (409) while other objects
//!   refer to the object or it has children; a project's unused `default`
//!   security group goes with the project.
//! * `GET /<type>s` lists `{"<type>s": [{"href","fq_name","uuid"}]}`;
//!   `detail=true` gives envelopes; filters `parent_id`,
//!   `parent_fq_name_str` (+`parent_type`), `back_ref_id`, `obj_uuids`
//!   (comma lists), `filters=k==v`, `fields`, `count=true`.
//! * `POST /fqname-to-id`, `/id-to-fqname`, `/ref-update` as upstream
//!   (`ref-update` also adds and removes references to types not stored
//!   here, by `ref-uuid` or `ref-fq-name`).
//! * Errors are plain text with upstream's status codes: 400 bad input,
//!   404 unknown type / object / reference target, 409 conflicts.
//!
//! Server-side behaviour kept from upstream: `default-global-system-config`
//! and its `default-global-vrouter-config` (encapsulation priorities
//! MPLSoGRE, MPLSoUDP, VXLAN; VNI mode automatic) exist from the start;
//! a virtual-router needs a valid `virtual_router_ip_address`; every project gets a `default`
//! security group (ingress from itself, egress anywhere, IPv4 and IPv6)
//! and every security group a `security_group_id` from 8000000; every VN a
//! `virtual_network_network_id` (lowest free, from 1); IPAM subnets get
//! `default_gateway` and `dns_server_address` at the subnet's last usable
//! address and the one before (`.254`, `.253` of a /24), or at the first
//! and second host addresses with `addr_from_start: true`,
//! `enable_dhcp: true` and a `subnet_uuid`; a VMI gets
//! `02:` + the first five bytes of its uuid as MAC when none is given; an
//! instance-ip gets the next free address of its VN's subnet (downwards
//! from the top, or upwards with `addr_from_start`; honouring
//! `subnet_uuid`, `instance_ip_family` and allocation pools), and a given
//! address must lie in a subnet of the VN and be unused there.
//!
//! Input rules kept from upstream: `fq_name` is required on create and is
//! a list (a `:`-joined string is refused); names may not hold characters
//! XML cannot carry (NUL and other controls), nor `:` in the object's own
//! name. Security-group and policy rule subnets must be valid prefixes
//! (matching the rule's `ethertype`), and a security-group rule must have
//! `local` on one side. References to types this server does not store
//! (`routing_instance_refs`, `tag_refs`, `interface_route_table_refs` on a
//! VMI, ...) and unknown properties are kept as given and read back.
//!
//! # Transactions
//!
//! One API operation (one HTTP request) is one redb write transaction.
//! Objects live in memory with their indices; an operation edits them with
//! an undo log and either fails having changed nothing (no partial writes:
//! an instance-ip POST that fails after picking an address leaves nothing
//! behind), or commits every object it touched at once and bumps the
//! revision that [`Store::subscribe`] announces. [`Store::snapshot`] is a
//! consistent, cheap (shared) view for the agent.

mod error;
mod ipam;
mod ops;
mod schema;
mod server;
mod store;

pub use error::{ApiError, StoreError};
pub use ops::{ReadOpts, SG_ID_MIN, VN_ID_MAX};
pub use schema::{Ty, DEFAULT_GSC, DEFAULT_GVC};
pub use server::router;
pub use store::{Snapshot, SnapshotBuilder, Store};

/// The resource types served, by upstream name.
pub const TYPES: [&str; schema::NTYPES] = [
    "domain",
    "project",
    "network-ipam",
    "virtual-network",
    "network-policy",
    "security-group",
    "virtual-machine",
    "virtual-machine-interface",
    "instance-ip",
    "global-system-config",
    "virtual-router",
    "global-vrouter-config",
];

#[cfg(test)]
mod tests;
