# shellcheck shell=bash
# A private dockerd for tests (docs: shared notes "linux-test-rig", Docker).
# Sourced, never run. Every function takes the state directory DIR (one per
# test run); the daemon's socket is DIR/docker.sock, its log DIR/dockerd.log.
#
#   docker_ensure_deps            apt-get install docker.io busybox-static if missing
#   docker_start DIR              start dockerd (no iptables, no bridge, no ip_forward, vfs)
#   docker_wait DIR [SECONDS]     wait until it answers
#   docker_cli DIR ARGS...        the docker CLI against it
#   docker_busybox_image DIR NAME import a busybox image (no registry here)
#   docker_stop DIR               stop it and remove everything it made
#
# dockerd leaves /run/docker/plugins, /etc/docker/key.json and /run/containerd
# behind: docker_stop removes them when docker_start found them absent.

DOCKER_CLI_BIN="${DOCKER_CLI_BIN:-$(command -v /usr/bin/docker || command -v docker || echo docker)}"

docker_ensure_deps() {
    local missing=() p
    for p in docker.io busybox-static; do
        [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == "ii "* ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

docker_start() {
    local dir="$1"
    mkdir -p "$dir/data" "$dir/exec"
    [[ -e /run/docker/plugins ]] || : >"$dir/created-plugins-dir"
    [[ -e /etc/docker/key.json ]] || : >"$dir/created-key-json"
    [[ -e /etc/docker ]] || : >"$dir/created-etc-docker"
    [[ -e /run/containerd ]] || : >"$dir/created-run-containerd"
    # --ip-forward=false: leave the host's net.ipv4.ip_forward alone.
    dockerd --iptables=false --ip6tables=false --ip-forward=false --bridge=none --storage-driver=vfs \
        --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
        -H "unix://$dir/docker.sock" >"$dir/dockerd.log" 2>&1 &
    echo $! >"$dir/dockerd.launcher.pid"
}

docker_cli() {
    local dir="$1"
    shift
    "$DOCKER_CLI_BIN" -H "unix://$dir/docker.sock" "$@"
}

docker_wait() {
    local dir="$1" secs="${2:-60}" i
    for ((i = 0; i < secs * 5; i++)); do
        docker_cli "$dir" version >/dev/null 2>&1 && return 0
        if ! kill -0 "$(cat "$dir/dockerd.launcher.pid" 2>/dev/null)" 2>/dev/null; then
            tail -20 "$dir/dockerd.log" >&2
            return 1
        fi
        sleep 0.2
    done
    tail -20 "$dir/dockerd.log" >&2
    return 1
}

docker_busybox_image() {
    local dir="$1" name="$2" root="$1/rootfs" t
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
    cp /bin/busybox "$root/bin/busybox"
    for t in sh ash ip ping ifconfig route sleep cat ls echo nc wget hostname udhcpc arp true; do
        ln -sf busybox "$root/bin/$t"
    done
    tar -C "$root" -c . | docker_cli "$dir" import - "$name" >/dev/null
    rm -rf "$root"
}

docker_stop() {
    local dir="$1" pid i
    pid="$(cat "$dir/docker.pid" 2>/dev/null || cat "$dir/dockerd.launcher.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Mounts dockerd and its containerd made under DIR (netns files, shm).
    # Safe under `set -euo pipefail` (no mount found, a dir not empty).
    { grep -o " $dir/[^ ]*" /proc/self/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    if [[ -e "$dir/created-key-json" ]]; then rm -f /etc/docker/key.json; fi
    if [[ -e "$dir/created-etc-docker" ]]; then rmdir /etc/docker 2>/dev/null || true; fi
    if [[ -e "$dir/created-plugins-dir" ]]; then rmdir /run/docker/plugins /run/docker 2>/dev/null || true; fi
    # dockerd's containerd keeps its shim sockets in /run/containerd/s.
    if [[ -e "$dir/created-run-containerd" ]]; then rmdir /run/containerd/s /run/containerd 2>/dev/null || true; fi
    rm -rf "$dir"
    return 0
}
