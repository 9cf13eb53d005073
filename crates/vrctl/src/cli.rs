//! Command-line syntax: one subcommand per upstream tool, with that
//! tool's option names where they exist (`vif --list`, `nh --create`,
//! `rt --dump`, `mpls --create L --nh N`, `--sock-dir`, ...).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::parse;

#[derive(Debug, Parser)]
#[command(
    name = "vrctl",
    version,
    about = "Inspect and program the vRouter datapath over ksync, like upstream's vif/nh/rt/mpls/vxlan/flow/dropstats/vrouter tools"
)]
pub struct Cli {
    /// Directory of the vRouter's sockets; ksync is DIR/dpdk_netlink.
    /// [default: /var/run/vrouter; on Windows the kernel extension's device
    /// \\.\vrouterKsync, or with DIR the pipe \\.\pipe\vrouterKsync]
    #[arg(long, global = true, value_name = "DIR")]
    pub sock_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Virtual interfaces (upstream `vif`).
    Vif(VifArgs),
    /// Next hops (upstream `nh`).
    Nh(NhArgs),
    /// Routes and bridge entries (upstream `rt`).
    Rt(RtArgs),
    /// MPLS label map (upstream `mpls`).
    Mpls(MplsArgs),
    /// VXLAN VNI map (upstream `vxlan`).
    Vxlan(VxlanArgs),
    /// VRF table (upstream `vrftable`).
    Vrf(VrfArgs),
    /// The flow table (upstream `flow`).
    Flow(FlowArgs),
    /// Drop counters (upstream `dropstats`).
    Dropstats(DropstatsArgs),
    /// Datapath parameters (upstream `vrouter`).
    Vrouter(VrouterArgs),
}

/// A vif named by index, `vif0/N`, or interface name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VifRef {
    Index(u16),
    Name(String),
}

impl FromStr for VifRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(i) = s.parse::<u16>() {
            return Ok(VifRef::Index(i));
        }
        if let Some(n) = s.strip_prefix("vif0/") {
            return n
                .parse::<u16>()
                .map(VifRef::Index)
                .map_err(|_| format!("invalid vif '{s}'"));
        }
        if s.is_empty() {
            return Err("empty vif name".into());
        }
        Ok(VifRef::Name(s.into()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VifKind {
    /// A container or VM port.
    Virtual,
    /// The fabric NIC.
    Physical,
    /// The agent's packet interface (pkt0).
    Agent,
    /// The host's own stack (vhost0).
    #[value(alias = "vhost")]
    Host,
    /// A VLAN sub-interface of a virtual vif (`--parent`, `--vlan`).
    #[value(name = "virtual-vlan", alias = "vlan")]
    VirtualVlan,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["list", "get", "add", "delete", "clear"])))]
