//! NDIS 6.30 and Hyper-V extensible switch structures, declared by hand.
//!
//! mingw-w64's `ddk/ndis.h` is NDIS 5 only, so the NET_BUFFER_LIST world,
//! the filter driver structures and the switch's optional handlers are
//! written here from Microsoft's documentation (the `ndis.h` syntax blocks
//! of learn.microsoft.com's "ndis" and "nbl" references) for x64, with the
//! field order and types they give and `DECLSPEC_ALIGN(16)` where `ndis.h`
//! has it. Every structure carries compile-time size and offset asserts.
//! Those that mingw *does* declare (`ntddndis.h`: the switch port/NIC
//! parameters and arrays; `wdm.h`: `MDL`, `UNICODE_STRING`; `ndis.h`:
//! status codes, request types) are additionally checked against mingw's C
//! layout by `tests/layout.rs`, which compiles `_Static_assert`s generated
//! from these Rust types with `x86_64-w64-mingw32-gcc`.
//!
//! Only x86_64 is declared (Hyper-V's extensible switch is x64 only).

#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

pub type NDIS_STATUS = i32;
pub type NDIS_HANDLE = *mut c_void;
pub type NDIS_OID = u32;
pub type NDIS_PORT_NUMBER = u32;
pub type NDIS_SWITCH_CONTEXT = NDIS_HANDLE;
pub type NDIS_SWITCH_PORT_ID = u32;
pub type NDIS_SWITCH_NIC_INDEX = u16;

// ---- status codes (ndis.h) -------------------------------------------------

pub const NDIS_STATUS_SUCCESS: NDIS_STATUS = 0;
pub const NDIS_STATUS_PENDING: NDIS_STATUS = 0x0000_0103;
pub const NDIS_STATUS_FAILURE: NDIS_STATUS = 0xC000_0001_u32 as i32;
pub const NDIS_STATUS_RESOURCES: NDIS_STATUS = 0xC000_009A_u32 as i32;
pub const NDIS_STATUS_NOT_SUPPORTED: NDIS_STATUS = 0xC000_00BB_u32 as i32;
pub const NDIS_STATUS_INVALID_PARAMETER: NDIS_STATUS = 0xC000_000D_u32 as i32;
pub const NDIS_STATUS_REQUEST_ABORTED: NDIS_STATUS = 0xC001_000C_u32 as i32;
pub const NDIS_STATUS_INVALID_LENGTH: NDIS_STATUS = 0xC001_0014_u32 as i32;
pub const NDIS_STATUS_INVALID_DATA: NDIS_STATUS = 0xC001_0015_u32 as i32;
pub const NDIS_STATUS_BUFFER_TOO_SHORT: NDIS_STATUS = 0xC001_0016_u32 as i32;
pub const NDIS_STATUS_PAUSED: NDIS_STATUS = 0xC023_002A_u32 as i32;

// ---- object headers --------------------------------------------------------

pub const NDIS_OBJECT_TYPE_DEFAULT: u8 = 0x80;
pub const NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS: u8 = 0x8b;
pub const NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES: u8 = 0x8d;
pub const NDIS_OBJECT_TYPE_OID_REQUEST: u8 = 0x96;
pub const NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS: u8 = 0x99;
pub const NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS: u8 = 0x9a;
pub const NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS: u8 = 0x9b;
pub const NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES: u8 = 0xa2;
pub const NDIS_OBJECT_TYPE_SWITCH_OPTIONAL_HANDLERS: u8 = 0xb8;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_OBJECT_HEADER {
    pub Type: u8,
    pub Revision: u8,
    pub Size: u16,
}

impl NDIS_OBJECT_HEADER {
    pub const fn new(ty: u8, rev: u8, size: usize) -> Self {
        NDIS_OBJECT_HEADER {
            Type: ty,
            Revision: rev,
            Size: size as u16,
        }
    }
}

/// `UNICODE_STRING` / `NDIS_STRING`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    pub Length: u16,
    pub MaximumLength: u16,
    pub Buffer: *mut u16,
}

impl UNICODE_STRING {
    pub const EMPTY: UNICODE_STRING = UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };

    /// A string over a static NUL-terminated UTF-16 array.
    pub const fn from_static(s: &'static [u16]) -> Self {
        let n = if s.is_empty() { 0 } else { s.len() - 1 };
        UNICODE_STRING {
            Length: (n * 2) as u16,
            MaximumLength: (s.len() * 2) as u16,
            Buffer: s.as_ptr() as *mut u16,
        }
    }
}

/// ASCII `s` as a NUL-terminated UTF-16 array, at compile time (the loop
/// bounds keep the indices in range).
#[allow(clippy::indexing_slicing)]
pub const fn utf16z<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    let mut out = [0u16; N];
    let mut i = 0;
    while i < b.len() && i + 1 < N {
        out[i] = b[i] as u16;
        i += 1;
    }
    out
}

// ---- MDL (wdm.h) -----------------------------------------------------------

pub const MDL_MAPPED_TO_SYSTEM_VA: i16 = 0x0001;
pub const MDL_SOURCE_IS_NONPAGED_POOL: i16 = 0x0004;

#[repr(C)]
#[derive(Debug)]
pub struct MDL {
    pub Next: *mut MDL,
    pub Size: i16,
    pub MdlFlags: i16,
    pub Process: *mut c_void,
    /// The system address of the buffer's first byte (`StartVa +
    /// ByteOffset`) when mapped.
    pub MappedSystemVa: *mut c_void,
    pub StartVa: *mut c_void,
    pub ByteCount: u32,
    pub ByteOffset: u32,
}

