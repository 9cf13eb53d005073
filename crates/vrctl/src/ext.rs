//! `vrctl vrouter --ext`: the Hyper-V forwarding extension's own counters
//! (`crates/winext`, `Stats`), which ksync does not carry: the extension
//! answers `IOCTL_VROUTER_EXT_STATS` on its ksync device with one `name
//! value` line per counter.

use std::io::Write;
use std::path::Path;

/// `CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)`
/// (`winext::stats::IOCTL_VROUTER_EXT_STATS`).
pub const IOCTL_VROUTER_EXT_STATS: u32 = (0x12 << 16) | (0x901 << 2);

/// Print the extension's counters from the ksync device `addr`.
#[cfg(windows)]
pub fn ext_stats(addr: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    use anyhow::Context;
    let dev = channels::WindowsDevice::open(addr).with_context(|| {
        format!(
            "cannot open the forwarding extension's device {} (is the extension loaded?)",
            addr.display()
        )
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = dev
        .ioctl(IOCTL_VROUTER_EXT_STATS, &[], &mut buf)
        .context("the extension did not answer IOCTL_VROUTER_EXT_STATS")?;
    out.write_all(buf.get(..n).unwrap_or_default())?;
    Ok(())
}

/// Print the extension's counters: only the Windows extension has them.
#[cfg(not(windows))]
pub fn ext_stats(_addr: &Path, _out: &mut impl Write) -> anyhow::Result<()> {
    anyhow::bail!(
        "--ext: the counters of the Hyper-V forwarding extension exist only on Windows (here, see `vrctl dropstats`)"
    )
}
