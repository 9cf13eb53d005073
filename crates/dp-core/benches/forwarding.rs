//! Forwarding benchmarks on one core: 64-byte inner packets in batches of
//! 32, with 100k established flows and 10k routes loaded.
//!
//! `cargo bench -p dp-core --features testkit --bench forwarding`
//!
//! Each iteration restores the 32 frames into their buffers (the pipeline
//! rewrites in place), which is part of what a host does per packet anyway
//! (the NIC writes the frame); the restore is measured separately as
//! `restore_only` so it can be subtracted.
//!
//! `DP_COUNT=<encap|decap|local|cold|cold_decap|none>:<batches>` runs that
//! many batches of one workload and exits instead, for counting
//! instructions and cache misses under `valgrind --tool=cachegrind`
//! (docs/performance.md, "The route cache").

#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::flow::{make_key, FLOW_AF_INET};
use dp_core::route::mtrie::{Mtrie4, Mtrie6};
use dp_core::testkit::*;
use dp_core::*;
use packet::parse::PacketInfo;

const BATCH: usize = 32;
const FLOWS: u32 = 100_000;
const ROUTES: u32 = 10_000;
const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];

fn csum(h: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in h.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A 64-byte Ethernet/IPv4/UDP frame (18 bytes of payload).
fn frame(smac: [u8; 6], dmac: [u8; 6], sip: [u8; 4], dip: [u8; 4], sport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 46, 0, 1, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&sip);
    ip.extend_from_slice(&dip);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&7u16.to_be_bytes());
    f.extend_from_slice(&26u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0xab; 18]);
    f
}

fn remote_ip(i: u32) -> [u8; 4] {
    [10, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

struct Setup {
    topo: Topo,
    vm1: Vm,
}

fn config() -> RouterConfig {
    RouterConfig {
        flow_entries: 512 * 1024,
        oflow_entries: 64 * 1024,
        max_nexthops: 65536,
        ..RouterConfig::default()
    }
}

/// A router whose flow table is on 2 MiB pages, as the node's is on a
/// huge-page tmpfs (an anonymous mapping advised for huge pages: the same
/// TLB reach as the shared file). `None` where that cannot be had.
#[cfg(target_os = "linux")]
fn router_on_huge_pages() -> Option<Router> {
    let cfg = config();
    let len = FlowTable::bytes_for(cfg.flow_entries, cfg.oflow_entries);
    let map = memmap2::MmapMut::map_anon(len).ok()?;
    map.advise(memmap2::Advice::HugePage).ok()?;
    let base = map.as_ptr().cast_mut().cast::<FlowEntry>();
    // SAFETY: the mapping is `len` writable, page-aligned bytes that the
    // table keeps (and so keeps mapped) and nothing else touches.
    let table = unsafe {
        FlowTable::from_raw_kept(base, cfg.flow_entries, cfg.oflow_entries, Box::new(map))
    }
    .ok()?;
    Some(Router::with_flow_table(cfg, table))
}

#[cfg(not(target_os = "linux"))]
fn router_on_huge_pages() -> Option<Router> {
    None
}

/// 10k remote /32 routes via MPLSoUDP and 100k forward flows.
fn setup() -> Setup {
    setup_on(Router::new(config()).unwrap())
}

fn setup_on(router: Router) -> Setup {
    let mut topo = Topo::with_router(router);
    let vm1 = topo.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    topo.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    let tnh = topo.add_tunnel_nh(TunnelKind::MplsOverUdp);
    for i in 0..ROUTES {
        topo.router
            .route_add(
                1,
                Prefix::V4(remote_ip(i), 32),
                RouteData {
                    nh: tnh,
                    label: 100 + (i % 1000),
                    flags: dp_core::route::rt_flags::LABEL_VALID,
                    mac: [0; 6],
                },
            )
            .unwrap();
    }
    let add = |topo: &mut Topo, f: &[u8], nh: u32| {
        let info = PacketInfo::parse(f).unwrap();
        let key = make_key(&info, nh, None);
        topo.router
            .flow_set(&FlowSet {
                index: None,
                gen_id: None,
                key,
                action: VR_FLOW_ACTION_FORWARD,
                flags: 0,
                rflow: None,
                dvrf: None,
                ecmp_nh_index: -1,
                drop_reason: 0,
                src_nh_index: nh,
            })
            .unwrap();
    };
    // Flows VM1 -> remote (encap), VM1 -> VM2 (local), remote -> VM1 (decap).
    for i in 0..FLOWS {
        let sport = 1024 + (i % 60000) as u16;
        let dst = remote_ip(i % ROUTES);
        match i % 3 {
            0 => add(
                &mut topo,
                &frame(VM1_MAC, VROUTER_MAC, VM1_IP, dst, sport),
                vm1.nh,
            ),
            1 => add(
                &mut topo,
                &frame(VM1_MAC, VROUTER_MAC, VM1_IP, VM2_IP, sport),
                vm1.nh,
            ),
            _ => add(
                &mut topo,
                &frame(VM1_MAC, VROUTER_MAC, dst, VM1_IP, sport),
                tnh,
            ),
        }
    }
    let _ = FLOW_AF_INET;
    Setup { topo, vm1 }
}

fn run_batches(c: &mut Criterion, name: &str, r: &mut Router, vif: u16, frames: &[Vec<u8>]) {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 256]).collect();
    let mut actions = Actions::with_capacity(4 * BATCH);
    let mut g = c.benchmark_group("dp");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut it = bufs.iter_mut().zip(frames.iter());
            let mut pkts: [Packet<'_>; BATCH] = core::array::from_fn(|_| {
                let (buf, f) = it.next().unwrap();
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                Packet::new(buf, HEADROOM, f.len()).unwrap()
            });
            actions.clear();
            let n = r.process(vif, &mut pkts, &mut actions);
            debug_assert!(actions
                .as_slice()
                .iter()
                .all(|a| matches!(a, Action::Tx { .. })));
            black_box(n)
        })
    });
    g.bench_function(format!("{name}/restore_only"), |b| {
        b.iter(|| {
            for (buf, f) in bufs.iter_mut().zip(frames.iter()) {
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            }
            black_box(&bufs);
        })
    });
    g.finish();
}

