# shellcheck shell=bash
# shellcheck disable=SC2034  # variables for the scripts that source this
# Everything the test command needs from outside the repo, in one place.
# Sourced by scripts/test-all.sh (phase "deps"); requires lib/common.sh.
#
# To add a phase's packages, append to APT_PACKAGES below; the deps phase
# installs whatever is missing and does nothing (no `apt-get update`) when all
# are present.

APT_PACKAGES=(
    # lint: shell scripts
    shellcheck
    # fuzz: libfuzzer-sys compiles libFuzzer (C++)
    g++
    # Windows lane (docs/windows.md): Debian's rustc 1.96 with its std source
    # for -Zbuild-std, clippy, the mingw linker and Wine.
    rustc-web
    cargo-web
    rust-web-src
    rust-web-clippy
    gcc-mingw-w64-x86-64
    wine64
    # vrouter e2e tests: tshark decodes the fabric captures; ethtool turns
    # off tunnel segmentation on the kernel-VXLAN peer's fabric veth.
    tshark
    ethtool
    # scripts/perf/run.sh (not a test, but installed so it just runs)
    iperf3
    # vrouter --fast-path tc: build.rs compiles crates/vrouter/bpf/fastpath.c
    # (clang -target bpf, libbpf's bpf_helpers.h); tests/fastpath.rs
    clang
    libbpf-dev
    # agent e2e tests: ping, and busybox's udhcpc and nc inside containers;
    # dhclient -6 (DHCPv6) and rdisc6 (router solicitation) as the clients
    # of the agent's DHCPv6 and neighbour discovery services
    iputils-ping
    busybox-static
    isc-dhcp-client
    ndisc6
    # vrouter e2e tests: Open vSwitch in user space (datapath_type=netdev)
    # as the MPLSoGRE / VXLAN peer that is not us; the tests run their own
    # ovsdb-server and ovs-vswitchd
    openvswitch-switch
    # Docker driver e2e tests: a real dockerd, busybox image by docker import
    docker.io
    # The agent's XMPP TLS (native-tls) builds against the system's OpenSSL.
    libssl-dev
    pkg-config
    # packages phase (docs/packaging.md): wixl builds the MSI, msitools
    # (msidump, msiinfo, msibuild) reads and patches it; lintian checks the
    # .debs, help2man writes their man pages; curl drives the installed node;
    # systemd (not as PID 1) for systemd-analyze verify of the units, man-db
    # for `man -w`, procps for pgrep (all three "important", not in minimal
    # images).
    wixl
    msitools
    lintian
    help2man
    curl
    systemd
    man-db
    procps
    # msi.sh: `ip link set lo up` in its private network namespace
    iproute2
)

# Prints the packages of "$@" that are not installed, one per line.
apt_missing() {
    local p
    for p in "$@"; do
        [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == "ii "* ]] ||
            printf '%s\n' "$p"
    done
}

# Installs the missing ones of "$@" (apt-get update only when something is
# missing, so a warm machine pays ~0.1 s).
apt_ensure() {
    local missing sudo=()
    mapfile -t missing < <(apt_missing "$@")
    if ((${#missing[@]} == 0)); then
        log "apt: all ${#@} packages present"
        return 0
    fi
    if ((EUID != 0)); then
        command -v sudo >/dev/null ||
            die "not root and no sudo: install these by hand: ${missing[*]}"
        sudo=(sudo -n)
    fi
    log "apt: installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    mapfile -t missing < <(apt_missing "$@")
    ((${#missing[@]} == 0)) || die "apt-get did not install: ${missing[*]}"
}

# rustup's stable toolchain with rustfmt and clippy: the machine image has it;
# components are added only if absent.
rust_ensure() {
    command -v cargo >/dev/null || die "no cargo on PATH (expected rustup in $CARGO_BIN_DIR)"
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        log "rustup: adding rustfmt and clippy"
        rustup component add rustfmt clippy
    fi
    log "rust: $(cargo --version), $(/usr/bin/cargo --version 2>/dev/null || echo 'no /usr/bin/cargo')"
}

# cargo-deb (builds the .debs from Cargo.toml metadata; not in Debian 12).
cargo_deb_ensure() {
    if command -v cargo-deb >/dev/null; then
        log "cargo-deb: $(cargo-deb --version)"
        return 0
    fi
    log "cargo-deb: installing from crates.io"
    cargo install cargo-deb --version 3.8.0 --locked
}

# cargo-fuzz (a cargo subcommand, any toolchain can run it).
cargo_fuzz_ensure() {
    if command -v cargo-fuzz >/dev/null; then
        log "cargo-fuzz: $(cargo fuzz --version)"
        return 0
    fi
    log "cargo-fuzz: installing from crates.io"
    cargo install cargo-fuzz --locked
}
