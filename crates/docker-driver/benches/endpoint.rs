//! CreateEndpoint + Join latency (p50/p99) through the plugin router,
//! against the real config API (`vnc_api::router` over a redb store) and
//! the real agent port API (`agent::ports::router`, port files on disk),
//! both on loopback; the host interface is the real Linux veth backend when
//! running as root (else `MemoryBackend`, said so in the output).
//!
//! Baseline in the same run: the three VNC creates an endpoint needs (VM,
//! VMI, instance-ip) issued directly with `vnc_client`, so the ratio shows
//! what the driver adds on top of the config API's own cost.
//!
//! `cargo bench -p docker-driver --bench endpoint` (`BENCH_N`, default 200).

#![allow(clippy::unwrap_used)] // bench harness: a panic is the right failure

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use docker_driver::backend::{ContainerNetworking, MemoryBackend};
use docker_driver::{Config, Driver};
use serde_json::json;
use tower::ServiceExt;
use uuid::Uuid;
use vnc_client::Client;

async fn call(app: &axum::Router, path: &str, body: serde_json::Value) {
    let req = Request::post(format!("/{path}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let b = http_body_util::BodyExt::collect(r.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        !String::from_utf8_lossy(&b).contains("\"Err\""),
        "{path}: {b:?}"
    );
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        p50: pct(&v, 0.5),
        p99: pct(&v, 0.99),
        max: *v.last().unwrap(),
    }
}

/// The driver's CreateEndpoint + Join (and DeleteEndpoint) timings.
async fn driver_run<B: ContainerNetworking>(
    vnc: &str,
    ports: &str,
    backend: B,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let d = Arc::new(Driver::new(
        Client::new(vnc, None).unwrap(),
        Client::new(ports, None).unwrap(),
        backend,
        Config::default(),
    ));
    let app = docker_driver::app(d);
    call(
        &app,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": common::id("n"), "Options": {"com.docker.network.generic": {"tenant": "demo", "network": "blue"}}}),
    )
    .await;
    let mut create_join = Vec::with_capacity(n);
    let mut delete = Vec::with_capacity(n);
    let mut kept = Vec::new();
    for i in 0..n {
        let ep = json!({"NetworkID": common::id("n"), "EndpointID": common::id(&format!("ep{i}"))});
        let t = Instant::now();
        call(&app, "NetworkDriver.CreateEndpoint", ep.clone()).await;
        call(&app, "NetworkDriver.Join", ep.clone()).await;
        create_join.push(t.elapsed());
        // Keep half so address allocation sees a growing VN.
        if i % 2 == 0 {
            let t = Instant::now();
            call(&app, "NetworkDriver.DeleteEndpoint", ep).await;
            delete.push(t.elapsed());
        } else {
            kept.push(ep);
        }
    }
    // Leave nothing behind (veths in the host netns, objects, port files).
    for ep in kept {
        call(&app, "NetworkDriver.DeleteEndpoint", ep).await;
    }
    call(
        &app,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": common::id("n")}),
    )
    .await;
    (create_join, delete)
}

/// The VNC creates of one endpoint (VM, VMI, IIP) alone, then their deletes.
async fn baseline(c: &Client, vn: Uuid, n: usize) -> Vec<Duration> {
    let vn_fq = ["default-domain", "demo", "blue"];
    let mut v = Vec::with_capacity(n);
    let mut made = Vec::new();
    for i in 0..n {
        let (vm, vmi, iip) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t = Instant::now();
        c.create(
            "virtual-machine",
            json!({"uuid": vm, "fq_name": [format!("b{i}")]}),
        )
        .await
        .unwrap();
        c.create(
            "virtual-machine-interface",
            json!({"uuid": vmi, "fq_name": ["default-domain", "demo", format!("b{i}")],
                   "parent_type": "project",
                   "virtual_network_refs": [{"to": vn_fq, "uuid": vn, "attr": null}],
                   "virtual_machine_refs": [{"to": [format!("b{i}")], "uuid": vm, "attr": null}]}),
        )
        .await
        .unwrap();
        c.create(
            "instance-ip",
            json!({"uuid": iip, "fq_name": [format!("b{i}-v4")],
                   "virtual_network_refs": [{"to": vn_fq, "uuid": vn, "attr": null}],
                   "virtual_machine_interface_refs": [{"uuid": vmi, "attr": null}]}),
        )
        .await
        .unwrap();
        v.push(t.elapsed());
        made.push((vm, vmi, iip));
    }
    for (vm, vmi, iip) in made {
        c.delete("instance-ip", &iip).await.unwrap();
        c.delete("virtual-machine-interface", &vmi).await.unwrap();
        c.delete("virtual-machine", &vm).await.unwrap();
    }
    v
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let vnc = common::Vnc::start().await;
        let ports = common::Ports::start(&vnc).await;
        let c = vnc.client();
        let vn = common::seed_vn(&c, "demo", "blue", &[("198.18.0.0", 16, "198.18.0.1")]).await;

        let base = stats(baseline(&c, vn, n).await);

        #[cfg(target_os = "linux")]
        let linux = if is_root() {
            docker_driver::backend::linux::LinuxBackend::new().ok()
        } else {
            None
        };
        #[cfg(not(target_os = "linux"))]
        let linux: Option<MemoryBackend> = None;
        let (backend, (cj, del)) = match linux {
            Some(b) => ("Linux veth", driver_run(&vnc.url, &ports.url, b, n).await),
            None => {
                println!("note: not root (or not Linux): MemoryBackend, no host interfaces in the number");
                ("MemoryBackend", driver_run(&vnc.url, &ports.url, MemoryBackend::default(), n).await)
            }
        };
        let (cj, del) = (stats(cj), stats(del));
        assert!(common::leftovers(&vnc).is_empty() && ports.files().is_empty());
        println!("config API: vnc-api (redb) on loopback; port API: agent::ports on loopback; backend: {backend}");
        println!(
            "baseline VNC creates (VM+VMI+IIP): n={n} p50={:?} p99={:?} max={:?}",
            base.p50, base.p99, base.max
        );
        println!(
            "CreateEndpoint+Join:              n={n} p50={:?} p99={:?} max={:?}",
            cj.p50, cj.p99, cj.max
        );
        println!(
            "DeleteEndpoint:                   n={} p50={:?} p99={:?}",
            n / 2 + n % 2,
            del.p50,
            del.p99
        );
        println!(
            "ratio CreateEndpoint+Join / baseline: p50 {:.2}x, p99 {:.2}x",
            cj.p50.as_secs_f64() / base.p50.as_secs_f64(),
            cj.p99.as_secs_f64() / base.p99.as_secs_f64()
        );
    });
}
