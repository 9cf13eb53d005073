//! What a supervisor sees: the `vrouter-agent` process exits non-zero when
//! one of its tasks dies, and 0 on SIGTERM. Needs no datapath (the agent
//! retries its ksync connection meanwhile) and no root.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn start(dir: &std::path::Path, fault: Option<&std::path::Path>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vrouter-agent"));
    c.arg("--sock-dir")
        .arg(dir.join("sock"))
        .arg("--state-dir")
        .arg(dir.join("state"));
    for flag in ["--vnc-listen", "--port-listen", "--introspect-listen"] {
        c.args([flag, &format!("127.0.0.1:{}", free_port())]);
    }
    if let Some(f) = fault {
        c.env(
            "VROUTER_AGENT_FAULT_INJECT",
            format!("panic:{}", f.display()),
        );
    }
    std::fs::create_dir_all(dir.join("sock")).unwrap();
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}

/// Waits until the agent listens (its log says it runs).
fn wait_running(dir: &std::path::Path, c: &mut Child) {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
        if log.contains("agent running") {
            return;
        }
        assert!(c.try_wait().unwrap().is_none(), "agent exited early: {log}");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "agent not up: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Before, the agent logged "a task ended unexpectedly" and exited 0: a
/// supervisor restarting on failure never restarted it.
#[test]
fn a_dead_task_makes_the_agent_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("kill-a-task");
    let mut c = start(dir.path(), Some(&trigger));
    wait_running(dir.path(), &mut c);
    std::thread::sleep(Duration::from_millis(200));
    assert!(c.try_wait().unwrap().is_none(), "runs until the fault");
    std::fs::write(&trigger, b"").unwrap();
    let st = wait_exit(&mut c, Duration::from_secs(10));
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(1),
        "exit status after a task panicked; log:\n{log}"
    );
    assert!(log.contains("an agent task ended unexpectedly"), "{log}");
}

/// The contrast: a requested stop is a clean exit.
#[test]
fn sigterm_is_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path(), None);
    wait_running(dir.path(), &mut c);
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let st = wait_exit(&mut c, Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}
