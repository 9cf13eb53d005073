#!/usr/bin/env bash
# Performance harness: the real compute node against the kernel, in one run.
#
#   sudo scripts/perf/run.sh            # or as root; see docs/performance.md
#
# Every "ours" figure is the node a user runs: `vrouter` (the datapath) and
# `vrouter-agent` in each host namespace, networks, security groups, VMs,
# VMIs and instance IPs created through the agent's VNC config API and ports
# added through its port API, exactly as the Docker driver does; the agent
# programs the datapath over ksync and decides every flow (policy on).
#
# (a) TCP, one stream, container to container on one host: through the
#     node vs the kernel's routed path (two veth hops, middle namespace).
# (b) UDP 64-byte frames (18-byte payload), datagrams/s received: through
#     the node vs a Linux bridge.
# (c) TCP, one stream, two hosts (namespaces joined by a veth fabric), over
#     each of MPLSoUDP, MPLSoGRE and VXLAN vs the kernel's VXLAN. A cluster:
#     both agents run `--config-source controller` against a control node
#     (`control-node-peer`, the test control node: IF-MAP config from its
#     VNC API, routes reflected between the agents over XMPP); the harness
#     creates the config through that VNC API, each port through its host's
#     port API, and picks the encapsulation as an operator does
#     (global-vrouter-config's encapsulation priorities), then waits until
#     both datapaths carry the peer's route over that tunnel kind.
# (d) New flows per second through the one-host node: TCP SYNs from a
#     container, each from a new source port (a new flow the agent must
#     decide), counted when delivered to the other container. No kernel
#     baseline (the kernel has no flow setup); `cargo bench -p
#     vrouter-agent --bench flow_setup` gives the in-process figure.
#
# Runs are interleaved: each round measures every path, kernel and ours
# back to back, the order alternating between rounds (K V, V K, ...).
# Reports min / median / max per path, the ratio of the medians, and the
# CPU time of our processes (vrouter + vrouter-agent of the hosts involved,
# user+sys from /proc/PID/stat over the run) per packet beside each figure,
# and the whole machine's busy CPU time (/proc/stat) per packet for both
# sides; per packet = CPU seconds per second / packets per second.
# TCP "packets" are goodput bytes / MSS (1448 at MTU 1500, 1348 at 1400).
#
# Not a test: nothing here asserts a target. Builds the release binaries
# and the `pps` example (sendmmsg/recvmmsg/SYN flooder and counter).
# Creates its own namespaces (prefix vrtperf<pid>-), bounds every tool with
# `timeout`, removes everything on exit, also on failure or Ctrl-C.
#
# Environment: PERF_SECS (default 10) seconds per measurement, PERF_REPEAT
# (default 5) rounds, PERF_ONLY (default abcd) which paths, PERF_ENCAPS
# (default "udp gre vxlan") the encapsulations of (c), PERF_SRC (default:
# this checkout) where to run cargo, CARGO_TARGET_DIR as usual,
# PERF_BIN_DIR a directory with prebuilt vrouter, vrouter-agent, vrctl, control-node-peer
# and examples/pps (no build). PERF_PROFILE=DIR: record `perf stat` of the
# node processes during each of our runs into DIR (PERF_PROFILE_MODE=record:
# `perf record -g` instead, PERF_CALL_GRAPH=dwarf for stacks through code
# built without frame pointers; record-all: `perf record -a -g`, every CPU). PERF_DEBUG=1: the nodes' non-zero drop
# counters and the agent's flow metrics after each of our runs.
# PERF_FAST_PATH: our vrouter's `--fast-path` (default auto, the vrouter's
# own default: the kernel BPF fast path where it loads, for decided flows
# between local containers and into and out of tunnels with the fabric's
# tunnel GSO kept on, as tc-encap-gso); off: the user-space path only; tc:
# same-host flows only; tc-encap: tunnels too, tunnel GSO off on the fabric.
# The report says whether the fast path loaded. PERF_FLOW_ENTRIES: the
# nodes' flow table size (`--flow-entries`; default the vrouter's 524288).
# PERF_VROUTER_ARGS: more options for every node's vrouter (e.g.
# "--datapath-nice 0 --datapath-cpus 1"), for side-by-side runs.

set -euo pipefail

SECS=${PERF_SECS:-10}
REPEAT=${PERF_REPEAT:-5}
ONLY=${PERF_ONLY:-abcd}
ENCAPS=${PERF_ENCAPS:-udp gre vxlan}
PROFILE=${PERF_PROFILE:-}
FAST_PATH=${PERF_FAST_PATH:-auto}
# Whether each node loaded the kernel fast path (for the report).
FP_LOADED=""
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${PERF_SRC:-$ROOT}
P="vrtperf$$"
# The flow tables (shared memory) and sockets live here: tmpfs. Mounted
# huge=within_size below (as run-node.sh and vrouter.service do), so the
# flow tables get 2 MiB pages like the node a user runs (/dev/shm is
# huge=never).
TMP=$(mktemp -d /dev/shm/vrtperf.XXXXXX)
TMP_MOUNTED=''
FLOW_PAGES='4 KiB'
PIDS=()
declare -A NODE_PIDS=()
NODE_AGENT_ARGS=()
# Per host: more agent arguments (cluster mode), and where its config API is.
declare -A NODE_EXTRA=() VNC_AT=()

