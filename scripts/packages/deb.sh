#!/usr/bin/env bash
# The Debian packages (docs/packaging.md): built by cargo-deb from the
# release binaries, checked by lintian, installed into this machine with
# dpkg, their units verified by systemd-analyze and run as systemd would
# run them (this machine has no systemd as PID 1), the README's quick start
# run against the installed binaries and a private dockerd, then upgraded,
# removed and purged, with a before/after listing of the system's
# directories to show nothing is left.
#
#   bash scripts/packages/deb.sh          # what phase "packages" runs
#   bash scripts/packages/deb.sh --build-only  # the release build only
#
# Needs root; uses dockerd, /run/docker/plugins and 127.0.0.1:8082/8085/9091,
# so on a shared machine run it under the e2e lock. An EXIT trap stops what
# it started and purges the packages, also on failure.
set -euo pipefail

SCRIPT_NAME=deb
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=scripts/lib/docker.sh
source "$ROOT/scripts/lib/docker.sh"
# shellcheck source=scripts/packages/common.sh
source "$ROOT/scripts/packages/common.sh"

export CARGO_TARGET_DIR="$TARGET_BASE"
OUT="$TARGET_BASE/packages"
WORK="$TARGET_BASE/packages/deb-test"
VERSION=$(workspace_version)
NEXT_VERSION=$(next_patch "$VERSION")
# crate -> package; the order is the units' order (datapath, agent, driver).
CRATES=(vrouter vrouter-agent docker-driver)
PKGS=(vrouter-rs vrouter-rs-agent vrouter-rs-docker-driver)
UNITS=(vrouter vrouter-agent contrail-docker-driver)
# binary -> man page summary (help2man -n).
declare -A MAN=(
    [vrouter]="vRouter datapath (Linux user-space forwarding engine)"
    [vrctl]="inspect and program the vRouter datapath"
    [vrouter-agent]="vRouter agent of the vrouter-rs compute node"
    [contrail-docker-driver]="Docker network and IPAM driver Contrail"
)
# What the before/after listing covers, and the churn in it that is not ours.
# /run/systemd/systemd-units-load: systemd 252 creates it the first time a
# manager loads units after boot, here our own `systemd-analyze verify`
# step on a fresh machine (the purge check failed on it).
SNAP_DIRS=(/etc /usr /var/lib /run /opt /dev/shm)
SNAP_IGNORE='^/var/lib/(dpkg|apt|ucf|systemd/deb-systemd-helper-masked)(/|$)|^/run/(user|utmp|lock|netns|docker/netns|containerd)(/|$)|^/run/systemd/systemd-units-load$|^/etc/(ld\.so\.cache|docker)(/|$)|^/usr/share/lintian'

debs() { local p; for p in "${PKGS[@]}"; do printf '%s/%s_%s-1_amd64.deb\n' "$1" "$p" "$2"; done; }

# ---------------------------------------------------------------- build

build_bins() {
    cargo build --release --locked -p vrouter -p vrouter-agent -p docker-driver -p vrctl
}

man_pages() {
    local b dir="$TARGET_BASE/release/man"
    mkdir -p "$dir"
    for b in "${!MAN[@]}"; do
        help2man --no-info --no-discard-stderr -N -n "${MAN[$b]}" \
            -o "$dir/$b.1" "$TARGET_BASE/release/$b"
        gzip -9nf "$dir/$b.1"
    done
}

build_debs() {
    local c
    mkdir -p "$OUT" "$WORK/next"
    for c in "${CRATES[@]}"; do
        cargo deb -p "$c" --no-build -o "$OUT/" >/dev/null
        # The upgrade test's "next release": the same files, version + 1.
        cargo deb -p "$c" --no-build --fast --deb-version "$NEXT_VERSION-1" -o "$WORK/next/" >/dev/null
    done
    local f sizes=()
    while read -r f; do
        [[ -f $f ]] || die "cargo-deb did not write $f"
        sizes+=("$(basename "$f") $(du -k "$f" | cut -f1) KiB")
    done < <(debs "$OUT" "$VERSION")
    log "built: ${sizes[*]}"
    note_summary "debs built: ${sizes[*]}"
}

