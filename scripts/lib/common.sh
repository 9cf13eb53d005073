# shellcheck shell=bash
# shellcheck disable=SC2034  # colours and names for the scripts that source this
# Shared helpers for the test scripts: repo root, target dirs, banners, timing.
# Sourced, never run. Callers set `set -euo pipefail` themselves.

# The repo root, whatever the caller's working directory.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT

# rustup's cargo lives here; CI's environment may not have it on PATH.
CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN_DIR:"*) ;;
    *) PATH="$CARGO_BIN_DIR:$PATH" ;;
esac
export PATH

# One base for every build. Honours CARGO_TARGET_DIR so developers can keep
# their own; each lane below gets its own subdirectory so that two different
# toolchains never fight over one set of fingerprints.
TARGET_BASE="${CARGO_TARGET_DIR:-$ROOT/target}"
export TARGET_BASE

# Coloured only on a terminal: CI logs stay plain text.
if [[ -t 1 ]]; then
    C_BOLD=$'\e[1m' C_RED=$'\e[31m' C_YEL=$'\e[33m' C_GRN=$'\e[32m' C_OFF=$'\e[0m'
else
    C_BOLD='' C_RED='' C_YEL='' C_GRN='' C_OFF=''
fi

log() { printf '%s\n' "$*"; }
note() { printf '%s==> %s%s\n' "$C_BOLD" "$*" "$C_OFF"; }
warn() { printf '%sWARNING: %s%s\n' "$C_YEL" "$*" "$C_OFF" >&2; }
die() {
    printf '%sERROR: %s%s\n' "$C_RED" "$*" "$C_OFF" >&2
    exit 1
}
skipped() {
    printf '%s!!!!!!!! SKIPPED: %s !!!!!!!!%s\n' "$C_YEL" "$*" "$C_OFF"
}

banner() {
    local line='================================================================'
    printf '\n%s%s\n== %s\n%s%s\n' "$C_BOLD" "$line" "$*" "$line" "$C_OFF"
}

# Seconds as "1m05s" / "42s".
fmt_secs() {
    local s=$1
    if ((s >= 60)); then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

# `step NAME CMD...`: one sub-step of a phase, with a header and its
# duration. It runs CMD plainly (not under `||` or `if`, which would switch
# off `set -e` inside functions); on failure `set -e` ends the script and the
# EXIT trap installed by `report_failure_on_exit` names the step.
CURRENT_STEP=''
step() {
    local name=$1 start=$SECONDS
    shift
    CURRENT_STEP=$name
    note "$name"
    "$@"
    log "    ($name: $(fmt_secs $((SECONDS - start))))"
    CURRENT_STEP=''
}

# Installs an EXIT trap that names the failed step and runs the optional
# cleanup command given (e.g. stopping Wine). SCRIPT_NAME labels the message.
report_failure_on_exit() {
    EXIT_CLEANUP=${1:-}
    trap '_on_exit $?' EXIT
}
_on_exit() {
    local rc=$1
    trap - EXIT
    if [[ -n ${EXIT_CLEANUP:-} ]]; then
        $EXIT_CLEANUP || true
    fi
    if ((rc != 0)); then
        printf '%sFAILED: %s%s (exit %d)%s\n' "$C_RED" "${SCRIPT_NAME:-$0}" \
            "${CURRENT_STEP:+, step \"$CURRENT_STEP\"}" "$rc" "$C_OFF" >&2
    fi
    exit "$rc"
}
