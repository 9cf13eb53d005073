//! The flow table: the hash table over the shared records.
//!
//! Like upstream vRouter's kernel flow table (which the agent `mmap`s), the
//! table lives in memory the *host* hands in ([`FlowTable::from_raw`]): the
//! Linux datapath host puts it in a shared-memory file the agent maps too, a
//! Windows host in a named file mapping. [`FlowTable::new`] puts it on the
//! heap instead (tests, benches). The module uses only `core` and `alloc`.
//!
//! # Index space and hashing
//!
//! `entries + oflow` records of 256 bytes each, numbered as upstream does:
//! `0..entries` is the hash part, grouped in buckets of 4 consecutive slots;
//! `entries..entries + oflow` is the overflow area. A key whose bucket is full
//! takes a free overflow record, which is linked at the head of a chain that
//! hangs off the **last** slot of its bucket (upstream `vr_htable`): that slot's
//! `next_index` is the first overflow record, each overflow record's
//! `bucket_index` is that slot's index. `u32::MAX` means "none".
//!
//! The bucket hash lives in [`super::hash`]; the record layout, its
//! constants and the cross-process read protocol in [`super::layout`]
//! (re-exported here).
//!
//! # Performance
//!
//! A lookup costs one cache miss on the bucket (the flags and key of a slot
//! share its first cache line), so a lone lookup in a large table is bound by
//! memory latency. A batch should hash every key, [`FlowTable::prefetch`]
//! its bucket, then [`FlowTable::lookup_hashed`] them: the misses overlap.
//! A host that can back the table with huge pages (hugetlbfs, or
//! `MADV_HUGEPAGE` where the kernel allows it for its mapping) saves the TLB
//! misses too.
//!

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};

use super::hash::{flow_hash, key_eq};
pub use super::layout::*;

// ---- table -------------------------------------------------------------

/// Why a flow table could not be built or an entry not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowTableError {
    /// The hash part is zero or not a multiple of 4, or the total does not
    /// fit the `i32` reverse-flow index.
    BadSize,
    /// Host memory not aligned to 64 bytes, or null.
    Misaligned,
    /// The heap could not provide the table.
    NoMemory,
    /// No free slot in the key's bucket and no free overflow record.
    TableFull,
}

impl fmt::Display for FlowTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadSize => "flow table size must be a non-zero multiple of 4 below 2^31",
            Self::Misaligned => "flow table memory must be non-null and 64-byte aligned",
            Self::NoMemory => "out of memory for the flow table",
            Self::TableFull => "flow table full",
        })
    }
}

impl core::error::Error for FlowTableError {}

/// The flow hash table over `entries + oflow` [`FlowEntry`] records.
pub struct FlowTable {
    base: NonNull<FlowEntry>,
    /// Hash part (multiple of 4).
    entries: u32,
    /// Overflow area.
    oflow: u32,
    /// `base` came from `Box::into_raw` in [`FlowTable::new`].
    owned: bool,
    /// Whatever keeps host-provided memory alive (a shared mapping), so the
    /// table can own it safely; dropped after the table.
    keeper: Option<Box<dyn core::any::Any + Send + Sync>>,
    /// Free overflow indices; capacity `oflow`, never reallocated.
    free_oflow: Vec<u32>,
    /// Valid entries.
    used: u32,
}

// SAFETY: `FlowTable` is the only user of its records in this process
// (`new` owns them; `from_raw`'s caller promises exclusivity), so moving it
// to another thread or sharing `&FlowTable` (read-only) is sound.
unsafe impl Send for FlowTable {}
// SAFETY: as above; `&FlowTable` gives no interior mutability.
unsafe impl Sync for FlowTable {}

impl fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowTable")
            .field("entries", &self.entries)
            .field("oflow", &self.oflow)
            .field("used", &self.used)
            .field("oflow_used", &self.oflow_used())
            .finish()
    }
}

