#!/usr/bin/env bash
# The vRouter Forwarding Extension's driver under Wine (a step of the
# Windows lane; needs its prefix and the images of build-sys.sh):
#
# 1. The device-only image (vrouter-devtest.sys) is started as a kernel
#    service with Wine's `sc`, and the agent's channel test
#    (crates/agent/tests/kernel_channels.rs) runs against its ksync and
#    pkt0 devices and its flow sections: the driver's real IRP handlers,
#    ksync handler and core, the agent's real clients. Then vrctl, with no
#    --sock-dir, lists the vifs the test left through the device and
#    prints the extension's counters (IOCTL_VROUTER_EXT_STATS).
# 2. The full image (vrouter.sys) is started the same way: DriverEntry must
#    create the devices and reach NdisFRegisterFilterDriver, which Wine does
#    not implement (Wine has no NDIS 6), and nothing before it may be
#    missing.
#
# Services live only while a Wine process runs, so `sc start` and the test
# run inside one `wine64 cmd /c` batch file (docs/windows.md).
set -euo pipefail

SCRIPT_NAME="kernel-test"
# shellcheck source=scripts/windows/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

SYS_DIR="$WIN_TARGET_DIR/sys"
DRIVE="$WINEPREFIX/drive_c/vrtest"
KERNEL_TEST_TIMEOUT=${KERNEL_TEST_TIMEOUT:-300}

check_ready() {
    [[ -f $WINEPREFIX/.vrouter-prefix-ready ]] ||
        die "no Wine prefix at $WINEPREFIX: run scripts/windows/lane.sh (it makes one)"
    [[ -f $SYS_DIR/vrouter.sys && -f $SYS_DIR/vrouter-devtest.sys ]] ||
        die "no driver images in $SYS_DIR: run scripts/windows/build-sys.sh"
}

# The agent's kernel channel test and vrctl, built for windows-gnu. Built
# as the lane builds its tests (the same packages, so the same features):
# after the lane's build step this builds nothing, it only names the
# executables. Alone, it builds what WINDOWS_CRATES (plus the agent and
# vrctl) needs.
build_agent_test() {
    local crates=() pkgs=() json exe vrctl c
    read -r -a crates <<<"${WINDOWS_CRATES:-vrouter-agent vrctl}"
    [[ " ${crates[*]} " == *" vrouter-agent "* ]] || crates+=(vrouter-agent)
    [[ " ${crates[*]} " == *" vrctl "* ]] || crates+=(vrctl)
    for c in "${crates[@]}"; do pkgs+=(-p "$c"); done
    json=$("$WCARGO" test "${WBUILD_STD[@]}" --target "$WIN_GNU" "${pkgs[@]}" \
        --no-run --message-format=json 2>/dev/null)
    exe=$(sed -n 's/.*"executable":"\([^"]*kernel_channels[^"]*\.exe\)".*/\1/p' <<<"$json" | tail -1)
    vrctl=$(sed -n 's/.*"executable":"\([^"]*\/vrctl\.exe\)".*/\1/p' <<<"$json" | tail -1)
    [[ -n $exe && -f $exe ]] || die "kernel_channels test executable not found"
    [[ -n $vrctl && -f $vrctl ]] || die "vrctl.exe not found"
    mkdir -p "$DRIVE"
    cp "$exe" "$DRIVE/kernel_channels.exe"
    cp "$vrctl" "$DRIVE/vrctl.exe"
    cp "$SYS_DIR/vrouter-devtest.sys" "$SYS_DIR/vrouter.sys" "$DRIVE/"
}

# Runs batch file $1 (CRLF) in one Wine session, output to $2; returns its
# exit status.
run_bat() {
    local bat=$1 out=$2 rc=0
    printf '%s\r\n' "${@:3}" >"$DRIVE/$bat"
    timeout "$KERNEL_TEST_TIMEOUT" "$WINE" cmd /c "C:\\vrtest\\$bat" >"$out" 2>&1 || rc=$?
    "$WINESERVER" -w 2>/dev/null || true
    return "$rc"
}