log() { printf '%s\n' "$*" >&2; }
die() {
    log "perf: $*"
    exit 1
}

cleanup() {
    local pid ns f
    if [[ -n ${PERF_DEBUG:-} ]]; then
        for f in "$TMP"/*/vrouter.log "$TMP"/*/agent.log; do
            [[ -f $f ]] && { log "-- $f"; tail -n 15 "$f" >&2; }
        done
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for ns in $(ip netns list 2>/dev/null | awk -v p="$P-" 'index($1, p) == 1 {print $1}'); do
        ip netns del "$ns" 2>/dev/null || true
    done
    [[ -z $TMP_MOUNTED ]] || umount "$TMP" 2>/dev/null || log "perf: could not unmount $TMP"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

((EUID == 0)) || die "needs root (network namespaces, AF_PACKET)"
for tool in ip iperf3 timeout awk sort curl jq; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install iperf3 iproute2 coreutils curl jq)"
done
[[ "$SECS" =~ ^[0-9]+$ && "$SECS" -ge 1 && "$SECS" -le 60 ]] || die "PERF_SECS: 1..60"
[[ "$REPEAT" =~ ^[0-9]+$ && "$REPEAT" -ge 1 && "$REPEAT" -le 20 ]] || die "PERF_REPEAT: 1..20"
[[ "$ONLY" =~ ^[abcd]+$ ]] || die "PERF_ONLY: a subset of abcd"
[[ "$FAST_PATH" =~ ^(auto|off|tc|tc-encap|tc-encap-gso)$ ]] || die "PERF_FAST_PATH: auto, off, tc, tc-encap or tc-encap-gso"
for e in $ENCAPS; do
    [[ $e == udp || $e == gre || $e == vxlan ]] || die "PERF_ENCAPS: udp, gre, vxlan"
done
[[ -z $PROFILE ]] || command -v perf >/dev/null || die "PERF_PROFILE needs perf (linux-perf)"
if mount -t tmpfs -o huge=within_size,mode=0755 vrtperf "$TMP" 2>/dev/null; then
    TMP_MOUNTED=1 FLOW_PAGES='2 MiB'
else
    log "perf: no huge-page tmpfs on $TMP: the flow tables use 4 KiB pages (not the node users run)"
fi

# ---- build ----------------------------------------------------------------

if [[ -n "${PERF_BIN_DIR:-}" ]]; then
    BIN=$PERF_BIN_DIR
else
    log "building release binaries (vrouter, vrouter-agent, vrctl, control-node-peer, example pps) in $SRC"
    (cd "$SRC" && cargo build --quiet --release -p vrouter -p vrouter-agent -p vrctl \
        -p control-node-peer --bins --example pps)
    BIN=${CARGO_TARGET_DIR:-$SRC/target}/release
fi
PPS=$BIN/examples/pps
for b in vrouter vrouter-agent vrctl; do [[ -x $BIN/$b ]] || die "missing $BIN/$b"; done
[[ $ONLY != *c* || -x $BIN/control-node-peer ]] || die "missing $BIN/control-node-peer"
[[ -x $PPS ]] || die "missing $PPS"

# ---- topology helpers -------------------------------------------------------

ns() { printf '%s-%s' "$P" "$1"; }
inns() {
    local n=$1
    shift
    ip netns exec "$(ns "$n")" "$@"
}

mkns() {
    ip netns add "$(ns "$1")"
    ip -n "$(ns "$1")" link set lo up
}

