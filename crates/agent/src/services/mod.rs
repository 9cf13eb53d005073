//! pkt0 services: ARP and DHCP answers to frames the datapath traps.
//!
//! Pure functions over bytes, no I/O: [`handle`] takes one frame read from
//! pkt0 and, when it is a question the agent answers, writes the whole pkt0
//! frame to send back into `out`.
//!
//! # pkt0 framing
//!
//! The datapath traps a frame as a 14-byte Ethernet header (destination =
//! source = the agent vif's MAC, EtherType IPv4 — a carrier the datapath
//! never looks at), the 30-byte `agent_hdr` ([`dp_core::agent::AgentHdr`]:
//! `ifindex` = the vif the frame came in on, `vrf`, `cmd`), then the
//! original frame. An answer uses the same wrapping: the trap's outer
//! Ethernet header copied as is, `agent_hdr { cmd: SWITCH, ifindex: the vif
//! to send on, vrf }` (the datapath transmits the inner frame on `ifindex`
//! unchanged), then the answer frame.
//!
//! # What is answered
//!
//! * [`arp`] (`cmd::ARP`): requests for the subnet gateway or DNS address
//!   get the vRouter MAC [`dp_core::VROUTER_MAC`]; requests for another
//!   known address of the same VRF ([`ServiceContext::mac_of`]) get that
//!   MAC (proxy ARP). Gratuitous ARP, replies and unknown targets are
//!   ignored.
//! * [`dhcp`] (`cmd::L3_PROTOCOLS` / `cmd::L2_PROTOCOLS` carrying UDP to
//!   port 67): a DHCPv4 server (RFC 2131) handing out the port's
//!   instance-ip.
//! * [`icmp`] (`cmd::L3_PROTOCOLS` carrying an ICMP echo request): the
//!   gateway and DNS addresses answer ping, as upstream's agent does.
//! * [`icmp_error`] (`cmd::HANDLE_DF`, `cmd::ZERO_TTL`): ICMP
//!   fragmentation needed / ICMPv6 packet too big with the path MTU, and
//!   time exceeded, to the sender.
//! * [`ndp`] (`cmd::L3_PROTOCOLS` carrying ICMPv6): router advertisements,
//!   neighbour advertisements for the gateway and known addresses, echo
//!   replies for the gateway.
//! * [`dhcp6`] (`cmd::L3_PROTOCOLS` carrying UDP to port 547): a DHCPv6
//!   server handing out the port's IPv6 instance-ip.
//!
//! Untagged frames only: a VLAN-tagged question is ignored (not ARP / not
//! IP). Anything truncated or malformed is [`Outcome::Ignored`] with a
//! reason, never a panic.

pub mod arp;
pub mod dhcp;
pub mod dhcp6;
pub mod icmp;
pub mod icmp_error;
pub mod ndp;
#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, Ipv6Addr};

use dp_core::agent::{cmd, AgentHdr, AGENT_HDR_LEN, TRAP_HEADROOM};
use packet::ETHERNET_HEADER_LEN;

/// Lease time when the context gives none (upstream's default, one day).
pub const DEFAULT_LEASE_SECS: u32 = 86_400;

/// What the agent knows about a VM/container port (a vif).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortInfo {
    /// The vif index.
    pub vif: u16,
    /// Its VRF.
    pub vrf: u16,
    /// The port's MAC (the only client MAC DHCP answers on this port).
    pub mac: [u8; 6],
    /// Its instance-ip (the DHCP lease), if any.
    pub ip: Option<Ipv4Addr>,
    /// Prefix length of its subnet.
    pub plen: u8,
    /// The subnet's default gateway (also the DHCP server identifier).
    pub gateway: Option<Ipv4Addr>,
    /// The subnet's DNS server address.
    pub dns: Option<Ipv4Addr>,
    /// Interface MTU to announce (option 26; 0 = none).
    pub mtu: u16,
    /// Whether the subnet has DHCP enabled.
    pub dhcp_enabled: bool,
    /// Host name to announce (option 12).
    pub hostname: Option<String>,
    /// Its IPv6 instance-ip, if any.
    pub ip6: Option<Ipv6Addr>,
    /// Its IPv6 subnet (prefix, length).
    pub prefix6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 subnet's gateway and DNS addresses.
    pub gateway6: Option<Ipv6Addr>,
    pub dns6: Option<Ipv6Addr>,
    /// Whether the IPv6 subnet has DHCP enabled.
    pub dhcp6_enabled: bool,
}

