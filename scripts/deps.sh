#!/usr/bin/env bash
# Installs what lqos needs to build and run on a fresh Debian machine (idempotent).
set -euo pipefail
need=()
command -v clang >/dev/null || need+=(clang)
command -v llvm-strip >/dev/null || need+=(llvm)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ping >/dev/null || need+=(iputils-ping)
command -v nsenter >/dev/null || need+=(util-linux)
if [ "${LQOS_WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || need+=(chromium chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# promtool (`check metrics` on /metrics) and a real Prometheus server for the lab scrape test:
# Debian's prometheus package ships both. Without recommends (no node exporter), and never
# fatal: the tests that need them say "skipped" when they are missing.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "installing: prometheus"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } ||
    echo "warning: could not install prometheus; the promtool and Prometheus scrape tests will skip"
fi
# bpffs: lqosd mounts it itself; tests that pin maps expect it too.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf || echo "warning: could not mount bpffs on /sys/fs/bpf"
fi
