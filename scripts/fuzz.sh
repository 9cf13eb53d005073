#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets/*.rs for a short while
# (FUZZ_SECONDS each, default 15). A crash, leak or hang fails the run and
# leaves the input in fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh                  # all targets
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh packet_parse
set -euo pipefail

SCRIPT_NAME=fuzz
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FUZZ_SECONDS=${FUZZ_SECONDS:-15}
# One input taking longer than this counts as a hang (libFuzzer's default is
# 20 minutes, which would outlast CI).
FUZZ_INPUT_TIMEOUT=${FUZZ_INPUT_TIMEOUT:-10}
FUZZ_DIR="$ROOT/fuzz"
# Own target dir: the sanitizer flags would rebuild everything the Linux lane
# built, and back again.
FUZZ_TARGET_DIR="$TARGET_BASE/fuzz"
report_failure_on_exit ""

[[ $FUZZ_SECONDS =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a positive integer, not '$FUZZ_SECONDS'"

# --build-only: build the targets, run none (the test command's warm-up).
build_only=0
if [[ ${1:-} == --build-only ]]; then
    build_only=1
    shift
fi
targets=("$@")
if ((${#targets[@]} == 0)); then
    shopt -s nullglob
    for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
    shopt -u nullglob
fi
if ((${#targets[@]} == 0)); then
    skipped "fuzz: no targets in fuzz/fuzz_targets/*.rs"
    exit 0
fi

command -v cargo-fuzz >/dev/null || die "cargo-fuzz missing: run the deps phase (bash scripts/test-all.sh deps)"

# cargo-fuzz needs nightly rustc flags (-Zsanitizer). rustup's nightly is on
# the machine image; if it is ever absent, stable with RUSTC_BOOTSTRAP=1 takes
# the same flags (stable ships the sanitizer runtimes too).
if cargo +nightly --version >/dev/null 2>&1; then
    toolchain=+nightly
else
    warn "no rustup nightly: fuzzing with stable and RUSTC_BOOTSTRAP=1"
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
fi
fuzz=(cargo "$toolchain" fuzz)
dirs=(--fuzz-dir "$FUZZ_DIR" --target-dir "$FUZZ_TARGET_DIR")
log "$(cargo "$toolchain" --version); $(cargo fuzz --version); targets: ${targets[*]}; ${FUZZ_SECONDS}s each"

cd "$ROOT"
step "build fuzz targets" "${fuzz[@]}" build "${dirs[@]}"
((!build_only)) || exit 0

# Seed inputs (read only, beside the target's own corpus) for targets whose
# inputs are too structured to be found from nothing in a short run.
declare -A SEEDS=(
    [xmpp_stream]="crates/xmpp/tests/upstream/xmpp/captured crates/xmpp/tests/upstream/xmpp/bgp-testdata-bad-items crates/xmpp/tests/upstream/xmpp/bgp-testdata-agent-to-cn crates/xmpp/tests/upstream/xmpp/schema-testdata crates/xmpp/tests/upstream/ifmap-agent-parser-testdata"
)

# libFuzzer prints a line per new coverage: keep it in a log, show the end.
fuzz_one() {
    local t=$1 out="$FUZZ_TARGET_DIR/fuzz-$1.log" rc=0 d
    local corpus=("$FUZZ_DIR/corpus/$t")
    for d in ${SEEDS[$t]:-}; do corpus+=("$ROOT/$d"); done
    mkdir -p "$FUZZ_TARGET_DIR" "${corpus[0]}"
    "${fuzz[@]}" run "${dirs[@]}" "$t" "${corpus[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_INPUT_TIMEOUT" \
        -print_final_stats=1 >"$out" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 60 "$out"
        log "fuzz target $t failed (exit $rc); full log: $out; the input is under fuzz/artifacts/$t/"
        return "$rc"
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$out" |
        sed "s/^/    $t: /"
}

for t in "${targets[@]}"; do
    step "fuzz $t for ${FUZZ_SECONDS}s" fuzz_one "$t"
done
log "fuzz: OK (${#targets[@]} targets)"
