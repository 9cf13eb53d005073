//! The extension's own counters (the core keeps per-vif and drop counters).

/// Counters of the NDIS side of the datapath.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lists and frames the switch handed over.
    pub nbls_in: u64,
    pub frames_in: u64,
    /// Frames the core read and rewrote in place.
    pub zero_copy: u64,
    /// Frames copied first, by reason (see `plan::CopyReason`).
    pub copied_fragmented: u64,
    pub copied_no_backfill: u64,
    pub copied_untrusted: u64,
    pub copied_shared: u64,
    /// A copy was needed but no memory was available (frame dropped).
    pub copy_failed: u64,
    /// Lists the switch marked `NativeForwardingRequired` (Hyper-V network
    /// virtualization traffic the switch itself must forward): passed down
    /// untouched, no destination added.
    pub native_forwarded: u64,
    /// Lists sent on whole, lists split into per-NB lists.
    pub forwarded: u64,
    pub split: u64,
    /// Packets the extension made (floods, pkt0 injections) and could not.
    pub originated: u64,
    pub originate_failed: u64,
    /// Traffic between the host vNIC and the external NIC with no vif.
    pub bridged: u64,
    /// Frames from a NIC with no vif and no bridge peer.
    pub unknown_source: u64,
    /// Frames whose vif has no connected NIC.
    pub no_destination: u64,
    pub held: u64,
    pub hold_failed: u64,
    pub released: u64,
    pub hold_dropped: u64,
    pub hold_expired: u64,
    pub pkt0_trapped: u64,
    pub pkt0_dropped: u64,
    pub pkt0_injected: u64,
    /// Lists completed at once because the extension was paused.
    pub paused_drops: u64,
    pub ksync_messages: u64,
    /// 802.1Q tags moved from a list's out-of-band field into a VM port's
    /// frame for the core, and out of sent frames into their list's field;
    /// frames dropped for want of the tag's four bytes in front.
    pub vlan_tag_in: u64,
    pub vlan_tag_out: u64,
    pub vlan_no_room: u64,
}

/// `CTL_CODE(FILE_DEVICE_NETWORK, 0x901, METHOD_BUFFERED, FILE_ANY_ACCESS)`
/// on the ksync device: these counters as text, one `name value` line
/// each (`vrctl vrouter --ext`).
pub const IOCTL_VROUTER_EXT_STATS: u32 = crate::wdm::ctl_code(0x901, 0);

impl Stats {
    /// Every counter with its name, in declaration order.
    pub fn named(&self) -> [(&'static str, u64); 29] {
        [
            ("nbls_in", self.nbls_in),
            ("frames_in", self.frames_in),
            ("zero_copy", self.zero_copy),
            ("copied_fragmented", self.copied_fragmented),
            ("copied_no_backfill", self.copied_no_backfill),
            ("copied_untrusted", self.copied_untrusted),
            ("copied_shared", self.copied_shared),
            ("copy_failed", self.copy_failed),
            ("native_forwarded", self.native_forwarded),
            ("forwarded", self.forwarded),
            ("split", self.split),
            ("originated", self.originated),
            ("originate_failed", self.originate_failed),
            ("bridged", self.bridged),
            ("unknown_source", self.unknown_source),
            ("no_destination", self.no_destination),
            ("held", self.held),
            ("hold_failed", self.hold_failed),
            ("released", self.released),
            ("hold_dropped", self.hold_dropped),
            ("hold_expired", self.hold_expired),
            ("pkt0_trapped", self.pkt0_trapped),
            ("pkt0_dropped", self.pkt0_dropped),
            ("pkt0_injected", self.pkt0_injected),
            ("paused_drops", self.paused_drops),
            ("ksync_messages", self.ksync_messages),
            ("vlan_tag_in", self.vlan_tag_in),
            ("vlan_tag_out", self.vlan_tag_out),
            ("vlan_no_room", self.vlan_no_room),
        ]
    }

    /// The counters as `name value` lines.
    pub fn write_text(&self, out: &mut impl core::fmt::Write) -> core::fmt::Result {
        for (name, v) in self.named() {
            writeln!(out, "{name} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_named_once() {
        let s = Stats {
            nbls_in: 7,
            vlan_no_room: 9,
            ..Stats::default()
        };
        let mut t = alloc::string::String::new();
        s.write_text(&mut t).unwrap();
        assert!(t.starts_with("nbls_in 7\n"));
        assert!(t.ends_with("vlan_no_room 9\n"));
        let names: alloc::vec::Vec<&str> = s.named().iter().map(|(n, _)| *n).collect();
        let mut uniq = names.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), names.len());
        // Every field: the struct is all u64 counters.
        assert_eq!(names.len() * 8, core::mem::size_of::<Stats>());
        assert_eq!(IOCTL_VROUTER_EXT_STATS, 0x0012_2404);
    }
}
