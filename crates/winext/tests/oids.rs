//! The switch's OIDs and the filter's lifecycle through the real
//! callbacks: what the filter accepts to attach to, what it asks the switch
//! at restart, NICs that existed before it attached, a switch that becomes
//! active later, connects that fail below, OIDs passed down and completed
//! back with their results.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use winext::fake::FakeSwitch;
use winext::ndis::types::*;
use winext::ExtConfig;

#[test]
fn attaches_once_and_only_to_an_ethernet_switch_stack() {
    let sw = FakeSwitch::new(ExtConfig::small());
    // NdisMediumWan (2) is not a switch stack.
    assert_eq!(sw.attach_media(2), NDIS_STATUS_INVALID_PARAMETER);
    assert_eq!(sw.attach(), NDIS_STATUS_SUCCESS);
    assert_eq!(sw.attach(), NDIS_STATUS_FAILURE, "one switch per driver");
    sw.detach();
    sw.audit().unwrap();
}

#[test]
fn restart_learns_the_nics_that_existed_before_attach() {
    let n = Node::new(Opts {
        preexisting: true,
        ..Opts::default()
    });
    let oids = n.sw.oids_down();
    let p = oids
        .iter()
        .position(|o| *o == OID_SWITCH_PARAMETERS)
        .expect("asks whether the switch is active");
    let a = oids
        .iter()
        .position(|o| *o == OID_SWITCH_NIC_ARRAY)
        .expect("then for the NICs");
    assert!(p < a);
    assert!(
        oids.iter().filter(|o| **o == OID_SWITCH_NIC_ARRAY).count() >= 2,
        "the first, header-sized query learns the size and is retried"
    );
    // No create/connect OID was seen, yet A reaches B.
    let id = n.send(NIC_A, &a_to_b(1, b"x"));
    let sent = n.sw.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].dests, vec![NIC_B]);
    assert_eq!(n.sw.completed(), vec![id]);
    n.sw.audit().unwrap();
}

#[test]
fn an_inactive_switch_is_asked_for_nics_when_it_activates() {
    let sw = FakeSwitch::new(ExtConfig::small());
    for (id, kind, name) in NICS {
        sw.preexisting_nic(&FakeSwitch::nic(id, kind, name));
    }
    sw.set_active(false);
    assert_eq!(sw.attach(), NDIS_STATUS_SUCCESS);
    assert_eq!(sw.restart().0, NDIS_STATUS_SUCCESS);
    assert!(
        !sw.oids_down().contains(&OID_SWITCH_NIC_ARRAY),
        "not before activation"
    );
    assert!(sw.driver.lock().ext.ports().nics().next().is_none());
    sw.set_active(true);
    assert_eq!(sw.switch_activate(), NDIS_STATUS_SUCCESS);
    assert!(sw.oids_down().contains(&OID_SWITCH_NIC_ARRAY));
    assert_eq!(sw.driver.lock().ext.ports().nics().count(), NICS.len());
    sw.pause();
    sw.detach();
    sw.audit().unwrap();
}

#[test]
fn a_nic_whose_connect_fails_below_is_no_destination() {
    let n = Node::new(Opts::default());
    let c = winext::PortNic::new(12, 0);
    n.sw.set_fail_connect(true);
    assert_eq!(
        n.sw.add_nic(&FakeSwitch::nic(c, SYNTHETIC_NIC, "Contrail-b")),
        NDIS_STATUS_FAILURE,
        "the failure below is completed back as is"
    );
    assert_eq!(
        n.sw.driver.lock().ext.ports().nic_state(c),
        Some(winext::ports::NicState::Created)
    );
    // B's vif stays on its connected NIC.
    n.send(NIC_A, &a_to_b(2, b"x"));
    assert_eq!(n.sw.take_sent()[0].dests, vec![NIC_B]);
    n.sw.audit().unwrap();
}

#[test]
fn oids_pass_down_and_complete_back_with_their_results() {
    let n = Node::new(Opts::default());
    // Too small: INVALID_LENGTH and the size needed come back up.
    let mut small = [0u8; 8];
    let (st, _, needed) = n.sw.query_oid(OID_SWITCH_PARAMETERS, &mut small);
    assert_eq!(st, NDIS_STATUS_INVALID_LENGTH);
    assert_eq!(
        needed as usize,
        core::mem::size_of::<NDIS_SWITCH_PARAMETERS>()
    );
    let mut big = vec![0u8; needed as usize];
    let (st, written, _) = n.sw.query_oid(OID_SWITCH_PARAMETERS, &mut big);
    assert_eq!(st, NDIS_STATUS_SUCCESS);
    assert_eq!(written, needed);
    let off = core::mem::offset_of!(NDIS_SWITCH_PARAMETERS, IsActive);
    assert_eq!(big[off], 1, "the answer lands in the requester's buffer");
    // An OID nobody below supports.
    let (st, _, _) = n.sw.query_oid(0x0001_0201, &mut big);
    assert_eq!(st, NDIS_STATUS_NOT_SUPPORTED);
    n.sw.audit().unwrap();
}

#[test]
fn detach_after_pause_frees_everything() {
    let n = Node::new(Opts {
        policy: true,
        ..Opts::default()
    });
    n.send(NIC_A, &a_to_b(3, b"held"));
    assert_eq!(n.sw.driver.lock().ext.held(), 1);
    assert_eq!(n.sw.pause(), NDIS_STATUS_SUCCESS);
    n.sw.detach();
    assert!(n.sw.driver.lock().module().is_none());
    n.sw.audit().unwrap();
    assert_eq!(n.sw.switch_out(), 0);
}