/// The agent state the services read.
pub trait ServiceContext {
    /// The port behind a vif.
    fn port(&self, vif: u16) -> Option<PortInfo>;
    /// The MAC of a known address (VM, container, service address) in a
    /// VRF, for proxy ARP.
    fn mac_of(&self, vrf: u16, ip: Ipv4Addr) -> Option<[u8; 6]>;
    /// The same for an IPv6 address (neighbour advertisements).
    fn mac_of6(&self, _vrf: u16, _ip: Ipv6Addr) -> Option<[u8; 6]> {
        None
    }
    /// DHCP lease time in seconds (0 means [`DEFAULT_LEASE_SECS`]).
    fn lease_secs(&self) -> u32 {
        DEFAULT_LEASE_SECS
    }
}

/// What [`handle`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a whole pkt0 frame to send to the datapath.
    Reply,
    /// The client released its lease (nothing to send).
    Released { vif: u16, ip: Ipv4Addr },
    /// Nothing to do, and why (for debug logs and counters).
    Ignored(&'static str),
}

/// A parsed pkt0 trap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trap<'a> {
    pub outer: &'a [u8],
    pub hdr: AgentHdr,
    /// The trapped frame, from its Ethernet header.
    pub frame: &'a [u8],
}

impl Trap<'_> {
    /// Starts the answer in `out`: the trap's outer Ethernet header and an
    /// `agent_hdr` telling the datapath to send the rest on the vif the
    /// question came from.
    pub(crate) fn begin_reply(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.outer);
        let mut h = [0u8; AGENT_HDR_LEN];
        AgentHdr {
            ifindex: self.hdr.ifindex,
            vrf: self.hdr.vrf,
            cmd: cmd::SWITCH,
            ..AgentHdr::default()
        }
        .emit(&mut h);
        out.extend_from_slice(&h);
    }
}

/// An IPv4 frame carrying ICMP (protocol 1).
fn is_icmp(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x08, 0x00]) && frame.get(ETHERNET_HEADER_LEN + 9) == Some(&1)
}

/// Answers one frame read from pkt0. `out` is cleared; on
/// [`Outcome::Reply`] it holds the pkt0 frame to write back.
pub fn handle(trap: &[u8], ctx: &impl ServiceContext, out: &mut Vec<u8>) -> Outcome {
    out.clear();
    let (Some(outer), Some(hdr)) = (
        trap.get(..ETHERNET_HEADER_LEN),
        trap.get(ETHERNET_HEADER_LEN..).and_then(AgentHdr::parse),
    ) else {
        return Outcome::Ignored("short pkt0 frame");
    };
    let t = Trap {
        outer,
        hdr,
        frame: trap.get(TRAP_HEADROOM..).unwrap_or(&[]),
    };
    let res = match hdr.cmd {
        cmd::ARP => arp::answer(&t, ctx, out),
        cmd::HANDLE_DF | cmd::ZERO_TTL => icmp_error::answer(&t, ctx, out),
        cmd::L2_PROTOCOLS | cmd::L3_PROTOCOLS if ndp::is_icmpv6(t.frame) => {
            ndp::answer(&t, ctx, out)
        }
        cmd::L2_PROTOCOLS | cmd::L3_PROTOCOLS if dhcp6::is_dhcp6(t.frame) => {
            dhcp6::answer(&t, ctx, out)
        }
        cmd::L2_PROTOCOLS => dhcp::answer(&t, ctx, out),
        cmd::L3_PROTOCOLS => match dhcp::answer(&t, ctx, out) {
            Outcome::Ignored(_) if is_icmp(t.frame) => icmp::answer(&t, ctx, out),
            o => o,
        },
        _ => Outcome::Ignored("not a service trap"),
    };
    if res != Outcome::Reply {
        out.clear();
    }
    res
}
