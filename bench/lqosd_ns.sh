# Shared pieces of the lqosd benchmarks (sourced, not run): a network namespace with two
# 4-queue veth pairs bridged together, generated inputs for N circuits, lqosd started inside
# the namespace with its own bus, pins and state, and a cleanup trap that removes all of it.
#
# Variables the caller may set: PROFILE (debug|release, default debug), TOPO (aps: 4 sites x 4
# APs, the default; lab: the lab's two sites), BENCH_NS (namespace
# name), BENCH_DIR (work directory), SQM (default_sqm), QUEUE_MODE (shape|observe). Needs root, ip, unshare, nsenter.

PROFILE=${PROFILE:-debug}
BENCH_NS=${BENCH_NS:-lqbench-$$}
BENCH_DIR=${BENCH_DIR:-/tmp/$BENCH_NS}
BENCH_PINS=/sys/fs/bpf/$BENCH_NS
LQOSD_PID=

bench_build() {
    local flag=
    [ "$PROFILE" = release ] && flag=--release
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build -q $flag -p lqosd -p libreqos
    BIN=target/$PROFILE
}

bench_cleanup() {
    bench_stop_lqosd
    ip netns del "$BENCH_NS" 2>/dev/null || true
    rm -rf "$BENCH_PINS" 2>/dev/null || true
    rm -rf "$BENCH_DIR"
}

bench_stop_lqosd() {
    if [ -n "$LQOSD_PID" ] && kill -0 "$LQOSD_PID" 2>/dev/null; then
        kill -TERM "$LQOSD_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$LQOSD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$LQOSD_PID" 2>/dev/null || true
    fi
    LQOSD_PID=
}

# bench_netns: the namespace, veth pairs ethI (to_internet) / ethN (to_network), a bridge.
bench_netns() {
    ip netns del "$BENCH_NS" 2>/dev/null || true
    ip netns add "$BENCH_NS"
    local n="ip -n $BENCH_NS"
    for d in ethI ethN; do
        $n link add "$d" numtxqueues 4 numrxqueues 4 type veth peer name "${d}p" \
            numtxqueues 4 numrxqueues 4
        $n link set "$d" up
        $n link set "${d}p" up
    done
    $n link add br0 type bridge
    $n link set ethI master br0
    $n link set ethN master br0
    $n link set br0 up
}

# bench_inputs N: lqos.conf, network.json (4 sites x 4 APs) and N circuits, each with one
# IPv4 and one IPv6 address, spread over the 16 APs.
bench_inputs() {
    local n=$1
    mkdir -p "$BENCH_DIR/state"
    cat >"$BENCH_DIR/lqos.conf" <<EOF
version = "1.5"
lqos_directory = "$BENCH_DIR"
state_directory = "$BENCH_DIR/state"
node_id = "bench"
node_name = "bench"
queue_check_period_ms = 1000
disable_webserver = true

[bridge]
use_xdp_bridge = false
to_internet = "ethI"
to_network = "ethN"

[queues]
default_sqm = "${SQM:-none}"
queue_mode = "${QUEUE_MODE:-shape}"
downlink_bandwidth_mbps = 100000
uplink_bandwidth_mbps = 100000
generated_pn_download_mbps = 100000
generated_pn_upload_mbps = 100000
use_binpacking = false

[ip_ranges]
allow_subnets = ["100.64.0.0/10", "2001:db8::/32"]
ignore_subnets = []

[tuning]
stop_irq_balance = false
EOF
    if [ "${TOPO:-aps}" = lab ]; then
        # The lab's tree: two sites, one AP; circuits alternate between AP_A1 and Site_B.
        cat >"$BENCH_DIR/network.json" <<'EOF2'
{ "Site_A": { "downloadBandwidthMbps": 50000, "uploadBandwidthMbps": 50000, "type": "site",
    "children": { "AP_A1": { "downloadBandwidthMbps": 50000, "uploadBandwidthMbps": 50000, "type": "ap" } } },
  "Site_B": { "downloadBandwidthMbps": 50000, "uploadBandwidthMbps": 50000, "type": "site" } }
EOF2
    else
    {
        printf '{\n'
        for s in 1 2 3 4; do
            printf '  "Site_%d": { "downloadBandwidthMbps": 25000, "uploadBandwidthMbps": 25000, "type": "site", "children": {\n' "$s"
            for a in 1 2 3 4; do
                sep=,
                [ "$a" = 4 ] && sep=
                printf '    "AP_%d_%d": { "downloadBandwidthMbps": 10000, "uploadBandwidthMbps": 10000, "type": "ap" }%s\n' "$s" "$a" "$sep"
            done
            sep=,
            [ "$s" = 4 ] && sep=
            printf '  }}%s\n' "$sep"
        done
        printf '}\n'
    } >"$BENCH_DIR/network.json"
    fi
    awk -v n="$n" -v topo="${TOPO:-aps}" 'BEGIN {
        print "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,Parent Node ID,Anchor Node ID,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment"
        for (i = 0; i < n; i++) {
            a = i + 1
            ip4 = sprintf("100.%d.%d.%d", 64 + int(a / 65536), int(a / 256) % 256, a % 256)
            ip6 = sprintf("2001:db8:%x:%x::/64", int(a / 65536), a % 65536)
            ap = sprintf("AP_%d_%d", int(i / 4) % 4 + 1, i % 4 + 1)
            if (topo == "lab") ap = (i % 2 == 0) ? "AP_A1" : "Site_B"
            printf "c%d,Sub %d,d%d,Router %d,%s,,,,%s,%s,5,1,100,20,bench\n", i, i, i, i, ap, ip4, ip6
        }
    }' >"$BENCH_DIR/ShapedDevices.csv"
}

# bench_start_lqosd [ENV=VALUE...]: lqosd in the namespace (private mount namespace with the
# namespace's sysfs, bpffs bound back), logging to $BENCH_DIR/lqosd.log; waits for the bus.
bench_start_lqosd() {
    local wrapper='set -e; d=$(mktemp -d); mount --bind /sys/fs/bpf "$d"; mount -t sysfs sysfs /sys; mount --bind "$d" /sys/fs/bpf; exec "$@"'
    env "$@" LQOS_BUS="$BENCH_DIR/bus" LQOS_PIN_DIR="$BENCH_PINS" RUST_LOG="${RUST_LOG:-info}" \
        nsenter --net=/run/netns/"$BENCH_NS" unshare --mount --propagation private \
        sh -c "$wrapper" lqosd-wrapper "$BIN/lqosd" --config "$BENCH_DIR/lqos.conf" \
        >>"$BENCH_DIR/lqosd.log" 2>&1 </dev/null &
    LQOSD_PID=$!
    for _ in $(seq 1 300); do
        [ -S "$BENCH_DIR/bus" ] && return 0
        kill -0 "$LQOSD_PID" 2>/dev/null || { tail -20 "$BENCH_DIR/lqosd.log"; return 1; }
        sleep 0.1
    done
    echo "lqosd did not open its bus" >&2
    return 1
}

# bench_reload: asks lqosd to apply the inputs (libreqos waits for the answer).
bench_reload() {
    LQOS_BUS="$BENCH_DIR/bus" "$BIN/libreqos" --json --config "$BENCH_DIR/lqos.conf" >"$BENCH_DIR/reload.out" 2>&1
}

# bench_cpu_ticks PID: utime + stime of PID in clock ticks.
bench_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
