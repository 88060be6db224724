#!/usr/bin/env bash
# Runs every test: brings up pcscd with vpcd (installing what is missing), then the whole
# workspace test suite, end-to-end tests included. Exits non-zero if anything fails.
#   bash scripts/test.sh     (as root; from another account: sudo bash scripts/test.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

bash scripts/setup.sh
find_cargo
exec cargo test --workspace --no-fail-fast
