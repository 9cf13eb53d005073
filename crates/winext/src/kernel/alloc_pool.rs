//! The global allocator: non-paged, no-execute pool
//! (`ExAllocatePoolWithTag(NonPagedPoolNx, ..)`, tag `vRtr`; mingw has no
//! `ExAllocatePool2`). The forwarding path can run at DISPATCH_LEVEL, so
//! every allocation must be non-paged.
//!
//! Pool blocks are 16-byte aligned on x64; a larger alignment is served by
//! over-allocating and keeping the pool pointer just before the block.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use super::imports::{ExAllocatePoolWithTag, ExFreePoolWithTag};
use crate::ndis::oid::POOL_TAG;
use crate::wdm::NON_PAGED_POOL_NX;

/// The allocator (declared `#[global_allocator]` by the driver crate).
pub struct PoolAllocator;

const POOL_ALIGN: usize = 16;

// SAFETY: pool allocations are exclusive, at least 16-aligned and valid
// until freed; larger alignments are handled below.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= POOL_ALIGN {
            // SAFETY: a plain pool allocation.
            return unsafe {
                ExAllocatePoolWithTag(NON_PAGED_POOL_NX, layout.size().max(1), POOL_TAG)
            }
            .cast();
        }
        let Some(size) = layout.size().checked_add(layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: as above.
        let raw = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, POOL_TAG) }.cast::<u8>();
        if raw.is_null() {
            return raw;
        }
        // At least one pool-aligned word before the aligned block holds
        // the pool pointer.
        let addr = (raw as usize + core::mem::size_of::<usize>()).next_multiple_of(layout.align());
        let block = raw.wrapping_add(addr - raw as usize);
        // SAFETY: `block - 8` is inside the allocation (addr >= raw + 8).
        unsafe { block.cast::<*mut u8>().sub(1).write_unaligned(raw) };
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let raw = if layout.align() <= POOL_ALIGN {
            ptr
        } else {
            // SAFETY: written by `alloc` for this layout.
            unsafe { ptr.cast::<*mut u8>().sub(1).read_unaligned() }
        };
        // SAFETY: a block of ours.
        unsafe { ExFreePoolWithTag(raw.cast::<c_void>(), POOL_TAG) };
    }
}
