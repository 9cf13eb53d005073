#!/usr/bin/env bash
# Performance harness: our vRouter against the kernel, measured in one run.
#
#   sudo scripts/perf/run.sh            # or as root; see docs/performance.md
#
# (a) TCP, one stream, container to container on one host: through our
#     vRouter vs the kernel's routed path (two veth hops through a middle
#     namespace with ip_forward).
# (b) UDP 64-byte frames (18-byte payload), packets per second received:
#     through our vRouter vs a Linux bridge.
# (c) TCP, one stream, across two hosts (namespaces joined by a veth
#     fabric): our MPLSoUDP vs the kernel's VXLAN.
#
# Prints every raw number and the three ratios (median of the repeats).
# Not a test: nothing here asserts a target. Builds the release examples
# `perf_node` (a programmed vRouter node) and `pps` (sendmmsg/recvmmsg
# flooder/counter). Creates its own namespaces (prefix vrtperf<pid>-),
# bounds every tool with `timeout`, and removes everything on exit, also
# on failure or Ctrl-C.
#
# Environment: PERF_SECS (default 5) seconds per measurement, PERF_REPEAT
# (default 3) repeats per pair, PERF_SRC (default: this checkout) where to
# run cargo, CARGO_TARGET_DIR as usual, PERF_BIN_DIR to use prebuilt
# examples and skip the build, PERF_ONLY (default abc) which of the
# three to run.

set -euo pipefail

SECS=${PERF_SECS:-5}
REPEAT=${PERF_REPEAT:-3}
ONLY=${PERF_ONLY:-abc}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${PERF_SRC:-$ROOT}
P="vrtperf$$"
TMP=$(mktemp -d)
PIDS=()

log() { printf '%s\n' "$*" >&2; }
die() {
    log "perf: $*"
    exit 1
}

cleanup() {
    local pid ns
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for ns in $(ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 {print $1}'); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

((EUID == 0)) || die "needs root (network namespaces, AF_PACKET)"
for tool in ip iperf3 timeout awk sort; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install iperf3 iproute2 coreutils)"
done
[[ "$SECS" =~ ^[0-9]+$ && "$SECS" -ge 1 && "$SECS" -le 60 ]] || die "PERF_SECS: 1..60"
[[ "$REPEAT" =~ ^[0-9]+$ && "$REPEAT" -ge 1 && "$REPEAT" -le 10 ]] || die "PERF_REPEAT: 1..10"
[[ "$ONLY" =~ ^[abc]+$ ]] || die "PERF_ONLY: a subset of abc"

# ---- build ----------------------------------------------------------------

if [[ -n "${PERF_BIN_DIR:-}" ]]; then
    BIN=$PERF_BIN_DIR
else
    log "building release examples (cargo build --release -p vrouter --examples) in $SRC"
    (cd "$SRC" && cargo build --quiet --release -p vrouter --example perf_node --example pps)
    BIN=${CARGO_TARGET_DIR:-$SRC/target}/release/examples
fi
NODE=$BIN/perf_node
PPS=$BIN/pps
[[ -x "$NODE" && -x "$PPS" ]] || die "missing $NODE or $PPS"

# ---- topology helpers -------------------------------------------------------

ns() { printf '%s-%s' "$P" "$1"; }

mkns() {
    ip netns add "$(ns "$1")"
    ip -n "$(ns "$1")" link set lo up
}

delns() {
    local n
    for n in "$@"; do ip netns del "$(ns "$n")" 2>/dev/null || true; done
}

# container HOSTNS HOSTIF CNS MAC ADDR/LEN MTU [GATEWAY]
container() {
    local h c
    h=$(ns "$1") c=$(ns "$3")
    ip -n "$h" link add name "$2" type veth peer name eth0 netns "$c"
    ip -n "$h" link set "$2" up
    ip -n "$c" link set eth0 address "$4" mtu "$6" up
    ip -n "$c" addr add "$5" dev eth0
    if [[ -n "${7:-}" ]]; then ip -n "$c" route add default via "$7"; fi
}

# fabric HA HB: a veth `fab` between two host namespaces, 192.0.2.1/.2.
fabric() {
    ip -n "$(ns "$1")" link add name fab type veth peer name fab netns "$(ns "$2")"
    ip -n "$(ns "$1")" link set fab address 02:00:00:00:00:01 up
    ip -n "$(ns "$2")" link set fab address 02:00:00:00:00:02 up
    ip -n "$(ns "$1")" addr add 192.0.2.1/24 dev fab
    ip -n "$(ns "$2")" addr add 192.0.2.2/24 dev fab
}

# node HOSTNS ARGS...: start perf_node in HOSTNS, wait until programmed.
node() {
    local h=$1 out
    shift
    out="$TMP/node-$h.out"
    timeout $((SECS * REPEAT * 4 + 120)) ip netns exec "$(ns "$h")" "$NODE" "$@" \
        --max-secs $((SECS * REPEAT * 4 + 100)) >"$out" 2>"$TMP/node-$h.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q ready "$out" 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$TMP/node-$h.err" >&2
    die "perf_node in $h did not start"
}

# untrack PID: forget a background job that has been waited for (its pid
# may be reused, so the cleanup must not signal it any more).
untrack() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

stop_nodes() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}

