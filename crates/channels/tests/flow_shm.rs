//! The shared-memory flow table, across two processes.
//!
//! `two_processes` re-runs this test binary as the agent: the child runs
//! only `agent_child`, selected by `--exact` and the `CHANNELS_FLOW_CHILD`
//! variable (without it, `agent_child` does nothing).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use channels::flow_shm::LAYOUT_VERSION;
use channels::{Error, FlowShm};
use common::paths;
use dp_core::flow::table::{FlowEntry, FlowKey, VR_FLOW_ACTION_FORWARD};

const CHILD_ENV: &str = "CHANNELS_FLOW_CHILD";

fn key(i: u32) -> FlowKey {
    FlowKey::new_v4(
        6,
        10_000 + i as u16,
        443,
        i,
        [10, 0, 0, i as u8],
        [10, 1, 0, 1],
    )
}

/// One line per valid flow, as both processes print it.
fn describe(i: u32, e: &FlowEntry) -> String {
    let k = e.key;
    format!(
        "FLOW {i} {}:{}>{}:{} nh={} proto={} act={} active={} pkts={} bytes={} seen={} gen={}",
        k.src_v4().map(|b| b.to_string()).join("."),
        k.sport(),
        k.dst_v4().map(|b| b.to_string()).join("."),
        k.dport(),
        k.nh_id(),
        k.proto,
        e.action,
        e.is_active(),
        e.packets(),
        e.bytes(),
        e.last_seen,
        e.gen_id,
    )
}

/// The agent: map the table and print what it sees.
#[test]
fn agent_child() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let shm = FlowShm::open(&name).expect("agent open");
    let h = shm.header();
    println!(
        "HDR entries={} oflow={} pid={} gen={} version={}",
        h.entries, h.oflow_entries, h.creator_pid, h.generation, h.version
    );
    for (i, e) in shm.iter_valid() {
        println!("{}", describe(i, &e));
    }
    // The agent cannot take the writer's role.
    match shm.into_table() {
        Err(Error::NotCreator { .. }) => println!("NOTCREATOR ok"),
        other => println!("NOTCREATOR wrong: {other:?}"),
    }
}

