//! Commands end to end against an in-process datapath
//! ([`LocalTransport`]): parse, request, answer, print.

use clap::Parser;
use dp_core::{NhKind, Prefix, Router, RouterConfig, TunnelKind};
use ksync::{Handler, NoopHost};

use crate::cli::Cli;
use crate::client::{Client, ClientError, LocalTransport};

struct Dp {
    handler: Handler,
    router: Router,
    host: NoopHost,
}

impl Dp {
    fn new() -> Dp {
        Dp {
            handler: Handler::with_page_size(600),
            router: Router::new(RouterConfig::small()).unwrap(),
            host: NoopHost,
        }
    }

    /// Runs `vrctl <args>`: its output, or the error text.
    fn run(&mut self, args: &str) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("vrctl").chain(args.split_whitespace()))
            .map_err(|e| e.to_string())?;
        let mut client = Client::new(LocalTransport::new(
            &mut self.handler,
            &mut self.router,
            &mut self.host,
        ));
        let mut out = Vec::new();
        crate::run::run(&cli.cmd, &mut client, &mut out).map_err(|e| format!("{e:#}"))?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn ok(&mut self, args: &str) -> String {
        self.run(args)
            .unwrap_or_else(|e| panic!("vrctl {args}: {e}"))
    }
}

#[test]
fn build_a_topology_and_list_it() {
    let mut dp = Dp::new();
    assert_eq!(
        dp.ok("vif --add eth0 --type physical --mac 02:00:00:00:00:01 --ip 192.0.2.1"),
        "vif0/0 added (eth0)\n"
    );
    dp.ok("vif --add tap1 --type virtual --vrf 1 --ip 10.1.1.3 --nh 10 --policy");
    dp.ok("vif --add tap2 --type virtual --vif 5 --vrf 1 --ip 10.1.1.4 --mtu 9000");
    assert_eq!(
        dp.ok("vif --add tap3 --type virtual"),
        "vif0/2 added (tap3)\n"
    );
    dp.ok("nh --create 10 --type encap --oif 1 --dmac 02:11:00:00:00:01");
    dp.ok("nh --create 11 --type encap --oif 5 --dmac 02:11:00:00:00:02");
    dp.ok("nh --create 20 --type tunnel --oif 0 --sip 192.0.2.1 --dip 192.0.2.2 --dmac 02:00:00:00:00:02 --udp");
    dp.ok("nh --create 30 --type composite --ecmp --cni 10,11 --lbl -1,-1");
    dp.ok("nh --create 2 --type receive");
    dp.ok("rt --create --vrf 1 --prefix 10.1.1.3/32 --nh 10 --proxy --mac 02:11:00:00:00:01");
    dp.ok("rt --create --vrf 1 --prefix 10.1.1.4 --nh 11");
    dp.ok("rt --create --vrf 1 --prefix 10.1.2.0/24 --nh 20 --label 17");
    dp.ok("rt --create --vrf 1 --prefix fd00::3/128 --nh 10");
    dp.ok("rt --create --vrf 1 --family bridge --mac 02:11:00:00:00:01 --nh 10");
    dp.ok("rt -c -v 1 -e 02:22:00:00:00:01 -n 20 -t 5000");
    dp.ok("mpls --create 16 --nh 10");
    dp.ok("vxlan --create 4096 --nh 30");
    dp.ok("vrf --create 3");

    // Router state.
    let r = &dp.router;
    assert_eq!(r.vif(5).unwrap().cfg.mtu, 9000);
    assert!(matches!(
        r.nh(20).unwrap().kind,
        NhKind::Tunnel { kind: TunnelKind::MplsOverUdp, sip: [192, 0, 2, 1], encap, .. }
            if encap[6..12] == [2, 0, 0, 0, 0, 1]
    ));
    assert_eq!(
        r.route_get(1, Prefix::V4([10, 1, 2, 0], 24))
            .unwrap()
            .label(),
        Some(17)
    );
    assert_eq!(
        r.routes()
            .bridge_lookup(1, &[2, 0x22, 0, 0, 0, 1])
            .unwrap()
            .label(),
        Some(5000)
    );
    assert_eq!(r.mpls().get(16), Some(10));
    assert_eq!(r.vxlan().get(4096), Some(30));

    // Listings.
    let vifs = dp.ok("vif --list");
    assert!(vifs.starts_with("Vrouter Interface Table\n\nFlags: P=Policy"));
    for want in [
        "vif0/0      OS: eth0\n            Type:Physical HWaddr:02:00:00:00:00:01 IPaddr:192.0.2.1\n",
        "vif0/1      OS: tap1 NH: 10\n            Type:Virtual HWaddr:00:00:5e:00:01:00 IPaddr:10.1.1.3\n            Vrf:1 Mcast Vrf:65535 Flags:PL3L2 QOS:0 Ref:1\n",
        "vif0/5      OS: tap2\n",
        "            MTU:9000\n",
    ] {
        assert!(vifs.contains(want), "missing {want:?} in\n{vifs}");
    }
    let nhs = dp.ok("nh --list");
    assert!(
        nhs.contains("Id:20         Type:Tunnel         Fmly: AF_INET"),
        "{nhs}"
    );
    assert!(nhs.contains("Flags:Valid, MPLSoUDP, "));
    assert!(nhs.contains("Sip:192.0.2.1 Dip:192.0.2.2"));
    assert!(nhs.contains("Sub NH(label): 10 11\n"));
    let get = dp.ok("nh --get 30");
    assert_eq!(get.matches("Id:").count(), 3, "composite and its members");

    let rt = dp.ok("rt --dump 1");
    assert!(rt.contains("vRouter inet4 routing table 0/1/unicast"));
    assert!(rt.contains("10.1.1.3/32            32            P          -             10        2:11:0:0:0:1(-1)\n"), "{rt}");
    assert!(
        rt.contains("10.1.2.0/24            24            L         17             20        -\n"),
        "{rt}"
    );
    let rt6 = dp.ok("rt --dump 1 --family inet6");
    assert!(rt6.contains("fd00::3/128"));
    let br = dp.ok("rt --dump 1 --family bridge");
    assert!(br.contains("2:11:0:0:0:1"));
    assert!(br.contains("2:22:0:0:0:1"));
    let g = dp.ok("rt --get 10.1.2.77 --vrf 1");
    assert!(g.contains("10.1.2.0/24"), "{g}");
    assert_eq!(
        dp.ok("mpls --dump"),
        format!("{}      16        10\n", crate::print::mpls_header())
    );
    assert_eq!(
        dp.ok("vxlan --dump"),
        format!("{}   4096    30\n", crate::print::vxlan_header())
    );
    assert!(dp.ok("vrf --dump").contains("     1    V\n     3    V\n"));
    assert!(dp
        .ok("vrouter --info")
        .contains("Interfaces limit                     64"));
    assert_eq!(dp.ok("dropstats"), "");

    // Deletes.
    dp.ok("rt --delete --vrf 1 --prefix 10.1.1.4/32");
    assert!(dp
        .router
        .route_get(1, Prefix::V4([10, 1, 1, 4], 32))
        .is_none());
    dp.ok("mpls --delete 16");
    dp.ok("vxlan --delete 4096");
    dp.ok("nh --delete 30");
    dp.ok("vif --delete tap3");
    dp.ok("vif --delete vif0/5");
    assert!(dp.router.vif(2).is_none() && dp.router.vif(5).is_none());
    assert!(!dp.ok("vif --list").contains("tap2"));
}

