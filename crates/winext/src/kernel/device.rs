//! The ksync and pkt0 devices: `\Device\vrouterKsync` and
//! `\Device\vrouterPkt0`, opened by the agent as `\\.\vrouterKsync` and
//! `\\.\vrouterPkt0` (upstream's names), buffered I/O, SYSTEM +
//! Administrators only.
//!
//! * **ksync**: any number of handles (the agent, `vrctl`); each is a byte
//!   stream ([`Session`]): a write is one or more whole netlink messages,
//!   handled at once; reads return the answers as they accumulate and wait
//!   (pend) while there are none.
//! * **pkt0**: one handle at a time (exclusive device, as upstream's). A
//!   read returns one trapped frame, waiting for one if none is queued; the
//!   packet path completes a waiting read when it traps. A write is one
//!   frame to inject. Closing drops the queued frames.
//!
//! Waiting reads are queued with a cancel routine (the classic pattern:
//! our own spin lock, `IoSetCancelRoutine`, the `Cancel` flag checked after
//! queuing), and completed with `STATUS_CANCELLED` at cleanup.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use core::ffi::c_void;
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::imports::*;
use super::Kernel;
use crate::ndis::driver::Driver;
use crate::ndis::types::{utf16z, UNICODE_STRING};
use crate::pkt0::QueueError;
use crate::session::{Session, WriteError};
use crate::wdm::*;

static KSYNC_NAME: [u16; 21] = utf16z("\\Device\\vrouterKsync");
static KSYNC_LINK: [u16; 25] = utf16z("\\DosDevices\\vrouterKsync");
static PKT0_NAME: [u16; 20] = utf16z("\\Device\\vrouterPkt0");
static PKT0_LINK: [u16; 24] = utf16z("\\DosDevices\\vrouterPkt0");

const KIND_KSYNC: u32 = 1;
const KIND_PKT0: u32 = 2;
/// `SL_PENDING_RETURNED` (`IoMarkIrpPending`).
const SL_PENDING_RETURNED: u8 = 0x01;

/// A spin lock and what it guards (`KeAcquireSpinLockRaiseToDpc`).
struct Locked<T> {
    lock: core::cell::UnsafeCell<usize>,
    v: core::cell::UnsafeCell<T>,
}

// SAFETY: `v` is reached only with `lock` held.
unsafe impl<T> Sync for Locked<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Locked<T> {}