// ---- NET_BUFFER / NET_BUFFER_LIST (nbl.h) --------------------------------

/// `NET_BUFFER` (NDIS 6.x, x64: 0xb0 bytes, 16-aligned).
#[repr(C, align(16))]
#[derive(Debug)]
pub struct NET_BUFFER {
    pub Next: *mut NET_BUFFER,
    pub CurrentMdl: *mut MDL,
    pub CurrentMdlOffset: u32,
    _pad0: u32,
    /// `NET_BUFFER_DATA_LENGTH`: a `ULONG` in a union with a `SIZE_T`; the
    /// `ULONG` half is the one NDIS's macros use.
    pub DataLength: u32,
    pub DataLengthHigh: u32,
    pub MdlChain: *mut MDL,
    pub DataOffset: u32,
    _pad1: u32,
    pub ChecksumBias: u16,
    pub Reserved: u16,
    pub NdisPoolHandle: NDIS_HANDLE,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 6],
    pub MiniportReserved: [*mut c_void; 4],
    pub DataPhysicalAddress: i64,
    pub SharedMemoryInfo: *mut c_void,
}

/// `MaxNetBufferListInfo` of NDIS 6.30 on x64.
pub const MAX_NET_BUFFER_LIST_INFO: usize = 24;
/// `NDIS_NET_BUFFER_LIST_INFO` indices used here (x64 numbering).
pub const TCP_IP_CHECKSUM_NET_BUFFER_LIST_INFO: usize = 0;
pub const TCP_LARGE_SEND_NET_BUFFER_LIST_INFO: usize = 2;
pub const IEEE_8021Q_NET_BUFFER_LIST_INFO: usize = 4;
pub const SWITCH_FORWARDING_RESERVED: usize = 18;
pub const SWITCH_FORWARDING_DETAIL: usize = 19;

/// `NET_BUFFER_LIST` (NDIS 6.30, x64). NDIS allocates lists with the
/// newest `MaxNetBufferListInfo`; this declaration covers 6.30's.
#[repr(C, align(16))]
#[derive(Debug)]
pub struct NET_BUFFER_LIST {
    pub Next: *mut NET_BUFFER_LIST,
    pub FirstNetBuffer: *mut NET_BUFFER,
    pub Context: *mut c_void,
    pub ParentNetBufferList: *mut NET_BUFFER_LIST,
    pub NdisPoolHandle: NDIS_HANDLE,
    _align_reserved: *mut c_void,
    pub NdisReserved: [*mut c_void; 2],
    pub ProtocolReserved: [*mut c_void; 4],
    pub MiniportReserved: [*mut c_void; 2],
    pub Scratch: *mut c_void,
    pub SourceHandle: NDIS_HANDLE,
    pub NblFlags: u32,
    pub ChildRefCount: i32,
    pub Flags: u32,
    pub Status: NDIS_STATUS,
    pub NetBufferListInfo: [*mut c_void; MAX_NET_BUFFER_LIST_INFO],
}

impl NET_BUFFER {
    /// A zeroed NB (the fake switch builds NBs like NDIS does).
    pub const fn zeroed() -> Self {
        // SAFETY: every field is a raw pointer or an integer.
        unsafe { core::mem::zeroed() }
    }
}

impl NET_BUFFER_LIST {
    /// A zeroed list (the fake switch builds lists like NDIS does).
    pub const fn zeroed() -> Self {
        // SAFETY: every field is a raw pointer or an integer; all-zero is
        // a valid value of each.
        unsafe { core::mem::zeroed() }
    }
}

/// `NDIS_SWITCH_FORWARDING_DETAIL_NET_BUFFER_LIST_INFO`: a `UINT64` of
/// bit fields in `NetBufferListInfo[SwitchForwardingDetail]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardingDetail(pub u64);

impl ForwardingDetail {
    pub fn num_available_destinations(self) -> u32 {
        (self.0 & 0xffff) as u32
    }
    pub fn source_port_id(self) -> NDIS_SWITCH_PORT_ID {
        ((self.0 >> 16) & 0xffff) as u32
    }
    pub fn source_nic_index(self) -> NDIS_SWITCH_NIC_INDEX {
        ((self.0 >> 32) & 0xff) as u16
    }
    pub fn native_forwarding_required(self) -> bool {
        (self.0 >> 40) & 1 != 0
    }
    pub fn is_packet_data_safe(self) -> bool {
        (self.0 >> 42) & 1 != 0
    }
    pub fn safe_packet_data_size(self) -> u32 {
        ((self.0 >> 43) & 0xfff) as u32
    }
    pub fn with_num_available_destinations(self, n: u32) -> Self {
        ForwardingDetail((self.0 & !0xffff) | u64::from(n & 0xffff))
    }
    pub fn with_source(self, port: NDIS_SWITCH_PORT_ID, nic: NDIS_SWITCH_NIC_INDEX) -> Self {
        let v = self.0 & !(0xffff << 16) & !(0xff << 32);
        ForwardingDetail(v | (u64::from(port & 0xffff) << 16) | (u64::from(nic & 0xff) << 32))
    }
    pub fn with_native_forwarding_required(self, on: bool) -> Self {
        ForwardingDetail((self.0 & !(1 << 40)) | (u64::from(on) << 40))
    }
    pub fn with_packet_data_safe(self, safe: bool, safe_size: u32) -> Self {
        let v = self.0 & !(1 << 42) & !(0xfff << 43);
        ForwardingDetail(v | (u64::from(safe) << 42) | (u64::from(safe_size & 0xfff) << 43))
    }
}