lint() {
    local out
    mapfile -t files < <(debs "$OUT" "$VERSION")
    # Overrides ship in the packages (packaging/debian/lintian/, each with
    # its reason). --show-overrides lists them but also makes lintian exit
    # non-zero for them, so the verdict is read from the tags: any error
    # (E:) or warning (W:) fails.
    out=$(lintian --show-overrides "${files[@]}" 2>&1 |
        grep -v 'running with root privileges is not recommended' || true)
    [[ -n $out ]] && printf '%s\n' "$out"
    if grep -q '^[EW]:' <<<"$out"; then die "lintian is not clean"; fi
    grep -q '^\(E\|W\|I\|O\|N\|P\|X\|C\):\|^$' <<<"$out" || [[ -z $out ]] || die "lintian: unexpected output"
    log "lintian: clean ($(grep -c '^O:' <<<"$out" || true) overridden tags, each explained in packaging/debian/lintian/)"
}

# ---------------------------------------------------------------- the node

# Runs UNIT's ExecStartPre lines (a leading "-": failure ignored) and its
# ExecStart as systemd would: EnvironmentFile sourced (a leading "-" means
# optional), $VAR words split, StateDirectory made, stdout and stderr to a
# log (journald's job). Records the pid.
declare -A PIDS=()
unit_start() {
    local unit=$1 file=/usr/lib/systemd/system/$1.service exec envf sd pre
    [[ -f $file ]] || die "no $file"
    exec=$(sed -n 's/^ExecStart=//p' "$file")
    envf=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$file")
    sd=$(sed -n 's/^StateDirectory=//p' "$file")
    [[ -n $sd ]] && mkdir -p "/var/lib/$sd"
    while IFS= read -r pre; do
        if [[ $pre == -* ]]; then
            eval "${pre#-}" >>"$WORK/$unit.log" 2>&1 || log "$unit: ExecStartPre failed (ignored, as its \"-\" says): $pre"
        else
            eval "$pre" >>"$WORK/$unit.log" 2>&1 || die "$unit: ExecStartPre failed: $pre"
        fi
    done < <(sed -n 's/^ExecStartPre=//p' "$file")
    (
        set -a
        # shellcheck disable=SC1090
        [[ -n $envf && -f $envf ]] && . "$envf"
        set +a
        # Unquoted on purpose: systemd splits $VAR at whitespace.
        # shellcheck disable=SC2086
        eval "exec $exec" >>"$WORK/$unit.log" 2>&1
    ) &
    PIDS[$unit]=$!
}

# SIGTERM and wait, as `systemctl stop` (KillMode=control-group, 90 s).
unit_stop() {
    local pid=${PIDS[$1]:-} i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        die "$1 did not stop within 15 s of SIGTERM"
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$1]"
}