pub struct VifArgs {
    /// List every vif.
    #[arg(short, long)]
    pub list: bool,
    /// Show one vif.
    #[arg(short, long, value_name = "VIF")]
    pub get: Option<u16>,
    /// Add (or change) a vif for the OS interface NAME.
    #[arg(long, value_name = "NAME", requires = "kind")]
    pub add: Option<String>,
    /// Delete a vif (index, vif0/N or interface name).
    #[arg(long, value_name = "VIF")]
    pub delete: Option<VifRef>,
    /// Zero the counters of vif VIF, or of every vif without VIF: packets,
    /// bytes, errors, drops and the device's receive errors (upstream
    /// `vif --clear`).
    #[arg(long, value_name = "VIF", num_args = 0..=1)]
    pub clear: Option<Option<u16>>,
    /// Interface type (with --add).
    #[arg(long = "type", value_name = "TYPE", value_enum, requires = "add")]
    pub kind: Option<VifKind>,
    /// vif index [default: the lowest free one].
    #[arg(long = "vif", value_name = "N", requires = "add")]
    pub idx: Option<u16>,
    /// OS interface index [default: 0, the datapath resolves NAME].
    #[arg(long = "id", value_name = "N", requires = "add")]
    pub os_idx: Option<u32>,
    /// VRF of the port [default: 0].
    #[arg(long, value_name = "VRF", requires = "add")]
    pub vrf: Option<u16>,
    /// The vRouter's MAC on this port [default: 00:00:5e:00:01:00].
    #[arg(long, value_name = "MAC", value_parser = parse::mac, requires = "add")]
    pub mac: Option<[u8; 6]>,
    /// IPv4 address of the port's container or VM.
    #[arg(long, value_name = "ADDR", requires = "add")]
    pub ip: Option<Ipv4Addr>,
    /// IPv6 address of the port's container or VM.
    #[arg(long, value_name = "ADDR", requires = "add")]
    pub ip6: Option<Ipv6Addr>,
    /// MTU [default: the interface's].
    #[arg(long, value_name = "BYTES", requires = "add")]
    pub mtu: Option<u16>,
    /// The interface's own next hop (flow key next hop).
    #[arg(long, value_name = "NH", requires = "add")]
    pub nh: Option<u32>,
    /// Packets of this vif go through the flow table.
    #[arg(long, requires = "add")]
    pub policy: bool,
    /// The physical port behind vhost (VIF_FLAG_VHOST_PHYS).
    #[arg(long, requires = "add")]
    pub vhost_phys: bool,
    /// Trap DHCP to the agent (VIF_FLAG_DHCP_ENABLED).
    #[arg(long, requires = "add")]
    pub dhcp_enable: bool,
    /// Cross-connect pass-through traffic with this vif index.
    #[arg(long, value_name = "VIF", requires = "add")]
    pub xconnect: Option<u16>,
    /// Windows NIC GUID of the port.
    #[arg(long, value_name = "GUID", value_parser = parse::guid, requires = "add")]
    pub guid: Option<[u8; 16]>,
    /// The parent vif of a `--type virtual-vlan` sub-interface.
    #[arg(long, value_name = "VIF", requires = "vlan")]
    pub parent: Option<u16>,
    /// VLAN id of the frames the sub-interface receives (vifr_vlan_id).
    #[arg(long, value_name = "ID", requires = "parent", value_parser = clap::value_parser!(u16).range(0..4096))]
    pub vlan: Option<u16>,
    /// VLAN id it tags its frames with (vifr_ovlan_id) [default: --vlan].
    #[arg(long, value_name = "ID", requires = "vlan", value_parser = clap::value_parser!(u16).range(0..4096))]
    pub ovlan: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NhKindArg {
    Encap,
    Tunnel,
    Receive,
    Discard,
    Composite,
    /// VRF translation.
    Vrf,
    Resolve,
    L2Receive,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["list", "get", "create", "delete"])))]
pub struct NhArgs {
    /// List every next hop.
    #[arg(short, long)]
    pub list: bool,
    /// Show one next hop (and the members of a composite).
    #[arg(short, long, value_name = "NH")]
    pub get: Option<u32>,
    /// Create (or change) next hop NH.
    #[arg(long, value_name = "NH", requires = "kind")]
    pub create: Option<u32>,
    /// Delete next hop NH.
    #[arg(long, value_name = "NH")]
    pub delete: Option<u32>,
    /// Next hop type (with --create).
    #[arg(long = "type", value_name = "TYPE", value_enum, requires = "create")]
    pub kind: Option<NhKindArg>,
    /// Outgoing vif (encap, tunnel).
    #[arg(long, value_name = "VIF")]
    pub oif: Option<u16>,
    /// Destination MAC of the rewrite (encap: the port's peer; tunnel: the
    /// fabric next hop).
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub dmac: Option<[u8; 6]>,
    /// Source MAC [default: encap 00:00:5e:00:01:00, tunnel: the MAC of --oif].
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub smac: Option<[u8; 6]>,
    /// VRF of the next hop; the target VRF of `--type vrf`.
    #[arg(long, value_name = "VRF")]
    pub vrf: Option<u16>,
    /// Tunnel source address.
    #[arg(long, value_name = "ADDR")]
    pub sip: Option<Ipv4Addr>,
    /// Tunnel destination address.
    #[arg(long, value_name = "ADDR")]
    pub dip: Option<Ipv4Addr>,
    /// MPLS over UDP tunnel [default: MPLS over GRE].
    #[arg(long, conflicts_with = "vxlan")]
    pub udp: bool,
    /// VXLAN tunnel.
    #[arg(long)]
    pub vxlan: bool,
    /// Policy: packets to this next hop go through the flow table.
    #[arg(long)]
    pub pol: bool,
    /// Family bridge (an L2 next hop).
    #[arg(long)]
    pub l2: bool,
    /// Composite members: next hop ids.
    #[arg(long, value_name = "NH,..", value_delimiter = ',')]
    pub cni: Option<Vec<u32>>,
    /// Composite members' labels (-1: none), in --cni order.
    #[arg(
        long,
        value_name = "LABEL,..",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub lbl: Option<Vec<i32>>,
    /// The composite is an ECMP group.
    #[arg(long)]
    pub ecmp: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    Inet,
    Inet6,
    Bridge,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["dump", "get", "create", "delete"])))]
