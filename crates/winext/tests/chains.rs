//! 10 000 random NET_BUFFER_LIST chains through the real callbacks, with
//! the agent answering (or not) in between, NICs going away and coming
//! back, pauses and restarts, time passing: afterwards every list the
//! switch handed over has come back exactly once, every list, MDL,
//! forwarding context and OID clone the shim allocated is freed, and no
//! NDIS rule was broken (`FakeSwitch::audit`).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use dp_core::agent::cmd;
use dp_core::flow::table::{VR_FLOW_ACTION_DROP, VR_FLOW_ACTION_FORWARD};
use proptest::prelude::*;
use winext::fake::{set_now, Layout, NbSpec, NblSpec};
use winext::ndis::types::*;
use winext::PortNic;

#[derive(Clone, Debug)]
enum Payload {
    AToB(u16),
    BToA(u16),
    AToC(u16),
    FromPeer(u16),
    Broadcast,
    Junk(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Nb {
    payload: Payload,
    backfill: usize,
    cuts: Vec<usize>,
}

#[derive(Clone, Debug)]
struct Nbl {
    src: u8,
    nbs: Vec<Nb>,
    safe_len: Option<u32>,
    native: bool,
}

/// What happens between two chains.
#[derive(Clone, Debug)]
enum Event {
    /// Decide every pending trap: forward (true) or drop.
    Answer(bool),
    CompleteBelow,
    AutoComplete(bool),
    Bounce(u8),
    PauseRestart,
    Time(u32),
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        4 => (1u16..64).prop_map(Payload::AToB),
        3 => (1u16..64).prop_map(Payload::BToA),
        2 => (1u16..64).prop_map(Payload::AToC),
        2 => (1u16..64).prop_map(Payload::FromPeer),
        1 => Just(Payload::Broadcast),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Payload::Junk),
    ]
}

fn nb() -> impl Strategy<Value = Nb> {
    (
        payload(),
        prop_oneof![4 => Just(64usize), 1 => Just(0usize), 1 => 0usize..64],
        prop_oneof![4 => Just(vec![]), 1 => proptest::collection::vec(1usize..40, 1..3)],
    )
        .prop_map(|(payload, backfill, cuts)| Nb {
            payload,
            backfill,
            cuts,
        })
}

fn nbl() -> impl Strategy<Value = Nbl> {
    (
        0u8..6,
        proptest::collection::vec(nb(), 1..4),
        prop_oneof![4 => Just(None), 1 => (0u32..200).prop_map(Some)],
        proptest::bool::weighted(0.08),
    )
        .prop_map(|(src, nbs, safe_len, native)| Nbl {
            src,
            nbs,
            safe_len,
            native,
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => any::<bool>().prop_map(Event::Answer),
        2 => Just(Event::CompleteBelow),
        2 => any::<bool>().prop_map(Event::AutoComplete),
        1 => (0u8..2).prop_map(Event::Bounce),
        1 => Just(Event::PauseRestart),
        1 => (1u32..15).prop_map(Event::Time),
    ]
}

fn source(i: u8) -> PortNic {
    [NIC_A, NIC_B, PHYS, HOST_NIC, EXTERNAL, PortNic::new(99, 0)][i as usize % 6]
}

fn frame(p: &Payload) -> Vec<u8> {
    match p {
        Payload::AToB(s) => a_to_b(4000 + s, b"chain"),
        Payload::BToA(s) => b_to_a(4000 + s, b"chain"),
        Payload::AToC(s) => a_to_c(4000 + s, b"chain"),
        Payload::FromPeer(s) => udp(
            dp_core::testkit::FABRIC_MAC,
            dp_core::testkit::PEER_MAC,
            dp_core::testkit::PEER_IP,
            dp_core::testkit::FABRIC_IP,
            s + 1000,
            6635,
            b"not really mpls",
        ),
        Payload::Broadcast => udp([0xff; 6], MAC_A, IP_A, [255; 4], 68, 67, b"discover"),
        Payload::Junk(b) => b.clone(),
    }
}

fn spec(l: &Nbl) -> NblSpec {
    NblSpec {
        src: source(l.src),
        nbs: l
            .nbs
            .iter()
            .map(|n| NbSpec {
                frame: frame(&n.payload),
                layout: if n.cuts.is_empty() {
                    Layout::Contiguous {
                        backfill: n.backfill,
                    }
                } else {
                    Layout::Split {
                        backfill: n.backfill,
                        cuts: n.cuts.clone(),
                    }
                },
            })
            .collect(),
        safe_len: l.safe_len,
        native: l.native,
        tci: 0,
    }
}

/// 50 cases x 200 chains: 10 000 chains.
const CASES: u32 = 50;
const CHAINS: usize = 200;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_chains_account_for_every_list(
        steps in proptest::collection::vec(
            (proptest::collection::vec(nbl(), 1..6), proptest::option::weighted(0.4, event())),
            CHAINS,
        )
    ) {
        let mut n = Node::new(Opts { policy: true, ..Opts::default() });
        let mut now = 100u32;
        let mut sent_ids = Vec::new();
        for (lists, between) in &steps {
            let specs: Vec<NblSpec> = lists.iter().map(spec).collect();
            sent_ids.extend(n.sw.send(&specs));
            let Some(e) = between else { continue };
            match e {
                Event::Answer(forward) => {
                    while let Some((hdr, _)) = n.pkt0() {
                        if hdr.cmd == cmd::FLOW_MISS {
                            let a = if *forward { VR_FLOW_ACTION_FORWARD } else { VR_FLOW_ACTION_DROP };
                            // A stale or already-decided index is answered
                            // with an error: fine, the datapath decides.
                            let _ = n.decide(&hdr, a);
                        }
                    }
                }
                Event::CompleteBelow => n.sw.complete_below(),
                Event::AutoComplete(on) => {
                    n.sw.set_auto_complete(*on);
                    if *on {
                        n.sw.complete_below();
                    }
                }
                Event::Bounce(which) => {
                    let id = if *which == 0 { NIC_A } else { NIC_B };
                    n.sw.remove_nic(id);
                    let name = if *which == 0 { "Contrail-a" } else { "Contrail-b" };
                    prop_assert_eq!(n.sw.add_nic(&winext::fake::FakeSwitch::nic(id, SYNTHETIC_NIC, name)), NDIS_STATUS_SUCCESS);
                }
                Event::PauseRestart => {
                    let st = n.sw.pause();
                    if st == NDIS_STATUS_PENDING {
                        n.sw.complete_below();
                        prop_assert!(n.sw.pause_completions() > 0);
                    }
                    prop_assert_eq!(n.sw.driver.lock().ext.held(), 0, "nothing held across a pause");
                    prop_assert_eq!(n.sw.restart().0, NDIS_STATUS_SUCCESS);
                }
                Event::Time(s) => {
                    now += s;
                    set_now(now);
                }
            }
            prop_assert!(n.sw.violations().is_empty(), "{:?}", n.sw.violations());
        }
        // Give everything back: a pause returns the held lists, then the
        // last lists below come home.
        n.sw.set_auto_complete(false);
        let st = n.sw.pause();
        n.sw.complete_below();
        prop_assert!(st == NDIS_STATUS_SUCCESS || n.sw.pause_completions() > 0);
        n.sw.detach();
        if let Err(e) = n.sw.audit() {
            prop_assert!(false, "{}", e);
        }
        let mut done = n.sw.completed();
        done.sort_unstable();
        let mut ids = sent_ids.clone();
        ids.sort_unstable();
        prop_assert_eq!(done, ids, "every switch list completed exactly once");
    }
}
