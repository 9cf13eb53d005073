#!/usr/bin/env bash
# Bring up the single-host compute node (README's first command).
#
#   sudo bash scripts/run-node.sh [--fabric IFACE] [--sock-dir DIR]
#   sudo bash scripts/run-node.sh --fabric IFACE --control-nodes "IP[:PORT] IP[:PORT]" \
#        --config-api http://CONFIG-NODE:8082 [--agent-name NAME] [--control-ip IP]
#
# The node is three processes, started in this order and stopped together:
#   vrouter                 the datapath (ksync, pkt0, flow table on a huge-page
#                           tmpfs mounted on --sock-dir)
#   vrouter-agent           embedded VNC config API 127.0.0.1:8082, port API
#                           127.0.0.1:9091, introspect/metrics 127.0.0.1:8085
#   contrail-docker-driver  Docker network + IPAM driver "Contrail"
#                           (/run/docker/plugins/Contrail.sock)
# Without --fabric the node switches locally only and touches no existing
# interface of the host. State (config database, ports) is kept in
# --state-dir (default /var/lib/vrouter-rs).
# With --control-nodes the node joins a Tungsten Fabric / OpenSDN cluster:
# the agent takes config and routes from the control nodes over XMPP (no
# embedded config API) and the driver uses the cluster's config API.
set -euo pipefail

SCRIPT_NAME=run-node
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FABRIC=''
CONTROL_NODES='' CONFIG_API='' AGENT_NAME='' CONTROL_IP=''
SOCK_DIR=/var/run/vrouter
STATE_DIR=/var/lib/vrouter-rs
while (($# > 0)); do
    case $1 in
        --fabric)
            FABRIC=${2:?--fabric needs an interface name}
            shift 2
            ;;
        --sock-dir)
            SOCK_DIR=${2:?--sock-dir needs a directory}
            shift 2
            ;;
        --state-dir)
            STATE_DIR=${2:?--state-dir needs a directory}
            shift 2
            ;;
        --control-nodes)
            CONTROL_NODES=${2:?--control-nodes needs "IP[:PORT] ..."}
            shift 2
            ;;
        --config-api)
            CONFIG_API=${2:?--config-api needs a URL}
            shift 2
            ;;
        --agent-name)
            AGENT_NAME=${2:?--agent-name needs a name}
            shift 2
            ;;
        --control-ip)
            CONTROL_IP=${2:?--control-ip needs an address}
            shift 2
            ;;
        -h | --help)
            sed -n '2,22p' "$0"
            exit 0
            ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

((EUID == 0)) || die "run as root: the datapath opens raw sockets on host interfaces"
if [[ -n $FABRIC ]] && ! ip link show "$FABRIC" >/dev/null 2>&1; then
    die "no such interface: $FABRIC"
fi
if [[ -n $CONTROL_NODES && -z $CONFIG_API ]]; then
    die "--control-nodes needs --config-api (the cluster's VNC API, for the Docker driver)"
fi

# A toolchain: rustup's cargo when present, else Debian's rustc-web (1.96).
CARGO=cargo
if ! command -v cargo >/dev/null; then
    if [[ ! -x /usr/bin/cargo ]] || ! /usr/bin/cargo --version | grep -q ' 1\.9'; then
        note "installing Debian's Rust toolchain (rustc-web, cargo-web)"
        env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            rustc-web cargo-web gcc libc6-dev
    fi
    CARGO=/usr/bin/cargo
fi

# The agent's XMPP TLS uses the system's OpenSSL.
if ! pkg-config --exists openssl 2>/dev/null; then
    note "installing OpenSSL headers and pkg-config (libssl-dev, pkg-config)"
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev pkg-config
fi

