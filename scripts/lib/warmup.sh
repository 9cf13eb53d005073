#!/usr/bin/env bash
# The builds scripts/test-all.sh warms up in the background (docs/testing.md,
# WARMUP): each stage named on the command line, in order, in the build
# directory its phase will use, with the phase script's own --build-only
# mode. A stage's exit status and seconds go to DIR/<stage>.rc as it ends;
# a failed stage does not stop the next (the phase repeats it anyway).
#
#   bash scripts/lib/warmup.sh DIR windows fuzz msi deb
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=$1
shift
for stage in "$@"; do
    case $stage in
    windows) cmd=(bash "$ROOT/scripts/windows/lane.sh" --build-only) ;;
    fuzz) cmd=(bash "$ROOT/scripts/fuzz.sh" --build-only) ;;
    msi) cmd=(bash "$ROOT/scripts/packages/msi.sh" --build-only) ;;
    deb) cmd=(bash "$ROOT/scripts/packages/deb.sh" --build-only) ;;
    *)
        echo "warmup: unknown stage $stage" >&2
        exit 2
        ;;
    esac
    start=$SECONDS rc=0
    printf '\n==== warm-up stage %s\n' "$stage"
    "${cmd[@]}" || rc=$?
    printf '%d %d\n' "$rc" $((SECONDS - start)) >"$dir/$stage.rc"
done
