//! The part of upstream's `vnc_cfg.xsd` that IF-MAP needs here: which
//! links are references (and which end holds them), which references carry
//! an attribute (sent as an `attr(…)` node), which are parent/child, and
//! which property elements are lists, integers or booleans (XML does not
//! say; the VNC JSON does).
//!
//! Covered: the types a compute node's agent reads (virtual-network,
//! routing-instance, virtual-machine-interface, instance-ip,
//! network-policy, security-group, virtual-machine, virtual-router,
//! global-vrouter-config, network-ipam, project) and the properties of
//! theirs that matter; anything else is kept as strings.

/// A reference `owner -> target` and whether it carries an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefKind {
    pub owner: &'static str,
    pub target: &'static str,
    /// The reference has an attribute: IF-MAP sends it as a node of type
    /// `<owner>-<target>` named `attr(<target>,<owner>)`.
    pub attr: bool,
}

pub const REFS: &[RefKind] = &[
    RefKind {
        owner: "virtual-machine-interface",
        target: "virtual-network",
        attr: false,
    },
    RefKind {
        owner: "virtual-machine-interface",
        target: "virtual-machine",
        attr: false,
    },
    RefKind {
        owner: "virtual-machine-interface",
        target: "security-group",
        attr: false,
    },
    RefKind {
        owner: "virtual-machine-interface",
        target: "virtual-machine-interface",
        attr: false,
    },
    RefKind {
        owner: "virtual-machine-interface",
        target: "routing-instance",
        attr: true,
    },
    RefKind {
        owner: "instance-ip",
        target: "virtual-network",
        attr: false,
    },
    RefKind {
        owner: "instance-ip",
        target: "virtual-machine-interface",
        attr: false,
    },
    RefKind {
        owner: "instance-ip",
        target: "network-ipam",
        attr: false,
    },
    RefKind {
        owner: "virtual-network",
        target: "network-ipam",
        attr: true,
    },
    RefKind {
        owner: "virtual-network",
        target: "network-policy",
        attr: true,
    },
    RefKind {
        owner: "virtual-router",
        target: "virtual-machine",
        attr: false,
    },
    RefKind {
        owner: "virtual-router",
        target: "network-ipam",
        attr: true,
    },
];

/// Parent -> child pairs (IF-MAP links with metadata `<parent>-<child>`).
pub const PARENTS: &[(&str, &str)] = &[
    ("domain", "project"),
    ("project", "virtual-network"),
    ("project", "network-policy"),
    ("project", "security-group"),
    ("project", "network-ipam"),
    ("project", "virtual-machine-interface"),
    ("virtual-machine", "virtual-machine-interface"),
    ("virtual-network", "routing-instance"),
    ("virtual-network", "access-control-list"),
    ("security-group", "access-control-list"),
    ("global-system-config", "virtual-router"),
    ("global-system-config", "global-vrouter-config"),
];

/// The reference between two node types, whichever end holds it.
pub fn ref_between(a: &str, b: &str) -> Option<RefKind> {
    REFS.iter()
        .copied()
        .find(|r| r.owner == a && r.target == b)
        .or_else(|| REFS.iter().copied().find(|r| r.owner == b && r.target == a))
}

/// The reference an attribute node of type `ty` stands for.
pub fn attr_ref(ty: &str) -> Option<RefKind> {
    REFS.iter().copied().find(|r| {
        r.attr
            && ty.len() == r.owner.len() + 1 + r.target.len()
            && ty.starts_with(r.owner)
            && ty.ends_with(r.target)
            && ty.as_bytes().get(r.owner.len()) == Some(&b'-')
    })
}

/// `parent` is the parent type of `child`.
pub fn is_parent(parent: &str, child: &str) -> bool {
    PARENTS.contains(&(parent, child))
}

/// Property elements that are always lists (their VNC JSON is an array,
/// even with one entry).
pub const LISTS: &[&str] = &[
    "mac-address",
    "ipam-subnets",
    "policy-rule",
    "src-addresses",
    "dst-addresses",
    "src-ports",
    "dst-ports",
    "subnet-list",
    "application",
    "encapsulation",
    "route-target",
    "acl-rule",
    "allocation-pools",
    "dns-nameservers",
    "dhcp-option",
    "route",
    "linklocal-service-entry",
    "ip-fabric-service-ip",
    "fixed-ip",
    "key-value-pair",
];

/// Property elements whose text is an integer.
pub const INTS: &[&str] = &[
    "ip-prefix-len",
    "start-port",
    "end-port",
    "uuid-mslong",
    "uuid-lslong",
    "owner-access",
    "group-access",
    "other-access",
    "virtual-network-network-id",
    "vxlan-network-identifier",
    "network-id",
    "security-group-id",
    "major",
    "minor",
    "alloc-unit",
    "autonomous-system",
    "max-flows",
    "udp-port",
    "linklocal-service-port",
    "ip-fabric-service-port",
    "flow-export-rate",
    "mtu",
    "routing-instance-id",
];

/// Property elements whose text is a boolean.
pub const BOOLS: &[&str] = &[
    "enable",
    "user-visible",
    "enable-dhcp",
    "addr-from-start",
    "allow-transit",
    "mirror-destination",
    "dynamic",
    "virtual-router-dpdk-enabled",
    "router-external",
    "is-shared",
    "port-security-enabled",
    "flood-unknown-unicast",
    "multi-policy-service-chains-enabled",
    "routing-instance-is-default",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_refs_and_attr_nodes() {
        let r = ref_between("virtual-network", "virtual-machine-interface").unwrap();
        assert_eq!(
            (r.owner, r.target),
            ("virtual-machine-interface", "virtual-network")
        );
        assert!(ref_between("virtual-network", "project").is_none());
        let a = attr_ref("virtual-network-network-ipam").unwrap();
        assert_eq!((a.owner, a.target), ("virtual-network", "network-ipam"));
        assert!(attr_ref("virtual-machine-interface-virtual-network").is_none());
        assert!(is_parent("project", "virtual-network"));
    }
}
