#!/usr/bin/env bash
# Builds the vRouter Forwarding Extension's driver images and checks them:
#
#   bash scripts/windows/build-sys.sh
#
# writes (the stable paths the installer picks up, docs/windows.md):
#   $CARGO_TARGET_DIR/windows/sys/vrouter.sys          the driver
#   $CARGO_TARGET_DIR/windows/sys/vrouter.inf          its INF
#   $CARGO_TARGET_DIR/windows/sys/vrouter-devtest.sys  the device-only variant
#                                                      (Wine test; never ship)
#
# The Rust side is a no_std staticlib (crates/winext/driver) built with the
# Windows lane's toolchain, -Zbuild-std=core,alloc and panic=abort; mingw-w64
# links it into a native-subsystem PE with the recipe measured in
# ../shared/notes/windows-kernel.md. Each image is then checked with
# x86_64-w64-mingw32-objdump -p: PE32+, subsystem native, entry DriverEntry,
# imports only from NDIS.SYS / ntoskrnl.exe / HAL.dll, no TLS directory,
# relocations present, no writable code section; its size is reported.
set -euo pipefail

SCRIPT_NAME="build-sys"
# shellcheck source=scripts/windows/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

DRIVER_DIR="$ROOT/crates/winext/driver"
SYS_DIR="$WIN_TARGET_DIR/sys"
DRV_TARGET="$WIN_TARGET_DIR/driver"
OBJDUMP=x86_64-w64-mingw32-objdump
GCC=x86_64-w64-mingw32-gcc

# Builds the staticlib (with extra cargo args) and links it to $1.
build_image() {
    local out=$1
    shift
    "$WCARGO" build -Zbuild-std=core,alloc --target "$WIN_GNU" --release \
        --manifest-path "$DRIVER_DIR/Cargo.toml" --target-dir "$DRV_TARGET" "$@"
    local lib="$DRV_TARGET/$WIN_GNU/release/libvrouter_sys.a"
    mkdir -p "$SYS_DIR"
    "$GCC" -shared -nostdlib -nostartfiles \
        -Wl,--subsystem,native:10.0 -Wl,--entry,DriverEntry -Wl,--image-base,0x140000000 \
        -Wl,--dynamicbase -Wl,--nxcompat -Wl,--exclude-all-symbols -Wl,--gc-sections \
        -o "$out" "$lib" -lndis -lntoskrnl -lhal
}

# The checks every image must pass (see the header).
check_image() {
    local sys=$1 p h entry base want got dlls bad tls relocs
    p=$("$OBJDUMP" -p "$sys")
    h=$("$OBJDUMP" -h "$sys")
    grep -q 'Magic[[:space:]]*020b[[:space:]]*(PE32+)' <<<"$p" || die "$sys: not PE32+"
    grep -q 'Subsystem[[:space:]]*00000001[[:space:]]*(NT native)' <<<"$p" || die "$sys: subsystem is not native"
    # The entry point is DriverEntry's address (ImageBase + RVA).
    entry=$(awk '/AddressOfEntryPoint/ {print $2}' <<<"$p")
    base=$(awk '/^ImageBase/ {print $2}' <<<"$p")
    want=$(printf '%016x' $((16#$base + 16#$entry)))
    got=$(x86_64-w64-mingw32-nm "$sys" | awk '$3 == "DriverEntry" {print $1}')
    [[ $got == "$want" ]] || die "$sys: entry point $want is not DriverEntry ($got)"
    mapfile -t dlls < <(awk '/DLL Name:/ {print $3}' <<<"$p")
    ((${#dlls[@]} > 0)) || die "$sys: no imports"
    for d in "${dlls[@]}"; do
        case "${d,,}" in
            ndis.sys | ntoskrnl.exe | hal.dll) ;;
            *) die "$sys: imports from $d (only NDIS.SYS, ntoskrnl.exe, HAL.dll allowed)" ;;
        esac
    done
    tls=$(awk '/^Entry 9 / {print $3, $4}' <<<"$p")
    if [[ $tls != "0000000000000000 00000000" ]] || grep -q '\.tls' <<<"$h"; then
        die "$sys: has a TLS directory ($tls): TLS callbacks never run for drivers"
    fi
    relocs=$(awk '/^Entry 5 / {print $4}' <<<"$p")
    [[ -n $relocs && $((16#$relocs)) -gt 0 ]] ||
        die "$sys: no base relocations (the kernel loads drivers anywhere)"
    bad=$(awk '/CODE/ && !/READONLY/' <<<"$h")
    [[ -z $bad ]] || die "$sys: writable code section: $bad"
    log "$(basename "$sys"): PE32+, native, entry DriverEntry, imports ${dlls[*]}, no TLS, relocations present, $(stat -c %s "$sys") bytes"
}

build_all() {
    build_image "$SYS_DIR/vrouter.sys"
    check_image "$SYS_DIR/vrouter.sys"
    build_image "$SYS_DIR/vrouter-devtest.sys" --features devtest
    check_image "$SYS_DIR/vrouter-devtest.sys"
    cp "$ROOT/crates/winext/inf/vrouter.inf" "$SYS_DIR/vrouter.inf"
    log "images in $SYS_DIR"
}

# clippy -D warnings on the kernel code (the workspace's clippy never
# compiles it: it is Windows-only). Checked as the root workspace's winext,
# which the lint applies to (it would only warn as a dependency of the
# driver crate).
clippy_kernel() {
    local f
    for f in kernel devtest; do
        "$WCARGO" clippy -Zbuild-std=core,alloc --target "$WIN_GNU" --release \
            --manifest-path "$ROOT/Cargo.toml" --target-dir "$DRV_TARGET" \
            -p winext --lib --features "$f" -- -D warnings
    done
}

report_failure_on_exit :
step "vrouter.sys and vrouter-devtest.sys: build, link, check" build_all
step "clippy (kernel build)" clippy_kernel