/// `NDIS_SWITCH_PORT_DESTINATION` (8 bytes; the flags are `USHORT` bit
/// fields: IsExcluded, PreserveVLAN, PreservePriority).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NDIS_SWITCH_PORT_DESTINATION {
    pub PortId: NDIS_SWITCH_PORT_ID,
    pub NicIndex: NDIS_SWITCH_NIC_INDEX,
    pub Flags: u16,
}

pub const PORT_DESTINATION_IS_EXCLUDED: u16 = 1;
pub const PORT_DESTINATION_PRESERVE_VLAN: u16 = 2;
pub const PORT_DESTINATION_PRESERVE_PRIORITY: u16 = 4;

/// `NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY`; the elements follow it in
/// the same buffer.
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY {
    pub Header: NDIS_OBJECT_HEADER,
    pub ElementSize: u32,
    pub NumElements: u32,
    pub NumDestinations: u32,
    pub FirstElement: *mut NDIS_SWITCH_PORT_DESTINATION,
}

// ---- the switch's optional handlers ---------------------------------------

pub type AllocateNetBufferListForwardingContextFn =
    unsafe extern "system" fn(NDIS_SWITCH_CONTEXT, *mut NET_BUFFER_LIST) -> NDIS_STATUS;
pub type FreeNetBufferListForwardingContextFn =
    unsafe extern "system" fn(NDIS_SWITCH_CONTEXT, *mut NET_BUFFER_LIST);
pub type SetNetBufferListSourceFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    NDIS_SWITCH_PORT_ID,
    NDIS_SWITCH_NIC_INDEX,
) -> NDIS_STATUS;
pub type AddNetBufferListDestinationFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    *mut NDIS_SWITCH_PORT_DESTINATION,
) -> NDIS_STATUS;
pub type GrowNetBufferListDestinationsFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    u32,
    *mut *mut NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY,
) -> NDIS_STATUS;
pub type GetNetBufferListDestinationsFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    *mut *mut NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY,
) -> NDIS_STATUS;
pub type UpdateNetBufferListDestinationsFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    u32,
    *mut NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY,
) -> NDIS_STATUS;
pub type CopyNetBufferListInfoFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut NET_BUFFER_LIST,
    *mut NET_BUFFER_LIST,
    u32,
) -> NDIS_STATUS;
pub type ReferenceSwitchNicFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    NDIS_SWITCH_PORT_ID,
    NDIS_SWITCH_NIC_INDEX,
) -> NDIS_STATUS;
pub type ReferenceSwitchPortFn =
    unsafe extern "system" fn(NDIS_SWITCH_CONTEXT, NDIS_SWITCH_PORT_ID) -> NDIS_STATUS;
pub type ReportFilteredNetBufferListsFn = unsafe extern "system" fn(
    NDIS_SWITCH_CONTEXT,
    *mut UNICODE_STRING,
    *mut UNICODE_STRING,
    NDIS_SWITCH_PORT_ID,
    u32,
    u32,
    *mut NET_BUFFER_LIST,
    *mut UNICODE_STRING,
);

pub const NDIS_SWITCH_OPTIONAL_HANDLERS_REVISION_1: u8 = 1;

/// `NDIS_SWITCH_OPTIONAL_HANDLERS`, revision 1 (NDIS 6.30).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_OPTIONAL_HANDLERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub AllocateNetBufferListForwardingContext: Option<AllocateNetBufferListForwardingContextFn>,
    pub FreeNetBufferListForwardingContext: Option<FreeNetBufferListForwardingContextFn>,
    pub SetNetBufferListSource: Option<SetNetBufferListSourceFn>,
    pub AddNetBufferListDestination: Option<AddNetBufferListDestinationFn>,
    pub GrowNetBufferListDestinations: Option<GrowNetBufferListDestinationsFn>,
    pub GetNetBufferListDestinations: Option<GetNetBufferListDestinationsFn>,
    pub UpdateNetBufferListDestinations: Option<UpdateNetBufferListDestinationsFn>,
    pub CopyNetBufferListInfo: Option<CopyNetBufferListInfoFn>,
    pub ReferenceSwitchNic: Option<ReferenceSwitchNicFn>,
    pub DereferenceSwitchNic: Option<ReferenceSwitchNicFn>,
    pub ReferenceSwitchPort: Option<ReferenceSwitchPortFn>,
    pub DereferenceSwitchPort: Option<ReferenceSwitchPortFn>,
    pub ReportFilteredNetBufferLists: Option<ReportFilteredNetBufferListsFn>,
}

impl NDIS_SWITCH_OPTIONAL_HANDLERS {
    pub const fn empty() -> Self {
        NDIS_SWITCH_OPTIONAL_HANDLERS {
            Header: NDIS_OBJECT_HEADER::new(
                NDIS_OBJECT_TYPE_SWITCH_OPTIONAL_HANDLERS,
                NDIS_SWITCH_OPTIONAL_HANDLERS_REVISION_1,
                size_of::<NDIS_SWITCH_OPTIONAL_HANDLERS>(),
            ),
            AllocateNetBufferListForwardingContext: None,
            FreeNetBufferListForwardingContext: None,
            SetNetBufferListSource: None,
            AddNetBufferListDestination: None,
            GrowNetBufferListDestinations: None,
            GetNetBufferListDestinations: None,
            UpdateNetBufferListDestinations: None,
            CopyNetBufferListInfo: None,
            ReferenceSwitchNic: None,
            DereferenceSwitchNic: None,
            ReferenceSwitchPort: None,
            DereferenceSwitchPort: None,
            ReportFilteredNetBufferLists: None,
        }
    }
}