/// Like `run_batches` but each iteration takes the next of many batches, so
/// flow entries are cold (32k flows spread over a 66 MB table).
fn run_rotating(c: &mut Criterion, name: &str, r: &mut Router, vif: u16, batches: &[Vec<Vec<u8>>]) {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 256]).collect();
    let mut actions = Actions::with_capacity(4 * BATCH);
    let mut g = c.benchmark_group("dp");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut k = 0;
    g.bench_function(name, |b| {
        b.iter(|| {
            k = (k + 1) % batches.len();
            let mut it = bufs.iter_mut().zip(batches[k].iter());
            let mut pkts: [Packet<'_>; BATCH] = core::array::from_fn(|_| {
                let (buf, f) = it.next().unwrap();
                buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                Packet::new(buf, HEADROOM, f.len()).unwrap()
            });
            actions.clear();
            black_box(r.process(vif, &mut pkts, &mut actions))
        })
    });
    g.finish();
}

/// `DP_COUNT=<workload>:<batches>`: run that many batches of one workload
/// and exit, for counting instructions and cache misses under `valgrind
/// --tool=cachegrind` instead of timing (workload `none` measures the
/// setup, to subtract). Noise-free where the shared machine's timings are
/// not.
fn count_batches(
    what: &str,
    r: &mut Router,
    vm_vif: u16,
    warm: [&Vec<Vec<u8>>; 3],
    cold: &[Vec<Vec<u8>>],
    cold_decap: &[Vec<Vec<u8>>],
) {
    let (name, n) = what.split_once(':').unwrap_or((what, "0"));
    let n: usize = n.parse().unwrap();
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 256]).collect();
    let mut actions = Actions::with_capacity(4 * BATCH);
    for k in 0..n {
        let (vif, frames) = match name {
            "encap" => (vm_vif, warm[0]),
            "decap" => (FABRIC_VIF, warm[1]),
            "local" => (vm_vif, warm[2]),
            "cold" => (vm_vif, &cold[k % cold.len()]),
            "cold_decap" => (FABRIC_VIF, &cold_decap[k % cold_decap.len()]),
            _ => return,
        };
        let mut it = bufs.iter_mut().zip(frames.iter());
        let mut pkts: [Packet<'_>; BATCH] = core::array::from_fn(|_| {
            let (buf, f) = it.next().unwrap();
            buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
            Packet::new(buf, HEADROOM, f.len()).unwrap()
        });
        actions.clear();
        black_box(r.process(vif, &mut pkts, &mut actions));
    }
}

