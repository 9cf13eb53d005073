#!/usr/bin/env bash
# The Windows lane: builds the Windows crates for x86_64-pc-windows-gnu with
# Debian's rustc 1.96 (-Zbuild-std), runs their tests under Wine, lints them
# for windows-gnu and windows-msvc, and first proves that a crashing test
# fails the run (the canary). docs/windows.md explains the recipe and traps.
#
#   bash scripts/windows/lane.sh              # what scripts/test-all.sh runs
#   WINDOWS_CRATES=sandesh bash scripts/windows/lane.sh   # just some crates
#   bash scripts/windows/lane.sh --build-only # the builds and lints, no Wine
#
# --build-only is the warm-up scripts/test-all.sh runs in the background
# while the Linux tests run: a later full run then finds every build fresh.
set -euo pipefail

# The crates that run on Windows: tested under Wine, linted for gnu and msvc.
WINDOWS_CRATES=${WINDOWS_CRATES:-"packet dp-core sandesh channels ksync vrctl policy vnc-api http-serve service-host xmpp vrouter-agent hcn vnc-client docker-driver winext"}

# Bounds a hung Wine test (a stack overflow hangs under Wine 8, see
# docs/windows.md); the whole test step takes about 1 minute.
WINDOWS_TEST_TIMEOUT=${WINDOWS_TEST_TIMEOUT:-600}

SCRIPT_NAME="windows lane"
# shellcheck source=scripts/windows/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

CANARY_MANIFEST="$ROOT/scripts/windows/canary/Cargo.toml"
STUB_SRC="$ROOT/scripts/windows/bcryptprimitives.c"
STUB_DLL="$WIN_TARGET_DIR/stub/bcryptprimitives.dll"