// ---- the filter driver ------------------------------------------------------

pub type FilterAttachFn = unsafe extern "system" fn(
    NDIS_HANDLE,
    NDIS_HANDLE,
    *mut NDIS_FILTER_ATTACH_PARAMETERS,
) -> NDIS_STATUS;
pub type FilterDetachFn = unsafe extern "system" fn(NDIS_HANDLE);
pub type FilterRestartFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NDIS_FILTER_RESTART_PARAMETERS) -> NDIS_STATUS;
pub type FilterPauseFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NDIS_FILTER_PAUSE_PARAMETERS) -> NDIS_STATUS;
pub type FilterSendFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, NDIS_PORT_NUMBER, u32);
pub type FilterSendCompleteFn = unsafe extern "system" fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, u32);
pub type FilterCancelSendFn = unsafe extern "system" fn(NDIS_HANDLE, *mut c_void);
pub type FilterReceiveFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, NDIS_PORT_NUMBER, u32, u32);
pub type FilterReturnFn = unsafe extern "system" fn(NDIS_HANDLE, *mut NET_BUFFER_LIST, u32);
pub type FilterOidRequestFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NDIS_OID_REQUEST) -> NDIS_STATUS;
pub type FilterOidRequestCompleteFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NDIS_OID_REQUEST, NDIS_STATUS);
pub type FilterCancelOidRequestFn = unsafe extern "system" fn(NDIS_HANDLE, *mut c_void);
pub type FilterDevicePnpEventNotifyFn = unsafe extern "system" fn(NDIS_HANDLE, *mut c_void);
pub type FilterNetPnpEventFn =
    unsafe extern "system" fn(NDIS_HANDLE, *mut NET_PNP_EVENT_NOTIFICATION) -> NDIS_STATUS;
pub type FilterStatusFn = unsafe extern "system" fn(NDIS_HANDLE, *mut NDIS_STATUS_INDICATION);
pub type SetOptionsFn = unsafe extern "system" fn(NDIS_HANDLE, NDIS_HANDLE) -> NDIS_STATUS;
pub type FilterSetModuleOptionsFn = unsafe extern "system" fn(NDIS_HANDLE) -> NDIS_STATUS;

pub const NDIS_FILTER_CHARACTERISTICS_REVISION_2: u8 = 2;
/// `NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2`: through
/// `CancelDirectOidRequestHandler`.
pub const NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2: usize = 224;

/// `NDIS_FILTER_DRIVER_CHARACTERISTICS`, revision 2 (NDIS 6.1 - 6.30).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_DRIVER_CHARACTERISTICS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MajorNdisVersion: u8,
    pub MinorNdisVersion: u8,
    pub MajorDriverVersion: u8,
    pub MinorDriverVersion: u8,
    pub Flags: u32,
    pub FriendlyName: UNICODE_STRING,
    pub UniqueName: UNICODE_STRING,
    pub ServiceName: UNICODE_STRING,
    pub SetOptionsHandler: Option<SetOptionsFn>,
    pub SetFilterModuleOptionsHandler: Option<FilterSetModuleOptionsFn>,
    pub AttachHandler: Option<FilterAttachFn>,
    pub DetachHandler: Option<FilterDetachFn>,
    pub RestartHandler: Option<FilterRestartFn>,
    pub PauseHandler: Option<FilterPauseFn>,
    pub SendNetBufferListsHandler: Option<FilterSendFn>,
    pub SendNetBufferListsCompleteHandler: Option<FilterSendCompleteFn>,
    pub CancelSendNetBufferListsHandler: Option<FilterCancelSendFn>,
    pub ReceiveNetBufferListsHandler: Option<FilterReceiveFn>,
    pub ReturnNetBufferListsHandler: Option<FilterReturnFn>,
    pub OidRequestHandler: Option<FilterOidRequestFn>,
    pub OidRequestCompleteHandler: Option<FilterOidRequestCompleteFn>,
    pub CancelOidRequestHandler: Option<FilterCancelOidRequestFn>,
    pub DevicePnPEventNotifyHandler: Option<FilterDevicePnpEventNotifyFn>,
    pub NetPnPEventHandler: Option<FilterNetPnpEventFn>,
    pub StatusHandler: Option<FilterStatusFn>,
    pub DirectOidRequestHandler: Option<FilterOidRequestFn>,
    pub DirectOidRequestCompleteHandler: Option<FilterOidRequestCompleteFn>,
    pub CancelDirectOidRequestHandler: Option<FilterCancelOidRequestFn>,
}

/// `NdisMedium802_3`.
pub const NDIS_MEDIUM_802_3: u32 = 0;

