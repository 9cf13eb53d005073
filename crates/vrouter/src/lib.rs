//! `vrouter`: the Linux datapath host around the portable forwarding core
//! (`dp-core`).
//!
//! The host owns the [`dp_core::Router`], the fabric interface, the agent
//! channel (pkt0) and the virtual interfaces the agent adds by name (the host
//! end of a container's veth). One thread ([`datapath`]) polls every port,
//! runs batches through the core and executes its actions; other threads
//! configure it through a [`Datapath`] handle.
//!
//! # Layout
//!
//! * [`port`]: the [`Port`]/[`Poller`]/[`PortOpener`] traits;
//! * [`vnet`]: virtio-net headers, checksum completion and GSO segmentation
//!   (portable, pure);
//! * [`gro`]: merging decapsulated TCP segments into GSO super-packets on
//!   their way to a container (portable, pure);
//! * [`datapath`]: the loop, the hold store and the control handle
//!   (portable);
//! * [`ksync_server`]: the agent's configuration channel (ksync over
//!   `channels`) applied to the running datapath, with the host side of
//!   ksync (ports opened by name, held frames, agent presence);
//! * [`mem`]: in-memory ports for tests and for non-Linux builds;
//! * `linux` (Linux only): AF_PACKET and TAP ports, the pkt0 socket, epoll,
//!   the overlay guard.
//!
//! # Packet I/O and offloads
//!
//! Ports are AF_PACKET sockets bound to one interface, read with `recvmmsg`
//! (32 frames per call) and written in batches with `sendmmsg` (runs of
//! same-flow tunnel datagrams as one UDP GSO super-packet); see `linux::AfPacketPort`
//! for why not a TPACKET ring. Every socket sets `PACKET_VNET_HDR`, so veth
//! offloads stay **on**: a container's TCP stack hands us 64 KB TSO
//! super-packets with partial checksums, described by a 10-byte
//! `virtio_net_hdr`.
//!
//! * Same-host VM to VM: the super-packet is forwarded whole with its
//!   header; the destination veth delivers it like a routed veth would.
//! * Into a tunnel, to the agent, or anything else the core does besides a
//!   plain local transmit: the datapath segments it (TCP and UDP GSO, by
//!   `gso_size`, fixing IP ids, lengths and checksums) and runs the segments
//!   through the core. Partial checksums of non-GSO frames are completed on
//!   receipt. Details in [`datapath`] and [`vnet`].
//! * Out of a tunnel towards a container: consecutive segments of a TCP flow
//!   in one batch are merged back into a GSO super-packet ([`gro`]), so the
//!   container's stack sees what kernel GRO would have given it.
//!
//! AF_PACKET cannot steal frames from the host stack the way the kernel
//! module's rx handler does, so the host stack also sees what containers
//! send on the host ends of their veths. It drops IP addressed to the
//! vRouter MAC (not its own), but it would answer ARP for host addresses;
//! `linux::LinuxPorts` therefore sets `arp_ignore=8` and `disable_ipv6=1` on
//! every VM interface it opens.
//!
//! # Measured here (2 vCPUs shared with other jobs; release build)
//!
//! `cargo run --release -p vrouter --example rx_bench` (60-byte flood on a
//! veth, then one frame every 2 ms):
//!
//! | reader | flood | latency median / p99 |
//! |---|---|---|
//! | `recvmmsg` x32 (chosen) | 284 kpps | 16 µs / 52 µs |
//! | TPACKET_V3, 1 ms block timeout | 506 kpps | 515 µs / 1011 µs |
//! | TPACKET_V3, 8 ms block timeout | 532 kpps | 4.1 ms / 8.0 ms |
//!
//! The ring costs less CPU per frame but holds frames until its block is
//! retired; a container's ping would pay that twice per hop. `recvmmsg`
//! keeps per-packet latency and still amortises the syscall over 32 frames
//! under load. A TPACKET_V2 ring of 2 KB frames for the fabric port (fabric
//! frames are never GSO) is the obvious next step if pps matters more.
//!
//! `VRT_TCP_MB=1024 cargo test --release -p vrouter --test netns --
//! --nocapture --test-threads=1` (1 GiB, one stream, offloads on):
//! container to container on one host 4.8 to 8.5 Gbit/s (super-packets
//! forwarded whole; the notes' kernel routed veth path is 13.4), ping RTT
//! 20 to 60 µs; TAP <-> veth 5.5 Gbit/s each way. Ratios against the
//! kernel measured in one run, including two hosts over MPLSoUDP, are in
//! `docs/performance.md` (`scripts/perf/run.sh`).
//!
//! # Host traffic on the fabric
//!
//! The fabric NIC keeps its addresses and the host keeps using it: the
//! fabric port sees *copies* of received frames (`PACKET_IGNORE_OUTGOING`
//! hides what the host and we send), the core decapsulates overlay packets
//! addressed to the host and returns `PassThrough` for everything else,
//! which the datapath ignores because the kernel already has it. There is no
//! vhost0 TAP in this mode, so nothing about the host's addressing changes
//! and the datapath can stop without cutting the host off. A TAP port exists
//! (`linux::TapPort`) for a vhost-like setup if it is ever needed.
//!
//! The kernel also receives the overlay packets themselves. To keep it from
//! answering them with ICMP port/protocol unreachable, `linux::OverlayGuard`
//! claims UDP 6635 and 4789 and the GRE protocol with sockets that carry a
//! drop-all BPF filter: a listener exists, so no ICMP, and nothing is queued.
//! The sockets close with the process (nothing to clean up, no firewall
//! rules touched).
//!
//! # Portability
//!
//! Everything except the `linux` module builds on any OS; on Windows the
//! library offers the portable loop with [`mem`] ports (the Windows datapath
//! is a kernel extension, not this host) and the `vrouter` binary only
//! reports that it needs Linux.

pub mod datapath;
pub mod gro;
pub mod hold;
pub mod ksync_server;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod mem;
pub mod offload;
pub mod port;
pub mod vnet;

pub use datapath::{
    Core, Datapath, DatapathConfig, DpError, DpStats, Fault, FaultKind, LoopExit, VifInfo,
};
pub use ksync_server::{KsyncServer, ServerConfig};
pub use port::{
    Offloads, Poller, Port, PortOpener, PortStats, RxSlot, Waker, MAX_BATCH, MAX_FRAME,
};
pub use vnet::VnetHdr;