read -r -a crates <<<"$WINDOWS_CRATES"
pkg_args=()
for c in "${crates[@]}"; do pkg_args+=(-p "$c"); done
((${#pkg_args[@]} > 0)) || die "WINDOWS_CRATES is empty"

# Ends this prefix's wineserver and everything it runs (wineboot leaves
# services.exe, explorer.exe ... behind), also when a step fails.
stop_wine() {
    if [[ -d $WINEPREFIX ]]; then
        "$WINESERVER" -k 2>/dev/null || true
        "$WINESERVER" -w 2>/dev/null || true # -k only signals
    fi
}
report_failure_on_exit stop_wine

check_tools() {
    local t
    for t in "$WCARGO" "$RUSTC" "$RUSTDOC" /usr/bin/cargo-clippy "$WINE" "$WINESERVER" \
        "/usr/bin/$CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER"; do
        [[ -x $t ]] || die "missing $t: run the deps phase (bash scripts/test-all.sh deps)"
    done
    [[ -d /usr/lib/rustlib/src/rust/library ]] ||
        die "missing std source for -Zbuild-std (Debian package rust-web-src)"
    log "$("$WCARGO" --version); $("$RUSTC" --version); $("$WINE" --version)"
    log "target dir $WIN_TARGET_DIR, prefix $WINEPREFIX, crates: ${crates[*]}"
}

# Created once; the marker tells a finished prefix from an interrupted one.
ensure_prefix() {
    local ready="$WINEPREFIX/.vrouter-prefix-ready"
    if [[ -f $ready ]]; then
        log "prefix exists"
        return 0
    fi
    rm -rf "$WINEPREFIX"
    mkdir -p "$WIN_TARGET_DIR"
    "$WINE" wineboot --init
    "$WINESERVER" -w
    touch "$ready"
}

# Trap 1: std imports ProcessPrng from bcryptprimitives.dll, which Wine 8
# lacks. Our stub forwards to BCryptGenRandom.
ensure_stub_dll() {
    local dst="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
    if [[ ! -f $STUB_DLL || $STUB_SRC -nt $STUB_DLL ]]; then
        mkdir -p "$(dirname "$STUB_DLL")"
        "$CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER" -O2 -Wall -Werror -shared -static-libgcc \
            -o "$STUB_DLL" "$STUB_SRC" -lbcrypt
        log "built $STUB_DLL"
    fi
    if ! cmp -s "$STUB_DLL" "$dst"; then
        cp "$STUB_DLL" "$dst"
        log "installed into $dst"
    else
        log "stub DLL up to date"
    fi
}

# Trap 2, checked every run: a crash must fail the run, not pass it. Runs
# the canary's passing test and its crashing test together (a lone crash
# exits non-zero even with winedbg on; beside another test it exits 0).
build_canary() {
    "$WCARGO" test "${WBUILD_STD[@]}" --target "$WIN_GNU" --manifest-path "$CANARY_MANIFEST" \
        --no-run -q
}

canary() {
    local out="$WIN_TARGET_DIR/canary.log" rc=0
    build_canary
    timeout 300 "$WCARGO" test "${WBUILD_STD[@]}" --target "$WIN_GNU" \
        --manifest-path "$CANARY_MANIFEST" -- --include-ignored --nocapture >"$out" 2>&1 || rc=$?
    if ((rc == 124)); then
        cat "$out"
        die "canary timed out (a hung winedbg?); log: $out"
    fi
    if ! grep -q "CANARY-REACHED crash_access_violation" "$out"; then
        cat "$out"
        die "canary never reached its crash (exit $rc): the exe did not run; log: $out"
    fi
    if ((rc == 0)); then
        cat "$out"
        die "wine crash reporting is broken: the canary crashed but cargo test exited 0"
    fi
    # The log is not echoed on success: its "error: test failed" lines are
    # expected and would only confuse a reader or a log scanner.
    log "canary: $(grep -o -m1 'Unhandled page fault[^(]*' "$out" || echo 'crashed')"
    log "canary: cargo test exited $rc ($(grep -o -m1 'exit status: [0-9]*' "$out" ||
        echo 'no exit status line') of the test exe): the crash failed the run, as it must"
}

# The build is not under the timeout: it bounds hangs of the tests under Wine,
# and a cold build on a busy 2-core machine alone can take longer than that.
build_tests() {
    "$WCARGO" test "${WBUILD_STD[@]}" --target "$WIN_GNU" "${pkg_args[@]}" --no-run
}

test_crates() {
    timeout "$WINDOWS_TEST_TIMEOUT" \
        "$WCARGO" test "${WBUILD_STD[@]}" --target "$WIN_GNU" "${pkg_args[@]}"
}

# clippy is `cargo check` plus lints, so this is also the msvc type-check
# (msvc cannot link here: no link.exe).
clippy_crates() {
    "$WCARGO" clippy "${WBUILD_STD[@]}" --target "$WIN_GNU" --target "$WIN_MSVC" \
        "${pkg_args[@]}" --all-targets -- -D warnings
}

build_sys() {
    bash "$ROOT/scripts/windows/build-sys.sh"
}

has_winext() { [[ " ${crates[*]} " == *" winext "* ]]; }

if [[ ${1:-} == --build-only ]]; then
    step "tools" check_tools
    step "build the canary" build_canary
    step "build tests (windows-gnu): ${crates[*]}" build_tests
    step "clippy (windows-gnu + windows-msvc): ${crates[*]}" clippy_crates
    if has_winext; then step "vrouter.sys: build, link, check the images" build_sys; fi
    log "windows lane builds: OK"
    exit 0
fi
[[ $# == 0 ]] || die "unknown argument: $1 (--build-only or nothing)"

step "tools" check_tools
step "wine prefix" ensure_prefix
step "stub bcryptprimitives.dll" ensure_stub_dll
step "canary: a crash under Wine must fail the run" canary
step "build tests (windows-gnu): ${crates[*]}" build_tests
step "test (windows-gnu, under Wine): ${crates[*]}" test_crates
step "clippy (windows-gnu + windows-msvc): ${crates[*]}" clippy_crates
# The forwarding extension's driver: built, linked and checked as a PE,
# then run under Wine (device-only image against the agent's channel test;
# the full image up to NDIS registration). Only when winext is in the list.
if has_winext; then
    step "vrouter.sys: build, link, check the images" build_sys
    step "vrouter.sys under Wine: devices, agent channels, NDIS registration" \
        env WINDOWS_CRATES="$WINDOWS_CRATES" bash "$ROOT/scripts/windows/kernel-test.sh"
else
    skipped "vrouter.sys build and Wine test: winext is not in WINDOWS_CRATES"
fi
log "windows lane: OK"
