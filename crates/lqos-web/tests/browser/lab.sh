#!/bin/sh
# Browser test against the real lqos_web + lqosd in the namespace lab, twice:
# 1. shape mode (4 subscribers, leaf "pfifo limit 100", iperf3 with cubic rather than this
#    kernel's default bbr, which keeps queues short): the queue fills and the RTT under load is
#    tens of milliseconds of queueing, so the few milliseconds iperf3's sender adds on its own
#    side of the shaper (its srtt starts when it sends a segment, lqos's access RTT when the
#    segment reaches the shaper; with bbr and ~16 ms RTT that was a steady -17 %) stay small
#    against what both measure: an iperf3 download to circuit c1 (10 Mbit/s plan, iperf3 -J)
#    runs while headless Chromium (inside the shaper namespace, where lqos_web listens on
#    :9123) logs in, watches the dashboard numbers change and walks every page with a
#    screenshot each (browser.mjs: the `walk` list); when iperf3 has finished, the access RTT
#    p50 the circuit page shows must be within 20 % of iperf3's own RTT (the sender's srtt,
#    median over its 1 s intervals; both cover the same run, as lqos's window is the last
#    60 s); then it opens circuit c1, edits its rate and sees it applied.
# 2. observe mode (lqos-lab up --queue-mode observe): the same walk under an iperf3 download,
#    and the circuit page must show an RTT (measured, nothing shaped).
# Screenshots go to $ARTIFACTS (default artifacts/screenshots-lab) and $ARTIFACTS-observe.
# Needs root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
export ARTIFACTS="${ARTIFACTS:-$root/artifacts/screenshots-lab}"
dir="${TMPDIR:-/tmp}/lqos-browser-lab"
iperf_json="${TMPDIR:-/tmp}/lqos-browser-iperf.json"
prefix=lqbr
bin="$root/target/debug"

if ! command -v chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm install --no-audit --no-fund)
fi
(cd "$root" && cargo build -q --bins)

traffic_pid=""
cleanup() {
    [ -n "$traffic_pid" ] && kill "$traffic_pid" 2>/dev/null || true
    "$bin/lqos-lab" --prefix "$prefix" --dir "$dir" down >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# run MODE SQM SECONDS ARTIFACTS [ENV=VALUE...]: a lab in MODE with leaf SQM, a SECONDS-long
# iperf3 download to subscriber 1 (c1) with its JSON in $iperf_json, and browser.mjs with the
# extra ENV.
run() {
    mode=$1 sqm=$2 secs=$3 shots=$4
    shift 4
    echo "== browser test in the lab, queue_mode = $mode, leaf $sqm"
    "$bin/lqos-lab" --prefix "$prefix" --dir "$dir" up --subscribers 4 --queue-mode "$mode" --sqm "$sqm" >/dev/null
    printf 'admin-password\n' | "$bin/lqusers" --file "$dir/lqusers.toml" add -u admin -r admin --password-stdin
    rm -f "$iperf_json" "$shots"/failure-*.png
    (
        timeout $((secs + 20)) nsenter --net=/run/netns/$prefix-sub iperf3 -s -1 -B 198.18.1.1 -p 5299 >/dev/null 2>&1 &
        sleep 1
        timeout $((secs + 15)) nsenter --net=/run/netns/$prefix-inet iperf3 -c 198.18.1.1 -p 5299 -t "$secs" -C cubic -J >"$iperf_json.part" 2>/dev/null || true
        mv "$iperf_json.part" "$iperf_json"
    ) &
    traffic_pid=$!
    status=0
    (cd "$here" && nsenter --net=/run/netns/$prefix-shaper env LQOS_URL=https://127.0.0.1:9123 LQOS_USER=admin \
        LQOS_PASSWORD=admin-password LQOS_CIRCUIT=c1 LQOS_IPERF_JSON="$iperf_json" ARTIFACTS="$shots" "$@" \
        timeout 240 node browser.mjs) || status=$?
    kill "$traffic_pid" 2>/dev/null || true
    wait "$traffic_pid" 2>/dev/null || true
    traffic_pid=""
    "$bin/lqos-lab" --prefix "$prefix" --dir "$dir" down >/dev/null 2>&1 || true
    return $status
}

run shape "pfifo limit 100" 40 "$ARTIFACTS"
run observe none 20 "$ARTIFACTS-observe" LQOS_WALK_ONLY=1 LQOS_RTT_COMPARE=0
