//! CreateEndpoint + Join latency (p50/p99) through the plugin router, against
//! the in-test config API and port API on loopback (MemoryBackend: the host
//! interface is not part of the number). `cargo bench -p docker-driver`.

#![allow(clippy::unwrap_used)] // bench harness: a panic is the right failure

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use docker_driver::backend::MemoryBackend;
use docker_driver::{Config, Driver};
use serde_json::json;
use tower::ServiceExt;
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
        let vnc = common::FakeVnc::new();
        let ports = common::FakePorts::default();
        let vu = common::serve(vnc.router()).await;
        let pu = common::serve(ports.router()).await;
        let c = Client::new(&vu, None).unwrap();
        common::seed_vn(&c, "demo", "blue", &[("198.18.0.0", 16, "198.18.0.1")]).await;
        let d = Arc::new(Driver::new(c, Client::new(&pu, None).unwrap(), MemoryBackend::default(), Config::default()));
        let app = docker_driver::app(d);
        call(&app, "NetworkDriver.CreateNetwork", json!({"NetworkID": "n", "Options": {"com.docker.network.generic": {"tenant": "demo", "network": "blue"}}})).await;
        let mut create_join = Vec::with_capacity(n);
        let mut delete = Vec::with_capacity(n);
        for i in 0..n {
            let ep = json!({"NetworkID": "n", "EndpointID": format!("ep{i}")});
            let t = Instant::now();
            call(&app, "NetworkDriver.CreateEndpoint", ep.clone()).await;
            call(&app, "NetworkDriver.Join", ep.clone()).await;
            create_join.push(t.elapsed());
            // Keep half so address allocation sees a growing VN.
            if i % 2 == 0 {
                let t = Instant::now();
                call(&app, "NetworkDriver.DeleteEndpoint", ep).await;
                delete.push(t.elapsed());
            }
        }
        create_join.sort();
        delete.sort();
        println!(
            "CreateEndpoint+Join: n={n} p50={:?} p99={:?} max={:?}",
            pct(&create_join, 0.5), pct(&create_join, 0.99), create_join.last().unwrap()
        );
        println!("DeleteEndpoint: n={} p50={:?} p99={:?}", delete.len(), pct(&delete, 0.5), pct(&delete, 0.99));
    });
}
