//! What the datapath needs from packet I/O: [`Port`] (one interface) and
//! [`Poller`] (wait until some port is readable). The Linux implementations
//! live in `crate::linux`; [`crate::mem`] has in-memory ones for tests.

use crate::vnet::VnetHdr;
use dp_core::HEADROOM;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Largest frame a port hands over: a 64 KB GSO super-packet plus its
/// Ethernet and VLAN headers.
pub const MAX_FRAME: usize = 65536 + 64;

/// Largest batch read from one port at a time.
pub const MAX_BATCH: usize = 32;

/// One receive buffer: `HEADROOM` bytes for the core's encapsulation, then
/// room for a `MAX_FRAME`-byte frame.
pub struct RxSlot {
    buf: Box<[u8]>,
    /// Frame length written by the port (0: nothing / truncated).
    pub len: usize,
    /// The frame's offload metadata ([`VnetHdr::NONE`] if the port has none).
    pub vnet: VnetHdr,
}

impl Default for RxSlot {
    fn default() -> Self {
        RxSlot {
            buf: vec![0u8; HEADROOM + MAX_FRAME].into_boxed_slice(),
            len: 0,
            vnet: VnetHdr::NONE,
        }
    }
}

impl RxSlot {
    /// Where the port writes the frame.
    pub fn frame_area(&mut self) -> &mut [u8] {
        self.buf.get_mut(HEADROOM..).unwrap_or(&mut [])
    }

    /// The whole buffer, headroom included.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The received frame.
    pub fn frame(&self) -> &[u8] {
        self.buf.get(HEADROOM..HEADROOM + self.len).unwrap_or(&[])
    }

    /// Put `frame` in the slot (tests, re-injection).
    pub fn fill(&mut self, frame: &[u8], vnet: VnetHdr) -> bool {
        match self.frame_area().get_mut(..frame.len()) {
            Some(d) => {
                d.copy_from_slice(frame);
                self.len = frame.len();
                self.vnet = vnet;
                true
            }
            None => false,
        }
    }
}

/// What a port can carry beyond plain frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Frames carry a [`VnetHdr`] (received ones may be partial/GSO).
    pub vnet_hdr: bool,
    /// The port accepts GSO super-packets (of the kinds below) and partial
    /// checksums on send (the receiving kernel segments/finishes them).
    pub tx_gso: bool,
    /// GSO kinds it takes: TCP over IPv4, TCP over IPv6, UDP (L4).
    pub tso4: bool,
    pub tso6: bool,
    pub uso: bool,
}

impl Offloads {
    /// Everything (TAP devices, test ports).
    pub const ALL: Offloads = Offloads {
        vnet_hdr: true,
        tx_gso: true,
        tso4: true,
        tso6: true,
        uso: true,
    };

    /// Whether a frame with this virtio header may be sent as it is.
    pub fn accepts(&self, vh: &VnetHdr) -> bool {
        use crate::vnet::gso;
        if !vh.is_gso() {
            return true;
        }
        self.tx_gso
            && match vh.gso_type & !gso::ECN {
                gso::TCPV4 => self.tso4,
                gso::TCPV6 => self.tso6,
                gso::UDP_L4 => self.uso,
                _ => false,
            }
    }
}

/// Counters a port keeps itself (the core counts per vif).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_frames: u64,
    pub rx_truncated: u64,
    pub tx_frames: u64,
    pub tx_errors: u64,
    /// Frames the kernel dropped before we read them (AF_PACKET
    /// `PACKET_STATISTICS`), when known.
    pub kernel_drops: u64,
    /// GSO super-packets the device would not take (its offloads are off),
    /// sent as plain segments instead, and those segments.
    pub gso_fallback: u64,
    pub gso_fallback_segments: u64,
}

/// One interface the datapath reads and writes frames on.
pub trait Port: Send {
    fn name(&self) -> &str;

    /// Read up to `slots.len()` frames without blocking; each goes to
    /// `slot.frame_area()` with `slot.len`/`slot.vnet` set. Returns how many
    /// slots were filled (0 when nothing is pending). A slot with `len == 0`
    /// was truncated and must be skipped.
    fn recv_batch(&mut self, slots: &mut [RxSlot]) -> io::Result<usize>;

    /// Send one frame made of `head` followed by `body`. `vnet` describes
    /// offloads still to be done by the receiver; ports without
    /// [`Offloads::tx_gso`] are only ever given [`VnetHdr::NONE`]. A port
    /// may queue the frame (copied) until [`Port::flush`].
    fn send(&mut self, vnet: &VnetHdr, head: &[u8], body: &[u8]) -> io::Result<()>;

    /// Send what [`Port::send`] queued (the datapath calls it after every
    /// batch); returns how many queued frames were dropped since the last
    /// flush.
    fn flush(&mut self) -> usize {
        0
    }

    /// Frames still queued after [`Port::flush`] because the receiver was
    /// not ready (pkt0 when the agent's socket queue is full): the datapath
    /// flushes the port again soon, without waiting for traffic.
    fn backlog(&self) -> usize {
        0
    }

    /// A file descriptor that polls readable when frames are pending, if
    /// the port has one.
    fn poll_fd(&self) -> Option<i32>;

    fn offloads(&self) -> Offloads;

    /// Read again what the device accepts (offloads change at run time,
    /// e.g. `ethtool -K`); the datapath calls it now and then and after a
    /// port fell back to plain segments.
    fn refresh_offloads(&mut self) -> Offloads {
        self.offloads()
    }

    /// The device's OS interface index, if it has one.
    fn os_index(&self) -> Option<u32> {
        None
    }

    /// The device's MTU, if it has one.
    fn mtu(&self) -> Option<u16> {
        None
    }

    fn stats(&self) -> PortStats;

    /// `vif --clear`: what the vif reports from the device
    /// ([`PortStats::kernel_drops`]) starts from 0 again; the port's own
    /// frame counters keep counting.
    fn clear_kernel_drops(&mut self) {}
}

/// Wakes a [`Poller`] blocked in [`Poller::wait`] from another thread.
pub trait Waker: Send + Sync {
    fn wake(&self);
}

/// Readiness of many ports in one thread.
pub trait Poller: Send {
    /// Watch `port` and report it as `token`.
    fn add(&mut self, port: &dyn Port, token: u64) -> io::Result<()>;
    fn remove(&mut self, port: &dyn Port) -> io::Result<()>;
    /// Block until some port may be readable, [`Poller::waker`] fired, or
    /// `timeout` passed; append the tokens of ready ports to `ready` (a
    /// poller may report a port that turns out to have nothing).
    fn wait(&mut self, ready: &mut Vec<u64>, timeout: Duration) -> io::Result<()>;
    fn waker(&self) -> Arc<dyn Waker>;
}

/// Opens the port behind a vif by interface name (`VifConfig.name`).
pub trait PortOpener: Send + Sync {
    fn open(&self, cfg: &dp_core::VifConfig) -> io::Result<Box<dyn Port>>;
}