fn forwarding(c: &mut Criterion) {
    let Setup { mut topo, vm1 } = setup();
    let pick = |i: u32| (1024 + ((i * 3) % 60000) as u16, remote_ip((i * 3) % ROUTES));
    // Encap: flows i*3 (i % 3 == 0) are VM1 -> remote.
    let encap: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| {
            let (sport, dst) = pick(i * 997);
            frame(VM1_MAC, VROUTER_MAC, VM1_IP, dst, sport)
        })
        .collect();
    // Decap: remote -> VM1 over MPLSoUDP with VM1's L3 label; flows
    // j = i*3 + 2 are remote -> VM1.
    let decap_frame = |j: u32| {
        let sport = 1024 + (j % 60000) as u16;
        let inner = frame(VM1_MAC, VROUTER_MAC, remote_ip(j % ROUTES), VM1_IP, sport);
        let mut p = ((vm1.label << 12) | 0x100 | 64).to_be_bytes().to_vec();
        p.extend_from_slice(&inner[14..]);
        let mut u = vec![0xc3, 0x50, 0x19, 0xeb];
        u.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(&p);
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + u.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&PEER_IP);
        ip.extend_from_slice(&FABRIC_IP);
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = FABRIC_MAC.to_vec();
        f.extend_from_slice(&PEER_MAC);
        f.extend_from_slice(&[0x08, 0]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&u);
        f
    };
    let decap: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| decap_frame(i * 997 * 3 + 2))
        .collect();
    let local: Vec<Vec<u8>> = (0..BATCH as u32)
        .map(|i| {
            let j = i * 997 * 3 + 1;
            frame(
                VM1_MAC,
                VROUTER_MAC,
                VM1_IP,
                VM2_IP,
                1024 + (j % 60000) as u16,
            )
        })
        .collect();
    if let Ok(what) = std::env::var("DP_COUNT") {
        let cold: Vec<Vec<Vec<u8>>> = (0..1024u32)
            .map(|b| {
                (0..BATCH as u32)
                    .map(|i| {
                        let (sport, dst) = pick(b * BATCH as u32 + i);
                        frame(VM1_MAC, VROUTER_MAC, VM1_IP, dst, sport)
                    })
                    .collect()
            })
            .collect();
        let cold_decap: Vec<Vec<Vec<u8>>> = (0..1024u32)
            .map(|b| {
                (0..BATCH as u32)
                    .map(|i| decap_frame((b * BATCH as u32 + i) * 3 + 2))
                    .collect()
            })
            .collect();
        count_batches(
            &what,
            &mut topo.router,
            vm1.vif,
            [&encap, &decap, &local],
            &cold,
            &cold_decap,
        );
        std::process::exit(0);
    }
    // The TTL must not run out across iterations: frames are restored.
    run_batches(
        c,
        "vm_to_fabric_mplsoudp_encap",
        &mut topo.router,
        vm1.vif,
        &encap,
    );
    run_batches(
        c,
        "fabric_to_vm_mplsoudp_decap",
        &mut topo.router,
        FABRIC_VIF,
        &decap,
    );
    run_batches(c, "vm_to_vm_same_host", &mut topo.router, vm1.vif, &local);
    let cold: Vec<Vec<Vec<u8>>> = (0..1024u32)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| {
                    let (sport, dst) = pick(b * BATCH as u32 + i);
                    frame(VM1_MAC, VROUTER_MAC, VM1_IP, dst, sport)
                })
                .collect()
        })
        .collect();
    run_rotating(
        c,
        "vm_to_fabric_mplsoudp_encap_32k_flows",
        &mut topo.router,
        vm1.vif,
        &cold,
    );
    // Decap with cold entries: 32k of the remote -> VM1 flows, rotating.
    let cold_decap: Vec<Vec<Vec<u8>>> = (0..1024u32)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| decap_frame((b * BATCH as u32 + i) * 3 + 2))
                .collect()
        })
        .collect();
    run_rotating(
        c,
        "fabric_to_vm_mplsoudp_decap_32k_flows",
        &mut topo.router,
        FABRIC_VIF,
        &cold_decap,
    );
    // The same with the flow table on 2 MiB pages (docs/performance.md,
    // "Huge pages for the flow table").
    match router_on_huge_pages() {
        Some(r) => {
            let huge = setup_on(r);
            assert_eq!((huge.vm1.vif, huge.vm1.label), (vm1.vif, vm1.label));
            let mut router = huge.topo.router;
            run_rotating(
                c,
                "vm_to_fabric_mplsoudp_encap_32k_flows_2m_pages",
                &mut router,
                vm1.vif,
                &cold,
            );
            run_rotating(
                c,
                "fabric_to_vm_mplsoudp_decap_32k_flows_2m_pages",
                &mut router,
                FABRIC_VIF,
                &cold_decap,
            );
        }
        None => println!("SKIPPED the 2m_pages cases: no huge-page mapping here"),
    }

    // Flow lookup alone, 100k flows loaded.
    let keys: Vec<FlowKey> = encap
        .iter()
        .map(|f| make_key(&PacketInfo::parse(f).unwrap(), vm1.nh, None))
        .collect();
    let flows = topo.router.flows();
    assert!(keys.iter().all(|k| flows.lookup(k).is_some()));
    c.bench_function("flow_lookup_hit_100k", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(flows.lookup(black_box(&keys[i])))
        })
    });
}

