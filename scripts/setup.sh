#!/usr/bin/env bash
# Brings a Debian machine to the point where the PAYSIM tests and demo can run:
# installs pcscd, vsmartcard's vpcd reader driver, the PC/SC headers and the PC/SC client tools
# (only when something is missing), then makes sure pcscd runs with vpcd's two readers.
# Idempotent; run as root (sudo bash scripts/setup.sh); as another user it only checks.
# There is no systemd here: pcscd is started directly, and we wait for its socket and vpcd's
# ports with a bounded poll.
set -euo pipefail

# --restart-pcscd: stop a running pcscd first (the tests use it to check that cards reconnect).
# --cli-docs: only install the bash completions and man pages of the built reader-bridge and
# bank-tools (generated from their clap definitions; build them first with cargo build).
restart=0
cli_docs=0
case "${1:-}" in
    "") ;;
    --restart-pcscd) restart=1 ;;
    --cli-docs) cli_docs=1 ;;
    *) echo "usage: setup.sh [--restart-pcscd | --cli-docs]" >&2; exit 2 ;;
esac

PACKAGES=(pcscd vsmartcard-vpcd libpcsclite-dev pcsc-tools opensc pkg-config nftables iproute2 chromium chromium-driver yubikey-manager python3-pskc)
PCSCD_SOCKET=/run/pcscd/pcscd.comm
VPCD_PORTS=(35963 35964)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root: run sudo bash scripts/setup.sh"
}

# Completions to /usr/share/bash-completion/completions, man pages to /usr/local/share/man/man1,
# from the newest build of each binary (release before debug).
install_cli_docs() {
    local repo bin exe d
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    need_root "installing completions and man pages"
    mkdir -p /usr/share/bash-completion/completions /usr/local/share/man/man1
    for bin in reader-bridge bank-tools; do
        exe=""
        for d in release debug; do
            if [ -x "$repo/target/$d/$bin" ]; then exe="$repo/target/$d/$bin"; break; fi
        done
        [ -n "$exe" ] || die "$bin is not built: run 'cargo build --release -p reader-bridge -p tools' first"
        "$exe" completions bash > "/usr/share/bash-completion/completions/$bin"
        "$exe" man --dir /usr/local/share/man/man1
        log "installed the bash completion and man pages of $bin (from $exe)"
    done
}
if [ "$cli_docs" = 1 ]; then
    install_cli_docs
    exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

vpcd_newly_installed=0
if [ "${#missing[@]}" -gt 0 ]; then
    need_root "installing ${missing[*]}"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    for p in "${missing[@]}"; do
        if [ "$p" = vsmartcard-vpcd ]; then
            vpcd_newly_installed=1
        fi
    done
else
    log "packages present: ${PACKAGES[*]}"
fi

# vpcd's DEVICENAME `/dev/null:PORT` makes it listen on every interface: whoever reaches
# these ports from another host can become the card in a free slot and be sent the PIN.
# Where the machine lets root filter its own input (nftables), everything but loopback is
# answered with a TCP reset on them; where it does not, say so (docs/security.md, "vpcd").
VPCD_FILTER_TABLE=paysim_vpcd
close_vpcd_ports() {
    if [ "$(id -u)" -ne 0 ]; then
        log "not root: vpcd's ports ${VPCD_PORTS[*]} stay open to other hosts (see docs/security.md)"
        return 0
    fi
    local rules
    rules="table inet $VPCD_FILTER_TABLE {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname != \"lo\" tcp dport { ${VPCD_PORTS[0]}, ${VPCD_PORTS[1]} } reject with tcp reset
    }
}"
    nft delete table inet "$VPCD_FILTER_TABLE" 2>/dev/null || true
    local err
    if err=$(nft -f - 2>&1 <<<"$rules"); then
        log "vpcd's ports ${VPCD_PORTS[*]} are closed to everything but loopback (nft table inet $VPCD_FILTER_TABLE)"
    else
        log "warning: cannot filter vpcd's ports here (nft: ${err//$'\n'/ }); they stay open to other hosts (see docs/security.md)"
    fi
}
close_vpcd_ports

pcscd_pid() {
    # The pid of a running pcscd, found in /proc (procps may not be installed).
    # A zombie (state Z) is a dead pcscd nobody reaped: it does not count.
    local d comm state
    for d in /proc/[0-9]*; do
        comm="" state=""
        read -r comm 2>/dev/null <"$d/comm" || continue
        [ "$comm" = pcscd ] || continue
        state=$(awk '/^State:/ { print $2 }' "$d/status" 2>/dev/null || true)
        if [ "$state" != Z ]; then
            echo "${d#/proc/}"
            return 0
        fi
    done
}

# A port is listening if /proc/net/tcp{,6} has it in state 0A (LISTEN). Reading the table,
# rather than connecting, matters: vpcd would take a probe connection for a card.
port_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

vpcd_ready() {
    local port
    [ -S "$PCSCD_SOCKET" ] || return 1
    for port in "${VPCD_PORTS[@]}"; do
        port_listening "$port" || return 1
    done
}

stop_pcscd() {
    local pid i
    pid=$(pcscd_pid)
    [ -n "$pid" ] || return 0
    need_root "restarting pcscd"
    log "stopping pcscd (pid $pid)"
    kill "$pid"
    for i in $(seq 1 100); do
        [ "$(pcscd_pid)" = "$pid" ] || return 0 # gone, or a zombie nobody reaps
        sleep 0.1
    done
    die "pcscd (pid $pid) did not stop within 10 s"
}

# pcscd loads reader drivers at start: after vpcd is first installed it must be restarted.
if [ "$vpcd_newly_installed" = 1 ] || [ "$restart" = 1 ]; then
    stop_pcscd
fi

if [ -n "$(pcscd_pid)" ] && ! vpcd_ready; then
    # Running but without vpcd's ports (started before the driver was there): restart it,
    # after giving a just-started pcscd a moment to open them.
    for i in $(seq 1 30); do
        vpcd_ready && break
        sleep 0.1
    done
    vpcd_ready || stop_pcscd
fi

if [ -z "$(pcscd_pid)" ]; then
    need_root "starting pcscd"
    log "starting pcscd"
    rm -f "$PCSCD_SOCKET" /run/pcscd/pcscd.pid # stale, from a pcscd that died
    mkdir -p /run/pcscd
    pcscd # daemonizes
fi

for i in $(seq 1 100); do
    if vpcd_ready; then
        log "pcscd is running (pid $(pcscd_pid)) with vpcd on ports ${VPCD_PORTS[*]}"
        exit 0
    fi
    sleep 0.1
done
die "pcscd did not come up with vpcd within 10 s (socket $PCSCD_SOCKET, ports ${VPCD_PORTS[*]}); see 'pcscd --foreground --debug'"