impl Drop for FlowTable {
    fn drop(&mut self) {
        if self.owned {
            let slice = core::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.total());
            // SAFETY: `base`/`total` are exactly the boxed slice `new` leaked.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

/// `entries + oflow`, checked: non-zero multiple of 4, total below 2^31.
fn check_size(entries: u32, oflow: u32) -> Result<usize, FlowTableError> {
    if entries == 0 || !entries.is_multiple_of(FLOW_BUCKET_SIZE) {
        return Err(FlowTableError::BadSize);
    }
    match entries.checked_add(oflow) {
        Some(t) if t <= i32::MAX as u32 => Ok(t as usize),
        _ => Err(FlowTableError::BadSize),
    }
}

impl FlowTable {
    /// A heap-backed table of `entries` hash slots (a non-zero multiple of
    /// 4) and `oflow_entries` overflow records.
    pub fn new(entries: u32, oflow_entries: u32) -> Result<Self, FlowTableError> {
        let total = check_size(entries, oflow_entries)?;
        let mut v: Vec<FlowEntry> = Vec::new();
        v.try_reserve_exact(total)
            .map_err(|_| FlowTableError::NoMemory)?;
        v.extend((0..total).map(|i| FlowEntry::empty_at(i as u32)));
        let raw = Box::into_raw(v.into_boxed_slice()).cast::<FlowEntry>();
        let base = NonNull::new(raw).ok_or(FlowTableError::NoMemory)?;
        let mut t = Self::with_base(base, entries, oflow_entries)?;
        t.owned = true;
        Ok(t)
    }

    /// A table over host-provided memory (a shared mapping). Every record is
    /// (re)initialised to free.
    ///
    /// # Safety
    ///
    /// `base` must point to [`FlowTable::bytes_for`]`(entries, oflow_entries)`
    /// writable bytes, aligned to 64 (a mapping's page alignment suffices),
    /// that stay valid for the table's lifetime and that nothing else in this
    /// process accesses meanwhile (other processes may read them as the
    /// module docs describe). The table does not free the memory.
    pub unsafe fn from_raw(
        base: *mut FlowEntry,
        entries: u32,
        oflow_entries: u32,
    ) -> Result<Self, FlowTableError> {
        let total = check_size(entries, oflow_entries)?;
        let base = NonNull::new(base).ok_or(FlowTableError::Misaligned)?;
        if !base.as_ptr().is_aligned() {
            return Err(FlowTableError::Misaligned);
        }
        for i in 0..total {
            // SAFETY: in bounds of the caller's region; the memory may hold
            // anything, so write without reading or dropping the old value.
            unsafe { base.as_ptr().add(i).write(FlowEntry::empty_at(i as u32)) };
        }
        fence(Ordering::Release);
        Self::with_base(base, entries, oflow_entries)
    }

    /// [`FlowTable::from_raw`] over memory that `keeper` owns (e.g. the
    /// mapping object): the table keeps it alive, so a host can hand the
    /// table to a `Router` and forget about the mapping.
    ///
    /// # Safety
    ///
    /// As [`FlowTable::from_raw`], with "valid for the table's lifetime"
    /// guaranteed by `keeper` (the memory must stay mapped while `keeper`
    /// lives and nothing may reach it through `keeper` meanwhile).
    pub unsafe fn from_raw_kept(
        base: *mut FlowEntry,
        entries: u32,
        oflow_entries: u32,
        keeper: Box<dyn core::any::Any + Send + Sync>,
    ) -> Result<Self, FlowTableError> {
        // SAFETY: forwarded from the caller.
        let mut t = unsafe { Self::from_raw(base, entries, oflow_entries) }?;
        t.keeper = Some(keeper);
        Ok(t)
    }

    /// The object passed to [`FlowTable::from_raw_kept`], for read-side
    /// accessors (downcast it to the host's mapping type).
    pub fn keeper(&self) -> Option<&(dyn core::any::Any + Send + Sync)> {
        self.keeper.as_deref()
    }

    fn with_base(
        base: NonNull<FlowEntry>,
        entries: u32,
        oflow: u32,
    ) -> Result<Self, FlowTableError> {
        let mut free_oflow = Vec::new();
        free_oflow
            .try_reserve_exact(oflow as usize)
            .map_err(|_| FlowTableError::NoMemory)?;
        // Popped from the end: the lowest overflow index is used first.
        free_oflow.extend((entries..entries + oflow).rev());
        Ok(Self {
            base,
            entries,
            oflow,
            owned: false,
            keeper: None,
            free_oflow,
            used: 0,
        })
    }

    /// Bytes of memory a table of this size needs (saturates on overflow).
    pub const fn bytes_for(entries: u32, oflow_entries: u32) -> usize {
        (entries as usize + oflow_entries as usize).saturating_mul(size_of::<FlowEntry>())
    }

    /// The flow hash ([`super::hash::flow_hash`]).
    #[inline]
    pub fn hash(key: &FlowKey) -> u32 {
        flow_hash(key)
    }

    /// Index of the first slot of `key`'s bucket.
    #[inline]
    pub fn bucket_of(&self, key: &FlowKey) -> u32 {
        self.bucket_start(Self::hash(key))
    }

    #[inline(always)]
    fn bucket_start(&self, hash: u32) -> u32 {
        let buckets = u64::from(self.entries / FLOW_BUCKET_SIZE);
        // Multiply-shift range reduction: any bucket count, no division.
        (((u64::from(hash) * buckets) >> 32) as u32) * FLOW_BUCKET_SIZE
    }

    #[inline(always)]
    fn total(&self) -> usize {
        self.entries as usize + self.oflow as usize
    }

    #[inline(always)]
    fn slots(&self) -> &[FlowEntry] {
        // SAFETY: `base` points to `total` initialised records that this
        // table uses exclusively (see `new` / `from_raw`).
        unsafe { core::slice::from_raw_parts(self.base.as_ptr(), self.total()) }
    }

    #[inline(always)]
    fn slots_mut(&mut self) -> &mut [FlowEntry] {
        // SAFETY: as `slots`, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr(), self.total()) }
    }

    /// Start loading the bucket of a key with this [`FlowTable::hash`] into
    /// the cache. A batch of packets hashes and prefetches all its keys
    /// first, then looks them up with [`FlowTable::lookup_hashed`]: the
    /// cache misses of the batch overlap instead of adding up.
    ///
    /// Most hits are in the bucket's first slot (the table is sized for a
    /// load well under one entry per bucket). A hit reads both of its
    /// entry's first lines (the key's last word, the action and the
    /// statistics are in the second), a miss on a slot only its first line
    /// (`key_eq` compares the five words there before the sixth): so the
    /// first slot's two lines and the second slot's first line.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        let first = self.bucket_start(hash) as usize;
        if let Some([a, b]) = self.slots().get(first..first + 2) {
            let a = core::ptr::from_ref(a).cast::<u8>();
            prefetch_read(a);
            prefetch_read(a.wrapping_add(64));
            prefetch_read(core::ptr::from_ref(b).cast::<u8>());
        }
    }

    /// Index of the valid entry with `key`: the 4 slots of its bucket, then
    /// the overflow chain. No allocation.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.lookup_hashed(key, Self::hash(key))
    }

