//! The device-only variant's test IOCTL (feature `devtest`, for Wine): run
//! one frame through the core as if a switch NIC had received it on a vif,
//! trap what the core traps to pkt0, and report the core's actions. There
//! is no switch under Wine, so nothing is sent and nothing is held; the
//! agent's test drives its channels with it (ksync, pkt0 and the flow
//! section are the real ones).

use alloc::vec::Vec;

use dp_core::{Action, Actions, Packet, HEADROOM};

use super::device::wake_pkt0;
use super::Kernel;
use crate::ndis::driver::Driver;
use crate::ports::Dest;
use crate::wdm::*;

/// `CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)`.
pub const IOCTL_VROUTER_TEST_INJECT: u32 = ctl_code(0x900, 0);

/// Answer records: action kind, vif.
pub const ACT_TX: u8 = 1;
pub const ACT_TX_COPY: u8 = 2;
pub const ACT_HOLD: u8 = 3;
pub const ACT_DROP: u8 = 4;
pub const ACT_PASS: u8 = 5;
pub const ACT_CONSUMED: u8 = 6;

/// # Safety
/// A valid device-control IRP on the ksync device.
pub unsafe fn ioctl(driver: &Driver<Kernel>, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the caller's contract; buffered I/O: one system buffer for
    // input and output.
    unsafe {
        let sl = (*irp).CurrentStackLocation;
        if (*sl).IoControlCode != IOCTL_VROUTER_TEST_INJECT {
            return done(irp, STATUS_INVALID_DEVICE_REQUEST, 0);
        }
        let inl = (*sl).InputBufferLength as usize;
        let outl = (*sl).Length as usize;
        let p = (*irp).SystemBuffer.cast::<u8>();
        if p.is_null() || inl < 3 {
            return done(irp, STATUS_INVALID_PARAMETER, 0);
        }
        let input = core::slice::from_raw_parts(p, inl);
        let (Some(&[v0, v1]), Some(frame)) = (input.get(..2), input.get(2..)) else {
            return done(irp, STATUS_INVALID_PARAMETER, 0);
        };
        let vif = u16::from_le_bytes([v0, v1]);
        let mut buf = alloc::vec![0u8; HEADROOM + frame.len() + 64];
        if let Some(d) = buf.get_mut(HEADROOM..HEADROOM + frame.len()) {
            d.copy_from_slice(frame);
        }
        let mut records: Vec<u8> = Vec::new();
        {
            let mut g = driver.lock();
            let Some(pk) = Packet::new(&mut buf, HEADROOM, frame.len()) else {
                return done(irp, STATUS_INVALID_PARAMETER, 0);
            };
            let mut pkts = [pk];
            let mut acts = Actions::with_capacity(16);
            let ext = &mut g.ext;
            ext.router_mut().process(vif, &mut pkts, &mut acts);
            let [pk] = &pkts;
            for a in acts.as_slice() {
                let (kind, out) = match *a {
                    Action::Tx { vif: o, .. } => {
                        if ext.ports().dest(o) == Dest::Agent {
                            ext.pkt0_push(&[pk.data()]);
                        }
                        (ACT_TX, o)
                    }
                    Action::TxCopy {
                        vif: o,
                        prepend,
                        from,
                        to,
                        ..
                    } => {
                        if ext.ports().dest(o) == Dest::Agent {
                            let body = pkts[0]
                                .data()
                                .get(from as usize..to as usize)
                                .unwrap_or_default();
                            ext.pkt0_push(&[acts.prepend(prepend), body]);
                        }
                        (ACT_TX_COPY, o)
                    }
                    Action::Hold { .. } => (ACT_HOLD, vif),
                    Action::Drop { .. } => (ACT_DROP, vif),
                    Action::PassThrough { .. } => (ACT_PASS, vif),
                    Action::Consumed { .. } => (ACT_CONSUMED, vif),
                };
                records.push(kind);
                records.extend_from_slice(&out.to_le_bytes());
            }
        }
        wake_pkt0(driver);
        let n = records.len().min(outl);
        core::ptr::copy_nonoverlapping(records.as_ptr(), p, n);
        done(irp, STATUS_SUCCESS, n)
    }
}

/// # Safety
/// `irp` is valid.
unsafe fn done(irp: *mut IRP, st: NTSTATUS, n: usize) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe {
        (*irp).IoStatus = IO_STATUS_BLOCK {
            Status: st,
            Information: n,
        };
        super::imports::IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
    st
}
