//! The I/O manager structures the kernel part uses (`wdm.h`), declared by
//! hand: only the fields it reads or writes, at their x64 offsets, with
//! padding in between. The offsets are asserted here and checked against
//! mingw-w64's `ddk/wdm.h` by `tests/layout.rs`. Compiled on every
//! platform so that the check runs in the Linux lane.

#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

use crate::ndis::types::UNICODE_STRING;

pub type NTSTATUS = i32;

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_PENDING: NTSTATUS = 0x0000_0103;
pub const STATUS_UNSUCCESSFUL: NTSTATUS = 0xC000_0001_u32 as i32;
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = 0xC000_0010_u32 as i32;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as i32;
pub const STATUS_SHARING_VIOLATION: NTSTATUS = 0xC000_0043_u32 as i32;
pub const STATUS_DEVICE_BUSY: NTSTATUS = 0x8000_0011_u32 as i32;
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = 0xC000_00A3_u32 as i32;
pub const STATUS_CANCELLED: NTSTATUS = 0xC000_0120_u32 as i32;
pub const STATUS_INVALID_BUFFER_SIZE: NTSTATUS = 0xC000_0206_u32 as i32;

pub const IRP_MJ_CREATE: usize = 0;
pub const IRP_MJ_CLOSE: usize = 2;
pub const IRP_MJ_READ: usize = 3;
pub const IRP_MJ_WRITE: usize = 4;
pub const IRP_MJ_DEVICE_CONTROL: usize = 14;
pub const IRP_MJ_CLEANUP: usize = 18;
pub const IRP_MJ_MAXIMUM_FUNCTION: usize = 27;

pub const DO_BUFFERED_IO: u32 = 0x0004;
pub const DO_DEVICE_INITIALIZING: u32 = 0x0080;
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x0100;
pub const FILE_DEVICE_NETWORK: u32 = 0x0012;
/// `POOL_TYPE` `NonPagedPoolNx`.
pub const NON_PAGED_POOL_NX: u32 = 512;
pub const SECTION_ALL_ACCESS: u32 = 0x000F_001F;
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
pub const WRITE_DAC: u32 = 0x0004_0000;
pub const SEC_COMMIT: u32 = 0x0800_0000;
pub const PAGE_READWRITE: u32 = 0x04;
pub const OBJ_CASE_INSENSITIVE: u32 = 0x40;
pub const OBJ_OPENIF: u32 = 0x80;
pub const OBJ_KERNEL_HANDLE: u32 = 0x200;
pub const DACL_SECURITY_INFORMATION: u32 = 4;
pub const ACL_REVISION: u32 = 2;
pub const SECURITY_DESCRIPTOR_REVISION: u32 = 1;
pub const IO_NO_INCREMENT: i8 = 0;
/// `KPROCESSOR_MODE` `KernelMode`.
pub const KERNEL_MODE: i8 = 0;
/// `LOCK_OPERATION` `IoModifyAccess` (read and write).
pub const IO_MODIFY_ACCESS: u32 = 2;

/// `CTL_CODE(FILE_DEVICE_NETWORK, function, METHOD_BUFFERED, access)`.
pub const fn ctl_code(function: u32, access: u32) -> u32 {
    (FILE_DEVICE_NETWORK << 16) | (access << 14) | (function << 2)
}

pub type DriverDispatch = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP) -> NTSTATUS;
pub type DriverUnload = unsafe extern "system" fn(*mut DRIVER_OBJECT);
pub type DriverCancel = unsafe extern "system" fn(*mut DEVICE_OBJECT, *mut IRP);

/// `DRIVER_OBJECT` (336 bytes).
#[repr(C)]
pub struct DRIVER_OBJECT {
    pub Type: i16,
    pub Size: i16,
    pub DeviceObject: *mut DEVICE_OBJECT,
    _pad0: [u8; 88],
    pub DriverUnload: Option<DriverUnload>,
    pub MajorFunction: [Option<DriverDispatch>; IRP_MJ_MAXIMUM_FUNCTION + 1],
}

/// `DEVICE_OBJECT` (328 bytes; allocated by `IoCreateDevice`).
#[repr(C)]
pub struct DEVICE_OBJECT {
    _pad0: [u8; 48],
    pub Flags: u32,
    pub Characteristics: u32,
    _pad1: [u8; 8],
    pub DeviceExtension: *mut c_void,
    _pad2: [u8; 256],
}

/// `IO_STATUS_BLOCK`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IO_STATUS_BLOCK {
    pub Status: NTSTATUS,
    pub Information: usize,
}

/// `LIST_ENTRY`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}

