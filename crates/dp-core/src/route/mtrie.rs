//! Longest-prefix-match tables: a multi-bit trie with strides 16, 8, 8, …
//!
//! Same idea as upstream vRouter's `mtrie`: every trie level is a flat
//! array indexed by the next stride of the address, and the longest prefix
//! is found by following at most one entry per level. The first level takes
//! 16 bits (65536 entries), every further level 8 bits (256 entries), so an
//! IPv4 lookup reads at most 3 trie entries plus the route slot, IPv6 at
//! most 15 plus the slot (and a tail record when the walk ends on one).
//!
//! Layout, chosen so the hot levels stay in cache:
//! - a trie entry is one `u32`: `0` = no route, `CHILD | id` = child level
//!   `id`, `TAIL | id` = a lone route below (see below), anything else =
//!   route slot `n - 1` (a *leaf*). The first level is 256 KiB and a child
//!   level 1 KiB.
//! - child levels live densely in an arena of 64-level (64 KiB) chunks;
//!   freeing a level moves the last one into its place (each level keeps a
//!   back-pointer to the entry that references it), so the arena has no
//!   holes and gives chunks back on churn. Chunks, not one big `Vec`: no
//!   huge contiguous allocation or copy when a table of 100k+ routes grows
//!   (kernel pools fragment) and levels never move on growth, at the price
//!   of one extra, normally cache-resident, pointer load per level.
//! - routes live in a slot vector (prefix, `plen`, value) that leaves point at, so
//!   replacing a route's value does not touch the trie at all.
//! - a `BTreeMap` keyed by `(addr, plen)` is the authoritative record: exact
//!   get/remove, ordered dumps, and the covering route on removal.
//!
//! A leaf is written into every entry a prefix spans at the level holding
//! its last bit (and into every entry of the child levels below them),
//! unless the entry already holds a longer prefix. Removing a prefix hands
//! its entries to the longest installed prefix covering it. A child level
//! whose entries all became the same leaf is folded back into its parent.
//!
//! **Path compression of lone routes.** A prefix that would be the only
//! one below an entry does not get the chain of levels down to its last
//! bit: the entry becomes a *tail* (`TAIL | id`) naming the route and the
//! entry's previous leaf (the fallback). A lookup that reaches a tail
//! compares the address with the route's prefix: the route on a match, the
//! fallback otherwise. Only when a second prefix arrives below that entry
//! is the tail pushed down one level (and again, while the two share the
//! next byte). Removal folds a level back into a tail when one route is
//! left below it. So an isolated /128 costs a route slot and a tail, not
//! 14 levels of 1 KiB: every level splits at least two routes, and a table
//! of R prefixes needs at most R - 1 levels below the first (measured in
//! `benches/forwarding.rs`: 100 000 random /128s, and 100 000 /128s of
//! one /64, next to 100 000 /32s).
//!
//! Hand-written: the project needs a `no_std` + `alloc` table with a fixed
//! number of memory accesses per lookup and no dependencies; the general
//! purpose crates (e.g. `prefix-trie`) are node-per-branch tries over std
//! address types whose lookup cost grows with the depth of the table.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Bound;

/// Bits resolved by the first level.
const ROOT_BITS: usize = 16;
const ROOT_LEN: usize = 1 << ROOT_BITS;
/// Bits resolved by every further level.
const LEVEL_BITS: usize = 8;
const LEVEL_LEN: usize = 1 << LEVEL_BITS;

/// Entry tag: the low 31 bits are a child level id.
const CHILD: u32 = 1 << 31;
/// Entry tag: the low 30 bits are a tail id (a lone route below).
const TAIL: u32 = 1 << 30;
/// Entry with no route.
const EMPTY: u32 = 0;
/// Parent reference meaning "the first level".
const ROOT: u32 = u32::MAX;
/// Parent reference of a level that was folded and awaits freeing.
const DEAD: u32 = u32::MAX - 1;

type Level = [u32; LEVEL_LEN];

/// Levels per arena chunk.
const CHUNK_SHIFT: u32 = 6;
const CHUNK: usize = 1 << CHUNK_SHIFT;

/// `CHUNK` consecutive levels of the arena and their back-pointers.
struct Chunk {
    levels: Box<[Level; CHUNK]>,
    parents: Box<[ParentRef; CHUNK]>,
}

impl Chunk {
    /// Built on the heap: a 64 KiB stack temporary would overflow a
    /// kernel stack.
    fn try_new() -> Option<Self> {
        let mut levels = Vec::new();
        levels.try_reserve_exact(CHUNK).ok()?;
        levels.resize(CHUNK, [EMPTY; LEVEL_LEN]);
        let mut parents = Vec::new();
        parents.try_reserve_exact(CHUNK).ok()?;
        parents.resize(
            CHUNK,
            ParentRef {
                level: DEAD,
                index: 0,
            },
        );
        Some(Self {
            levels: levels.into_boxed_slice().try_into().ok()?,
            parents: parents.into_boxed_slice().try_into().ok()?,
        })
    }
}

/// Errors of [`Mtrie::insert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtrieError {
    /// The prefix length is longer than the address.
    InvalidPrefixLen,
    /// A trie level or route slot could not be allocated.
    OutOfMemory,
}

impl fmt::Display for MtrieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrefixLen => f.write_str("prefix length longer than the address"),
            Self::OutOfMemory => f.write_str("out of memory for the route table"),
        }
    }
}

impl core::error::Error for MtrieError {}

/// A route as leaves see it.
#[derive(Clone, Copy)]
struct Slot<V, const N: usize> {
    plen: u8,
    value: V,
    /// The (masked) prefix, for tails to compare addresses with.
    addr: [u8; N],
}

/// What [`Mtrie::fold`] found a level to hold besides its fallback.
enum Lone {
    /// A tail (the entry value) that moves up as is.
    Tail(u32),
    /// A route painted in the level: becomes a new tail.
    Route { route: u32, fallback: u32 },
}

/// A lone route below an entry: `route` (a slot id) where the address
/// matches its prefix, `fallback` (a leaf or EMPTY) where it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tail {
    route: u32,
    fallback: u32,
}

/// Where a child level hangs: entry `index` of level `level` (or [`ROOT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParentRef {
    level: u32,
    index: u16,
}

/// How a paint pass rewrites leaves.
#[derive(Clone, Copy)]
enum Op {
    /// Insert: take empty entries and leaves of prefixes not longer than `plen`.
    Cover { leaf: u32, plen: u8 },
    /// Remove: hand the removed route's leaves to its covering route.
    Replace { old: u32, new: u32 },
}

impl Op {
    #[inline]
    fn value(self) -> u32 {
        match self {
            Op::Cover { leaf, .. } => leaf,
            Op::Replace { new, .. } => new,
        }
    }
}

/// A longest-prefix-match table for `N`-byte addresses (4 = IPv4, 16 = IPv6).
///
/// Not `Clone`: cloning boxed arrays goes through the stack.
pub struct Mtrie<V: Copy, const N: usize> {
    /// First level, allocated on the first insert and freed when empty.
    root: Option<Box<[u32; ROOT_LEN]>>,
    /// Child level arena: level `id` is `chunks[id / CHUNK].levels[id % CHUNK]`
    /// and `.parents[id % CHUNK]` is the entry pointing at it.
    chunks: Vec<Chunk>,
    /// Levels in use (ids `0..nlevels`).
    nlevels: usize,
    /// Route slots; leaf `n` is `routes[n - 1]`.
    routes: Vec<Slot<V, N>>,
    /// Unused route slots.
    free: Vec<u32>,
    /// Tails (see the module docs) and the unused ones.
    tails: Vec<Tail>,
    free_tails: Vec<u32>,
    /// Levels folded during the current removal, freed at its end (freeing
    /// renumbers a level, which must not happen mid-walk).
    dead: Vec<u32>,
    /// The installed prefixes and their slots.
    map: BTreeMap<([u8; N], u8), u32>,
}