# tcp SERVERNS CLIENTNS ADDR: one iperf3 stream, prints Gbit/s (receiver).
tcp() {
    local s c out
    s=$(ns "$1") c=$(ns "$2")
    timeout $((SECS + 30)) ip netns exec "$s" iperf3 -s -1 -p 5301 >/dev/null 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    out=""
    for _ in $(seq 50); do
        sleep 0.1
        if out=$(timeout $((SECS + 20)) ip netns exec "$c" iperf3 -c "$3" -p 5301 -t "$SECS" -f m 2>&1); then
            break
        fi
        out=""
    done
    wait "$spid" 2>/dev/null || true
    untrack "$spid"
    [[ -n "$out" ]] || die "iperf3 $2 -> $3 failed"
    awk '/receiver/ {printf "%.2f\n", $(NF-2) / 1000}' <<<"$out"
}

# udp_pps SENDERNS RECEIVERNS ADDR: 64-byte frames, prints received pps;
# the sender's own rate (what was offered) is left for sent_pps.
udp_pps() {
    local out
    timeout $((SECS + 20)) ip netns exec "$(ns "$2")" "$PPS" recv --bind "$3:9000" \
        --secs "$SECS" >"$TMP/pps.out" 2>&1 &
    local rpid=$!
    PIDS+=("$rpid")
    sleep 0.3
    # Warm up neighbour resolution so the flood starts at once.
    timeout 10 ip netns exec "$(ns "$1")" "$PPS" send --dst "$3:9001" --secs 1 >/dev/null
    timeout $((SECS + 10)) ip netns exec "$(ns "$1")" "$PPS" send --dst "$3:9000" \
        --secs $((SECS + 1)) >"$TMP/pps.sent" 2>&1 || true
    wait "$rpid" || true
    untrack "$rpid"
    out=$(cat "$TMP/pps.out")
    awk '/^received/ {print $(NF-1)}' <<<"$out"
}

# The rate the last udp_pps sender offered: a received rate equal to it is
# the sender's ceiling, not the path's.
sent_pps() { awk '/^sent/ {print $(NF-1)}' "$TMP/pps.sent"; }

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

# ---- (a) one host, TCP ------------------------------------------------------

A_K=() A_V=() B_K=() B_V=() C_K=() C_V=() B_KS=() B_VS=()
if [[ $ONLY == *[ab]* ]]; then
mkns kc1
mkns kr
mkns kc2
container kr r1 kc1 02:11:00:00:01:01 198.18.1.1/24 1500 198.18.1.254
container kr r2 kc2 02:11:00:00:01:02 198.18.2.1/24 1500 198.18.2.254
ip -n "$(ns kr)" addr add 198.18.1.254/24 dev r1
ip -n "$(ns kr)" addr add 198.18.2.254/24 dev r2
ip netns exec "$(ns kr)" sysctl -qw net.ipv4.ip_forward=1

mkns vh
mkns c1
mkns c2
container vh vh1 c1 02:11:00:00:00:01 198.18.0.1/24 1500
container vh vh2 c2 02:11:00:00:00:02 198.18.0.2/24 1500
node vh --vm 3,vh1,02:11:00:00:00:01,198.18.0.1 --vm 4,vh2,02:11:00:00:00:02,198.18.0.2

fi
if [[ $ONLY == *a* ]]; then
log "== (a) TCP one stream, one host: vRouter vs kernel routed veth"
for i in $(seq "$REPEAT"); do
    A_K+=("$(tcp kc2 kc1 198.18.2.1)")
    A_V+=("$(tcp c2 c1 198.18.0.2)")
    log "  run $i: kernel routed ${A_K[-1]} Gbit/s, vRouter ${A_V[-1]} Gbit/s"
done
fi

# ---- (b) one host, 64-byte UDP pps -------------------------------------------

if [[ $ONLY == *b* ]]; then
log "== (b) UDP 64-byte pps, one host: vRouter vs Linux bridge"
mkns bh
mkns bc1
mkns bc2
ip -n "$(ns bh)" link add name br0 type bridge
ip -n "$(ns bh)" link set br0 up
container bh b1 bc1 02:11:00:00:03:01 198.18.3.1/24 1500
container bh b2 bc2 02:11:00:00:03:02 198.18.3.2/24 1500
ip -n "$(ns bh)" link set b1 master br0
ip -n "$(ns bh)" link set b2 master br0

