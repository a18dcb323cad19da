#!/usr/bin/env bash
# Sets up what a fresh Debian / Raspberry Pi OS machine lacks, then runs one job:
#   scripts/dev.sh demo   a headless conversation with the bundled emulator, over files
#   scripts/dev.sh test   lint, format check, type check and the whole test suite
#   scripts/dev.sh setup  only the set-up
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc/g++: numpy, soxr and webrtcvad build from source where no wheel exists (32-bit ARM);
# systemd: systemd-analyze, for the unit-file tests.
APT_PACKAGES=(python3 python3-venv python3-dev gcc g++ pkg-config portaudio19-dev libsystemd-dev
  systemd pulseaudio pulseaudio-utils libasound2-plugins openssl tinyproxy)
# The tests also drive the example kiosk page in a headless Chromium (tests/local_api/),
# read the metrics through a real node_exporter (tests/metrics/) and talk to a real
# Mosquitto broker (tests/fleet/).
if [ "${1:-test}" = test ]; then
  APT_PACKAGES+=(chromium prometheus-node-exporter mosquitto)
fi
# The Debian package test (tests/packaging/test_deb.py: build, then install into a
# debootstrap root) needs root; its tools are installed where it can run.
if [ "$(id -u)" -eq 0 ] && [ "${1:-test}" = test ]; then
  APT_PACKAGES+=(debhelper dh-virtualenv fakeroot build-essential debootstrap lintian)
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_apt() {
  command -v dpkg-query >/dev/null || { say "not a Debian system: install ${APT_PACKAGES[*]} by hand"; return; }
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
    if ! sudo -n true 2>/dev/null && [ ! -t 0 ]; then
      say "missing system packages: ${missing[*]}"
      echo "sudo needs a password and there is no terminal to type it in. Install them once:" >&2
      echo "  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
      echo "then run this script again." >&2
      exit 1
    fi
  fi
  say "installing system packages: ${missing[*]} (about 30 s on a PC, a few minutes on a Pi)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The proxy tests start their own tinyproxy; the system service the package enables
  # is not needed (stopped only when this script installed the package).
  # (The same for node_exporter and mosquitto: their tests start their own.)
  local service
  for service in tinyproxy prometheus-node-exporter mosquitto; do
    if [[ " ${missing[*]} " == *" $service "* ]] && [ -d /run/systemd/system ]; then
      $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
}

pip_quietly() {
  # pip's output goes to a log, shown in full when pip fails (never hidden behind || true).
  if ! .venv/bin/python -m pip "$@" >.venv/pip.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip.log >&2 || true
    say "pip failed (its output is above, and in .venv/pip.log)"
    exit 1
  fi
}

install_venv() {
  # $1: "runtime" (the demo: the program alone) or "test" (plus linters, mypy, the
  # official client for the comparison tests, echo cancellation and the wake word).
  local want=$1 spec=".[test,aec,wake,mqtt]"
  [ "$want" = runtime ] && spec="."
  local hash stamp
  hash=$(sha256sum pyproject.toml | cut -c1-16)
  stamp=".venv/.installed-$want-$hash"
  [ -f "$stamp" ] && return
  [ "$want" = runtime ] && [ -f ".venv/.installed-test-$hash" ] && return  # a superset
  say "installing hello-device ($want) into .venv (about 1 minute on a PC, 5-10 on a Pi)"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  pip_quietly install -q --upgrade pip
  pip_quietly install -q -e "$spec"
  .venv/bin/python -c "import hello_device, pyaudio, webrtcvad, websockets, gpiozero"
  rm -f .venv/.installed-*
  touch "$stamp"
}

job=${1:-test}
install_apt
case "$job" in
  demo) install_venv runtime ;;
  *) install_venv test ;;
esac
case "$job" in
  setup) ;;
  demo)
    say "a conversation with the local emulator (the transcript follows)"
    exec .venv/bin/hello-device demo --output out/demo-output.wav ;;
  test)
    say "ruff check";  .venv/bin/ruff check .
    say "ruff format"; .venv/bin/ruff format --check .
    say "mypy";        .venv/bin/mypy  # the package, its tests and the benchmarks (pyproject.toml)
    # In CI the real-audio tests must run, not skip, when no sound server starts.
    [ "${CI:-}" = "true" ] && export HELLO_DEVICE_REQUIRE_SOUND=1 HELLO_DEVICE_REQUIRE_DEB=1 \
      HELLO_DEVICE_REQUIRE_BROWSER=1
    say "pytest";      exec .venv/bin/python -m pytest ;;
  *) echo "usage: scripts/dev.sh [setup|demo|test]" >&2; exit 2 ;;
esac
