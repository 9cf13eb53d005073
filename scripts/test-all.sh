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
    step "cargo doc --workspace (warnings are errors: broken or private links)" \
        env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
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
    warmup_wait windows
    bash "$ROOT/scripts/windows/lane.sh"
}

phase_fuzz() {
    warmup_wait fuzz
    bash "$ROOT/scripts/fuzz.sh"
}

# Uses dockerd, /run/docker/plugins and 127.0.0.1:8082/8085/9091 (deb) and
# installs into this machine: on a shared machine, under the e2e lock.
phase_packages() {
    warmup_wait deb
    warmup_wait msi
    warmup_stop
    step "Debian packages (cargo-deb, lintian, dpkg, units, quick start)" \
        bash "$ROOT/scripts/packages/deb.sh"
    step "Windows MSI (wixl, msidump, under Wine)" bash "$ROOT/scripts/packages/msi.sh"
}

# ------------------------------------------------------------- warm-up

# The release and Windows builds (about 18 min of CPU on 2 cores) start in
# the background at the lowest priority once the tools are installed: the
# Linux test run mostly waits on namespaces, dockerd and timers, and fuzzing
# uses one core. Stages, in order (scripts/lib/warmup.sh): `windows` (the
# lane's builds and lints, for phase windows), `fuzz` (its targets), `msi`
# and `deb` (the release builds, for phase packages); the Linux release build has its own
# `target/release` lock, so it never blocks `cargo test`. It is only a
# cache: a phase waits for its stages, then runs in full and finds its
# builds fresh, and a failed stage is repeated there, in the foreground,
# where its error is reported. WARMUP=0 turns it off.
WARMUP_PID='' WARMUP_DIR="$TARGET_BASE/warmup" WARMUP_STAGES='' WARMUP_START=0
warmup_start() {
    [[ ${WARMUP:-1} == 1 && $# -gt 0 ]] || return 0
    rm -rf "$WARMUP_DIR"
    mkdir -p "$WARMUP_DIR"
    WARMUP_STAGES=" $* " WARMUP_START=$SECONDS
    log "warm-up: $* in the background, niced; log $WARMUP_DIR/log"
    # setsid: its own process group, so an early exit can stop all of it.
    # A new session is also a new scheduler autogroup, which would get half
    # the CPU whatever its nice value: the autogroup itself is niced too.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null || true
        exec nice -n 19 bash "$@"' warmup "$ROOT/scripts/lib/warmup.sh" "$WARMUP_DIR" "$@" \
        >"$WARMUP_DIR/log" 2>&1 &
    WARMUP_PID=$!
}
# Wait for stage $1 (when it was started).
warmup_wait() {
    local stage=$1 rc secs
    [[ -n $WARMUP_PID && $WARMUP_STAGES == *" $stage "* ]] || return 0
    while [[ ! -f $WARMUP_DIR/$stage.rc ]] && kill -0 "$WARMUP_PID" 2>/dev/null; do
        sleep 2
    done
    if ! read -r rc secs <"$WARMUP_DIR/$stage.rc" 2>/dev/null; then
        warn "warm-up stage $stage did not finish (log $WARMUP_DIR/log): the steps below build it"
    elif ((rc == 0)); then
        log "warm-up stage $stage: ok in $(fmt_secs "$secs"), done $(fmt_secs $((SECONDS - WARMUP_START))) after the warm-up started"
    else
        warn "warm-up stage $stage failed (exit $rc; log $WARMUP_DIR/log): the steps below repeat it and report the error"
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
    local i name var selected warmup=0 stages=()
    # Phases named on the command line must exist.
    for name in "$@"; do
        [[ " ${PHASE_NAMES[*]} " == *" $name "* ]] ||
            die "unknown phase '$name' (phases: ${PHASE_NAMES[*]})"
    done
    log "test-all: phases ${PHASE_NAMES[*]}; CI=${CI:-}; target dir $TARGET_BASE; FUZZ_SECONDS=$FUZZ_SECONDS"
    require_root
    # Worth it only when other phases run before the ones that build.
    if will_run windows "$@"; then stages+=(windows); fi
    if will_run fuzz "$@"; then stages+=(fuzz); fi
    if will_run packages "$@"; then stages+=(msi deb); fi
    if ((${#stages[@]} > 0)) && { will_run lint "$@" || will_run test "$@"; }; then
        warmup=1
    fi
    for i in "${!PHASE_NAMES[@]}"; do
        name=${PHASE_NAMES[$i]}
        var=SKIP_${name^^}
        var=${var//-/_}
        if ((warmup)) && [[ $name != deps ]]; then
            warmup=0
            warmup_start "${stages[@]}"
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
