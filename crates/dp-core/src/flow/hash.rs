//! The flow hash: which bucket of [`super::table::FlowTable`] a key lives in.
//!
//! The bucket of a key is `((hash(key) as u64 * (entries / 4)) >> 32) * 4`
//! with [`flow_hash`], a deterministic multiply-xorshift over the 44
//! key bytes (unused bytes of an IPv4 key are zero).
//!
//! Upstream hashes with Jenkins' hash (`vr_hash`, seed 0) over `key_len`
//! bytes and takes `hash % entries` rounded down to a bucket. We do not:
//! nothing outside the datapath looks a flow up by key. Upstream's agent
//! and `flow` tool read the shared table by index (from a trap, a FLOW_SET
//! answer or a walk), and a flow is added by key only through ksync, which
//! the datapath serves. Which bucket holds a key is therefore private to
//! the datapath, and ours is faster. Like upstream's it is unkeyed, so it
//! does not resist crafted collisions: the bounded buckets and overflow
//! area limit the damage to `TableFull`. It is hand-written because it must
//! be deterministic (no per-process seed; tests and tools compute it too),
//! which general-purpose hashers do not promise.

use super::layout::FlowKey;

/// The first five of the key's six little-endian words: the bytes 0..8,
/// `nh_id`, and address bytes 0..24. In a [`FlowEntry`](super::layout::FlowEntry)
/// they lie in the record's first cache line; compiles to plain loads.
#[inline(always)]
fn key_words5(k: &FlowKey) -> [u64; 5] {
    let head = u64::from(k.family)
        | (u64::from(k.proto) << 8)
        | (u64::from(k.unused) << 16)
        | (u64::from(u16::from_ne_bytes(k.sport.to_le_bytes())) << 32)
        | (u64::from(u16::from_ne_bytes(k.dport.to_le_bytes())) << 48);
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20, a21, a22, a23, ..] =
        k.addr;
    [
        head,
        u64::from(k.nh_id),
        u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_le_bytes([a8, a9, a10, a11, a12, a13, a14, a15]),
        u64::from_le_bytes([a16, a17, a18, a19, a20, a21, a22, a23]),
    ]
}

/// The key's last word: address bytes 24..32, which in a record cross into
/// its second cache line (upstream's key starts at byte 24).
#[inline(always)]
fn key_word_last(k: &FlowKey) -> u64 {
    let [.., a24, a25, a26, a27, a28, a29, a30, a31] = k.addr;
    u64::from_le_bytes([a24, a25, a26, a27, a28, a29, a30, a31])
}

/// The key as six little-endian words: the bytes 0..8, `nh_id`, and the
/// 32 address bytes. Used by the hash.
#[inline(always)]
pub(crate) fn key_words(k: &FlowKey) -> [u64; 6] {
    let [w0, w1, w2, w3, w4] = key_words5(k);
    [w0, w1, w2, w3, w4, key_word_last(k)]
}

/// Key equality for the lookup path: the first five words branch-free, the
/// last one only if they all match, so probing a slot that holds another
/// key reads only the record's first cache line.
#[inline(always)]
pub(crate) fn key_eq(a: &FlowKey, b: &FlowKey) -> bool {
    let (x, y) = (key_words5(a), key_words5(b));
    if ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) != 0 {
        return false;
    }
    key_word_last(a) == key_word_last(b)
}

/// The flow hash: deterministic across processes and builds (two lanes
/// of multiply-xorshift over the key words, then a final avalanche).
#[inline]
pub fn flow_hash(key: &FlowKey) -> u32 {
    #[cfg(test)]
    test_count::HASHES.with(|c| c.set(c.get() + 1));
    hash_words(key_words(key))
}

/// [`flow_hash`] of the IPv4 key [`FlowKey::new_v4`] would build (ports
/// in host order), from its fields: the words are assembled in registers,
/// not read back from a key just stored (a batch's prefetch computes it;
/// a key written with narrow stores and read with wide loads stalled on
/// store forwarding).
#[inline(always)]
pub(crate) fn flow_hash_v4(
    proto: u8,
    sport: u16,
    dport: u16,
    nh_id: u32,
    src: [u8; 4],
    dst: [u8; 4],
) -> u32 {
    let [head, addr] = super::layout::v4_words(proto, sport, dport, src, dst);
    hash_words([head, u64::from(nh_id), addr, 0, 0, 0])
}

