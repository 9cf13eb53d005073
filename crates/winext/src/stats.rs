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
}