fn lpm(c: &mut Criterion) {
    // 100k pseudo-random IPv4 prefixes of length 8..=32.
    let mut t: Mtrie4<u32> = Mtrie4::new();
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..100_000u32 {
        let r = next();
        let plen = 8 + (r % 25) as u8;
        t.insert((r >> 8).to_be_bytes()[4..8].try_into().unwrap(), plen, i)
            .unwrap();
    }
    let addrs: Vec<[u8; 4]> = (0..4096).map(|_| (next() as u32).to_be_bytes()).collect();
    c.bench_function("lpm_v4_lookup_100k_prefixes", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(t.lookup(black_box(&addrs[i])))
        })
    });

    // Memory of 100k host routes: IPv4 /32s (the baseline), random IPv6
    // /128s of 2001:db8::/32, and consecutive /128s of one /64.
    const HOSTS: u32 = 100_000;
    let mut v4: Mtrie4<u32> = Mtrie4::new();
    for i in 0..HOSTS {
        v4.insert((next() as u32).to_be_bytes(), 32, i).unwrap();
    }
    let mut random6: Mtrie6<u32> = Mtrie6::new();
    let mut random_addrs = Vec::new();
    for i in 0..HOSTS {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[4..12].copy_from_slice(&next().to_be_bytes());
        a[12..].copy_from_slice(&(next() as u32).to_be_bytes());
        random6.insert(a, 128, i).unwrap();
        random_addrs.push(a);
    }
    let mut seq6: Mtrie6<u32> = Mtrie6::new();
    for i in 0..HOSTS {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]);
        a[12..].copy_from_slice(&(i + 1).to_be_bytes());
        seq6.insert(a, 128, i).unwrap();
    }
    for (name, bytes, levels) in [
        ("100k random /32", v4.memory_bytes(), v4.level_count()),
        (
            "100k random /128 of a /32",
            random6.memory_bytes(),
            random6.level_count(),
        ),
        (
            "100k consecutive /128 of a /64",
            seq6.memory_bytes(),
            seq6.level_count(),
        ),
    ] {
        println!(
            "lpm memory: {name}: {:.1} MiB ({} B per route, {levels} levels)",
            bytes as f64 / (1 << 20) as f64,
            bytes / HOSTS as usize
        );
    }
    c.bench_function("lpm_v6_lookup_100k_host_routes", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % random_addrs.len();
            black_box(random6.lookup(black_box(&random_addrs[i])))
        })
    });
}

criterion_group!(benches, forwarding, lpm);
criterion_main!(benches);
