//! One open handle of the ksync device: the agent (or `vrctl`) writes
//! netlink-framed requests and reads the answers as a byte stream, exactly
//! what it gets from the user-space datapath's unix socket or named pipe.
//!
//! A write is one or more whole messages (as `channels::KsyncConn::send`
//! writes them); it is handled at once, under the extension's lock, and the
//! answers wait here until read. Several requests may be written before the
//! first answer is read (the agent pipelines a batch); answers are bounded
//! so that a client that never reads cannot pin memory: a write that would
//! take the backlog over [`MAX_BACKLOG`] is refused.

use alloc::vec::Vec;

/// Answers kept for one handle before writes are refused (16 MiB: far above
/// a whole dump of a large node, which the agent reads as it goes).
pub const MAX_BACKLOG: usize = 16 << 20;
/// Largest single write (upstream requests are a few hundred bytes; the
/// agent batches a few thousand).
pub const MAX_WRITE: usize = 1 << 20;

/// A handle's answer stream.
#[derive(Debug, Default)]
pub struct Session {
    out: Vec<u8>,
    /// Bytes of `out` already read.
    read: usize,
}

/// Why a write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The handle has too many unread answers.
    Backlog,
    /// Empty or over [`MAX_WRITE`].
    BadLength,
    /// Not whole netlink messages (a header's length is out of range or
    /// runs past the write).
    Framing,
}

impl Session {
    pub fn new() -> Self {
        Session::default()
    }

    /// Unread answer bytes.
    pub fn pending(&self) -> usize {
        self.out.len() - self.read
    }

    /// Check a write before handling it.
    pub fn admit(&mut self, input: &[u8]) -> Result<(), WriteError> {
        if input.is_empty() || input.len() > MAX_WRITE {
            return Err(WriteError::BadLength);
        }
        if self.pending() > MAX_BACKLOG {
            return Err(WriteError::Backlog);
        }
        whole_messages(input)
            .then_some(())
            .ok_or(WriteError::Framing)?;
        // Reclaim what was read before appending more.
        if self.read > 0 {
            self.out.drain(..self.read);
            self.read = 0;
        }
        Ok(())
    }

    /// The buffer the handler appends answers to.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Copy up to `dst.len()` unread bytes into `dst`.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let src = self.out.get(self.read..).unwrap_or_default();
        let n = src.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
            d.copy_from_slice(s);
        }
        self.read += n;
        if self.read == self.out.len() {
            self.out.clear();
            self.read = 0;
        }
        n
    }
}

/// `buf` is one or more whole netlink messages (16-byte header, native
/// byte order, length counting the header).
pub fn whole_messages(mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let Some(len) = buf
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_ne_bytes(b) as usize)
        else {
            return false;
        };
        if len < 16 || len > buf.len() {
            return false;
        }
        buf = buf.get(len..).unwrap_or_default();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn msg(len: u32) -> Vec<u8> {
        let mut m = vec![0u8; len as usize];
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn stream_and_checks() {
        let mut s = Session::new();
        assert_eq!(s.admit(&[]), Err(WriteError::BadLength));
        assert_eq!(s.admit(&msg(16)[..10]), Err(WriteError::Framing));
        let mut two = msg(20);
        two.extend(msg(16));
        assert_eq!(s.admit(&two), Ok(()));
        s.out().extend_from_slice(b"answer-bytes");
        let mut b = [0u8; 5];
        assert_eq!(s.read(&mut b), 5);
        assert_eq!(&b, b"answe");
        assert_eq!(s.pending(), 7);
        s.admit(&msg(16)).unwrap();
        s.out().extend_from_slice(b"+more");
        let mut all = [0u8; 64];
        let n = s.read(&mut all);
        assert_eq!(&all[..n], b"r-bytes+more");
        assert_eq!(s.read(&mut all), 0);
    }
}
