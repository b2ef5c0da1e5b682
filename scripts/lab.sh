#!/usr/bin/env bash
# The main job: build lqos and run the lab (namespaces with subscribers shaped by lqosd,
# GUI on :9123, traffic generated) until Ctrl-C. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --bins
exec ./target/release/lqos-lab run --subscribers "${LQOS_LAB_SUBSCRIBERS:-8}" "$@"