wait_for() { # WHAT CMD...: up to 20 s
    local what=$1 i
    shift
    for ((i = 0; i < 200; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -20 "$WORK"/*.log >&2 || true
    die "$what did not come up"
}

node_start() {
    unit_start vrouter
    wait_for "vrouter (ksync socket)" test -S /run/vrouter/dpdk_netlink
    unit_start vrouter-agent
    wait_for "vrouter-agent (VNC API)" curl -fsS http://127.0.0.1:8082/projects
    unit_start contrail-docker-driver
    wait_for "contrail-docker-driver (plugin socket)" test -S /run/docker/plugins/Contrail.sock
}

# Reverse order, as systemd stops units ordered After= each other.
node_stop() {
    unit_stop contrail-docker-driver
    unit_stop vrouter-agent
    unit_stop vrouter
}

# Processes running the packaged binaries (also once deleted), as
# "pid exe"; other builds of the same names (e.g. tests from a target dir)
# are not ours.
packaged_processes() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        if [[ $exe =~ ^/usr/bin/(vrouter|vrouter-agent|contrail-docker-driver)(\ \(deleted\))?$ ]]; then
            printf '%s %s\n' "${p#/proc/}" "$exe"
        fi
    done
}

snapshot() {
    find "${SNAP_DIRS[@]}" -xdev 2>/dev/null | grep -Ev "$SNAP_IGNORE" | sort >"$1" || true
}

# ---------------------------------------------------------------- steps

preflight() {
    local p
    ((EUID == 0)) || die "run as root (dpkg -i into this machine)"
    for p in "${PKGS[@]}"; do
        if dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^[ih]'; then
            die "$p is already installed here; remove it first (dpkg --purge ${PKGS[*]})"
        fi
    done
    for p in 8082 8085 9091; do
        if curl -s -o /dev/null "http://127.0.0.1:$p/"; then die "127.0.0.1:$p is in use"; fi
    done
    [[ ! -e /run/vrouter && ! -e /var/lib/vrouter-rs && ! -e /etc/contrail ]] ||
        die "/run/vrouter, /var/lib/vrouter-rs or /etc/contrail exists: not a clean machine"
    rm -rf "$WORK/logs"
    mkdir -p "$WORK"
    rm -f "$WORK"/*.log
    snapshot "$WORK/before.txt"
}

installed() {
    local t0 p u
    mapfile -t files < <(debs "$OUT" "$VERSION")
    t0=$(now_ms)
    dpkg -i "${files[@]}"
    INSTALL_SECS=$(secs_since "$t0")
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" | grep -q '^ii' || die "$p not installed"
    done
    for u in "${UNITS[@]}"; do
        [[ -f /usr/lib/systemd/system/$u.service ]] || die "no unit $u.service"
        # deb-systemd-helper enables them even without a running systemd.
        [[ -L /etc/systemd/system/multi-user.target.wants/$u.service ]] || die "$u.service not enabled"
    done
    dpkg-query -W -f='${Conffiles}\n' vrouter-rs-agent | grep -q /etc/contrail/contrail-vrouter-agent.conf ||
        die "the agent config is not a conffile"
    [[ $(stat -c %a /etc/default/contrail-docker-driver) == 600 ]] || die "driver options not root-only"
    cmp -s /etc/contrail/contrail-vrouter-agent.conf "$ROOT/packaging/config/contrail-vrouter-agent.conf" ||
        die "/etc/contrail/contrail-vrouter-agent.conf is not the packaged default"
    man -w vrctl >/dev/null || die "no man page for vrctl"
    log "installed in $INSTALL_SECS: $(dpkg -L "${PKGS[@]}" | grep -c '^/usr/bin/') binaries, units enabled, conffiles registered"
}

verify_units() {
    local u
    for u in "${UNITS[@]}"; do
        systemd-analyze verify "/usr/lib/systemd/system/$u.service"
        grep -q '^Restart=on-failure$' "/usr/lib/systemd/system/$u.service" || die "$u: not Restart=on-failure"
    done
    grep -q '^After=vrouter.service' /usr/lib/systemd/system/vrouter-agent.service || die "agent not after vrouter"
    grep -q '^After=vrouter-agent.service' /usr/lib/systemd/system/contrail-docker-driver.service ||
        die "driver not after the agent"
    log "systemd-analyze verify: ${UNITS[*]} clean; ordering vrouter -> vrouter-agent -> contrail-docker-driver, Restart=on-failure"
}

started() {
    node_start
    [[ -S /run/vrouter/agent_pkt0 && -d /var/lib/vrouter-rs ]] || die "agent: no pkt0 socket or state dir"
    /usr/bin/vrctl vif --list | grep -q 'vif0/2' || die "vrctl: no agent vif (vif0/2) in the datapath"
    grep -q '^vrouter-rs /run/vrouter tmpfs [^ ]*huge=within_size' /proc/mounts ||
        die "vrouter.service's ExecStartPre mounted no huge-page tmpfs on /run/vrouter: $(grep /run/vrouter /proc/mounts)"
    grep -q 'flow table on 2 MiB pages' "$WORK/vrouter.log" ||
        die "the datapath's flow table is not on 2 MiB pages: $(grep 'flow table on' "$WORK/vrouter.log")"
    log "the units' ExecStart lines run: sockets in /run/vrouter (a huge=within_size tmpfs, flow table on 2 MiB pages), state in /var/lib/vrouter-rs, /run/docker/plugins/Contrail.sock"
}

# The first code block under README.md's "## Quick start", run as written
# (docker pointed at the private dockerd), except its interactive
# `docker run -it ... sh`, which becomes a non-interactive check.
readme_quick_start() {
    awk '/^## Quick start/ {q = 1} q && /^```/ {n++; next} q && n == 1 {print} n >= 2 {exit}' "$ROOT/README.md" |
        grep -v '^docker run '
}

quick_start() {
    local d="$WORK/docker" out block
    block=$(readme_quick_start)
    [[ $block == *'docker network create -d Contrail'* && $block == *'curl'* ]] ||
        die "README.md: no quick start block found"
    DOCKER_DIR=$d
    docker_ensure_deps
    docker_start "$d"
    docker_wait "$d" 60
    docker_busybox_image "$d" busybox
    # shellcheck disable=SC2317  # called by the eval below
    docker() { docker_cli "$d" "$@"; }
    eval "$block" >/dev/null
    unset -f docker
    out=$(docker_cli "$d" run --rm --network blue busybox sh -c 'ip -4 addr show eth0; ping -c 2 -W 2 198.18.1.1')
    printf '%s\n' "$out"
    [[ $out == *'inet 198.18.1.'* ]] || die "the container did not get an address on 198.18.1.0/24"
    [[ $out == *'2 packets received'* ]] || die "the container cannot ping its gateway 198.18.1.1"
    curl -fsS http://127.0.0.1:8085/ports >/dev/null || die "introspect /ports"
    docker_cli "$d" network rm blue >/dev/null
    local t0
    t0=$(now_ms)
    cp "$d/dockerd.log" "$WORK/dockerd.log" 2>/dev/null || true
    docker_stop "$d"
    log "dockerd stopped in $(secs_since "$t0")"
    DOCKER_DIR=''
    log "README quick start against /usr/bin: network created, container on 198.18.1.0/24 pinged its gateway"
}

upgraded() {
    local t0
    # What an operator changes: the config file, and config in the store
    # (project demo and VN blue from the quick start).
    sed -i 's/^flow_cache_timeout = 180$/flow_cache_timeout = 120/' /etc/contrail/contrail-vrouter-agent.conf
    mapfile -t files < <(debs "$WORK/next" "$NEXT_VERSION")
    t0=$(now_ms)
    dpkg -i "${files[@]}"
    UPGRADE_SECS=$(secs_since "$t0")
    dpkg-query -W -f='${Version}' vrouter-rs-agent | grep -qx "$NEXT_VERSION-1" || die "not upgraded"
    # postinst's try-restart, as systemd would do it.
    node_stop
    node_start
    grep -q '^flow_cache_timeout = 120$' /etc/contrail/contrail-vrouter-agent.conf || die "the upgrade replaced the edited config"
    curl -fsS http://127.0.0.1:8082/virtual-networks | grep -q blue || die "the upgrade lost the config store"
    [[ -L /etc/systemd/system/multi-user.target.wants/vrouter-agent.service ]] || die "the upgrade disabled the agent"
    log "upgraded $VERSION -> $NEXT_VERSION in $UPGRADE_SECS, restarted: edited conffile and config store (VN blue) kept, units still enabled"
}

removed_keeping_state() {
    local t0
    node_stop # prerm's stop, as systemd would
    t0=$(now_ms)
    dpkg -r "${PKGS[@]}"
    REMOVE_SECS=$(secs_since "$t0")
    [[ ! -e /usr/bin/vrouter-agent && ! -e /usr/lib/systemd/system/vrouter.service ]] || die "dpkg -r left program files"
    [[ -f /etc/contrail/contrail-vrouter-agent.conf && -f /var/lib/vrouter-rs/config.redb ]] ||
        die "dpkg -r removed the config or the state"
    ! grep -q ' /run/vrouter ' /proc/mounts || die "dpkg -r left the tmpfs on /run/vrouter mounted"
    log "removed in $REMOVE_SECS: programs, units and the /run/vrouter tmpfs gone; conffiles and /var/lib/vrouter-rs kept"
}

purged() {
    local t0
    t0=$(now_ms)
    dpkg --purge "${PKGS[@]}"
    PURGE_SECS=$(secs_since "$t0")
    snapshot "$WORK/after.txt"
    # Leftovers are paths that were not there before. Paths gone since
    # count too (a purge must not delete what it did not install), except
    # under /run and /dev/shm, where other processes of this machine (tests,
    # the perf harness) remove their own files meanwhile.
    local added gone
    added=$(comm -13 "$WORK/before.txt" "$WORK/after.txt")
    gone=$(comm -23 "$WORK/before.txt" "$WORK/after.txt")
    if [[ -n $added ]] || grep -Ev '^/(run|dev/shm)(/|$)' <<<"$gone" | grep -q .; then
        diff -u "$WORK/before.txt" "$WORK/after.txt" || true
        die "left behind (+) or removed (-) by dpkg --purge (above)"
    fi
    [[ -z $gone ]] || log "gone meanwhile under /run or /dev/shm (other processes' files): $(wc -l <<<"$gone") paths"
    local left
    left=$(packaged_processes)
    [[ -z $left ]] || die "processes of the packaged binaries left: $left"
    log "purged in $PURGE_SECS: no leftovers in ${SNAP_DIRS[*]} (listing diffed against before the install)"
    note_summary "debs installed in $INSTALL_SECS (units verified, started, README quick start passed), upgraded in $UPGRADE_SECS, removed in $REMOVE_SECS, purged in $PURGE_SECS: no leftovers"
}

# Stops what runs and purges what is installed (also on failure).
DOCKER_DIR=''
cleanup() {
    local p
    [[ -n $DOCKER_DIR ]] && docker_stop "$DOCKER_DIR"
    node_stop 2>/dev/null || true
    for p in "${PKGS[@]}"; do
        if dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^[ihrc]'; then
            dpkg --purge "$p" >/dev/null 2>&1 || true
        fi
    done
}

if [[ ${1:-} == --build-only ]]; then
    report_failure_on_exit
    step "release build (vrouter, vrouter-agent, contrail-docker-driver, vrctl)" build_bins
    exit 0
fi
[[ $# == 0 ]] || die "unknown argument: $1 (--build-only or nothing)"

report_failure_on_exit cleanup
for t in cargo-deb lintian help2man systemd-analyze dockerd curl; do
    command -v "$t" >/dev/null || die "missing $t: run the deps phase (bash scripts/test-all.sh deps)"
done
step "release build (vrouter, vrouter-agent, contrail-docker-driver, vrctl)" build_bins
step "man pages (help2man)" man_pages
step "cargo deb: ${PKGS[*]} ($VERSION, and $NEXT_VERSION for the upgrade test)" build_debs
step "lintian" lint
step "clean machine" preflight
step "dpkg -i" installed
step "systemd-analyze verify" verify_units
step "units started as systemd would" started
step "README quick start against the installed node" quick_start
step "dpkg -i next version (upgrade)" upgraded
step "dpkg -r" removed_keeping_state
step "dpkg --purge: nothing left" purged
log "deb: OK"
