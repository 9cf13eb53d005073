//! Compile the fast path's BPF program (`bpf/fastpath.c`) with clang on
//! Linux. Without clang the build goes on with an empty object and
//! `vrouter --fast-path tc` says so at run time.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/fastpath.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let obj = out.join("fastpath.o");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let clang = std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .args([
            "-I/usr/include/x86_64-linux-gnu",
            "-I/usr/include/aarch64-linux-gnu",
        ])
        .arg("-c")
        .arg("bpf/fastpath.c")
        .arg("-o")
        .arg(&obj)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!(
                "cargo:warning=BPF fast path not built ({clang}: {other:?}); install clang and libbpf-dev for `vrouter --fast-path tc`"
            );
            std::fs::write(&obj, b"").expect("write an empty BPF object");
        }
    }
}