/// IPv4 table.
pub type Mtrie4<V> = Mtrie<V, 4>;
/// IPv6 table.
pub type Mtrie6<V> = Mtrie<V, 16>;

impl<V: Copy + PartialEq, const N: usize> Default for Mtrie<V, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Copy, const N: usize> fmt::Debug for Mtrie<V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mtrie")
            .field("routes", &self.map.len())
            .field("levels", &self.nlevels)
            .finish()
    }
}

/// `addr` with the bits past `plen` cleared.
#[inline]
fn mask<const N: usize>(mut addr: [u8; N], plen: u8) -> [u8; N] {
    let mut left = u32::from(plen);
    for b in addr.iter_mut() {
        let keep = left.min(8);
        // `checked_shr(8)` is `None`: keep the whole byte.
        *b &= !0xffu8.checked_shr(keep).unwrap_or(0);
        left -= keep;
    }
    addr
}

/// Depth of the level holding the last bit of a `plen`-bit prefix.
#[inline]
fn target_depth(plen: u8) -> usize {
    usize::from(plen).saturating_sub(ROOT_BITS + 1) / LEVEL_BITS
        + usize::from(usize::from(plen) > ROOT_BITS)
}

/// Index into the level at `depth` on the path of `addr`.
#[inline]
fn index<const N: usize>(addr: &[u8; N], depth: usize) -> usize {
    if depth == 0 {
        let hi = addr.first().copied().unwrap_or(0);
        let lo = addr.get(1).copied().unwrap_or(0);
        usize::from(u16::from_be_bytes([hi, lo]))
    } else {
        usize::from(addr.get(depth + 1).copied().unwrap_or(0))
    }
}

/// First entry and entry count a (masked) prefix spans at its target level.
#[inline]
fn span<const N: usize>(addr: &[u8; N], plen: u8, depth: usize) -> (usize, usize) {
    let end = ROOT_BITS + LEVEL_BITS * depth;
    (index(addr, depth), 1 << (end - usize::from(plen)))
}

impl<V: Copy + PartialEq, const N: usize> Mtrie<V, N> {
    /// An empty table; allocates nothing until the first insert.
    pub const fn new() -> Self {
        const { assert!(N >= 2 && N <= 16, "Mtrie supports 2..=16 byte addresses") };
        Self {
            root: None,
            chunks: Vec::new(),
            nlevels: 0,
            routes: Vec::new(),
            free: Vec::new(),
            tails: Vec::new(),
            free_tails: Vec::new(),
            dead: Vec::new(),
            map: BTreeMap::new(),
        }
    }

