#!/usr/bin/env bash
# History writer benchmark: CPU of lqos-history's writer at N circuits (default 10000) per
# simulated 1 s tick, against the same loop without the writer in the same run, and the disk
# use it leaves, extrapolated per 1,000 circuits per day from the measured bytes per point.
# Never fails on time. Optimised build (release) unless PROFILE=dev.
# Usage: bench/history_bench.sh [circuits] [simulated_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
flag=--release
[ "$profile" = dev ] && flag=
export HISTORY_BENCH_CIRCUITS=${1:-10000}
export HISTORY_BENCH_SECS=${2:-1800}
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo test $flag -p lqos-history --test bench -- \
    --ignored --nocapture --test-threads=1 2>&1 | grep -v '^\(running\|test result\|$\)'