impl<T> Locked<T> {
    fn new(v: T) -> Self {
        Locked {
            lock: core::cell::UnsafeCell::new(0),
            v: core::cell::UnsafeCell::new(v),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: a valid spin lock; the value is used only while held.
        unsafe {
            let irql = KeAcquireSpinLockRaiseToDpc(self.lock.get());
            let r = f(&mut *self.v.get());
            KeReleaseSpinLock(self.lock.get(), irql);
            r
        }
    }
}

/// IRPs waiting for data.
#[derive(Default)]
struct Waiting {
    irps: VecDeque<*mut IRP>,
}

/// One ksync handle.
struct KsyncOpen {
    state: Locked<KsyncState>,
}

struct KsyncState {
    /// `None` while a write is being handled.
    session: Option<Session>,
    waiting: Waiting,
}

/// The pkt0 device's state.
struct Pkt0State {
    waiting: Waiting,
}

/// What every device's extension points to.
struct DevCtx {
    kind: u32,
    driver: *const Driver<Kernel>,
    pkt0: *const Locked<Pkt0State>,
}

/// The devices of a loaded driver.
pub struct Devices {
    ksync: *mut DEVICE_OBJECT,
    pkt0: *mut DEVICE_OBJECT,
    pkt0_state: *mut Locked<Pkt0State>,
}

/// The pkt0 state the packet path wakes (one driver per machine).
static PKT0: AtomicPtr<Locked<Pkt0State>> = AtomicPtr::new(null_mut());

/// Create both devices and their links, with the restricted descriptor.
///
/// # Safety
/// Called from DriverEntry with the driver object and the driver state,
/// which outlives the devices.
pub unsafe fn create(
    drv: *mut DRIVER_OBJECT,
    driver: *const Driver<Kernel>,
) -> Result<Devices, NTSTATUS> {
    let pkt0_state = Box::into_raw(Box::new(Locked::new(Pkt0State {
        waiting: Waiting::default(),
    })));
    let mut devs = Devices {
        ksync: null_mut(),
        pkt0: null_mut(),
        pkt0_state,
    };
    // SAFETY: the caller's contract; failures undo through `destroy`.
    unsafe {
        for f in [
            IRP_MJ_CREATE,
            IRP_MJ_CLOSE,
            IRP_MJ_CLEANUP,
            IRP_MJ_READ,
            IRP_MJ_WRITE,
            IRP_MJ_DEVICE_CONTROL,
        ] {
            if let Some(slot) = (*drv).MajorFunction.get_mut(f) {
                *slot = Some(dispatch);
            }
        }
        for (kind, name, link, exclusive) in [
            (KIND_KSYNC, &KSYNC_NAME[..], &KSYNC_LINK[..], false),
            (KIND_PKT0, &PKT0_NAME[..], &PKT0_LINK[..], true),
        ] {
            let mut dev: *mut DEVICE_OBJECT = null_mut();
            let mut n = UNICODE_STRING::from_static(static_slice(name));
            let st = IoCreateDevice(
                drv,
                core::mem::size_of::<DevCtx>() as u32,
                &mut n,
                FILE_DEVICE_NETWORK,
                FILE_DEVICE_SECURE_OPEN,
                u8::from(exclusive),
                &mut dev,
            );
            if st < 0 {
                destroy(&mut devs);
                return Err(st);
            }
            if kind == KIND_KSYNC {
                devs.ksync = dev;
            } else {
                devs.pkt0 = dev;
            }
            (*dev).DeviceExtension.cast::<DevCtx>().write(DevCtx {
                kind,
                driver,
                pkt0: pkt0_state,
            });
            let st = super::security::protect_device(dev);
            if st < 0 {
                destroy(&mut devs);
                return Err(st);
            }
            let mut l = UNICODE_STRING::from_static(static_slice(link));
            let st = IoCreateSymbolicLink(&mut l, &mut n);
            if st < 0 {
                destroy(&mut devs);
                return Err(st);
            }
            (*dev).Flags |= DO_BUFFERED_IO;
            (*dev).Flags &= !DO_DEVICE_INITIALIZING;
        }
        PKT0.store(pkt0_state, Ordering::Release);
        (*driver).set_pkt0_wake(wake_pkt0);
    }
    Ok(devs)
}

fn static_slice(s: &'static [u16]) -> &'static [u16] {
    s
}

/// Remove the devices and links.
///
/// # Safety
/// No handle is open (driver unload) or the devices were never exposed.
pub unsafe fn destroy(d: &mut Devices) {
    // SAFETY: the caller's contract.
    unsafe {
        for (dev, link) in [(d.ksync, &KSYNC_LINK[..]), (d.pkt0, &PKT0_LINK[..])] {
            if dev.is_null() {
                continue;
            }
            let mut l = UNICODE_STRING::from_static(static_slice(link));
            IoDeleteSymbolicLink(&mut l);
            IoDeleteDevice(dev);
        }
        d.ksync = null_mut();
        d.pkt0 = null_mut();
        PKT0.store(null_mut(), Ordering::Release);
        if !d.pkt0_state.is_null() {
            drop(Box::from_raw(d.pkt0_state));
            d.pkt0_state = null_mut();
        }
    }
}

/// # Safety
/// `irp` is a valid IRP of ours.
unsafe fn complete(irp: *mut IRP, status: NTSTATUS, info: usize) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe {
        (*irp).IoStatus = IO_STATUS_BLOCK {
            Status: status,
            Information: info,
        };
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
    status
}

/// The buffered I/O buffer and the request's length.
///
/// # Safety
/// `irp` is a valid buffered read/write IRP.
unsafe fn buffer<'a>(irp: *mut IRP) -> &'a mut [u8] {
    // SAFETY: for buffered I/O the system buffer holds `Length` bytes.
    unsafe {
        let sl = (*irp).CurrentStackLocation;
        let len = (*sl).Length as usize;
        let p = (*irp).SystemBuffer.cast::<u8>();
        if p.is_null() || len == 0 {
            return &mut [];
        }
        core::slice::from_raw_parts_mut(p, len)
    }
}

/// `IOCTL_VROUTER_EXT_STATS`: the extension's counters as text.
///
/// # Safety
/// A valid buffered device-control IRP.
unsafe fn ext_stats(driver: &Driver<Kernel>, irp: *mut IRP) -> NTSTATUS {
    let stats = *driver.lock().ext.stats();
    let mut text = alloc::string::String::new();
    if stats.write_text(&mut text).is_err() {
        // SAFETY: the caller's IRP.
        return unsafe { complete(irp, STATUS_INSUFFICIENT_RESOURCES, 0) };
    }
    // SAFETY: buffered I/O: the system buffer holds the output length
    // (`Length` is the device-control output length in this stack
    // location's layout, as `buffer` reads it for reads).
    unsafe {
        let dst = buffer(irp);
        match dst.get_mut(..text.len()) {
            Some(d) => {
                d.copy_from_slice(text.as_bytes());
                complete(irp, STATUS_SUCCESS, text.len())
            }
            None => complete(irp, STATUS_BUFFER_TOO_SMALL, 0),
        }
    }
}

/// The IRP dispatch routine of both devices.
///
/// # Safety
/// Called by the I/O manager.
pub unsafe extern "system" fn dispatch(dev: *mut DEVICE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: our device (its extension is a DevCtx) and a valid IRP.
    unsafe {
        let ctx = &*(*dev).DeviceExtension.cast::<DevCtx>();
        let sl = (*irp).CurrentStackLocation;
        let fo = (*sl).FileObject;
        let driver = &*ctx.driver;
        match (ctx.kind, (*sl).MajorFunction as usize) {
            (KIND_KSYNC, IRP_MJ_CREATE) => {
                let open = Box::new(KsyncOpen {
                    state: Locked::new(KsyncState {
                        session: Some(Session::new()),
                        waiting: Waiting::default(),
                    }),
                });
                (*fo).FsContext = Box::into_raw(open).cast();
                complete(irp, STATUS_SUCCESS, 0)
            }
            (KIND_KSYNC, IRP_MJ_WRITE) => ksync_write(driver, fo, irp),
            (KIND_KSYNC, IRP_MJ_READ) => {
                let open = &*(*fo).FsContext.cast::<KsyncOpen>();
                let dst = buffer(irp);
                let got = open.state.with(|s| match s.session.as_mut() {
                    Some(ses) if ses.pending() > 0 => Some(ses.read(dst)),
                    _ => None,
                });
                match got {
                    Some(n) => complete(irp, STATUS_SUCCESS, n),
                    None => wait(&open.state, irp, |s| &mut s.waiting),
                }
            }
            (KIND_KSYNC, IRP_MJ_CLEANUP) => {
                let open = &*(*fo).FsContext.cast::<KsyncOpen>();
                cancel_all(&open.state, |s| &mut s.waiting);
                complete(irp, STATUS_SUCCESS, 0)
            }
            (KIND_KSYNC, IRP_MJ_CLOSE) => {
                let p = (*fo).FsContext.cast::<KsyncOpen>();
                if !p.is_null() {
                    (*fo).FsContext = null_mut();
                    drop(Box::from_raw(p));
                }
                complete(irp, STATUS_SUCCESS, 0)
            }
            (KIND_KSYNC, IRP_MJ_DEVICE_CONTROL)
                if (*(*irp).CurrentStackLocation).IoControlCode
                    == crate::stats::IOCTL_VROUTER_EXT_STATS =>
            {
                ext_stats(driver, irp)
            }
            #[cfg(feature = "devtest")]
            (KIND_KSYNC, IRP_MJ_DEVICE_CONTROL) => super::devtest::ioctl(driver, irp),
            (KIND_PKT0, IRP_MJ_CREATE) => complete(irp, STATUS_SUCCESS, 0),
            (KIND_PKT0, IRP_MJ_WRITE) => {
                let frame = buffer(irp);
                let n = frame.len();
                let st = match driver.pkt0_write(frame) {
                    Ok(()) => STATUS_SUCCESS,
                    Err(crate::ext::InjectError::BadLength) => STATUS_INVALID_BUFFER_SIZE,
                    Err(_) => STATUS_DEVICE_NOT_READY,
                };
                complete(irp, st, if st == STATUS_SUCCESS { n } else { 0 })
            }
            (KIND_PKT0, IRP_MJ_READ) => {
                let state = &*ctx.pkt0;
                match driver.pkt0_read(buffer(irp)) {
                    Ok(n) => complete(irp, STATUS_SUCCESS, n),
                    Err(QueueError::TooLarge) => complete(irp, STATUS_BUFFER_TOO_SMALL, 0),
                    Err(QueueError::Empty | QueueError::Full) => {
                        let st = wait(state, irp, |s| &mut s.waiting);
                        // A frame may have been queued meanwhile.
                        wake_pkt0(driver);
                        st
                    }
                }
            }
            (KIND_PKT0, IRP_MJ_CLEANUP) => {
                cancel_all(&*ctx.pkt0, |s| &mut s.waiting);
                driver.pkt0_reset();
                complete(irp, STATUS_SUCCESS, 0)
            }
            (KIND_PKT0, IRP_MJ_CLOSE) => complete(irp, STATUS_SUCCESS, 0),
            _ => complete(irp, STATUS_INVALID_DEVICE_REQUEST, 0),
        }
    }
}

/// One ksync write: take the handle's session out of its lock (the
/// handler runs at PASSIVE_LEVEL and may send lists), handle, put it back
/// and satisfy a waiting read.
///
/// # Safety
/// A valid write IRP on a ksync handle.
unsafe fn ksync_write(driver: &Driver<Kernel>, fo: *mut FILE_OBJECT, irp: *mut IRP) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe {
        let open = &*(*fo).FsContext.cast::<KsyncOpen>();
        let Some(mut ses) = open.state.with(|s| s.session.take()) else {
            // Another write on this handle is in progress.
            return complete(irp, STATUS_DEVICE_BUSY, 0);
        };
        let data = buffer(irp);
        let n = data.len();
        let r = driver.ksync_write(&mut ses, data);
        let ready = open.state.with(|s| {
            s.session = Some(ses);
            take_ready(s)
        });
        for (w, len) in ready {
            complete(w, STATUS_SUCCESS, len);
        }
        match r {
            Ok(()) => complete(irp, STATUS_SUCCESS, n),
            Err(WriteError::Backlog) => complete(irp, STATUS_DEVICE_BUSY, 0),
            Err(WriteError::BadLength | WriteError::Framing) => {
                complete(irp, STATUS_INVALID_PARAMETER, 0)
            }
        }
    }
}

/// Waiting reads that can be satisfied now, with the bytes copied in.
fn take_ready(s: &mut KsyncState) -> alloc::vec::Vec<(*mut IRP, usize)> {
    let mut out = alloc::vec::Vec::new();
    let Some(ses) = s.session.as_mut() else {
        return out;
    };
    while ses.pending() > 0 {
        // SAFETY: queued IRPs are valid until completed or cancelled.
        let Some(irp) = (unsafe { dequeue(&mut s.waiting) }) else {
            break;
        };
        // SAFETY: a buffered read IRP.
        let n = ses.read(unsafe { buffer(irp) });
        out.push((irp, n));
    }
    out
}

/// The first waiting IRP whose cancel routine we could clear (one being
/// cancelled is left for its cancel routine).
///
/// # Safety
/// The queue's lock is held.
unsafe fn dequeue(w: &mut Waiting) -> Option<*mut IRP> {
    let mut i = 0;
    while let Some(&irp) = w.irps.get(i) {
        // SAFETY: a queued, valid IRP; IoSetCancelRoutine is an atomic
        // exchange of the field.
        let prev = unsafe { set_cancel_routine(irp, None) };
        if prev.is_some() {
            w.irps.remove(i);
            return Some(irp);
        }
        i += 1;
    }
    None
}

/// `IoSetCancelRoutine`.
///
/// # Safety
/// `irp` is valid.
unsafe fn set_cancel_routine(irp: *mut IRP, f: Option<DriverCancel>) -> Option<DriverCancel> {
    // SAFETY: `Option<fn>` is pointer-sized with None as null; the field
    // is exchanged atomically as IoSetCancelRoutine does.
    unsafe {
        let field = ptr::addr_of_mut!((*irp).CancelRoutine).cast::<AtomicPtr<c_void>>();
        let new = f.map_or(null_mut(), |f| f as *mut c_void);
        let old = (*field).swap(new, Ordering::AcqRel);
        if old.is_null() {
            None
        } else {
            Some(core::mem::transmute::<*mut c_void, DriverCancel>(old))
        }
    }
}

/// Queue a read until data arrives (or it is cancelled).
///
/// # Safety
/// `irp` is a valid read IRP; `state` lives until the queue is emptied.
unsafe fn wait<T>(state: &Locked<T>, irp: *mut IRP, q: fn(&mut T) -> &mut Waiting) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe {
        // The cancel routine finds the queue through the IRP.
        (*irp).DriverContext[0] = (state as *const Locked<T>).cast_mut().cast();
        (*irp).DriverContext[1] = q as *mut c_void;
        let queued = state.with(|s| {
            set_cancel_routine(irp, Some(cancel::<T>));
            if (*irp).Cancel != 0 && set_cancel_routine(irp, None).is_some() {
                return false;
            }
            (*(*irp).CurrentStackLocation).Control |= SL_PENDING_RETURNED;
            q(s).irps.push_back(irp);
            true
        });
        if queued {
            STATUS_PENDING
        } else {
            complete(irp, STATUS_CANCELLED, 0)
        }
    }
}

