#!/usr/bin/env bash
# The main job: the whole PAYSIM system on its embedded defaults.
#   bash scripts/demo.sh [--no-wait]     (as root; from another account: sudo bash ...)
#
# pcscd with vpcd (scripts/setup.sh), a build of the four binaries (debug, the tests' target
# directory), a bank-server with a fresh SQLite database, a virtual card personalized in vpcd's
# slot 0 ("Virtual PCD 00 00") and enrolled for user alice, then through reader-bridge a login,
# a 12.34 EUR transfer to bob signed by the card, the balances and history, and the audit log
# and books checked. Then it leaves the bank and the card running, prints how to log in by
# hand in a browser, and waits for Ctrl-C, which stops both.
#
# Environment:
#   PAYSIM_PORT=8080       the bank's port on 127.0.0.1
#   PAYSIM_DEMO_TLS=1      1 (default): the bank on https:// with a local CA (bank-tools tls init
#                          in the work directory), which the bridge is set up to trust;
#                          0: plain http:// on 127.0.0.1
#   PAYSIM_DEMO_DIR=DIR    work directory (must be new or empty; default: a new /tmp/paysim-demo.*)
#   PAYSIM_DEMO_EXIT=1     same as --no-wait: stop everything and exit 0 after the automated part
#   PAYSIM_SLOT_WAIT=30    seconds to wait for slot 0 while a test or another card holds it
#   CARGO_TARGET_DIR       as for cargo (default: target)
# The PIN 1234 is this demo's fixed default and is printed on purpose; the card's seed, its
# admin key, the PUK and the bank's master key are never printed.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

NO_WAIT=${PAYSIM_DEMO_EXIT:-0}
for arg in "$@"; do
    case "$arg" in
        --no-wait) NO_WAIT=1 ;;
        -h | --help) sed -n '2,/^set -E/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: demo.sh [--no-wait]   (see the top of scripts/demo.sh)" >&2; exit 2 ;;
    esac
done

PORT=${PAYSIM_PORT:-8080}
SLOT_WAIT=${PAYSIM_SLOT_WAIT:-30}
SLOT=0
READER="Virtual PCD 00 00"
VPCD=127.0.0.1:35963
SERIAL=PSIM-00000001
PIN=1234     # the demo card's PIN: a fixed demo default, printed at the end
PUK=12345678 # never printed
USER_NAME=alice
PAYEE_NAME=bob
# The account holders' names: verification of payee compares the name the payer types with
# the payee's (the demo's transfer gives the right one: a "match").
USER_HOLDER="Alice Example"
PAYEE_HOLDER="Bob Example"
FROM_ACC=ACC-ALICE-EUR
TO_ACC=ACC-BOB-EUR
CURRENCY=EUR
FUNDING=1000.00
AMOUNT=12.34
# The demo's own settings, not whatever the caller's environment says.
unset BANK_DB BANK_MASTER_KEY BANK_MASTER_KEY_FILE BANK_TLS_CERT BANK_TLS_KEY
unset PAYSIM_SERVER PAYSIM_READER PAYSIM_BRIDGE_STATE_DIR
TLS=${PAYSIM_DEMO_TLS:-1}
case "$TLS" in
    0 | 1) ;;
    *) echo "demo: error: PAYSIM_DEMO_TLS=$TLS is not 0 or 1" >&2; exit 2 ;;
esac

case "$PORT" in
    '' | *[!0-9]*) echo "demo: error: PAYSIM_PORT=$PORT is not a port number" >&2; exit 2 ;;
esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    echo "demo: error: PAYSIM_PORT=$PORT is not a port number (1-65535)" >&2
    exit 2
fi

current_step="start"
failed_cmd=""
step() {
    current_step=$*
    printf '\n==> %s\n' "$*"
}
die() {
    printf 'demo: error: %s\n' "$*" >&2
    exit 1
}

