//! Steady-state forwarding must not allocate: a counting global allocator
//! watches batches on the encap, decap and local paths (with flows).
//! Only the measuring thread's allocations count: the test harness's own
//! threads may allocate at any time.

// Clippy 1.96 for the Windows targets asks for a `const` initializer on the
// thread_local below, which has one: a false positive.
#![allow(clippy::unwrap_used, clippy::missing_const_for_thread_local)]

mod common;

use common::*;
use dp_core::flow::table::VR_FLOW_ACTION_FORWARD;
use dp_core::testkit::*;
use dp_core::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// `const` initialisation: reading it never allocates.
thread_local! {
    static MEASURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if MEASURED.try_with(|m| m.get()).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const VM1_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 1];
const VM2_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 2];
const REMOTE_MAC: [u8; 6] = [0x02, 0x22, 0, 0, 0, 1];
const VM1_IP: [u8; 4] = [198, 18, 1, 3];
const VM2_IP: [u8; 4] = [198, 18, 1, 4];
const REMOTE_IP: [u8; 4] = [198, 18, 1, 10];

fn establish(t: &mut Topo, vif: u16, frame: &[u8]) {
    if let Some(Output::Hold { flow }) = t.run(vif, frame).last().cloned() {
        t.decide_flow(flow, VR_FLOW_ACTION_FORWARD).unwrap();
    }
}

#[test]
fn forwarding_does_not_allocate_in_steady_state() {
    let mut t = Topo::new(RouterConfig::small());
    let vm1 = t.add_vm(3, 1, VM1_MAC, VM1_IP, [0; 16], true);
    let vm2 = t.add_vm(4, 1, VM2_MAC, VM2_IP, [0; 16], true);
    t.add_remote_vm(
        1,
        REMOTE_MAC,
        REMOTE_IP,
        [0; 16],
        TunnelKind::MplsOverUdp,
        40,
    );
    let mk = |dmac, dip: [u8; 4], sport: u16| {
        eth(
            dmac,
            VM1_MAC,
            0x0800,
            &ipv4(
                VM1_IP,
                dip,
                17,
                64,
                1,
                0,
                &udp4(VM1_IP, dip, sport, 7, &[0; 18]),
            ),
        )
    };
    let local: Vec<Vec<u8>> = (0..32).map(|i| mk(VROUTER_MAC, VM2_IP, 1000 + i)).collect();
    let remote: Vec<Vec<u8>> = (0..32)
        .map(|i| mk(VROUTER_MAC, REMOTE_IP, 2000 + i))
        .collect();
    let inner = |sport: u16| {
        ipv4(
            REMOTE_IP,
            VM1_IP,
            17,
            63,
            1,
            0,
            &udp4(REMOTE_IP, VM1_IP, sport, 7, &[0; 18]),
        )
    };
    let decap: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            outer_udp(
                PEER_MAC,
                FABRIC_MAC,
                PEER_IP,
                FABRIC_IP,
                1,
                50000,
                6635,
                &mpls(vm1.label, &inner(3000 + i)),
            )
        })
        .collect();
    // A VLAN 100 sub-interface of vm1: tagged frames in, tag pushed out.
    const SUB_MAC: [u8; 6] = [0x02, 0x11, 0, 0, 0, 0x64];
    const SUB_IP: [u8; 4] = [198, 18, 1, 100];
    let sub = t.add_vm(5, 1, SUB_MAC, SUB_IP, [0; 16], true);
    let mut c = t.router.vif(sub.vif).unwrap().cfg.clone();
    c.vif_type = VifType::VirtualVlan;
    c.sub = Some(SubIf {
        parent: vm1.vif,
        vlan: 100,
        ovlan: 100,
    });
    t.router.vif_add(c).unwrap();
    let tagged: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            let f = eth(
                VROUTER_MAC,
                SUB_MAC,
                0x0800,
                &ipv4(
                    SUB_IP,
                    VM2_IP,
                    17,
                    64,
                    1,
                    0,
                    &udp4(SUB_IP, VM2_IP, 4000 + i, 7, &[0; 18]),
                ),
            );
            let mut v = f[..12].to_vec();
            v.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
            v.extend_from_slice(&f[12..]);
            v
        })
        .collect();
    let to_sub: Vec<Vec<u8>> = (0..32)
        .map(|i| {
            eth(
                VROUTER_MAC,
                VM2_MAC,
                0x0800,
                &ipv4(
                    VM2_IP,
                    SUB_IP,
                    17,
                    64,
                    1,
                    0,
                    &udp4(VM2_IP, SUB_IP, 5000 + i, 7, &[0; 18]),
                ),
            )
        })
        .collect();
    for f in local.iter().chain(&remote).chain(&tagged) {
        establish(&mut t, vm1.vif, f);
    }
    for f in &to_sub {
        establish(&mut t, vm2.vif, f);
    }
    for f in &decap {
        establish(&mut t, FABRIC_VIF, f);
    }
    // Host-side buffers and the action list, allocated once.
    let mut bufs: Vec<Vec<u8>> = (0..32).map(|_| vec![0u8; 2048]).collect();
    let mut actions = Actions::with_capacity(128);
    let mut per_path = [0usize; 5];
    MEASURED.with(|m| m.set(true));
    for round in 0..100 {
        for (p, (vif, frames)) in [
            (vm1.vif, &local),
            (vm1.vif, &remote),
            (FABRIC_VIF, &decap),
            (vm1.vif, &tagged),
            (vm2.vif, &to_sub),
        ]
        .into_iter()
        .enumerate()
        {
            let before = ALLOCS.load(Ordering::Relaxed);
            let mut it = bufs.iter_mut().zip(frames.iter());
            let mut pkts: [Packet<'_>; 32] = core::array::from_fn(|_| {
                let (b, f) = it.next().expect("32 buffers");
                b[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
                Packet::new(b, HEADROOM, f.len()).expect("fits")
            });
            actions.clear();
            let n = t.router.process(vif, &mut pkts, &mut actions);
            assert_eq!(n, 32);
            let txs = actions
                .as_slice()
                .iter()
                .filter(|a| matches!(a, Action::Tx { .. }))
                .count();
            per_path[p] += ALLOCS.load(Ordering::Relaxed) - before;
            assert_eq!(
                txs,
                32,
                "round {round} vif {vif}: {:?}",
                actions.as_slice().first()
            );
        }
    }
    assert_eq!(
        per_path,
        [0, 0, 0, 0, 0],
        "allocations on the local, encap, decap, VLAN receive and VLAN transmit paths"
    );
}
