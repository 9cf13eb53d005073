//! The extension's cost on top of the core: 64-byte frames in chains of 32
//! through the real shim callbacks on the fake switch (NBL walk, MDL
//! mapping, plan, forwarding-detail destinations, send and completion),
//! against `Router::process` alone on the same router, in the same run.
//!
//! `cargo bench -p winext --bench shim`
//!
//! Both sides restore the 32 frames into their buffers every iteration (the
//! pipeline rewrites in place); the fake's other work per chain (walking
//! the lists it gets back) is inside the shim figure, so the ratio is an
//! upper bound on what the shim adds.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::{Action, Actions, Packet, HEADROOM};
use std::time::{Duration, Instant};
use winext::fake::NblSpec;

const BATCH: usize = 32;

/// 18 bytes of payload: 64-byte frames.
const PAYLOAD: [u8; 18] = [0xab; 18];

/// A node with policy on and `BATCH` flows A->B and A->C decided (so the
/// benchmark runs the flow lookup, as in production).
fn node() -> (Node, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    let local: Vec<Vec<u8>> = (0..BATCH as u16)
        .map(|i| a_to_b(2000 + i, &PAYLOAD))
        .collect();
    let encap: Vec<Vec<u8>> = (0..BATCH as u16)
        .map(|i| a_to_c(3000 + i, &PAYLOAD))
        .collect();
    for f in local.iter().chain(encap.iter()) {
        n.send(NIC_A, f);
        let (hdr, _) = n.pkt0().expect("flow miss");
        assert_eq!(n.decide(&hdr, VR_FLOW_ACTION_FORWARD), 0);
    }
    n.sw.take_sent();
    n.sw.completed();
    n.sw.audit().unwrap();
    (n, local, encap)
}

/// The shim's side: the prepared chain through the real callbacks.
struct ShimSide {
    prepared: winext::fake::Prepared,
}

impl ShimSide {
    fn new(name: &str, n: &Node, frames: &[Vec<u8>]) -> Self {
        let specs: Vec<NblSpec> = frames
            .iter()
            .map(|f| NblSpec::frame(NIC_A, f, HEADROOM))
            .collect();
        let prepared = n.sw.prepare(&specs);
        n.sw.set_quiet(true);
        // One checked round first: every list forwarded, none copied.
        let st0 = *n.sw.driver.lock().ext.stats();
        let q0 = n.sw.quiet_counts();
        n.sw.send_prepared(&prepared);
        let st1 = *n.sw.driver.lock().ext.stats();
        assert_eq!(st1.forwarded - st0.forwarded, BATCH as u64, "{name}");
        assert_eq!(
            st1.zero_copy - st0.zero_copy,
            BATCH as u64,
            "{name}: in place"
        );
        assert_eq!(
            n.sw.quiet_counts().1 - q0.1,
            BATCH as u64,
            "{name}: all back"
        );
        ShimSide { prepared }
    }

    fn run(&self, n: &Node) {
        n.sw.send_prepared(black_box(&self.prepared));
    }

    fn finish(self, name: &str, n: &Node) {
        n.sw.set_quiet(false);
        let (sent, back) = n.sw.quiet_counts();
        assert_eq!(sent, back, "{name}: every list sent down came back");
    }
}

/// The core alone on the extension's own router: restore the frames into
/// buffers with the same headroom, `Router::process` (under the driver's
/// lock, as the shim runs it).
struct CoreSide {
    bufs: Vec<Vec<u8>>,
    actions: Actions,
}

impl CoreSide {
    fn new(name: &str, n: &Node, frames: &[Vec<u8>]) -> Self {
        let mut s = CoreSide {
            bufs: (0..BATCH).map(|_| vec![0u8; 256]).collect(),
            actions: Actions::with_capacity(4 * BATCH),
        };
        s.run(n, frames);
        assert!(
            s.actions
                .as_slice()
                .iter()
                .all(|a| matches!(a, Action::Tx { .. })),
            "{name}: the core forwards every frame"
        );
        s
    }

    fn run(&mut self, n: &Node, frames: &[Vec<u8>]) {
        let mut g = n.sw.driver.lock();
        let r = g.ext.router_mut();
        let mut it = self.bufs.iter_mut().zip(frames.iter());
        let mut pkts: [Packet<'_>; BATCH] = core::array::from_fn(|_| {
            let (buf, f) = it.next().unwrap();
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            Packet::new(buf, HEADROOM, f.len()).unwrap()
        });
        self.actions.clear();
        black_box(r.process(3, &mut pkts, &mut self.actions));
    }
}

/// ns per packet of `f` over `ms` milliseconds.
fn per_packet(ms: u64, mut f: impl FnMut()) -> f64 {
    let mut iters = 0u64;
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(ms) {
        for _ in 0..50 {
            f();
        }
        iters += 50;
    }
    t.elapsed().as_nanos() as f64 / (iters * BATCH as u64) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Shim and core measured in alternation (40 pairs of 50 ms), so load from
/// other processes hits both alike: the medians and the median ratio.
fn paired(name: &str, n: &Node, frames: &[Vec<u8>]) -> (f64, f64, f64) {
    let shim = ShimSide::new(name, n, frames);
    let mut core = CoreSide::new(name, n, frames);
    for _ in 0..1000 {
        shim.run(n);
        core.run(n, frames);
    }
    let (mut s, mut k, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..40 {
        let a = per_packet(50, || shim.run(n));
        let b = per_packet(50, || core.run(n, frames));
        s.push(a);
        k.push(b);
        r.push(a / b);
    }
    shim.finish(name, n);
    (median(&mut s), median(&mut k), median(&mut r))
}

fn criterion_runs(c: &mut Criterion, name: &str, n: &Node, frames: &[Vec<u8>]) {
    let mut g = c.benchmark_group("winext");
    g.throughput(Throughput::Elements(BATCH as u64));
    let shim = ShimSide::new(name, n, frames);
    g.bench_function(format!("{name}/shim"), |b| b.iter(|| shim.run(n)));
    shim.finish(name, n);
    let mut core = CoreSide::new(name, n, frames);
    g.bench_function(format!("{name}/core"), |b| b.iter(|| core.run(n, frames)));
    g.finish();
}

fn bench(c: &mut Criterion) {
    let (n, local, encap) = node();
    let mut lines = Vec::new();
    for (name, frames) in [("local", &local), ("encap", &encap)] {
        criterion_runs(c, name, &n, frames);
        let (s, k, r) = paired(name, &n, frames);
        lines.push(format!(
            "winext {name}: shim {s:.1} ns/packet, dp-core alone {k:.1} ns/packet, ratio {r:.2} (medians of 40 alternating pairs)"
        ));
    }
    n.sw.audit().unwrap();
    for l in lines {
        println!("{l}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
