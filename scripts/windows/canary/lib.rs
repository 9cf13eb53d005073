//! Wine crash canary, run only by `scripts/windows/lane.sh`.
//!
//! Under Wine a crashing process starts `winedbg`, and when other test
//! threads are alive the run then exits 0 as if it had passed (seen with Wine
//! 8: a lone crashing test exits 84, the same crash beside a passing test
//! exits 0). The lane disables `winedbg.exe` and runs both tests below
//! together, as a real suite would; the run must fail. The crash prints a
//! marker first so the lane knows the exe really got there (and did not, say,
//! fail to load a DLL).

#[cfg(test)]
mod tests {
    #[test]
    fn starts() {}

    /// An access violation: a write to an unmapped page (the first 64 KiB of
    /// a Windows address space are never mapped). Not null, so the debug
    /// precondition check of `write_volatile` does not turn it into an abort.
    #[test]
    #[ignore = "crashes on purpose; run by scripts/windows/lane.sh"]
    fn crash_access_violation() {
        // stderr is unbuffered: the marker is out before the crash.
        eprintln!("CANARY-REACHED crash_access_violation");
        let p = std::hint::black_box(std::ptr::without_provenance_mut::<u32>(0x10));
        // SAFETY: it is not; crashing here is the point of the test.
        unsafe { std::ptr::write_volatile(p, 0xdead) };
    }
}
