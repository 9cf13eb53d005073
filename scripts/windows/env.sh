# shellcheck shell=bash
# shellcheck disable=SC2034  # variables for the scripts that source this
# The Windows lane's environment: Debian's rustc 1.96 with -Zbuild-std for
# x86_64-pc-windows-gnu, tests run under Wine. Sourced by lane.sh; developers
# can source it too and then run e.g.
#   "$WCARGO" test "${WBUILD_STD[@]}" --target x86_64-pc-windows-gnu -p packet
# See docs/windows.md for why each variable is there.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# Debian's toolchain (cargo, rustc, rustdoc, cargo-clippy, clippy-driver) and
# mingw all live in /usr/bin; rustup's proxies in ~/.cargo/bin must not shadow
# them (cargo finds `cargo-clippy` on PATH).
PATH="/usr/bin:$PATH"
export PATH
WCARGO=/usr/bin/cargo
WBUILD_STD=(-Zbuild-std)
WIN_GNU=x86_64-pc-windows-gnu
WIN_MSVC=x86_64-pc-windows-msvc

# Own target dir: rustup's cargo (Linux lane) and Debian's cargo must not
# invalidate each other's fingerprints.
# Exported and kept when already set, so that scripts run by the lane
# (build-sys.sh, kernel-test.sh), which source this again with
# CARGO_TARGET_DIR already pointing here, use the same directory.
WIN_TARGET_DIR="${WIN_TARGET_DIR:-$TARGET_BASE/windows}"
export WIN_TARGET_DIR
export CARGO_TARGET_DIR="$WIN_TARGET_DIR"

export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
# Debian's cargo takes -Z itself, but passes -Z flags on to rustc for the
# crates, which then needs this too.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64

WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver64
export WINEPREFIX="$WIN_TARGET_DIR/wine-prefix"
export WINEARCH=win64 WINEDEBUG=-all
# mscoree/mshtml off: no Mono/Gecko install prompts. winedbg.exe off: without
# it a crashing test starts winedbg and the run exits 0 (trap 2).
export WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d"
unset DISPLAY WAYLAND_DISPLAY
