#!/usr/bin/env bash
# Idle CPU of lqosd's stats loop: applies N circuits (default 10000 and 100000; 16 APs under 4
# sites, one IPv4 + one IPv6 each) in a namespace with two 4-queue veths, lets the first ticks
# settle, then samples utime+stime from /proc/<pid>/stat over WINDOW seconds (default 20) with
# no traffic and no client, and prints the share of one core. The same run measures the
# stats loop with HTB class dumps every tick (LQOS_STATS_EAGER=1, the behaviour before the
# on-demand change) as the baseline, and prints eager / on-demand. Never fails on time.
# Sizes from OBSERVE_FROM (default 50000) up run in queue_mode = "observe": building a
# 100k-class HTB tree on this 2-CPU veth lab takes tens of minutes (creation is quadratic per
# HTB, see ARCHITECTURE.md), and the on-demand loop reads no classes when nobody looks, so the
# idle cost is the slot-counter read either way; no eager baseline there. Needs root.
# Usage: bench/lqosd_idle.sh [N...]      PROFILE=release for an optimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lqosd_ns.sh
bench_build
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
WINDOW=${WINDOW:-20}
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(10000 100000)
hz=$(getconf CLK_TCK)
measure() { # N MODE-ENV... -> prints % of a core
    local n=$1
    shift
    # A fresh namespace and state each time: both modes pay the same first apply.
    bench_cleanup >&2
    LQOSD_PID=
    bench_netns >&2
    bench_inputs "$n"
    # The tables a restarted lqosd sizes from its stored plan of n circuits (this fresh one
    # has none stored): slots, and 8 flow entries per circuit (65 536 to 2^20).
    local room=1
    while [ "$room" -lt $(( n + n / 4 + 1 )) ]; do room=$(( room * 2 )); done
    local flows=$(( room * 8 ))
    [ "$flows" -lt 65536 ] && flows=65536
    [ "$flows" -gt 1048576 ] && flows=1048576
    bench_start_lqosd "$@" LQOS_MAX_SLOTS=$(( n + n / 4 + 2 )) LQOS_MAX_FLOWS=$flows >&2
    bench_reload || { cat "$BENCH_DIR/reload.out" >&2; tail -20 "$BENCH_DIR/lqosd.log" >&2; exit 1; }
    sleep 3
    local c0 c1
    c0=$(bench_cpu_ticks "$LQOSD_PID")
    sleep "$WINDOW"
    c1=$(bench_cpu_ticks "$LQOSD_PID")
    # measure runs in $( ): LQOSD_PID lives only in this subshell, so stop lqosd here (the
    # EXIT trap of the script never sees it; before, every measured lqosd kept running).
    bench_stop_lqosd >&2
    awk -v d=$((c1 - c0)) -v hz="$hz" -v w="$WINDOW" 'BEGIN { printf "%.2f", 100 * d / hz / w }'
}
printf '%-8s %14s %14s %8s %s\n' circuits eager_%core ondemand_%core ratio mode
for n in "${sizes[@]}"; do
    if [ "$n" -ge "${OBSERVE_FROM:-50000}" ]; then
        export QUEUE_MODE=observe
        eager=-
    else
        export QUEUE_MODE=shape
        eager=$(measure "$n" LQOS_STATS_EAGER=1)
    fi
    lazy=$(measure "$n" LQOS_STATS_EAGER=0)
    ratio=$(awk -v a="$eager" -v b="$lazy" 'BEGIN { if (a == "-") print "-"; else if (b > 0) printf "%.1f", a / b; else print "inf" }')
    printf '%-8s %14s %14s %8s %s\n' "$n" "$eager" "$lazy" "$ratio" "$QUEUE_MODE"
done
