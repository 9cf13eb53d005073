//! The agent's channel test against the kernel extension: the same
//! programming and flow setup as `tests/channels.rs`, but the datapath is
//! the vRouter forwarding extension's driver (`crates/winext`), loaded by
//! Wine's service manager — its device-only build, since Wine has no NDIS
//! 6 — and reached through `ChannelPaths::default()`: the ksync device
//! `\\.\vrouterKsync`, the pkt0 device `\\.\vrouterPkt0` and the flow
//! section `Global\vrouterFlowTable`. Every request is handled by the
//! driver's real IRP handlers, ksync handler and core.
//!
//! With no switch under Wine, packets enter through the device-only
//! build's test IOCTL (one frame on one vif through the core); its traps
//! reach the agent on the real pkt0 device.
//!
//! `scripts/windows/kernel-test.sh` starts the driver (`sc create` / `sc
//! start` in the same Wine session) and runs this (`--ignored`); a plain
//! `cargo test` lists it as ignored, with the reason.

#![cfg(windows)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod model;

use agent::flows::{Batch, FlowConfig, FlowEngine};
use agent::ksync::KsyncClient;
use agent::program::{self, Ids};
use channels::pkt0::PKT0_MAX_FRAME;
use channels::{ChannelPaths, FlowShm, Pkt0Agent, WindowsDevice};
use dp_core::agent::{cmd, AgentHdr};
use dp_core::flow::table::{VR_FLOW_ACTION_FORWARD, VR_FLOW_FLAG_ACTIVE};
use model::{model, udp, MAC_A, MAC_B};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// The device-only build's `IOCTL_VROUTER_TEST_INJECT`:
/// `CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)`.
const IOCTL_INJECT: u32 = (0x12 << 16) | (0x900 << 2);
const ACT_TX: u8 = 1;
const ACT_TX_COPY: u8 = 2;
const ACT_HOLD: u8 = 3;
const AGENT_VIF: u16 = 2;

/// Run `frame` through the driver's core as received on `vif`: the core's
/// actions, as (kind, vif).
fn inject(vif: u16, frame: &[u8]) -> Vec<(u8, u16)> {
    let dev = WindowsDevice::open(Path::new(r"\\.\vrouterKsync")).unwrap();
    let mut input = vif.to_le_bytes().to_vec();
    input.extend_from_slice(frame);
    let mut out = [0u8; 256];
    let n = dev.ioctl(IOCTL_INJECT, &input, &mut out).unwrap();
    out[..n]
        .chunks(3)
        .map(|c| (c[0], u16::from_le_bytes([c[1], c[2]])))
        .collect()
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("step timed out")
}

#[tokio::test]
#[ignore = "needs the vrouter driver running: scripts/windows/kernel-test.sh starts it and runs this"]
async fn agent_programs_and_sets_up_flows_over_the_kernel_extension_devices() {
    let paths = ChannelPaths::default();
    assert_eq!(
        paths.ksync,
        Path::new(r"\\.\vrouterKsync"),
        "Windows defaults to the extension"
    );

    // ---- programming: dump, converge, converge again to nothing ------------
    let ids = Ids { max_vifs: 64 };
    let m = model();
    let mut k = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    let none = BTreeSet::new();
    let cur = within(program::dump(&mut k, &none)).await.unwrap();
    assert_eq!(cur.object_count(), 0, "the agent's view of a fresh driver");
    let want = program::desired(&m, &ids);
    let plan: Vec<_> = program::plan(&cur, &want).collect();
    assert_eq!(plan.len(), 2 + 7 + 4 + 1 + 6, "{plan:#?}");
    within(k.apply(&plan)).await.unwrap();
    let after = within(program::dump(&mut k, &none)).await.unwrap();
    assert!(
        program::same(&after, &want),
        "dump after converge:\n{after:#?}"
    );
    assert!(
        program::plan(&after, &want).next().is_none(),
        "a second converge changes nothing"
    );

    // ---- a new flow: held, trapped on the pkt0 device ----------------------
    let acts = inject(3, &udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000, 5001));
    assert!(
        acts.contains(&(ACT_HOLD, 3)),
        "the first packet of a new flow is held: {acts:?}"
    );
    assert!(
        acts.contains(&(ACT_TX_COPY, AGENT_VIF)),
        "and trapped to the agent: {acts:?}"
    );
    let mut pkt0 = Pkt0Agent::bind(&paths).unwrap();
    let mut buf = vec![0u8; PKT0_MAX_FRAME];
    let n = within(pkt0.recv(&mut buf)).await.unwrap();
    let hdr = AgentHdr::parse(&buf[14..n]).unwrap();
    assert_eq!(hdr.cmd, cmd::FLOW_MISS);
    assert_eq!(hdr.ifindex, 3);

    // ---- decided over ksync, read back from the driver's section -----------
    let mut engine = FlowEngine::new(FlowConfig::default(), ids, paths.flow_shm.clone());
    let mut batch = Batch::default();
    engine.miss(&m, &hdr, &mut batch);
    assert_eq!(batch.len(), 2, "reverse create + forward set in one write");
    let mut fk = within(KsyncClient::connect(&paths.ksync)).await.unwrap();
    within(engine.flush(&mut fk, &mut batch)).await.unwrap();
    within(engine.settle(&mut fk)).await.unwrap();
    assert_eq!(engine.stats.setups, 1);
    let shm = FlowShm::open(&paths.flow_shm).unwrap();
    let t = engine.tracked.get(&hdr.param).unwrap();
    let (rev, _) = t.rev.expect("reverse entry");
    let fwd = shm.entry(hdr.param).unwrap();
    let rv = shm.entry(rev).unwrap();
    assert_eq!(fwd.action, VR_FLOW_ACTION_FORWARD);
    assert_eq!(rv.action, VR_FLOW_ACTION_FORWARD);
    assert!(fwd.flags & VR_FLOW_FLAG_ACTIVE != 0 && rv.flags & VR_FLOW_FLAG_ACTIVE != 0);
    assert_eq!(fwd.rflow(), Some(rev));
    assert_eq!(rv.key().sport(), 5001, "reverse key swaps the ports");

    // ---- both directions now forward without a trap -------------------------
    let acts = inject(4, &udp(MAC_B, [198, 18, 0, 4], [198, 18, 0, 3], 5001, 4000));
    assert_eq!(acts, vec![(ACT_TX, 3)], "the answer goes to A");
    let acts = inject(3, &udp(MAC_A, [198, 18, 0, 3], [198, 18, 0, 4], 4000, 5001));
    assert_eq!(acts, vec![(ACT_TX, 4)], "and A's next packet to B");
}
