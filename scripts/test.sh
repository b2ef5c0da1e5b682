#!/usr/bin/env bash
# The test suite: installs what it needs, then runs every test of the workspace. Kernel tests
# (network namespaces, XDP, tc) need root and run one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
export LQOS_WITH_BROWSER=1
bash scripts/deps.sh
export CARGO_TERM_COLOR=never
cargo build --workspace --all-targets --bins
# Every test binary serially: kernel tests share interfaces, pins and the CPU.
cargo test --workspace --no-fail-fast -- --test-threads=1
if [ -x crates/lqosd/tests/browser/run.sh ]; then
  bash crates/lqosd/tests/browser/run.sh
fi
