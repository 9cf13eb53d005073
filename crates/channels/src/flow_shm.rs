//! The flow table in shared memory.
//!
//! The datapath creates the mapping and runs its [`FlowTable`] over it
//! ([`FlowShm::create`], then [`FlowShm::into_table`]); the agent maps the
//! same memory ([`FlowShm::open`]) to read flow state and statistics for
//! aging, like upstream's agent `mmap`s the kernel module's flow table.
//!
//! # Layout: upstream's
//!
//! The mapping `name` holds the records and nothing else: `entries +
//! oflow_entries` [`FlowEntry`] records of 256 bytes from offset 0, hash
//! part first (layout in [`dp_core::flow::layout`], upstream's `struct
//! vr_flow_entry` byte for byte). That is what upstream's agent maps: it
//! asks ksync for `vr_flow_table_data` (`ftable_file_path`, `ftable_size`),
//! maps `ftable_size` bytes of that file from offset 0 and takes `size /
//! sizeof(vr_flow_entry)` as the number of entries; the vrouter host
//! reports exactly this file and size. Upstream's `flow` tool does the same.
//!
//! What only we need (the split between hash part and overflow area, who
//! made the table and when) lives beside it, in a one-page companion
//! mapping `<name>.meta` ([`meta_name`]), host byte order:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `VRFT` |
//! | 4 | 4 | layout version ([`LAYOUT_VERSION`]) |
//! | 8 | 4 | entry size (256) |
//! | 12 | 4 | offset of the first record in the records mapping (0) |
//! | 16 | 4 | `entries` (hash part, a non-zero multiple of 4) |
//! | 20 | 4 | `oflow_entries` |
//! | 24 | 4 | creator's process id |
//! | 28 | 4 | reserved, zero |
//! | 32 | 8 | generation |
//! | 40 | 4056 | zero |
//!
//! The creator initialises the records, then writes the companion with the
//! magic last, after a release fence, so a reader never accepts a
//! half-initialised table. The generation changes on every create (the
//! creation time in nanoseconds, raised above the previous table's
//! generation if one is still there), so an agent can tell that the
//! datapath restarted: [`FlowShm::is_current`].
//!
//! # Windows
//!
//! Upstream's Windows driver (`Juniper/contrail-vrouter`, `windows/`,
//! before 2019-08-22) exposed the table as a device, `\\.\vrouterFlow`
//! (`\Device\vrouterFlow`): the agent opened it and got the kernel's
//! table mapped into its address space, the address returned by an IOCTL;
//! the bridge table likewise as `\\.\vrouterBridge`. Ours is a named file
//! mapping that the datapath creates and the agent opens by name, with the
//! same 256-byte records from offset 0. A kernel-mode datapath (the Hyper-V
//! switch extension) may expose its table either way; whichever it picks,
//! this module's API ([`FlowShm::create`], [`FlowShm::open`], [`FlowShm::entry`],
//! [`FlowShm::is_current`], [`FlowShm::into_flow_table`]) is what the agent
//! and the datapath host use, so only `sys::windows::shm` changes. Serving
//! upstream's `\\.\vrouterFlow` device too would let an unchanged upstream
//! Windows agent map our table; that is the kernel extension's call.
//!
//! # Concurrency contract
//!
//! As in [`dp_core::flow::table`]:
//!
//! * The datapath is the **only writer** of every byte, header included.
//!   The agent maps the table read-write (as upstream's agent does) but
//!   changes flows only by sending ksync `vr_flow_req` messages that the
//!   datapath applies.
//! * The agent copies an entry with [`FlowShm::entry`], which uses
//!   [`read_stable`]: the copy is accepted only if the entry's write
//!   sequence was even and unchanged and its generation and ACTIVE flag did
//!   not change meanwhile. Statistics, TCP state and `last_seen` are updated
//!   per packet without that bracket and may be read torn, as upstream's
//!   agent may.
//! * A new entry is VALID with action HOLD; the datapath makes it ACTIVE
//!   when it applies the agent's FLOW_SET (fields first, then the flag,
//!   release-fenced). A removed entry's `gen_id` survives and is bumped by
//!   the next insert, so an index the agent held across a delete shows up as
//!   stale.
//!
//! # Lifetime
//!
//! * **Linux**: files (default `/dev/shm/vrouter-rs/flow` and
//!   `flow.meta`, or `flow` under the socket directory), mode `0600`, each
//!   built under a temporary name and renamed into place (records first,
//!   then the companion), mapped with `memmap2`. The creator removes them
//!   when its [`FlowShm`] drops (unless another creator replaced them
//!   since); an agent's mapping stays valid until the agent unmaps it, it
//!   just is no longer current.
//! * **Windows**: pagefile-backed named file mappings (default
//!   `Local\vrouterFlowTable` and `Local\vrouterFlowTable.meta`) with
//!   [`crate::WINDOWS_SDDL`]. `Local\` is the creator's session namespace,
//!   which services (session 0) share; a name in `Global\` is visible to
//!   every session but creating it needs `SeCreateGlobalPrivilege`
//!   (services running as SYSTEM have it, an interactive administrator's
//!   process may not). A mapping lives while any process has it open: if
//!   the agent still holds the previous table when the datapath restarts,
//!   the datapath reinitialises that same memory (it must be at least as
//!   large) with a higher generation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};

