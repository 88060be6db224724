#!/usr/bin/env bash
# Measures the window an exclusive card connection closes: the e2e test pin_state kills a
# client that holds a verified PIN inside its transaction and checks that the next client
# finds the card reset. Run RUNS times with the holder connected shared (as the bridge did
# before) and RUNS times exclusive (as the bridge does now); prints the failures of each.
# Needs pcscd with vpcd (`bash scripts/setup.sh` as root).
#   bash scripts/pin-window.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
find_cargo
runs=${1:-50}
cargo test -q -p e2e-tests --test e2e --no-run 2>/dev/null
for mode in shared exclusive; do
    fails=0
    why=""
    for _ in $(seq 1 "$runs"); do
        if [[ $mode == shared ]]; then export PAYSIM_PIN_HOLDER_SHARED=1; else unset PAYSIM_PIN_HOLDER_SHARED; fi
        if ! out=$(cargo test -q -p e2e-tests --test e2e -- pin_state 2>&1); then
            fails=$((fails + 1))
            msg=$(grep -m1 -A1 'panicked' <<<"$out" | tail -1)
            why+=${msg:-"(no panic message: see cargo test -p e2e-tests --test e2e -- pin_state)"}$'\n'
        fi
    done
    echo "pin-window: holder $mode: $fails of $runs runs failed"
    if [[ -n $why ]]; then sort <<<"$why" | uniq -c | sed 's/^/pin-window:   /'; fi
done
