#!/bin/sh
# Browser tests of the lqos GUI in headless Chromium (Debian package) via playwright-core.
# Without LQOS_URL it starts the web_demo example (demo backend, 2,000 circuits) on
# 127.0.0.1:19123; with LQOS_URL (+ LQOS_USER, LQOS_PASSWORD, LQOS_CIRCUIT) it tests that
# server, e.g. lqosd in the lab. Screenshots go to $ARTIFACTS (default artifacts/screenshots
# at the workspace root).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
export ARTIFACTS="${ARTIFACTS:-$root/artifacts/screenshots}"

if ! command -v chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm install --no-audit --no-fund)
fi

demo_pid=""
cleanup() { if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

if [ -z "${LQOS_URL:-}" ]; then
    (cd "$root" && cargo build --release -p lqos-web --example web_demo)
    "$root/target/release/examples/web_demo" --listen 127.0.0.1:19123 --circuits 2000 \
        --user admin:admin-password:admin --dir "${TMPDIR:-/tmp}/lqos-browser-demo" \
        > "${TMPDIR:-/tmp}/lqos-browser-demo.log" 2>&1 &
    demo_pid=$!
    export LQOS_URL=http://127.0.0.1:19123
    export LQOS_USERS_FILE="${TMPDIR:-/tmp}/lqos-browser-demo/lqusers.toml"
    i=0
    until curl -fsS "$LQOS_URL/api/v1/health" >/dev/null 2>&1; do
        i=$((i + 1)); [ "$i" -lt 100 ] || { echo "web_demo did not start"; exit 1; }
        sleep 0.2
    done
fi
cd "$here" && node browser.mjs
