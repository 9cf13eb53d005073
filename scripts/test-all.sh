#!/usr/bin/env bash
# The project's one test command (CI runs it through .ci/run):
#
#   bash scripts/test-all.sh               # every phase
#   bash scripts/test-all.sh lint test     # only the phases named
#
# Knobs (docs/testing.md): SKIP_<PHASE>=1 skips a phase (SKIP_WINDOWS=1,
# SKIP_FUZZ=1, SKIP_PACKAGES=1, ...), FUZZ_SECONDS=N fuzzes each target N seconds (default 15),
# CARGO_TARGET_DIR moves every build (default: target/ in the repo),
# TEST_ALL_NON_ROOT=1 runs as another user (the end-to-end tests then skip;
# never under CI).
#
# It runs as root: the end-to-end tests need network namespaces, dockerd and
# raw sockets, and a test that cannot run prints a `SKIP:` line instead.
# The test phase counts those lines and shows them in the summary; under
# CI=true any skip fails the run (the tests themselves fail there too),
# since this command installs everything they need.
#
# Adding a phase: write `phase_NAME() { ... }` and add `phase NAME "what"`
# to the list at the bottom. Phases run in that order, fail fast, and get a
# banner, a timing and a line in the summary.
set -euo pipefail

SCRIPT_NAME=test-all
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/deps.sh
source "$ROOT/scripts/lib/deps.sh"

