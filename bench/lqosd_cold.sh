#!/usr/bin/env bash
# Cold start of lqosd: the first apply of N circuits (default 10000; 16 APs under 4 sites, one
# IPv4 + one IPv6 each) on a fresh namespace with two 4-queue veths (both interfaces built).
# Prints the wall time of the Reload as libreqos sees it, lqosd's own phase times from its log
# (validate, plan, tc per interface, mappings), and the ratio of the whole apply to the time
# lqos-tc spent in the kernel for the same tree (1.0 = lqosd adds nothing). Never fails on
# time. Needs root.
# Usage: bench/lqosd_cold.sh [N...]      PROFILE=release for an optimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lqosd_ns.sh
bench_build
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(10000)
printf '%-8s %10s %10s %10s %12s %12s %10s %8s\n' circuits reload_ms validate plan tc_ms map_ms apply_ms ratio
for n in "${sizes[@]}"; do
    bench_cleanup
    LQOSD_PID=
    bench_netns
    bench_inputs "$n"
    bench_start_lqosd
    t0=$(date +%s%N)
    bench_reload || { cat "$BENCH_DIR/reload.out"; tail -20 "$BENCH_DIR/lqosd.log"; exit 1; }
    t1=$(date +%s%N)
    reload_ms=$(( (t1 - t0) / 1000000 ))
    log="$BENCH_DIR/lqosd.log"
    # Strip colour codes, then pull key=value fields from the log lines.
    field() { sed 's/\x1b\[[0-9;]*m//g' "$log" | awk -v m="$1" -v k="$2=" 'index($0, m) { for (i = 1; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) } END { print v }'; }
    tc_ms=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/applied change set/ { for (i = 1; i <= NF; i++) if ($i ~ /^total_ms=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }')
    map_ms=$(field "apply phases" map_ms); map_ms=${map_ms:--}
    apply_ms=$(field "reload applied" apply_ms)
    validate=$( (grep -o '"validate_ms": *[0-9]*' "$BENCH_DIR/reload.out" || true) | grep -o '[0-9]*$' || true)
    plan=$( (grep -o '"plan_ms": *[0-9]*' "$BENCH_DIR/reload.out" || true) | grep -o '[0-9]*$' || true)
    ratio=$(awk -v a="${apply_ms:-0}" -v t="$tc_ms" 'BEGIN { if (t > 0) printf "%.2f", a / t; else print "-" }')
    printf '%-8s %10s %10s %10s %12s %12s %10s %8s\n' "$n" "$reload_ms" "${validate:--}" "${plan:--}" "$tc_ms" "$map_ms" "${apply_ms:--}" "$ratio"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E "apply phases|reload applied" | tail -6 | sed 's/^/    /' || true
    bench_stop_lqosd
done
