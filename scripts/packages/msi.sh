#!/usr/bin/env bash
# The Windows MSI (docs/windows.md, "The MSI"): built by wixl from
# packaging/windows/vrouter-rs.wxs with the Windows lane's release
# binaries, its tables checked with msidump/msiinfo, then installed,
# upgraded, stopped and started by the service manager, and removed under
# Wine, in a fresh prefix and a private network namespace (the agent under
# Wine listens on 127.0.0.1:8082/9091/8085 of the namespace it runs in).
#
#   bash scripts/packages/msi.sh          # what phase "packages" runs
#   bash scripts/packages/msi.sh --build-only  # the release build only
#
# Output: $CARGO_TARGET_DIR/packages/vrouter-rs-<version>-x64.msi. The
# install test's prefix is removed on success and kept on failure.
#
# VROUTER_CAT=<signed vrouter.cat> (made on Windows, docs/windows.md) builds
# the package that binds the forwarding extension with netcfg.exe; without
# it the extension is installed as files only.
set -euo pipefail

SCRIPT_NAME=msi
# shellcheck source=scripts/windows/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../windows/env.sh"
# shellcheck source=scripts/packages/common.sh
source "$ROOT/scripts/packages/common.sh"

OUT="$TARGET_BASE/packages"
WORK="$WIN_TARGET_DIR/msi-test"
STAGE="$WORK/stage"
VERSION=$(workspace_version)
MSI="$OUT/vrouter-rs-$VERSION-x64.msi"
# The same package one patch version up: the upgrade test's "next release".
NEXT_VERSION=$(next_patch "$VERSION")
MSI_NEXT="$WORK/vrouter-rs-$NEXT_VERSION-x64.msi"
BIN="$WIN_TARGET_DIR/$WIN_GNU/release"
PROBE="$WIN_TARGET_DIR/stub/probe.exe"
STUB_DLL="$WIN_TARGET_DIR/stub/bcryptprimitives.dll"
EXES=(vrouter-agent contrail-docker-driver vrctl)
# The forwarding extension as the Windows lane builds it (build-sys.sh).
SYS_DIR="$WIN_TARGET_DIR/sys"
VROUTER_CAT=${VROUTER_CAT:-}
# Every property the .wxs takes from the command line, made secure below.
SECURE_PROPS="WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;CONTROLLER;AUTH_TOKEN;ADAPTER;CONTROL_NODES;PURGE"

# ---------------------------------------------------------------- build

build_exes() {
    "$WCARGO" build "${WBUILD_STD[@]}" --target "$WIN_GNU" --release --locked \
        -p vrouter-agent -p docker-driver -p vrctl
}

# The lane built and checked vrouter.sys already; this is a no-op rebuild
# then (and builds it when the packages phase runs alone).
build_sys() {
    bash "$ROOT/scripts/windows/build-sys.sh"
}

# The payload next to a copy of the .wxs (wixl looks for files there).
stage() {
    local e
    rm -rf "$STAGE"
    mkdir -p "$STAGE/bin" "$STAGE/doc" "$STAGE/etc" "$STAGE/extension"
    for e in "${EXES[@]}"; do
        x86_64-w64-mingw32-strip -o "$STAGE/bin/$e.exe" "$BIN/$e.exe"
    done
    cp "$ROOT/README.md" "$ROOT/docs/windows.md" "$ROOT/docs/agent.md" "$STAGE/doc/"
    cp "$ROOT/crates/docker-driver/README.md" "$STAGE/doc/docker-driver.md"
    cp "$ROOT/packaging/config/contrail-vrouter-agent.conf" "$STAGE/etc/"
    cp "$SYS_DIR/vrouter.sys" "$SYS_DIR/vrouter.inf" "$STAGE/extension/"
    if [[ -n $VROUTER_CAT ]]; then cp "$VROUTER_CAT" "$STAGE/extension/vrouter.cat"; fi
    cp "$ROOT/packaging/windows/vrouter-rs.wxs" "$STAGE/"
}

# wixl, then msibuild for what wixl 0.101 cannot say (the .wxs header).
build_msi() {
    local version=$1 out=$2 defs=()
    [[ -n $VROUTER_CAT ]] && defs+=(-D ExtensionCatalog=1)
    mkdir -p "$(dirname "$out")"
    wixl -a x64 -D "Version=$version" "${defs[@]}" -o "$out" "$STAGE/vrouter-rs.wxs"
    msibuild "$out" -q "UPDATE \`Property\` SET \`Value\` = '$SECURE_PROPS' WHERE \`Property\` = 'SecureCustomProperties'"
}

