//! `vrouter.sys`: the vRouter Forwarding Extension's driver image. All of
//! it is in `winext::kernel`; this crate only provides what a final image
//! must: the `DriverEntry` export, the global allocator (non-paged pool)
//! and the panic handler (a bug check: a panic cannot be reached from
//! packets, see `winext::kernel::bugcheck`).

#![no_std]

use winext::kernel;
use winext::ndis::types::UNICODE_STRING;
use winext::wdm::{DRIVER_OBJECT, NTSTATUS};

#[global_allocator]
static ALLOC: kernel::PoolAllocator = kernel::PoolAllocator;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kernel::bugcheck(info.location().map_or(0, |l| l.line()))
}

/// The image's entry point.
///
/// # Safety
/// Called once by the I/O manager.
#[no_mangle]
pub unsafe extern "system" fn DriverEntry(
    drv: *mut DRIVER_OBJECT,
    registry: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: the I/O manager's call.
    unsafe { kernel::driver_entry(drv, registry) }
}
