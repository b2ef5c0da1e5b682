#!/usr/bin/env bash
# One circuit's queue statistics (lqosd's CircuitQueue): class get + leaf-qdisc get addressed
# by the parent class, against a qdisc dump of the interface filtered by parent, on a tree of
# N circuits (default 10,000). Needs root; makes and deletes its own network namespace.
# Usage: sudo bash bench/queue_bench.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lqos-tc --example queue_bench
exec target/release/examples/queue_bench "$@"