#[test]
fn many_objects_page_through() {
    let mut dp = Dp::new();
    for i in 0..40 {
        dp.ok(&format!("vif --add tap{i} --type virtual"));
    }
    for i in 0..200 {
        dp.ok(&format!("nh --create {} --type discard", i + 100));
    }
    let vifs = dp.ok("vif --list");
    for i in 0..40 {
        assert_eq!(vifs.matches(&format!("OS: tap{i}\n")).count(), 1);
    }
    assert_eq!(dp.ok("nh --list").matches("Type:Drop").count(), 200);
}

#[test]
fn failures_are_explained() {
    let mut dp = Dp::new();
    let e = dp.run("vif --get 3").unwrap_err();
    assert_eq!(e, "vRouter(Response): No such file or directory (2)");
    let e = dp.run("vif --delete 3").unwrap_err();
    assert!(
        e.starts_with("vif --delete: vRouter(Response): No such device (19)"),
        "{e}"
    );
    let e = dp.run("vif --add x --type virtual --vif 9999").unwrap_err();
    assert!(e.contains("Invalid argument (22)"), "{e}");
    let e = dp
        .run("nh --create 5 --type encap --oif 1 --dmac 02:00:00:00:00:01")
        .unwrap_err();
    assert!(
        e.contains("nh --create 5") && e.contains("Invalid argument (22)"),
        "{e}"
    );
    let e = dp.run("nh --create 5 --type tunnel --oif 0").unwrap_err();
    assert!(e.contains("needs --sip"), "{e}");
    let e = dp.run("nh --create 5 --type tunnel --oif 0 --sip 1.1.1.1 --dip 2.2.2.2 --dmac 02:00:00:00:00:01").unwrap_err();
    assert!(e.contains("--oif 0 is not a vif"), "{e}");
    let e = dp
        .run("nh --create 5 --type composite --cni 1,2 --lbl 3")
        .unwrap_err();
    assert!(e.contains("--lbl has 1 labels for 2"), "{e}");
    let e = dp.run("nh --get 77").unwrap_err();
    assert!(e.contains("(2)"));
    let e = dp
        .run("rt --create --prefix 10.0.0.0/8 --nh 1")
        .unwrap_err();
    assert!(e.contains("--vrf"), "{e}");
    let e = dp
        .run("rt --create --vrf 0 --prefix 10.0.0.0/8 --nh 1")
        .unwrap_err();
    assert!(
        e.contains("rt --create: vRouter(Response): No such file"),
        "{e}"
    );
    let e = dp
        .run("rt --create --vrf 0 --family inet6 --prefix 10.0.0.0/8 --nh 1")
        .unwrap_err();
    assert!(e.contains("does not belong to family inet6"), "{e}");
    let e = dp.run("rt --delete --vrf 0 --family bridge").unwrap_err();
    assert!(e.contains("needs --mac"), "{e}");
    let e = dp.run("mpls --create 16 --nh 99").unwrap_err();
    assert!(e.contains("Invalid argument"), "{e}");
    // Upstream deletes an unset label without complaint.
    assert_eq!(dp.run("mpls --delete 16"), Ok(String::new()));
    let e = dp.run("mpls --delete 9999999").unwrap_err();
    assert!(e.contains("Invalid argument"), "{e}");
    let e = dp.run("vxlan --create 99999999 --nh 1").unwrap_err();
    assert!(e.contains("Invalid argument"), "{e}");
    let e = dp.run("vxlan --get 5").unwrap_err();
    assert!(e.contains("(2)"), "{e}");
    let e = dp.run("vrf --create 999").unwrap_err();
    assert!(e.contains("Invalid argument"), "{e}");
    // The in-process datapath has no shared flow table.
    let e = dp.run("flow -l").unwrap_err();
    assert!(e.contains("does not share its flow table"), "{e}");
    let e = dp.run("vif --add x --type nonsense").unwrap_err();
    assert!(e.contains("invalid value 'nonsense'"), "{e}");
}

