//! Where and how urgently the datapath thread runs.
//!
//! Upstream's datapath runs in the kernel's softirq, ahead of every
//! process on the host, and its DPDK datapath on cores given to it alone.
//! Ours is one thread among the containers' processes: at the default
//! nice 0 the threads it wakes (the agent, the containers' stacks) preempt
//! it while its port queues overflow (docs/performance.md, "The seventh
//! session"). [`ThreadPlacement`] gives it a CPU set and a nice value;
//! `vrouter --datapath-cpus` and `--datapath-nice` set them.

use std::fmt;
use std::io;
use std::str::FromStr;

/// CPUs a thread may run on: a sorted, non-empty set of CPU numbers below
/// [`CpuList::LIMIT`]. Parsed from the kernel's list format (`0-3,6`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// Bits in the kernel's `cpu_set_t` (glibc's `CPU_SETSIZE`).
    pub const LIMIT: usize = 1024;

    pub fn cpus(&self) -> &[usize] {
        &self.0
    }
}

/// Why a CPU list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuListError {
    #[error("empty CPU list")]
    Empty,
    #[error("{0:?} is not a CPU number or a range N-M")]
    Syntax(String),
    #[error("CPU range {0}-{1} runs backwards")]
    Backwards(usize, usize),
    #[error("CPU {0} is out of range (at most {max})", max = CpuList::LIMIT - 1)]
    TooLarge(usize),
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(s: &str) -> Result<Self, CpuListError> {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| CpuListError::Syntax(t.trim().to_string()))
        };
        let mut cpus = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(part)?, num(part)?),
            };
            if hi < lo {
                return Err(CpuListError::Backwards(lo, hi));
            }
            if hi >= Self::LIMIT {
                return Err(CpuListError::TooLarge(hi));
            }
            cpus.extend(lo..=hi);
        }
        if cpus.is_empty() {
            return Err(CpuListError::Empty);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuList(cpus))
    }
}

impl fmt::Display for CpuList {
    /// The kernel's list format, ranges collapsed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.0.len() {
            let lo = self.0[i];
            let mut j = i;
            while j + 1 < self.0.len() && self.0[j + 1] == self.0[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            match j - i {
                0 => write!(f, "{lo}")?,
                _ => write!(f, "{lo}-{}", self.0[j])?,
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// A thread's CPU set and nice value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadPlacement {
    /// `None`: every CPU the process may use (the thread inherits them).
    pub cpus: Option<CpuList>,
    /// -20 (most urgent) to 19; `None` leaves the inherited value.
    pub nice: Option<i32>,
}

impl ThreadPlacement {
    /// Apply to the calling thread only (Linux keeps affinity and nice per
    /// thread). A CPU set with no online CPU and a nice value below the
    /// current one without `CAP_SYS_NICE` (root has it unless it was
    /// dropped) are errors.
    pub fn apply_here(&self) -> io::Result<()> {
        if let Some(cpus) = &self.cpus {
            // SAFETY: cpu_set_t is plain bits; zeroed is the empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &c in cpus.cpus() {
                // SAFETY: c < CpuList::LIMIT = CPU_SETSIZE, the set's size.
                unsafe { libc::CPU_SET(c, &mut set) };
            }
            // SAFETY: pid 0 is the calling thread; the set is initialised.
            let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
            if r != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "CPUs {cpus}: {e} (is any of them online and allowed to this process?)"
                    ),
                ));
            }
        }
        if let Some(nice) = self.nice {
            // SAFETY: plain syscall on the calling thread's id.
            let r = unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice)
            };
            if r != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("nice {nice}: {e} (lowering it needs CAP_SYS_NICE)"),
                ));
            }
        }
        Ok(())
    }

    /// The calling thread's CPU set and nice value, as the kernel has them.
    pub fn of_this_thread() -> io::Result<(CpuList, i32)> {
        // SAFETY: as in apply_here; the kernel fills the set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: reads bits of an initialised set, below its size.
        let cpus: Vec<usize> = (0..CpuList::LIMIT)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        // getpriority returns -1 both as a value and as an error: errno
        // tells them apart.
        // SAFETY: errno is thread-local; plain syscall.
        let nice = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
        };
        let e = io::Error::last_os_error();
        if nice == -1 && e.raw_os_error() != Some(0) {
            return Err(e);
        }
        Ok((CpuList(cpus), nice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_in_the_kernel_format_and_print_back_collapsed() {
        let l: CpuList = "3,0-1, 1 ,7-9".parse().unwrap();
        assert_eq!(l.cpus(), &[0, 1, 3, 7, 8, 9]);
        assert_eq!(l.to_string(), "0-1,3,7-9");
        assert_eq!("5".parse::<CpuList>().unwrap().to_string(), "5");
        assert_eq!("".parse::<CpuList>(), Err(CpuListError::Empty));
        assert_eq!(",".parse::<CpuList>(), Err(CpuListError::Empty));
        assert_eq!(
            "1,x".parse::<CpuList>(),
            Err(CpuListError::Syntax("x".into()))
        );
        assert_eq!(
            "-1".parse::<CpuList>(),
            Err(CpuListError::Syntax("".into()))
        );
        assert_eq!("4-2".parse::<CpuList>(), Err(CpuListError::Backwards(4, 2)));
        assert_eq!("1024".parse::<CpuList>(), Err(CpuListError::TooLarge(1024)));
        assert_eq!("1023".parse::<CpuList>().unwrap().cpus(), &[1023]);
    }

    /// Runs in its own thread: what it sets must stay there (the test
    /// harness's other threads keep theirs).
    #[test]
    fn a_placement_applies_to_the_calling_thread_only() {
        let (before_cpus, before_nice) = ThreadPlacement::of_this_thread().unwrap();
        let cpu = before_cpus.cpus()[0];
        let set = ThreadPlacement {
            cpus: Some(cpu.to_string().parse().unwrap()),
            // Raising nice needs no privilege.
            nice: Some((before_nice + 1).min(19)),
        };
        let seen = std::thread::spawn(move || {
            set.apply_here().unwrap();
            ThreadPlacement::of_this_thread().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen.0.cpus(), &[cpu]);
        assert_eq!(seen.1, (before_nice + 1).min(19));
        assert_eq!(
            ThreadPlacement::of_this_thread().unwrap(),
            (before_cpus, before_nice)
        );
    }

    /// Lowering nice (more urgent) is what `vrouter` does by default: root
    /// may, anyone else gets an error that says what is missing.
    #[test]
    fn a_negative_nice_needs_privilege_and_says_so() {
        let p = ThreadPlacement {
            cpus: None,
            nice: Some(-5),
        };
        let r = std::thread::spawn(move || {
            p.apply_here()?;
            ThreadPlacement::of_this_thread()
        })
        .join()
        .unwrap();
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(r.unwrap().1, -5);
        } else {
            let e = r.unwrap_err();
            assert!(e.to_string().contains("CAP_SYS_NICE"), "{e}");
        }
    }

    #[test]
    fn a_cpu_set_with_no_usable_cpu_is_an_error_that_names_it() {
        let p = ThreadPlacement {
            cpus: Some("1000".parse().unwrap()),
            nice: None,
        };
        let e = std::thread::spawn(move || p.apply_here())
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("CPUs 1000"), "{e}");
    }
}