/// `IRP` (208 bytes).
#[repr(C)]
pub struct IRP {
    _pad0: [u8; 8],
    pub MdlAddress: *mut c_void,
    pub Flags: u32,
    _pad1: [u8; 4],
    /// `AssociatedIrp.SystemBuffer`.
    pub SystemBuffer: *mut c_void,
    _pad2: [u8; 16],
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: i8,
    pub PendingReturned: u8,
    _pad3: [u8; 2],
    pub Cancel: u8,
    pub CancelIrql: u8,
    _pad4: [u8; 34],
    pub CancelRoutine: Option<DriverCancel>,
    pub UserBuffer: *mut c_void,
    /// `Tail.Overlay.DriverContext`: free for the driver that owns the IRP.
    pub DriverContext: [*mut c_void; 4],
    _pad5: [u8; 16],
    pub ListEntry: LIST_ENTRY,
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    _pad6: [u8; 16],
}

/// `IO_STACK_LOCATION` (72 bytes): the `Read`/`Write`/`DeviceIoControl`
/// parameters share the first words of the union.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: u8,
    pub MinorFunction: u8,
    pub Flags: u8,
    pub Control: u8,
    _pad0: [u8; 4],
    /// `Read.Length`, `Write.Length`, `DeviceIoControl.OutputBufferLength`.
    pub Length: u32,
    _pad1: [u8; 4],
    /// `DeviceIoControl.InputBufferLength`.
    pub InputBufferLength: u32,
    _pad2: [u8; 4],
    /// `DeviceIoControl.IoControlCode`.
    pub IoControlCode: u32,
    _pad3: [u8; 12],
    pub DeviceObject: *mut DEVICE_OBJECT,
    pub FileObject: *mut FILE_OBJECT,
    _pad4: [u8; 16],
}

/// `FILE_OBJECT` (216 bytes): `FsContext` is the driver's per-open state.
#[repr(C)]
pub struct FILE_OBJECT {
    _pad0: [u8; 24],
    pub FsContext: *mut c_void,
    pub FsContext2: *mut c_void,
    _pad1: [u8; 176],
}

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
#[derive(Debug)]
pub struct OBJECT_ATTRIBUTES {
    pub Length: u32,
    pub RootDirectory: *mut c_void,
    pub ObjectName: *mut UNICODE_STRING,
    pub Attributes: u32,
    pub SecurityDescriptor: *mut c_void,
    pub SecurityQualityOfService: *mut c_void,
}

const _: () = {
    assert!(size_of::<DRIVER_OBJECT>() == 336);
    assert!(offset_of!(DRIVER_OBJECT, DeviceObject) == 8);
    assert!(offset_of!(DRIVER_OBJECT, DriverUnload) == 104);
    assert!(offset_of!(DRIVER_OBJECT, MajorFunction) == 112);
    assert!(size_of::<DEVICE_OBJECT>() == 328);
    assert!(offset_of!(DEVICE_OBJECT, Flags) == 48);
    assert!(offset_of!(DEVICE_OBJECT, Characteristics) == 52);
    assert!(offset_of!(DEVICE_OBJECT, DeviceExtension) == 64);
    assert!(size_of::<IRP>() == 208);
    assert!(offset_of!(IRP, MdlAddress) == 8);
    assert!(offset_of!(IRP, SystemBuffer) == 24);
    assert!(offset_of!(IRP, IoStatus) == 48);
    assert!(offset_of!(IRP, RequestorMode) == 64);
    assert!(offset_of!(IRP, Cancel) == 68);
    assert!(offset_of!(IRP, CancelIrql) == 69);
    assert!(offset_of!(IRP, CancelRoutine) == 104);
    assert!(offset_of!(IRP, UserBuffer) == 112);
    assert!(offset_of!(IRP, DriverContext) == 120);
    assert!(offset_of!(IRP, ListEntry) == 168);
    assert!(offset_of!(IRP, CurrentStackLocation) == 184);
    assert!(size_of::<IO_STACK_LOCATION>() == 72);
    assert!(offset_of!(IO_STACK_LOCATION, Length) == 8);
    assert!(offset_of!(IO_STACK_LOCATION, InputBufferLength) == 16);
    assert!(offset_of!(IO_STACK_LOCATION, IoControlCode) == 24);
    assert!(offset_of!(IO_STACK_LOCATION, DeviceObject) == 40);
    assert!(offset_of!(IO_STACK_LOCATION, FileObject) == 48);
    assert!(size_of::<FILE_OBJECT>() == 216);
    assert!(offset_of!(FILE_OBJECT, FsContext) == 24);
    assert!(size_of::<IO_STATUS_BLOCK>() == 16);
    assert!(size_of::<OBJECT_ATTRIBUTES>() == 48);
    assert!(offset_of!(OBJECT_ATTRIBUTES, ObjectName) == 16);
    assert!(offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor) == 32);
};
