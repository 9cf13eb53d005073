#!/usr/bin/env bash
# Bring up the single-host compute node (README's first command).
#
#   sudo bash scripts/run-node.sh [--fabric IFACE] [--sock-dir DIR]
#
# Today the node is the vRouter datapath (`vrouter`) with its operator CLI
# (`vrctl`). The agent with its embedded config store and the Docker driver
# join this script as they land. Without --fabric the node switches locally
# only and touches no existing interface of the host.
set -euo pipefail

SCRIPT_NAME=run-node
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FABRIC=''
SOCK_DIR=/var/run/vrouter
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
        -h | --help)
            sed -n '2,9p' "$0"
            exit 0
            ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done

((EUID == 0)) || die "run as root: the datapath opens raw sockets on host interfaces"
if [[ -n $FABRIC ]] && ! ip link show "$FABRIC" >/dev/null 2>&1; then
    die "no such interface: $FABRIC"
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

cd "$ROOT"
note "building vrouter and vrctl (release)"
CARGO_TARGET_DIR="$TARGET_BASE" "$CARGO" build --release --locked -p vrouter -p vrctl
BIN="$TARGET_BASE/release"

banner "vrouter-rs node"
log "datapath sockets: $SOCK_DIR   fabric: ${FABRIC:-none (local switching only)}"
log "inspect it with:  $BIN/vrctl --sock-dir $SOCK_DIR vif --list"
log "coming next: the agent (VNC config API on 127.0.0.1:8082, port API on :9091)"
log "             and the Docker network driver (docker network create -d Contrail)"
log "stop with Ctrl-C (SIGINT) or SIGTERM; the datapath removes what it created"

args=(--sock-dir "$SOCK_DIR")
[[ -n $FABRIC ]] && args+=(--fabric "$FABRIC")
exec "$BIN/vrouter" "${args[@]}"
