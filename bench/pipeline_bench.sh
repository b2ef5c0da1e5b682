#!/usr/bin/env bash
# Issue "shaping core" benchmark: parse + validate + plan + re-plan + diff for 1k/10k/100k
# circuits (10/100/1000 sites), one process per size so each peak RSS is its own.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lqos-plan --features testkit --example pipeline_bench
for spec in "1000 10" "10000 100" "100000 1000"; do
  ./target/release/examples/pipeline_bench $spec
done
