#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]
//! Both the datapath and the agent restarted (a reboot): the agent
//! programs every port on the vif index it had, so the datapath's state
//! afterwards is the state before, object for object (vifs, next hops,
//! labels, routes), not just the same in number.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_restart_of_datapath_and_agent_rebuilds_the_same_state() {
    require_rig!();
    let mut node = Node::start(&[]);
    node.project("p1");
    let vn = node.vn("p1", "blue", "198.18.6.0", 24);
    let fq = ["default-domain", "p1", "blue"];
    // Five ports on vifs 3..7; three go, a new one takes vif 3: the
    // survivors keep 6 and 7, which an allocation in another order would
    // not give them.
    let settled = |node: &Node, n: usize| {
        let t0 = Instant::now();
        loop {
            let st = node.datapath_state();
            if st.vifs.len() == n {
                return st;
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "{st:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // One at a time, so each gets the next index.
    let mut cs: Vec<Container> = Vec::new();
    for (i, t) in ["c1", "c2", "c3", "c4", "c5"].iter().enumerate() {
        cs.push(attach(&mut node, t, "p1", &vn, &fq, &[]));
        settled(&node, i + 1);
    }
    for c in &cs[..3] {
        let (s, b) = node.port_api("DELETE", &format!("/port/{}", c.vmi), None);
        assert_eq!(s, 200, "{b}");
    }
    settled(&node, 2);
    let c6 = attach(&mut node, "c6", "p1", &vn, &fq, &[]);
    let before = settled(&node, 3);
    let idx: Vec<u16> = before.vifs.keys().copied().collect();
    assert_eq!(idx, [3, 6, 7], "{before:?}");

    node.agent.kill9();
    node.vrouter.kill9();
    node.start_vrouter();
    node.start_agent();
    node.wait_ready();
    let after = settled(&node, 3);
    assert!(
        agent::program::same(&before, &after),
        "the restart programmed another state:\nbefore {:?}\nafter  {:?}",
        before.vifs.keys().collect::<Vec<_>>(),
        after.vifs.keys().collect::<Vec<_>>()
    );
    // And it forwards.
    for c in [&cs[3], &cs[4], &c6] {
        static_ip(c, 24, "198.18.6.1");
    }
    assert!(ping_until(
        &c6.ns,
        &cs[4].ip.unwrap().to_string(),
        Duration::from_secs(5)
    ));
}