    /// Add or replace `addr/plen` (host bits are ignored). Returns the
    /// previous value of the same prefix.
    pub fn insert(&mut self, addr: [u8; N], plen: u8, value: V) -> Result<Option<V>, MtrieError> {
        if usize::from(plen) > 8 * N {
            return Err(MtrieError::InvalidPrefixLen);
        }
        let addr = mask(addr, plen);
        if let Some(&id) = self.map.get(&(addr, plen)) {
            if let Some(slot) = self.routes.get_mut(id as usize) {
                return Ok(Some(core::mem::replace(&mut slot.value, value)));
            }
        }
        // Allocate up front so a failed allocation leaves the routes as
        // they were: at most one new level per depth walked (tails pushed
        // down), one tail, one slot.
        let depth = target_depth(plen);
        self.reserve(depth)?;
        let slot = Slot { plen, value, addr };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(s) = self.routes.get_mut(id as usize) {
                    *s = slot;
                }
                id
            }
            None => {
                self.routes.push(slot);
                (self.routes.len() - 1) as u32
            }
        };
        self.map.insert((addr, plen), id);

        let mut level = ROOT;
        let mut d = 0;
        while d < depth {
            let i = index(&addr, d);
            let e = self.entry(level, i);
            if e & CHILD != 0 {
                level = e & !CHILD;
            } else if e & TAIL != 0 {
                // A lone route lives below: push it down one level.
                level = self
                    .push_down(level, i, e & !TAIL, d + 1)
                    .ok_or(MtrieError::OutOfMemory)?;
            } else {
                // Nothing else below this entry: the new route is a tail.
                let t = self.new_tail(Tail {
                    route: id,
                    fallback: e,
                });
                self.set_entry(level, i, TAIL | t);
                return Ok(None);
            }
            d += 1;
        }
        let (start, count) = span(&addr, plen, depth);
        self.paint(level, start, count, Op::Cover { leaf: id + 1, plen });
        Ok(None)
    }

    /// Remove `addr/plen` (host bits are ignored) and return its value; the
    /// longest prefix covering it takes over its addresses.
    pub fn remove(&mut self, addr: [u8; N], plen: u8) -> Option<V> {
        if usize::from(plen) > 8 * N {
            return None;
        }
        let addr = mask(addr, plen);
        let id = self.map.remove(&(addr, plen))?;
        let value = self.routes.get(id as usize).map(|s| s.value);
        let cover = (0..plen)
            .rev()
            .find_map(|l| self.map.get(&(mask(addr, l), l)))
            .map_or(EMPTY, |&c| c + 1);
        // Folding a level into a tail needs a tail record: have room for
        // one (without it, levels just stay).
        if self.free_tails.is_empty() {
            let _ = self.tails.try_reserve(1);
        }

        let depth = target_depth(plen);
        let mut level = ROOT;
        let mut d = 0;
        let mut found = false;
        while d < depth {
            let i = index(&addr, d);
            let e = self.entry(level, i);
            if e & CHILD != 0 {
                level = e & !CHILD;
                d += 1;
                continue;
            }
            if e & TAIL != 0 {
                let t = e & !TAIL;
                if let Some(tail) = self.tails.get(t as usize).copied() {
                    if tail.route == id {
                        self.set_entry(level, i, tail.fallback);
                        self.free_tails.push(t);
                        found = true;
                    }
                }
            }
            break;
        }
        if d == depth {
            let (start, count) = span(&addr, plen, depth);
            self.paint(
                level,
                start,
                count,
                Op::Replace {
                    old: id + 1,
                    new: cover,
                },
            );
            found = true;
        }
        debug_assert!(found, "installed prefix without trie path");
        if found {
            if level != ROOT {
                self.collapse_up(level);
            }
            self.reclaim();
        }

        if self.map.is_empty() {
            self.release();
        } else {
            self.free.push(id);
        }
        value
    }

    /// Exact-match read of `addr/plen` (host bits are ignored).
    pub fn get(&self, addr: [u8; N], plen: u8) -> Option<V> {
        if usize::from(plen) > 8 * N {
            return None;
        }
        let id = *self.map.get(&(mask(addr, plen), plen))?;
        self.routes.get(id as usize).map(|s| s.value)
    }

    /// Longest-prefix match: the matched prefix length and its value.
    #[inline]
    pub fn lookup(&self, addr: &[u8; N]) -> Option<(u8, V)> {
        let root = self.root.as_deref()?;
        let [hi, lo, rest @ ..] = addr.as_slice() else {
            return None;
        };
        let mut e = *root.get(usize::from(u16::from_be_bytes([*hi, *lo])))?;
        for &b in rest {
            if e & CHILD == 0 {
                break;
            }
            let id = (e & !CHILD) as usize;
            e = *self
                .chunks
                .get(id >> CHUNK_SHIFT)?
                .levels
                .get(id & (CHUNK - 1))?
                .get(usize::from(b))?;
        }
        if e & TAIL != 0 {
            let t = self.tails.get((e & !TAIL) as usize)?;
            let slot = self.routes.get(t.route as usize)?;
            if mask(*addr, slot.plen) == slot.addr {
                return Some((slot.plen, slot.value));
            }
            e = t.fallback;
        }
        // EMPTY wraps to usize::MAX and misses, as does a (corrupt) child.
        let slot = self.routes.get((e as usize).wrapping_sub(1))?;
        Some((slot.plen, slot.value))
    }

    /// Number of installed prefixes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of child levels currently allocated (for memory stats).
    pub fn level_count(&self) -> usize {
        self.nlevels
    }

    /// Every installed prefix once, ordered by `(addr, plen)`.
    pub fn iter(&self) -> impl Iterator<Item = ([u8; N], u8, V)> + '_ {
        self.iter_from(None)
    }

    /// Like [`iter`](Self::iter) but starting after `marker` (exclusive):
    /// resumes a paged dump from the last prefix sent.
    pub fn iter_from(
        &self,
        marker: Option<([u8; N], u8)>,
    ) -> impl Iterator<Item = ([u8; N], u8, V)> + '_ {
        let lower = marker.map_or(Bound::Unbounded, Bound::Excluded);
        self.map
            .range((lower, Bound::Unbounded))
            .filter_map(|(&(addr, plen), &id)| {
                self.routes.get(id as usize).map(|s| (addr, plen, s.value))
            })
    }

    /// Remove every prefix and free all memory.
    pub fn clear(&mut self) {
        self.map.clear();
        self.release();
    }

    /// Approximate heap use in bytes (the `BTreeMap` is estimated).
    pub fn memory_bytes(&self) -> usize {
        use core::mem::size_of;
        // B-tree leaves hold 11 keys and run about two thirds full.
        let btree_entry =
            (size_of::<([u8; N], u8)>() + size_of::<u32>()) * 3 / 2 + size_of::<usize>();
        self.root
            .as_ref()
            .map_or(0, |_| size_of::<[u32; ROOT_LEN]>())
            + self.chunks.len() * (size_of::<[Level; CHUNK]>() + size_of::<[ParentRef; CHUNK]>())
            + self.chunks.capacity() * size_of::<Chunk>()
            + self.routes.capacity() * size_of::<Slot<V, N>>()
            + self.tails.capacity() * size_of::<Tail>()
            + (self.free.capacity() + self.free_tails.capacity() + self.dead.capacity())
                * size_of::<u32>()
            + self.map.len() * btree_entry
    }

    /// Tails in use (lone routes compressed below an entry).
    pub fn tail_count(&self) -> usize {
        self.tails.len() - self.free_tails.len()
    }

    // ---- internals ----

    /// Allocate what one insert may need: the first level, `depth` new
    /// levels, a tail and a route slot.
    fn reserve(&mut self, depth: usize) -> Result<(), MtrieError> {
        const OOM: MtrieError = MtrieError::OutOfMemory;
        if self.root.is_none() {
            let mut v = Vec::new();
            v.try_reserve_exact(ROOT_LEN).map_err(|_| OOM)?;
            v.resize(ROOT_LEN, EMPTY);
            self.root = Some(v.into_boxed_slice().try_into().map_err(|_| OOM)?);
        }
        // Ids must stay clear of the CHILD and TAIL tags.
        if self.nlevels + depth >= TAIL as usize
            || self.routes.len() + 1 >= TAIL as usize
            || self.tails.len() + 1 >= TAIL as usize
        {
            return Err(OOM);
        }
        while self.chunks.len() * CHUNK < self.nlevels + depth {
            self.chunks.try_reserve(1).map_err(|_| OOM)?;
            self.chunks.push(Chunk::try_new().ok_or(OOM)?);
        }
        if self.free.is_empty() {
            self.routes.try_reserve(1).map_err(|_| OOM)?;
        }
        if self.free_tails.is_empty() {
            self.tails.try_reserve(1).map_err(|_| OOM)?;
        }
        Ok(())
    }

    /// Drop all storage (the table is empty).
    fn release(&mut self) {
        self.root = None;
        self.chunks = Vec::new();
        self.nlevels = 0;
        self.routes = Vec::new();
        self.free = Vec::new();
        self.tails = Vec::new();
        self.free_tails = Vec::new();
        self.dead = Vec::new();
    }

    /// A tail record (reusing a free one).
    fn new_tail(&mut self, t: Tail) -> u32 {
        match self.free_tails.pop() {
            Some(id) => {
                if let Some(slot) = self.tails.get_mut(id as usize) {
                    *slot = t;
                }
                id
            }
            None => {
                self.tails.push(t);
                (self.tails.len() - 1) as u32
            }
        }
    }

    /// Entry `idx` of `level` holds tail `t`: give it a child level (at
    /// depth `depth`) filled with the tail's fallback, and put the tail's
    /// route there: painted if its last bit is in that level, else as the
    /// tail one level down. Returns the new level.
    fn push_down(&mut self, level: u32, idx: usize, t: u32, depth: usize) -> Option<u32> {
        let tail = self.tails.get(t as usize).copied()?;
        let (addr, plen) = {
            let r = self.routes.get(tail.route as usize)?;
            (r.addr, r.plen)
        };
        // The entry is not a child: this makes a level holding `fallback`.
        self.set_entry(level, idx, tail.fallback);
        let child = self.descend_or_split(level, idx)?;
        if target_depth(plen) == depth {
            let (start, count) = span(&addr, plen, depth);
            self.paint(
                child,
                start,
                count,
                Op::Cover {
                    leaf: tail.route + 1,
                    plen,
                },
            );
            self.free_tails.push(t);
        } else {
            self.set_entry(child, index(&addr, depth), TAIL | t);
        }
        Some(child)
    }

    #[inline]
    fn level(&self, id: u32) -> Option<&Level> {
        let id = id as usize;
        if id >= self.nlevels {
            return None;
        }
        self.chunks
            .get(id >> CHUNK_SHIFT)?
            .levels
            .get(id & (CHUNK - 1))
    }

    #[inline]
    fn level_mut(&mut self, id: u32) -> Option<&mut Level> {
        let id = id as usize;
        if id >= self.nlevels {
            return None;
        }
        self.chunks
            .get_mut(id >> CHUNK_SHIFT)?
            .levels
            .get_mut(id & (CHUNK - 1))
    }

    #[inline]
    fn parent_mut(&mut self, id: u32) -> Option<&mut ParentRef> {
        let id = id as usize;
        if id >= self.nlevels {
            return None;
        }
        self.chunks
            .get_mut(id >> CHUNK_SHIFT)?
            .parents
            .get_mut(id & (CHUNK - 1))
    }

    #[inline]
    fn parent(&self, id: u32) -> Option<ParentRef> {
        let id = id as usize;
        if id >= self.nlevels {
            return None;
        }
        self.chunks
            .get(id >> CHUNK_SHIFT)?
            .parents
            .get(id & (CHUNK - 1))
            .copied()
    }

    #[inline]
    fn entry(&self, level: u32, idx: usize) -> u32 {
        let e = if level == ROOT {
            self.root.as_deref().and_then(|r| r.get(idx))
        } else {
            self.level(level).and_then(|l| l.get(idx))
        };
        e.copied().unwrap_or(EMPTY)
    }

    #[inline]
    fn set_entry(&mut self, level: u32, idx: usize, value: u32) {
        let e = if level == ROOT {
            self.root.as_deref_mut().and_then(|r| r.get_mut(idx))
        } else {
            self.level_mut(level).and_then(|l| l.get_mut(idx))
        };
        if let Some(e) = e {
            *e = value;
        }
    }

    /// The child level behind entry `idx` of `level`, created (inheriting
    /// the entry's leaf everywhere) if the entry is a leaf. `None` only if
    /// [`reserve`](Self::reserve) did not provide the room.
    fn descend_or_split(&mut self, level: u32, idx: usize) -> Option<u32> {
        let e = self.entry(level, idx);
        if e & CHILD != 0 {
            return Some(e & !CHILD);
        }
        if self.nlevels >= self.chunks.len() * CHUNK {
            return None;
        }
        let id = self.nlevels as u32;
        self.nlevels += 1;
        self.level_mut(id)?.fill(e);
        *self.parent_mut(id)? = ParentRef {
            level,
            index: idx as u16,
        };
        self.set_entry(level, idx, CHILD | id);
        Some(id)
    }

    #[inline]
    fn applies(&self, op: Op, e: u32) -> bool {
        match op {
            Op::Cover { plen, .. } => {
                e == EMPTY
                    || self
                        .routes
                        .get((e as usize).wrapping_sub(1))
                        .is_some_and(|s| s.plen <= plen)
            }
            Op::Replace { old, .. } => e == old,
        }
    }

    /// Apply `op` to entries `start..start + count` of `level` and to every
    /// level below them.
    fn paint(&mut self, level: u32, start: usize, count: usize, op: Op) {
        for idx in start..start + count {
            let e = self.entry(level, idx);
            if e & CHILD != 0 {
                self.paint_all(e & !CHILD, op);
            } else if e & TAIL != 0 {
                self.paint_tail(e & !TAIL, op);
            } else if self.applies(op, e) {
                self.set_entry(level, idx, op.value());
            }
        }
    }

    /// A tail's fallback is the leaf its entry would hold: paint it.
    fn paint_tail(&mut self, t: u32, op: Op) {
        let Some(f) = self.tails.get(t as usize).map(|t| t.fallback) else {
            return;
        };
        if self.applies(op, f) {
            if let Some(tail) = self.tails.get_mut(t as usize) {
                tail.fallback = op.value();
            }
        }
    }

    /// Apply `op` to a whole child level and its subtree, folding levels
    /// that become uniform. Recursion depth is bounded by the address
    /// length (at most 14 nested calls for IPv6).
    fn paint_all(&mut self, id: u32, op: Op) {
        for idx in 0..LEVEL_LEN {
            let e = self.entry(id, idx);
            if e & CHILD != 0 {
                self.paint_all(e & !CHILD, op);
            } else if e & TAIL != 0 {
                self.paint_tail(e & !TAIL, op);
            } else if self.applies(op, e) {
                self.set_entry(id, idx, op.value());
            }
        }
        if let Op::Replace { .. } = op {
            self.fold(id);
        }
    }

    /// If level `id` holds one value everywhere (a leaf), or one lone route
    /// on top of one leaf (a tail, or a route whose last bit is in this
    /// level), put that leaf or a tail for that route in the parent entry
    /// and queue the level for freeing.
    fn fold(&mut self, id: u32) -> bool {
        let Some(level) = self.level(id) else {
            return false;
        };
        // At most two distinct values, no child.
        let a = level.first().copied().unwrap_or(EMPTY);
        let mut b = None;
        let mut count_b = 0usize;
        for &e in level.iter() {
            if e & CHILD != 0 {
                return false;
            }
            if e == a {
                continue;
            }
            match b {
                None => {
                    b = Some(e);
                    count_b = 1;
                }
                Some(x) if x == e => count_b += 1,
                Some(_) => return false,
            }
        }
        let folded = match b {
            None if a & TAIL == 0 => a,
            None => return false,
            Some(bv) => {
                let count_a = LEVEL_LEN - count_b;
                let Some(depth) = self.level_depth(id) else {
                    return false;
                };
                // One of the two is the lone route, the other its fallback.
                match self
                    .lone(bv, count_b, a, depth)
                    .or_else(|| self.lone(a, count_a, bv, depth))
                {
                    Some(Lone::Tail(x)) => x,
                    Some(Lone::Route { route, fallback }) => {
                        if self.free_tails.is_empty() && self.tails.len() == self.tails.capacity() {
                            return false;
                        }
                        TAIL | self.new_tail(Tail { route, fallback })
                    }
                    None => return false,
                }
            }
        };
        let Some(p) = self.parent_mut(id) else {
            return false;
        };
        if p.level == DEAD {
            return false;
        }
        let parent = core::mem::replace(
            p,
            ParentRef {
                level: DEAD,
                index: 0,
            },
        );
        self.set_entry(parent.level, usize::from(parent.index), folded);
        self.dead.push(id);
        true
    }

    /// Whether `x` (found `count` times in a level at `depth`) is the one
    /// lone route of that level over `fallback` (everywhere else): a tail
    /// whose fallback that is, or the leaf of a route whose last bit is in
    /// this level, painted over exactly its span.
    fn lone(&self, x: u32, count: usize, fallback: u32, depth: usize) -> Option<Lone> {
        if fallback & (TAIL | CHILD) != 0 {
            return None;
        }
        // The fallback must be a leaf painted from above (or none): a route
        // ending in this level (two /17s halving it) would, as a tail's
        // fallback, have no trie path of its own and could not be removed.
        if let Some(f) = fallback.checked_sub(1) {
            if target_depth(self.routes.get(f as usize)?.plen) >= depth {
                return None;
            }
        }
        if x & TAIL != 0 {
            let t = self.tails.get((x & !TAIL) as usize)?;
            return (count == 1 && t.fallback == fallback).then_some(Lone::Tail(x));
        }
        let route = x.checked_sub(1)?;
        let r = self.routes.get(route as usize)?;
        (target_depth(r.plen) == depth && span(&r.addr, r.plen, depth).1 == count)
            .then_some(Lone::Route { route, fallback })
    }

    /// Depth of level `id` (the first level is 0).
    fn level_depth(&self, mut id: u32) -> Option<usize> {
        let mut d = 1;
        loop {
            let p = self.parent(id)?;
            if p.level == ROOT {
                return Some(d);
            }
            if p.level == DEAD {
                return None;
            }
            id = p.level;
            d += 1;
        }
    }

    /// Fold `id` and then its ancestors while they become uniform.
    fn collapse_up(&mut self, mut id: u32) {
        loop {
            let Some(parent) = self.parent(id) else {
                return;
            };
            if !self.fold(id) || parent.level == ROOT {
                return;
            }
            id = parent.level;
        }
    }

    /// Free the folded levels, keeping the arena dense.
    fn reclaim(&mut self) {
        let mut dead = core::mem::take(&mut self.dead);
        // Highest first: the last level is then never one still to free.
        dead.sort_unstable_by(|a, b| b.cmp(a));
        for &id in &dead {
            self.free_level(id);
        }
        dead.clear();
        self.dead = dead;
        if self.nlevels == 0 {
            self.chunks = Vec::new();
        } else {
            // One spare chunk, so a level count going back and forth over a
            // chunk boundary does not allocate and free each time.
            self.chunks.truncate(self.nlevels.div_ceil(CHUNK) + 1);
            if self.chunks.len() * 4 < self.chunks.capacity() {
                self.chunks.shrink_to(self.chunks.len() * 2);
            }
        }
    }

    /// Free level `id` by moving the last level into its place.
    fn free_level(&mut self, id: u32) {
        let Some(last) = self.nlevels.checked_sub(1) else {
            return;
        };
        let last = last as u32;
        if id > last {
            return;
        }
        if id != last {
            let (Some(moved), Some(parent)) = (self.level(last).copied(), self.parent(last)) else {
                return;
            };
            if let Some(l) = self.level_mut(id) {
                *l = moved;
            }
            if let Some(p) = self.parent_mut(id) {
                *p = parent;
            }
            // Re-point the moved level's parent entry and its children.
            self.set_entry(parent.level, usize::from(parent.index), CHILD | id);
            for &e in moved.iter() {
                if e & CHILD != 0 {
                    if let Some(p) = self.parent_mut(e & !CHILD) {
                        p.level = id;
                    }
                }
            }
        }
        self.nlevels -= 1;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 4] {
        [a, b, c, d]
    }

    /// Longest matching prefix by linear scan.
    fn naive<V: Copy, const N: usize>(
        routes: &BTreeMap<([u8; N], u8), V>,
        addr: &[u8; N],
    ) -> Option<(u8, V)> {
        routes
            .iter()
            .filter(|((a, l), _)| mask(*addr, *l) == *a)
            .max_by_key(|((_, l), _)| *l)
            .map(|((_, l), v)| (*l, *v))
    }

    /// Address of the last host in `addr/plen`.
    fn last_host<const N: usize>(addr: [u8; N], plen: u8) -> [u8; N] {
        let m = mask(addr, plen);
        let mut out = m;
        for (i, b) in out.iter_mut().enumerate() {
            let keep = usize::from(plen).saturating_sub(i * 8).min(8) as u32;
            *b |= 0xffu8.checked_shr(keep).unwrap_or(0);
        }
        out
    }

    fn add<const N: usize>(addr: [u8; N], delta: i8) -> [u8; N] {
        let mut n = u128::from_be_bytes({
            let mut b = [0u8; 16];
            b[16 - N..].copy_from_slice(&addr);
            b
        });
        n = n.wrapping_add_signed(i128::from(delta));
        let b = n.to_be_bytes();
        let mut out = [0u8; N];
        out.copy_from_slice(&b[16 - N..]);
        out
    }

    /// Structural invariants: every level reachable exactly once, with a
    /// correct back-pointer, not uniform, and needed (some prefix ends
    /// below it); all leaves point at installed routes; slots accounted.
    fn check<V: Copy + PartialEq + core::fmt::Debug, const N: usize>(t: &Mtrie<V, N>) {
        assert!(t.dead.is_empty());
        assert!(t.nlevels <= t.chunks.len() * CHUNK);
        assert!(t.chunks.len() <= t.nlevels.div_ceil(CHUNK) + 1);
        let live: BTreeSet<u32> = t.map.values().copied().collect();
        assert_eq!(live.len(), t.map.len());
        assert_eq!(t.map.len() + t.free.len(), t.routes.len());
        for f in &t.free {
            assert!(!live.contains(f));
        }
        for ((a, l), id) in &t.map {
            assert_eq!(mask(*a, *l), *a);
            assert_eq!(t.routes[*id as usize].plen, *l);
        }
        let Some(root) = t.root.as_deref() else {
            assert!(t.map.is_empty() && t.nlevels == 0 && t.chunks.is_empty());
            return;
        };
        assert!(!t.map.is_empty());
        let mut seen = vec![false; t.nlevels];
        // (level id, depth, path prefix)
        let mut stack: Vec<(u32, usize, [u8; N])> = Vec::new();
        let leaf_ok = |e: u32| e == EMPTY || live.contains(&(e - 1));
        // A tail at an entry of depth `depth` whose path is `path`: its
        // route is live, below the entry and on its path; its fallback is a
        // leaf from this depth or above; each tail is used once.
        let mut tails_seen = vec![false; t.tails.len()];
        let mut check_tail = |id: u32, depth: usize, path: [u8; N]| {
            assert!(!t.free_tails.contains(&id), "tail {id} is free");
            assert!(!tails_seen[id as usize], "tail {id} reachable twice");
            tails_seen[id as usize] = true;
            let tail = t.tails[id as usize];
            assert!(live.contains(&tail.route), "tail {id} route dangles");
            let r = &t.routes[tail.route as usize];
            assert!(target_depth(r.plen) > depth, "tail {id} not below");
            let bits = (ROOT_BITS + LEVEL_BITS * depth) as u8;
            assert_eq!(mask(r.addr, bits), path, "tail {id} off its path");
            assert!(leaf_ok(tail.fallback), "tail {id} fallback dangles");
            if let Some(f) = tail.fallback.checked_sub(1) {
                assert!(target_depth(t.routes[f as usize].plen) <= depth);
            }
        };
        for (i, &e) in root.iter().enumerate() {
            if e & CHILD != 0 {
                let id = e & !CHILD;
                assert_eq!(
                    t.parent(id).unwrap(),
                    ParentRef {
                        level: ROOT,
                        index: i as u16
                    }
                );
                let mut p = [0u8; N];
                p[0] = (i >> 8) as u8;
                p[1] = i as u8;
                stack.push((id, 1, p));
            } else if e & TAIL != 0 {
                let mut p = [0u8; N];
                p[0] = (i >> 8) as u8;
                p[1] = i as u8;
                check_tail(e & !TAIL, 0, p);
            } else {
                assert!(leaf_ok(e), "root leaf {e} dangles");
            }
        }
        while let Some((id, depth, path)) = stack.pop() {
            assert!(!seen[id as usize], "level {id} reachable twice");
            seen[id as usize] = true;
            assert!(depth < N - 1);
            let level = t.level(id).unwrap();
            assert!(
                level.iter().any(|&e| e != level[0]) || level[0] & CHILD != 0,
                "uniform level {id}"
            );
            let start = (ROOT_BITS + LEVEL_BITS * (depth - 1)) as u8;
            // Path compression: a level exists only to split two routes.
            assert!(
                t.map
                    .keys()
                    .filter(|(a, l)| *l > start && mask(*a, start) == path)
                    .nth(1)
                    .is_some(),
                "level {id} not needed"
            );
            for (i, &e) in level.iter().enumerate() {
                if e & CHILD != 0 {
                    let c = e & !CHILD;
                    assert_eq!(
                        t.parent(c).unwrap(),
                        ParentRef {
                            level: id,
                            index: i as u16
                        }
                    );
                    let mut p = path;
                    p[depth + 1] = i as u8;
                    stack.push((c, depth + 1, p));
                } else if e & TAIL != 0 {
                    let mut p = path;
                    p[depth + 1] = i as u8;
                    check_tail(e & !TAIL, depth, p);
                } else {
                    assert!(leaf_ok(e), "leaf {e} dangles");
                }
            }
        }
        assert!(seen.iter().all(|s| *s), "unreachable level");
        let used = tails_seen.iter().filter(|s| **s).count();
        assert_eq!(used + t.free_tails.len(), t.tails.len(), "tail leaked");
        assert_eq!(used, t.tail_count());
    }

    /// Compare `lookup` with the naive scan at the edges of every prefix.
    fn check_lookups<V: Copy + PartialEq + core::fmt::Debug, const N: usize>(
        t: &Mtrie<V, N>,
        reference: &BTreeMap<([u8; N], u8), V>,
        extra: &[[u8; N]],
    ) {
        let mut probes: Vec<[u8; N]> = extra.to_vec();
        for (a, l) in reference.keys() {
            let last = last_host(*a, *l);
            probes.extend([*a, last, add(*a, -1), add(last, 1)]);
        }
        for p in &probes {
            assert_eq!(t.lookup(p), naive(reference, p), "lookup {p:?}");
        }
    }

    #[test]
    fn empty_table() {
        let t: Mtrie4<u32> = Mtrie::new();
        assert!(t.is_empty());
        assert_eq!(t.lookup(&v4(1, 2, 3, 4)), None);
        assert_eq!(t.memory_bytes(), 0);
        assert_eq!(t.iter().count(), 0);
        let t6: Mtrie6<u32> = Mtrie::default();
        assert_eq!(t6.lookup(&[0; 16]), None);
    }

    #[test]
    fn default_route() {
        let mut t = Mtrie4::new();
        assert_eq!(t.insert(v4(9, 9, 9, 9), 0, 1u32), Ok(None));
        assert_eq!(t.lookup(&v4(1, 2, 3, 4)), Some((0, 1)));
        assert_eq!(t.lookup(&v4(255, 255, 255, 255)), Some((0, 1)));
        assert_eq!(t.get([0; 4], 0), Some(1));
        t.insert(v4(10, 0, 0, 0), 8, 2).unwrap();
        assert_eq!(t.lookup(&v4(10, 1, 2, 3)), Some((8, 2)));
        assert_eq!(t.lookup(&v4(11, 1, 2, 3)), Some((0, 1)));
        assert_eq!(t.remove([0; 4], 0), Some(1));
        assert_eq!(t.lookup(&v4(11, 1, 2, 3)), None);
        assert_eq!(t.lookup(&v4(10, 1, 2, 3)), Some((8, 2)));
        check(&t);
    }

    #[test]
    fn host_routes() {
        let mut t = Mtrie4::new();
        t.insert(v4(10, 1, 2, 3), 32, 7u32).unwrap();
        assert_eq!(t.lookup(&v4(10, 1, 2, 3)), Some((32, 7)));
        assert_eq!(t.lookup(&v4(10, 1, 2, 4)), None);
        assert_eq!(t.lookup(&v4(10, 1, 2, 2)), None);
        // A lone route is a tail on the first level, not a chain of levels.
        assert_eq!(t.level_count(), 0);
        assert_eq!(t.tail_count(), 1);
        check(&t);
        // A second one below the same /24 splits down to it; removing it
        // folds back.
        t.insert(v4(10, 1, 2, 200), 32, 8u32).unwrap();
        assert_eq!(t.level_count(), 2);
        assert_eq!(t.lookup(&v4(10, 1, 2, 200)), Some((32, 8)));
        assert_eq!(t.lookup(&v4(10, 1, 2, 3)), Some((32, 7)));
        check(&t);
        assert_eq!(t.remove(v4(10, 1, 2, 3), 32), Some(7));
        assert_eq!(t.level_count(), 0);
        assert_eq!(t.lookup(&v4(10, 1, 2, 3)), None);
        check(&t);

        let mut t6 = Mtrie6::new();
        let a = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
        ];
        t6.insert(a, 128, 9u32).unwrap();
        assert_eq!(t6.lookup(&a), Some((128, 9)));
        let mut b = a;
        b[15] = 0x43;
        assert_eq!(t6.lookup(&b), None);
        // Without path compression a lone /128 took 14 levels (14 KiB).
        assert_eq!(t6.level_count(), 0);
        t6.insert(a, 64, 1).unwrap();
        assert_eq!(t6.lookup(&b), Some((64, 1)));
        assert_eq!(t6.lookup(&a), Some((128, 9)));
        // The /64 ends in the level at depth 6: the /128 is a tail there.
        assert_eq!(t6.level_count(), 6);
        check(&t6);
        assert_eq!(t6.remove(a, 128), Some(9));
        assert_eq!(t6.lookup(&a), Some((64, 1)));
        assert_eq!(t6.level_count(), 0);
        assert_eq!(t6.tail_count(), 1);
        check(&t6);
    }

    /// 100 000 IPv6 host routes in a bounded amount of memory: at most one
    /// 1 KiB level per route beyond the first (every level splits two
    /// routes), never the 14 levels per lone /128 of an uncompressed trie
    /// (about 1.4 GB here).
    #[test]
    fn host_routes_v6_memory_bounded() {
        const R: usize = 100_000;
        let per_route_bound = |t: &Mtrie6<u32>| {
            // First level, then a level, a slot, a tail and a map entry
            // per route, plus the arena's one spare chunk.
            ROOT_LEN * 4 + R * (1024 + 24 + 8 + 64) + 2 * CHUNK * (1024 + 8) >= t.memory_bytes()
        };
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Random hosts of 2001:db8::/32: isolated below the first bytes.
        let mut t = Mtrie6::new();
        let mut keys = Vec::new();
        for i in 0..R as u32 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[4..12].copy_from_slice(&next().to_be_bytes());
            a[12..].copy_from_slice(&(next() as u32).to_be_bytes());
            t.insert(a, 128, i).unwrap();
            keys.push(a);
        }
        assert!(t.level_count() < R, "{} levels", t.level_count());
        assert!(per_route_bound(&t), "{} bytes", t.memory_bytes());
        assert!(t.memory_bytes() < 48 << 20, "{} bytes", t.memory_bytes());
        for (i, a) in keys.iter().enumerate().step_by(97) {
            assert_eq!(t.lookup(a), Some((128, i as u32)));
        }
        // Consecutive hosts of one /64 (as an IPAM hands them out).
        let mut t = Mtrie6::new();
        for i in 0..R as u32 {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1]);
            a[12..].copy_from_slice(&(i + 1).to_be_bytes());
            t.insert(a, 128, i).unwrap();
        }
        assert!(t.memory_bytes() < 12 << 20, "{} bytes", t.memory_bytes());
        check(&t);
    }

    #[test]
    fn two_halves_stay_a_level() {
        // Two /17s fill the level below 10.0/16: neither is the other's
        // fallback, or removing that one would find no trie path.
        let mut t = Mtrie4::new();
        t.insert(v4(10, 0, 0, 0), 17, 1u32).unwrap();
        t.insert(v4(10, 0, 128, 0), 17, 2).unwrap();
        t.insert(v4(10, 0, 1, 1), 32, 3).unwrap();
        assert_eq!(t.remove(v4(10, 0, 1, 1), 32), Some(3));
        check(&t);
        assert_eq!(t.remove(v4(10, 0, 0, 0), 17), Some(1));
        assert_eq!(t.lookup(&v4(10, 0, 1, 1)), None);
        assert_eq!(t.lookup(&v4(10, 0, 200, 1)), Some((17, 2)));
        check(&t);
    }

    #[test]
    fn stride_boundaries() {
        let mut t = Mtrie4::new();
        let mut reference = BTreeMap::new();
        let base = v4(172, 17, 0xff, 0xff);
        for (i, plen) in [15u8, 16, 17, 23, 24, 25, 31, 32, 8, 1]
            .into_iter()
            .enumerate()
        {
            // Insert in an order that mixes short and long.
            t.insert(base, plen, i as u32).unwrap();
            reference.insert((mask(base, plen), plen), i as u32);
            check(&t);
            check_lookups(&t, &reference, &[]);
        }
        // Remove in another order, checking each step.
        for plen in [24u8, 1, 32, 16, 25, 8, 17, 31, 15, 23] {
            assert_eq!(
                t.remove(base, plen),
                reference.remove(&(mask(base, plen), plen))
            );
            check(&t);
            check_lookups(&t, &reference, &[base]);
        }
        assert!(t.is_empty());
        assert_eq!(t.memory_bytes(), 0);
    }

    #[test]
    fn less_specific_does_not_overwrite() {
        let mut t = Mtrie4::new();
        t.insert(v4(10, 1, 1, 0), 24, 24u32).unwrap();
        t.insert(v4(10, 1, 0, 0), 16, 16).unwrap();
        t.insert(v4(10, 0, 0, 0), 8, 8).unwrap();
        assert_eq!(t.lookup(&v4(10, 1, 1, 9)), Some((24, 24)));
        assert_eq!(t.lookup(&v4(10, 1, 2, 9)), Some((16, 16)));
        assert_eq!(t.lookup(&v4(10, 2, 2, 9)), Some((8, 8)));
        check(&t);
    }

    #[test]
    fn replace_keeps_trie() {
        let mut t = Mtrie4::new();
        t.insert(v4(10, 1, 1, 0), 24, 1u32).unwrap();
        let levels = t.level_count();
        assert_eq!(t.insert(v4(10, 1, 1, 0), 24, 2), Ok(Some(1)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.level_count(), levels);
        assert_eq!(t.lookup(&v4(10, 1, 1, 5)), Some((24, 2)));
        check(&t);
    }

    #[test]
    fn host_bits_masked() {
        let mut t = Mtrie4::new();
        t.insert(v4(10, 1, 1, 77), 24, 1u32).unwrap();
        assert_eq!(t.get(v4(10, 1, 1, 0), 24), Some(1));
        assert_eq!(t.get(v4(10, 1, 1, 200), 24), Some(1));
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(v4(10, 1, 1, 0), 24, 1)]);
        assert_eq!(t.insert(v4(10, 1, 1, 1), 24, 2), Ok(Some(1)));
        assert_eq!(t.remove(v4(10, 1, 1, 99), 24), Some(2));
        assert!(t.is_empty());
    }

    #[test]
    fn invalid_prefix_len() {
        let mut t = Mtrie4::new();
        assert_eq!(
            t.insert([0; 4], 33, 1u32),
            Err(MtrieError::InvalidPrefixLen)
        );
        assert_eq!(t.get([0; 4], 33), None);
        assert_eq!(t.remove([0; 4], 33), None);
        assert_eq!(t.memory_bytes(), 0);
        let mut t6 = Mtrie6::new();
        assert_eq!(
            t6.insert([0; 16], 129, 1u32),
            Err(MtrieError::InvalidPrefixLen)
        );
        assert!(t6.insert([0; 16], 128, 1u32).is_ok());
        assert_eq!(
            MtrieError::InvalidPrefixLen.to_string(),
            "prefix length longer than the address"
        );
    }

    #[test]
    fn remove_restores_cover() {
        let mut t = Mtrie4::new();
        t.insert(v4(10, 0, 0, 0), 8, 8u32).unwrap();
        t.insert(v4(10, 1, 0, 0), 16, 16).unwrap();
        t.insert(v4(10, 1, 1, 0), 24, 24).unwrap();
        t.insert(v4(10, 1, 1, 1), 32, 32).unwrap();
        assert_eq!(t.remove(v4(10, 1, 1, 0), 24), Some(24));
        assert_eq!(t.lookup(&v4(10, 1, 1, 2)), Some((16, 16)));
        assert_eq!(t.lookup(&v4(10, 1, 1, 1)), Some((32, 32)));
        assert_eq!(t.remove(v4(10, 1, 0, 0), 16), Some(16));
        assert_eq!(t.lookup(&v4(10, 1, 1, 2)), Some((8, 8)));
        assert_eq!(t.lookup(&v4(10, 1, 1, 1)), Some((32, 32)));
        check(&t);
        assert_eq!(t.remove(v4(10, 1, 1, 1), 32), Some(32));
        assert_eq!(t.lookup(&v4(10, 1, 1, 1)), Some((8, 8)));
        assert_eq!(t.level_count(), 0);
        check(&t);
    }

    #[test]
    fn remove_missing() {
        let mut t = Mtrie4::new();
        assert_eq!(t.remove(v4(10, 0, 0, 0), 8), None);
        t.insert(v4(10, 0, 0, 0), 8, 1u32).unwrap();
        assert_eq!(t.remove(v4(10, 0, 0, 0), 9), None);
        assert_eq!(t.remove(v4(11, 0, 0, 0), 8), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&v4(10, 9, 9, 9)), Some((8, 1)));
        check(&t);
    }

    #[test]
    fn frees_all_levels() {
        let mut t = Mtrie4::new();
        let vec_bytes = |t: &Mtrie4<u32>| {
            t.routes.capacity() * core::mem::size_of::<Slot<u32, 4>>()
                + t.tails.capacity() * core::mem::size_of::<Tail>()
                + (t.free.capacity() + t.free_tails.capacity() + t.dead.capacity()) * 4
        };
        t.insert(v4(0, 0, 0, 0), 0, 0u32).unwrap();
        let baseline = t.memory_bytes();
        let baseline_vecs = vec_bytes(&t);
        let mut x = 0x1234_5678u32;
        let mut added = Vec::new();
        for i in 0..5000u32 {
            // xorshift: deterministic spread over the address space.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let plen = 17 + (x % 16) as u8;
            // Within a /12, so routes share levels (lone ones are tails).
            let a = (0x0a00_0000 | (x & 0x000f_ffff)).to_be_bytes();
            t.insert(a, plen, i).unwrap();
            added.push((a, plen));
        }
        // Many chunks of levels, and tails.
        assert!(t.level_count() > 8 * CHUNK && t.tail_count() > 1000);
        check(&t);
        for (i, (a, l)) in added.into_iter().enumerate() {
            t.remove(a, l);
            // Removal renumbers levels: verify the back-pointers now and then.
            if i % 1000 == 999 {
                check(&t);
            }
        }
        assert_eq!(t.len(), 1);
        assert_eq!(t.level_count(), 0);
        assert_eq!(t.tail_count(), 0);
        check(&t);
        // Only the slot and scratch vectors keep their high-water mark.
        assert_eq!(t.chunks.capacity(), 0);
        assert_eq!(t.memory_bytes() - vec_bytes(&t), baseline - baseline_vecs);
        t.remove([0; 4], 0);
        assert_eq!(t.memory_bytes(), 0);
        assert_eq!(t.memory_bytes(), Mtrie4::<u32>::new().memory_bytes());
    }

    #[test]
    fn churn_does_not_grow() {
        let mut t = Mtrie6::new();
        let a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        t.insert([0; 16], 0, 0u32).unwrap();
        for i in 0..1000u32 {
            let mut b = a;
            b[15] = i as u8;
            t.insert(b, 128, i).unwrap();
            t.remove(b, 128);
        }
        assert_eq!(t.level_count(), 0);
        assert_eq!(t.routes.len(), 2);
        check(&t);
    }

    #[test]
    fn iter_ordered_and_resumable() {
        let mut t = Mtrie4::new();
        let prefixes = [
            (v4(10, 0, 0, 0), 8),
            (v4(10, 0, 0, 0), 16),
            (v4(10, 0, 0, 0), 24),
            (v4(10, 0, 0, 1), 32),
            (v4(0, 0, 0, 0), 0),
            (v4(192, 168, 0, 0), 16),
        ];
        for (i, (a, l)) in prefixes.iter().enumerate() {
            t.insert(*a, *l, i as u32).unwrap();
        }
        let all: Vec<_> = t.iter().collect();
        assert_eq!(all.len(), prefixes.len());
        assert!(all.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        assert_eq!(all[0], (v4(0, 0, 0, 0), 0, 4));
        // Page through two at a time.
        let mut pages = Vec::new();
        let mut marker = None;
        loop {
            let page: Vec<_> = t.iter_from(marker).take(2).collect();
            let Some(last) = page.last() else { break };
            marker = Some((last.0, last.1));
            pages.extend(page);
        }
        assert_eq!(pages, all);
        // A marker that is not installed resumes at the next prefix.
        let next: Vec<_> = t.iter_from(Some((v4(10, 0, 0, 0), 12))).collect();
        assert_eq!(next, all[2..].to_vec());
        assert_eq!(t.iter_from(Some((v4(255, 255, 255, 255), 32))).count(), 0);
        // Removing the marker between pages still resumes after it.
        t.remove(v4(10, 0, 0, 0), 16);
        let rest: Vec<_> = t.iter_from(Some((v4(10, 0, 0, 0), 16))).collect();
        assert_eq!(rest, all[3..].to_vec());
    }

    #[test]
    fn clear_frees() {
        let mut t = Mtrie6::new();
        t.insert([1; 16], 100, 1u32).unwrap();
        assert!(t.memory_bytes() > 0);
        t.clear();
        assert_eq!(t.memory_bytes(), 0);
        assert_eq!(t.lookup(&[1; 16]), None);
        assert!(t.is_empty());
        t.insert([1; 16], 100, 2u32).unwrap();
        assert_eq!(t.lookup(&[1; 16]), Some((100, 2)));
        check(&t);
    }

    #[test]
    fn short_prefix_over_many_levels() {
        let mut t = Mtrie4::new();
        let mut reference = BTreeMap::new();
        for i in 0..200u32 {
            let a = (i.wrapping_mul(0x9e37_79b9) | 0x8000_0000).to_be_bytes();
            t.insert(a, 28, i).unwrap();
            reference.insert((mask(a, 28), 28), i);
        }
        t.insert(v4(128, 0, 0, 0), 1, 1000).unwrap();
        reference.insert((v4(128, 0, 0, 0), 1), 1000);
        check(&t);
        check_lookups(&t, &reference, &[v4(200, 0, 0, 0), v4(127, 255, 255, 255)]);
        t.remove(v4(128, 0, 0, 0), 1);
        reference.remove(&(v4(128, 0, 0, 0), 1));
        check(&t);
        check_lookups(&t, &reference, &[v4(200, 0, 0, 0)]);
    }

    /// LPM by probing the exact-match map at every length.
    fn probe_lpm<const N: usize>(t: &Mtrie<u32, N>, addr: &[u8; N]) -> Option<(u8, u32)> {
        (0..=(8 * N) as u8)
            .rev()
            .find_map(|l| t.get(*addr, l).map(|v| (l, v)))
    }

    #[test]
    fn bulk_random_v4() {
        let mut t = Mtrie4::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut keys = Vec::new();
        for i in 0..20_000u32 {
            let r = next();
            let a = ((r >> 32) as u32 & 0xff0f_ffff).to_be_bytes();
            let l = (r % 33) as u8;
            t.insert(a, l, i).unwrap();
            keys.push((a, l));
        }
        for (a, l) in keys.iter().step_by(3) {
            t.remove(*a, *l);
        }
        check(&t);
        for _ in 0..20_000 {
            let a = ((next() >> 32) as u32 & 0xff0f_ffff).to_be_bytes();
            assert_eq!(t.lookup(&a), probe_lpm(&t, &a), "{a:?}");
        }
    }

    // ---- property tests against the naive scan ----

    #[derive(Clone, Debug)]
    enum Step<const N: usize> {
        Insert([u8; N], u8, u32),
        Remove([u8; N], u8),
    }

    fn run<const N: usize>(steps: &[Step<N>], probes: &[[u8; N]]) -> Result<(), TestCaseError> {
        let mut t = Mtrie::<u32, N>::new();
        let mut reference = BTreeMap::new();
        for step in steps {
            match *step {
                Step::Insert(a, l, v) => {
                    let want = reference.insert((mask(a, l), l), v);
                    prop_assert_eq!(t.insert(a, l, v), Ok(want));
                }
                Step::Remove(a, l) => {
                    let want = reference.remove(&(mask(a, l), l));
                    prop_assert_eq!(t.remove(a, l), want);
                }
            }
            for p in probes {
                prop_assert_eq!(t.lookup(p), naive(&reference, p));
            }
        }
        check(&t);
        check_lookups(&t, &reference, probes);
        let got: Vec<_> = t.iter().collect();
        let want: Vec<_> = reference.iter().map(|((a, l), v)| (*a, *l, *v)).collect();
        prop_assert_eq!(got, want);
        for ((a, l), v) in &reference {
            prop_assert_eq!(t.get(*a, *l), Some(*v));
        }
        // Remove every other prefix, then everything.
        let keys: Vec<_> = reference.keys().copied().collect();
        for (a, l) in keys.iter().step_by(2).rev() {
            prop_assert!(t.remove(*a, *l).is_some());
            reference.remove(&(*a, *l));
        }
        check(&t);
        check_lookups(&t, &reference, probes);
        t.clear();
        prop_assert_eq!(t.memory_bytes(), 0);
        Ok(())
    }

    fn plen4() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![0u8, 1, 8, 15, 16, 17, 23, 24, 25, 31, 32]),
            0..=32u8
        ]
    }

    fn addr4() -> impl Strategy<Value = [u8; 4]> {
        // Mostly inside two /15s so prefixes overlap and share levels.
        prop_oneof![
            3 => (0u32..0x2_0000).prop_map(|x| (0x0a00_0000 | x).to_be_bytes()),
            2 => (0u32..0x2_0000).prop_map(|x| (0xc0a8_0000 ^ x).to_be_bytes()),
            1 => any::<[u8; 4]>(),
        ]
    }

    fn step4() -> impl Strategy<Value = Step<4>> {
        prop_oneof![
            3 => (addr4(), plen4(), any::<u32>()).prop_map(|(a, l, v)| Step::Insert(a, l, v)),
            2 => (addr4(), plen4()).prop_map(|(a, l)| Step::Remove(a, l)),
        ]
    }

    const BASES6: [[u8; 16]; 3] = [
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0, 0, 0, 0xab, 0, 0, 0,
        ],
        [
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
        ],
    ];

    fn addr6() -> impl Strategy<Value = [u8; 16]> {
        // A base address with everything after a random byte replaced:
        // prefixes share paths of random depth.
        (
            0..BASES6.len(),
            0..=16usize,
            any::<[u8; 16]>(),
            any::<bool>(),
        )
            .prop_map(|(b, keep, tail, flip)| {
                let mut a = BASES6[b];
                a[keep..].copy_from_slice(&tail[keep..]);
                if flip && keep < 16 {
                    // Often differ only in the low bits of one byte.
                    a[keep] = BASES6[b][keep] ^ (tail[0] & 0x0f);
                }
                a
            })
    }

    fn plen6() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![0u8, 1, 15, 16, 17, 23, 24, 25, 48, 64, 120, 127, 128]),
            0..=128u8
        ]
    }

    fn step6() -> impl Strategy<Value = Step<16>> {
        prop_oneof![
            3 => (addr6(), plen6(), any::<u32>()).prop_map(|(a, l, v)| Step::Insert(a, l, v)),
            2 => (addr6(), plen6()).prop_map(|(a, l)| Step::Remove(a, l)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn prop_lookup_matches_naive_v4(
            steps in prop::collection::vec(step4(), 1..80),
            probes in prop::collection::vec(addr4(), 0..16),
        ) {
            run(&steps, &probes)?;
        }

        #[test]
        fn prop_lookup_matches_naive_v6(
            steps in prop::collection::vec(step6(), 1..80),
            probes in prop::collection::vec(addr6(), 0..16),
        ) {
            run(&steps, &probes)?;
        }
    }
}