    /// [`FlowTable::lookup`] with the key's [`FlowTable::hash`] already
    /// computed (see [`FlowTable::prefetch`]).
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey, hash: u32) -> Option<u32> {
        let first = self.bucket_start(hash);
        let slots = self.slots();
        let bucket = slots.get(first as usize..first as usize + 4)?;
        for (i, e) in bucket.iter().enumerate() {
            if e.is_valid() && key_eq(&e.key, key) {
                return Some(first + i as u32);
            }
        }
        let mut next = bucket.last()?.next_index;
        // A chain is at most `oflow` long; the bound guards a corrupt link.
        let mut budget = self.oflow;
        while next != VR_INVALID_HENTRY_INDEX && budget > 0 {
            let e = slots.get(next as usize)?;
            if e.is_valid() && key_eq(&e.key, key) {
                return Some(next);
            }
            next = e.next_index;
            budget -= 1;
        }
        None
    }

    /// Find or add the entry for `key`: `(index, created)`. A new entry is
    /// zeroed with the key set, VALID, action HOLD, `NEW_FLOW`, reverse flow,
    /// ECMP and mirror indices "none", and `gen_id` one more than the
    /// record's previous generation. It takes a free slot of the bucket, else
    /// an overflow record linked into the bucket's chain.
    pub fn insert(&mut self, key: &FlowKey) -> Result<(u32, bool), FlowTableError> {
        self.insert_hashed(key, Self::hash(key))
    }

    /// [`FlowTable::insert`] with the key's [`FlowTable::hash`] already
    /// computed (the pipeline hashes each packet's key once, for the
    /// prefetch, the lookup and the insertion).
    pub fn insert_hashed(
        &mut self,
        key: &FlowKey,
        hash: u32,
    ) -> Result<(u32, bool), FlowTableError> {
        if let Some(i) = self.lookup_hashed(key, hash) {
            return Ok((i, false));
        }
        let first = self.bucket_start(hash);
        let head = first + FLOW_BUCKET_SIZE - 1;
        let free_slot = self
            .slots()
            .get(first as usize..=head as usize)
            .and_then(|b| b.iter().position(|e| !e.is_valid()));
        let idx = match free_slot {
            Some(i) => first + i as u32,
            None => self.free_oflow.pop().ok_or(FlowTableError::TableFull)?,
        };
        let is_oflow = idx >= self.entries;
        let slots = self.slots_mut();
        let chain = slots
            .get(head as usize)
            .map_or(VR_INVALID_HENTRY_INDEX, |h| h.next_index);
        let Some(e) = slots.get_mut(idx as usize) else {
            return Err(FlowTableError::TableFull);
        };
        e.write_begin();
        *e = FlowEntry {
            // A bucket slot keeps its links (the last slot holds the chain).
            next_index: if is_oflow { chain } else { e.next_index },
            bucket_index: if is_oflow {
                head
            } else {
                VR_INVALID_HENTRY_INDEX
            },
            index: idx,
            hentry_flags: VR_HENTRY_FLAG_VALID,
            key: *key,
            key_len: key.key_len(),
            fe_type: key.vp_type(),
            gen_id: e.gen_id.wrapping_add(1),
            action: VR_FLOW_ACTION_HOLD,
            // As upstream: in use at once, on hold until the agent decides.
            flags: VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_NEW_FLOW,
            mirror_id: VR_MAX_MIRROR_INDICES,
            sec_mirror_id: VR_MAX_MIRROR_INDICES,
            ecmp_nh_index: -1,
            underlay_ecmp_index: -1,
            seq: e.seq,
            ..FlowEntry::EMPTY
        };
        e.write_end();
        if is_oflow {
            // The record is complete before it becomes reachable.
            fence(Ordering::Release);
            if let Some(h) = slots.get_mut(head as usize) {
                h.next_index = idx;
            }
        }
        self.used += 1;
        Ok((idx, true))
    }

    /// Free the valid entry at `idx`: clear ACTIVE and VALID, unlink an
    /// overflow record from its chain and return it to the free list. The
    /// `gen_id` survives so a stale index is detected. False if `idx` is out
    /// of range or not valid.
    pub fn remove(&mut self, idx: u32) -> bool {
        let entries = self.entries;
        let oflow = self.oflow;
        let slots = self.slots_mut();
        let Some(e) = slots.get_mut(idx as usize) else {
            return false;
        };
        if !e.is_valid() {
            return false;
        }
        // As upstream's `vr_flow_reset_entry`: flags, type and statistics
        // go; the key stays (its length says it is void).
        e.write_begin();
        e.flags = 0;
        e.hentry_flags &= !VR_HENTRY_FLAG_VALID;
        e.hold_count = 0;
        e.key_len = 0;
        e.fe_type = 0;
        e.stats_bytes = 0;
        e.stats_packets = 0;
        e.stats_bytes_oflow = 0;
        e.stats_packets_oflow = 0;
        e.write_end();
        if idx >= entries {
            let (head, next) = (e.bucket_index, e.next_index);
            e.next_index = VR_INVALID_HENTRY_INDEX;
            e.bucket_index = VR_INVALID_HENTRY_INDEX;
            // Find the predecessor, from the bucket's last slot.
            let mut prev = head;
            let mut budget = oflow;
            while budget > 0 {
                let Some(p) = slots.get_mut(prev as usize) else {
                    break;
                };
                if p.next_index == idx {
                    p.next_index = next;
                    break;
                }
                prev = p.next_index;
                budget -= 1;
            }
            debug_assert!(budget > 0, "overflow record {idx} not in its chain");
            self.free_oflow.push(idx);
        }
        self.used -= 1;
        true
    }

    /// The record at `idx`, valid or not.
    #[inline]
    pub fn get(&self, idx: u32) -> Option<&FlowEntry> {
        self.slots().get(idx as usize)
    }

    /// The record at `idx`, valid or not (see [`FlowEntry`] for the fields
    /// callers must leave alone).
    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut FlowEntry> {
        self.slots_mut().get_mut(idx as usize)
    }

    /// The record at `idx` if it is valid.
    #[inline]
    pub fn get_valid(&self, idx: u32) -> Option<&FlowEntry> {
        self.get(idx).filter(|e| e.is_valid())
    }

    /// The record at `idx` if it is valid.
    #[inline]
    pub fn get_valid_mut(&mut self, idx: u32) -> Option<&mut FlowEntry> {
        self.get_mut(idx).filter(|e| e.is_valid())
    }

    /// Total records (hash part + overflow area): the index space.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.entries + self.oflow
    }

    /// Records in the hash part.
    #[inline]
    pub fn hash_entries(&self) -> u32 {
        self.entries
    }

    /// Records in the overflow area.
    #[inline]
    pub fn oflow_entries(&self) -> u32 {
        self.oflow
    }

    /// Valid entries.
    #[inline]
    pub fn len(&self) -> u32 {
        self.used
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Overflow records in use.
    #[inline]
    pub fn oflow_used(&self) -> u32 {
        self.oflow - self.free_oflow.len() as u32
    }

    /// Start of the records (for a host that maps them elsewhere too).
    #[inline]
    pub fn as_ptr(&self) -> *const FlowEntry {
        self.base.as_ptr()
    }

    /// Valid entries in index order (dumps).
    pub fn iter_valid(&self) -> impl Iterator<Item = (u32, &FlowEntry)> {
        self.iter_valid_from(0)
    }

    /// Valid entries with index `>= marker`, in index order (a dump resumed
    /// after the last index it returned, like upstream's `fr_marker`).
    pub fn iter_valid_from(&self, marker: u32) -> impl Iterator<Item = (u32, &FlowEntry)> {
        let rest = self.slots().get(marker as usize..).unwrap_or(&[]);
        rest.iter()
            .enumerate()
            .filter(|(_, e)| e.is_valid())
            .map(move |(i, e)| (marker + i as u32, e))
    }
}