#[test]
fn client_error_texts() {
    let e = ClientError::Connect {
        addr: "/var/run/vrouter/dpdk_netlink".into(),
        reason: "nobody is listening there".into(),
    };
    assert_eq!(
        e.to_string(),
        "cannot connect to the vRouter at /var/run/vrouter/dpdk_netlink: nobody is listening there (is `vrouter` running?)"
    );
    assert_eq!(
        ClientError::Vrouter(-95).to_string(),
        "vRouter(Response): Operation not supported (95)"
    );
    assert_eq!(ClientError::Vrouter(-95).errno(), Some(-95));
}

#[test]
fn vlan_sub_interface_add_list_and_errors() {
    let mut dp = Dp::new();
    // The parent must exist (upstream: -EINVAL).
    let e = dp
        .run("vif --add tap1.100 --type virtual-vlan --vif 4 --parent 3 --vlan 100")
        .unwrap_err();
    assert!(e.contains("Invalid argument"), "{e}");
    dp.ok("vif --add tap1 --type virtual --vif 3 --vrf 1");
    dp.ok("vif --add tap1.100 --type virtual-vlan --vif 4 --parent 3 --vlan 100 --vrf 2");
    dp.ok("vif --add tap1.200 --type vlan --vif 5 --parent 3 --vlan 200 --ovlan 201");
    let sub = dp.router.vif(4).unwrap().cfg.sub.unwrap();
    assert_eq!((sub.parent, sub.vlan, sub.ovlan), (3, 100, 100));
    assert_eq!(dp.router.vif(5).unwrap().cfg.sub.unwrap().ovlan, 201);
    // One sub-interface per VLAN of a parent (upstream: -EEXIST).
    let e = dp
        .run("vif --add tap1.x --type virtual-vlan --vif 6 --parent 3 --vlan 100")
        .unwrap_err();
    assert!(e.contains("File exists"), "{e}");
    // Out of range, or a VLAN without its parent: refused by the CLI.
    assert!(dp
        .run("vif --add t --type virtual-vlan --parent 3 --vlan 4096")
        .is_err());
    assert!(dp.run("vif --add t --type virtual-vlan --vlan 7").is_err());
    assert!(dp.run("vif --add t --type virtual-vlan").is_err());
    assert!(dp
        .run("vif --add t --type virtual --parent 3 --vlan 7")
        .is_err());
    let list = dp.ok("vif --list");
    for want in [
        "vif0/4      OS: tap1.100 Parent:vif0/3\n            Type:Virtual(Vlan) ",
        "            Vlan(o/i): 201/200\n",
    ] {
        assert!(list.contains(want), "missing {want:?} in\n{list}");
    }
    dp.ok("vif --delete 4");
    dp.ok("vif --delete 5");
    assert!(dp.run("vif --delete 5").is_err());
}
