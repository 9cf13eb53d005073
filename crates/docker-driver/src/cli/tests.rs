use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: DriverArgs,
}

fn args(a: &[&str]) -> DriverArgs {
    let mut v = vec!["contrail-docker-driver"];
    v.extend_from_slice(a);
    Cli::try_parse_from(v).unwrap().args
}

/// A configuration in the shape of upstream's `contrail-cnm-plugin.conf`
/// sample (its sections and keys, as written there).
const UPSTREAM_STYLE: &str = "\
[DRIVER]
# Net adapter for HNS switch, must be physical
Adapter = Ethernet1

# IP address of Contrail Controller API
ControllerIP = 192.0.2.10

# Port of Contrail Controller API
ControllerPort = 8082

# URL of Agent API
AgentURL = http://127.0.0.1:9091

VSwitchName = Layered?<adapter>

[LOGGING]
LogPath =
LogLevel = Debug

[AUTH]
AuthMethod = keystone

[KEYSTONE]
Os_auth_url = http://192.0.2.10:5000/v2.0/
Os_username = admin
Os_tenant_name = admin
Os_password = hunter2
Os_token =
";

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn upstream_file_is_read() {
    let c = CnmConf::parse(Path::new("x.conf"), UPSTREAM_STYLE).unwrap();
    assert_eq!(c.adapter.as_deref(), Some("Ethernet1"));
    assert_eq!(c.log_level.as_deref(), Some("debug"));
    assert_eq!(c.log_path, None);
    assert_eq!(c.ignored, vec!["[DRIVER] VSwitchName".to_string()]);
    let s = args(&[]).settings_with(Some(c), no_env).unwrap();
    assert_eq!(s.vnc_url, "http://192.0.2.10:8082");
    assert_eq!(s.agent_url, "http://127.0.0.1:9091");
    assert_eq!(s.log_level.as_deref(), Some("debug"));
    let Auth::Keystone(k) = &s.auth else {
        panic!("{:?}", s.auth)
    };
    assert_eq!(k.auth_url, "http://192.0.2.10:5000/v2.0/");
    assert_eq!(
        (k.username.as_str(), k.password.as_str()),
        ("admin", "hunter2")
    );
    assert_eq!(k.project, "admin");
    assert_eq!(k.user_domain, "Default");
    // The clients are built from it (v2.0 Keystone, http).
    let (vnc, _) = s.clients().unwrap();
    assert!(vnc.keystone().is_some());
}

#[test]
fn flags_override_the_file_and_the_file_the_environment() {
    let c = CnmConf::parse(Path::new("x.conf"), UPSTREAM_STYLE).unwrap();
    let a = args(&[
        "--vnc-url",
        "http://198.51.100.1:8082",
        "--os-username",
        "bob",
        "--os-project-name",
        "demo",
        "--os-domain",
        "corp",
        "--log-level",
        "warn",
    ]);
    let env = |k: &str| (k == "OS_PASSWORD").then(|| "from-env".to_string());
    let s = a.settings_with(Some(c), env).unwrap();
    assert_eq!(s.vnc_url, "http://198.51.100.1:8082");
    assert_eq!(s.log_level.as_deref(), Some("warn"));
    let Auth::Keystone(k) = &s.auth else { panic!() };
    assert_eq!((k.username.as_str(), k.project.as_str()), ("bob", "demo"));
    // The file's password wins over the environment.
    assert_eq!(k.password, "hunter2");
    assert_eq!(
        (k.user_domain.as_str(), k.project_domain.as_str()),
        ("corp", "corp")
    );
}