#[inline(always)]
fn hash_words(w: [u64; 6]) -> u32 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    const M2: u64 = 0xd6e8_feb8_6659_fd93;
    #[inline(always)]
    fn mix(h: u64, w: u64) -> u64 {
        let x = (h ^ w).wrapping_mul(M);
        x ^ (x >> 32)
    }
    let a = mix(mix(mix(0x243f_6a88_85a3_08d3, w[0]), w[2]), w[3]);
    let b = mix(mix(mix(0x1319_8a2e_0370_7344, w[1]), w[4]), w[5]);
    let mut h = (a ^ b.rotate_left(29)).wrapping_mul(M2);
    h ^= h >> 31;
    h = h.wrapping_mul(M);
    (h >> 32) as u32
}

/// How many keys this thread hashed (tests check that the pipeline hashes
/// a packet's key once).
// The initializer is `const` already: clippy 1.96 (the Windows lane) still
// reports `missing_const_for_thread_local` in this `no_std` crate, a false
// positive (as in `tests/no_alloc.rs`).
#[cfg(test)]
#[allow(clippy::missing_const_for_thread_local)]
pub(crate) mod test_count {
    extern crate std;
    std::thread_local! {
        pub(crate) static HASHES: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
    }

    pub(crate) fn hashes() -> u64 {
        HASHES.with(core::cell::Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn the_v4_hash_from_fields_is_the_keys_hash() {
        let mut st = 7u64;
        for _ in 0..10_000 {
            let r = next(&mut st);
            let r2 = next(&mut st);
            let (proto, sport, dport) = (r as u8, (r >> 8) as u16, (r >> 24) as u16);
            let nh = (r >> 40) as u32;
            let (src, dst) = ((r2 as u32).to_be_bytes(), ((r2 >> 32) as u32).to_be_bytes());
            let k = FlowKey::new_v4(proto, sport, dport, nh, src, dst);
            assert_eq!(
                flow_hash_v4(proto, sport, dport, nh, src, dst),
                flow_hash(&k)
            );
        }
    }

    fn k4(sport: u16, dport: u16, src: u32) -> FlowKey {
        FlowKey::new_v4(6, sport, dport, 7, src.to_be_bytes(), [10, 0, 0, 1])
    }

    /// splitmix64: a deterministic test PRNG.
    fn next(s: &mut u64) -> u64 {
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Chi-square of `n` hashes over 65536 bins, through `bin`.
    fn chi2(keys: &[FlowKey], bin: impl Fn(u32) -> usize) -> f64 {
        let mut counts = vec![0u32; 65536];
        for k in keys {
            counts[bin(flow_hash(k))] += 1;
        }
        let exp = keys.len() as f64 / 65536.0;
        counts
            .iter()
            .map(|&c| (f64::from(c) - exp).powi(2) / exp)
            .sum()
    }

    fn assert_uniform(name: &str, keys: &[FlowKey]) {
        // 65535 degrees of freedom: mean 65535, sd ~362. Allow 6 sd.
        let bins: [(&str, &dyn Fn(u32) -> usize); 3] = [
            ("low", &|h| (h & 0xffff) as usize),
            ("high", &|h| (h >> 16) as usize),
            ("range", &|h| ((u64::from(h) * 65536) >> 32) as usize),
        ];
        for (bname, f) in bins {
            let c = chi2(keys, f);
            assert!(
                (c - 65535.0).abs() < 6.0 * 362.0,
                "{name}/{bname}: chi2 {c}"
            );
        }
    }

    #[test]
    fn hash_distribution() {
        let mut s = 1u64;
        let random: Vec<FlowKey> = (0..100_000)
            .map(|_| {
                let (a, b) = (next(&mut s), next(&mut s));
                FlowKey::new_v4(
                    (a & 0xff) as u8,
                    (a >> 8) as u16,
                    (a >> 24) as u16,
                    (a >> 40) as u32,
                    (b as u32).to_ne_bytes(),
                    ((b >> 32) as u32).to_ne_bytes(),
                )
            })
            .collect();
        assert_uniform("random", &random);
        // Structured traffic: one client, sequential source ports to a few servers.
        let ports: Vec<FlowKey> = (0..100_000u32)
            .map(|i| k4(i as u16, 80 + (i >> 16) as u16, 0x0a00_0001))
            .collect();
        assert_uniform("ports", &ports);
        // Sequential IPv6 sources in one /64.
        let v6: Vec<FlowKey> = (0..100_000u32)
            .map(|i| {
                let mut src = [0u8; 16];
                src[0] = 0xfd;
                src[12..].copy_from_slice(&i.to_be_bytes());
                FlowKey::new_v6(17, 5000, 53, 3, src, [0xfd; 16])
            })
            .collect();
        assert_uniform("v6", &v6);
        // Deterministic: a fixed key always hashes the same (agent and
        // datapath compute it independently).
        assert_eq!(flow_hash(&k4(1, 2, 3)), flow_hash(&k4(1, 2, 3)));
    }
}