# veth HOSTNS HOSTIF CNS MAC ADDR/LEN MTU [GATEWAY]: a container's eth0.
veth() {
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

untrack() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# ---- the real node ----------------------------------------------------------

# node H [FABRIC]: vrouter and vrouter-agent in host namespace H, the
# agent's APIs on H's own loopback (VNC 8082, port API 9091, introspect
# 8085), state under $TMP/H.
node() {
    local h=$1 fab=${2:-} d="$TMP/$1" args
    mkdir -p "$d"
    args=(--sock-dir "$d/sock")
    [[ -n $fab ]] && args+=(--fabric "$fab")
    args+=(--fast-path "$FAST_PATH")
    [[ -z ${PERF_FLOW_ENTRIES:-} ]] || args+=(--flow-entries "$PERF_FLOW_ENTRIES")
    # shellcheck disable=SC2206 # options without spaces, split on purpose
    [[ -z ${PERF_VROUTER_ARGS:-} ]] || args+=($PERF_VROUTER_ARGS)
    # `ip netns exec` execs the program: $! is the vrouter's pid (a shell
    # function in the background would put a subshell in between).
    ip netns exec "$(ns "$h")" "$BIN/vrouter" "${args[@]}" >/dev/null 2>"$d/vrouter.log" &
    PIDS+=($!)
    NODE_PIDS[$h]="$!"
    for _ in $(seq 100); do [[ -S $d/sock/dpdk_netlink ]] && break; sleep 0.1; done
    [[ -S $d/sock/dpdk_netlink ]] || { cat "$d/vrouter.log" >&2; die "vrouter in $h did not start"; }
    # (The fast path loads after the ksync socket appears.)
    local fp=no
    if [[ $FAST_PATH != off ]]; then
        for _ in $(seq 30); do
            grep -q "fast path tc on" "$d/vrouter.log" && { fp=yes; break; }
            grep -qE "no kernel fast path|cannot be loaded" "$d/vrouter.log" && break
            sleep 0.1
        done
    fi
    [[ $FP_LOADED == *$fp* ]] || FP_LOADED+=" $fp"
    if [[ -n $TMP_MOUNTED ]] && ! grep -q "flow table on 2 MiB pages" "$d/vrouter.log"; then
        log "perf: $h: the vrouter did not report its flow table on 2 MiB pages"
        FLOW_PAGES='2 MiB (not every node)'
    fi
    # shellcheck disable=SC2206 # the extra arguments have no spaces
    local extra=(${NODE_EXTRA[$h]:-})
    ip netns exec "$(ns "$h")" "$BIN/vrouter-agent" --sock-dir "$d/sock" --state-dir "$d/state" \
        --log-level warn "${NODE_AGENT_ARGS[@]}" "${extra[@]}" >/dev/null 2>"$d/agent.log" &
    PIDS+=($!)
    NODE_PIDS[$h]+=" $!"
    for _ in $(seq 150); do
        if inns "$h" curl -fsS http://127.0.0.1:8085/ksync 2>/dev/null |
            jq -e '.connected == true and .reconciles > 0' >/dev/null 2>&1; then
            # In a cluster, also the XMPP session with the control node.
            [[ ${#extra[@]} == 0 ]] && return 0
            if inns "$h" curl -fsS http://127.0.0.1:8085/controller 2>/dev/null |
                jq -e '[.status.peers[] | select(.state == "established")] | length > 0' \
                    >/dev/null 2>&1; then
                return 0
            fi
        fi
        sleep 0.1
    done
    cat "$d/agent.log" >&2
    die "agent in $h did not connect"
}

vrctl() {
    local h=$1
    shift
    inns "$h" "$BIN/vrctl" --sock-dir "$TMP/$h/sock" "$@"
}

# api H PORT METHOD PATH [JSON]: one call, the body printed; fails on >= 400.
api() {
    local h=$1 port=$2 m=$3 path=$4 body=${5:-}
    local a=(-sS --fail-with-body -X "$m" -H 'Content-Type: application/json')
    [[ -n $body ]] && a+=(--data "$body")
    inns "$h" curl "${a[@]}" "http://127.0.0.1:$port$path" ||
        die "$m $path on $h failed: $body"
}
# vnc H ...: H's config API: its agent's own (8082), or the cluster's.
vnc() {
    local at=${VNC_AT[$1]:-$1 8082}
    api "${at% *}" "${at#* }" "${@:2}"
}
create() { # H TYPE JSON -> uuid
    vnc "$1" POST "/${2}s" "$(jq -nc --arg t "$2" --argjson o "$3" '{($t): $o}')" |
        jq -r --arg t "$2" '.[$t].uuid'
}

# tenant H SUBNET: project perf, VN perf/vn with SUBNET/24, and the
# harness's security group (egress anywhere, ingress from 198.18.0.0/15).
declare -A VN=()
tenant() {
    local h=$1 any sg
    create "$h" project '{"fq_name":["default-domain","perf"],"parent_type":"domain"}' >/dev/null
    VN[$h]=$(create "$h" virtual-network "$(jq -nc --arg s "$2" '{fq_name:["default-domain","perf","vn"],
        parent_type:"project", network_ipam_refs:[{to:["default-domain","default-project",
        "default-network-ipam"], attr:{ipam_subnets:[{subnet:{ip_prefix:$s, ip_prefix_len:24}}]}}]}')")
    any='{"start_port":0,"end_port":65535}'
    sg=$(jq -nc --argjson any "$any" '{fq_name:["default-domain","perf","perf-open"],
        parent_type:"project", security_group_entries:{policy_rule:[
        {direction:">", protocol:"any", ethertype:"IPv4", src_addresses:[{security_group:"local"}],
         dst_addresses:[{subnet:{ip_prefix:"0.0.0.0", ip_prefix_len:0}}], src_ports:[$any], dst_ports:[$any]},
        {direction:">", protocol:"any", ethertype:"IPv4",
         src_addresses:[{subnet:{ip_prefix:"198.18.0.0", ip_prefix_len:15}}],
         dst_addresses:[{security_group:"local"}], src_ports:[$any], dst_ports:[$any]}]}}')
    create "$h" security-group "$sg" >/dev/null
}

# attach H TAG ADDR MTU: what the Docker driver does for one endpoint (VM,
# VMI, instance IP, the veth, the port API call); the container is
# namespace TAG with eth0.
attach() {
    local h=$1 t=$2 addr=$3 mtu=$4 vm vmi mac tap
    vm=$(create "$h" virtual-machine "$(jq -nc --arg n "vm-$t" '{fq_name:[$n]}')")
    vmi=$(create "$h" virtual-machine-interface "$(jq -nc --arg n "vmi-$t" --arg vn "${VN[$h]}" \
        --arg vm "$vm" '{fq_name:["default-domain","perf",$n], parent_type:"project",
        virtual_network_refs:[{to:["default-domain","perf","vn"], uuid:$vn}],
        virtual_machine_refs:[{uuid:$vm}],
        security_group_refs:[{to:["default-domain","perf","perf-open"]}]}')")
    mac=$(vnc "$h" GET "/virtual-machine-interface/$vmi" |
        jq -r '."virtual-machine-interface".virtual_machine_interface_mac_addresses.mac_address[0]')
    create "$h" instance-ip "$(jq -nc --arg n "iip-$t" --arg a "$addr" --arg vn "${VN[$h]}" \
        --arg vmi "$vmi" '{fq_name:[$n], instance_ip_address:$a,
        virtual_network_refs:[{to:["default-domain","perf","vn"], uuid:$vn}],
        virtual_machine_interface_refs:[{uuid:$vmi}]}')" >/dev/null
    tap="tap${vmi:0:11}"
    mkns "$t"
    veth "$h" "$tap" "$t" "$mac" "$addr/24" "$mtu"
    api "$h" 9091 POST /port "$(jq -nc --arg id "$vmi" --arg vm "$vm" --arg vn "${VN[$h]}" \
        --arg mac "$mac" --arg a "$addr" --arg tap "$tap" --arg t "$t" '{id:$id, "instance-id":$vm,
        "vn-id":$vn, "vm-project-id":"", "mac-address":$mac, "ip-address":$a, "ip6-address":"",
        "system-name":$tap, "display-name":$t, type:0, "rx-vlan-id":-1, "tx-vlan-id":-1}')" >/dev/null
    local p=''
    for _ in $(seq 100); do
        p=$(api "$h" 8085 GET /ports | jq -c --arg tap "$tap" '.ports[] | select(.name == $tap)')
        # Programmed: the datapath has the vif.
        if [[ -n $p ]] && vrctl "$h" vif --list 2>/dev/null | grep -qw "$tap"; then break; fi
        p=''
        sleep 0.1
    done
    [[ -n $p ]] || die "port $t on $h not programmed: $(api "$h" 8085 GET /ports) $(vrctl "$h" vif --list 2>&1)"
}

# ---- measurement helpers ----------------------------------------------------

# CPU ticks (user+sys, all threads) of the given pids, summed.
cpu_ticks() {
    local pid t=0 f
    for pid in "$@"; do
        f=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        t=$((t + f))
    done
    echo "$t"
}
# Busy ticks of the whole machine (everything but idle and iowait).
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
HZ=$(getconf CLK_TCK)

# The pids whose CPU "ours" counts for the running measurement.
OURS=()
T0_OURS=0 T0_ALL=0 T0=0
meter_start() {
    T0_OURS=$(cpu_ticks "${OURS[@]}")
    T0_ALL=$(machine_ticks)
    T0=$(date +%s.%N)
}
# meter_stop RATE: CPU over the window divided by the rate (packets/s):
# prints "ours_ns_per_pkt machine_ns_per_pkt".
meter_stop() {
    local o a t
    o=$(cpu_ticks "${OURS[@]}")
    a=$(machine_ticks)
    t=$(date +%s.%N)
    awk -v o=$((o - T0_OURS)) -v a=$((a - T0_ALL)) -v r="$1" -v hz="$HZ" -v ours="${#OURS[@]}" \
        -v dt="$(awk -v a="$T0" -v b="$t" 'BEGIN {print b - a}')" \
        'BEGIN {if (r <= 0 || dt <= 0) {print "nan nan"; exit}
                if (ours == 0) printf "- "; else printf "%.0f ", o * 1e9 / hz / dt / r
                printf "%.0f\n", a * 1e9 / hz / dt / r}'
}

# tcp SERVERNS CLIENTNS ADDR MSS: one iperf3 stream (its first second, slow
# start and flow setup, omitted from the figure and run on top); prints
# "Gbit/s ours_ns/pkt machine_ns/pkt" (receiver goodput).
tcp() {
    local out='' gbps spid cpu
    ip netns exec "$(ns "$1")" timeout $((SECS + 30)) iperf3 -s -1 -p 5301 >/dev/null 2>&1 &
    spid=$!
    PIDS+=("$spid")
    for _ in $(seq 50); do
        sleep 0.1
        meter_start
        out=$(inns "$2" timeout $((SECS + 20)) iperf3 -c "$3" -p 5301 -t "$SECS" -O 1 -J 2>&1) && break
        out=''
    done
    gbps=$(jq -r '.end.sum_received.bits_per_second // 0' <<<"$out" 2>/dev/null || echo 0)
    cpu=$(meter_stop "$(awk -v b="$gbps" -v m="$4" 'BEGIN {printf "%d", b / 8 / m}')")
    wait "$spid" 2>/dev/null || true
    [[ $gbps != 0 ]] || die "iperf3 $2 -> $3 failed: $(head -c 400 <<<"$out")"
    printf '%s %s\n' "$(awk -v b="$gbps" 'BEGIN {printf "%.2f", b / 1e9}')" "$cpu"
}

# udp_pps SENDERNS RECEIVERNS ADDR: 64-byte frames; prints
# "pps ours_ns/pkt machine_ns/pkt" (received).
udp_pps() {
    local out rpid n cpu
    ip netns exec "$(ns "$2")" timeout $((SECS + 20)) "$PPS" recv --bind "$3:9000" --secs "$SECS" >"$TMP/pps.out" 2>&1 &
    rpid=$!
    sleep 0.3
    # Warm up neighbour resolution so the flood starts at once.
    inns "$1" timeout 10 "$PPS" send --dst "$3:9001" --secs 1 >/dev/null
    meter_start
    inns "$1" timeout $((SECS + 10)) "$PPS" send --dst "$3:9000" --secs "$SECS" \
        >"$TMP/pps.sent" 2>&1 || true
    wait "$rpid" || true
    out=$(cat "$TMP/pps.out")
    n=$(awk '/^received/ {printf "%d", $(NF-1)}' <<<"$out")
    cpu=$(meter_stop "${n:-0}")
    # 4th field: the rate the sender offered (received = offered means the
    # sender's ceiling, not the path's, was measured).
    printf '%s %s %s\n' "$(awk '/^received/ {print $(NF-1)}' <<<"$out")" "$cpu" \
        "$(awk '/^sent/ {print $(NF-1)}' "$TMP/pps.sent")"
}

# syn_rate SENDERNS RECEIVERNS ADDR: SYNs from new source ports (offered
# PERF_SYN_RATE/s for PERF_SYN_SECS); prints "flows/s ours_ns/flow
# machine_ns/flow" (SYNs delivered to RECEIVERNS).
SYN_SECS=${PERF_SYN_SECS:-5}
syn_rate() {
    local out rpid n cpu s0 s1
    inns "$1" ping -c 1 -W 1 "$3" >/dev/null 2>&1 || true
    ip netns exec "$(ns "$2")" timeout $((SYN_SECS + 20)) "$PPS" count-syn --iface eth0 --port 7000 \
        --secs "$SYN_SECS" >"$TMP/syn.out" 2>&1 &
    rpid=$!
    sleep 0.3
    s0=$(setups "$4")
    meter_start
    inns "$1" timeout $((SYN_SECS + 10)) "$PPS" syn --dst "$3:7000" --secs "$SYN_SECS" \
        --rate "${PERF_SYN_RATE:-80000}" >"$TMP/syn.sent" 2>&1 || true
    wait "$rpid" || true
    s1=$(setups "$4")
    out=$(cat "$TMP/syn.out")
    n=$(awk '/^received/ {printf "%d", $(NF-1)}' <<<"$out")
    cpu=$(meter_stop "${n:-0}")
    # 4th field: flows the agent set up per second over the same window;
    # 5th: the SYNs per second the sender managed (it shares the CPUs).
    printf '%s %s %s %s\n' "$(awk '/^received/ {print $(NF-1)}' <<<"$out")" "$cpu" \
        "$(awk -v a="$s0" -v b="$s1" -v t="$SYN_SECS" 'BEGIN {printf "%.0f", (b - a) / t}')" \
        "$(awk '/^sent/ {print $(NF-1)}' "$TMP/syn.sent")"
}
setups() { api "$1" 8085 GET /metrics | awk '$1 == "vrouter_agent_flow_setups_total" {print $2}'; }

# ---- topologies ---------------------------------------------------------------

# (a)/(b) ours: one host n1, containers c1 198.18.1.1 and c2 .2.
if [[ $ONLY == *[ab]* ]]; then
    mkns n1
    node n1
    tenant n1 198.18.1.0
    attach n1 c1 198.18.1.1 1500
    attach n1 c2 198.18.1.2 1500
fi
# (d) ours: one host n2 (containers d1 198.18.2.1, d2 .2), restarted
# before each (d) run so that every run starts with an empty flow table.
if [[ $ONLY == *d* ]]; then
    mkns n2
    node n2
    tenant n2 198.18.2.0
    attach n2 d1 198.18.2.1 1500
    attach n2 d2 198.18.2.2 1500
    D_TAPS=$(vrctl n2 vif --list | grep -o 'tap[0-9a-f-]*' | sort -u | tr '\n' ' ')
fi

# restart_node H: stop H's agent and vrouter, start both again on the same
# state (ports, config), wait until the ports are programmed again.
restart_node() {
    local h=$1 p keep=() t ok
    # shellcheck disable=SC2086 # two pids
    kill ${NODE_PIDS[$h]} 2>/dev/null || true
    for p in ${NODE_PIDS[$h]}; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    for p in "${PIDS[@]}"; do [[ " ${NODE_PIDS[$h]} " == *" $p "* ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
    node "$h"
    for _ in $(seq 150); do
        ok=1
        for t in $D_TAPS; do vrctl "$h" vif --list 2>/dev/null | grep -qw "$t" || ok=''; done
        [[ -n $ok ]] && return 0
        sleep 0.1
    done
    die "ports on $h not programmed again after the restart"
}
# (a) kernel: routed veth through kr.
if [[ $ONLY == *a* ]]; then
    mkns kr
    for i in 1 2; do
        mkns kc$i
        veth kr r$i kc$i 02:11:00:00:01:0$i 198.18.1$i.1/24 1500 198.18.1$i.254
        ip -n "$(ns kr)" addr add 198.18.1$i.254/24 dev r$i
    done
    inns kr sysctl -qw net.ipv4.ip_forward=1
fi
# (b) kernel: a Linux bridge.
if [[ $ONLY == *b* ]]; then
    mkns bh
    ip -n "$(ns bh)" link add name br0 type bridge
    ip -n "$(ns bh)" link set br0 up
    for i in 1 2; do
        mkns bc$i
        veth bh b$i bc$i 02:11:00:00:03:0$i 198.18.3.$i/24 1500
        ip -n "$(ns bh)" link set b$i master br0
    done
fi
# (c) kernel: VXLAN between xa and xb, a container behind each, MTU 1400.
# (c) ours: nodes ha and hb over fabric `fab`, containers ca .5.1, cb .5.2.
if [[ $ONLY == *c* ]]; then
    mkns xa
    mkns xb
    fabric xa xb
    for h in xa xb; do
        lip=192.0.2.1 rip=192.0.2.2
        [[ $h == xb ]] && lip=192.0.2.2 rip=192.0.2.1
        ip -n "$(ns "$h")" link add name vx0 type vxlan id 42 local "$lip" remote "$rip" \
            dstport 4789 dev fab
        ip -n "$(ns "$h")" link add name br0 type bridge
        ip -n "$(ns "$h")" link set vx0 master br0
        ip -n "$(ns "$h")" link set vx0 up
        ip -n "$(ns "$h")" link set br0 up
    done
    mkns xca
    mkns xcb
    veth xa xv xca 02:11:00:00:04:01 198.18.4.1/24 1400
    veth xb xv xcb 02:11:00:00:04:02 198.18.4.2/24 1400
    ip -n "$(ns xa)" link set xv master br0
    ip -n "$(ns xb)" link set xv master br0

    mkns ha
    mkns hb
    fabric ha hb
    # The control node runs in ha's namespace on its fabric address (hb
    # reaches it over the fabric, as compute nodes reach theirs); its VNC
    # API is the cluster's config API.
    ip netns exec "$(ns ha)" "$BIN/control-node-peer" --listen 192.0.2.1:5269 \
        --state-dir "$TMP/cn" --vnc-listen 127.0.0.1:18082 --eor-delay-ms 200 \
        >/dev/null 2>"$TMP/control-node.log" &
    PIDS+=($!)
    VNC_AT[ha]="ha 18082" VNC_AT[hb]="ha 18082"
    for _ in $(seq 100); do inns ha curl -fsS http://127.0.0.1:18082/ >/dev/null 2>&1 && break; sleep 0.1; done
    for h in ha hb; do
        lip=192.0.2.1
        [[ $h == hb ]] && lip=192.0.2.2
        # The virtual-router object an operator creates for each node.
        create ha virtual-router "$(jq -nc --arg n "compute-$h" --arg a "$lip" \
            '{fq_name:["default-global-system-config",$n], parent_type:"global-system-config",
              virtual_router_ip_address:$a}')" >/dev/null
        NODE_EXTRA[$h]="--config-source controller --CONTROL-NODE.servers 192.0.2.1:5269
            --DEFAULT.agent_name compute-$h --NETWORKS.control_network_ip $lip"
        node "$h" fab
    done
    tenant ha 198.18.5.0
    VN[hb]=${VN[ha]}
    attach ha ca 198.18.5.1 1400
    attach hb cb 198.18.5.2 1400
fi

# tunnel_kind H NH: udp, gre or vxlan for a tunnel next hop in H's datapath.
tunnel_kind() {
    { vrctl "$1" nh --get "$2" 2>/dev/null || true; } | awk '
        /Type:Tunnel/ {t = 1}
        /Flags:.*Vxlan/ {k = "vxlan"}
        /Flags:.*MPLSoUDP/ {k = "udp"}
        /Flags:.*MPLSoGRE/ {k = "gre"}
        END {if (t && k != "") print k}'
}

# set_encap ENCAP: the cluster's encapsulation priorities with ENCAP first;
# waits until each host's bridge route to the other's container (what the
# container's frames to the peer's MAC, learnt by ARP, follow) is a tunnel
# of that kind in its datapath. (Upstream keeps the IPv4 route on MPLS when
# VXLAN comes first; the bridge route moves.)
set_encap() {
    local first gvc h want ok nh kinds
    case $1 in
        udp) first=MPLSoUDP want=udp ;;
        gre) first=MPLSoGRE want=gre ;;
        vxlan) first=VXLAN want=vxlan ;;
    esac
    gvc=$(vnc ha GET /global-vrouter-configs | jq -r '."global-vrouter-configs"[0].uuid')
    vnc ha PUT "/global-vrouter-config/$gvc" "$(jq -nc --arg f "$first" \
        '{"global-vrouter-config": {encapsulation_priorities: {encapsulation:
          ([$f] + (["MPLSoUDP","MPLSoGRE","VXLAN"] - [$f]))}}}')" >/dev/null
    for _ in $(seq 200); do
        ok=1
        for h in ha hb; do
            kinds=''
            for nh in $(api "$h" 8085 GET /routes | jq -r '.routes[] | select(.family == 7) | .nh'); do
                kinds+="$(tunnel_kind "$h" "$nh") "
            done
            # One remote MAC: exactly one tunnel route, of the wanted kind.
            [[ $(xargs <<<"$kinds") == "$want" ]] || ok=''
        done
        [[ -n $ok ]] && return 0
        sleep 0.1
    done
    die "the routes between ha and hb did not move to $first: $(api ha 8085 GET /routes)"
}


