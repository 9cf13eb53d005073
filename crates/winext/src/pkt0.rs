//! Frames waiting for the agent to read them from the pkt0 device.
//!
//! Traps are copied out of the switch's packet (the packet itself goes back
//! to the switch at once) into a byte ring allocated when the extension
//! starts: a frame costs its length plus 4 bytes, and when the ring is full
//! new traps are dropped and counted, so a stalled agent costs a bounded
//! amount of non-paged memory (upstream's extension queued without limit).
//! Each device read returns exactly one frame, like a message-mode pipe.

use alloc::vec;
use alloc::vec::Vec;

/// Largest frame the ring takes (a jumbo frame plus the trap headers fits).
pub const PKT0_MAX_FRAME: usize = 64 * 1024;

/// The ring (see the module docs).
#[derive(Debug)]
pub struct Pkt0Queue {
    ring: Vec<u8>,
    /// Offset of the oldest frame's length prefix.
    head: usize,
    /// Bytes in use.
    used: usize,
    frames: usize,
    max_frames: usize,
}

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    Full,
    TooLarge,
    Empty,
}

impl Pkt0Queue {
    /// A ring of `bytes` bytes holding at most `max_frames` frames.
    pub fn new(bytes: usize, max_frames: usize) -> Self {
        Pkt0Queue {
            ring: vec![0; bytes.max(8)],
            head: 0,
            used: 0,
            frames: 0,
            max_frames: max_frames.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.frames
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Bytes queued, prefixes included.
    pub fn bytes(&self) -> usize {
        self.used
    }

    /// Length of the oldest frame.
    pub fn peek_len(&self) -> Option<usize> {
        if self.frames == 0 {
            return None;
        }
        let mut l = [0u8; 4];
        self.read_at(self.head, &mut l);
        Some(u32::from_le_bytes(l) as usize)
    }

    /// Queue the concatenation of `parts` as one frame.
    pub fn push(&mut self, parts: &[&[u8]]) -> Result<(), QueueError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 || len > PKT0_MAX_FRAME {
            return Err(QueueError::TooLarge);
        }
        if self.frames >= self.max_frames || self.used + 4 + len > self.ring.len() {
            return Err(QueueError::Full);
        }
        let mut at = (self.head + self.used) % self.ring.len();
        at = self.write_at(at, &(len as u32).to_le_bytes());
        for p in parts {
            at = self.write_at(at, p);
        }
        self.used += 4 + len;
        self.frames += 1;
        Ok(())
    }

    /// Move the oldest frame into `out`, returning its length. A frame
    /// longer than `out` is dropped and reported as `Err(TooLarge)` (the
    /// reader learns and the queue moves on), like a pipe's overflow.
    pub fn pop(&mut self, out: &mut [u8]) -> Result<usize, QueueError> {
        let len = self.peek_len().ok_or(QueueError::Empty)?;
        let data = (self.head + 4) % self.ring.len();
        let fits = len <= out.len();
        if let Some(dst) = out.get_mut(..len) {
            self.read_at(data, dst);
        }
        self.head = (self.head + 4 + len) % self.ring.len();
        self.used -= 4 + len;
        self.frames -= 1;
        if self.frames == 0 {
            self.head = 0;
        }
        if fits {
            Ok(len)
        } else {
            Err(QueueError::TooLarge)
        }
    }

    /// Drop everything (the agent closed pkt0).
    pub fn clear(&mut self) {
        self.head = 0;
        self.used = 0;
        self.frames = 0;
    }

    fn write_at(&mut self, at: usize, src: &[u8]) -> usize {
        let n = self.ring.len();
        let first = src.len().min(n - at);
        let (a, b) = src.split_at(first);
        if let Some(d) = self.ring.get_mut(at..at + first) {
            d.copy_from_slice(a);
        }
        if let Some(d) = self.ring.get_mut(..b.len()) {
            d.copy_from_slice(b);
        }
        (at + src.len()) % n
    }

    fn read_at(&self, at: usize, dst: &mut [u8]) {
        let n = self.ring.len();
        let first = dst.len().min(n - at);
        let (a, b) = dst.split_at_mut(first);
        if let Some(s) = self.ring.get(at..at + first) {
            a.copy_from_slice(s);
        }
        if let Some(s) = self.ring.get(..b.len()) {
            b.copy_from_slice(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_bounds_and_overflow() {
        let mut q = Pkt0Queue::new(32, 10);
        assert_eq!(q.pop(&mut [0; 8]), Err(QueueError::Empty));
        q.push(&[b"abc", b"de"]).unwrap();
        q.push(&[b"0123456789"]).unwrap();
        assert_eq!(q.push(&[b"0123456789ab"]), Err(QueueError::Full));
        let mut b = [0u8; 16];
        assert_eq!(q.pop(&mut b), Ok(5));
        assert_eq!(&b[..5], b"abcde");
        // Wraps around the end of the ring.
        q.push(&[b"wxyz-wrapped"]).unwrap();
        assert_eq!(q.pop(&mut b), Ok(10));
        assert_eq!(&b[..10], b"0123456789");
        assert_eq!(q.pop(&mut b), Ok(12));
        assert_eq!(&b[..12], b"wxyz-wrapped");
        assert!(q.is_empty());
        // Too small a reader buffer: the frame is consumed, reported.
        q.push(&[b"0123456789"]).unwrap();
        assert_eq!(q.pop(&mut [0; 4]), Err(QueueError::TooLarge));
        assert!(q.is_empty());
        assert_eq!(q.push(&[]), Err(QueueError::TooLarge));
        let mut one = Pkt0Queue::new(1024, 1);
        one.push(&[b"a"]).unwrap();
        assert_eq!(
            one.push(&[b"b"]),
            Err(QueueError::Full),
            "frame count bound"
        );
    }
}
