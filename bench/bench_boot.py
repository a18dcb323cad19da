"""Boot benchmark (issue 4): process start to "ready to converse" (READY=1 on a real
notify socket) with a warm agent-configuration cache and the platform unreachable; and
SIGTERM to exit.

Two kinds of unreachable platform are measured:
- refused: nothing listens on the port (no network, platform down): fails at once;
- black hole: a socket that accepts connections and never answers, the worst case (the
  daemon waits BOOT_FETCH_WITH_CACHE_S for it before it uses the cache).

Usage: .venv/bin/python bench/bench_boot.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.platform.cache import AgentConfigCache

AGENT = {
    "agent_id": "demo-agent",
    "name": "cached agent",
    "conversation_config": {
        "asr": {"user_input_audio_format": "pcm_16000"},
        "tts": {"agent_output_audio_format": "pcm_16000"},
        "agent": {"first_message": "Hello", "language": "en"},
    },
    "platform_settings": {"auth": {"enable_auth": False}},
}


def write_setup(tmp: Path, port: int) -> Path:
    state = tmp / "state"
    AgentConfigCache(state).save("demo-agent", AGENT)
    with wave.open(str(tmp / "mic.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(16000 * 2 * 30))
    config = tmp / "config.toml"
    config.write_text(
        f"""
[platform]
agent_id = "demo-agent"
api_base_url = "http://127.0.0.1:{port}"
[conversation]
start = "button"
[audio]
backend = "file"
input_file = "mic.wav"
output_file = "out.wav"
[state]
dir = "{state}"
"""
    )
    return config


def one_run(config: Path, tmp: Path) -> tuple[float, float]:
    path = tmp / f"notify-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    env = {**os.environ, "NOTIFY_SOCKET": str(path)}
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/hello-device"), "run", "--config", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not sock.recv(4096).startswith(b"READY=1"):
            pass
        ready = time.monotonic() - started
        stop_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        stopped = time.monotonic() - stop_at
        assert code == 0, code
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    return ready, stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        # refused: a port nobody listens on
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        refused_port = free.getsockname()[1]
        free.close()
        # black hole: listens, never accepts or answers
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        for name, port in (("refused", refused_port), ("black hole", hole.getsockname()[1])):
            config = write_setup(tmp / name.replace(" ", "_"), port)
            readies, stops = [], []
            for _ in range(args.runs):
                ready, stopped = one_run(config, config.parent)
                readies.append(ready)
                stops.append(stopped)
            results[name] = (readies, stops)
        hole.close()
    print(f"{args.runs} runs each; warm cache; file audio backend")
    print()
    print("| platform | boot to READY=1 median | max | SIGTERM to exit median | max |")
    print("|---|---|---|---|---|")
    for name, (readies, stops) in results.items():
        print(
            f"| {name} | {statistics.median(readies) * 1000:.0f} ms | "
            f"{max(readies) * 1000:.0f} ms | {statistics.median(stops) * 1000:.0f} ms | "
            f"{max(stops) * 1000:.0f} ms |"
        )
    print()
    print("goals: boot <= 1000 ms (median), stop <= 2000 ms")


if __name__ == "__main__":
    main()
