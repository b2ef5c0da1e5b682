#!/usr/bin/env bash
# Full build of 1,000 / 5,000 / 10,000 circuits over 4 queues through lqos-tc (netlink) vs the
# same plan through `tc -batch`, and an incremental 1 % change vs the full build.
# Needs root; the benchmark makes its own network namespace and deletes it.
# Usage: crates/lqos-tc/bench/tc_build.sh [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lqos-tc --example tc_bench
exec target/release/examples/tc_bench "$@"