for i in $(seq "$REPEAT"); do
    B_K+=("$(udp_pps bc1 bc2 198.18.3.2)")
    B_KS+=("$(sent_pps)")
    B_V+=("$(udp_pps c1 c2 198.18.0.2)")
    B_VS+=("$(sent_pps)")
    log "  run $i: bridge ${B_K[-1]} pps (offered ${B_KS[-1]}), vRouter ${B_V[-1]} pps (offered ${B_VS[-1]})"
done
fi
stop_nodes
delns kc1 kr kc2 vh c1 c2 bh bc1 bc2

# ---- (c) two hosts, TCP -----------------------------------------------------

if [[ $ONLY == *c* ]]; then
log "== (c) TCP one stream, two hosts: vRouter MPLSoUDP vs kernel VXLAN"
mkns xa
mkns xb
mkns xca
mkns xcb
fabric xa xb
for h in xa xb; do
    local_ip=192.0.2.1 remote_ip=192.0.2.2
    [[ $h == xb ]] && local_ip=192.0.2.2 remote_ip=192.0.2.1
    ip -n "$(ns "$h")" link add name vx0 type vxlan id 42 local "$local_ip" remote "$remote_ip" \
        dstport 4789 dev fab
    ip -n "$(ns "$h")" link add name br0 type bridge
    ip -n "$(ns "$h")" link set vx0 master br0
    ip -n "$(ns "$h")" link set vx0 up
    ip -n "$(ns "$h")" link set br0 up
done
container xa xv xca 02:11:00:00:04:01 198.18.4.1/24 1400
container xb xv xcb 02:11:00:00:04:02 198.18.4.2/24 1400
ip -n "$(ns xa)" link set xv master br0
ip -n "$(ns xb)" link set xv master br0

mkns ha
mkns hb
mkns ca
mkns cb
fabric ha hb
container ha vh1 ca 02:11:00:00:05:01 198.18.5.1/24 1400
container hb vh1 cb 02:11:00:00:05:02 198.18.5.2/24 1400
# VM on vif 3 on each side: label 16 + 2*3 = 22.
node ha --vm 3,vh1,02:11:00:00:05:01,198.18.5.1 --fabric fab,02:00:00:00:00:01,192.0.2.1 \
    --peer 02:00:00:00:00:02,192.0.2.2 --encap mpls-udp --remote 198.18.5.2,22
node hb --vm 3,vh1,02:11:00:00:05:02,198.18.5.2 --fabric fab,02:00:00:00:00:02,192.0.2.2 \
    --peer 02:00:00:00:00:01,192.0.2.1 --encap mpls-udp --remote 198.18.5.1,22

for i in $(seq "$REPEAT"); do
    C_K+=("$(tcp xcb xca 198.18.4.2)")
    C_V+=("$(tcp cb ca 198.18.5.2)")
    log "  run $i: kernel VXLAN ${C_K[-1]} Gbit/s, vRouter MPLSoUDP ${C_V[-1]} Gbit/s"
done
stop_nodes
fi

# ---- report -----------------------------------------------------------------

ak=$(median "${A_K[@]:-0}") av=$(median "${A_V[@]:-0}")
bk=$(median "${B_K[@]:-0}") bv=$(median "${B_V[@]:-0}")
bks=$(median "${B_KS[@]:-0}") bvs=$(median "${B_VS[@]:-0}")
ck=$(median "${C_K[@]:-0}") cv=$(median "${C_V[@]:-0}")
cat <<EOF

vrouter-rs performance harness: $(nproc) CPUs, $(uname -r), ${SECS}s x ${REPEAT} per path, medians
(a) TCP 1 stream, one host:   vRouter $av Gbit/s   kernel routed veth $ak Gbit/s   ratio $(ratio "$av" "$ak")  (target >= 0.50)
(b) UDP 64 B, one host:       vRouter $bv pps      Linux bridge $bk pps            ratio $(ratio "$bv" "$bk")  (target >= 1.00)
    offered by the sender:    vRouter run $bvs pps   bridge run $bks pps   (received/offered: vRouter $(ratio "$bv" "$bvs"), bridge $(ratio "$bk" "$bks"); near 1.00 on both = the sender's ceiling)
(c) TCP 1 stream, two hosts:  vRouter MPLSoUDP $cv Gbit/s   kernel VXLAN $ck Gbit/s   ratio $(ratio "$cv" "$ck")  (target >= 0.40)
raw: a_vrouter=(${A_V[*]}) a_kernel=(${A_K[*]}) b_vrouter=(${B_V[*]}) b_bridge=(${B_K[*]}) b_offered_vrouter=(${B_VS[*]}) b_offered_bridge=(${B_KS[*]}) c_vrouter=(${C_V[*]}) c_vxlan=(${C_K[*]})
EOF
