#!/usr/bin/env bash
# Wall time and sizes of the three ways in, each on a fresh Debian bookworm root
# (debootstrap, minbase): the package install, setup to a first conversation, and
# scripts/dev.sh demo. Needs root, debootstrap, the Debian mirror and a built package
# (scripts/build-deb.sh). Usage: sudo bash bench/install_figures.sh
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DEB=$(ls dist/hello-device_*.deb | tail -1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=$(mktemp -d)
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
mkroot() {
  debootstrap --variant=minbase bookworm "$1" "$MIRROR" >/dev/null 2>&1 || { echo "debootstrap failed"; exit 1; }
  cp /etc/resolv.conf "$1/etc/resolv.conf"
  mount -t proc proc "$1/proc"
}
cleanup() { for m in $(grep -o "$WORK[^ ]*" /proc/mounts | sort -r); do umount -l "$m"; done; rm -rf "$WORK"; }
trap cleanup EXIT

echo "package: $DEB ($(du -h "$DEB" | cut -f1))"
R=$WORK/pkg; mkroot "$R"
cp "$DEB" "$R/tmp/hello-device.deb"
s=$(now)
chroot "$R" apt-get update -qq
chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  /tmp/hello-device.deb >"$WORK/apt.log" 2>&1 || { tail "$WORK/apt.log"; exit 1; }
echo "apt install ./hello-device.deb on a fresh root: $(since "$s") s"
grep -E "Need to get|additional disk space" "$WORK/apt.log" | sed 's/^/  /'
"$REPO/.venv/bin/python" -m hello_device emulator --port 8797 >"$WORK/emu.log" 2>&1 &
EMU=$!
sleep 2
s=$(now)
echo sk_test_FIGURES | chroot "$R" hello-device setup --agent-id demo-agent \
  --api-base-url http://127.0.0.1:8797 --api-key-file - --trigger auto --yes --skip-audio \
  --no-restart >"$WORK/setup.log" 2>&1
echo "setup with flags, doctor included: $(since "$s") s ($(tail -1 "$WORK/setup.log"))"
kill $EMU
s=$(now)
chroot "$R" hello-device demo --output /tmp/demo.wav >"$WORK/demo.log" 2>&1
echo "first conversation (hello-device demo: 6.3 s of speech, paced in real time): $(since "$s") s"

R=$WORK/dev; mkroot "$R"
mkdir -p "$R/root/hello-device"
git archive HEAD | tar -x -C "$R/root/hello-device"
# This machine's package registries (pip.conf, a mirror's certificate), if it has any.
extra=()
if [ -f /root/.config/pip/pip.conf ]; then
  mkdir -p "$R/root/.config/pip"; cp /root/.config/pip/pip.conf "$R/root/.config/pip/"
  for d in $(grep -o "/opt/[a-z0-9/_-]*" /root/.config/pip/pip.conf | sed 's|/simple$||' | sort -u); do
    mkdir -p "$R$d"; mount --bind "$d" "$R$d"
  done
fi
if [ -n "${PIP_CERT:-}" ]; then cp "$PIP_CERT" "$R/root/registry-ca.crt"; extra+=(PIP_CERT=/root/registry-ca.crt); fi
s=$(now)
chroot "$R" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin "${extra[@]}" \
  bash -c 'cd /root/hello-device && bash scripts/dev.sh demo' >"$WORK/devdemo.log" 2>&1
rc=$?
echo "scripts/dev.sh demo on a fresh root: $(since "$s") s (exit $rc)"
echo "  apt downloads $(du -sh "$R/var/cache/apt/archives" | cut -f1), .venv $(du -sh "$R/root/hello-device/.venv" | cut -f1)"
grep -c "agent: You said" "$WORK/devdemo.log" | sed 's/^/  agent replies in the transcript: /'