/// `NDIS_FILTER_ATTACH_PARAMETERS` (through NDIS 6.30's fields).
#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_ATTACH_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub IfIndex: u32,
    pub NetLuid: u64,
    pub FilterModuleGuidName: *mut UNICODE_STRING,
    pub BaseMiniportIfIndex: u32,
    pub BaseMiniportInstanceName: *mut UNICODE_STRING,
    pub BaseMiniportName: *mut UNICODE_STRING,
    pub MediaConnectState: u32,
    pub MediaDuplexState: u32,
    pub XmitLinkSpeed: u64,
    pub RcvLinkSpeed: u64,
    pub MiniportMediaType: u32,
    pub MiniportPhysicalMediaType: u32,
    pub MiniportMediaSpecificAttributes: NDIS_HANDLE,
    pub DefaultOffloadConfiguration: *mut c_void,
    pub MacAddressLength: u16,
    pub CurrentMacAddress: [u8; 32],
    pub BaseMiniportNetLuid: u64,
    pub LowerIfIndex: u32,
    pub LowerIfNetLuid: u64,
    pub Flags: u32,
    pub HDSplitCurrentConfig: *mut c_void,
    pub ReceiveFilterCapabilities: *mut c_void,
    pub MiniportPhysicalDeviceObject: *mut c_void,
    pub NicSwitchCapabilities: *mut c_void,
    pub BaseMiniportIfConnectorPresent: u8,
    pub SriovCapabilities: *mut c_void,
    pub NicSwitchArray: *mut c_void,
}

pub const NDIS_FILTER_ATTRIBUTES_REVISION_1: u8 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_FILTER_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
}

#[repr(C)]
#[derive(Debug)]
pub struct NDIS_RESTART_ATTRIBUTES {
    pub Next: *mut NDIS_RESTART_ATTRIBUTES,
    pub Oid: NDIS_OID,
    pub DataLength: u32,
    pub Data: [u8; 1],
}

/// `OID_GEN_MINIPORT_RESTART_ATTRIBUTES`: the restart attribute that holds
/// an [`NDIS_RESTART_GENERAL_ATTRIBUTES`].
pub const OID_GEN_MINIPORT_RESTART_ATTRIBUTES: NDIS_OID = 0x0001_021D;

#[repr(C)]
#[derive(Debug)]
pub struct NDIS_RESTART_GENERAL_ATTRIBUTES {
    pub Header: NDIS_OBJECT_HEADER,
    pub MtuSize: u32,
    pub MaxXmitLinkSpeed: u64,
    pub MaxRcvLinkSpeed: u64,
    pub LookaheadSize: u32,
    pub MacOptions: u32,
    pub SupportedPacketFilters: u32,
    pub MaxMulticastListSize: u32,
    pub RecvScaleCapabilities: *mut c_void,
    pub AccessType: u32,
    pub Flags: u32,
    pub ConnectionType: u32,
    pub SupportedStatistics: u32,
    pub DataBackFillSize: u32,
    pub ContextBackFillSize: u32,
    pub SupportedOidList: *mut NDIS_OID,
    pub SupportedOidListLength: u32,
    pub MaxLookaheadSizeAccessed: u32,
}

#[repr(C)]
#[derive(Debug)]
pub struct NDIS_FILTER_RESTART_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub MiniportMediaType: u32,
    pub MiniportPhysicalMediaType: u32,
    pub RestartAttributes: *mut NDIS_RESTART_ATTRIBUTES,
    pub LowerIfIndex: u32,
    pub LowerIfNetLuid: u64,
    pub Flags: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_FILTER_PAUSE_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub PauseReason: u32,
}

// ---- OID requests ---------------------------------------------------------

pub const NDIS_REQUEST_QUERY_INFORMATION: u32 = 0;
pub const NDIS_REQUEST_SET_INFORMATION: u32 = 1;
pub const NDIS_REQUEST_QUERY_STATISTICS: u32 = 2;
pub const NDIS_REQUEST_METHOD: u32 = 12;

pub const NDIS_OID_REQUEST_REVISION_1: u8 = 1;
/// `NDIS_SIZEOF_OID_REQUEST_REVISION_1`: through `Reserved2`.
pub const NDIS_SIZEOF_OID_REQUEST_REVISION_1: usize = 236;

/// The `QUERY_INFORMATION` / `SET_INFORMATION` member of the `DATA` union
/// (same layout; for a set, `BytesWritten` is `BytesRead`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OID_QUERY_SET {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InformationBufferLength: u32,
    pub BytesWrittenOrRead: u32,
    pub BytesNeeded: u32,
}

/// The `METHOD_INFORMATION` member.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OID_METHOD {
    pub Oid: NDIS_OID,
    pub InformationBuffer: *mut c_void,
    pub InputBufferLength: u32,
    pub OutputBufferLength: u32,
    pub MethodId: u32,
    pub BytesWritten: u32,
    pub BytesRead: u32,
    pub BytesNeeded: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union OID_DATA {
    pub QUERY_SET: OID_QUERY_SET,
    pub METHOD: OID_METHOD,
}

/// `NDIS_OID_REQUEST` (revision 1 fields, then NDIS 6.50's three).
#[repr(C)]
pub struct NDIS_OID_REQUEST {
    pub Header: NDIS_OBJECT_HEADER,
    pub RequestType: u32,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub Timeout: u32,
    pub RequestId: *mut c_void,
    pub RequestHandle: NDIS_HANDLE,
    pub DATA: OID_DATA,
    pub NdisReserved: [*mut c_void; 16],
    pub MiniportReserved: [*mut c_void; 2],
    pub SourceReserved: [*mut c_void; 2],
    pub SupportedRevision: u8,
    pub Reserved1: u8,
    pub Reserved2: u16,
    pub SwitchId: u32,
    pub VPortId: u32,
    pub Flags: u32,
}