WORK=""
made_work=0
card_pid=""
bank_pid=""
stop_all() {
    if [ -n "$card_pid" ]; then
        stop_pid "$card_pid"
        card_pid=""
        # Hand the slot over empty, as the tests do (pcscd notices within ~0.5 s).
        wait_reader_empty "$READER" 10 || echo "demo: warning: pcscd still sees a card in \"$READER\"" >&2
    fi
    if [ -n "$bank_pid" ]; then
        stop_pid "$bank_pid"
        bank_pid=""
    fi
    exec 9>&- # the slot lock
}
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$card_pid$bank_pid" ]; then
        echo "demo: stopping the virtual card and the bank"
    fi
    stop_all
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; then
        printf '\ndemo: FAILED at step "%s"%s (exit %s)\n' "$current_step" \
            "${failed_cmd:+, command: $failed_cmd}" "$rc" >&2
        # A work directory the demo made but never used is not left behind.
        if [ -n "$WORK" ] && [ "$made_work" = 1 ] && rmdir "$WORK" 2>/dev/null; then
            WORK=""
        fi
        if [ -n "$WORK" ]; then
            printf 'demo: logs are in %s\n' "$WORK" >&2
        fi
    fi
    exit "$rc"
}
trap 'failed_cmd=$BASH_COMMAND' ERR
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "pcscd and vpcd (scripts/setup.sh)"
bash scripts/setup.sh

step "build bank-server, reader-bridge, bank-tools, virtual-card (debug)"
find_cargo
cargo build -p bank-server -p reader-bridge -p tools -p card-applet --bins
BIN=$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)

# Port and slot are checked before anything is made, so a demo that cannot run leaves
# nothing behind.
step "check port $PORT and take vpcd slot $SLOT ($READER)"
if port_listening "$PORT"; then
    die "port $PORT is taken (another bank-server or demo?); stop it, or choose another port: PAYSIM_PORT=$((PORT + 1)) bash scripts/demo.sh"
fi
lock_slot 9 "$SLOT" "$SLOT_WAIT" \
    || die "vpcd slot $SLOT is still held after $SLOT_WAIT s by $(slot_holder "$SLOT"); stop that (or wait for the tests to finish) and run the demo again"
wait_reader_empty "$READER" 10 \
    || die "\"$READER\" holds a card this demo did not start (pcscd: $(reader_state "$READER")); a virtual-card run by hand? stop it"
echo "demo: slot $SLOT is ours ($(slot_lock_path "$SLOT"))"

step "work directory"
WORK=${PAYSIM_DEMO_DIR:-}
if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /tmp/paysim-demo.XXXXXX)
    made_work=1
elif [ ! -e "$WORK" ]; then
    made_work=1
fi
mkdir -p "$WORK"
[ -z "$(ls -A "$WORK")" ] || { WORK=""; die "PAYSIM_DEMO_DIR=${PAYSIM_DEMO_DIR:-} is not empty; the demo needs a new or empty directory"; }
WORK=$(cd "$WORK" && pwd)
chmod 700 "$WORK"
echo "demo: work directory $WORK"
DB="$WORK/bank.sqlite3"
tools() { "$BIN/bank-tools" "$@" --db "$DB" --master-key-beside-db; }

TLS_FLAGS=()
SCHEME=http
if [ "$TLS" = 1 ]; then
    step "TLS: a local CA and a server certificate for 127.0.0.1, ::1, localhost (bank-tools tls init)"
    "$BIN/bank-tools" tls init --dir "$WORK/tls"
    TLS_FLAGS=(--tls-cert "$WORK/tls/server.pem" --tls-key "$WORK/tls/server-key.pem")
    SCHEME=https
fi

step "start bank-server on $SCHEME://127.0.0.1:$PORT with a fresh database"
if port_listening "$PORT"; then
    die "port $PORT is taken (another bank-server or demo?); stop it, or choose another port: PAYSIM_PORT=$((PORT + 1)) bash scripts/demo.sh"
fi
# The master key beside the database is the demo's choice (one directory to throw away); a
# real bank keeps it apart (--master-key FILE or BANK_MASTER_KEY): docs/bank.md.
"$BIN/bank-server" serve --db "$DB" --master-key-beside-db --listen "127.0.0.1:$PORT" ${TLS_FLAGS[@]+"${TLS_FLAGS[@]}"} \
    >"$WORK/bank-server.out" 2>"$WORK/bank-server.log" 9>&- </dev/null &
bank_pid=$!
wait_line "$WORK/bank-server.out" "^bank-server listening on $SCHEME://" "$bank_pid" 20 \
    || die "bank-server did not start within 20 s; its log ($WORK/bank-server.log):