use dp_core::flow::table::{
    read_activity, read_stable, FlowActivity, FlowEntry, FlowTable, FlowTableError,
    FLOW_BUCKET_SIZE,
};

use crate::error::{AsDisplay, Error, Result};
use crate::sys;

/// First bytes of the companion page.
pub const MAGIC: [u8; 4] = *b"VRFT";
/// Version of the companion page and record layout (2: upstream's 256-byte
/// records from offset 0, the header in the companion).
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes before the first record: none, as upstream.
pub const HEADER_SIZE: usize = 0;
/// Size of the companion mapping `<name>.meta`.
pub const META_SIZE: usize = 4096;
/// Bytes per record (upstream `sizeof(struct vr_flow_entry)`).
pub const ENTRY_SIZE: usize = core::mem::size_of::<FlowEntry>();
/// Attempts [`FlowShm::entry`] makes to get a consistent copy.
pub const READ_TRIES: u32 = 64;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_ENTRY_SIZE: usize = 8;
const OFF_RECORDS_AT: usize = 12;
const OFF_ENTRIES: usize = 16;
const OFF_OFLOW: usize = 20;
const OFF_PID: usize = 24;
const OFF_GENERATION: usize = 32;

const _: () = assert!(ENTRY_SIZE == 256);

/// The companion of the records mapping `name`: `name` + `.meta`.
pub fn meta_name(name: &Path) -> PathBuf {
    let mut m = name.as_os_str().to_owned();
    m.push(".meta");
    PathBuf::from(m)
}

/// The header of a flow table mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmHeader {
    pub version: u32,
    pub entries: u32,
    pub oflow_entries: u32,
    pub creator_pid: u32,
    pub generation: u64,
}

/// A mapped flow table: the datapath's (created) or the agent's (opened).
#[derive(Debug)]
pub struct FlowShm {
    /// The records, from offset 0.
    region: sys::shm::Region,
    /// The companion page.
    meta: sys::shm::Region,
    name: PathBuf,
    header: ShmHeader,
    creator: bool,
}

/// `entries + oflow` checked like [`FlowTable`] does (non-zero multiple of
/// 4, total below 2^31): the number of bytes the mapping needs.
fn mapping_len(name: &Path, entries: u32, oflow: u32) -> Result<usize> {
    let bad = |source| Error::ShmBadSize {
        name: name.as_display(),
        entries,
        oflow,
        source,
    };
    if entries == 0 || !entries.is_multiple_of(FLOW_BUCKET_SIZE) {
        return Err(bad(FlowTableError::BadSize));
    }
    let total = u64::from(entries) + u64::from(oflow);
    if total > i32::MAX as u64 {
        return Err(bad(FlowTableError::BadSize));
    }
    usize::try_from(total)
        .ok()
        .and_then(|t| t.checked_mul(ENTRY_SIZE))
        .ok_or(bad(FlowTableError::NoMemory))
}

