#!/usr/bin/env bash
# Sets up what a fresh Debian / Raspberry Pi OS machine lacks, then runs one job:
#   scripts/dev.sh demo   a headless conversation with the bundled emulator, over files
#   scripts/dev.sh test   lint, format check, type check and the whole test suite
#   scripts/dev.sh setup  only the set-up
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config portaudio19-dev libsystemd-dev
  pulseaudio pulseaudio-utils libasound2-plugins openssl tinyproxy)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_apt() {
  command -v dpkg-query >/dev/null || { say "not a Debian system: install ${APT_PACKAGES[*]} by hand"; return; }
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing system packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The proxy tests start their own tinyproxy; the system service the package enables
  # is not needed (stopped only when this script installed the package).
  if [[ " ${missing[*]} " == *" tinyproxy "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now tinyproxy >/dev/null 2>&1 || true
  fi
}

install_venv() {
  local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  [ -f "$stamp" ] && return
  say "creating the virtual environment in .venv and installing hello-device with its test tools"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[test,aec]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import hello_device, pyaudio, webrtcvad, soxr, websockets, gpiozero"
  rm -f .venv/.installed-*
  touch "$stamp"
}

job=${1:-test}
install_apt
install_venv
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
    [ "${CI:-}" = "true" ] && export HELLO_DEVICE_REQUIRE_SOUND=1
    say "pytest";      exec .venv/bin/python -m pytest ;;
  *) echo "usage: scripts/dev.sh [setup|demo|test]" >&2; exit 2 ;;
esac
