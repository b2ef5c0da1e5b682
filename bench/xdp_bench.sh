#!/bin/sh
# ns/packet of the lqos XDP program vs an empty XDP program (BPF_PROG_TEST_RUN, same run).
# Needs root. Usage: bench/xdp_bench.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q -p lqos-bpf --example xdp_bench
exec ./target/release/examples/xdp_bench