# ---- the rounds ---------------------------------------------------------------

declare -A RES=() # key -> "value ours_ns machine_ns;" per run
CUR_KEY=''

# measure KEY "HOSTS" CMD...: run CMD with OURS = the node processes of
# HOSTS (none: a kernel path), record its "value ours machine" line.
measure() {
    local key=$1 hosts=$2 res h
    shift 2
    OURS=()
    for h in $hosts; do
        # shellcheck disable=SC2206 # two pids, space-separated
        OURS+=(${NODE_PIDS[$h]})
    done
    CUR_KEY=$key
    if [[ -n $PROFILE && -n $hosts ]]; then
        res=$(with_profile "$@")
    else
        res=$("$@")
    fi
    [[ -n $res ]] || die "$key: no result"
    RES[$key]+="$res;"
    log "  $key: $res"
    if [[ -n ${PERF_DEBUG:-} ]]; then
        for h in $hosts; do
            log "  -- $h: dropstats, agent flow metrics"
            vrctl "$h" dropstats 2>&1 | awk '$NF != 0' >&2 || true
            # Frames the kernel dropped on a port's queue before the
            # datapath read them.
            vrctl "$h" vif --list 2>&1 | grep -E '^vif|RX device errors' | grep -B1 'RX device' >&2 || true
            api "$h" 8085 GET /metrics | grep -E '^vrouter_agent_(flow|pkt0)' >&2 || true
        done
    fi
}