/// Volatile accessors of the companion page. `base` is the start of a
/// mapping of at least `META_SIZE` bytes, page-aligned.
mod hdr {
    use super::*;

    pub(super) fn read_u32(base: *const u8, off: usize) -> u32 {
        debug_assert!(off + 4 <= META_SIZE && off.is_multiple_of(4));
        // SAFETY: callers pass one of the OFF_* constants, in the page and
        // 4-aligned in a page-aligned mapping of >= META_SIZE.
        unsafe { base.add(off).cast::<u32>().read_volatile() }
    }

    pub(super) fn read_u64(base: *const u8, off: usize) -> u64 {
        debug_assert!(off + 8 <= META_SIZE && off.is_multiple_of(8));
        // SAFETY: as `read_u32`, 8-aligned.
        unsafe { base.add(off).cast::<u64>().read_volatile() }
    }

    pub(super) fn write_u32(base: *mut u8, off: usize, v: u32) {
        debug_assert!(off + 4 <= META_SIZE && off.is_multiple_of(4));
        // SAFETY: as `read_u32`; only the creator writes.
        unsafe { base.add(off).cast::<u32>().write_volatile(v) }
    }

    pub(super) fn write_u64(base: *mut u8, off: usize, v: u64) {
        debug_assert!(off + 8 <= META_SIZE && off.is_multiple_of(8));
        // SAFETY: as `write_u32`, 8-aligned.
        unsafe { base.add(off).cast::<u64>().write_volatile(v) }
    }

    pub(super) fn magic(base: *const u8) -> [u8; 4] {
        read_u32(base, OFF_MAGIC).to_ne_bytes()
    }

    pub(super) fn header(base: *const u8) -> ShmHeader {
        ShmHeader {
            version: read_u32(base, OFF_VERSION),
            entries: read_u32(base, OFF_ENTRIES),
            oflow_entries: read_u32(base, OFF_OFLOW),
            creator_pid: read_u32(base, OFF_PID),
            generation: read_u64(base, OFF_GENERATION),
        }
    }
}

impl FlowShm {
    /// Create the table `name` with `entries` hash slots (a non-zero
    /// multiple of 4) and `oflow_entries` overflow records, every record
    /// free, and its companion `<name>.meta`. For the datapath; see the
    /// module docs for what happens to a previous table of the same name.
    pub fn create(name: impl AsRef<Path>, entries: u32, oflow_entries: u32) -> Result<Self> {
        let name = name.as_ref();
        let len = mapping_len(name, entries, oflow_entries)?;
        let previous = Self::open(name).ok().map(|t| t.live_generation());
        let mname = meta_name(name);
        let mut meta = sys::shm::Region::create(&mname, META_SIZE)?;
        if meta.len() < META_SIZE {
            return Err(Error::ShmTooSmall {
                name: mname.as_display(),
                have: meta.len() as u64,
                need: META_SIZE as u64,
            });
        }
        let mbase = meta.as_ptr();
        // Readers must not accept the table while it is rebuilt (Windows
        // may hand back mappings an agent still uses).
        hdr::write_u32(mbase, OFF_MAGIC, 0);
        fence(Ordering::Release);
        let mut region = sys::shm::Region::create(name, len)?;
        if region.len() < len {
            return Err(Error::ShmTooSmall {
                name: name.as_display(),
                have: region.len() as u64,
                need: len as u64,
            });
        }
        let records = Self::records_ptr(region.as_ptr());
        for i in 0..(entries as usize + oflow_entries as usize) {
            // SAFETY: `mapping_len` checked the region holds every record;
            // records start at the page-aligned offset 0, so each is
            // 64-aligned.
            unsafe { records.add(i).write(FlowEntry::empty_at(i as u32)) };
        }
        // SAFETY: the page is META_SIZE writable bytes, page-aligned, and
        // only this creator writes it.
        unsafe { mbase.write_bytes(0, META_SIZE) };
        let generation = next_generation(previous);
        hdr::write_u32(mbase, OFF_VERSION, LAYOUT_VERSION);
        hdr::write_u32(mbase, OFF_ENTRY_SIZE, ENTRY_SIZE as u32);
        hdr::write_u32(mbase, OFF_RECORDS_AT, HEADER_SIZE as u32);
        hdr::write_u32(mbase, OFF_ENTRIES, entries);
        hdr::write_u32(mbase, OFF_OFLOW, oflow_entries);
        hdr::write_u32(mbase, OFF_PID, std::process::id());
        hdr::write_u64(mbase, OFF_GENERATION, generation);
        // The records and every field above are visible before the magic.
        fence(Ordering::Release);
        hdr::write_u32(mbase, OFF_MAGIC, u32::from_ne_bytes(MAGIC));
        // Records first: a reader that finds the new companion finds the
        // new records.
        region.publish()?;
        meta.publish()?;
        let header = hdr::header(mbase);
        tracing::debug!(name = %name.display(), entries, oflow_entries, generation, "flow table created");
        Ok(Self {
            region,
            meta,
            name: name.to_owned(),
            header,
            creator: true,
        })
    }

