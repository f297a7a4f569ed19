#!/usr/bin/env bash
# The README's first command: builds bpftime and runs the xdp-counter demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
cargo build --release --workspace
echo "demo: the xdp-counter demo needs the supervisor and data plane, which are not complete yet."
echo "demo: built: target/release/bpftime-run, target/release/bpftime"