PROFILE_N=0
# with_profile CMD...: CMD with `perf stat` attached to OURS for its length.
with_profile() {
    mkdir -p "$PROFILE"
    PROFILE_N=$((PROFILE_N + 1))
    local pidlist ppid
    pidlist=$(IFS=,; echo "${OURS[*]}")
    if [[ ${PERF_PROFILE_MODE:-stat} == record-all ]]; then
        perf record -q -a -g -o "$PROFILE/record-all-$CUR_KEY-$RANDOM.data" -- \
            sleep $((SECS + 1)) >/dev/null 2>&1 &
    elif [[ ${PERF_PROFILE_MODE:-stat} == record ]]; then
        perf record -q --call-graph "${PERF_CALL_GRAPH:-fp}" -p "$pidlist" \
            -o "$PROFILE/record-$CUR_KEY-$RANDOM.data" -- \
            sleep $((SECS + 1)) >/dev/null 2>&1 &
    else
        perf stat -e task-clock,context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter \
            --per-thread -p "$pidlist" -o "$PROFILE/stat-$CUR_KEY-$RANDOM.txt" -- \
            sleep $((SECS + 1)) >/dev/null 2>&1 &
    fi
    ppid=$!
    "$@"
    wait "$ppid" 2>/dev/null || true
}