#[test]
fn upstream_flag_spellings_and_environment() {
    let a = args(&[
        "--os_auth_url",
        "http://192.0.2.10:5000/v3",
        "--os_username",
        "admin",
        "--os_tenant_name",
        "admin",
        "--agentURL",
        "http://127.0.0.1:19091",
    ]);
    let env = |k: &str| match k {
        "OS_PASSWORD" => Some("secret".to_string()),
        "OS_USER_DOMAIN_NAME" => Some("Dom".to_string()),
        _ => None,
    };
    let s = a.settings_with(None, env).unwrap();
    assert_eq!(s.agent_url, "http://127.0.0.1:19091");
    assert_eq!(s.vnc_url, "http://127.0.0.1:8082");
    let Auth::Keystone(k) = &s.auth else { panic!() };
    assert_eq!(k.password, "secret");
    assert_eq!(k.user_domain, "Dom");
    // Everything from the environment, as upstream's LoadFromEnvironment.
    let env = |k: &str| match k {
        "OS_AUTH_URL" => Some("http://192.0.2.10:5000/v3".to_string()),
        "OS_USERNAME" => Some("u".to_string()),
        "OS_PROJECT_NAME" => Some("p".to_string()),
        _ => None,
    };
    let s = args(&[]).settings_with(None, env).unwrap();
    assert!(matches!(&s.auth, Auth::Keystone(k) if k.username == "u" && k.project == "p"));
}

#[test]
fn auth_methods() {
    // noauth in the file: Keystone keys are ignored.
    let noauth = UPSTREAM_STYLE.replace("AuthMethod = keystone", "AuthMethod = noauth");
    let c = CnmConf::parse(Path::new("x.conf"), &noauth).unwrap();
    let s = args(&[]).settings_with(Some(c), no_env).unwrap();
    assert!(matches!(s.auth, Auth::None));
    // Nothing at all: noauth (the single-host node).
    let s = args(&[]).settings_with(None, no_env).unwrap();
    assert!(matches!(s.auth, Auth::None));
    assert_eq!(s.log_level, None);
    // A fixed token.
    let s = args(&["--os-token", "t0k"])
        .settings_with(None, no_env)
        .unwrap();
    assert!(matches!(&s.auth, Auth::Token(t) if t == "t0k"));
    let s = args(&["--auth-token", "t1"])
        .settings_with(None, no_env)
        .unwrap();
    assert!(matches!(&s.auth, Auth::Token(t) if t == "t1"));
    // The flag overrides the file's method.
    let c = CnmConf::parse(Path::new("x.conf"), UPSTREAM_STYLE).unwrap();
    let s = args(&["--auth-method", "noauth"])
        .settings_with(Some(c), no_env)
        .unwrap();
    assert!(matches!(s.auth, Auth::None));
    // keystone without a URL or a user: clear errors.
    let e = args(&["--auth-method", "keystone"])
        .settings_with(None, no_env)
        .unwrap_err();
    assert!(e.to_string().contains("--os-auth-url"), "{e}");
    let e = args(&["--os-auth-url", "http://k:5000/v3"])
        .settings_with(None, no_env)
        .unwrap_err();
    assert!(e.to_string().contains("user"), "{e}");
    assert!(Cli::try_parse_from(["x", "--auth-method", "ldap"]).is_err());
}

#[test]
fn bad_files_are_errors() {
    for (text, needle) in [
        ("[DRIVER]\nControllerPort = http\n", "ControllerPort"),
        ("[AUTH]\nAuthMethod = ldap\n", "AuthMethod"),
        ("[LOGGING]\nLogLevel = loud\n", "LogLevel"),
        ("[DRIVER\nAdapter = x\n", "x.conf"),
    ] {
        let e = CnmConf::parse(Path::new("x.conf"), text).unwrap_err();
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
    // Case of sections and keys does not matter; IPv6 controllers work.
    let c = CnmConf::parse(
        Path::new("x.conf"),
        "[driver]\ncontrollerip = 2001:db8::10\ncontrollerport=18082\n",
    )
    .unwrap();
    let s = args(&[]).settings_with(Some(c), no_env).unwrap();
    assert_eq!(s.vnc_url, "http://[2001:db8::10]:18082");
    // --config must exist.
    let a = args(&["--config", "/nonexistent/contrail-cnm-plugin.conf"]);
    assert!(a.conf().is_err());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.conf");
    std::fs::write(&p, UPSTREAM_STYLE).unwrap();
    let a = args(&["--config", p.to_str().unwrap()]);
    assert_eq!(
        a.conf().unwrap().unwrap().adapter.as_deref(),
        Some("Ethernet1")
    );
}
