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
# The GUI in headless Chromium against the real lqosd in the lab (log in, live dashboard under
# iperf3 traffic, open a circuit, edit its rate and see it applied). Screenshots: artifacts/.
sh crates/lqosd/tests/browser/lab.sh
echo "browser: 1 passed, 0 failed"