round_c() {
    local e
    for e in $ENCAPS; do
        set_encap "$e"
        measure "c_$e" "ha hb" tcp cb ca 198.18.5.2 1348
    done
}

for r in $(seq "$REPEAT"); do
    log "== round $r of $REPEAT (${SECS}s per run; load average $(cut -d' ' -f1-3 /proc/loadavg))"
    # Odd rounds: kernel first; even rounds: ours first.
    if ((r % 2 == 1)); then
        [[ $ONLY != *a* ]] || { measure a_kernel "" tcp kc2 kc1 198.18.12.1 1448; measure a_ours n1 tcp c2 c1 198.18.1.2 1448; }
        [[ $ONLY != *b* ]] || { measure b_kernel "" udp_pps bc1 bc2 198.18.3.2; measure b_ours n1 udp_pps c1 c2 198.18.1.2; }
        [[ $ONLY != *c* ]] || { measure c_kernel "" tcp xcb xca 198.18.4.2 1348; round_c; }
    else
        [[ $ONLY != *a* ]] || { measure a_ours n1 tcp c2 c1 198.18.1.2 1448; measure a_kernel "" tcp kc2 kc1 198.18.12.1 1448; }
        [[ $ONLY != *b* ]] || { measure b_ours n1 udp_pps c1 c2 198.18.1.2; measure b_kernel "" udp_pps bc1 bc2 198.18.3.2; }
        [[ $ONLY != *c* ]] || { round_c; measure c_kernel "" tcp xcb xca 198.18.4.2 1348; }
    fi
    if [[ $ONLY == *d* ]]; then
        restart_node n2
        measure d_ours n2 syn_rate d1 d2 198.18.2.2 n2
    fi
