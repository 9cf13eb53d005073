//! The fast path's fold reads the counters of every installed entry once a
//! second (to keep the shared flow table's counters, by which the agent
//! ages flows, rising while only the kernel forwards). Compared in one
//! run: 16 384 entries' counters read from the mapped `FP_COUNTS` array
//! (what the fold does) and the same entries looked up through the
//! `FP_FLOWS` map, a system call each (what it did before the array).
//! And a flush (any configuration change) of 16 384 entries: the epoch
//! moved on in the mapped `FP_EPOCH` (what a flush does) against each
//! entry marked dead one by one (what a ksync flow request does for its
//! flows, and what a flush did before the epoch; the mark is a write to
//! the entry's counter slot).
//!
//! `cargo bench -p vrouter --bench fast_path_fold` as root on a kernel with
//! BPF; elsewhere it says why and measures nothing.

#![allow(clippy::unwrap_used)]

#[cfg(target_os = "linux")]
fn main() {
    use criterion::{black_box, Criterion};
    use dp_core::{FlowKey, OffloadHint};
    use vrouter::linux::TcFastPath;
    use vrouter::offload::FastPath;

    let mut fp = match TcFastPath::load() {
        Ok(fp) => fp,
        Err(e) => {
            println!("fast_path_fold: skipped: cannot load the BPF fast path: {e}");
            return;
        }
    };
    const N: u32 = 16_384;
    let hint = |i: u32| OffloadHint {
        flow: i,
        gen: 1,
        in_vif: 3,
        out_vif: 4,
        key: FlowKey::new_v4(17, i as u16, 9000, 1, [10, 0, 0, 1], [10, 0, 0, 2]),
        in_macs: [0; 12],
        mtu: 1500,
        macs: None,
        tunnel: None,
        decap: None,
    };
    let hints: Vec<OffloadHint> = (0..N).map(hint).collect();
    for h in &hints {
        fp.insert(7, 8, h).unwrap();
    }
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("fold_16k_entries");
    g.bench_function("mapped_counters", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for h in &hints {
                sum += fp.counters(7, h).map_or(0, |(p, _)| p);
            }
            black_box(sum)
        })
    });
    g.bench_function("map_lookup_per_entry", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for h in &hints {
                sum += fp.entry(7, h).map_or(0, |v| u64::from(v.slot));
            }
            black_box(sum)
        })
    });
    g.finish();
    // Each flush starts from 16 384 live entries (the refill is setup, not
    // timed).
    let fp = std::cell::RefCell::new(fp);
    let fill = || {
        let mut fp = fp.borrow_mut();
        for h in &hints {
            fp.insert(7, 8, h).unwrap();
        }
    };
    let mut g = c.benchmark_group("flush_16k_entries");
    g.bench_function("epoch", |b| {
        b.iter_batched(
            fill,
            |()| {
                fp.borrow_mut()
                    .remove_all(&mut hints.iter().map(|h| (7, h)))
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.bench_function("mark_each_entry", |b| {
        b.iter_batched(
            fill,
            |()| {
                let mut fp = fp.borrow_mut();
                for h in &hints {
                    fp.remove(7, h);
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    c.final_summary();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("fast_path_fold: skipped: the BPF fast path is Linux's");
}
