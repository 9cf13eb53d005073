//! What the driver imports: `NDIS.SYS`, `ntoskrnl.exe` and (for the
//! performance counter) `HAL.dll`, through mingw-w64's import libraries.
//! Every function is used by name exactly as the WDK documents it.

#![allow(non_snake_case, clippy::upper_case_acronyms)]

use core::ffi::c_void;

use crate::ndis::types::*;
use crate::wdm::*;

#[link(name = "ndis")]
extern "system" {
    pub fn NdisFRegisterFilterDriver(
        driver: *mut DRIVER_OBJECT,
        context: NDIS_HANDLE,
        chars: *mut NDIS_FILTER_DRIVER_CHARACTERISTICS,
        handle: *mut NDIS_HANDLE,
    ) -> NDIS_STATUS;
    pub fn NdisFDeregisterFilterDriver(handle: NDIS_HANDLE);
    pub fn NdisFSetAttributes(
        filter: NDIS_HANDLE,
        context: NDIS_HANDLE,
        attributes: *mut NDIS_FILTER_ATTRIBUTES,
    ) -> NDIS_STATUS;
    pub fn NdisFGetOptionalSwitchHandlers(
        filter: NDIS_HANDLE,
        ctx: *mut NDIS_SWITCH_CONTEXT,
        handlers: *mut NDIS_SWITCH_OPTIONAL_HANDLERS,
    ) -> NDIS_STATUS;
    pub fn NdisFSendNetBufferLists(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        port: u32,
        flags: u32,
    );
    pub fn NdisFSendNetBufferListsComplete(
        filter: NDIS_HANDLE,
        nbls: *mut NET_BUFFER_LIST,
        flags: u32,
    );
    pub fn NdisFOidRequest(filter: NDIS_HANDLE, req: *mut NDIS_OID_REQUEST) -> NDIS_STATUS;
    pub fn NdisFOidRequestComplete(
        filter: NDIS_HANDLE,
        req: *mut NDIS_OID_REQUEST,
        status: NDIS_STATUS,
    );
    pub fn NdisFCancelOidRequest(filter: NDIS_HANDLE, id: *mut c_void);
    pub fn NdisAllocateCloneOidRequest(
        filter: NDIS_HANDLE,
        req: *mut NDIS_OID_REQUEST,
        tag: u32,
        clone: *mut *mut NDIS_OID_REQUEST,
    ) -> NDIS_STATUS;
    pub fn NdisFreeCloneOidRequest(filter: NDIS_HANDLE, clone: *mut NDIS_OID_REQUEST);
    pub fn NdisFPauseComplete(filter: NDIS_HANDLE);
    pub fn NdisFNetPnPEvent(
        filter: NDIS_HANDLE,
        ev: *mut NET_PNP_EVENT_NOTIFICATION,
    ) -> NDIS_STATUS;
    pub fn NdisAllocateNetBufferListPool(
        handle: NDIS_HANDLE,
        params: *mut NET_BUFFER_LIST_POOL_PARAMETERS,
    ) -> NDIS_HANDLE;
    pub fn NdisFreeNetBufferListPool(pool: NDIS_HANDLE);
    pub fn NdisAllocateNetBufferAndNetBufferList(
        pool: NDIS_HANDLE,
        context_size: u16,
        context_backfill: u16,
        mdl: *mut MDL,
        data_offset: u32,
        data_length: usize,
    ) -> *mut NET_BUFFER_LIST;
    pub fn NdisFreeNetBufferList(nbl: *mut NET_BUFFER_LIST);
    pub fn NdisAllocateMdl(handle: NDIS_HANDLE, va: *mut c_void, length: u32) -> *mut MDL;
    pub fn NdisFreeMdl(mdl: *mut MDL);
    pub fn NdisRetreatNetBufferDataStart(
        nb: *mut NET_BUFFER,
        delta: u32,
        backfill: u32,
        allocate: *mut c_void,
    ) -> NDIS_STATUS;
    pub fn NdisAdvanceNetBufferDataStart(
        nb: *mut NET_BUFFER,
        delta: u32,
        free_mdl: u8,
        free: *mut c_void,
    );
}