done

# ---- report -----------------------------------------------------------------

# stats KEY: "min median max spread% ours_ns machine_ns" (medians of the CPU).
stats() {
    tr ';' '\n' <<<"${RES[$1]:-}" | awk 'NF >= 1 {v[++n] = $1; o[n] = $2; m[n] = $3}
        function med(a, n,   i, j, t, b) {
            for (i = 1; i <= n; i++) b[i] = a[i]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] + 0 < b[i] + 0) {t = b[i]; b[i] = b[j]; b[j] = t}
            return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
        }
        END {
            if (n == 0) {print "- - - - - -"; exit}
            lo = v[1]; hi = v[1]
            for (i = 2; i <= n; i++) {if (v[i] + 0 < lo + 0) lo = v[i]; if (v[i] + 0 > hi + 0) hi = v[i]}
            md = med(v, n)
            printf "%s %s %s %.0f %s %s\n", lo, md, hi, (md > 0 ? 100 * (hi - lo) / md : 0), med(o, n), med(m, n)
        }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

row() { # LABEL UNIT KEY_OURS KEY_KERNEL KERNEL_LABEL TARGET
    local o k
    read -r omin omed omax ospread ocpu omach <<<"$(stats "$3")"
    o=$omed
    if [[ -n $4 ]]; then
        read -r kmin kmed kmax kspread _ kmach <<<"$(stats "$4")"
        k=$kmed
        printf '| %s | %s %s (%s–%s, spread %s%%) | %s %s (%s–%s, spread %s%%) | **%s** | %s | %s ns | %s / %s ns |\n' \
            "$1" "$o" "$2" "$omin" "$omax" "$ospread" "$5" "$k" "$kmin" "$kmax" "$kspread" \
            "$(ratio "$o" "$k")" "$6" "$ocpu" "$omach" "$kmach"
    else
        printf '| %s | %s %s (%s–%s, spread %s%%) | %s | | %s | %s ns | %s / - ns |\n' \
            "$1" "$o" "$2" "$omin" "$omax" "$ospread" "$5" "$6" "$ocpu" "$omach"
    fi
}