$(cat "$WORK/bank-server.log")"
URL=$(awk '/^bank-server listening on / { print $4; exit }' "$WORK/bank-server.out")
echo "demo: bank-server is up at $URL (pid $bank_pid, log $WORK/bank-server.log)"
if [ "$TLS" = 1 ] && command -v curl >/dev/null; then
    # A third-party client that trusts only the demo's CA reaches the bank.
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$WORK/tls/ca.pem" "$URL/login") \
        || die "curl --cacert $WORK/tls/ca.pem $URL/login failed"
    [ "$code" = 200 ] || die "curl --cacert $WORK/tls/ca.pem $URL/login answered $code"
    echo "demo: curl trusting only $WORK/tls/ca.pem gets $URL/login (HTTP $code)"
fi

step "create a factory card and start it in $READER"
"$BIN/bank-tools" card create --state "$WORK/card.state" --admin-key-out "$WORK/card.admin"
# Rarely pcscd starts powering a newly connected virtual card and never finishes; the reader
# then shows no usable card until the card is removed. Like a person, the demo pulls and
# re-inserts such a card (at most twice) before it gives up.
for attempt in 1 2 3; do
    "$BIN/virtual-card" --state "$WORK/card.state" --vpcd "$VPCD" --slot-locked-by-caller \
        >"$WORK/virtual-card.out" 2>>"$WORK/virtual-card.log" 9>&- </dev/null &
    card_pid=$!
    wait_line "$WORK/virtual-card.out" '^virtual-card: connected to vpcd' "$card_pid" 20 \
        || die "virtual-card did not reach vpcd within 20 s (is another card in slot $SLOT?); its log:
$(cat "$WORK/virtual-card.log")"
    wait_reader_usable "$READER" 10 && break
    [ "$attempt" -lt 3 ] || die "pcscd never made the card in \"$READER\" usable (state: $(reader_state "$READER")); its log: $WORK/virtual-card.log"
    echo "demo: pcscd did not finish powering the card (state: $(reader_state "$READER")); re-inserting it"
    stop_pid "$card_pid"
    card_pid=""
    wait_reader_empty "$READER" 10 || die "\"$READER\" did not empty after the card stopped"
done
cat "$WORK/virtual-card.out"

step "personalize the card: admin authentication, seed, PIN, PUK, serial $SERIAL"
# bank-tools waits (SCardGetStatusChange, bounded) until pcscd sees the card.
printf '%s\n%s\n' "$PIN" "$PUK" | "$BIN/bank-tools" card personalize \
    --reader "$READER" --admin-key "$WORK/card.admin" --serial "$SERIAL" \
    --pin-stdin --puk-stdin --user-id "$USER_NAME" --out "$WORK/token.json"

step "enroll: users, token, accounts, funding (bank-tools on the running bank's database)"
tools user add "$USER_NAME"
tools user add "$PAYEE_NAME"
tools token enroll --user "$USER_NAME" --token-file "$WORK/token.json"
# The bank holds the sealed seed now; the token file has done its job.
shred -u "$WORK/token.json"
tools account open --user "$USER_NAME" --number "$FROM_ACC" --currency "$CURRENCY" --holder "$USER_HOLDER"
tools account open --user "$PAYEE_NAME" --number "$TO_ACC" --currency "$CURRENCY" --holder "$PAYEE_HOLDER"
tools account fund --account "$FROM_ACC" --amount "$FUNDING" --currency "$CURRENCY" --memo "demo opening deposit"
tools token list

