//! Drop statistics: one counter per reason, named after upstream
//! `vr_drop_stats_req`'s `vds_*` fields so ksync dumps map one to one.

macro_rules! drop_reasons {
    ($($variant:ident => $field:literal,)*) => {
        /// Why the datapath dropped a packet.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $($variant,)* }

        impl DropReason {
            /// Every reason, in upstream `vr_drop_stats_req` field order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];

            /// The upstream `vr_drop_stats_req` field name.
            pub const fn field_name(self) -> &'static str {
                match self { $(DropReason::$variant => $field,)* }
            }
        }
    };
}

drop_reasons! {
    Discard => "vds_discard",
    Pull => "vds_pull",
    InvalidIf => "vds_invalid_if",
    InvalidArp => "vds_invalid_arp",
    TrapNoIf => "vds_trap_no_if",
    NowhereToGo => "vds_nowhere_to_go",
    FlowQueueLimitExceeded => "vds_flow_queue_limit_exceeded",
    FlowNoMemory => "vds_flow_no_memory",
    FlowInvalidProtocol => "vds_flow_invalid_protocol",
    FlowNatNoRflow => "vds_flow_nat_no_rflow",
    FlowActionDrop => "vds_flow_action_drop",
    FlowActionInvalid => "vds_flow_action_invalid",
    FlowUnusable => "vds_flow_unusable",
    FlowTableFull => "vds_flow_table_full",
    InterfaceTxDiscard => "vds_interface_tx_discard",
    InterfaceDrop => "vds_interface_drop",
    Duplicated => "vds_duplicated",
    Push => "vds_push",
    TtlExceeded => "vds_ttl_exceeded",
    InvalidNh => "vds_invalid_nh",
    InvalidLabel => "vds_invalid_label",
    InvalidProtocol => "vds_invalid_protocol",
    InterfaceRxDiscard => "vds_interface_rx_discard",
    InvalidMcastSource => "vds_invalid_mcast_source",
    HeadAllocFail => "vds_head_alloc_fail",
    PcowFail => "vds_pcow_fail",
    McastDfBit => "vds_mcast_df_bit",
    McastCloneFail => "vds_mcast_clone_fail",
    NoMemory => "vds_no_memory",
    RewriteFail => "vds_rewrite_fail",
    Misc => "vds_misc",
    InvalidPacket => "vds_invalid_packet",
    CksumErr => "vds_cksum_err",
    NoFmd => "vds_no_fmd",
    ClonedOriginal => "vds_cloned_original",
    InvalidVnid => "vds_invalid_vnid",
    FragErr => "vds_frag_err",
    InvalidSource => "vds_invalid_source",
    L2NoRoute => "vds_l2_no_route",
    FragmentQueueFail => "vds_fragment_queue_fail",
    VlanFwdTx => "vds_vlan_fwd_tx",
    VlanFwdEnq => "vds_vlan_fwd_enq",
    DropNewFlow => "vds_drop_new_flow",
    FlowEvict => "vds_flow_evict",
    TrapOriginal => "vds_trap_original",
    LeafToLeaf => "vds_leaf_to_leaf",
    BmacIsidMismatch => "vds_bmac_isid_mismatch",
    PktLoop => "vds_pkt_loop",
    NoCryptPath => "vds_no_crypt_path",
    InvalidHbsPkt => "vds_invalid_hbs_pkt",
    NoFragEntry => "vds_no_frag_entry",
    IcmpError => "vds_icmp_error",
    CloneFail => "vds_clone_fail",
    InvalidUnderlayEcmp => "vds_invalid_underlay_ecmp",
}

const N_REASONS: usize = DropReason::ALL.len();

/// Per-reason drop counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropStats {
    counters: [u64; N_REASONS],
}

impl Default for DropStats {
    fn default() -> Self {
        DropStats {
            counters: [0; N_REASONS],
        }
    }
}

impl DropStats {
    #[inline]
    pub(crate) fn count(&mut self, reason: DropReason) {
        // `reason as usize` is always < N_REASONS: the array is sized from the enum.
        if let Some(c) = self.counters.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// The counter for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counters.get(reason as usize).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counters.iter().sum()
    }

    /// `(reason, count)` for every reason, in upstream field order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(move |r| (*r, self.get(*r)))
    }

    /// Zero every counter (`vr_drop_stats_req` with RESET).
    pub fn reset(&mut self) {
        self.counters = [0; N_REASONS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_upstream_shaped() {
        for (i, a) in DropReason::ALL.iter().enumerate() {
            assert!(a.field_name().starts_with("vds_"));
            assert_eq!(*a as usize, i);
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(a.field_name(), b.field_name());
            }
        }
    }

    #[test]
    fn counts_per_reason() {
        let mut s = DropStats::default();
        s.count(DropReason::InvalidLabel);
        s.count(DropReason::InvalidLabel);
        s.count(DropReason::TtlExceeded);
        assert_eq!(s.get(DropReason::InvalidLabel), 2);
        assert_eq!(s.total(), 3);
        s.reset();
        assert_eq!(s.total(), 0);
    }
}
