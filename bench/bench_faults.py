"""Fault timings (issue 11): how fast the device notices and recovers, with defaults.

- half-open link: the platform stops reading and sending while TCP stays up; time from
  the fault to the daemon declaring the link dead (default keepalive: 4 s pings, 4 s
  timeout, 1 s close timeout; goal: within 10 s);
- resume after a close: time from the close frame to the next conversation's metadata,
  for 1011 and for an application code in 4000-4999 (goal: first retry within 1 s);
- SIGTERM on a stuck process (its event loop blocked opening an output FIFO nobody
  reads): time from the signal to the process's exit (goal: within 2 s).

Prints each sample, then the median and the maximum.

Usage: .venv/bin/python bench/bench_faults.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig, Fault
from hello_device.settings import parse_settings


def silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(int(16000 * seconds) * 2))
    return path


def settings(tmp: Path, emu: Emulator, **platform: Any) -> Any:
    data = {
        "platform": {"agent_id": "demo-agent", "api_base_url": emu.http_url, **platform},
        "conversation": {"start": "auto", "inactivity_timeout_s": 0},
        "audio": {
            "backend": "file",
            "input_file": str(silence(tmp / "mic.wav", 120)),
            "output_file": str(tmp / "out.wav"),
        },
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp / "state")},
    }
    return parse_settings(data, str(tmp / "config.toml"), env={})


async def noticed_after(fault: Fault, metadata_of: int) -> float:
    """Seconds from the injected fault to the moment conversation ``metadata_of`` has
    started (2: the resumed one) or, for a half-open link, the first one ended."""
    with tempfile.TemporaryDirectory() as tmp:
        async with Emulator(EmulatorConfig(fault=fault)) as emu:
            daemon = Daemon(settings(Path(tmp), emu))
            task = asyncio.create_task(daemon.run())
            changed = asyncio.Event()
            daemon.state.add_listener(lambda *_: changed.set())
            try:
                async with asyncio.timeout(60):
                    while not emu.faults_injected:
                        changed.clear()
                        await changed.wait()
                    injected = emu.faults_injected[0][2]
                    if metadata_of == 1:
                        while not daemon.ended:
                            changed.clear()
                            await changed.wait()
                        return time.monotonic() - injected
                    record = await emu.wait_conversation(metadata_of, timeout=30)
                    await record.initiated.wait()
                    return time.monotonic() - injected
            finally:
                daemon.stop()
                await task


def sigterm_on_a_stuck_process() -> float:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.mkfifo(tmp / "out.wav")
        (tmp / "config.toml").write_text(
            f"""
[platform]
agent_id = "demo-agent"
api_base_url = "http://127.0.0.1:9"
[audio]
backend = "file"
input_file = "{silence(tmp / "mic.wav", 5)}"
output_file = "{tmp / "out.wav"}"
[state]
dir = "{tmp / "state"}"
"""
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "hello_device", "run", "--config", str(tmp / "config.toml")],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until its main thread sleeps in the FIFO open
            wchan = Path(f"/proc/{proc.pid}/wchan").read_text()
            if "fifo" in wchan or "wait_for_partner" in wchan:
                break
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        return time.monotonic() - sent


def report(name: str, samples: list[float], goal: str) -> None:
    print(
        f"{name:<44} median {statistics.median(samples):5.2f} s  max {max(samples):5.2f} s"
        f"  ({goal}; {len(samples)} runs: {', '.join(f'{s:.2f}' for s in samples)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    half_open = [
        asyncio.run(noticed_after(Fault("after_metadata", "half_open"), 1))
        for _ in range(args.runs)
    ]
    report("half-open link noticed (defaults)", half_open, "goal ≤ 10 s")
    for code in (1011, 4000):
        resumed = [
            asyncio.run(noticed_after(Fault("after_metadata", "close", code), 2))
            for _ in range(args.runs)
        ]
        report(f"close {code} -> next conversation's metadata", resumed, "first retry ≤ 1 s")
    stuck = [sigterm_on_a_stuck_process() for _ in range(args.runs)]
    report("SIGTERM -> exit, event loop stuck in open()", stuck, "goal ≤ 2 s")


if __name__ == "__main__":
    main()