# The vrouter's kernel fast path (on by default) is a BPF program that
# build.rs compiles with clang against libbpf's headers; without them the
# node runs, every frame through the user-space path.
if ! command -v clang >/dev/null || [[ ! -f /usr/include/bpf/bpf_helpers.h ]]; then
    note "installing clang and libbpf-dev (the vrouter's kernel fast path)"
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libbpf-dev ||
        note "clang/libbpf-dev not installed: the vrouter runs without its kernel fast path"
fi

cd "$ROOT"
note "building vrouter, vrouter-agent, contrail-docker-driver and vrctl (release)"
CARGO_TARGET_DIR="$TARGET_BASE" "$CARGO" build --release --locked \
    -p vrouter -p vrouter-agent -p docker-driver -p vrctl
BIN="$TARGET_BASE/release"

pids=()
mounted=''
stop_all() {
    local p
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        p=${pids[i]}
        kill -TERM "$p" 2>/dev/null || true
        # Each stops in well under 5 s; wait so the next one finds its peer gone.
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    [[ -z $mounted ]] || umount "$mounted" 2>/dev/null || warn "could not unmount $mounted"
}
trap 'stop_all; exit 0' INT TERM

# The flow table lives in --sock-dir. On a tmpfs mounted huge=within_size
# it gets 2 MiB pages (fewer TLB misses per flow lookup; /run and /dev/shm
# are huge=never). Only a directory that is not already a mount point.
mkdir -p "$SOCK_DIR"
if ! mountpoint -q "$SOCK_DIR"; then
    if mount -t tmpfs -o huge=within_size,mode=0755 vrouter-rs "$SOCK_DIR" 2>/dev/null; then
        mounted=$SOCK_DIR
    else
        note "no huge-page tmpfs on $SOCK_DIR: the flow table uses 4 KiB pages"
    fi
fi

args=(--sock-dir "$SOCK_DIR")
[[ -n $FABRIC ]] && args+=(--fabric "$FABRIC")
"$BIN/vrouter" "${args[@]}" &
pids+=($!)
for _ in $(seq 100); do [[ -S $SOCK_DIR/dpdk_netlink ]] && break; sleep 0.1; done
[[ -S $SOCK_DIR/dpdk_netlink ]] || { stop_all; die "vrouter did not start"; }

agent_args=(--sock-dir "$SOCK_DIR" --state-dir "$STATE_DIR")
vnc_url=http://127.0.0.1:8082
if [[ -n $CONTROL_NODES ]]; then
    agent_args+=(--config-source controller --CONTROL-NODE.servers "$CONTROL_NODES")
    [[ -n $AGENT_NAME ]] && agent_args+=(--DEFAULT.agent_name "$AGENT_NAME")
    [[ -n $CONTROL_IP ]] && agent_args+=(--NETWORKS.control_network_ip "$CONTROL_IP")
    vnc_url=$CONFIG_API
fi
"$BIN/vrouter-agent" "${agent_args[@]}" &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:8085/ksync && break; sleep 0.1; done

"$BIN/contrail-docker-driver" --vnc-url "$vnc_url" --agent-url http://127.0.0.1:9091 &
pids+=($!)

banner "vrouter-rs node"
log "datapath sockets: $SOCK_DIR   fabric: ${FABRIC:-none (local switching only)}   state: $STATE_DIR"
if [[ -n $CONTROL_NODES ]]; then
    log "control nodes   $CONTROL_NODES   config API (driver) $vnc_url   sessions: curl 127.0.0.1:8085/controller"
    log "port API http://127.0.0.1:9091   introspect http://127.0.0.1:8085"
else
    log "VNC config API  http://127.0.0.1:8082   port API http://127.0.0.1:9091   introspect http://127.0.0.1:8085"
fi
log "Docker driver   Contrail (network and IPAM)   inspect: $BIN/vrctl --sock-dir $SOCK_DIR vif --list"
log "stop with Ctrl-C (SIGINT) or SIGTERM; each process removes what it created"

# Any one of them ending ends the node.
wait -n "${pids[@]}" || true
warn "a node process exited; stopping the others"
stop_all
exit 1