    /// Map the existing table `name` and its companion (the agent's side),
    /// checking the companion's header and the records' size.
    pub fn open(name: impl AsRef<Path>) -> Result<Self> {
        let name = name.as_ref();
        let mname = meta_name(name);
        // A datapath restarting between the two opens: try again.
        let mut last = None;
        for _ in 0..3 {
            let (meta, header) = Self::open_meta(&mname)?;
            let need = mapping_len(name, header.entries, header.oflow_entries)?;
            let region = sys::shm::Region::open(name, ENTRY_SIZE)?;
            if hdr::read_u64(meta.as_ptr(), OFF_GENERATION) != header.generation
                || Self::open_meta(&mname).is_ok_and(|(_, h)| h.generation != header.generation)
            {
                last = Some(Error::ShmBadLayout {
                    name: mname.as_display(),
                    field: "generation (the table was being replaced)",
                    found: 0,
                    expected: header.generation,
                });
                continue;
            }
            if region.len() < need {
                return Err(Error::ShmTooSmall {
                    name: name.as_display(),
                    have: region.len() as u64,
                    need: need as u64,
                });
            }
            return Ok(Self {
                region,
                meta,
                name: name.to_owned(),
                header,
                creator: false,
            });
        }
        Err(last.unwrap_or(Error::ShmNotFound {
            name: name.as_display(),
        }))
    }

    /// Map and check the companion page.
    fn open_meta(mname: &Path) -> Result<(sys::shm::Region, ShmHeader)> {
        let meta = sys::shm::Region::open(mname, META_SIZE)?;
        if meta.len() < META_SIZE {
            return Err(Error::ShmTooSmall {
                name: mname.as_display(),
                have: meta.len() as u64,
                need: META_SIZE as u64,
            });
        }
        let base = meta.as_ptr();
        let magic = hdr::magic(base);
        if magic != MAGIC {
            return Err(Error::ShmBadMagic {
                name: mname.as_display(),
                found: magic,
            });
        }
        // The page is complete once the magic is there.
        fence(Ordering::Acquire);
        for (field, off, expected) in [
            ("layout version", OFF_VERSION, LAYOUT_VERSION),
            ("entry size", OFF_ENTRY_SIZE, ENTRY_SIZE as u32),
            ("records offset", OFF_RECORDS_AT, HEADER_SIZE as u32),
        ] {
            let found = hdr::read_u32(base, off);
            if found != expected {
                return Err(Error::ShmBadLayout {
                    name: mname.as_display(),
                    field,
                    found: found.into(),
                    expected: expected.into(),
                });
            }
        }
        let header = hdr::header(base);
        Ok((meta, header))
    }

    fn records_ptr(base: *mut u8) -> *mut FlowEntry {
        base.wrapping_add(HEADER_SIZE).cast()
    }

    /// The first record. Valid for [`Self::capacity`] records while `self`
    /// lives; 64-byte aligned. See [`Self::into_table`] for the safe way to
    /// build the datapath's table over it.
    pub fn as_mut_ptr(&self) -> *mut FlowEntry {
        Self::records_ptr(self.region.as_ptr())
    }