impl core::fmt::Debug for NDIS_OID_REQUEST {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NDIS_OID_REQUEST")
            .field("RequestType", &self.RequestType)
            .finish()
    }
}

impl NDIS_OID_REQUEST {
    pub const fn zeroed() -> Self {
        // SAFETY: integers, raw pointers and a union of those: all-zero is
        // valid.
        unsafe { core::mem::zeroed() }
    }

    /// The OID, whatever the request type.
    pub fn oid(&self) -> NDIS_OID {
        // SAFETY: `Oid` is the first field of every member of the union.
        unsafe { self.DATA.QUERY_SET.Oid }
    }

    /// (buffer, length) of a query or set.
    pub fn query_set(&self) -> OID_QUERY_SET {
        // SAFETY: both members are plain data; for a method request the
        // first fields still overlay `Oid` and `InformationBuffer`.
        unsafe { self.DATA.QUERY_SET }
    }
}

// ---- PnP and status ---------------------------------------------------------

/// `NetEventSwitchActivate` (`NET_PNP_EVENT_CODE`).
pub const NET_EVENT_SWITCH_ACTIVATE: u32 = 17;
pub const NET_EVENT_PAUSE: u32 = 8;
pub const NET_EVENT_RESTART: u32 = 9;

#[repr(C)]
#[derive(Debug)]
pub struct NET_PNP_EVENT {
    pub NetEvent: u32,
    pub Buffer: *mut c_void,
    pub BufferLength: u32,
    pub NdisReserved: [usize; 4],
    pub TransportReserved: [usize; 4],
    pub TdiReserved: [usize; 4],
    pub TdiClientReserved: [usize; 4],
}

#[repr(C)]
#[derive(Debug)]
pub struct NET_PNP_EVENT_NOTIFICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub NetPnPEvent: NET_PNP_EVENT,
}

#[repr(C)]
#[derive(Debug)]
pub struct NDIS_STATUS_INDICATION {
    pub Header: NDIS_OBJECT_HEADER,
    pub SourceHandle: NDIS_HANDLE,
    pub PortNumber: NDIS_PORT_NUMBER,
    pub StatusCode: NDIS_STATUS,
    pub Flags: u32,
    pub DestinationHandle: NDIS_HANDLE,
    pub RequestId: *mut c_void,
    pub StatusBuffer: *mut c_void,
    pub StatusBufferSize: u32,
    pub Guid: [u8; 16],
    pub NdisReserved: [*mut c_void; 4],
}

// ---- NBL pools ---------------------------------------------------------------