pub struct RtArgs {
    /// Dump the routes of VRF.
    #[arg(long, value_name = "VRF")]
    pub dump: Option<u16>,
    /// Show the route for ADDR[/PLEN] (exact, else longest match).
    #[arg(long, value_name = "ADDR[/PLEN]", value_parser = parse::prefix)]
    pub get: Option<(std::net::IpAddr, u8)>,
    /// Add (or replace) a route.
    #[arg(short, long)]
    pub create: bool,
    /// Delete a route.
    #[arg(short, long)]
    pub delete: bool,
    /// Family [default: inet, or as --prefix / --mac implies].
    #[arg(short, long, value_enum)]
    pub family: Option<FamilyArg>,
    /// VRF of --get, --create, --delete.
    #[arg(short, long, value_name = "VRF")]
    pub vrf: Option<u16>,
    /// ADDR/PLEN of an inet or inet6 route.
    #[arg(short, long, value_name = "ADDR/PLEN", value_parser = parse::prefix)]
    pub prefix: Option<(std::net::IpAddr, u8)>,
    /// Bridge entry MAC; for an inet route, the stitched MAC.
    #[arg(short = 'e', long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<[u8; 6]>,
    #[arg(short, long, value_name = "NH")]
    pub nh: Option<u32>,
    /// MPLS label (or VNI) to push.
    #[arg(short = 't', long, value_name = "LABEL")]
    pub label: Option<u32>,
    /// Proxy ARP for this address.
    #[arg(long)]
    pub proxy: bool,
    /// Flood ARP requests for this address.
    #[arg(long)]
    pub flood: bool,
    /// Trap ARP requests for this address to the agent.
    #[arg(long)]
    pub trap: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["dump", "get", "create", "delete"])))]
pub struct MplsArgs {
    /// Dump the label map.
    #[arg(short = 'b', long)]
    pub dump: bool,
    #[arg(short, long, value_name = "LABEL")]
    pub get: Option<u32>,
    /// Map LABEL to --nh.
    #[arg(short, long, value_name = "LABEL", requires = "nh")]
    pub create: Option<u32>,
    #[arg(short, long, value_name = "LABEL")]
    pub delete: Option<u32>,
    #[arg(short, long, value_name = "NH", requires = "create")]
    pub nh: Option<u32>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["dump", "get", "create", "delete"])))]
pub struct VxlanArgs {
    /// Dump the VNI map.
    #[arg(short = 'b', long)]
    pub dump: bool,
    #[arg(short, long, value_name = "VNI")]
    pub get: Option<u32>,
    /// Map VNI to --nh.
    #[arg(short, long, value_name = "VNI", requires = "nh")]
    pub create: Option<u32>,
    #[arg(short, long, value_name = "VNI")]
    pub delete: Option<u32>,
    #[arg(short, long, value_name = "NH", requires = "create")]
    pub nh: Option<u32>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["dump", "get", "create", "delete"])))]
pub struct VrfArgs {
    /// Dump the VRFs.
    #[arg(short = 'b', long)]
    pub dump: bool,
    #[arg(short, long, value_name = "VRF")]
    pub get: Option<u16>,
    #[arg(short, long, value_name = "VRF")]
    pub create: Option<u16>,
    /// Delete a VRF and every route in it.
    #[arg(short, long, value_name = "VRF")]
    pub delete: Option<u16>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["list"])))]
