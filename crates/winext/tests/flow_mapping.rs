//! The flow section the driver lays out (`winext::flow_mapping`) is what
//! the agent's reader (`channels::FlowShm::open`) accepts: a region written
//! here, in a file the agent side maps, opened and read back entry by
//! entry. Linux only (a file stands in for the section: the layout is the
//! same bytes).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use channels::FlowShm;
use dp_core::flow::table::FlowKey;
use winext::flow_mapping::{create_table, mapping_len, MappingError};

#[test]
fn flow_mapping_is_what_channels_opens() {
    let (entries, oflow) = (1024u32, 64u32);
    let len = mapping_len(entries, oflow).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(len as u64).unwrap();
    // SAFETY: a file of ours, mapped once for writing.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&f).unwrap() };
    let base = map.as_mut_ptr();
    // Too small a region is refused, not overrun.
    // SAFETY: the region is `len` bytes; the table is dropped at once.
    let short = unsafe { create_table(base, len - 1, entries, oflow, 7, 42, Box::new(())) };
    assert!(matches!(short, Err(MappingError::TooSmall)));
    // SAFETY: as above; the mapping outlives the table (dropped at the end).
    let mut table =
        unsafe { create_table(base, len, entries, oflow, 4242, 99, Box::new(())) }.unwrap();
    let key = FlowKey::new_v4(17, 4000, 5001, 12, [198, 18, 0, 3], [198, 18, 0, 4]);
    let (idx, _) = table.insert(&key).unwrap();

    let shm = FlowShm::open(&path).unwrap();
    assert_eq!(shm.entries(), entries);
    assert_eq!(shm.oflow_entries(), oflow);
    assert_eq!(shm.header().creator_pid, 4242);
    assert_eq!(shm.generation(), 99);
    let e = shm.entry(idx).expect("the entry the table made");
    assert!(e.is_valid());
    assert_eq!(*e.key(), key);
    assert_eq!(shm.iter_valid().count(), 1);
    drop(table);
    drop(map);
}