fn run_agent(name: &str) -> Vec<String> {
    let out = Command::new(std::env::current_exe().expect("own exe"))
        .args(["--exact", "agent_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .expect("spawn agent");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "agent failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest may print "test agent_child ... " in front of the first line.
    stdout
        .lines()
        .filter_map(|l| {
            ["HDR ", "FLOW ", "NOTCREATOR "]
                .iter()
                .find_map(|p| l.find(p))
                .map(|at| l[at..].to_owned())
        })
        .collect()
}

#[test]
fn two_processes() {
    let (_d, p) = paths();
    let name = p.flow_shm.to_str().unwrap().to_owned();
    let shm = FlowShm::create(&name, 64, 16).unwrap();
    let generation = shm.generation();
    let mut table = shm.into_table().unwrap();

    // Flows, some decided, with statistics.
    let mut idx = Vec::new();
    for i in 0..40 {
        let (at, created) = table.insert(&key(i)).unwrap();
        assert!(created);
        idx.push(at);
    }
    for (i, &at) in idx.iter().enumerate() {
        let e = table.get_valid_mut(at).unwrap();
        if i % 3 == 0 {
            e.write_begin();
            e.action = VR_FLOW_ACTION_FORWARD;
            e.set_active();
            e.write_end();
        }
        for _ in 0..i {
            e.add_stats(100 + i as u32);
        }
        e.last_seen = 1000 + i as u32;
    }
    assert!(table.oflow_used() > 0 || table.len() == 40);

    let expect = |table: &channels::SharedFlowTable| -> BTreeSet<String> {
        let mut s: BTreeSet<String> = table.iter_valid().map(|(i, e)| describe(i, e)).collect();
        s.insert(format!(
            "HDR entries=64 oflow=16 pid={} gen={generation} version={LAYOUT_VERSION}",
            std::process::id()
        ));
        s.insert("NOTCREATOR ok".to_owned());
        s
    };

    let seen: BTreeSet<String> = run_agent(&name).into_iter().collect();
    assert_eq!(seen, expect(&table));
    assert_eq!(seen.iter().filter(|l| l.starts_with("FLOW ")).count(), 40);

    // The datapath keeps going: a removal, more traffic; the agent sees it.
    assert!(table.remove(idx[5]));
    for &at in &idx[..10] {
        if let Some(e) = table.get_valid_mut(at) {
            e.add_stats(1_000_000);
            e.last_seen += 60;
        }
    }
    let seen: BTreeSet<String> = run_agent(&name).into_iter().collect();
    assert_eq!(seen, expect(&table));
    assert_eq!(seen.iter().filter(|l| l.starts_with("FLOW ")).count(), 39);

    // Gone with its creator.
    drop(table);
    assert!(matches!(
        FlowShm::open(&name),
        Err(Error::ShmNotFound { .. })
    ));
    assert!(!p.flow_shm.exists());
}

#[test]
fn same_process_reader_and_currency() {
    let (_d, p) = paths();
    let dp = FlowShm::create(&p.flow_shm, 16, 4).unwrap();
    let mut table = dp.into_table().unwrap();
    let (at, _) = table.insert(&key(1)).unwrap();
    table.get_valid_mut(at).unwrap().add_stats(64);

    let agent = FlowShm::open(&p.flow_shm).unwrap();
    assert_eq!(
        (agent.entries(), agent.oflow_entries(), agent.capacity()),
        (16, 4, 20)
    );
    assert_eq!(agent.generation(), table.shm().generation());
    assert!(agent.is_current());
    let e = agent.entry(at).unwrap();
    assert_eq!((e.key, e.packets(), e.bytes()), (key(1), 1, 64));
    assert!(agent.entry(20).is_none());
    assert!(!agent.entry(at ^ 1).unwrap().is_valid());
    assert_eq!(agent.iter_valid().count(), 1);
    assert_eq!(table.shm().entry(at), Some(e));
    assert!((agent.as_mut_ptr().cast::<u8>() as usize).is_multiple_of(64));

    // The datapath restarts: the agent's view is no longer current, a new
    // open is, with a higher generation.
    drop(table);
    let table = FlowShm::create(&p.flow_shm, 16, 4)
        .unwrap()
        .into_table()
        .unwrap();
    assert!(!agent.is_current());
    let again = FlowShm::open(&p.flow_shm).unwrap();
    assert!(again.is_current());
    assert!(again.generation() > agent.generation());
    assert_eq!(again.iter_valid().count(), 0);
    drop(table);
}

#[test]
fn open_errors() {
    let (_d, p) = paths();
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmNotFound { .. })
    ));
    assert!(matches!(
        FlowShm::create(&p.flow_shm, 6, 0),
        Err(Error::ShmBadSize { .. })
    ));
    assert!(matches!(
        FlowShm::create(&p.flow_shm, 0, 8),
        Err(Error::ShmBadSize { .. })
    ));

    let dp = FlowShm::create(&p.flow_shm, 8, 0).unwrap();
    // Upstream's layout: the records start at offset 0 of their mapping.
    assert_eq!(dp.records_len(), 8 * 256);
    let header = dp.meta_ptr();
    let poke = |off: usize, bytes: &[u8]| {
        // SAFETY: the companion page is mapped and writable while `dp` lives;
        // the test stands in for a corrupt or foreign creator.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), header.add(off), bytes.len()) }
    };

    poke(0, b"XXXX");
    match FlowShm::open(&p.flow_shm) {
        Err(e @ Error::ShmBadMagic { found, .. }) => {
            assert_eq!(&found, b"XXXX");
            assert!(e.to_string().contains("bad magic"), "{e}");
        }
        other => panic!("want ShmBadMagic, got {other:?}"),
    }
    poke(0, b"VRFT");
    poke(4, &99u32.to_ne_bytes());
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmBadLayout {
            field: "layout version",
            found: 99,
            ..
        })
    ));
    poke(4, &LAYOUT_VERSION.to_ne_bytes());
    poke(8, &64u32.to_ne_bytes());
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmBadLayout {
            field: "entry size",
            found: 64,
            expected: 256,
            ..
        })
    ));
    poke(8, &256u32.to_ne_bytes());
    poke(12, &4096u32.to_ne_bytes());
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmBadLayout {
            field: "records offset",
            found: 4096,
            expected: 0,
            ..
        })
    ));
    poke(12, &0u32.to_ne_bytes());
    // More entries than the mapping holds.
    poke(16, &4096u32.to_ne_bytes());
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmTooSmall { .. })
    ));
    poke(16, &8u32.to_ne_bytes());
    FlowShm::open(&p.flow_shm).unwrap();
}

