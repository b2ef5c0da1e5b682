#!/usr/bin/env bash
# Package test: installs, upgrades, removes and purges the lqos .deb in a clean Debian 12 root.
#
#   sudo bash packaging/test-deb.sh            # builds the package first (packaging/build-deb.sh)
#   sudo LQOS_DEB_NO_BUILD=1 bash packaging/test-deb.sh   # reuse target/release binaries
#
# The Debian 12 (bookworm) minbase root is made once with debootstrap and cached in
# /var/cache/lqos-test/bookworm-root (LQOS_TEST_CACHE overrides the folder); every run works on
# an overlay of it that is thrown away. /proc, /sys and /dev are mounted into it and unmounted
# on exit, also on failure. Package scripts that could touch network interfaces run in a
# private network namespace (unshare --net), so the host's qdiscs are never seen.
# Where debootstrap cannot run (not root, no debootstrap, no archive), the test prints SKIP
# and exits 0. Not part of scripts/test.sh (it takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${LQOS_TEST_CACHE:-/var/cache/lqos-test}
BASE=$CACHE/bookworm-root
MIRROR=${LQOS_TEST_MIRROR:-http://deb.debian.org/debian}

skip() { echo "SKIP package test: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, mounts)"
command -v chroot >/dev/null || skip "chroot not found"
command -v unshare >/dev/null || skip "unshare not found"

if [ ! -x "$BASE/usr/bin/apt-get" ] || [ ! -e "$BASE/.lqos-base-ok" ]; then
    command -v debootstrap >/dev/null || skip "debootstrap is not installed (apt-get install debootstrap)"
    echo "== debootstrap bookworm minbase into $BASE (cached for later runs)"
    rm -rf "$BASE"
    mkdir -p "$CACHE"
    if ! debootstrap --variant=minbase --include=systemd,dbus bookworm "$BASE" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 5 "$CACHE/debootstrap.log"
        rm -rf "$BASE"
        skip "debootstrap failed (no access to Debian's archive?), log: $CACHE/debootstrap.log"
    fi
    touch "$BASE/.lqos-base-ok"
fi

# --- the packages: v1 as built, v2 the same files with a higher version ----------------------
WORK=$(mktemp -d /tmp/lqos-debtest.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ -z "${LQOS_DEB_NO_BUILD:-}" ]; then
    bash packaging/build-deb.sh --deb-version 0.1.0-1
else
    bash packaging/build-deb.sh --no-build --deb-version 0.1.0-1
fi
# (cargo-deb replaces older versions in target/debian: keep each one aside)
cp target/debian/lqos_0.1.0-1_*.deb "$WORK/"
bash packaging/build-deb.sh --no-build --deb-version 0.1.0-2 >/dev/null 2>&1
cp target/debian/lqos_0.1.0-2_*.deb "$WORK/"
V1=$(ls "$WORK"/lqos_0.1.0-1_*.deb)
V2=$(ls "$WORK"/lqos_0.1.0-2_*.deb)
dpkg -c "$V1" > target/debian/lqos.contents.txt

# --- a throw-away overlay of the cached root ---------------------------------------------------
M=$WORK/root
mkdir -p "$M" "$WORK/upper" "$WORK/work"
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
mnt() { mount "$@"; MOUNTS+=("${@: -1}"); }
if ! mnt -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/work" "$M"; then
    echo "(overlayfs unavailable: copying the base root)"
    cp -a "$BASE/." "$M/"
fi
mnt -t proc proc "$M/proc"
mnt --rbind /sys "$M/sys"
mnt --make-rslave "$M/sys"
mnt --bind /dev "$M/dev"
mnt --bind /dev/pts "$M/dev/pts"
cp /etc/resolv.conf "$M/etc/resolv.conf"
cp "$V1" "$V2" "$M/tmp/"
D1=/tmp/$(basename "$V1")
D2=/tmp/$(basename "$V2")

# inr: run in the root (host network, for apt); inx: also in a private network namespace.
inr() { chroot "$M" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
inx() { unshare --net chroot "$M" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

PASS=0
FAIL=0
SUMMARY=()
ok() { PASS=$((PASS + 1)); SUMMARY+=("ok    $1"); echo "ok    $1"; }
bad() { FAIL=$((FAIL + 1)); SUMMARY+=("FAIL  $1"); echo "FAIL  $1"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }
# stat_is PATH "owner:group mode"
stat_is() { [ "$(inr stat -c '%U:%G %a' "$1" 2>/dev/null)" = "$2" ]; }
LOG=$WORK/transcript.log

# --- install ---------------------------------------------------------------------------------
echo "== install $(basename "$V1") with apt-get (dependencies from Debian's archive)"
inr apt-get update -qq >"$LOG" 2>&1 || true
if inr apt-get install -y -q "$D1" >>"$LOG" 2>&1; then
    ok "install: apt-get install ./$(basename "$V1")"
else
    tail -n 30 "$LOG"
    bad "install: apt-get install ./$(basename "$V1")"
fi
grep -A4 "Nothing was enabled" "$LOG" | sed 's/^/      /' || true

for b in lqosd lqos_web lqos_scheduler libreqos lqtop lqusers; do
    check "file /usr/bin/$b root:root 755" stat_is "/usr/bin/$b" "root:root 755"
    check "man page $b.1.gz" inr test -s "/usr/share/man/man1/$b.1.gz"
    check "completions bash/zsh/fish for $b" inr sh -c "test -s /usr/share/bash-completion/completions/$b && test -s /usr/share/zsh/vendor-completions/_$b && test -s /usr/share/fish/vendor_completions.d/$b.fish"
done
for u in lqosd lqos_web lqos_scheduler; do
    check "unit $u.service installed" inr test -s "/usr/lib/systemd/system/$u.service"
    check "unit $u.service not enabled on install" inr sh -c "! test -e /etc/systemd/system/multi-user.target.wants/$u.service"
done
check "units use /var/lib/lqos, not /opt/libreqos" inr sh -c "! grep -q /opt/libreqos /usr/lib/systemd/system/*.service /etc/lqos.conf"
check "man lqosd documents --check" inr sh -c "zcat /usr/share/man/man1/lqosd.1.gz | grep -q 'check'"
check "docs README.md" inr test -s /usr/share/doc/lqos/README.md
check "docs copyright" inr test -s /usr/share/doc/lqos/copyright
if ls packaging/grafana/*.json >/dev/null 2>&1; then
    check "grafana dashboard /usr/share/lqos/grafana/lqos.json" inr test -s /usr/share/lqos/grafana/lqos.json
fi
check "user lqos (system, nologin)" inr sh -c 'getent passwd lqos | grep -q ":/usr/sbin/nologin$" && [ "$(id -u lqos)" -lt 1000 ]'
check "group lqos" inr getent group lqos
check "group lqos-admin has lqos" inr sh -c 'getent group lqos-admin | grep -q "lqos$\|[:,]lqos\b"'
check "/var/lib/lqos root:lqos 750" stat_is /var/lib/lqos "root:lqos 750"
check "/var/lib/lqos/inputs lqos:lqos 750" stat_is /var/lib/lqos/inputs "lqos:lqos 750"
check "/var/lib/lqos/state root:lqos 750" stat_is /var/lib/lqos/state "root:lqos 750"
check "/var/lib/lqos/state/web lqos:lqos 700" stat_is /var/lib/lqos/state/web "lqos:lqos 700"
check "/etc/lqos.conf root:lqos 640" stat_is /etc/lqos.conf "root:lqos 640"
check "/etc/lqos.conf is a conffile" inr sh -c "dpkg-query -W -f='\${Conffiles}' lqos | grep -q /etc/lqos.conf"

# lqosd refuses to start until the interfaces are configured: --check says so.
in_check=$(inx lqosd --check 2>&1 || true)
echo "$in_check" | sed 's/^/      | /'
has() { printf '%s\n' "$1" | grep -q -- "$2"; }
check "packaged /etc/lqos.conf is valid (lqosd --check: PASS config)" has "$in_check" "^PASS  config"
check "lqosd --check names the unconfigured to_internet placeholder" has "$in_check" "FAIL  interface to_internet.*not configured"
check "lqosd --check exit code 1 before configuration" sh -c "chroot '$M' /usr/bin/lqosd --check >/dev/null 2>&1; [ \$? -eq 1 ]"

echo "== systemd-analyze verify"
for u in lqosd lqos_web lqos_scheduler; do
    out=$(inr systemd-analyze verify "/usr/lib/systemd/system/$u.service" 2>&1) && rc=0 || rc=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/      | /'
    if [ "$rc" = 0 ]; then ok "systemd-analyze verify $u.service"; else bad "systemd-analyze verify $u.service (rc $rc)"; fi
done

# --- upgrade, with an operator-edited conffile ---------------------------------------------
echo "== upgrade to $(basename "$V2") with a modified /etc/lqos.conf"
inr sed -i 's/^to_internet = "CHANGE-ME-wan"/to_internet = "eth9"/' /etc/lqos.conf
echo "# operator edit $$" | inr tee -a /etc/lqos.conf >/dev/null
before=$(inr sha256sum /etc/lqos.conf)
if inx apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$D2" >>"$LOG" 2>&1; then
    ok "upgrade: apt-get install ./$(basename "$V2")"
else
    tail -n 30 "$LOG"
    bad "upgrade: apt-get install ./$(basename "$V2")"
fi
check "upgrade: version is 0.1.0-2" sh -c "[ \"\$(chroot '$M' dpkg-query -W -f='\${Version}' lqos)\" = 0.1.0-2 ]"
check "upgrade: the modified /etc/lqos.conf survived unchanged" sh -c "[ \"\$(chroot '$M' sha256sum /etc/lqos.conf)\" = '$before' ]"
check "upgrade: /etc/lqos.conf still root:lqos 640" stat_is /etc/lqos.conf "root:lqos 640"
check "upgrade: still nothing enabled" inr sh -c "! test -e /etc/systemd/system/multi-user.target.wants/lqosd.service"

# --- remove, then purge --------------------------------------------------------------------
echo "== remove"
if inx apt-get remove -y -q lqos >>"$LOG" 2>&1; then ok "remove: apt-get remove lqos"; else tail -n 30 "$LOG"; bad "remove: apt-get remove lqos"; fi
check "remove: binaries gone" inr sh -c "! test -e /usr/bin/lqosd"
check "remove: units gone" inr sh -c "! test -e /usr/lib/systemd/system/lqosd.service"
check "remove: /etc/lqos.conf kept" inr test -s /etc/lqos.conf
check "remove: state /var/lib/lqos kept" inr test -d /var/lib/lqos/state
echo "== purge"
if inx apt-get purge -y -q lqos >>"$LOG" 2>&1; then ok "purge: apt-get purge lqos"; else tail -n 30 "$LOG"; bad "purge: apt-get purge lqos"; fi
check "purge: /etc/lqos.conf gone" inr sh -c "! test -e /etc/lqos.conf"
check "purge: /var/lib/lqos gone" inr sh -c "! test -e /var/lib/lqos"
check "purge: stat override gone" inr sh -c "! dpkg-statoverride --list /etc/lqos.conf"
check "purge: package unknown to dpkg" inr sh -c "! dpkg-query -W -f='\${Status}' lqos 2>/dev/null | grep -q installed"

cp "$LOG" target/debian/test-deb.transcript.log
echo
echo "== package test summary ($(basename "$V1") -> $(basename "$V2"))"
printf '%s\n' "${SUMMARY[@]}"
echo "package test: $PASS passed, $FAIL failed (transcript: target/debian/test-deb.transcript.log, file list: target/debian/lqos.contents.txt)"
[ "$FAIL" = 0 ]
