#!/bin/sh
# ns/packet of the lqos XDP program vs an empty XDP program (BPF_PROG_TEST_RUN, same run):
# frame kinds (TCP with/without timestamps, UDP, IPv6, VLAN) × 12 and 100 000 subscribers,
# a working set larger than the per-CPU cache, with and without flow/RTT tracking.
# Needs root. Kernel benches share the machine: run it as
#   flock /tmp/lqos-kernel.lock bench/xdp_bench.sh
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q -p lqos-bpf --example xdp_bench
exec ./target/release/examples/xdp_bench
