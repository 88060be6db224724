#!/usr/bin/env bash
# The main job: bring up pcscd with vpcd, build, create and personalize a virtual PAYSIM card
# in slot 0 ("Virtual PCD 00 00"), then use a third-party PC/SC client (pcsc-tools' scriptor)
# to SELECT the applet, VERIFY the PIN and get a LOGIN OTP, and check that OTP against the
# PAYSIM-1 algorithm run from the personalization output.
#   sudo bash scripts/demo.sh
# Files go to $DEMO_DIR (default: a new /tmp/paysim-demo.XXXXXX). Non-interactive.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

READER="Virtual PCD 00 00"
VPCD=127.0.0.1:35963
SERIAL=PSIM-00000001
PIN=1234
PUK=12345678
VERIFIER_ID=https://bank.example:443
AID=F050415953494D01

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

step "pcscd and vpcd"
bash scripts/setup.sh

step "build"
find_cargo
cargo build --quiet -p card-applet -p tools --bins
BIN="${CARGO_TARGET_DIR:-target}/debug"

DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/paysim-demo.XXXXXX)}
mkdir -p "$DEMO_DIR"
chmod 700 "$DEMO_DIR"

# Hold slot 0 like the tests do (same lock file), so a test run cannot take it meanwhile.
exec 9>"${TMPDIR:-/tmp}/paysim-vpcd-slot-0.lock"
flock -w 120 9 || die "slot 0 is busy (tests running?) for over 2 minutes"

card_pid=""
cleanup() {
    if [ -n "$card_pid" ] && kill -0 "$card_pid" 2>/dev/null; then
        kill "$card_pid"
        wait "$card_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step "create a factory card in $DEMO_DIR"
"$BIN/bank-tools" card create --state "$DEMO_DIR/card.state" --admin-key-out "$DEMO_DIR/card.admin"

step "start virtual-card in slot 0 ($READER)"
"$BIN/virtual-card" --state "$DEMO_DIR/card.state" --vpcd "$VPCD" \
    >"$DEMO_DIR/virtual-card.out" 2>"$DEMO_DIR/virtual-card.log" &
card_pid=$!
for _ in $(seq 1 200); do
    grep -q '^virtual-card: connected to vpcd' "$DEMO_DIR/virtual-card.out" && break
    kill -0 "$card_pid" 2>/dev/null || die "virtual-card stopped: $(cat "$DEMO_DIR/virtual-card.log")"
    sleep 0.1
done
grep -q '^virtual-card: connected to vpcd' "$DEMO_DIR/virtual-card.out" \
    || die "virtual-card did not reach vpcd within 20 s (another card in slot 0?); log: $DEMO_DIR/virtual-card.log"
cat "$DEMO_DIR/virtual-card.out"

step "personalize it: admin authentication, seed, PIN, PUK, serial"
# bank-tools waits (SCardGetStatusChange, bounded) until pcscd sees the card.
printf '%s\n%s\n' "$PIN" "$PUK" | "$BIN/bank-tools" card personalize \
    --reader "$READER" --admin-key "$DEMO_DIR/card.admin" \
    --serial "$SERIAL" --pin-stdin --puk-stdin --user-id alice \
    --out "$DEMO_DIR/token.json"

step "SELECT, VERIFY, LOGIN OTP with scriptor (pcsc-tools), one PC/SC connection"
hex() { od -An -v -tx1 | tr -d ' \n' | tr 'a-f' 'A-F'; }
challenge=$(head -c 32 /dev/urandom | hex)
pin_block=$(printf '%s' "$PIN" | hex)
while [ "${#pin_block}" -lt 16 ]; do pin_block="${pin_block}FF"; done
vid_hex=$(printf '%s' "$VERIFIER_ID" | hex)
printf -v vid_len '%02X' $((${#vid_hex} / 2))
login_data="0120${challenge}02${vid_len}${vid_hex}"
printf -v login_lc '%02X' $((${#login_data} / 2))
apdus=(
    "00A4040008${AID}00"       # SELECT the applet
    "0020008108${pin_block}"   # VERIFY PIN
    "80100000${login_lc}${login_data}00" # LOGIN OTP {01 challenge, 02 verifier id}
    "00CADF0200"               # GET DATA next counter
)
printf '%s\n' "${apdus[@]}" | scriptor -r "$READER" >"$DEMO_DIR/scriptor.out" 2>&1 \
    || die "scriptor failed: $(cat "$DEMO_DIR/scriptor.out")"
# One line per answer: scriptor wraps long answers and ends each with " : meaning".
answers=$(awk '
    /^< / { ans = substr($0, 3); open = 1 }
    !/^< / && open { ans = ans " " $0 }
    open && /:/ { sub(/ *:.*/, "", ans); print ans; open = 0 }
' "$DEMO_DIR/scriptor.out")
[ "$(printf '%s\n' "$answers" | wc -l)" -eq 4 ] || die "unexpected scriptor output: $DEMO_DIR/scriptor.out"
sw() { printf '%s\n' "$answers" | sed -n "${1}p" | awk '{ print $(NF-1) $NF }'; }
for i in 1 2 3 4; do
    printf '  %-10s -> SW %s\n' "$(echo SELECT VERIFY LOGIN-OTP GET-DATA | cut -d' ' -f"$i")" "$(sw "$i")"
done
[ "$(sw 1)" = 9000 ] || die "SELECT answered $(sw 1)"
[ "$(sw 2)" = 9000 ] || die "VERIFY answered $(sw 2)"
[ "$(sw 3)" = 9000 ] || die "LOGIN OTP answered $(sw 3)"
read -r -a otp_answer <<<"$(printf '%s\n' "$answers" | sed -n 3p)"
# 03 08 <counter: 8 bytes> 04 08 <code: 8 ASCII digits> 90 00
[ "${otp_answer[0]}${otp_answer[1]}${otp_answer[10]}${otp_answer[11]}" = 03080408 ] \
    || die "unexpected LOGIN OTP answer layout"
counter=$((16#$(printf '%s' "${otp_answer[@]:2:8}")))
otp=""
for b in "${otp_answer[@]:12:8}"; do otp+=$(printf "\\x$b"); done

step "the card's OTP"
printf 'card %s, counter %s, challenge %s..., verifier id %s\n' "$SERIAL" "$counter" "${challenge:0:16}" "$VERIFIER_ID"
printf 'OTP: %s\n' "$otp"

step "check it against the PAYSIM-1 algorithm from the personalization output"
"$BIN/bank-tools" card check-otp --token "$DEMO_DIR/token.json" --counter "$counter" \
    --challenge "$challenge" --verifier-id "$VERIFIER_ID" --otp "$otp"

printf '\ndemo: done. Files in %s (card state, admin key, token file, logs).\n' "$DEMO_DIR"