devtest() {
    local out="$WIN_TARGET_DIR/kernel-devtest.log" rc=0
    run_bat devtest.bat "$out" \
        '@echo off' \
        'sc delete vrouterdev >nul 2>&1' \
        'sc create vrouterdev type= kernel binPath= C:\vrtest\vrouter-devtest.sys' \
        'sc start vrouterdev' \
        'C:\vrtest\kernel_channels.exe --ignored --nocapture --test-threads=1' \
        'set RC=%ERRORLEVEL%' \
        'echo ==== vrctl vif --list' \
        'C:\vrtest\vrctl.exe vif --list' \
        'if errorlevel 1 set RC=21' \
        'echo ==== vrctl vrouter --ext' \
        'C:\vrtest\vrctl.exe vrouter --ext' \
        'if errorlevel 1 set RC=22' \
        'sc stop vrouterdev >nul 2>&1' \
        'sc delete vrouterdev >nul 2>&1' \
        'exit /b %RC%' || rc=$?
    if ((rc != 0)) || ! grep -q 'test result: ok. 1 passed' "$out"; then
        cat "$out"
        die "the agent's channel test against the driver failed (exit $rc); log: $out"
    fi
    log "agent channel test against vrouter-devtest.sys: $(grep -o 'test result: ok[^;]*' "$out")"
    # vrctl through the device: the agent vif (2, created at load) and the
    # test's vifs; the counters, ksync messages included.
    local k
    if ! grep -q 'vif0/2 ' "$out" || ! k=$(grep -o '^ksync_messages [0-9]*' "$out") ||
        [[ ${k#ksync_messages } == 0 ]]; then
        cat "$out"
        die "vrctl against vrouter-devtest.sys: no vif0/2 or no ksync_messages counter; log: $out"
    fi
    log "vrctl against vrouter-devtest.sys: $(grep -c '^vif0/' "$out") vifs listed; $k"
}

full_image() {
    local out="$WIN_TARGET_DIR/kernel-full.log" rc=0 miss
    WINEDEBUG=err+all,+ntoskrnl run_bat full.bat "$out" \
        '@echo off' \
        'sc delete vrouter >nul 2>&1' \
        'sc create vrouter type= kernel binPath= C:\vrtest\vrouter.sys' \
        'sc start vrouter' \
        'sc delete vrouter >nul 2>&1' || rc=$?
    local want
    # Fixed strings as Wine's trace prints them (backslashes doubled); the
    # devices are FILE_DEVICE_NETWORK (18) with FILE_DEVICE_SECURE_OPEN
    # (100), pkt0 exclusive (1).
    for want in \
        'load_driver loading driver L"C:\\vrtest\\vrouter.sys"' \
        'L"\\Device\\vrouterKsync", 18, 100, 0,' \
        'IoCreateSymbolicLink L"\\DosDevices\\vrouterKsync"' \
        'L"\\Device\\vrouterPkt0", 18, 100, 1,' \
        'IoCreateSymbolicLink L"\\DosDevices\\vrouterPkt0"' \
        'unimplemented function NDIS.SYS.NdisFRegisterFilterDriver'; do
        if ! grep -qF -- "$want" "$out"; then
            grep -v KeInitializeEvent "$out" | tail -40
            die "vrouter.sys under Wine: expected \"$want\" (exit $rc); log: $out"
        fi
    done
    miss=$(grep -o 'unimplemented function [A-Za-z.]*' "$out" | sort -u | grep -v 'NDIS.SYS.NdisFRegisterFilterDriver' || true)
    [[ -z $miss ]] || die "vrouter.sys called other unimplemented functions before NDIS registration: $miss"
    log "vrouter.sys under Wine: DriverEntry created \\Device\\vrouterKsync and \\Device\\vrouterPkt0 and reached NdisFRegisterFilterDriver (Wine has no NDIS 6)"
}

report_failure_on_exit :
step "kernel test: prerequisites" check_ready
step "kernel test: agent test exe (windows-gnu)" build_agent_test
step "kernel test: agent channels against vrouter-devtest.sys" devtest
step "kernel test: vrouter.sys reaches NdisFRegisterFilterDriver" full_image
