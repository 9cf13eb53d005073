//! In-memory [`Port`] and [`Poller`]: the datapath loop on any OS without
//! interfaces (unit tests, and the Windows build of this crate).

use crate::port::{Offloads, Poller, Port, PortStats, RxSlot, Waker};
use crate::vnet::VnetHdr;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

#[derive(Default)]
struct Queues {
    /// Frames waiting to be received by the datapath.
    rx: VecDeque<(VnetHdr, Vec<u8>)>,
    /// Frames the datapath sent: (virtio header, bytes).
    tx: Vec<(VnetHdr, Vec<u8>)>,
}

fn lock(q: &Mutex<Queues>) -> MutexGuard<'_, Queues> {
    // A panicking test thread must not hide the frames from the others.
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// The test side of a [`MemPort`].
#[derive(Clone)]
pub struct MemPortHandle {
    q: Arc<Mutex<Queues>>,
}

impl MemPortHandle {
    /// Queue a frame for the datapath to receive.
    pub fn inject(&self, vnet: VnetHdr, frame: &[u8]) {
        lock(&self.q).rx.push_back((vnet, frame.to_vec()));
    }

    /// Take what the datapath sent so far.
    pub fn take_tx(&self) -> Vec<(VnetHdr, Vec<u8>)> {
        std::mem::take(&mut lock(&self.q).tx)
    }
}

pub struct MemPort {
    name: String,
    q: Arc<Mutex<Queues>>,
    offloads: Offloads,
    stats: PortStats,
    os_index: Option<u32>,
}

impl MemPort {
    pub fn new(name: &str, offloads: Offloads) -> (MemPort, MemPortHandle) {
        let q = Arc::new(Mutex::new(Queues::default()));
        (
            MemPort {
                name: name.to_string(),
                q: q.clone(),
                offloads,
                stats: PortStats::default(),
                os_index: None,
            },
            MemPortHandle { q },
        )
    }

    /// The port as the interface numbered `i` (a fast path keys its
    /// entries by interface).
    pub fn with_os_index(mut self, i: u32) -> MemPort {
        self.os_index = Some(i);
        self
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize> {
        let mut q = lock(&self.q);
        let mut n = 0;
        for slot in slots.iter_mut() {
            let Some((vnet, f)) = q.rx.pop_front() else {
                break;
            };
            if !slot.fill(&f, vnet) {
                slot.len = 0;
                self.stats.rx_truncated += 1;
            }
            self.stats.rx_frames += 1;
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()> {
        let mut f = head.to_vec();
        f.extend_from_slice(body);
        lock(&self.q).tx.push((*vnet, f));
        self.stats.tx_frames += 1;
        Ok(())
    }

    fn poll_fd(&self) -> Option<i32> {
        None
    }

    fn os_index(&self) -> Option<u32> {
        self.os_index
    }

    fn offloads(&self) -> Offloads {
        self.offloads
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[derive(Default)]
struct WakeState {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Waker for WakeState {
    fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }
}

/// Reports every registered port as ready after at most `tick` (ports
/// without a file descriptor cannot signal readiness).
pub struct MemPoller {
    tokens: Vec<(String, u64)>,
    tick: Duration,
    wake: Arc<WakeState>,
}

impl MemPoller {
    pub fn new(tick: Duration) -> MemPoller {
        MemPoller {
            tokens: Vec::new(),
            tick,
            wake: Arc::new(WakeState::default()),
        }
    }
}

impl Poller for MemPoller {
    fn add(&mut self, port: &dyn Port, token: u64) -> io::Result<()> {
        self.tokens.push((port.name().to_string(), token));
        Ok(())
    }

    fn remove(&mut self, port: &dyn Port) -> io::Result<()> {
        self.tokens.retain(|(n, _)| n != port.name());
        Ok(())
    }

    fn wait(&mut self, ready: &mut Vec<u64>, timeout: Duration) -> io::Result<()> {
        let g = self.wake.woken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut g, _) = self
            .wake
            .cv
            .wait_timeout_while(g, timeout.min(self.tick), |w| !*w)
            .unwrap_or_else(|p| p.into_inner());
        *g = false;
        ready.extend(self.tokens.iter().map(|(_, t)| *t));
        Ok(())
    }

    fn waker(&self) -> Arc<dyn Waker> {
        self.wake.clone()
    }
}
