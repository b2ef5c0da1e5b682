#!/usr/bin/env bash
# Web load test: a real lqos_web (unprivileged, HTTPS with its self-signed certificate) in
# front of a real lqosd over the bus, with N circuits applied (default 10000; 16 APs under 4
# sites) in a network namespace, and a history store seeded with 90 days of points for the
# first SEED_CIRCUITS circuits (default 1000) and every node (crates/lqos-history example
# seed_history; the other circuits get the 1 s points lqosd writes during the run).
# CLIENTS concurrent clients (default 200; crates/lqos-web example web_load) each log in once
# from their own 127.0.0.x address, then mix live queries (circuit list, circuit, top, nodes)
# and history queries (every range, circuits and nodes) for SECS seconds (default 60): once as
# a closed loop (each client asks again as soon as it is answered: the server's capacity) and
# once with THINK_MS (default 1000) between one client's requests (200 GUI users polling).
# Prints requests/s, p50/p90/p99/max per request kind and overall, errors and 429s, and the
# CPU of lqosd and lqos_web over each window. Never fails on time. Needs root.
# PERF_OUT=<file>: also record a CPU profile of lqosd and lqos_web (perf, call graphs) during
# the closed-loop run and write its report there.
# Usage: bench/web_load.sh [circuits]     PROFILE=debug for an unoptimised build.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROFILE=${PROFILE:-release}
. bench/lqosd_ns.sh
N=${1:-10000}
CLIENTS=${CLIENTS:-200}
SECS=${SECS:-60}
THINK_MS=${THINK_MS:-1000}
SEED_CIRCUITS=${SEED_CIRCUITS:-1000}
SEED_DAYS=${SEED_DAYS:-90}
export QUEUE_MODE=${QUEUE_MODE:-shape}
WEB_UID=65534
WEB_PID=

flag=
[ "$PROFILE" = release ] && flag=--release
CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0} CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} \
    cargo build -q $flag -p lqosd -p libreqos -p lqos-web -p lqusers
CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0} CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} \
    cargo build -q $flag -p lqos-web --example web_load
CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0} CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} \
    cargo build -q $flag -p lqos-history --example seed_history
BIN=target/$PROFILE

cleanup() {
    if [ -n "$WEB_PID" ]; then
        kill -TERM "$WEB_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$WEB_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$WEB_PID" 2>/dev/null || true
    fi
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_netns
ip -n "$BENCH_NS" link set lo up
bench_inputs "$N"
sed -i 's|^disable_webserver = true|webserver_listen = "127.0.0.1:9123"|' "$BENCH_DIR/lqos.conf"
nodes=$(for s in 1 2 3 4; do printf 'Site_%d,' "$s"; for a in 1 2 3 4; do printf 'AP_%d_%d,' "$s" "$a"; done; done)
nodes=${nodes%,}

echo "== seeding history: $SEED_CIRCUITS circuits + 20 nodes, $SEED_DAYS days"
"$BIN/examples/seed_history" --file "$BENCH_DIR/state/history.redb" --circuits "$SEED_CIRCUITS" \
    --nodes "$nodes" --days "$SEED_DAYS"

echo "== lqosd: applying $N circuits ($QUEUE_MODE)"
t0=$(date +%s)
bench_start_lqosd LQOS_BUS_ADMIN_GIDS=$WEB_UID LQOS_MAX_SLOTS=$((N + N / 4 + 2))
bench_reload || { cat "$BENCH_DIR/reload.out" >&2; tail -20 "$BENCH_DIR/lqosd.log" >&2; exit 1; }
echo "applied in $(($(date +%s) - t0)) s"

# lqos_web as an unprivileged user, as in production (user lqos; here nobody).
printf 'admin-password\n' | "$BIN/lqusers" --file "$BENCH_DIR/lqusers.toml" add -u admin -r read-only --password-stdin >/dev/null
mkdir -p "$BENCH_DIR/state/web"
chown "$WEB_UID:$WEB_UID" "$BENCH_DIR/lqusers.toml" "$BENCH_DIR/state/web"
chgrp "$WEB_UID" "$BENCH_DIR/bus"
nsenter --net=/run/netns/"$BENCH_NS" setpriv --reuid=$WEB_UID --regid=$WEB_UID --clear-groups \
    --no-new-privs -- env LQOS_BUS="$BENCH_DIR/bus" RUST_LOG=warn,lqos_web=info \
    "$BIN/lqos_web" --config "$BENCH_DIR/lqos.conf" >"$BENCH_DIR/lqos_web.log" 2>&1 </dev/null &
WEB_PID=$!
for _ in $(seq 1 300); do
    grep -q "web server listening" "$BENCH_DIR/lqos_web.log" 2>/dev/null && break
    kill -0 "$WEB_PID" 2>/dev/null || { cat "$BENCH_DIR/lqos_web.log"; exit 1; }
    sleep 0.1
done
# Let lqosd write a few ticks of 1 s history for every circuit first.
sleep 5
echo "== history file: $(du -m "$BENCH_DIR/state/history.redb" | cut -f1) MiB"

run() { # THINK_MS
    nsenter --net=/run/netns/"$BENCH_NS" "$BIN/examples/web_load" --url https://127.0.0.1:9123 \
        --user admin --password admin-password --clients "$CLIENTS" --seconds "$SECS" \
        --think-ms "$1" --circuits "$N" --history-circuits "$SEED_CIRCUITS" --nodes "$nodes" \
        --pid "lqosd=$LQOSD_PID" --pid "lqos_web=$WEB_PID" || echo "(some requests failed, see above)"
}
echo "== closed loop: $CLIENTS clients, ${SECS} s"
perf_pid=
if [ -n "${PERF_OUT:-}" ]; then
    perf record -q -F 99 -g -p "$LQOSD_PID,$WEB_PID" -o "$BENCH_DIR/perf.data" -- sleep $((SECS + 15)) >/dev/null 2>&1 &
    perf_pid=$!
fi
run 0
if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -i "$BENCH_DIR/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 >"$PERF_OUT" || true
    perf report -i "$BENCH_DIR/perf.data" --children --sort comm,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -80 >>"$PERF_OUT" || true
    echo "profile: $PERF_OUT"
fi
echo "== $CLIENTS clients with ${THINK_MS} ms between requests, ${SECS} s"
run "$THINK_MS"
echo "== lqos_web warnings/errors:"
grep -ciE "warn|error" "$BENCH_DIR/lqos_web.log" || true
grep -iE "warn|error" "$BENCH_DIR/lqos_web.log" | cut -c1-300 | sort | uniq -c | sort -rn | head -5 || true
echo "== lqosd warnings/errors:"
grep -iE "warn|error" "$BENCH_DIR/lqosd.log" | cut -c1-300 | tail -5 || true
