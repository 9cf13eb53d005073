//! The node's Windows services: names, dependencies and recovery actions,
//! in one place for the binaries (`service_host::windows::install`) and
//! checked against the MSI (`packaging/windows/vrouter-rs.wxs`) by a test.
//! Plain data, so the check runs on every platform.

use std::time::Duration;

/// One service of the node.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The service's name (`sc.exe query <name>`).
    pub name: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    /// Services that must run first (the SCM starts them, and stops this
    /// one before them).
    pub dependencies: &'static [&'static str],
}

/// Recovery after a failure: restart after 5 s, 10 s, then 60 s; the
/// failure count resets after a day without one. `sc.exe failure <name>
/// reset= 86400 actions= restart/5000/restart/10000/restart/60000` sets
/// the same.
pub const RECOVERY: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(60),
];
/// Seconds without failure after which the failure count resets.
pub const RECOVERY_RESET: Duration = Duration::from_secs(86_400);

/// The vRouter agent (`vrouter-agent.exe`). Upstream's Windows agent
/// service had this name too.
pub static AGENT: ServiceSpec = ServiceSpec {
    name: "ContrailAgent",
    display_name: "Contrail vRouter agent",
    description: "vRouter agent of the Contrail compute node: config store, port API, datapath programming, flows",
    dependencies: &[],
};

/// The Docker network + IPAM driver (`contrail-docker-driver.exe`). It
/// registers ports with the agent, so the agent starts first.
pub static DOCKER_DRIVER: ServiceSpec = ServiceSpec {
    name: "ContrailDockerDriver",
    display_name: "Contrail Docker network driver",
    description: "Docker network and IPAM plugin \"Contrail\" of the vRouter compute node (named pipe \\\\.\\pipe\\Contrail)",
    dependencies: &["ContrailAgent"],
};

/// `sc.exe failure` arguments that set [`RECOVERY`] on `spec` (what the
/// MSI's custom actions run).
pub fn sc_failure_args(spec: &ServiceSpec) -> String {
    let actions: Vec<String> = RECOVERY
        .iter()
        .map(|d| format!("restart/{}", d.as_millis()))
        .collect();
    format!(
        "failure {} reset= {} actions= {}",
        spec.name,
        RECOVERY_RESET.as_secs(),
        actions.join("/")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const WXS: &str = include_str!("../../../packaging/windows/vrouter-rs.wxs");

    /// The attribute `name` of the first element starting with `start`,
    /// with `&quot;` decoded.
    fn attr(start: &str, name: &str) -> String {
        let at = WXS
            .find(start)
            .unwrap_or_else(|| panic!("{start} not in the .wxs"));
        let el = &WXS[at..at + WXS[at..].find('>').expect("element end")];
        let key = format!(" {name}=\"");
        let v = el
            .find(&key)
            .unwrap_or_else(|| panic!("{name} not on {start}"));
        let v = &el[v + key.len()..];
        v[..v.find('"').expect("attribute end")].replace("&quot;", "\"")
    }

    #[test]
    fn the_msi_installs_these_services() {
        for (spec, id) in [(&AGENT, "Agent"), (&DOCKER_DRIVER, "Driver")] {
            let el = format!("<ServiceInstall Id=\"{id}Service\"");
            assert_eq!(attr(&el, "Name"), spec.name);
            assert_eq!(attr(&el, "DisplayName"), spec.display_name);
            assert_eq!(attr(&el, "Description"), spec.description);
            assert_eq!(attr(&el, "Start"), "auto");
            assert_eq!(attr(&el, "Type"), "ownProcess");
            let ctl = format!("<ServiceControl Id=\"{id}Control\"");
            assert_eq!(attr(&ctl, "Name"), spec.name);
            assert_eq!(attr(&ctl, "Remove"), "uninstall");
            let recovery = format!("ExeCommand=\"{}\"", sc_failure_args(spec));
            assert!(WXS.contains(&recovery), "the .wxs lacks {recovery}");
        }
        assert!(AGENT.dependencies.is_empty());
        assert_eq!(DOCKER_DRIVER.dependencies, [AGENT.name]);
        assert!(WXS.contains(&format!("<ServiceDependency Id=\"{}\"/>", AGENT.name)));
    }

    #[test]
    fn sc_failure_matches_the_recovery_table() {
        assert_eq!(
            sc_failure_args(&AGENT),
            "failure ContrailAgent reset= 86400 actions= restart/5000/restart/10000/restart/60000"
        );
    }
}
