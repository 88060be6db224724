# Shared by the scripts (sourced, not run): finding cargo, the vpcd slot lock the tests also
# take, waiting for readiness lines and stopping processes. Nothing here prints secrets.

# Find cargo even under sudo, whose PATH leaves out ~/.cargo/bin.
find_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local home
    for home in "${CARGO_HOME:-}" "$HOME/.cargo" ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo"}; do
        if [ -n "$home" ] && [ -x "$home/bin/cargo" ]; then
            export PATH="$home/bin:$PATH"
            return 0
        fi
    done
    echo "error: cargo not found; install Rust (https://rustup.rs) or put cargo on PATH" >&2
    return 1
}

# port_listening PORT: true if a TCP socket listens on PORT (any address). Reads
# /proc/net/tcp{,6} (state 0A = LISTEN) rather than connecting, so nothing is disturbed.
port_listening() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# slot_lock_path N: the lock file of vpcd slot N, the same one the e2e harness takes
# (tests/src/lib.rs, `Slot::lock`: std::env::temp_dir() is $TMPDIR or /tmp).
slot_lock_path() {
    printf '%s/paysim-vpcd-slot-%s.lock' "${TMPDIR:-/tmp}" "$1"
}

# slot_holder N: who holds vpcd slot N's lock, as the holder wrote it into the lock file
# ("pid 1234: e2e tests (...)", "pid 99: virtual-card --state ...", "pid 7: scripts/demo.sh").
slot_holder() {
    local line=""
    IFS= read -r line <"$(slot_lock_path "$1")" 2>/dev/null || true
    printf '%s' "${line:-a process that did not write its name}"
}

# lock_slot FD N SECONDS: take vpcd slot N's lock (flock) on file descriptor FD, waiting at
# most SECONDS for whoever holds it (naming the holder first). Once taken, writes this
# script's pid into the lock file. Released when FD is closed (`exec FD>&-`) or the shell
# exits. Children inherit FD: start long-running ones with `FD>&-`.
lock_slot() {
    local fd=$1 slot=$2 secs=$3 path
    path=$(slot_lock_path "$slot")
    # An existing file is opened without O_CREAT, so a lock file another user created works.
    if [ -e "$path" ]; then
        eval "exec $fd<\"\$path\""
    else
        eval "exec $fd>\"\$path\""
    fi
    if ! flock -n "$fd"; then
        printf 'vpcd slot %s is held by %s (lock file %s); waiting up to %s s\n' \
            "$slot" "$(slot_holder "$slot")" "$path" "$secs" >&2
        flock -w "$secs" "$fd" || return 1
    fi
    # Best effort: a lock file another user created may not be writable.
    { printf 'pid %s: scripts/demo.sh\n' "$$" >"$path"; } 2>/dev/null || true
}

# wait_line FILE PATTERN PID SECONDS: wait until FILE holds a line matching the extended
# regex PATTERN. Bounded: returns 1 after SECONDS, 2 at once if process PID exits first.
wait_line() {
    local file=$1 pattern=$2 pid=$3 secs=$4 i
    for ((i = 0; i < secs * 20; i++)); do
        if grep -Eq -- "$pattern" "$file" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            grep -Eq -- "$pattern" "$file" 2>/dev/null && return 0
            return 2
        fi
        sleep 0.05
    done
    return 1
}

# stop_pid PID: SIGTERM, then wait (at most 10 s) for it to exit, then SIGKILL. PID must be a
# child of this shell. Returns 0 once it is gone.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# reader_state NAME: pcscd's card state for reader NAME as pcsc-tools' pcsc_scan prints it,
# e.g. "Card removed," or "Card inserted, Mute card,". It never connects to the card (a
# connect to a card that just went away can leave pcscd believing in a mute card).
reader_state() {
    local out
    out=$(pcsc_scan -c -n </dev/null 2>&1) || return 1
    awk -v r="$1" '
        /^ *Reader [0-9]+: / { sub(/^ *Reader [0-9]+: /, ""); cur = $0; next }
        /^ *Card state: / && cur == r { sub(/^ *Card state: */, ""); print; exit }
    ' <<<"$out"
}

# wait_reader_usable NAME SECONDS: wait (bounded) until pcscd shows a card in reader NAME that
# it powered (inserted and not mute).
wait_reader_usable() {
    local i state
    for ((i = 0; i < $2 * 20; i++)); do
        state=$(reader_state "$1")
        case "$state" in
            *Mute*) ;;
            "Card inserted"*) return 0 ;;
        esac
        sleep 0.05
    done
    return 1
}

# wait_reader_empty NAME SECONDS: wait (bounded) until pcscd has seen reader NAME without any
# card, mute or not. vpcd reports a card that reconnects within one presence poll (~0.4 s)
# as the same card, so a slot is handed on only after this.
wait_reader_empty() {
    local i
    for ((i = 0; i < $2 * 20; i++)); do
        case "$(reader_state "$1")" in
            "Card removed"*) return 0 ;;
        esac
        sleep 0.05
    done
    return 1
}
