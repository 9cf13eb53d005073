//! The flow table (and its companion page) as `mmap`ed files.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::FileId;
use crate::error::{AsDisplay, Error, Result};

#[derive(Debug)]
pub(crate) struct Region {
    map: MmapMut,
    /// Where the file is now (the temporary name until `publish`).
    path: PathBuf,
    /// The final name.
    name: PathBuf,
    /// Set for the creator: the file to remove on drop.
    owned: Option<FileId>,
}

impl Region {
    /// A new file of `len` zero bytes under a temporary name next to
    /// `name`; [`Self::publish`] renames it into place once initialised, so
    /// a reader never opens a half-built table.
    pub(crate) fn create(name: &Path, len: usize) -> Result<Self> {
        if let Some(dir) = name.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io("create directory", &dir.to_owned(), e))?;
        }
        let mut tmp = name.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove old temporary", &tmp, e)),
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let owned = FileId::of(&tmp);
        let cleanup = |e: Error| {
            if let Some(id) = owned {
                id.remove_if_same(&tmp);
            }
            e
        };
        file.set_len(len as u64)
            .map_err(|e| cleanup(Error::io("size", &tmp, e)))?;
        let map = map(&file, &tmp).map_err(cleanup)?;
        Ok(Self {
            map,
            path: tmp.clone(),
            name: name.to_owned(),
            owned,
        })
    }

    /// Rename the initialised file to its final name, replacing (not
    /// touching the contents of) any previous table.
    pub(crate) fn publish(&mut self) -> Result<()> {
        fs::rename(&self.path, &self.name)
            .map_err(|e| Error::io("rename into place", &self.name, e))?;
        self.path.clone_from(&self.name);
        Ok(())
    }

    /// Map the existing file `name`, which must hold at least `min_len`
    /// bytes (an empty file cannot be mapped at all).
    pub(crate) fn open(name: &Path, min_len: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(name)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Error::ShmNotFound {
                        name: name.as_display(),
                    }
                } else {
                    Error::io("open", name, e)
                }
            })?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", name, e))?
            .len();
        let need = min_len.max(1) as u64;
        if len < need {
            return Err(Error::ShmTooSmall {
                name: name.as_display(),
                have: len,
                need,
            });
        }
        Ok(Self {
            map: map(&file, name)?,
            path: name.to_owned(),
            name: name.to_owned(),
            owned: None,
        })
    }

    /// Start of the mapping, page-aligned.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes of the mapping the kernel maps with 2 MiB pages (huge tmpfs or
    /// hugetlbfs), from `/proc/self/smaps`; `None` where it cannot tell.
    pub(crate) fn huge_page_bytes(&self) -> Option<u64> {
        let smaps = fs::read_to_string("/proc/self/smaps").ok()?;
        huge_bytes_in_smaps(&smaps, self.map.as_ptr() as usize)
    }
}

/// The PMD-mapped and hugetlb kB of the mapping that starts at `start`.
fn huge_bytes_in_smaps(smaps: &str, start: usize) -> Option<u64> {
    let mut lines = smaps.lines();
    // A mapping's header line starts with its "start-end" hex range.
    lines.find(|l| {
        l.split_once('-')
            .and_then(|(a, _)| usize::from_str_radix(a, 16).ok())
            == Some(start)
    })?;
    let mut kb = 0;
    for l in lines {
        let Some((field, rest)) = l.split_once(':') else {
            break;
        };
        if field.contains(' ') || field.contains('-') {
            break; // the next mapping's header
        }
        if matches!(
            field,
            "ShmemPmdMapped" | "FilePmdMapped" | "Shared_Hugetlb" | "Private_Hugetlb"
        ) {
            kb += rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    Some(kb * 1024)
}

fn map(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: memmap2 requires that the file is not truncated or modified
    // outside the mapping's rules while mapped. The file is ours (mode
    // 0600, a private directory in production), shared only with the
    // agent, which by contract never resizes it; the contents are accessed
    // through raw pointers with volatile reads, never through `&[u8]`
    // assumed stable.
    let map = unsafe { MmapMut::map_mut(file) }.map_err(|e| Error::io("mmap", path, e))?;
    advise_huge_pages(&map);
    Ok(map)
}

/// Ask for 2 MiB pages: every flow lookup touches a random entry, and
/// with 4 KiB pages each is a TLB miss too. Honoured on a tmpfs mounted
/// with `huge=advise` (`within_size` and `always` need no asking, and
/// `/dev/shm`'s default `never` ignores it); an error only means no.
#[cfg(target_os = "linux")]
fn advise_huge_pages(map: &MmapMut) {
    let _ = map.advise(memmap2::Advice::HugePage);
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: &MmapMut) {}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(id) = self.owned {
            id.remove_if_same(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::huge_bytes_in_smaps;

    const SMAPS: &str = "\
7f0000000000-7f0004200000 rw-s 00000000 00:28 2                          /run/vrouter/flow
Size:              67584 kB
Rss:               67584 kB
ShmemPmdMapped:    65536 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
VmFlags: rd wr sh mr mw me ms sd
7f0004200000-7f0004201000 rw-s 00000000 00:28 3                          /run/vrouter/flow.meta
Size:                  4 kB
ShmemPmdMapped:     2048 kB
";

    #[test]
    fn huge_pages_are_counted_for_the_mapping_asked_only() {
        assert_eq!(huge_bytes_in_smaps(SMAPS, 0x7f00_0000_0000), Some(64 << 20));
        assert_eq!(huge_bytes_in_smaps(SMAPS, 0x7f00_0420_0000), Some(2 << 20));
        assert_eq!(huge_bytes_in_smaps(SMAPS, 0x1000), None);
    }
}