{
    echo
    echo "vrouter-rs performance harness: $(nproc) CPUs, $(uname -r), ${SECS}s x ${REPEAT} rounds," \
        "interleaved; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "our vrouter: --fast-path $FAST_PATH; kernel fast path loaded:${FP_LOADED:- (no node started)};" \
        "flow table on $FLOW_PAGES pages"
    echo
    echo "| path | ours: median (min–max, spread) | kernel: median (min–max, spread) | ratio | target | our CPU / pkt | machine CPU / pkt, ours / kernel |"
    echo "|---|---|---|---|---|---|---|"
    [[ $ONLY != *a* ]] || row "(a) TCP 1 stream, one host" "Gbit/s" a_ours a_kernel "routed veth" "≥ 1.0"
    [[ $ONLY != *b* ]] || row "(b) UDP 64 B, one host" "pps" b_ours b_kernel "bridge" "≥ 1.2"
    if [[ $ONLY == *c* ]]; then
        for e in $ENCAPS; do
            case $e in udp) n=MPLSoUDP ;; gre) n=MPLSoGRE ;; vxlan) n=VXLAN ;; esac
            row "(c) TCP 1 stream, two hosts, $n" "Gbit/s" "c_$e" c_kernel "kernel VXLAN" "≥ 0.8"
        done
    fi
    [[ $ONLY != *d* ]] || row "(d) new flows (SYN delivered), one host" "flows/s" d_ours "" "(in-process: flow_setup bench)" "≥ 50k/s"
    if [[ $ONLY == *b* ]]; then
        echo
        echo "(b): the sender offered, pps: bridge runs $(tr ';' '\n' <<<"${RES[b_kernel]:-}" |
            awk 'NF {printf "%s ", $4}'); our runs $(tr ';' '\n' <<<"${RES[b_ours]:-}" | awk 'NF {printf "%s ", $4}')"
    fi
    if [[ $ONLY == *d* ]]; then
        echo
        echo "(d): offered ${PERF_SYN_RATE:-80000} SYNs/s for ${SYN_SECS}s; flows the agent set up per second" \
            "in each run: $(tr ';' '\n' <<<"${RES[d_ours]}" | awk 'NF {printf "%s ", $4}');" \
            "SYNs/s the sender managed: $(tr ';' '\n' <<<"${RES[d_ours]}" | awk 'NF {printf "%s ", $5}')"
    fi
    echo
    echo "CPU per packet: TCP packets are goodput / MSS; 'our CPU' is user+sys of vrouter + vrouter-agent"
    echo "of the hosts on the path; 'machine CPU' is every busy CPU tick (senders, receivers, softirq)."
    echo
    for k in "${!RES[@]}"; do echo "raw $k: ${RES[$k]}"; done | sort
} | tee "${PERF_OUT:-/dev/null}"
