#!/usr/bin/env bash
# The test command of the README: installs prerequisites, builds everything, runs
# every test (privileged ones included when run as root) and prints the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
# The real-client tests run the bpftime-run and bpftime binaries: build them first
# (a test run builds test targets, not the binaries of other packages).
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
