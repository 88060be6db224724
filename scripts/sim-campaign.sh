#!/usr/bin/env bash
# The seeded simulation at full length: SEEDS seeds (default 10,000) of STEPS steps (default
# 200) from seed FROM (default 1), card core, bridge card layer and bank in one process under
# injected card tears, network faults, storage faults and attacks, every invariant checked
# after every step (sim/src/lib.rs says which). CI runs 500 seeds of 60 steps
# (sim/tests/seeds.rs). A failing seed prints the command that replays it:
#   cargo run -p paysim-sim --release -- --seed N --trace
#   bash scripts/sim-campaign.sh [SEEDS] [STEPS] [FROM]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
find_cargo
cargo build --release -q -p paysim-sim
exec target/release/paysim-sim --seeds "${1:-10000}" --steps "${2:-200}" --from "${3:-1}"