export FUZZ_SECONDS=${FUZZ_SECONDS:-15}
# The Linux lane's builds; the Windows lane and fuzz use subdirectories.
export CARGO_TARGET_DIR="$TARGET_BASE"
# A one-shot CI build gains nothing from incremental state (about 1 GB).
if [[ ${CI:-} == true ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
cd "$ROOT"

# ---------------------------------------------------------------- phases

phase_deps() {
    apt_ensure "${APT_PACKAGES[@]}"
    rust_ensure
    if [[ ${SKIP_PACKAGES:-0} == 1 ]]; then
        log "cargo-deb: not checked (SKIP_PACKAGES=1)"
    else
        cargo_deb_ensure
    fi
    if [[ ${SKIP_FUZZ:-0} == 1 ]]; then
        log "cargo-fuzz: not checked (SKIP_FUZZ=1)"
    else
        cargo_fuzz_ensure
    fi
}

phase_lint() {
    local sh
    mapfile -t sh < <(find scripts -name '*.sh' | sort)
    step "shellcheck" shellcheck -x .ci/run "${sh[@]}"
    step "cargo fmt --check" cargo fmt --all --check
    # Crates outside the workspace.
    step "cargo fmt --check (fuzz, canary, winext driver)" fmt_outside
    step "cargo clippy --workspace --all-targets" \
        cargo clippy --workspace --all-targets -- -D warnings
}
fmt_outside() {
    cargo fmt --check --manifest-path fuzz/Cargo.toml
    cargo fmt --check --manifest-path scripts/windows/canary/Cargo.toml
    cargo fmt --check --manifest-path crates/winext/driver/Cargo.toml
}

phase_test() {
    local log="$TARGET_BASE/test-all-test.log" n
    mkdir -p "$TARGET_BASE"
    # Tests print skips straight to stderr (never captured): keep a copy.
    cargo test --workspace 2>&1 | tee "$log"
    n=$(grep -c '^SKIP: ' "$log" || true)
    TEST_SKIPS=$n
    if ((n > 0)); then
        printf '%s%d test(s) skipped:%s\n' "$C_YEL" "$n" "$C_OFF"
        grep '^SKIP: ' "$log" | sed 's/^/  /'
        if [[ ${CI:-} == true ]]; then
            die "CI=true: $n test(s) skipped; the test command installs every tool, so this is a broken step"
        fi
    fi
}

phase_windows() {
    warmup_wait
    bash "$ROOT/scripts/windows/lane.sh"
}

phase_fuzz() {
    bash "$ROOT/scripts/fuzz.sh"
}

# Uses dockerd, /run/docker/plugins and 127.0.0.1:8082/8085/9091 (deb) and
# installs into this machine: on a shared machine, under the e2e lock.
phase_packages() {
    warmup_wait
    step "Debian packages (cargo-deb, lintian, dpkg, units, quick start)" \
        bash "$ROOT/scripts/packages/deb.sh"
    step "Windows MSI (wixl, msidump, under Wine)" bash "$ROOT/scripts/packages/msi.sh"
}

# ------------------------------------------------------ the Windows warm-up

# The Windows builds (about 14 min of CPU on 2 cores) are started in the
# background, at the lowest priority, once the tools are installed: the
# Linux test run mostly waits on namespaces, dockerd and timers. It is only a
# cache: the windows and packages phases wait for it, then run in full and
# find their builds fresh. A failed warm-up is repeated there, in the
# foreground, where its error is reported. WINDOWS_WARMUP=0 turns it off.
WARMUP_PID='' WARMUP_LOG="$TARGET_BASE/windows-warmup.log" WARMUP_START=0
# $1, $2: 1 when the windows / packages phase will run.
warmup_start() {
    [[ ${WINDOWS_WARMUP:-1} == 1 ]] || return 0
    mkdir -p "$TARGET_BASE"
    log "Windows warm-up: builds in the background, niced; log $WARMUP_LOG"
    WARMUP_START=$SECONDS
    # setsid: its own process group, so an early exit can stop all of it.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid nice -n 19 bash -c '
        if [[ $2 == 1 ]]; then bash "$1/scripts/windows/lane.sh" --build-only || exit; fi
        if [[ $3 == 1 ]]; then bash "$1/scripts/packages/msi.sh" --build-only; fi' \
        warmup "$ROOT" "$1" "$2" >"$WARMUP_LOG" 2>&1 &
    WARMUP_PID=$!
}
warmup_wait() {
    [[ -n $WARMUP_PID ]] || return 0
    local rc=0 pid=$WARMUP_PID
    WARMUP_PID=''
    wait "$pid" || rc=$?
    if ((rc == 0)); then
        log "Windows warm-up: ok, $(fmt_secs $((SECONDS - WARMUP_START))) after its start; its steps:"
        grep '^    (' "$WARMUP_LOG" || true
    else
        warn "Windows warm-up failed (exit $rc; log $WARMUP_LOG): the steps below repeat it and report the error"
    fi
}
warmup_stop() {
    [[ -n $WARMUP_PID ]] || return 0
    kill -- "-$WARMUP_PID" 2>/dev/null || true
    wait "$WARMUP_PID" 2>/dev/null || true
    WARMUP_PID=''
}

# ---------------------------------------------------------------- runner

PHASE_NAMES=() PHASE_DESCS=()
phase() {
    PHASE_NAMES+=("$1")
    PHASE_DESCS+=("$2")
}

SUMMARY=() CURRENT_PHASE='' PHASE_START=0 RAN=0 SKIPS=0 TEST_SKIPS=''
# A phase's scripts append result lines here (scripts/packages/common.sh
# note_summary); they are shown under the phase's summary line.
export TEST_ALL_NOTES="$TARGET_BASE/test-all-notes.txt"

# Root, or an explicit opt-out (never in CI).
require_root() {
    ((EUID == 0)) && return 0
    if [[ ${CI:-} == true ]]; then
        die "must run as root (CI=true): the end-to-end tests need it"
    fi
    if [[ ${TEST_ALL_NON_ROOT:-0} == 1 ]]; then
        warn "not root (TEST_ALL_NON_ROOT=1): the end-to-end tests will skip"
        return 0
    fi
    die "must run as root (sudo bash scripts/test-all.sh); TEST_ALL_NON_ROOT=1 runs anyway, with the end-to-end tests skipped"
}

summary_line() { SUMMARY+=("$(printf '  %-10s %-8s %8s  %s' "$@")"); }
summary_notes() {
    local l
    [[ -s $TEST_ALL_NOTES ]] || return 0
    while IFS= read -r l; do SUMMARY+=("$(printf '  %-10s %-8s %8s    %s' '' '' '' "$l")"); done <"$TEST_ALL_NOTES"
    rm -f "$TEST_ALL_NOTES"
}

print_summary() {
    ((${#SUMMARY[@]} > 0)) || return 0
    banner "summary"
    printf '%s\n' "${SUMMARY[@]}"
}

on_exit() {
    local rc=$?
    trap - EXIT
    warmup_stop
    if ((rc != 0)); then
        if [[ -n $CURRENT_PHASE ]]; then
            summary_line "$CURRENT_PHASE" FAILED "$(fmt_secs $((SECONDS - PHASE_START)))" "exit $rc"
            summary_notes
        fi
        print_summary
        printf '%stest-all: FAILED in phase %s%s (exit %d) after %s%s\n' "$C_RED" \
            "${CURRENT_PHASE:-setup}" "${CURRENT_STEP:+, step \"$CURRENT_STEP\"}" "$rc" \
            "$(fmt_secs "$SECONDS")" "$C_OFF"
    fi
    exit "$rc"
}
trap on_exit EXIT

# Whether phase $1 runs, given the phases named on the command line ($2...).
will_run() {
    local name=$1 var
    shift
    var=SKIP_${name^^}
    var=${var//-/_}
    [[ ${!var:-0} != 1 ]] || return 1
    (($# == 0)) || [[ " $* " == *" $name "* ]]
}

run_phases() {
    local i name var selected warmup=0 win=0 pkg=0
    # Phases named on the command line must exist.
    for name in "$@"; do
        [[ " ${PHASE_NAMES[*]} " == *" $name "* ]] ||
            die "unknown phase '$name' (phases: ${PHASE_NAMES[*]})"
    done
    log "test-all: phases ${PHASE_NAMES[*]}; CI=${CI:-}; target dir $TARGET_BASE; FUZZ_SECONDS=$FUZZ_SECONDS"
    require_root
    # Worth it only when Linux phases run before the Windows ones.
    if will_run windows "$@"; then win=1; fi
    if will_run packages "$@"; then pkg=1; fi
    if ((win || pkg)) && { will_run lint "$@" || will_run test "$@"; }; then
        warmup=1
    fi
    for i in "${!PHASE_NAMES[@]}"; do
        name=${PHASE_NAMES[$i]}
        var=SKIP_${name^^}
        var=${var//-/_}
        if ((warmup)) && [[ $name != deps ]]; then
            warmup=0
            warmup_start "$win" "$pkg"
        fi
        selected=1
        if (($# > 0)) && [[ " $* " != *" $name "* ]]; then selected=0; fi
        if ((!selected)); then
            summary_line "$name" skipped - "not named on the command line"
            SKIPS=$((SKIPS + 1))
            continue
        fi
        if [[ ${!var:-0} == 1 ]]; then
            banner "phase $name: ${PHASE_DESCS[$i]}"
            skipped "phase $name ($var=1)"
            summary_line "$name" SKIPPED - "$var=1"
            SKIPS=$((SKIPS + 1))
            continue
        fi
        banner "phase $name: ${PHASE_DESCS[$i]}"
        CURRENT_PHASE=$name PHASE_START=$SECONDS
        mkdir -p "$TARGET_BASE"
        rm -f "$TEST_ALL_NOTES"
        "phase_$name"
        log "phase $name: ok in $(fmt_secs $((SECONDS - PHASE_START)))"
        local note=''
        if [[ $name == test ]]; then note="${TEST_SKIPS:-0} test(s) skipped"; fi
        summary_line "$name" ok "$(fmt_secs $((SECONDS - PHASE_START)))" "$note"
        summary_notes
        RAN=$((RAN + 1))
        CURRENT_PHASE=''
    done
    print_summary
    printf '%stest-all: PASSED in %s (%d phases ran, %d skipped; %s test(s) skipped)%s\n' "$C_GRN" \
        "$(fmt_secs "$SECONDS")" "$RAN" "$SKIPS" "${TEST_SKIPS:-0}" "$C_OFF"
}

# ---------------------------------------------------------------- the list

phase deps "packages and tools (apt, rustup components, cargo-fuzz)"
phase lint "shellcheck, rustfmt, clippy -D warnings (Linux)"
phase test "cargo test --workspace (Linux, rustup stable)"
phase windows "Windows lane: windows-gnu tests under Wine, clippy gnu+msvc"
phase fuzz "cargo-fuzz, ${FUZZ_SECONDS}s per target"
phase packages "installers: .deb (cargo-deb) and MSI (wixl) built, installed, started, removed"

run_phases "$@"