    /// The companion page (see the module docs), for tools and tests that
    /// inspect it. Only the creator writes it.
    pub fn meta_ptr(&self) -> *mut u8 {
        self.meta.as_ptr()
    }

    /// Hash slots.
    pub fn entries(&self) -> u32 {
        self.header.entries
    }

    /// Overflow records.
    pub fn oflow_entries(&self) -> u32 {
        self.header.oflow_entries
    }

    /// All records.
    pub fn capacity(&self) -> u32 {
        self.header.entries + self.header.oflow_entries
    }

    /// The header as read at create / open.
    pub fn header(&self) -> ShmHeader {
        self.header
    }

    /// The generation as read at create / open.
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    /// The generation the mapped companion page holds now.
    pub fn live_generation(&self) -> u64 {
        hdr::read_u64(self.meta.as_ptr(), OFF_GENERATION)
    }

    /// Bytes of records (`capacity * 256`): upstream's `ftable_size`.
    pub fn records_len(&self) -> usize {
        self.capacity() as usize * ENTRY_SIZE
    }

    /// Bytes of the table this process maps with 2 MiB pages (Linux: the
    /// file is on a tmpfs mounted with `huge=within_size`, `always` or
    /// `advise`, or on hugetlbfs); `None` where the platform cannot tell.
    /// Every lookup of a cold flow is a TLB miss on 4 KiB pages.
    pub fn huge_page_bytes(&self) -> Option<u64> {
        self.region.huge_page_bytes()
    }

    /// The name this table was created or opened by.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Whether this mapping is still the datapath's current table: nobody
    /// re-created it (in place on Windows, as a new file on Linux) since.
    /// An agent that gets `false` reopens, and forgets the flow indices it
    /// held.
    pub fn is_current(&self) -> bool {
        self.live_generation() == self.header.generation
            && Self::open(&self.name).is_ok_and(|t| t.header.generation == self.header.generation)
    }

    /// A consistent copy of record `idx` (see the module docs), or `None`
    /// if `idx` is out of range or the datapath kept rewriting the entry
    /// for [`READ_TRIES`] attempts.
    pub fn entry(&self, idx: u32) -> Option<FlowEntry> {
        if idx >= self.capacity() {
            return None;
        }
        // SAFETY: `idx` is in range of the records, which `open`/`create`
        // checked the mapping holds, aligned, and mapped while `self` lives.
        unsafe { read_stable(self.as_mut_ptr().add(idx as usize), READ_TRIES) }
    }

    /// Record `idx`'s [`FlowActivity`] (validity, generation, TCP flags,
    /// packets), checked like [`Self::entry`] but without copying the
    /// record: for sweeps that visit every flow.
    pub fn activity(&self, idx: u32) -> Option<FlowActivity> {
        if idx >= self.capacity() {
            return None;
        }
        // SAFETY: as in `entry`.
        unsafe { read_activity(self.as_mut_ptr().add(idx as usize), READ_TRIES) }
    }

    /// Whether record `idx` looked in use, from its `hentry_flags` alone
    /// (one cache line, no checked copy): a hint for scans of the whole
    /// table, which confirm an entry they keep with [`Self::entry`].
    pub fn is_valid_hint(&self, idx: u32) -> bool {
        if idx >= self.capacity() {
            return false;
        }
        // SAFETY: as in `entry`; a field projection of an in-range record,
        // read volatile (the datapath writes it concurrently).
        let flags = unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!(
                (*self.as_mut_ptr().add(idx as usize)).hentry_flags
            ))
        };
        flags & dp_core::flow::table::VR_HENTRY_FLAG_VALID != 0
    }

    /// Consistent copies of the valid records, in index order.
    pub fn iter_valid(&self) -> impl Iterator<Item = (u32, FlowEntry)> + '_ {
        (0..self.capacity())
            .filter_map(|i| self.entry(i).filter(FlowEntry::is_valid).map(|e| (i, e)))
    }

    /// The datapath's table over this mapping. Only the creator may do
    /// this ([`Error::NotCreator`] otherwise). Every record is (re)set free.
    pub fn into_table(self) -> Result<SharedFlowTable> {
        if !self.creator {
            return Err(Error::NotCreator {
                name: self.name.as_display(),
            });
        }
        let (entries, oflow) = (self.header.entries, self.header.oflow_entries);
        // SAFETY: `FlowTable::from_raw` needs `bytes_for(entries, oflow)`
        // writable bytes at a 64-aligned base that stay valid and that
        // nothing else in this process accesses while the table lives:
        // * `create` checked the mapping holds every record, from its
        //   page-aligned start;
        // * the mapping is owned by `self`, which moves into the returned
        //   `SharedFlowTable` next to the table and is unmapped only when
        //   that drops (after the table: field order);
        // * `SharedFlowTable` hands out the mapping only as `&FlowShm`,
        //   whose accessors are volatile copies (`entry`) or a raw pointer;
        //   other mappings of the same table (this process or another) read
        //   it under the module's concurrency contract.
        let table = unsafe { FlowTable::from_raw(self.as_mut_ptr(), entries, oflow) }.map_err(
            |source| Error::ShmBadSize {
                name: self.name.as_display(),
                entries,
                oflow,
                source,
            },
        )?;
        Ok(SharedFlowTable { table, shm: self })
    }
}

