//! The `agent_hdr` that prefixes every frame on pkt0, the channel between the
//! datapath and the agent. Layout and command numbers are upstream's
//! (`include/vr_defs.h`), in network byte order, packed to 30 bytes.

/// Upstream `agent_hdr` commands (`AGENT_CMD_*` / `AGENT_TRAP_*`).
pub mod cmd {
    pub const SWITCH: u16 = 0;
    pub const ROUTE: u16 = 1;
    pub const ARP: u16 = 2;
    pub const L2_PROTOCOLS: u16 = 3;
    pub const NEXTHOP: u16 = 4;
    pub const RESOLVE: u16 = 5;
    pub const FLOW_MISS: u16 = 6;
    pub const L3_PROTOCOLS: u16 = 7;
    pub const DIAG: u16 = 8;
    pub const ECMP_RESOLVE: u16 = 9;
    pub const SOURCE_MISMATCH: u16 = 10;
    pub const HANDLE_DF: u16 = 11;
    pub const ZERO_TTL: u16 = 12;
    pub const ICMP_ERROR: u16 = 13;
    pub const TOR_CONTROL_PKT: u16 = 14;
    pub const FLOW_ACTION_HOLD: u16 = 15;
    pub const ROUTER_ALERT: u16 = 16;
    pub const MAC_LEARN: u16 = 17;
    pub const MAC_MOVE: u16 = 18;
    pub const MAC_IP_LEARNING: u16 = 19;
    pub const BFD: u16 = 20;
}

/// Size of the packed `agent_hdr`.
pub const AGENT_HDR_LEN: usize = 30;
/// Ethernet header + `agent_hdr`: what a trap pushes in front of a frame.
pub const TRAP_HEADROOM: usize = 14 + AGENT_HDR_LEN;

/// Upstream's `VR_AGENT_MIN_PACKET_LEN` (`include/vr_packet.h`): two
/// ports, IPv6 + ICMP + IPv6 headers, a VXLAN tunnel (IPv4 + UDP + VXLAN),
/// the L2 control word, two Ethernet headers and the `agent_hdr` =
/// 4 + 40 + 8 + 40 + 36 + 4 + 28 + 30 bytes: what a truncated trap keeps.
pub const AGENT_MIN_PACKET_LEN: usize = 190;

/// Traps whose frame upstream may cut to [`AGENT_MIN_PACKET_LEN`]
/// (`agent_trap_may_truncate`): the agent needs their headers only.
pub fn trap_may_truncate(code: u16) -> bool {
    matches!(
        code,
        cmd::NEXTHOP
            | cmd::RESOLVE
            | cmd::FLOW_MISS
            | cmd::FLOW_ACTION_HOLD
            | cmd::ECMP_RESOLVE
            | cmd::HANDLE_DF
            | cmd::ZERO_TTL
            | cmd::MAC_LEARN
            | cmd::MAC_MOVE
    )
}

/// How many bytes of a `len`-byte frame a trap with `code` carries, as
/// upstream's `agent_send` decides: HANDLE_DF and ZERO_TTL traps and any
/// trap of a GSO frame are cut to [`AGENT_MIN_PACKET_LEN`] when
/// [`trap_may_truncate`]; every other trap carries the whole frame (ARP,
/// DHCP and the other protocol traps always do).
pub fn trap_len(code: u16, len: usize, gso: bool) -> usize {
    let truncate = gso || matches!(code, cmd::HANDLE_DF | cmd::ZERO_TTL);
    if truncate && trap_may_truncate(code) {
        len.min(AGENT_MIN_PACKET_LEN)
    } else {
        len
    }
}

/// A decoded `agent_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentHdr {
    pub ifindex: u16,
    pub vrf: u16,
    pub cmd: u16,
    pub param: u32,
    pub param_1: u32,
    pub param_2: u32,
    pub param_3: u32,
    pub param_4: u32,
    pub param_5: u8,
}

impl AgentHdr {
    /// Write the 30 packed bytes (3 trailing pad bytes are zero).
    pub fn emit(&self, out: &mut [u8; AGENT_HDR_LEN]) {
        out[0..2].copy_from_slice(&self.ifindex.to_be_bytes());
        out[2..4].copy_from_slice(&self.vrf.to_be_bytes());
        out[4..6].copy_from_slice(&self.cmd.to_be_bytes());
        out[6..10].copy_from_slice(&self.param.to_be_bytes());
        out[10..14].copy_from_slice(&self.param_1.to_be_bytes());
        out[14..18].copy_from_slice(&self.param_2.to_be_bytes());
        out[18..22].copy_from_slice(&self.param_3.to_be_bytes());
        out[22..26].copy_from_slice(&self.param_4.to_be_bytes());
        out[26] = self.param_5;
        out[27..30].fill(0);
    }

    /// Parse the first 30 bytes of `buf`; `None` if it is shorter.
    pub fn parse(buf: &[u8]) -> Option<AgentHdr> {
        let b: &[u8; AGENT_HDR_LEN] = buf.get(..AGENT_HDR_LEN)?.try_into().ok()?;
        Some(AgentHdr {
            ifindex: u16::from_be_bytes([b[0], b[1]]),
            vrf: u16::from_be_bytes([b[2], b[3]]),
            cmd: u16::from_be_bytes([b[4], b[5]]),
            param: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            param_1: u32::from_be_bytes([b[10], b[11], b[12], b[13]]),
            param_2: u32::from_be_bytes([b[14], b[15], b[16], b[17]]),
            param_3: u32::from_be_bytes([b[18], b[19], b[20], b[21]]),
            param_4: u32::from_be_bytes([b[22], b[23], b[24], b[25]]),
            param_5: b[26],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_upstream_packed_network_order() {
        let h = AgentHdr {
            ifindex: 0x0102,
            vrf: 0x0304,
            cmd: cmd::FLOW_MISS,
            param: 0x0a0b0c0d,
            param_1: 1,
            param_2: 2,
            param_3: 3,
            param_4: 4,
            param_5: 9,
        };
        let mut b = [0xffu8; AGENT_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(
            b,
            [
                1, 2, 3, 4, 0, 6, 0xa, 0xb, 0xc, 0xd, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
                4, 9, 0, 0, 0
            ]
        );
        assert_eq!(AgentHdr::parse(&b), Some(h));
        assert_eq!(AgentHdr::parse(&b[..29]), None);
    }
}
