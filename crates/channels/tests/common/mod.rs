//! Shared test helpers: private channel locations and a hang guard.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use channels::ksync::NlMsgHdr;
use channels::ChannelPaths;

/// A temp dir and the channels under it (on Windows: names suffixed with
/// it), so parallel tests never meet.
pub fn paths() -> (tempfile::TempDir, ChannelPaths) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = ChannelPaths::new(dir.path());
    (dir, p)
}

/// Fail instead of hanging.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

/// A ksync-shaped message of `len` bytes: header then a pattern.
pub fn msg(len: u32, seq: u32) -> Vec<u8> {
    let mut m = NlMsgHdr {
        len,
        ty: 0x1b,
        flags: 0x1,
        seq,
        pid: 4242,
    }
    .to_bytes()
    .to_vec();
    m.extend((16..len).map(|i| (i as u8) ^ (seq as u8)));
    m
}

/// A frame of `len` bytes with a recognisable pattern.
pub fn frame(len: usize, tag: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ tag).collect()
}