pub struct FlowArgs {
    /// List the flow table (mapped from the datapath's shared memory).
    #[arg(short, long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct DropstatsArgs {
    /// Zero every counter.
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("op").required(true).args(["info", "ext"])))]
pub struct VrouterArgs {
    /// Build information and table sizes.
    #[arg(long)]
    pub info: bool,
    /// The Hyper-V forwarding extension's own counters (Windows: lists,
    /// copies by reason, holds, pkt0), read from its ksync device.
    #[arg(long)]
    pub ext: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vrctl").chain(args.iter().copied()))
    }

    #[test]
    fn vif_options() {
        let c = parse(&[
            "vif",
            "--add",
            "tap1",
            "--type",
            "virtual",
            "--vrf",
            "2",
            "--mac",
            "02:00:00:00:00:01",
            "--ip",
            "10.0.0.3",
            "--mtu",
            "1500",
            "--nh",
            "12",
            "--policy",
        ])
        .unwrap();
        let Cmd::Vif(v) = c.cmd else { panic!() };
        assert_eq!(v.add.as_deref(), Some("tap1"));
        assert_eq!(v.kind, Some(VifKind::Virtual));
        assert_eq!(
            (v.vrf, v.mtu, v.nh, v.policy),
            (Some(2), Some(1500), Some(12), true)
        );
        assert_eq!(v.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(matches!(
            parse(&["vif", "--list"]).unwrap().cmd,
            Cmd::Vif(VifArgs { list: true, .. })
        ));
        let c = parse(&["vif", "--add", "vhost0", "--type", "vhost"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Vif(VifArgs {
                kind: Some(VifKind::Host),
                ..
            })
        ));
        let c = parse(&["--sock-dir", "/tmp/x", "vif", "--delete", "vif0/4"]).unwrap();
        assert_eq!(c.sock_dir, Some(PathBuf::from("/tmp/x")));
        assert!(matches!(
            c.cmd,
            Cmd::Vif(VifArgs {
                delete: Some(VifRef::Index(4)),
                ..
            })
        ));
        // --sock-dir after the subcommand, as upstream tools take it.
        let c = parse(&["vif", "--list", "--sock-dir", "/tmp/y"]).unwrap();
        assert_eq!(c.sock_dir, Some(PathBuf::from("/tmp/y")));
        let c = parse(&["vif", "--delete", "tap1"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Vif(VifArgs { delete: Some(VifRef::Name(n)), .. }) if n == "tap1")
        );
    }

    #[test]
    fn bad_input_is_reported_clearly() {
        let e = parse(&["vif", "--add", "tap1", "--type", "bogus"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let s = e.to_string();
        assert!(s.contains("'bogus'") && s.contains("virtual"), "{s}");
        let e = parse(&[
            "vif", "--add", "tap1", "--type", "virtual", "--mac", "02:00",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("invalid MAC address '02:00'"), "{e}");
        let e = parse(&["vif", "--add", "tap1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("--type"));
        let e = parse(&["vif"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = parse(&["vif", "--list", "--get", "1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
        let e = parse(&["vif", "--list", "--vrf", "1"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = parse(&["vif", "--add", "t", "--type", "virtual", "--ip", "10.0.0"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let e = parse(&["mpls", "--create", "16"]).unwrap_err();
        assert!(e.to_string().contains("--nh"));
        let e = parse(&["rt", "--create", "--prefix", "10.0.0.0/40"]).unwrap_err();
        assert!(e.to_string().contains("length must be 0 to 32"), "{e}");
        let e = parse(&["nh", "--create", "3", "--type", "tunel"]).unwrap_err();
        assert!(e.to_string().contains("tunnel"), "{e}");
        let e = parse(&[
            "nh", "--create", "3", "--type", "tunnel", "--udp", "--vxlan",
        ])
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn other_tools() {
        let c = parse(&[
            "nh",
            "--create",
            "4",
            "--type",
            "composite",
            "--ecmp",
            "--cni",
            "2,3",
            "--lbl",
            "-1,100",
        ])
        .unwrap();
        let Cmd::Nh(n) = c.cmd else { panic!() };
        assert_eq!((n.cni, n.lbl), (Some(vec![2, 3]), Some(vec![-1, 100])));
        let c = parse(&["rt", "--dump", "1", "--family", "inet6"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Rt(RtArgs {
                dump: Some(1),
                family: Some(FamilyArg::Inet6),
                ..
            })
        ));
        let c = parse(&[
            "rt",
            "-c",
            "-v",
            "1",
            "-p",
            "10.1.1.0/24",
            "-n",
            "5",
            "-t",
            "17",
            "--proxy",
        ])
        .unwrap();
        let Cmd::Rt(r) = c.cmd else { panic!() };
        assert_eq!(r.prefix, Some(("10.1.1.0".parse().unwrap(), 24)));
        assert_eq!(
            (r.vrf, r.nh, r.label, r.proxy),
            (Some(1), Some(5), Some(17), true)
        );
        assert!(matches!(
            parse(&["flow", "-l"]).unwrap().cmd,
            Cmd::Flow(FlowArgs { list: true })
        ));
        assert!(matches!(
            parse(&["dropstats"]).unwrap().cmd,
            Cmd::Dropstats(_)
        ));
        assert!(matches!(
            parse(&["vrouter", "--info"]).unwrap().cmd,
            Cmd::Vrouter(_)
        ));
        assert!(matches!(
            parse(&["vxlan", "--create", "4096", "--nh", "3"])
                .unwrap()
                .cmd,
            Cmd::Vxlan(_)
        ));
    }
}