impl FlowShm {
    /// The creator's mapping as a plain [`FlowTable`] that owns the mapping
    /// (through [`FlowTable::from_raw_kept`]): what a datapath host hands
    /// to `dp_core::Router::with_flow_table`. The mapping stays reachable
    /// for read-side accessors through [`FlowTable::keeper`] downcast to
    /// `FlowShm`.
    pub fn into_flow_table(self) -> Result<FlowTable> {
        if !self.creator {
            return Err(Error::NotCreator {
                name: self.name.as_display(),
            });
        }
        let (entries, oflow) = (self.header.entries, self.header.oflow_entries);
        let base = self.as_mut_ptr();
        let name = self.name.as_display();
        // SAFETY: as in `into_table`: `create` checked the mapping holds
        // every record at a page-aligned offset; the mapping moves into the
        // table as its keeper and is unmapped only after the table drops;
        // `FlowTable::keeper` hands it out as `&FlowShm`, whose accessors
        // are volatile copies or a raw pointer.
        unsafe { FlowTable::from_raw_kept(base, entries, oflow, Box::new(self)) }.map_err(
            |source| Error::ShmBadSize {
                name,
                entries,
                oflow,
                source,
            },
        )
    }
}

/// Creation time in ns, above `previous`.
fn next_generation(previous: Option<u64>) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    match previous {
        Some(p) => now.max(p.wrapping_add(1)),
        None => now.max(1),
    }
}

/// The datapath's flow table in shared memory: a [`FlowTable`] (through
/// `Deref`/`DerefMut`) that owns its mapping.
#[derive(Debug)]
pub struct SharedFlowTable {
    // Dropped first: the table must not outlive the mapping.
    table: FlowTable,
    shm: FlowShm,
}

impl SharedFlowTable {
    /// The mapping (header, name, read-side accessors).
    pub fn shm(&self) -> &FlowShm {
        &self.shm
    }
}

impl std::ops::Deref for SharedFlowTable {
    type Target = FlowTable;
    fn deref(&self) -> &FlowTable {
        &self.table
    }
}

impl std::ops::DerefMut for SharedFlowTable {
    fn deref_mut(&mut self) -> &mut FlowTable {
        &mut self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let n = Path::new("t");
        assert_eq!(mapping_len(n, 4, 0).unwrap(), 4 * 256);
        assert_eq!(meta_name(n), Path::new("t.meta"));
        assert!(matches!(
            mapping_len(n, 0, 4),
            Err(Error::ShmBadSize { .. })
        ));
        assert!(matches!(
            mapping_len(n, 6, 4),
            Err(Error::ShmBadSize { .. })
        ));
        assert!(matches!(
            mapping_len(n, 0x7fff_fffc, 4),
            Err(Error::ShmBadSize { .. })
        ));
    }

    #[test]
    fn generations_increase() {
        assert!(next_generation(None) > 0);
        assert_eq!(next_generation(Some(u64::MAX - 1)), u64::MAX);
        let g = next_generation(None);
        assert!(next_generation(Some(g)) > g);
    }
}
