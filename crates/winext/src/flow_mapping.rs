//! The flow table's shared-memory layout, written by the kernel extension.
//!
//! The agent maps the table with `channels::FlowShm::open` (on Windows
//! `OpenFileMappingW`), so the extension lays out its section exactly as
//! `channels::flow_shm` documents: a 4096-byte header page (magic `VRFT`,
//! layout version, entry size, header size, hash entries, overflow entries,
//! creator id, generation), then the records. `channels` is a `std` crate
//! (tokio), so this `no_std` twin writes the same header; the harness test
//! `flow_mapping_is_what_channels_opens` maps a region written here with
//! `channels::FlowShm::open` and reads entries back, so the two cannot
//! drift apart silently.
//!
//! The records are dp-core's [`FlowEntry`] as they are; this module never
//! looks inside one (their layout belongs to `dp_core::flow`).

use core::sync::atomic::{fence, Ordering};

use dp_core::flow::table::{FlowEntry, FlowTable, FlowTableError, FLOW_BUCKET_SIZE};

/// First bytes of the header.
pub const MAGIC: [u8; 4] = *b"VRFT";
/// Version of the header and record layout (`channels::flow_shm::LAYOUT_VERSION`).
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes before the first record.
pub const HEADER_SIZE: usize = 4096;
/// Bytes per record.
pub const ENTRY_SIZE: usize = core::mem::size_of::<FlowEntry>();

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 4;
const OFF_ENTRY_SIZE: usize = 8;
const OFF_HEADER_SIZE: usize = 12;
const OFF_ENTRIES: usize = 16;
const OFF_OFLOW: usize = 20;
const OFF_PID: usize = 24;
const OFF_GENERATION: usize = 32;

/// Bytes a mapping of `entries` hash slots and `oflow` overflow records
/// needs, or `None` if the sizes are invalid (as `FlowTable` checks them).
pub fn mapping_len(entries: u32, oflow: u32) -> Option<usize> {
    if entries == 0 || !entries.is_multiple_of(FLOW_BUCKET_SIZE) {
        return None;
    }
    let total = u64::from(entries) + u64::from(oflow);
    if total > i32::MAX as u64 {
        return None;
    }
    usize::try_from(total)
        .ok()?
        .checked_mul(ENTRY_SIZE)?
        .checked_add(HEADER_SIZE)
}

fn put32(base: *mut u8, off: usize, v: u32) {
    // SAFETY: callers pass an OFF_* constant inside the header page of a
    // mapping `create_table` checked; 4-aligned in a page-aligned region.
    unsafe { base.add(off).cast::<u32>().write_volatile(v) }
}

fn put64(base: *mut u8, off: usize, v: u64) {
    // SAFETY: as `put32`, 8-aligned.
    unsafe { base.add(off).cast::<u64>().write_volatile(v) }
}

/// Why a table could not be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingError {
    /// The region is smaller than [`mapping_len`].
    TooSmall,
    /// Not page (4096) aligned.
    Misaligned,
    Table(FlowTableError),
}

/// Lay out a flow table in the region `base..base + len` and return the
/// datapath's [`FlowTable`] over its records; `keeper` owns the region
/// (the table drops it last).
///
/// Readers see the magic only after every record and header field is
/// written (release fence), as `channels::FlowShm::create` does.
///
/// # Safety
///
/// `base..base + len` must be writable memory that stays valid while
/// `keeper` lives, and nothing else in this address space may write it
/// while the returned table lives (other mappings may read it, as the
/// `channels::flow_shm` concurrency contract describes).
pub unsafe fn create_table(
    base: *mut u8,
    len: usize,
    entries: u32,
    oflow: u32,
    creator_id: u32,
    generation: u64,
    keeper: alloc::boxed::Box<dyn core::any::Any + Send + Sync>,
) -> Result<FlowTable, MappingError> {
    let need = mapping_len(entries, oflow).ok_or(MappingError::Table(FlowTableError::BadSize))?;
    if len < need {
        return Err(MappingError::TooSmall);
    }
    if base.is_null() || !(base as usize).is_multiple_of(HEADER_SIZE) {
        return Err(MappingError::Misaligned);
    }
    // Readers must not accept the table while it is rebuilt.
    put32(base, OFF_MAGIC, 0);
    fence(Ordering::Release);
    // SAFETY: `need <= len` bytes are writable, so the header page is.
    unsafe { base.write_bytes(0, HEADER_SIZE) };
    // SAFETY: the records start on a page boundary inside the region
    // (`need` counts them), so they are 64-aligned and writable; the
    // caller gives this table exclusive write access and `keeper` keeps the
    // memory alive.
    let table =
        unsafe { FlowTable::from_raw_kept(base.add(HEADER_SIZE).cast(), entries, oflow, keeper) }
            .map_err(MappingError::Table)?;
    put32(base, OFF_VERSION, LAYOUT_VERSION);
    put32(base, OFF_ENTRY_SIZE, ENTRY_SIZE as u32);
    put32(base, OFF_HEADER_SIZE, HEADER_SIZE as u32);
    put32(base, OFF_ENTRIES, entries);
    put32(base, OFF_OFLOW, oflow);
    put32(base, OFF_PID, creator_id);
    put64(base, OFF_GENERATION, generation);
    fence(Ordering::Release);
    put32(base, OFF_MAGIC, u32::from_ne_bytes(MAGIC));
    Ok(table)
}
