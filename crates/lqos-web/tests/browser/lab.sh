#!/bin/sh
# Browser test against the real lqos_web + lqosd in the namespace lab: builds the lab (4 subscribers),
# creates a web admin with lqusers, runs bounded iperf3 traffic to subscriber 1 while headless
# Chromium (inside the shaper namespace, where lqos_web listens on :9123) logs in, watches the
# dashboard numbers change, opens circuit c1, edits its rate and sees it applied.
# Screenshots go to $ARTIFACTS (default artifacts/screenshots-lab). Needs root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
export ARTIFACTS="${ARTIFACTS:-$root/artifacts/screenshots-lab}"
dir="${TMPDIR:-/tmp}/lqos-browser-lab"
prefix=lqbr
bin="$root/target/debug"

if ! command -v chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm install --no-audit --no-fund)
fi
(cd "$root" && cargo build -q --bins)

cleanup() {
    [ -n "${traffic_pid:-}" ] && kill "$traffic_pid" 2>/dev/null || true
    "$bin/lqos-lab" --prefix "$prefix" --dir "$dir" down >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

"$bin/lqos-lab" --prefix "$prefix" --dir "$dir" up --subscribers 4 >/dev/null
printf 'admin-password\n' | "$bin/lqusers" --file "$dir/lqusers.toml" add -u admin -r admin --password-stdin
# Bounded traffic to subscriber 1 (10 Mbit/s plan) for the dashboard and circuit charts.
(
    timeout 100 nsenter --net=/run/netns/$prefix-sub iperf3 -s -B 198.18.1.1 -p 5299 >/dev/null 2>&1 &
    sleep 1
    timeout 95 nsenter --net=/run/netns/$prefix-inet iperf3 -c 198.18.1.1 -p 5299 -t 90 >/dev/null 2>&1 || true
) &
traffic_pid=$!
cd "$here"
nsenter --net=/run/netns/$prefix-shaper env LQOS_URL=http://127.0.0.1:9123 LQOS_USER=admin \
    LQOS_PASSWORD=admin-password LQOS_CIRCUIT=c1 ARTIFACTS="$ARTIFACTS" timeout 300 node browser.mjs
