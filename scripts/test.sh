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
log=$(mktemp)
set +e
cargo test --workspace --no-fail-fast -- --test-threads=1 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The GUI in headless Chromium against the real lqosd in the lab (log in, live dashboard under
# iperf3 traffic, open a circuit, edit its rate and see it applied). Screenshots: artifacts/.
browser=0
sh crates/lqos-web/tests/browser/lab.sh || browser=1
passed=$(awk '/^test result:/ {sub(";","",$4); p+=$4} END {print p+0}' "$log")
failed=$(awk '/^test result:/ {sub(";","",$6); f+=$6} END {print f+0}' "$log")
echo "total: $((passed + 1 - browser)) passed, $((failed + browser)) failed"
[ "$status" -eq 0 ] && [ "$browser" -eq 0 ]