pub const NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_PROTOCOL_ID_DEFAULT`.
pub const NDIS_PROTOCOL_ID_DEFAULT: u8 = 0;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NET_BUFFER_LIST_POOL_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub ProtocolId: u8,
    pub fAllocateNetBuffer: u8,
    pub ContextSize: u16,
    pub PoolTag: u32,
    pub DataSize: u32,
}

/// `NDIS_SPIN_LOCK`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct NDIS_SPIN_LOCK {
    pub SpinLock: usize,
    pub OldIrql: u8,
}

// ---- send / receive flags ----------------------------------------------

pub const NDIS_SEND_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_SEND_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_0010;
pub const NDIS_SEND_FLAGS_SWITCH_DESTINATION_GROUP: u32 = 0x0000_0020;
pub const NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
pub const NDIS_SEND_COMPLETE_FLAGS_SWITCH_SINGLE_SOURCE: u32 = 0x0000_0002;
pub const NDIS_RETURN_FLAGS_DISPATCH_LEVEL: u32 = 0x0000_0001;
/// `NDIS_DEFAULT_PORT_NUMBER`.
pub const NDIS_DEFAULT_PORT_NUMBER: NDIS_PORT_NUMBER = 0;

// ---- the switch's OIDs and parameters (ntddndis.h) -------------------------

pub const OID_SWITCH_PROPERTY_ADD: NDIS_OID = 0x0001_0263;
pub const OID_SWITCH_NIC_REQUEST: NDIS_OID = 0x0001_0270;
pub const OID_SWITCH_PARAMETERS: NDIS_OID = 0x0001_0275;
pub const OID_SWITCH_PORT_ARRAY: NDIS_OID = 0x0001_0276;
pub const OID_SWITCH_NIC_ARRAY: NDIS_OID = 0x0001_0277;
pub const OID_SWITCH_PORT_CREATE: NDIS_OID = 0x0001_0278;
pub const OID_SWITCH_PORT_DELETE: NDIS_OID = 0x0001_0279;
pub const OID_SWITCH_NIC_CREATE: NDIS_OID = 0x0001_027a;
pub const OID_SWITCH_NIC_CONNECT: NDIS_OID = 0x0001_027b;
pub const OID_SWITCH_NIC_DISCONNECT: NDIS_OID = 0x0001_027c;
pub const OID_SWITCH_NIC_DELETE: NDIS_OID = 0x0001_027d;
pub const OID_SWITCH_PORT_TEARDOWN: NDIS_OID = 0x0001_027f;
pub const OID_SWITCH_NIC_UPDATED: NDIS_OID = 0x0001_0294;
pub const OID_SWITCH_PORT_UPDATED: NDIS_OID = 0x0001_0295;

/// `NDIS_MAX_PHYS_ADDRESS_LENGTH` (`IF_MAX_PHYS_ADDRESS_LENGTH`).
pub const NDIS_MAX_PHYS_ADDRESS_LENGTH: usize = 32;
/// `IF_MAX_STRING_SIZE`.
pub const IF_MAX_STRING_SIZE: usize = 256;

/// `NDIS_IF_COUNTED_STRING` (`IF_COUNTED_STRING`): `Length` in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_IF_COUNTED_STRING {
    pub Length: u16,
    pub String: [u16; IF_MAX_STRING_SIZE + 1],
}

impl NDIS_IF_COUNTED_STRING {
    pub const EMPTY: Self = NDIS_IF_COUNTED_STRING {
        Length: 0,
        String: [0; IF_MAX_STRING_SIZE + 1],
    };

    /// `s` (truncated to 256 UTF-16 units).
    pub fn of(s: &str) -> Self {
        let mut c = Self::EMPTY;
        let mut n = 0;
        for (dst, u) in c
            .String
            .iter_mut()
            .take(IF_MAX_STRING_SIZE)
            .zip(s.encode_utf16())
        {
            *dst = u;
            n += 1;
        }
        c.Length = (n * 2) as u16;
        c
    }

    /// The string, lossily (bad UTF-16 becomes U+FFFD).
    pub fn to_text(&self) -> alloc::string::String {
        let n = (usize::from(self.Length) / 2).min(IF_MAX_STRING_SIZE);
        char::decode_utf16(self.String.iter().take(n).copied())
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub SwitchName: NDIS_IF_COUNTED_STRING,
    pub SwitchFriendlyName: NDIS_IF_COUNTED_STRING,
    pub NumSwitchPorts: u32,
    pub IsActive: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_PORT_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub PortId: NDIS_SWITCH_PORT_ID,
    pub PortName: NDIS_IF_COUNTED_STRING,
    pub PortFriendlyName: NDIS_IF_COUNTED_STRING,
    pub PortType: u32,
    pub IsValidationPort: u8,
    pub PortState: u32,
}

pub const NDIS_SWITCH_NIC_PARAMETERS_REVISION_1: u8 = 1;
/// `NDIS_SWITCH_NIC_STATE`.
pub const NDIS_SWITCH_NIC_STATE_CREATED: u32 = 1;
pub const NDIS_SWITCH_NIC_STATE_CONNECTED: u32 = 2;
pub const NDIS_SWITCH_NIC_STATE_DISCONNECTED: u32 = 3;
pub const NDIS_SWITCH_NIC_STATE_DELETED: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_NIC_PARAMETERS {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub NicName: NDIS_IF_COUNTED_STRING,
    pub NicFriendlyName: NDIS_IF_COUNTED_STRING,
    pub PortId: NDIS_SWITCH_PORT_ID,
    pub NicIndex: NDIS_SWITCH_NIC_INDEX,
    pub NicType: u32,
    pub NicState: u32,
    pub VmName: NDIS_IF_COUNTED_STRING,
    pub VmFriendlyName: NDIS_IF_COUNTED_STRING,
    pub NetCfgInstanceId: [u8; 16],
    pub MTU: u32,
    pub NumaNodeId: u16,
    pub PermanentMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    pub VMMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    pub CurrentMacAddress: [u8; NDIS_MAX_PHYS_ADDRESS_LENGTH],
    pub VFAssigned: u8,
}

/// `NDIS_SWITCH_NIC_ARRAY` / `NDIS_SWITCH_PORT_ARRAY`: the elements start
/// `FirstElementOffset` bytes after the header, `ElementSize` apart.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_NIC_ARRAY {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub FirstElementOffset: u16,
    pub NumElements: u32,
    pub ElementSize: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NDIS_SWITCH_NIC_OID_REQUEST {
    pub Header: NDIS_OBJECT_HEADER,
    pub Flags: u32,
    pub SourcePortId: NDIS_SWITCH_PORT_ID,
    pub SourceNicIndex: NDIS_SWITCH_NIC_INDEX,
    pub DestinationPortId: NDIS_SWITCH_PORT_ID,
    pub DestinationNicIndex: NDIS_SWITCH_NIC_INDEX,
    pub OidRequest: *mut NDIS_OID_REQUEST,
}

// ---- layout checks (x64, from the documented field order) -------------------

const _: () = {
    assert!(size_of::<NDIS_OBJECT_HEADER>() == 4);
    assert!(size_of::<UNICODE_STRING>() == 16);
    assert!(size_of::<MDL>() == 0x30);
    assert!(offset_of!(MDL, MappedSystemVa) == 0x18);
    assert!(offset_of!(MDL, ByteCount) == 0x28);
    // NET_BUFFER: NET_BUFFER_HEADER is 0x30, the whole 0xb0 (16-aligned).
    assert!(offset_of!(NET_BUFFER, CurrentMdl) == 0x08);
    assert!(offset_of!(NET_BUFFER, CurrentMdlOffset) == 0x10);
    assert!(offset_of!(NET_BUFFER, DataLength) == 0x18);
    assert!(offset_of!(NET_BUFFER, MdlChain) == 0x20);
    assert!(offset_of!(NET_BUFFER, DataOffset) == 0x28);
    assert!(offset_of!(NET_BUFFER, ChecksumBias) == 0x30);
    assert!(offset_of!(NET_BUFFER, NdisPoolHandle) == 0x38);
    assert!(offset_of!(NET_BUFFER, NdisReserved) == 0x40);
    assert!(offset_of!(NET_BUFFER, ProtocolReserved) == 0x50);
    assert!(offset_of!(NET_BUFFER, MiniportReserved) == 0x80);
    assert!(offset_of!(NET_BUFFER, DataPhysicalAddress) == 0xa0);
    assert!(size_of::<NET_BUFFER>() == 0xb0);
    // NET_BUFFER_LIST: the DECLSPEC_ALIGN(16) reserved arrays.
    assert!(offset_of!(NET_BUFFER_LIST, FirstNetBuffer) == 0x08);
    assert!(offset_of!(NET_BUFFER_LIST, NdisPoolHandle) == 0x20);
    assert!(offset_of!(NET_BUFFER_LIST, NdisReserved) == 0x30);
    assert!(offset_of!(NET_BUFFER_LIST, ProtocolReserved) == 0x40);
    assert!(offset_of!(NET_BUFFER_LIST, MiniportReserved) == 0x60);
    assert!(offset_of!(NET_BUFFER_LIST, SourceHandle) == 0x78);
    assert!(offset_of!(NET_BUFFER_LIST, NblFlags) == 0x80);
    assert!(offset_of!(NET_BUFFER_LIST, Status) == 0x8c);
    assert!(offset_of!(NET_BUFFER_LIST, NetBufferListInfo) == 0x90);
    assert!(size_of::<NET_BUFFER_LIST>() == 0x90 + 8 * MAX_NET_BUFFER_LIST_INFO);
    assert!(size_of::<NDIS_SWITCH_PORT_DESTINATION>() == 8);
    assert!(size_of::<NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY>() == 0x18);
    assert!(offset_of!(NDIS_SWITCH_FORWARDING_DESTINATION_ARRAY, FirstElement) == 0x10);
    // Revision 1: the header and 13 handlers.
    assert!(size_of::<NDIS_SWITCH_OPTIONAL_HANDLERS>() == 8 + 13 * 8);
    assert!(
        size_of::<NDIS_FILTER_DRIVER_CHARACTERISTICS>()
            == NDIS_SIZEOF_FILTER_DRIVER_CHARACTERISTICS_REVISION_2
    );
    assert!(offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, FriendlyName) == 16);
    assert!(offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, SetOptionsHandler) == 64);
    assert!(offset_of!(NDIS_FILTER_DRIVER_CHARACTERISTICS, StatusHandler) == 192);
    assert!(offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, MiniportMediaType) == 72);
    assert!(offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, CurrentMacAddress) == 98);
    assert!(offset_of!(NDIS_FILTER_ATTACH_PARAMETERS, NicSwitchArray) == 216);
    assert!(size_of::<NDIS_FILTER_ATTACH_PARAMETERS>() == 224);
    assert!(size_of::<NDIS_FILTER_ATTRIBUTES>() == 8);
    assert!(size_of::<NDIS_FILTER_RESTART_PARAMETERS>() == 48);
    assert!(offset_of!(NDIS_FILTER_RESTART_PARAMETERS, RestartAttributes) == 16);
    assert!(offset_of!(NDIS_RESTART_ATTRIBUTES, Data) == 16);
    assert!(offset_of!(NDIS_RESTART_GENERAL_ATTRIBUTES, DataBackFillSize) == 64);
    assert!(size_of::<NDIS_RESTART_GENERAL_ATTRIBUTES>() == 88);
    assert!(size_of::<NDIS_FILTER_PAUSE_PARAMETERS>() == 12);
    assert!(offset_of!(NDIS_OID_REQUEST, DATA) == 32);
    assert!(size_of::<OID_DATA>() == 40);
    assert!(offset_of!(NDIS_OID_REQUEST, SourceReserved) == 216);
    assert!(offset_of!(NDIS_OID_REQUEST, Reserved2) + 2 == NDIS_SIZEOF_OID_REQUEST_REVISION_1);
    assert!(size_of::<NDIS_OID_REQUEST>() == 248);
    assert!(offset_of!(NET_PNP_EVENT_NOTIFICATION, NetPnPEvent) == 8);
    assert!(size_of::<NET_PNP_EVENT>() == 152);
    assert!(offset_of!(NDIS_STATUS_INDICATION, StatusBufferSize) == 56);
    assert!(size_of::<NET_BUFFER_LIST_POOL_PARAMETERS>() == 16);
    // ntddndis.h types (also checked against mingw's C by tests/layout.rs).
    assert!(size_of::<NDIS_IF_COUNTED_STRING>() == 516);
    assert!(size_of::<NDIS_SWITCH_NIC_PARAMETERS>() == 2208);
    assert!(offset_of!(NDIS_SWITCH_NIC_PARAMETERS, PortId) == 1040);
    assert!(offset_of!(NDIS_SWITCH_NIC_PARAMETERS, NetCfgInstanceId) == 2088);
    assert!(offset_of!(NDIS_SWITCH_NIC_PARAMETERS, CurrentMacAddress) == 2174);
    assert!(size_of::<NDIS_SWITCH_PORT_PARAMETERS>() == 1056);
    assert!(size_of::<NDIS_SWITCH_PARAMETERS>() == 1048);
    assert!(size_of::<NDIS_SWITCH_NIC_ARRAY>() == 20);
    assert!(size_of::<NDIS_SWITCH_NIC_OID_REQUEST>() == 32);
};
