//! The resource types this server knows, with upstream's names, parents and
//! reference fields (from the `vnc_cfg.xsd` / schema YAML of the config API).

/// Upstream's one global-system-config, parent of every virtual-router.
pub const DEFAULT_GSC: &str = "default-global-system-config";
/// Upstream's one global-vrouter-config (encapsulation priorities).
pub const DEFAULT_GVC: &str = "default-global-vrouter-config";

/// A resource type. The order is the on-disk table order and never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ty {
    Domain,
    Project,
    NetworkIpam,
    VirtualNetwork,
    NetworkPolicy,
    SecurityGroup,
    VirtualMachine,
    VirtualMachineInterface,
    InstanceIp,
    GlobalSystemConfig,
    VirtualRouter,
    GlobalVrouterConfig,
}

/// Number of resource types.
pub const NTYPES: usize = 12;

impl Ty {
    pub const ALL: [Ty; NTYPES] = [
        Ty::Domain,
        Ty::Project,
        Ty::NetworkIpam,
        Ty::VirtualNetwork,
        Ty::NetworkPolicy,
        Ty::SecurityGroup,
        Ty::VirtualMachine,
        Ty::VirtualMachineInterface,
        Ty::InstanceIp,
        Ty::GlobalSystemConfig,
        Ty::VirtualRouter,
        Ty::GlobalVrouterConfig,
    ];

    /// Upstream's hyphenated type name (`virtual-network`).
    pub fn name(self) -> &'static str {
        match self {
            Ty::Domain => "domain",
            Ty::Project => "project",
            Ty::NetworkIpam => "network-ipam",
            Ty::VirtualNetwork => "virtual-network",
            Ty::NetworkPolicy => "network-policy",
            Ty::SecurityGroup => "security-group",
            Ty::VirtualMachine => "virtual-machine",
            Ty::VirtualMachineInterface => "virtual-machine-interface",
            Ty::InstanceIp => "instance-ip",
            Ty::GlobalSystemConfig => "global-system-config",
            Ty::VirtualRouter => "virtual-router",
            Ty::GlobalVrouterConfig => "global-vrouter-config",
        }
    }

    /// The underscored name used in field names (`virtual_network`).
    pub fn field(self) -> &'static str {
        match self {
            Ty::Domain => "domain",
            Ty::Project => "project",
            Ty::NetworkIpam => "network_ipam",
            Ty::VirtualNetwork => "virtual_network",
            Ty::NetworkPolicy => "network_policy",
            Ty::SecurityGroup => "security_group",
            Ty::VirtualMachine => "virtual_machine",
            Ty::VirtualMachineInterface => "virtual_machine_interface",
            Ty::InstanceIp => "instance_ip",
            Ty::GlobalSystemConfig => "global_system_config",
            Ty::VirtualRouter => "virtual_router",
            Ty::GlobalVrouterConfig => "global_vrouter_config",
        }
    }

    pub fn from_name(s: &str) -> Option<Ty> {
        Ty::ALL.into_iter().find(|t| t.name() == s)
    }

    /// From a collection path segment: upstream pluralises by appending `s`
    /// (hence `network-policys`).
    pub fn from_collection(s: &str) -> Option<Ty> {
        s.strip_suffix('s').and_then(Ty::from_name)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Allowed parent types; empty means the object hangs off config-root
    /// and its fq_name is just `[name]`.
    pub fn parents(self) -> &'static [Ty] {
        match self {
            Ty::Domain | Ty::VirtualMachine | Ty::InstanceIp | Ty::GlobalSystemConfig => &[],
            Ty::VirtualRouter | Ty::GlobalVrouterConfig => &[Ty::GlobalSystemConfig],
            Ty::Project => &[Ty::Domain],
            Ty::NetworkIpam | Ty::VirtualNetwork | Ty::NetworkPolicy | Ty::SecurityGroup => {
                &[Ty::Project]
            }
            Ty::VirtualMachineInterface => &[Ty::Project, Ty::VirtualMachine],
        }
    }

    /// Types this type may hold `<type>_refs` to.
    pub fn refs(self) -> &'static [Ty] {
        match self {
            Ty::VirtualNetwork => &[Ty::NetworkIpam, Ty::NetworkPolicy],
            Ty::VirtualMachineInterface => &[
                Ty::VirtualNetwork,
                Ty::SecurityGroup,
                Ty::VirtualMachine,
                Ty::VirtualMachineInterface,
            ],
            Ty::InstanceIp => &[
                Ty::VirtualNetwork,
                Ty::VirtualMachineInterface,
                Ty::NetworkIpam,
            ],
            Ty::VirtualRouter => &[Ty::VirtualMachine],
            _ => &[],
        }
    }

    /// Field holding references to `target`.
    pub fn ref_field(target: Ty) -> String {
        format!("{}_refs", target.field())
    }

    /// Field listing the objects of this type that refer to something.
    pub fn back_ref_field(self) -> String {
        format!("{}_back_refs", self.field())
    }

    /// Field listing children of this type (`virtual_networks`).
    pub fn children_field(self) -> String {
        format!("{}s", self.field())
    }
}