#[link(name = "ntoskrnl")]
extern "system" {
    pub fn ExAllocatePoolWithTag(pool: u32, size: usize, tag: u32) -> *mut c_void;
    pub fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
    pub fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    pub fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8;
    pub fn KeReleaseSpinLock(lock: *mut usize, old: u8);
    pub fn MmMapLockedPagesSpecifyCache(
        mdl: *mut MDL,
        mode: i8,
        cache: u32,
        address: *mut c_void,
        bugcheck: u32,
        priority: u32,
    ) -> *mut c_void;
    pub fn IoCreateDevice(
        driver: *mut DRIVER_OBJECT,
        extension_size: u32,
        name: *mut UNICODE_STRING,
        device_type: u32,
        characteristics: u32,
        exclusive: u8,
        device: *mut *mut DEVICE_OBJECT,
    ) -> NTSTATUS;
    pub fn IoDeleteDevice(device: *mut DEVICE_OBJECT);
    pub fn IoCreateSymbolicLink(link: *mut UNICODE_STRING, target: *mut UNICODE_STRING)
        -> NTSTATUS;
    pub fn IoDeleteSymbolicLink(link: *mut UNICODE_STRING) -> NTSTATUS;
    pub fn IofCompleteRequest(irp: *mut IRP, boost: i8);
    pub fn IoReleaseCancelSpinLock(irql: u8);
    pub fn ObOpenObjectByPointer(
        object: *mut c_void,
        attributes: u32,
        state: *mut c_void,
        access: u32,
        object_type: *mut c_void,
        mode: i8,
        handle: *mut *mut c_void,
    ) -> NTSTATUS;
    pub fn ZwSetSecurityObject(handle: *mut c_void, info: u32, sd: *mut c_void) -> NTSTATUS;
    pub fn ZwClose(handle: *mut c_void) -> NTSTATUS;
    pub fn RtlCreateSecurityDescriptor(sd: *mut c_void, revision: u32) -> NTSTATUS;
    pub fn RtlCreateAcl(acl: *mut c_void, length: u32, revision: u32) -> NTSTATUS;
    pub fn RtlAddAccessAllowedAce(
        acl: *mut c_void,
        revision: u32,
        mask: u32,
        sid: *mut c_void,
    ) -> NTSTATUS;
    pub fn RtlSetDaclSecurityDescriptor(
        sd: *mut c_void,
        present: u8,
        acl: *mut c_void,
        defaulted: u8,
    ) -> NTSTATUS;
    pub fn ZwCreateSection(
        handle: *mut *mut c_void,
        access: u32,
        attributes: *mut OBJECT_ATTRIBUTES,
        size: *mut i64,
        protect: u32,
        allocation: u32,
        file: *mut c_void,
    ) -> NTSTATUS;
    pub fn ObReferenceObjectByHandle(
        handle: *mut c_void,
        access: u32,
        object_type: *mut c_void,
        mode: i8,
        object: *mut *mut c_void,
        info: *mut c_void,
    ) -> NTSTATUS;
    pub fn ObfDereferenceObject(object: *mut c_void) -> isize;
    pub fn MmMapViewInSystemSpace(
        section: *mut c_void,
        base: *mut *mut c_void,
        size: *mut usize,
    ) -> NTSTATUS;
    pub fn MmUnmapViewInSystemSpace(base: *mut c_void) -> NTSTATUS;
    pub fn ZwMapViewOfSection(
        section: *mut c_void,
        process: *mut c_void,
        base: *mut *mut c_void,
        zero_bits: usize,
        commit: usize,
        offset: *mut i64,
        view_size: *mut usize,
        inherit: u32,
        allocation: u32,
        protect: u32,
    ) -> NTSTATUS;
    pub fn ZwUnmapViewOfSection(process: *mut c_void, base: *mut c_void) -> NTSTATUS;
    pub fn IoAllocateMdl(
        va: *mut c_void,
        length: u32,
        secondary: u8,
        charge: u8,
        irp: *mut c_void,
    ) -> *mut MDL;
    pub fn IoFreeMdl(mdl: *mut MDL);
    pub fn MmProbeAndLockPages(mdl: *mut MDL, mode: i8, operation: u32);
    pub fn MmUnlockPages(mdl: *mut MDL);
}

#[link(name = "ntoskrnl")]
extern "C" {
    pub fn DbgPrint(fmt: *const u8, ...) -> u32;
}

#[link(name = "hal")]
extern "system" {
    pub fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64;
}
