#!/usr/bin/env bash
# The crash campaign at full length: the real bank-server under concurrent login and transfer
# flows, crashed (kill -9, abort before COMMIT, abort after COMMIT) CYCLES times on one
# database and checked after every crash (bank-server/tests/crash.rs says what is checked).
# CI runs 20 cycles as part of the test suite; this runs 200 by default and prints the figure.
#   bash scripts/crash-campaign.sh [CYCLES] [SEED]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
find_cargo
cycles=${1:-200}
export CRASH_CYCLES=$cycles
if [[ -n ${2:-} ]]; then
    export CRASH_SEED=$2
fi
cargo test --release -p bank-server --test crash -- --nocapture 2>&1 | grep -E '^crash campaign|panicked|test result'
