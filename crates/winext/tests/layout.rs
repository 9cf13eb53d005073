//! The hand-declared NDIS / switch / I/O manager structures against
//! mingw-w64's C headers: this test writes `_Static_assert`s of every size,
//! offset and constant the Rust declarations have, for the types mingw
//! declares too (`ntddndis.h`: the switch parameters and arrays, OIDs,
//! object types; `ddk/wdm.h`: MDL, IRP, DRIVER_OBJECT, ...; `ddk/ndis.h`:
//! status codes, request types), and compiles them with
//! `x86_64-w64-mingw32-gcc -fsyntax-only`. A mismatch is a compile error
//! naming the field. The rest (NET_BUFFER_LIST, the filter and switch
//! handler structures, which mingw lacks) carry their own asserts, taken
//! from Microsoft's documentation, in `ndis::types`.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::process::Command;

use winext::ndis::types::*;
use winext::wdm::*;

const GCC: &str = "x86_64-w64-mingw32-gcc";

struct C(String);

impl C {
    fn new(includes: &str) -> Self {
        C(format!("{includes}\n#include <stddef.h>\n"))
    }
    fn size(&mut self, c: &str, n: usize) {
        writeln!(
            self.0,
            "_Static_assert(sizeof({c}) == {n}, \"sizeof {c}\");"
        )
        .unwrap();
    }
    fn off(&mut self, c: &str, field: &str, n: usize) {
        writeln!(
            self.0,
            "_Static_assert(offsetof({c}, {field}) == {n}, \"{c}.{field}\");"
        )
        .unwrap();
    }
    fn val(&mut self, c: &str, n: i64) {
        writeln!(
            self.0,
            "_Static_assert((long long)({c}) == {n}LL, \"{c}\");"
        )
        .unwrap();
    }
}