build() {
    stage
    build_msi "$VERSION" "$MSI"
    build_msi "$NEXT_VERSION" "$MSI_NEXT"
    log "$(basename "$MSI"): $(du -k "$MSI" | cut -f1) KiB (exes stripped: $(du -ck "$STAGE"/bin/*.exe | tail -1 | cut -f1) KiB)"
    note_summary "MSI built: $(basename "$MSI"), $(du -k "$MSI" | cut -f1) KiB"
}

# ---------------------------------------------------------------- tables

# msidump writes every table as an .idt file: a view of the package that
# shares nothing with wixl. Rows are tab-separated; idt_row TABLE KEY
# prints the row whose first column is KEY.
idt_row() {
    tr -d '\r' <"$WORK/tables/$1.idt" | awk -F'\t' -v k="$2" 'NR > 3 && $1 == k'
}

expect_row() {
    local table=$1 key=$2 want=$3 row
    row=$(idt_row "$table" "$key")
    [[ $row == *"$want"* ]] || die "$table row $key: want '$want', got '$row'"
}

check_tables() {
    local files want
    rm -rf "$WORK/tables"
    mkdir -p "$WORK/tables"
    (cd "$WORK/tables" && msidump --tables "$MSI" >/dev/null)
    # Files: the three exes, the docs, the config, the extension.
    files=$(tr -d '\r' <"$WORK/tables/File.idt" | awk -F'\t' 'NR > 3 {print $3}' | sort | tr '\n' ' ')
    want=$(printf '%s\n' README.md agent.md contrail-docker-driver.exe contrail-vrouter-agent.conf \
        docker-driver.md vrctl.exe vrouter-agent.exe vrouter.inf vrouter.sys windows.md \
        ${VROUTER_CAT:+vrouter.cat} | sort | tr '\n' ' ')
    [[ $files == "$want" ]] || die "File table: $files (want $want)"
    # Without a signed catalog the extension is files only: no netcfg.
    if [[ -z $VROUTER_CAT ]] && grep -q NETCFG "$WORK/tables/CustomAction.idt"; then
        die "netcfg actions in a package without a signed catalog"
    fi
    # Components: the config's default under INSTALLDIR; its live copy is
    # the InstallConfig action's, so that edits are never replaced.
    expect_row Component ConfigDefault $'\tDefaultsDir\t'
    expect_row CustomAction InstallConfig '/c if not exist "[ConfigDir]contrail-vrouter-agent.conf" copy /y "[#AgentConfDefault]"'
    expect_row Component Agent $'\tBinDir\t'
    # Services: own process (16), auto start (2), error normal (1); the
    # driver after the agent; the arguments carry the properties.
    expect_row ServiceInstall AgentService $'ContrailAgent\tContrail vRouter agent\t16\t2\t1'
    expect_row ServiceInstall AgentService 'run --config "[ConfigDir]contrail-vrouter-agent.conf" --log-dir "[LogDir]."[AGENT_CONTROL_ARGS]'
    expect_row ServiceInstall DriverService $'ContrailDockerDriver\tContrail Docker network driver\t16\t2\t1\t\tContrailAgent[~][~]'
    expect_row ServiceInstall DriverService 'run --log-dir "[LogDir]."[DRIVER_VNC_ARGS][DRIVER_ADAPTER_ARGS][DRIVER_AUTH_ARGS]'
    expect_row CustomAction SetDriverController ' --vnc-url "[CONTROLLER]"'
    expect_row InstallExecuteSequence SetDriverController $'\tCONTROLLER\t'
    # Controller mode only when CONTROL_NODES is given.
    expect_row CustomAction SetAgentControlNodes ' --config-source controller --CONTROL-NODE.servers "[CONTROL_NODES]"'
    expect_row InstallExecuteSequence SetAgentControlNodes $'\tCONTROL_NODES\t'
    # ServiceControl events: start on install (1), stop on both (2|32),
    # delete on uninstall (128) = 163; wait.
    expect_row ServiceControl AgentControl $'ContrailAgent\t163\t\t1\tAgent'
    expect_row ServiceControl DriverControl $'ContrailDockerDriver\t163\t\t1\tDockerDriver'
    # Recovery and cleanup: deferred (0x400), no impersonation (0x800).
    expect_row CustomAction AgentRecovery $'3122\tSC_EXE\tfailure ContrailAgent reset= 86400 actions= restart/5000/restart/10000/restart/60000'
    expect_row CustomAction DriverRecovery $'3122\tSC_EXE\tfailure ContrailDockerDriver reset= 86400'
    expect_row CustomAction PurgeData $'3122\tCMD_EXE\t/c if exist'
    # Deferred actions sit inside the script (InstallInitialize 1500 ..
    # InstallFinalize 6600); the immediate ones that set the properties
    # they and the ServiceInstall arguments use run before it, after
    # CostFinalize (1000) has resolved System64Folder.
    local a seq
    for a in RemoveStaleSpec PurgeData InstallConfig AgentRecovery DriverRecovery; do
        seq=$(idt_row InstallExecuteSequence "$a" | cut -f3)
        ((seq > 1500 && seq < 6600)) || die "$a is sequenced at $seq, outside the install script"
    done
    for a in SetScExe SetCmdExe SetDriverAuth SetDriverController SetDriverAdapter SetAgentControlNodes; do
        seq=$(idt_row InstallExecuteSequence "$a" | cut -f3)
        ((seq > 1000 && seq < 1500)) || die "$a is sequenced at $seq, not between CostFinalize and InstallInitialize"
    done
    # Properties: secure and remembered (saved before AppSearch 50, a
    # command-line value restored after it), none refused.
    expect_row Property SecureCustomProperties "$SECURE_PROPS"
    expect_row Property ProductVersion "$VERSION"
    local p name row
    for p in CONTROLLER:Controller ADAPTER:Adapter AUTH_TOKEN:AuthToken CONTROL_NODES:ControlNodes; do
        name=${p#*:} p=${p%%:*}
        expect_row AppSearch "$p" "Find$name"
        row=$(tr -d '\r' <"$WORK/tables/Registry.idt" | awk -F'\t' -v n="$name" 'NR > 3 && $4 == n')
        [[ $row == *$'\tSOFTWARE\\vrouter-rs\t'"$name"$'\t['"$p]"$'\tSettings'* ]] ||
            die "Registry: $name is '$row', not [$p] in HKLM\\SOFTWARE\\vrouter-rs (component Settings)"
        row=$(idt_row InstallExecuteSequence "SaveCmd$name")
        [[ $(cut -f2 <<<"$row") == "$p" ]] || die "SaveCmd$name: '$row', not conditioned on $p"
        seq=$(cut -f3 <<<"$row")
        ((seq > 0 && seq < 50)) || die "SaveCmd$name is sequenced at $seq, not before AppSearch"
        seq=$(idt_row InstallExecuteSequence "RestoreCmd$name" | cut -f3)
        ((seq > 50 && seq < 1000)) || die "RestoreCmd$name is sequenced at $seq, not after AppSearch"
    done
    if grep -q CONTROL_NODES "$WORK/tables/LaunchCondition.idt"; then
        die "a launch condition still refuses CONTROL_NODES"
    fi
    # MajorUpgrade: earlier versions removed, later ones refused.
    grep -q $'\t'"$VERSION"$'\t\t\t2\t\tWIX_DOWNGRADE_DETECTED' "$WORK/tables/Upgrade.idt" ||
        die "Upgrade table: no downgrade row for $VERSION"
    # Summary information: 64-bit package.
    msiinfo suminfo "$MSI" | grep -q 'Template: x64;1033' || die "summary information: not an x64 package"
    log "tables: $(find "$WORK/tables" -name "*.idt" | wc -l) dumped; files, components, services, service control, custom actions, sequence, properties, upgrade as expected"
}

# The package with a signed catalog (-D ExtensionCatalog=1) binds the
# extension with netcfg.exe. Without a catalog made on Windows it is
# compiled here with a placeholder vrouter.cat and its rows checked; that
# package is never installed (Wine has neither NDIS nor netcfg.exe) nor
# shipped.
extension_binding() {
    local stage="$WORK/stage-cat" out="$WORK/catalog-check.msi" row
    rm -rf "$stage"
    cp -a "$STAGE" "$stage"
    [[ -f $stage/extension/vrouter.cat ]] || printf 'placeholder\n' >"$stage/extension/vrouter.cat"
    wixl -a x64 -D "Version=$VERSION" -D ExtensionCatalog=1 -o "$out" "$stage/vrouter-rs.wxs"
    msiinfo export "$out" File | grep -q $'\tvrouter.cat\t' || die "catalog build: no vrouter.cat row"
    row=$(msiinfo export "$out" CustomAction | tr -d '\r' | grep '^ExtensionInstall')
    [[ $row == *$'3122\tNETCFG_EXE\t-l "[ExtensionDirectory]vrouter.inf" -c s -i vRouter'* ]] ||
        die "catalog build: install action is '$row'"
    row=$(msiinfo export "$out" InstallExecuteSequence | tr -d '\r' | grep '^ExtensionInstall' | cut -f3)
    ((row > 4000 && row < 5800)) || die "catalog build: bound at $row, not between InstallFiles and InstallServices"
    row=$(msiinfo export "$out" InstallExecuteSequence | tr -d '\r' | grep '^ExtensionUninstall' | cut -f3)
    ((row > 1500 && row < 3500)) || die "catalog build: unbound at $row, not before RemoveFiles"
    row=$(msiinfo export "$out" InstallExecuteSequence | tr -d '\r' | grep '^SetNetcfgExe' | cut -f3)
    ((row > 1000 && row < 1500)) || die "catalog build: NETCFG_EXE set at $row, not before the script"
    rm -rf "$stage" "$out"
    log "with a signed catalog (-D ExtensionCatalog=1) the package binds the extension: netcfg -l/-u actions in the script"
}

# ---------------------------------------------------------------- Wine

# Runs inside the private network namespace (see the bottom).
W() { "$WINE" "$@"; }
C() { printf '%s' "$WINEPREFIX/drive_c/$1"; }

msiexec() {
    local rc=0
    W msiexec "$@" || rc=$?
    return "$rc"
}

# Exit status is the Win32 error (truncated); callers read the text.
qc() { W 'C:\probe.exe' qc "$1" || true; }

wait_state() { # SERVICE STATE [seconds]
    local i
    for ((i = 0; i < ${3:-30} * 5; i++)); do
        qc "$1" | grep -q "STATE *: [0-9]  $2" && return 0
        sleep 0.2
    done
    qc "$1" >&2
    die "$1 did not reach $2"
}

# A deleted service disappears once stopped and its handles are closed.
wait_gone() {
    local i
    for ((i = 0; i < 100; i++)); do
        qc "$1" | grep -q 'OpenService FAILED 1060' && return 0
        sleep 0.2
    done
    qc "$1" >&2
    die "$1 still registered 20 s after msiexec /x"
}

activate() { W 'C:\probe.exe' post '\\.\pipe\Contrail' /Plugin.Activate "${1:-20}"; }

spec_file() { C "ProgramData/docker/plugins/Contrail.spec"; }

# Everything a fresh prefix has, for the leftover check.
snapshot() {
    (cd "$WINEPREFIX/drive_c" && find . -xdev | sort) |
        grep -v -e '^./windows/Installer' -e '^./windows/temp' -e '^./users/[^/]*/Temp' \
            -e '^./[a-z-]*install[a-z-]*\.log$' -e '^./.*\.msi$' -e '^./probe.exe$' >"$1"
    W reg query 'HKLM\System\CurrentControlSet\Services' | tr -d '\r' | sort >>"$1"
}

new_prefix() {
    export WINEPREFIX="$WORK/prefix"
    "$WINESERVER" -k 2>/dev/null || true
    rm -rf "$WINEPREFIX"
    mkdir -p "$WORK"
    W wineboot --init >/dev/null 2>&1
    "$WINESERVER" -w
    cp "$STUB_DLL" "$(C windows/system32/bcryptprimitives.dll)"
    cp "$PROBE" "$(C probe.exe)"
    cp "$MSI" "$(C vrouter-rs.msi)"
    cp "$MSI_NEXT" "$(C vrouter-rs-next.msi)"
    snapshot "$WORK/before.txt"
    # Wine ends services when the last ordinary process exits; this one
    # outlives every msiexec below (ended by wineserver -k).
    W 'C:\probe.exe' hold 1800 &
}

# Unreachable in the test's namespace (only lo is up): the agent keeps
# retrying them, as it would while a cluster's control nodes are down.
CONTROL_NODES_TEST="192.0.2.1 192.0.2.2:5270"

# Waits for the agent to log that it retries the control nodes.
wait_agent_log() {
    local i
    for ((i = 0; i < 150; i++)); do
        grep -qs "$1" "$(C ProgramData/Contrail/var/log/contrail)"/contrail-vrouter-agent.*.log && return 0
        sleep 0.2
    done
    die "the agent did not log '$1' in 30 s"
}

# CONTROL_NODES puts the agent in controller mode; an upgrade without it
# keeps it (HKLM\SOFTWARE\vrouter-rs); msiexec /x PURGE=1 leaves the
# prefix as fresh for the standalone install below.
controller_mode() {
    local out
    msiexec /i 'C:\vrouter-rs.msi' /qn /l*v 'C:\install-control-nodes.log' CONTROL_NODES="$CONTROL_NODES_TEST"
    out=$(qc ContrailAgent)
    log "$out"
    [[ $out == *'vrouter-agent.exe'*' run --config "C:\ProgramData\Contrail\etc\contrail\contrail-vrouter-agent.conf" --log-dir "C:\ProgramData\Contrail\var\log\contrail\." --config-source controller --CONTROL-NODE.servers "'"$CONTROL_NODES_TEST"'"'* ]] ||
        die "ContrailAgent: no controller-mode arguments"
    wait_state ContrailAgent RUNNING
    wait_agent_log 'control node not reachable; retrying'
    # Still up after retrying for a while, with both control nodes.
    sleep 5
    qc ContrailAgent | grep -q 'STATE *: 4  RUNNING' || die "the agent exited while retrying the control nodes"
    out=$(curl -fsS http://127.0.0.1:8085/controller) || die "agent introspect not serving"
    [[ $out == *'"mode":"controller"'* && $out == *192.0.2.1:5269* && $out == *192.0.2.2:5270* ]] ||
        die "/controller: $out"
    log "/controller: $out"
    W reg query 'HKLM\SOFTWARE\vrouter-rs' /v ControlNodes | tr -d '\r' |
        grep -q "ControlNodes *REG_SZ *$CONTROL_NODES_TEST\$" || die "CONTROL_NODES not remembered"
    msiexec /i 'C:\vrouter-rs-next.msi' /qn /l*v 'C:\install-upgrade-control-nodes.log'
    wait_state ContrailAgent RUNNING
    qc ContrailAgent | grep -qF -- '--config-source controller --CONTROL-NODE.servers "'"$CONTROL_NODES_TEST"'"' ||
        die "the upgrade forgot CONTROL_NODES"
    msiexec /x 'C:\vrouter-rs-next.msi' /qn /l*v 'C:\uninstall-control-nodes.log' PURGE=1
    wait_gone ContrailAgent
    wait_gone ContrailDockerDriver
    [[ -z $(leftovers) ]] || die "left behind by msiexec /x PURGE=1: $(leftovers)"
    log "CONTROL_NODES=\"$CONTROL_NODES_TEST\": agent in controller mode (command line, /controller), RUNNING while it retries them; kept by an upgrade; removed"
}

installed_and_running() {
    local t0 f out
    t0=$(now_ms)
    msiexec /i 'C:\vrouter-rs.msi' /qn /l*v 'C:\install.log' \
        CONTROLLER=http://localhost:8082 ADAPTER=Ethernet7
    INSTALL_SECS=$(secs_since "$t0")
    # Files where the MSI says (and as many as its File table has).
    for f in bin/vrouter-agent.exe bin/contrail-docker-driver.exe bin/vrctl.exe \
        doc/README.md doc/windows.md doc/agent.md doc/docker-driver.md etc/contrail-vrouter-agent.conf \
        extension/vrouter.sys extension/vrouter.inf; do
        [[ -f $(C "Program Files/vrouter-rs/$f") ]] || die "missing C:\\Program Files\\vrouter-rs\\$f"
    done
    # The forwarding extension is build-sys.sh's vrouter.sys, never the
    # device-only test image vrouter-devtest.sys.
    cmp -s "$(C "Program Files/vrouter-rs/extension/vrouter.sys")" "$SYS_DIR/vrouter.sys" ||
        die "the installed vrouter.sys is not build-sys.sh's"
    cmp -s "$(C "Program Files/vrouter-rs/extension/vrouter.inf")" "$SYS_DIR/vrouter.inf" ||
        die "the installed vrouter.inf is not build-sys.sh's"
    cmp -s "$(C ProgramData/Contrail/etc/contrail/contrail-vrouter-agent.conf)" \
        "$ROOT/packaging/config/contrail-vrouter-agent.conf" || die "the config is not the packaged one"
    f=$(find "$(C "Program Files/vrouter-rs")" -type f | wc -l)
    ((f == $(($(wc -l <"$WORK/tables/File.idt") - 3)))) || die "$f files installed, the File table has another count"
    [[ -d $(C ProgramData/Contrail/var/log/contrail) && -d $(C ProgramData/Contrail/var/lib/contrail) ]] ||
        die "log and state directories not created"
    # The services as the service manager has them.
    out=$(qc ContrailAgent)
    log "$out"
    [[ $out == *'BINARY_PATH_NAME   : '*'C:\Program Files\vrouter-rs\bin\vrouter-agent.exe'*' run --config "C:\ProgramData\Contrail\etc\contrail\contrail-vrouter-agent.conf" --log-dir "C:\ProgramData\Contrail\var\log\contrail\."'* ]] ||
        die "ContrailAgent: wrong binary path"
    [[ $out != *--config-source* ]] || die "ContrailAgent: controller mode without CONTROL_NODES"
    [[ $out == *'START_TYPE         : 2   AUTO_START'* ]] || die "ContrailAgent: not auto start"
    wait_state ContrailAgent RUNNING
    out=$(qc ContrailDockerDriver)
    log "$out"
    [[ $out == *'C:\Program Files\vrouter-rs\bin\contrail-docker-driver.exe'*' run --log-dir "C:\ProgramData\Contrail\var\log\contrail\." --vnc-url "http://localhost:8082" --adapter "Ethernet7"'* ]] ||
        die "ContrailDockerDriver: wrong binary path or properties"
    [[ $out == *'START_TYPE         : 2   AUTO_START'* ]] || die "ContrailDockerDriver: not auto start"
    wait_state ContrailDockerDriver RUNNING
    # Wine's QueryServiceConfig leaves dependencies out; the registry has them.
    W reg query 'HKLM\System\CurrentControlSet\Services\ContrailDockerDriver' /v DependOnService |
        grep -q 'REG_MULTI_SZ *ContrailAgent' || die "ContrailDockerDriver does not depend on ContrailAgent"
    W sc query ContrailDockerDriver | grep -q RUNNING || die "sc query: driver not RUNNING"
    # Recovery actions: the custom actions ran (Wine stores nothing; docs).
    grep -aq 'AgentRecovery. Return value 1' "$(C install.log)" || die "AgentRecovery did not run (install.log)"
    grep -aq 'DriverRecovery. Return value 1' "$(C install.log)" || die "DriverRecovery did not run (install.log)"
    # The driver, started by the service manager, serves its pipe and
    # announced it.
    out=$(activate)
    [[ $out == *'HTTP/1.1 200'* && $out == *NetworkDriver* && $out == *IpamDriver* ]] ||
        die "Plugin.Activate over \\\\.\\pipe\\Contrail: $out"
    [[ "$(cat "$(spec_file)")" == 'npipe://\\.\pipe\Contrail' ]] || die "spec file: $(cat "$(spec_file)" 2>&1)"
    # The agent, started by the service manager: VNC API, introspect, state.
    curl -fsS http://127.0.0.1:8082/projects | grep -q default-project || die "agent VNC API not serving"
    curl -fsS -o /dev/null http://127.0.0.1:8085/ports || die "agent introspect not serving"
    [[ -f $(C ProgramData/Contrail/var/lib/contrail/config.redb) ]] || die "agent state not under %ProgramData%\\Contrail\\var\\lib\\contrail"
    grep -q 'service running' "$(C ProgramData/Contrail/var/log/contrail)"/contrail-vrouter-agent.*.log ||
        die "no agent log file"
    grep -q 'serving the plugin API' "$(C ProgramData/Contrail/var/log/contrail)"/contrail-docker-driver.*.log ||
        die "no driver log file"
    log "installed in ${INSTALL_SECS}: files in place, ContrailAgent and ContrailDockerDriver auto start and RUNNING, pipe serves Plugin.Activate, spec file written, agent serves 8082/8085, logs and state under %ProgramData%\\Contrail"
}

stop_start_by_the_service_manager() {
    W sc stop ContrailDockerDriver >/dev/null
    wait_state ContrailDockerDriver STOPPED
    [[ ! -e $(spec_file) ]] || die "stopped driver left its spec file"
    if activate 1 >/dev/null; then die "stopped driver still serves its pipe"; fi
    W sc start ContrailDockerDriver >/dev/null
    wait_state ContrailDockerDriver RUNNING
    activate | grep -q NetworkDriver || die "restarted driver does not serve"
    [[ -e $(spec_file) ]] || die "restarted driver did not write its spec file"
    log "sc stop: spec file and pipe gone; sc start: both back"
}

# What an operator changes: a project in the config store, an edited config.
user_data() {
    curl -fsS -X POST http://127.0.0.1:8082/projects -H 'Content-Type: application/json' \
        -d '{"project": {"fq_name": ["default-domain", "msi-test"], "parent_type": "domain"}}' >/dev/null
    printf '\n# edited by the MSI test\n' >>"$(C ProgramData/Contrail/etc/contrail/contrail-vrouter-agent.conf)"
}

upgraded_keeping_everything() {
    local t0 out n
    t0=$(now_ms)
    msiexec /i 'C:\vrouter-rs-next.msi' /qn /l*v 'C:\install-upgrade.log'
    UPGRADE_SECS=$(secs_since "$t0")
    n=$(W reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s | tr -d '\r' |
        grep -c 'DisplayName *REG_SZ *vrouter-rs compute node' || true)
    ((n == 1)) || die "$n vrouter-rs products registered after the upgrade (want 1)"
    W reg query 'HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall' /s | tr -d '\r' |
        grep -q "DisplayVersion *REG_SZ *$NEXT_VERSION" || die "the upgrade did not register $NEXT_VERSION"
    wait_state ContrailAgent RUNNING
    wait_state ContrailDockerDriver RUNNING
    out=$(qc ContrailDockerDriver)
    [[ $out == *'--vnc-url "http://localhost:8082"'*'--adapter "Ethernet7"'* ]] ||
        die "the upgrade forgot CONTROLLER/ADAPTER: $out"
    grep -q 'edited by the MSI test' "$(C ProgramData/Contrail/etc/contrail/contrail-vrouter-agent.conf)" ||
        die "the upgrade replaced the edited config"
    curl -fsS http://127.0.0.1:8082/projects | grep -q msi-test || die "the upgrade lost the config store"
    activate | grep -q NetworkDriver || die "upgraded driver does not serve"
    log "upgraded $VERSION -> $NEXT_VERSION in ${UPGRADE_SECS}: one product, services running, properties, edited config and config store kept"
}

# Leftovers under the node's directories, one per line.
leftovers() {
    (cd "$WINEPREFIX/drive_c" && find "Program Files/vrouter-rs" ProgramData/Contrail \
        ProgramData/docker/plugins/Contrail.spec 2>/dev/null | sort) || true
}

removed_keeping_user_data() {
    local t0 left
    t0=$(now_ms)
    msiexec /x 'C:\vrouter-rs-next.msi' /qn /l*v 'C:\uninstall.log'
    UNINSTALL_SECS=$(secs_since "$t0")
    wait_gone ContrailAgent
    wait_gone ContrailDockerDriver
    if activate 1 >/dev/null; then die "the pipe is still served"; fi
    if curl -fsS -o /dev/null http://127.0.0.1:8082/projects 2>/dev/null; then die "the agent still runs"; fi
    # Exactly the user's data remains: config, state, logs.
    left=$(leftovers | grep -v -e '^ProgramData/Contrail$' -e '^ProgramData/Contrail/etc' \
        -e '^ProgramData/Contrail/var$' -e '^ProgramData/Contrail/var/lib' -e '^ProgramData/Contrail/var/log' || true)
    [[ -z $left ]] || die "left behind by msiexec /x: $left"
    [[ -f $(C ProgramData/Contrail/etc/contrail/contrail-vrouter-agent.conf) &&
        -f $(C ProgramData/Contrail/var/lib/contrail/config.redb) ]] || die "msiexec /x removed the user's config or state"
    W reg query 'HKLM\SOFTWARE\vrouter-rs' >/dev/null 2>&1 && die "settings left in HKLM\\SOFTWARE\\vrouter-rs"
    log "removed in ${UNINSTALL_SECS}: services, program files, pipe, spec file, settings gone; kept: $(leftovers | grep -c -e '\.conf$' -e '\.redb$' -e '\.log$' || true) files of config, state and logs"
}

purged() {
    local t0 rc=0
    msiexec /i 'C:\vrouter-rs.msi' /qn /l*v 'C:\install-again.log'
    grep -q 'edited by the MSI test' "$(C ProgramData/Contrail/etc/contrail/contrail-vrouter-agent.conf)" ||
        die "a reinstall replaced the kept config"
    curl -fsS http://127.0.0.1:8082/projects | grep -q msi-test || die "a reinstall lost the kept config store"
    t0=$(now_ms)
    msiexec /x 'C:\vrouter-rs.msi' /qn /l*v 'C:\uninstall-purge.log' PURGE=1 || rc=$?
    ((rc == 0)) || die "msiexec /x PURGE=1 exited $rc"
    PURGE_SECS=$(secs_since "$t0")
    "$WINESERVER" -k
    "$WINESERVER" -w
    snapshot "$WORK/after.txt"
    if ! diff -u "$WORK/before.txt" "$WORK/after.txt" >"$WORK/leftovers.diff"; then
        cat "$WORK/leftovers.diff"
        die "leftovers after msiexec /x PURGE=1 (above)"
    fi
    log "reinstalled over kept data, then msiexec /x PURGE=1 in ${PURGE_SECS}: no leftovers (files and services diffed against the fresh prefix)"
}

wine_test() {
    ip link set lo up
    step "fresh prefix" new_prefix
    step "msiexec /i /qn CONTROL_NODES=...: agent in controller mode" controller_mode
    step "msiexec /i /qn CONTROLLER=... ADAPTER=...: installed and running" installed_and_running
    step "sc stop / sc start the driver" stop_start_by_the_service_manager
    step "operator data" user_data
    step "msiexec /i next version: major upgrade" upgraded_keeping_everything
    step "msiexec /x: removed, user data kept" removed_keeping_user_data
    step "reinstall, msiexec /x PURGE=1: nothing left" purged
    note_summary "MSI installed in ${INSTALL_SECS} (services started, pipe and spec checked), upgraded in ${UPGRADE_SECS}, removed in ${UNINSTALL_SECS}, purged in ${PURGE_SECS}: no leftovers"
    # The snapshot's `reg query` started a wineserver again; it writes
    # system.reg when it exits, which raced with rm ("Directory not empty").
    stop_wine
    rm -rf "$WINEPREFIX"
}

stop_wine() {
    if [[ -n ${WINEPREFIX:-} && -d $WINEPREFIX ]]; then
        "$WINESERVER" -k 2>/dev/null || true
        "$WINESERVER" -w 2>/dev/null || true
    fi
}

# Helpers the Wine test needs (the lane builds the stub DLL too).
helpers() {
    mkdir -p "$(dirname "$PROBE")"
    if [[ ! -f $STUB_DLL || $ROOT/scripts/windows/bcryptprimitives.c -nt $STUB_DLL ]]; then
        x86_64-w64-mingw32-gcc -O2 -Wall -Werror -shared -static-libgcc -o "$STUB_DLL" \
            "$ROOT/scripts/windows/bcryptprimitives.c" -lbcrypt
    fi
    if [[ ! -f $PROBE || $ROOT/scripts/windows/probe.c -nt $PROBE ]]; then
        x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o "$PROBE" "$ROOT/scripts/windows/probe.c"
    fi
}

if [[ ${1:-} == --wine-test ]]; then
    # Re-entered inside `unshare -n` (below).
    report_failure_on_exit stop_wine
    wine_test
    exit 0
fi

if [[ ${1:-} == --build-only ]]; then
    report_failure_on_exit
    step "Windows release build (agent, driver, vrctl)" build_exes
    exit 0
fi
[[ $# == 0 ]] || die "unknown argument: $1 (--build-only or nothing)"

report_failure_on_exit
((EUID == 0)) || die "run as root (a private network namespace for the Wine test)"
for t in wixl msibuild msidump msiinfo "$WCARGO" "$WINE" x86_64-w64-mingw32-strip; do
    command -v "$t" >/dev/null || die "missing $t: run the deps phase (bash scripts/test-all.sh deps)"
done
step "Windows release build (agent, driver, vrctl)" build_exes
step "vrouter.sys (the lane's build-sys.sh)" build_sys
step "wixl: $(basename "$MSI") and $NEXT_VERSION for the upgrade test" build
step "msidump/msiinfo: the tables" check_tables
step "the catalog build of the .wxs (placeholder vrouter.cat, not shipped)" extension_binding
step "probe.exe, stub DLL" helpers
# env.sh pointed CARGO_TARGET_DIR at the Windows lane's dir: give the
# re-entered script the base it started from.
step "under Wine (private network namespace)" \
    env CARGO_TARGET_DIR="$TARGET_BASE" unshare -n -- bash "$0" --wine-test
log "msi: OK"
