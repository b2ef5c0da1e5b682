#!/usr/bin/env bash
# History writer benchmark: CPU of lqos-history's writer at N circuits (default 10000) per
# simulated 1 s tick, against the same loop without the writer in the same run, and the disk
# use it leaves, extrapolated per 1,000 circuits per day from the measured bytes per point.
# Never fails on time. Optimised build (release) unless PROFILE=dev.
# `bench/history_bench.sh worst [circuits]`: instead, the cost of a worst-first ranking over
# the 1h and 24h windows (one summarize scan + rank) against one query per series.
# Usage: bench/history_bench.sh [circuits] [simulated_seconds] | worst [circuits]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
flag=--release
[ "$profile" = dev ] && flag=
filter=writer_cpu_and_disk
if [ "${1:-}" = worst ]; then
    filter=worst_ranking_over_history_windows
    shift
fi
export HISTORY_BENCH_CIRCUITS=${1:-10000}
export HISTORY_BENCH_SECS=${2:-1800}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo test $flag -p lqos-history --test bench -- \
    --ignored --nocapture --test-threads=1 --exact "$filter" 2>&1 | grep -v '^\(running\|test result\|$\)'