# balance_minor USER ACCOUNT: the account's balance in minor units, from `account list`.
balance_minor() {
    local amount
    amount=$(tools account list --user "$1" | awk -v acc="$2" '$1 == acc { print $2 }')
    [[ "$amount" =~ ^[0-9]+\.[0-9]{2}$ ]] || die "no balance for $2 in bank-tools account list --user $1"
    echo $((10#${amount/./}))
}
from_before=$(balance_minor "$USER_NAME" "$FROM_ACC")
to_before=$(balance_minor "$PAYEE_NAME" "$TO_ACC")

BRIDGE=("$BIN/reader-bridge" --reader "$READER" --state-dir "$WORK/bridge-state")

CA_FLAGS=()
if [ "$TLS" = 1 ]; then
    CA_FLAGS=(--ca "$WORK/tls/ca.pem")
fi
step "reader-bridge setup --server $URL ${CA_FLAGS[*]} (pin the bridge to this bank: the card signs only for it)"
"${BRIDGE[@]}" setup --server "$URL" ${CA_FLAGS[@]+"${CA_FLAGS[@]}"}
"${BRIDGE[@]}" --wait 0 status

step "reader-bridge login --user $USER_NAME (challenge, PIN, LOGIN OTP from the card)"
printf '%s\n' "$PIN" | "${BRIDGE[@]}" --pin-stdin login --user "$USER_NAME"

step "reader-bridge accounts"
"${BRIDGE[@]}" accounts

step "reader-bridge transfer --to $TO_ACC --payee-name \"$PAYEE_HOLDER\" --amount $AMOUNT --currency $CURRENCY (verification of payee, then TRANSACTION OTP)"
printf '%s\n' "$PIN" | "${BRIDGE[@]}" --pin-stdin transfer \
    --to "$TO_ACC" --payee-name "$PAYEE_HOLDER" --amount "$AMOUNT" --currency "$CURRENCY" --yes

step "reader-bridge accounts and history after the transfer"
"${BRIDGE[@]}" accounts
"${BRIDGE[@]}" history

step "check the balances moved by exactly $AMOUNT $CURRENCY"
from_after=$(balance_minor "$USER_NAME" "$FROM_ACC")
to_after=$(balance_minor "$PAYEE_NAME" "$TO_ACC")
moved=$((10#${AMOUNT/./}))
[ $((from_before - from_after)) -eq "$moved" ] \
    || die "$FROM_ACC went from $from_before to $from_after minor units, expected a debit of $moved"
[ $((to_after - to_before)) -eq "$moved" ] \
    || die "$TO_ACC went from $to_before to $to_after minor units, expected a credit of $moved"
minor() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }
echo "demo: balances moved by exactly $AMOUNT $CURRENCY:" \
    "$FROM_ACC $(minor "$from_before") -> $(minor "$from_after")," \
    "$TO_ACC $(minor "$to_before") -> $(minor "$to_after")"

step "bank-tools audit verify and audit books"
tools audit verify
tools audit books

if [ "$NO_WAIT" = 1 ]; then
    step "stop (PAYSIM_DEMO_EXIT=1 / --no-wait)"
    echo "demo: stopping the virtual card and the bank"
    stop_all
    echo "demo: done; files in $WORK"
    exit 0
fi

current_step="running (Ctrl-C stops)"
if [ "$TLS" = 1 ]; then
    TLS_NOTE="
              (HTTPS from the demo's own CA: import $WORK/tls/ca.pem into the
              browser's certificate settings as an authority, or accept its warning)"
fi
# The bridge takes its bank from the state directory; PAYSIM_SERVER is only checked against it,
# but a shell that has the default port's address exported would be refused: say the new one.
if [ "$PORT" != 8080 ]; then
    SERVER_EXPORT="
      export PAYSIM_SERVER=\"$URL\"   (this demo's port; the default is 8080)"
fi
cat <<EOF

================================================================================
 The bank and the virtual card keep running. Log in by hand:

   website:   $URL${TLS_NOTE:-}
   user:      $USER_NAME
   PIN:       $PIN   (the demo card's fixed default PIN; a demo value, fine to show)
   card:      $SERIAL in "$READER"

 1. Open $URL in a browser (on another machine: ssh -L $PORT:127.0.0.1:$PORT <this host>),
    enter the user name $USER_NAME.
 2. In a second terminal, put the bridge on PATH and use the demo's bridge state (set up
    for this bank by \`reader-bridge setup --server $URL\` above):
      export PATH="$BIN:\$PATH"
      export PAYSIM_BRIDGE_STATE_DIR="$WORK/bridge-state"${SERVER_EXPORT:-}
    and run the reader-bridge respond ... command the page shows (copy it whole). It shows
    the bank this bridge is set up for and the fields the card signs, asks you to confirm,
    then for the PIN: type $PIN.
 3. Type the "type into the page" code (COUNTER-OTP) into the page. Transfers work the same
    way: the confirmation page shows its own respond command with the signed fields.

 Bridge from the terminal instead:   $BIN/reader-bridge --state-dir $WORK/bridge-state login --user $USER_NAME
 Work directory (database, logs):    $WORK
 Ctrl-C stops the card and the bank.
================================================================================
EOF
wait -n "$bank_pid" "$card_pid" || true
# Only reached when one of them stopped on its own (Ctrl-C runs the INT trap instead).
if ! kill -0 "$bank_pid" 2>/dev/null; then
    die "bank-server stopped; its log: $WORK/bank-server.log"
fi
die "virtual-card stopped; its log: $WORK/virtual-card.log"
