#!/bin/sh
# ns/packet of the lqos XDP program vs an empty XDP program (BPF_PROG_TEST_RUN, same run):
# frame kinds (TCP with/without timestamps, UDP, IPv6, VLAN) × 12 and 100 000 subscribers,
# active sets of 8 192 and 32 768 addresses and a cold walk over the whole space, with and
# without flow/RTT tracking. Arguments go to the example (--only 100000:32768, --kind UDP,
# --repeat N, --runs N, --lean, --full). Needs root. Kernel benches share the machine: run
#   flock /tmp/lqos-kernel.lock bench/xdp_bench.sh
set -eu
cd "$(dirname "$0")/.."
CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" cargo build --release -q -p lqos-bpf --example xdp_bench
exec ./target/release/examples/xdp_bench "$@"