fn compile(name: &str, c: &C, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join(name);
    std::fs::write(&f, &c.0).unwrap();
    let out = Command::new(GCC)
        .args(flags)
        .args(["-fsyntax-only", "-x", "c", "-std=c11"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: the Rust declarations differ from mingw's:\n{}\n--- source ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.0
    );
}

fn have_gcc() -> bool {
    if Command::new(GCC).arg("--version").output().is_ok() {
        return true;
    }
    // The test command installs mingw-w64 (scripts/lib/deps.sh).
    assert!(std::env::var_os("CI").is_none(), "{GCC} missing in CI");
    println!("SKIP: {GCC} not installed (apt-get install gcc-mingw-w64-x86-64)");
    false
}

#[test]
fn switch_structures_match_ntddndis_h() {
    if !have_gcc() {
        return;
    }
    let mut c = C::new("#include <winsock2.h>\n#include <windows.h>\n#include <ntddndis.h>");
    c.size("NDIS_OBJECT_HEADER", size_of::<NDIS_OBJECT_HEADER>());
    c.size(
        "NDIS_IF_COUNTED_STRING",
        size_of::<NDIS_IF_COUNTED_STRING>(),
    );
    type Nic = NDIS_SWITCH_NIC_PARAMETERS;
    c.size("NDIS_SWITCH_NIC_PARAMETERS", size_of::<Nic>());
    for (f, o) in [
        ("Flags", offset_of!(Nic, Flags)),
        ("NicName", offset_of!(Nic, NicName)),
        ("NicFriendlyName", offset_of!(Nic, NicFriendlyName)),
        ("PortId", offset_of!(Nic, PortId)),
        ("NicIndex", offset_of!(Nic, NicIndex)),
        ("NicType", offset_of!(Nic, NicType)),
        ("NicState", offset_of!(Nic, NicState)),
        ("VmName", offset_of!(Nic, VmName)),
        ("VmFriendlyName", offset_of!(Nic, VmFriendlyName)),
        ("NetCfgInstanceId", offset_of!(Nic, NetCfgInstanceId)),
        ("MTU", offset_of!(Nic, MTU)),
        ("NumaNodeId", offset_of!(Nic, NumaNodeId)),
        ("PermanentMacAddress", offset_of!(Nic, PermanentMacAddress)),
        ("VMMacAddress", offset_of!(Nic, VMMacAddress)),
        ("CurrentMacAddress", offset_of!(Nic, CurrentMacAddress)),
        ("VFAssigned", offset_of!(Nic, VFAssigned)),
    ] {
        c.off("NDIS_SWITCH_NIC_PARAMETERS", f, o);
    }
    type Port = NDIS_SWITCH_PORT_PARAMETERS;
    c.size("NDIS_SWITCH_PORT_PARAMETERS", size_of::<Port>());
    for (f, o) in [
        ("PortId", offset_of!(Port, PortId)),
        ("PortName", offset_of!(Port, PortName)),
        ("PortFriendlyName", offset_of!(Port, PortFriendlyName)),
        ("PortType", offset_of!(Port, PortType)),
        ("IsValidationPort", offset_of!(Port, IsValidationPort)),
        ("PortState", offset_of!(Port, PortState)),
    ] {
        c.off("NDIS_SWITCH_PORT_PARAMETERS", f, o);
    }
    type Sw = NDIS_SWITCH_PARAMETERS;
    c.size("NDIS_SWITCH_PARAMETERS", size_of::<Sw>());
    c.off(
        "NDIS_SWITCH_PARAMETERS",
        "NumSwitchPorts",
        offset_of!(Sw, NumSwitchPorts),
    );
    c.off(
        "NDIS_SWITCH_PARAMETERS",
        "IsActive",
        offset_of!(Sw, IsActive),
    );
    type Arr = NDIS_SWITCH_NIC_ARRAY;
    c.size("NDIS_SWITCH_NIC_ARRAY", size_of::<Arr>());
    c.size("NDIS_SWITCH_PORT_ARRAY", size_of::<Arr>());
    c.off(
        "NDIS_SWITCH_NIC_ARRAY",
        "FirstElementOffset",
        offset_of!(Arr, FirstElementOffset),
    );
    c.off(
        "NDIS_SWITCH_NIC_ARRAY",
        "NumElements",
        offset_of!(Arr, NumElements),
    );
    c.off(
        "NDIS_SWITCH_NIC_ARRAY",
        "ElementSize",
        offset_of!(Arr, ElementSize),
    );
    type Req = NDIS_SWITCH_NIC_OID_REQUEST;
    c.size("NDIS_SWITCH_NIC_OID_REQUEST", size_of::<Req>());
    c.off(
        "NDIS_SWITCH_NIC_OID_REQUEST",
        "OidRequest",
        offset_of!(Req, OidRequest),
    );
    for (n, v) in [
        ("OID_SWITCH_NIC_REQUEST", OID_SWITCH_NIC_REQUEST),
        ("OID_SWITCH_PARAMETERS", OID_SWITCH_PARAMETERS),
        ("OID_SWITCH_PORT_ARRAY", OID_SWITCH_PORT_ARRAY),
        ("OID_SWITCH_NIC_ARRAY", OID_SWITCH_NIC_ARRAY),
        ("OID_SWITCH_PORT_CREATE", OID_SWITCH_PORT_CREATE),
        ("OID_SWITCH_PORT_DELETE", OID_SWITCH_PORT_DELETE),
        ("OID_SWITCH_NIC_CREATE", OID_SWITCH_NIC_CREATE),
        ("OID_SWITCH_NIC_CONNECT", OID_SWITCH_NIC_CONNECT),
        ("OID_SWITCH_NIC_DISCONNECT", OID_SWITCH_NIC_DISCONNECT),
        ("OID_SWITCH_NIC_DELETE", OID_SWITCH_NIC_DELETE),
        ("OID_SWITCH_PORT_TEARDOWN", OID_SWITCH_PORT_TEARDOWN),
        ("OID_SWITCH_NIC_UPDATED", OID_SWITCH_NIC_UPDATED),
        ("OID_SWITCH_PORT_UPDATED", OID_SWITCH_PORT_UPDATED),
        ("OID_SWITCH_PROPERTY_ADD", OID_SWITCH_PROPERTY_ADD),
        (
            "OID_GEN_MINIPORT_RESTART_ATTRIBUTES",
            OID_GEN_MINIPORT_RESTART_ATTRIBUTES,
        ),
    ] {
        c.val(n, i64::from(v));
    }
    for (n, v) in [
        ("NDIS_OBJECT_TYPE_DEFAULT", NDIS_OBJECT_TYPE_DEFAULT),
        (
            "NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS",
            NDIS_OBJECT_TYPE_FILTER_DRIVER_CHARACTERISTICS,
        ),
        (
            "NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES",
            NDIS_OBJECT_TYPE_FILTER_ATTRIBUTES,
        ),
        ("NDIS_OBJECT_TYPE_OID_REQUEST", NDIS_OBJECT_TYPE_OID_REQUEST),
        (
            "NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS",
            NDIS_OBJECT_TYPE_FILTER_ATTACH_PARAMETERS,
        ),
        (
            "NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS",
            NDIS_OBJECT_TYPE_FILTER_PAUSE_PARAMETERS,
        ),
        (
            "NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS",
            NDIS_OBJECT_TYPE_FILTER_RESTART_PARAMETERS,
        ),
        (
            "NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES",
            NDIS_OBJECT_TYPE_RESTART_GENERAL_ATTRIBUTES,
        ),
        (
            "NDIS_OBJECT_TYPE_SWITCH_OPTIONAL_HANDLERS",
            NDIS_OBJECT_TYPE_SWITCH_OPTIONAL_HANDLERS,
        ),
        (
            "NDIS_SWITCH_NIC_PARAMETERS_REVISION_1",
            NDIS_SWITCH_NIC_PARAMETERS_REVISION_1,
        ),
    ] {
        c.val(n, i64::from(v));
    }
    for (n, v) in [
        ("NdisSwitchNicStateCreated", NDIS_SWITCH_NIC_STATE_CREATED),
        (
            "NdisSwitchNicStateConnected",
            NDIS_SWITCH_NIC_STATE_CONNECTED,
        ),
        (
            "NdisSwitchNicStateDisconnected",
            NDIS_SWITCH_NIC_STATE_DISCONNECTED,
        ),
        ("NdisSwitchNicStateDeleted", NDIS_SWITCH_NIC_STATE_DELETED),
        ("NdisSwitchNicTypeExternal", 0),
        ("NdisSwitchNicTypeSynthetic", 1),
        ("NdisSwitchNicTypeEmulated", 2),
        ("NdisSwitchNicTypeInternal", 3),
        (
            "NDIS_MAX_PHYS_ADDRESS_LENGTH",
            NDIS_MAX_PHYS_ADDRESS_LENGTH as u32,
        ),
        ("IF_MAX_STRING_SIZE", IF_MAX_STRING_SIZE as u32),
    ] {
        c.val(n, i64::from(v));
    }
    compile("ntddndis_check.c", &c, &["-DUM_NDIS630"]);
}

#[test]
fn io_manager_structures_match_wdm_h() {
    if !have_gcc() {
        return;
    }
    let ddk = "-I/usr/x86_64-w64-mingw32/include/ddk";
    let mut c = C::new("#include <ntddk.h>");
    c.size("MDL", size_of::<MDL>());
    c.off("MDL", "MappedSystemVa", offset_of!(MDL, MappedSystemVa));
    c.off("MDL", "StartVa", offset_of!(MDL, StartVa));
    c.off("MDL", "ByteCount", offset_of!(MDL, ByteCount));
    c.off("MDL", "ByteOffset", offset_of!(MDL, ByteOffset));
    c.off("MDL", "MdlFlags", offset_of!(MDL, MdlFlags));
    c.size("UNICODE_STRING", size_of::<UNICODE_STRING>());
    c.off(
        "UNICODE_STRING",
        "Buffer",
        offset_of!(UNICODE_STRING, Buffer),
    );
    c.size("DRIVER_OBJECT", size_of::<DRIVER_OBJECT>());
    c.off(
        "DRIVER_OBJECT",
        "DeviceObject",
        offset_of!(DRIVER_OBJECT, DeviceObject),
    );
    c.off(
        "DRIVER_OBJECT",
        "DriverUnload",
        offset_of!(DRIVER_OBJECT, DriverUnload),
    );
    c.off(
        "DRIVER_OBJECT",
        "MajorFunction",
        offset_of!(DRIVER_OBJECT, MajorFunction),
    );
    c.size("DEVICE_OBJECT", size_of::<DEVICE_OBJECT>());
    c.off("DEVICE_OBJECT", "Flags", offset_of!(DEVICE_OBJECT, Flags));
    c.off(
        "DEVICE_OBJECT",
        "Characteristics",
        offset_of!(DEVICE_OBJECT, Characteristics),
    );
    c.off(
        "DEVICE_OBJECT",
        "DeviceExtension",
        offset_of!(DEVICE_OBJECT, DeviceExtension),
    );
    c.size("IRP", size_of::<IRP>());
    for (f, o) in [
        ("MdlAddress", offset_of!(IRP, MdlAddress)),
        ("Flags", offset_of!(IRP, Flags)),
        ("AssociatedIrp.SystemBuffer", offset_of!(IRP, SystemBuffer)),
        ("IoStatus", offset_of!(IRP, IoStatus)),
        ("RequestorMode", offset_of!(IRP, RequestorMode)),
        ("PendingReturned", offset_of!(IRP, PendingReturned)),
        ("Cancel", offset_of!(IRP, Cancel)),
        ("CancelIrql", offset_of!(IRP, CancelIrql)),
        ("CancelRoutine", offset_of!(IRP, CancelRoutine)),
        ("UserBuffer", offset_of!(IRP, UserBuffer)),
        ("Tail.Overlay.DriverContext", offset_of!(IRP, DriverContext)),
        ("Tail.Overlay.ListEntry", offset_of!(IRP, ListEntry)),
        (
            "Tail.Overlay.CurrentStackLocation",
            offset_of!(IRP, CurrentStackLocation),
        ),
    ] {
        c.off("IRP", f, o);
    }
    c.size("IO_STACK_LOCATION", size_of::<IO_STACK_LOCATION>());
    for (f, o) in [
        (
            "MajorFunction",
            offset_of!(IO_STACK_LOCATION, MajorFunction),
        ),
        ("Control", offset_of!(IO_STACK_LOCATION, Control)),
        (
            "Parameters.Read.Length",
            offset_of!(IO_STACK_LOCATION, Length),
        ),
        (
            "Parameters.Write.Length",
            offset_of!(IO_STACK_LOCATION, Length),
        ),
        (
            "Parameters.DeviceIoControl.OutputBufferLength",
            offset_of!(IO_STACK_LOCATION, Length),
        ),
        (
            "Parameters.DeviceIoControl.InputBufferLength",
            offset_of!(IO_STACK_LOCATION, InputBufferLength),
        ),
        (
            "Parameters.DeviceIoControl.IoControlCode",
            offset_of!(IO_STACK_LOCATION, IoControlCode),
        ),
        ("DeviceObject", offset_of!(IO_STACK_LOCATION, DeviceObject)),
        ("FileObject", offset_of!(IO_STACK_LOCATION, FileObject)),
    ] {
        c.off("IO_STACK_LOCATION", f, o);
    }
    c.size("FILE_OBJECT", size_of::<FILE_OBJECT>());
    c.off(
        "FILE_OBJECT",
        "FsContext",
        offset_of!(FILE_OBJECT, FsContext),
    );
    c.size("IO_STATUS_BLOCK", size_of::<IO_STATUS_BLOCK>());
    c.size("OBJECT_ATTRIBUTES", size_of::<OBJECT_ATTRIBUTES>());
    c.off(
        "OBJECT_ATTRIBUTES",
        "ObjectName",
        offset_of!(OBJECT_ATTRIBUTES, ObjectName),
    );
    c.off(
        "OBJECT_ATTRIBUTES",
        "Attributes",
        offset_of!(OBJECT_ATTRIBUTES, Attributes),
    );
    c.off(
        "OBJECT_ATTRIBUTES",
        "SecurityDescriptor",
        offset_of!(OBJECT_ATTRIBUTES, SecurityDescriptor),
    );
    for (n, v) in [
        ("IRP_MJ_CREATE", IRP_MJ_CREATE as i64),
        ("IRP_MJ_CLOSE", IRP_MJ_CLOSE as i64),
        ("IRP_MJ_READ", IRP_MJ_READ as i64),
        ("IRP_MJ_WRITE", IRP_MJ_WRITE as i64),
        ("IRP_MJ_DEVICE_CONTROL", IRP_MJ_DEVICE_CONTROL as i64),
        ("IRP_MJ_CLEANUP", IRP_MJ_CLEANUP as i64),
        ("IRP_MJ_MAXIMUM_FUNCTION", IRP_MJ_MAXIMUM_FUNCTION as i64),
        ("DO_BUFFERED_IO", i64::from(DO_BUFFERED_IO)),
        ("DO_DEVICE_INITIALIZING", i64::from(DO_DEVICE_INITIALIZING)),
        (
            "FILE_DEVICE_SECURE_OPEN",
            i64::from(FILE_DEVICE_SECURE_OPEN),
        ),
        ("FILE_DEVICE_NETWORK", i64::from(FILE_DEVICE_NETWORK)),
        ("NonPagedPoolNx", i64::from(NON_PAGED_POOL_NX)),
        ("SECTION_ALL_ACCESS", i64::from(SECTION_ALL_ACCESS)),
        ("FILE_ALL_ACCESS", i64::from(FILE_ALL_ACCESS)),
        ("WRITE_DAC", i64::from(WRITE_DAC)),
        ("SEC_COMMIT", i64::from(SEC_COMMIT)),
        ("PAGE_READWRITE", i64::from(PAGE_READWRITE)),
        ("OBJ_CASE_INSENSITIVE", i64::from(OBJ_CASE_INSENSITIVE)),
        ("OBJ_OPENIF", i64::from(OBJ_OPENIF)),
        ("OBJ_KERNEL_HANDLE", i64::from(OBJ_KERNEL_HANDLE)),
        (
            "DACL_SECURITY_INFORMATION",
            i64::from(DACL_SECURITY_INFORMATION),
        ),
        ("ACL_REVISION", i64::from(ACL_REVISION)),
        (
            "SECURITY_DESCRIPTOR_REVISION",
            i64::from(SECURITY_DESCRIPTOR_REVISION),
        ),
        ("IoModifyAccess", i64::from(IO_MODIFY_ACCESS)),
        ("KernelMode", i64::from(KERNEL_MODE)),
        (
            "MDL_MAPPED_TO_SYSTEM_VA",
            i64::from(MDL_MAPPED_TO_SYSTEM_VA),
        ),
        (
            "MDL_SOURCE_IS_NONPAGED_POOL",
            i64::from(MDL_SOURCE_IS_NONPAGED_POOL),
        ),
        ("STATUS_PENDING", i64::from(STATUS_PENDING)),
        ("STATUS_UNSUCCESSFUL", i64::from(STATUS_UNSUCCESSFUL)),
        (
            "STATUS_INVALID_PARAMETER",
            i64::from(STATUS_INVALID_PARAMETER),
        ),
        (
            "STATUS_INVALID_DEVICE_REQUEST",
            i64::from(STATUS_INVALID_DEVICE_REQUEST),
        ),
        (
            "STATUS_INSUFFICIENT_RESOURCES",
            i64::from(STATUS_INSUFFICIENT_RESOURCES),
        ),
        (
            "STATUS_BUFFER_TOO_SMALL",
            i64::from(STATUS_BUFFER_TOO_SMALL),
        ),
        (
            "STATUS_SHARING_VIOLATION",
            i64::from(STATUS_SHARING_VIOLATION),
        ),
        ("STATUS_DEVICE_BUSY", i64::from(STATUS_DEVICE_BUSY)),
        (
            "STATUS_DEVICE_NOT_READY",
            i64::from(STATUS_DEVICE_NOT_READY),
        ),
        ("STATUS_CANCELLED", i64::from(STATUS_CANCELLED)),
        (
            "STATUS_INVALID_BUFFER_SIZE",
            i64::from(STATUS_INVALID_BUFFER_SIZE),
        ),
        (
            "CTL_CODE(FILE_DEVICE_NETWORK, 0x900, METHOD_BUFFERED, FILE_ANY_ACCESS)",
            i64::from(ctl_code(0x900, 0)),
        ),
    ] {
        c.val(n, v);
    }
    compile("wdm_check.c", &c, &[ddk]);
}

/// mingw's `ddk/ndis.h` does not compile as shipped (it redeclares
/// `NDIS_REQUEST_TYPE` from the `ntddndis.h` it includes), so its status
/// macros are taken from the preprocessor (`gcc -E -dM`) and checked in a
/// file of their own.
#[test]
fn ndis_status_codes_match_ndis_h() {
    if !have_gcc() {
        return;
    }
    let ddk = "-I/usr/x86_64-w64-mingw32/include/ddk";
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("macros.c");
    std::fs::write(&src, "#include <ntddk.h>\n#include <ndis.h>\n").unwrap();
    let out = Command::new(GCC)
        .args([ddk, "-DNDIS_SUPPORT_NDIS6=1", "-E", "-dM"])
        .arg(&src)
        .output()
        .unwrap();
    let macros: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("#define NDIS_STATUS_"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        macros.contains("NDIS_STATUS_PAUSED"),
        "ndis.h's status macros"
    );
    let mut c = C::new(&format!(
        "#include <ntddk.h>\ntypedef int NDIS_STATUS;\n{macros}"
    ));
    for (n, v) in [
        ("NDIS_STATUS_SUCCESS", NDIS_STATUS_SUCCESS),
        ("NDIS_STATUS_PENDING", NDIS_STATUS_PENDING),
        ("NDIS_STATUS_FAILURE", NDIS_STATUS_FAILURE),
        ("NDIS_STATUS_RESOURCES", NDIS_STATUS_RESOURCES),
        ("NDIS_STATUS_NOT_SUPPORTED", NDIS_STATUS_NOT_SUPPORTED),
        (
            "NDIS_STATUS_INVALID_PARAMETER",
            NDIS_STATUS_INVALID_PARAMETER,
        ),
        ("NDIS_STATUS_REQUEST_ABORTED", NDIS_STATUS_REQUEST_ABORTED),
        ("NDIS_STATUS_INVALID_LENGTH", NDIS_STATUS_INVALID_LENGTH),
        ("NDIS_STATUS_INVALID_DATA", NDIS_STATUS_INVALID_DATA),
        ("NDIS_STATUS_BUFFER_TOO_SHORT", NDIS_STATUS_BUFFER_TOO_SHORT),
        ("NDIS_STATUS_PAUSED", NDIS_STATUS_PAUSED),
    ] {
        c.val(n, i64::from(v));
    }
    compile("ndis_status_check.c", &c, &[ddk]);
    // The request types and media from ntddndis.h (NDIS 6 view).
    let mut c = C::new("#include <winsock2.h>\n#include <windows.h>\n#include <ntddndis.h>");
    for (n, v) in [
        (
            "NdisRequestQueryInformation",
            NDIS_REQUEST_QUERY_INFORMATION,
        ),
        ("NdisRequestSetInformation", NDIS_REQUEST_SET_INFORMATION),
        ("NdisRequestQueryStatistics", NDIS_REQUEST_QUERY_STATISTICS),
        ("NdisRequestMethod", NDIS_REQUEST_METHOD),
        ("NdisMedium802_3", NDIS_MEDIUM_802_3),
    ] {
        c.val(n, i64::from(v));
    }
    compile(
        "ntddndis_request_check.c",
        &c,
        &["-DUM_NDIS630", "-DNDIS_SUPPORT_NDIS6=1"],
    );
}