/// The cancel routine of a waiting read.
///
/// # Safety
/// Called by the I/O manager with the cancel spin lock held.
unsafe extern "system" fn cancel<T>(_dev: *mut DEVICE_OBJECT, irp: *mut IRP) {
    // SAFETY: set up by `wait`; the state outlives its queued IRPs.
    unsafe {
        IoReleaseCancelSpinLock((*irp).CancelIrql);
        let state = &*(*irp).DriverContext[0].cast::<Locked<T>>();
        let q: fn(&mut T) -> &mut Waiting = core::mem::transmute((*irp).DriverContext[1]);
        let removed = state.with(|s| {
            let w = q(s);
            match w.irps.iter().position(|i| *i == irp) {
                Some(p) => {
                    w.irps.remove(p);
                    true
                }
                None => false,
            }
        });
        if removed {
            complete(irp, STATUS_CANCELLED, 0);
        }
    }
}

/// Complete every waiting read with `STATUS_CANCELLED` (cleanup).
///
/// # Safety
/// `state` is valid.
unsafe fn cancel_all<T>(state: &Locked<T>, q: fn(&mut T) -> &mut Waiting) {
    let mut irps = alloc::vec::Vec::new();
    state.with(|s| {
        // SAFETY: the lock is held.
        while let Some(i) = unsafe { dequeue(q(s)) } {
            irps.push(i);
        }
    });
    for i in irps {
        // SAFETY: dequeued IRPs are ours to complete.
        unsafe { complete(i, STATUS_CANCELLED, 0) };
    }
}

/// The packet path queued trap frames: hand them to waiting reads. Runs at
/// any IRQL up to DISPATCH_LEVEL.
pub fn wake_pkt0(driver: &Driver<Kernel>) {
    let p = PKT0.load(Ordering::Acquire);
    if p.is_null() {
        return;
    }
    // SAFETY: the pkt0 state lives while the devices do.
    let state = unsafe { &*p };
    loop {
        if driver.pkt0_pending() == 0 {
            return;
        }
        // SAFETY: the lock is held inside `with`.
        let Some(irp) = state.with(|s| unsafe { dequeue(&mut s.waiting) }) else {
            return;
        };
        // SAFETY: a dequeued read IRP.
        unsafe {
            match driver.pkt0_read(buffer(irp)) {
                Ok(n) => complete(irp, STATUS_SUCCESS, n),
                Err(QueueError::TooLarge) => complete(irp, STATUS_BUFFER_TOO_SMALL, 0),
                Err(_) => {
                    // Taken by another reader meanwhile: wait again.
                    wait(state, irp, |s| &mut s.waiting)
                }
            };
        }
    }
}