/// A Linux flow file: permissions, short files, cleanup.
#[cfg(unix)]
#[test]
fn unix_flow_file() {
    use channels::flow_shm::{meta_name, ENTRY_SIZE, META_SIZE};
    use std::os::unix::fs::PermissionsExt;
    let (d, _) = paths();
    let p = channels::ChannelPaths::new(d.path().join("shm/dir"));
    let dp = FlowShm::create(&p.flow_shm, 4, 4).unwrap();
    // The records file is exactly the records, as upstream's agent sizes
    // it (`ftable_size / sizeof(vr_flow_entry)`); the header is beside it.
    let meta = std::fs::metadata(&p.flow_shm).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), (8 * ENTRY_SIZE) as u64);
    let mname = meta_name(&p.flow_shm);
    let m = std::fs::metadata(&mname).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(m.len(), META_SIZE as u64);
    // Only the final files: the temporaries were renamed.
    assert_eq!(
        std::fs::read_dir(p.flow_shm.parent().unwrap())
            .unwrap()
            .count(),
        2
    );
    drop(dp);
    assert!(!p.flow_shm.exists() && !mname.exists());

    std::fs::write(&p.flow_shm, vec![0u8; 8 * ENTRY_SIZE]).unwrap();
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmNotFound { .. })
    ));
    std::fs::write(&mname, [0u8; 100]).unwrap();
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmTooSmall { have: 100, .. })
    ));
    std::fs::write(&mname, vec![0u8; 8192]).unwrap();
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmBadMagic {
            found: [0, 0, 0, 0],
            ..
        })
    ));
}

/// Windows keeps a mapping alive while the agent holds it; a restarted
/// datapath reuses it if it is large enough.
#[cfg(windows)]
#[test]
fn windows_mapping_reuse() {
    let (_d, p) = paths();
    let first = FlowShm::create(&p.flow_shm, 8, 0).unwrap();
    let agent = FlowShm::open(&p.flow_shm).unwrap();
    drop(first);
    assert!(matches!(
        FlowShm::create(&p.flow_shm, 4096, 0),
        Err(Error::ShmTooSmall { .. })
    ));
    let second = FlowShm::create(&p.flow_shm, 8, 0).unwrap();
    assert_eq!(agent.live_generation(), second.generation());
    assert!(!agent.is_current());
    drop(agent);
    drop(second);
    assert!(matches!(
        FlowShm::open(&p.flow_shm),
        Err(Error::ShmNotFound { .. })
    ));
}

/// A tmpfs mounted in a temporary directory, unmounted on drop.
#[cfg(target_os = "linux")]
struct Tmpfs(tempfile::TempDir);

#[cfg(target_os = "linux")]
impl Tmpfs {
    fn mount(huge: &str) -> Result<Self, String> {
        let d = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("huge={huge},mode=0700")])
            .arg("vrouter-rs-test")
            .arg(d.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(d))
    }
}

#[cfg(target_os = "linux")]
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The table lands on 2 MiB pages on a tmpfs mounted `huge=within_size`,
/// and on one mounted `huge=advise` because the mapping asks for them; on
/// `huge=never` (`/dev/shm`'s default) it stays on 4 KiB pages, and
/// `huge_page_bytes` tells them apart (the vrouter logs it).
#[cfg(target_os = "linux")]
#[test]
fn linux_flow_file_on_huge_pages() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED linux_flow_file_on_huge_pages: mounting a tmpfs needs root");
        return;
    }
    // 65 536 + 1 024 records of 256 bytes: 16.25 MiB, 8 whole 2 MiB pages.
    let (entries, oflow) = (65_536, 1_024);
    for (huge, expect_huge) in [("within_size", true), ("advise", true), ("never", false)] {
        let fs = match Tmpfs::mount(huge) {
            Ok(fs) => fs,
            Err(e) if huge != "never" && e.contains("huge") => {
                println!("SKIPPED linux_flow_file_on_huge_pages (huge={huge}): kernel without huge tmpfs: {e}");
                continue;
            }
            Err(e) => panic!("mount tmpfs huge={huge}: {e}"),
        };
        let name = fs.0.path().join("flow");
        let dp = FlowShm::create(&name, entries, oflow).unwrap();
        let agent = FlowShm::open(&name).unwrap();
        // smaps counts what is mapped in: read one record per 2 MiB.
        for i in (0..entries + oflow).step_by(8192) {
            assert!(agent.entry(i).is_some());
        }
        let (d, a) = (dp.huge_page_bytes(), agent.huge_page_bytes());
        if expect_huge {
            // The creator wrote every record; the agent's mapping shares
            // the same pages.
            assert!(d >= Some(16 << 20), "huge={huge}: datapath {d:?}");
            assert!(a >= Some(16 << 20), "huge={huge}: agent {a:?}");
        } else {
            assert_eq!((d, a), (Some(0), Some(0)), "huge={huge}");
        }
        drop((dp, agent));
    }
}
