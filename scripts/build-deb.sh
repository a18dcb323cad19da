#!/usr/bin/env bash
# Builds the Debian package of the committed tree for this machine's architecture:
#   scripts/build-deb.sh            -> dist/hello-device_<version>_<arch>.deb
# Build on the target architecture (a Pi, or an arm64/armhf runner) for an ARM package:
# the package carries compiled wheels (numpy, soxr, PyAudio, webrtcvad).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

BUILD_DEPS=(debhelper dh-virtualenv build-essential python3-venv python3-dev portaudio19-dev
  libsystemd-dev pkg-config fakeroot)
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing the build tools: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "copying the committed tree"
git archive --format=tar HEAD | tar -x -C "$work"
say "building (pip installs the dependencies into the package: 1-2 minutes here, longer on a Pi)"
(cd "$work" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
  tail -40 "$work/build.log" >&2
  say "the build failed (the end of its log is above)"
  exit 1
}
mkdir -p dist
mv "$work"/../hello-device_*.deb dist/ 2>/dev/null || mv "$(dirname "$work")"/hello-device_*.deb dist/
rm -f "$(dirname "$work")"/hello-device_*.{buildinfo,changes}
ls -l dist/*.deb