/// Hint the CPU to load the cache line at `p` (portable: a no-op where
/// there is no prefetch instruction we use). Never faults, whatever `p`.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, even on an
    // invalid address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn k4(sport: u16, dport: u16, src: u32) -> FlowKey {
        FlowKey::new_v4(6, sport, dport, 7, src.to_be_bytes(), [10, 0, 0, 1])
    }

    /// Keys that all fall in bucket `bucket` of `t`.
    fn colliding(t: &FlowTable, bucket: u32, n: usize) -> Vec<FlowKey> {
        (0u32..)
            .map(|i| k4(i as u16, 80, i))
            .filter(|k| t.bucket_of(k) == bucket)
            .take(n)
            .collect()
    }

    /// Every chain is consistent and every valid overflow record is on the
    /// chain of its bucket exactly once.
    fn check_chains(t: &FlowTable) {
        let mut seen = vec![false; t.capacity() as usize];
        for b in (0..t.hash_entries()).step_by(4) {
            let head = b + 3;
            let mut next = t.get(head).unwrap().next_index;
            while next != VR_INVALID_HENTRY_INDEX {
                assert!(next >= t.hash_entries(), "chain into hash part");
                assert!(!seen[next as usize], "record on two chains or a loop");
                seen[next as usize] = true;
                let e = t.get(next).unwrap();
                assert!(e.is_valid());
                assert_eq!(e.bucket_index, head);
                assert_eq!(t.bucket_of(&e.key), b);
                next = e.next_index;
            }
        }
        let mut valid_oflow = 0;
        for i in t.hash_entries()..t.capacity() {
            let e = t.get(i).unwrap();
            if e.is_valid() {
                valid_oflow += 1;
                assert!(seen[i as usize], "valid overflow record {i} unreachable");
            }
        }
        assert_eq!(valid_oflow, t.oflow_used());
        assert_eq!(t.iter_valid().count() as u32, t.len());
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(FlowTable::new(0, 8).unwrap_err(), FlowTableError::BadSize);
        assert_eq!(FlowTable::new(6, 8).unwrap_err(), FlowTableError::BadSize);
        assert_eq!(
            FlowTable::new(1 << 31, 0).unwrap_err(),
            FlowTableError::BadSize
        );
        assert_eq!(
            FlowTable::new(4, u32::MAX).unwrap_err(),
            FlowTableError::BadSize
        );
        assert!(FlowTable::new(4, 0).is_ok());
        assert_eq!(FlowTable::bytes_for(16, 8), 24 * 256);
        assert!(!FlowTableError::TableFull.to_string().is_empty());
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = FlowTable::new(1024, 64).unwrap();
        assert!(t.is_empty());
        let k = k4(1000, 80, 0x0a00_0002);
        assert_eq!(t.lookup(&k), None);
        let (i, created) = t.insert(&k).unwrap();
        assert!(created);
        assert!(i < 1024);
        assert_eq!(t.insert(&k).unwrap(), (i, false));
        assert_eq!(t.lookup(&k), Some(i));
        assert_eq!(t.len(), 1);
        let e = t.get_valid(i).unwrap();
        assert_eq!(*e.key(), k);
        assert_eq!((e.key_len, e.fe_type, e.index), (20, VP_TYPE_IP, i));
        assert_eq!(e.action, VR_FLOW_ACTION_HOLD);
        assert_eq!(e.rflow, -1);
        assert_eq!(e.rflow(), None);
        assert_eq!(e.gen_id, 1);
        // As upstream: ACTIVE and NEW_FLOW at once, on hold.
        assert_eq!(e.flags, VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_NEW_FLOW);
        assert!(e.is_valid() && e.is_active() && e.is_hold() && !e.is_decided());
        assert_eq!(e.seq % 2, 0);

        let fe = t.get_valid_mut(i).unwrap();
        fe.write_begin();
        fe.action = VR_FLOW_ACTION_FORWARD;
        fe.rflow = 5;
        fe.set_active();
        fe.write_end();
        assert!(t.get(i).unwrap().is_decided());
        assert_eq!(t.get(i).unwrap().rflow(), Some(5));
        t.get_valid_mut(i).unwrap().add_stats(10);

        assert!(t.remove(i));
        assert!(!t.remove(i));
        assert!(!t.remove(u32::MAX));
        assert_eq!(t.lookup(&k), None);
        assert!(t.get_valid(i).is_none());
        let e = t.get(i).unwrap();
        assert!(!e.is_valid() && !e.is_active());
        // As upstream's `vr_flow_reset_entry`: type, length, statistics go.
        assert_eq!((e.key_len, e.fe_type, e.packets(), e.index), (0, 0, 0, i));
        assert_eq!(e.gen_id, 1);
        assert_eq!(t.len(), 0);
        assert!(t.get(t.capacity()).is_none());
    }

    #[test]
    fn stale_index_detected_by_gen_id() {
        let mut t = FlowTable::new(4, 0).unwrap();
        let (i, _) = t.insert(&k4(1, 1, 1)).unwrap();
        let gen = t.get(i).unwrap().gen_id;
        assert!(t.remove(i));
        // A one-bucket table: the next key takes the same (first free) slot.
        let (j, _) = t.insert(&k4(2, 2, 2)).unwrap();
        assert_eq!(i, j);
        let e = t.get_valid(j).unwrap();
        assert_ne!(e.gen_id, gen);
        assert_eq!(e.gen_id, gen.wrapping_add(1));
    }

    #[test]
    fn overflow_chain_and_unlink() {
        let mut t = FlowTable::new(16, 8).unwrap();
        let keys = colliding(&t, 8, 9);
        let mut idx = Vec::new();
        for k in &keys {
            let (i, created) = t.insert(k).unwrap();
            assert!(created);
            idx.push(i);
        }
        assert_eq!(&idx[..4], &[8, 9, 10, 11]);
        assert!(idx[4..].iter().all(|&i| i >= 16));
        assert_eq!(t.oflow_used(), 5);
        // Newest overflow record is the chain head.
        assert_eq!(t.get(11).unwrap().next_index, idx[8]);
        check_chains(&t);
        for (k, &i) in keys.iter().zip(&idx) {
            assert_eq!(t.lookup(k), Some(i));
        }
        // Chain is idx[8] -> idx[7] -> idx[6] -> idx[5] -> idx[4].
        for (victim, pos) in [(idx[6], "middle"), (idx[8], "head"), (idx[4], "tail")] {
            assert!(t.remove(victim), "{pos}");
            check_chains(&t);
        }
        assert_eq!(t.oflow_used(), 2);
        for (k, &i) in keys.iter().zip(&idx) {
            let want = if [idx[4], idx[6], idx[8]].contains(&i) {
                None
            } else {
                Some(i)
            };
            assert_eq!(t.lookup(k), want);
        }
        // A freed bucket slot is reused before the overflow area.
        assert!(t.remove(9));
        let (i, _) = t.insert(&keys[1]).unwrap();
        assert_eq!(i, 9);
        // Slot 11 keeps its chain across remove + reuse.
        assert!(t.remove(11));
        check_chains(&t);
        let (i, _) = t.insert(&keys[3]).unwrap();
        assert_eq!(i, 11);
        check_chains(&t);
        assert_eq!(t.lookup(&keys[5]), Some(idx[5]));
        assert_eq!(t.lookup(&keys[7]), Some(idx[7]));
    }

    #[test]
    fn table_full() {
        let mut t = FlowTable::new(16, 2).unwrap();
        let keys = colliding(&t, 4, 7);
        for k in &keys[..6] {
            t.insert(k).unwrap();
        }
        assert_eq!(t.insert(&keys[6]), Err(FlowTableError::TableFull));
        assert_eq!(t.len(), 6);
        // Another bucket still has room.
        let other = colliding(&t, 0, 1);
        assert!(t.insert(&other[0]).unwrap().1);
        // Existing keys are still found when full.
        assert!(!t.insert(&keys[5]).unwrap().1);
        check_chains(&t);
    }

    #[test]
    fn from_raw_over_byte_buffer() {
        let (entries, oflow) = (64, 16);
        let bytes = FlowTable::bytes_for(entries, oflow);
        let mut buf = vec![0xa5u8; bytes + 64];
        let off = buf.as_ptr().align_offset(64);
        // SAFETY: `buf` holds `bytes` bytes from `off`, 64-aligned, unused
        // elsewhere while the table lives.
        let base = unsafe { buf.as_mut_ptr().add(off) }.cast::<FlowEntry>();
        {
            // SAFETY: as above.
            let mut t = unsafe { FlowTable::from_raw(base, entries, oflow) }.unwrap();
            assert_eq!(t.len(), 0);
            assert_eq!(t.iter_valid().count(), 0);
            let keys: Vec<_> = (0..40).map(|i| k4(i, 443, i.into())).collect();
            for k in &keys {
                t.insert(k).unwrap();
            }
            for k in &keys {
                let i = t.lookup(k).unwrap();
                // A second "process" reads the same memory.
                // SAFETY: `i` is in range of the mapping.
                let copy = unsafe { read_stable(base.add(i as usize), 4) }.unwrap();
                assert_eq!(copy.key, *k);
                assert_eq!(copy, *t.get(i).unwrap());
            }
            check_chains(&t);
        }
        // The bytes are the records, laid out as documented.
        let rec = &buf[off..off + bytes];
        for (i, r) in rec.chunks_exact(256).enumerate() {
            assert_eq!(&r[8..12], &(i as u32).to_ne_bytes(), "hentry_index");
        }
        let first = rec
            .chunks_exact(256)
            .position(|r| r[20] == VR_HENTRY_FLAG_VALID)
            .unwrap();
        let r = &rec[first * 256..][..256];
        assert_eq!(r[24], AF_INET);
        assert_eq!(r[25], 6);
        assert_eq!(r[68], 20);
        assert_eq!(&r[30..32], &443u16.to_be_bytes());
        assert_eq!(&r[92..94], &VR_FLOW_ACTION_HOLD.to_ne_bytes());
        assert_eq!(&r[84..88], &(-1i32).to_ne_bytes());
        assert_eq!(
            &r[88..90],
            &(VR_FLOW_FLAG_ACTIVE | VR_FLOW_FLAG_NEW_FLOW).to_ne_bytes()
        );
        // SAFETY: misaligned pointer is rejected before any access.
        let e = unsafe { FlowTable::from_raw(base.cast::<u8>().add(4).cast(), 4, 0) };
        assert_eq!(e.unwrap_err(), FlowTableError::Misaligned);
        // SAFETY: null is rejected.
        let e = unsafe { FlowTable::from_raw(core::ptr::null_mut(), 4, 0) };
        assert_eq!(e.unwrap_err(), FlowTableError::Misaligned);
    }

    #[test]
    fn iter_valid_from_marker() {
        let mut t = FlowTable::new(64, 8).unwrap();
        for i in 0..20 {
            t.insert(&k4(i, 1, 1)).unwrap();
        }
        let all: Vec<u32> = t.iter_valid().map(|(i, _)| i).collect();
        assert_eq!(all.len(), 20);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        let from: Vec<u32> = t.iter_valid_from(all[10]).map(|(i, _)| i).collect();
        assert_eq!(from, all[10..]);
        assert_eq!(t.iter_valid_from(t.capacity() + 5).count(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8),
        Remove(u8),
        RemoveIdx(u8),
        Lookup(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Insert),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::RemoveIdx),
            2 => any::<u8>().prop_map(Op::Lookup),
        ]
    }

    /// 48 distinct keys, a v4/v6 mix.
    fn pool_key(n: u8) -> FlowKey {
        let n = n % 48;
        if n.is_multiple_of(3) {
            FlowKey::new_v6(17, n.into(), 53, 1, [n; 16], [0xfe; 16])
        } else {
            k4(n.into(), 80, u32::from(n) * 7)
        }
    }

    proptest! {
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut t = FlowTable::new(16, 8).unwrap();
            let mut model: BTreeMap<FlowKey, u32> = BTreeMap::new();
            let mut gens = vec![0u8; t.capacity() as usize];
            for op in ops {
                match op {
                    Op::Insert(n) => {
                        let k = pool_key(n);
                        match t.insert(&k) {
                            Ok((i, created)) => {
                                prop_assert_eq!(created, !model.contains_key(&k));
                                if created {
                                    gens[i as usize] = gens[i as usize].wrapping_add(1);
                                    prop_assert!(!model.values().any(|&v| v == i));
                                    model.insert(k, i);
                                }
                                prop_assert_eq!(model.get(&k), Some(&i));
                            }
                            Err(e) => {
                                prop_assert_eq!(e, FlowTableError::TableFull);
                                prop_assert!(!model.contains_key(&k));
                                prop_assert_eq!(t.oflow_used(), t.oflow_entries());
                                let b = t.bucket_of(&k);
                                prop_assert!((b..b + 4).all(|i| t.get(i).unwrap().is_valid()));
                            }
                        }
                    }
                    Op::Remove(n) => {
                        let k = pool_key(n);
                        let want = model.remove(&k);
                        prop_assert_eq!(t.lookup(&k), want);
                        if let Some(i) = want {
                            prop_assert!(t.remove(i));
                        }
                    }
                    Op::RemoveIdx(n) => {
                        let i = u32::from(n) % (t.capacity() + 2);
                        let k = model.iter().find(|(_, &v)| v == i).map(|(k, _)| *k);
                        prop_assert_eq!(t.remove(i), k.is_some());
                        if let Some(k) = k {
                            model.remove(&k);
                        }
                    }
                    Op::Lookup(n) => {
                        let k = pool_key(n);
                        prop_assert_eq!(t.lookup(&k), model.get(&k).copied());
                    }
                }
                prop_assert_eq!(t.len() as usize, model.len());
                for i in 0..t.capacity() {
                    prop_assert_eq!(t.get(i).unwrap().gen_id, gens[i as usize]);
                }
            }
            for (k, &i) in &model {
                prop_assert_eq!(t.lookup(k), Some(i));
                prop_assert_eq!(t.get_valid(i).map(|e| e.key), Some(*k));
            }
            check_chains(&t);
        }
    }
}
