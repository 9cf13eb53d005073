//! The flow sections the driver lays out (`winext::flow_mapping`) are what
//! the agent's reader (`channels::FlowShm::open`) accepts: regions written
//! here, in files the agent side maps, opened and read back entry by entry.
//! Linux only (files stand in for the sections: the layout is the same
//! bytes).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use channels::FlowShm;
use dp_core::flow::table::FlowKey;
use winext::flow_mapping::{create_table, mapping_len, MappingError, Regions, META_SIZE};

fn mapped(path: &std::path::Path, len: usize) -> memmap2::MmapMut {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(len as u64).unwrap();
    // SAFETY: a file of ours, mapped once for writing.
    unsafe { memmap2::MmapMut::map_mut(&f).unwrap() }
}

#[test]
fn flow_mapping_is_what_channels_opens() {
    let (entries, oflow) = (1024u32, 64u32);
    let len = mapping_len(entries, oflow).unwrap();
    assert_eq!(len, 1088 * 256, "records only, from offset 0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow");
    let mut records = mapped(&path, len);
    let mut meta = mapped(&channels::flow_shm::meta_name(&path), META_SIZE);
    let r = Regions {
        records: records.as_mut_ptr(),
        records_len: len,
        meta: meta.as_mut_ptr(),
        meta_len: META_SIZE,
    };
    // Too small a region is refused, not overrun.
    for short in [
        Regions {
            records_len: len - 1,
            ..r
        },
        Regions {
            meta_len: META_SIZE - 1,
            ..r
        },
    ] {
        // SAFETY: the regions are as large as `r` says; the table is
        // dropped at once.
        let t = unsafe { create_table(short, entries, oflow, 7, 42, Box::new(())) };
        assert!(matches!(t, Err(MappingError::TooSmall)));
    }
    // SAFETY: as above; the mappings outlive the table (dropped at the end).
    let mut table = unsafe { create_table(r, entries, oflow, 4242, 99, Box::new(())) }.unwrap();
    let key = FlowKey::new_v4(17, 4000, 5001, 12, [198, 18, 0, 3], [198, 18, 0, 4]);
    let (idx, _) = table.insert(&key).unwrap();

    let shm = FlowShm::open(&path).unwrap();
    assert_eq!(shm.entries(), entries);
    assert_eq!(shm.oflow_entries(), oflow);
    assert_eq!(shm.records_len(), len);
    assert_eq!(shm.header().creator_pid, 4242);
    assert_eq!(shm.generation(), 99);
    let e = shm.entry(idx).expect("the entry the table made");
    assert!(e.is_valid());
    assert_eq!(*e.key(), key);
    assert_eq!(shm.iter_valid().count(), 1);
    drop(table);
    drop(records);
    drop(meta);
}
