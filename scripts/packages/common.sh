# shellcheck shell=bash
# Shared by scripts/packages/{deb,msi}.sh. Sourced after lib/common.sh.

# The workspace's version (Cargo.toml [workspace.package]).
workspace_version() {
    sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml"
}

# x.y.z -> x.y.(z+1): the upgrade tests' "next release".
next_patch() {
    local major minor patch
    IFS=. read -r major minor patch <<<"$1"
    printf '%s.%s.%s' "$major" "$minor" "$((patch + 1))"
}

# A line for test-all's summary (under this phase's line); also printed.
note_summary() {
    log "summary: $*"
    if [[ -n ${TEST_ALL_NOTES:-} ]]; then
        printf '%s\n' "$*" >>"$TEST_ALL_NOTES"
    fi
}

# Milliseconds since the epoch, and "1.23 s" since such a stamp.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() {
    local ms=$(($(now_ms) - $1))
    printf '%d.%02d s' $((ms / 1000)) $((ms % 1000 / 10))
}
