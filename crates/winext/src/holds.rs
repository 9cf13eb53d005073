//! Packets held while the agent decides a new flow.
//!
//! dp-core answers the first packets of an unknown flow with
//! `Action::Hold`; the extension keeps the packet itself (the switch's NBL,
//! not a copy) until the agent's FLOW_SET releases it (re-run through the
//! core on the vif it came from) or deletes the flow (completed back to the
//! switch). The store is a slab allocated once, with per-flow chains, so
//! holding allocates nothing; it bounds packets per flow and in total, and
//! ages them out so a silent agent cannot pin the switch's buffers.

use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::ports::PortNic;

/// One held packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held<T> {
    /// The shim's handle of the packet.
    pub token: T,
    /// The vif it was received on (re-injected there).
    pub vif: u16,
    /// The NIC it came from.
    pub src: PortNic,
    /// Router seconds when it was held.
    pub since: u32,
}

#[derive(Clone, Copy, Debug)]
struct Slot<T> {
    held: Held<T>,
    flow: u32,
    next: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Chain {
    head: u32,
    tail: u32,
    len: u32,
}

/// Why a packet was not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldError {
    FlowFull,
    StoreFull,
}

/// The store (see the module docs).
#[derive(Debug)]
pub struct Holds<T> {
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    flows: HashMap<u32, Chain>,
    per_flow: u32,
}

impl<T: Copy> Holds<T> {
    /// Room for `total` packets, at most `per_flow` per flow.
    pub fn new(total: u32, per_flow: u32) -> Self {
        let total = total.max(1);
        let mut slots = Vec::with_capacity(total as usize);
        slots.resize_with(total as usize, || None);
        Holds {
            slots,
            free: (0..total).rev().collect(),
            flows: HashMap::with_capacity(total as usize),
            per_flow: per_flow.max(1),
        }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hold `held` for `flow`.
    pub fn hold(&mut self, flow: u32, held: Held<T>) -> Result<(), HoldError> {
        if self
            .flows
            .get(&flow)
            .is_some_and(|c| c.len >= self.per_flow)
        {
            return Err(HoldError::FlowFull);
        }
        let Some(i) = self.free.pop() else {
            return Err(HoldError::StoreFull);
        };
        if let Some(s) = self.slots.get_mut(i as usize) {
            *s = Some(Slot {
                held,
                flow,
                next: None,
            });
        }
        match self.flows.get_mut(&flow) {
            Some(c) => {
                let tail = c.tail;
                c.tail = i;
                c.len += 1;
                if let Some(Some(t)) = self.slots.get_mut(tail as usize) {
                    t.next = Some(i);
                }
            }
            None => {
                self.flows.insert(
                    flow,
                    Chain {
                        head: i,
                        tail: i,
                        len: 1,
                    },
                );
            }
        }
        Ok(())
    }

    /// Take everything held for `flow`, oldest first, into `out`.
    pub fn take(&mut self, flow: u32, out: &mut Vec<Held<T>>) {
        let Some(c) = self.flows.remove(&flow) else {
            return;
        };
        let mut at = Some(c.head);
        while let Some(i) = at {
            let slot = self.slots.get_mut(i as usize).and_then(Option::take);
            at = slot.and_then(|s| s.next);
            if let Some(s) = slot {
                out.push(s.held);
                self.free.push(i);
            }
        }
    }

    /// Take every held packet that matches `pred` (NIC gone, too old, pause),
    /// into `out`.
    pub fn take_where(
        &mut self,
        mut pred: impl FnMut(u32, &Held<T>) -> bool,
        out: &mut Vec<Held<T>>,
    ) {
        let flows: Vec<u32> = self
            .slots
            .iter()
            .flatten()
            .filter(|s| pred(s.flow, &s.held))
            .map(|s| s.flow)
            .collect();
        for flow in flows {
            let mut all = Vec::new();
            self.take(flow, &mut all);
            for h in all {
                if pred(flow, &h) {
                    out.push(h);
                } else {
                    // Keep the others of that flow, in order.
                    let _ = self.hold(flow, h);
                }
            }
        }
    }

    /// Take everything.
    pub fn drain(&mut self, out: &mut Vec<Held<T>>) {
        self.take_where(|_, _| true, out);
    }

    /// Flows with held packets.
    pub fn flows(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.flows.iter().map(|(f, c)| (*f, c.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn h(token: u32, since: u32) -> Held<u32> {
        Held {
            token,
            vif: 3,
            src: PortNic::new(1, 0),
            since,
        }
    }

    #[test]
    fn bounds_order_and_reuse() {
        let mut s = Holds::new(3, 2);
        assert_eq!(s.hold(7, h(1, 0)), Ok(()));
        assert_eq!(s.hold(7, h(2, 0)), Ok(()));
        assert_eq!(s.hold(7, h(3, 0)), Err(HoldError::FlowFull));
        assert_eq!(s.hold(8, h(4, 0)), Ok(()));
        assert_eq!(s.hold(9, h(5, 0)), Err(HoldError::StoreFull));
        let mut out = Vec::new();
        s.take(7, &mut out);
        assert_eq!(out.iter().map(|x| x.token).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.hold(9, h(6, 0)), Ok(()));
        out.clear();
        s.take(7, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn take_where_keeps_the_rest_in_order() {
        let mut s = Holds::new(8, 8);
        for t in 0..5 {
            s.hold(1, h(t, t)).unwrap();
        }
        let mut old = Vec::new();
        s.take_where(|_, x| x.since < 2, &mut old);
        assert_eq!(old.iter().map(|x| x.token).collect::<Vec<_>>(), vec![0, 1]);
        let mut rest = Vec::new();
        s.take(1, &mut rest);
        assert_eq!(
            rest.iter().map(|x| x.token).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert!(s.is_empty());
    }
}
