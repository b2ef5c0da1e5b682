#!/usr/bin/env bash
# Builds the Debian package of lqos with cargo-deb: target/debian/lqos_<version>_<arch>.deb
#
#   bash packaging/build-deb.sh [--deb-version V] [--no-build]
#
# 1. release build of the shipped binaries (skipped with --no-build: reuse target/release)
# 2. lqos-gen-docs writes man pages and shell completions from the clap definitions
# 3. stages the packaged /etc/lqos.conf (lqos.example.conf with the /var/lib/lqos paths and
#    CHANGE-ME interface placeholders), the systemd units and the sysusers file
# 4. cargo deb -p lqos-pkg (metadata in crates/lqos-pkg/Cargo.toml, maintainer scripts in
#    packaging/debian/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# The packaged binaries are stripped: no debug info in this release build (faster, smaller).
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-0}"

DEB_VERSION=""
BUILD=yes
# Where the binaries come from (release by default; LQOS_DEB_BIN_DIR=target/debug for a quick
# trial of the packaging itself).
BIN_DIR=${LQOS_DEB_BIN_DIR:-target/release}
while [ $# -gt 0 ]; do
    case "$1" in
    --deb-version) DEB_VERSION="$2"; shift 2 ;;
    --no-build) BUILD=no; shift ;;
    *) echo "usage: $0 [--deb-version V] [--no-build]" >&2; exit 2 ;;
    esac
done

if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install cargo-deb)"
    cargo install --locked cargo-deb
fi

BINS=(lqosd lqos_web lqos_scheduler libreqos lqtop lqusers)
if [ "$BUILD" = yes ] && [ "$BIN_DIR" = target/release ]; then
    echo "== release build: ${BINS[*]}"
    cargo build --release -p lqosd -p lqos-web -p lqos-scheduler -p libreqos -p lqtop -p lqusers
fi
for b in "${BINS[@]}"; do
    [ -x "$BIN_DIR/$b" ] || { echo "missing $BIN_DIR/$b (run without --no-build)" >&2; exit 1; }
done

STAGE=$ROOT/target/deb-staging
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/etc" "$STAGE/units" "$STAGE/sysusers" "$STAGE/gen"
for b in "${BINS[@]}"; do
    # Stripped copies (the release profile keeps line tables for backtraces in target/).
    strip --strip-debug -o "$STAGE/bin/$b" "$BIN_DIR/$b"
done

echo "== man pages and completions (lqos-gen-docs)"
cargo run --quiet -p lqos-pkg --bin lqos-gen-docs -- "$STAGE/gen"
gzip -9n "$STAGE"/gen/man/man1/*.1

# The package keeps its state under /var/lib/lqos (Debian FHS) instead of LibreQoS's
# /opt/libreqos; units, sysusers and the conffile are rewritten the same way.
paths() {
    sed -e 's#/opt/libreqos/src#/var/lib/lqos/inputs#g' \
        -e 's#/opt/libreqos/state#/var/lib/lqos/state#g' \
        -e 's#/opt/libreqos#/var/lib/lqos#g' "$@"
}

echo "== packaged /etc/lqos.conf"
paths packaging/lqos.example.conf \
    | sed -e 's#^to_internet = ".*"#to_internet = "CHANGE-ME-wan"#' \
          -e 's#^to_network = ".*"#to_network = "CHANGE-ME-lan"#' \
          -e '1i # Installed by the lqos package. lqosd will not start until to_internet and\n# to_network (or [single_interface]) name real interfaces: set them, run `lqosd --check`,\n# then `systemctl enable --now lqosd lqos_web lqos_scheduler`.' \
    > "$STAGE/etc/lqos.conf"
for want in 'lqos_directory = "/var/lib/lqos/inputs"' 'state_directory = "/var/lib/lqos/state"' \
            'to_internet = "CHANGE-ME-wan"' 'to_network = "CHANGE-ME-lan"'; do
    grep -qxF "$want" "$STAGE/etc/lqos.conf" || { echo "packaged lqos.conf lacks: $want" >&2; exit 1; }
done

echo "== units and sysusers"
for u in packaging/*.service; do
    paths "$u" > "$STAGE/units/$(basename "$u")"
done
if [ -f packaging/lqos.sysusers.conf ]; then
    paths packaging/lqos.sysusers.conf > "$STAGE/sysusers/lqos.conf"
else
    cp packaging/debian/lqos.sysusers.conf "$STAGE/sysusers/lqos.conf"
fi

echo "== cargo deb"
args=(-p lqos-pkg --no-build --no-strip)
[ -n "$DEB_VERSION" ] && args+=(--deb-version "$DEB_VERSION")
mkdir -p target/debian
cargo deb "${args[@]}" -o target/debian/ 2>&1 | tail -n 3
ls -1t target/debian/lqos_*.deb | head -n 1
