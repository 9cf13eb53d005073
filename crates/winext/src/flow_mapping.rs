//! The flow table's shared-memory layout, written by the kernel extension.
//!
//! The agent maps the table with `channels::FlowShm::open` (on Windows
//! `OpenFileMappingW`), so the extension lays it out exactly as
//! `channels::flow_shm` documents, which is upstream's layout: the records
//! mapping holds `entries + oflow` 256-byte `vr_flow_entry` records from
//! offset 0 and nothing else (`ftable_size / 256` entries, as upstream's
//! agent derives it), and a one-page companion `<name>.meta` holds what only
//! we need (magic `VRFT`, layout version, entry size, offset of the first
//! record (0), hash entries, overflow entries, creator id, generation).
//! `channels` is a `std` crate (tokio), so this `no_std` twin writes the
//! same companion; the test `flow_mapping_is_what_channels_opens` maps
//! regions written here with `channels::FlowShm::open` and reads entries
//! back, so the two cannot drift apart silently.
//!
//! The records are dp-core's [`FlowEntry`] as they are; this module never
//! looks inside one (their layout belongs to `dp_core::flow`).

use core::sync::atomic::{fence, Ordering};

use dp_core::flow::table::{FlowEntry, FlowTable, FlowTableError, FLOW_BUCKET_SIZE};

/// First bytes of the companion page.
pub const MAGIC: [u8; 4] = *b"VRFT";
/// Version of the companion and record layout (`channels::flow_shm::LAYOUT_VERSION`).
pub const LAYOUT_VERSION: u32 = 2;
/// Size of the companion mapping.
pub const META_SIZE: usize = 4096;
/// Offset of the first record in the records mapping (none before it).
pub const RECORDS_AT: usize = 0;
/// Bytes per record.
pub const ENTRY_SIZE: usize = core::mem::size_of::<FlowEntry>();

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_ENTRY_SIZE: usize = 8;
const OFF_RECORDS_AT: usize = 12;
const OFF_ENTRIES: usize = 16;
const OFF_OFLOW: usize = 20;
const OFF_PID: usize = 24;
const OFF_GENERATION: usize = 32;

/// Bytes the records mapping of `entries` hash slots and `oflow` overflow
/// records needs, or `None` if the sizes are invalid (as `FlowTable`
/// checks them).
pub fn mapping_len(entries: u32, oflow: u32) -> Option<usize> {
    if entries == 0 || !entries.is_multiple_of(FLOW_BUCKET_SIZE) {
        return None;
    }
    let total = u64::from(entries) + u64::from(oflow);
    if total > i32::MAX as u64 {
        return None;
    }
    usize::try_from(total).ok()?.checked_mul(ENTRY_SIZE)
}

fn put32(base: *mut u8, off: usize, v: u32) {
    // SAFETY: callers pass an OFF_* constant inside the companion page
    // `create_table` checked; 4-aligned in a page-aligned region.
    unsafe { base.add(off).cast::<u32>().write_volatile(v) }
}

fn put64(base: *mut u8, off: usize, v: u64) {
    // SAFETY: as `put32`, 8-aligned.
    unsafe { base.add(off).cast::<u64>().write_volatile(v) }
}

/// Why a table could not be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingError {
    /// The records region is smaller than [`mapping_len`], or the
    /// companion smaller than [`META_SIZE`].
    TooSmall,
    /// A region is not page (4096) aligned.
    Misaligned,
    Table(FlowTableError),
}

/// Shared memory regions (base, length) for [`create_table`].
#[derive(Clone, Copy, Debug)]
pub struct Regions {
    pub records: *mut u8,
    pub records_len: usize,
    pub meta: *mut u8,
    pub meta_len: usize,
}

/// Lay out a flow table in `r` and return the datapath's [`FlowTable`] over
/// its records; `keeper` owns both regions (the table drops it last).
///
/// Readers see the magic only after every record and companion field is
/// written (release fence), as `channels::FlowShm::create` does.
///
/// # Safety
///
/// Both regions must be writable memory that stays valid while `keeper`
/// lives, and nothing else in this address space may write them while the
/// returned table lives (other mappings may read them, as the
/// `channels::flow_shm` concurrency contract describes).
pub unsafe fn create_table(
    r: Regions,
    entries: u32,
    oflow: u32,
    creator_id: u32,
    generation: u64,
    keeper: alloc::boxed::Box<dyn core::any::Any + Send + Sync>,
) -> Result<FlowTable, MappingError> {
    let need = mapping_len(entries, oflow).ok_or(MappingError::Table(FlowTableError::BadSize))?;
    if r.records_len < need || r.meta_len < META_SIZE {
        return Err(MappingError::TooSmall);
    }
    for p in [r.records, r.meta] {
        if p.is_null() || !(p as usize).is_multiple_of(META_SIZE) {
            return Err(MappingError::Misaligned);
        }
    }
    let meta = r.meta;
    // Readers must not accept the table while it is rebuilt (an agent may
    // still map a previous load's sections).
    put32(meta, OFF_MAGIC, 0);
    fence(Ordering::Release);
    // SAFETY: the companion is META_SIZE writable bytes (checked).
    unsafe { meta.write_bytes(0, META_SIZE) };
    // SAFETY: the records start page-aligned (so 64-aligned) with `need`
    // writable bytes; the caller gives this table exclusive write access
    // and `keeper` keeps the memory alive. The table initialises every
    // record.
    let table = unsafe { FlowTable::from_raw_kept(r.records.cast(), entries, oflow, keeper) }
        .map_err(MappingError::Table)?;
    put32(meta, OFF_VERSION, LAYOUT_VERSION);
    put32(meta, OFF_ENTRY_SIZE, ENTRY_SIZE as u32);
    put32(meta, OFF_RECORDS_AT, RECORDS_AT as u32);
    put32(meta, OFF_ENTRIES, entries);
    put32(meta, OFF_OFLOW, oflow);
    put32(meta, OFF_PID, creator_id);
    put64(meta, OFF_GENERATION, generation);
    fence(Ordering::Release);
    put32(meta, OFF_MAGIC, u32::from_ne_bytes(MAGIC));
    Ok(table)
}
