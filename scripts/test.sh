#!/usr/bin/env bash
# Runs every test: brings up pcscd with vpcd (installing what is missing), then the whole
# workspace test suite, end-to-end tests included. Exits non-zero if anything fails.
#   bash scripts/test.sh     (as root; from another account: sudo bash scripts/test.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

bash scripts/setup.sh
find_cargo
# The card core (card-applet without features) is #![no_std] + alloc so that it could run
# on a microcontroller. Only the host target is installed here, so the check is twofold:
# the build proves the core's own code needs no std, and the feature list of every crate in
# that build ({f}: the features cargo resolved for it) proves no `std` feature is switched on.
cargo build -p card-applet --no-default-features --lib
core_features=$(cargo tree -p card-applet --no-default-features --edges normal --prefix none --format '{p} [{f}]')
if grep -E '[[,]std[],]' <<<"$core_features"; then
    echo "error: the no_std card core switches on the std feature of the crates above" >&2
    exit 1
fi
exec cargo test --workspace --no-fail-fast
