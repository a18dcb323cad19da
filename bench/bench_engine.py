"""Conversation engine benchmark (issue 3): latency on the wire and to the speaker, CPU.

Runs the real daemon (file backend, paced in real time) against the emulator, which
runs in a separate process so that the CPU figure is the daemon's alone:

- capture to wire: from a frame's last captured sample to the end of its ``send``
  (p50 / p99 / max), against the official Python client's 250 ms chunks;
- agent audio to the output stream: from an audio event's arrival with nothing queued
  ahead of it to the first read that plays it, in frames (goal: within one frame);
- CPU: the daemon process's CPU time over a 60 s full-duplex conversation, in percent
  of one core.

Usage: .venv/bin/python bench/bench_engine.py [--seconds 60] [--format pcm_16000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.app import Daemon  # noqa: E402
from hello_device.audio.player import Player  # noqa: E402
from hello_device.config import parse_settings  # noqa: E402

SHARED = Path(os.environ.get("HELLO_DEVICE_SHARED", REPO.parent / "shared")) / "audio"


class TimingPlayer(Player):
    """A Player that notes when audio pushed into an empty queue is first read."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pending_since: float | None = None
        self.delays: list[float] = []

    def push(self, pcm: object) -> None:  # type: ignore[override]
        if self.queued_samples == 0 and self.pending_since is None:
            self.pending_since = time.monotonic()
        super().push(pcm)  # type: ignore[arg-type]

    def read(self, n: int) -> bytes:
        had = self.queued_samples
        out = super().read(n)
        if self.pending_since is not None and had:
            self.delays.append(time.monotonic() - self.pending_since)
            self.pending_since = None
        return out


def conversation_input(path: Path, seconds: float) -> Path:
    """A long microphone recording: two_turns.wav and utterance.wav, repeated."""
    parts = []
    for name in ("two_turns.wav", "utterance.wav"):
        with wave.open(str(SHARED / name), "rb") as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    one = np.concatenate(parts)
    reps = int(np.ceil(seconds * 16000 / len(one)))
    data = np.tile(one, reps)[: int(seconds * 16000)]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data.tobytes())
    return path


def start_emulator(output_format: str, input_format: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hello_device",
            "emulator",
            "--port",
            "0",
            "--output-format",
            output_format,
            "--input-format",
            input_format,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("the emulator did not start")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run(seconds: float, output_format: str, input_format: str) -> None:
    proc, url = start_emulator(output_format, input_format)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            settings = parse_settings(
                {
                    "platform": {"agent_id": "demo-agent", "api_base_url": url},
                    "conversation": {"start": "auto", "inactivity_timeout_s": 0},
                    "audio": {
                        "backend": "file",
                        "input_file": str(conversation_input(tmpdir / "in.wav", seconds)),
                        "output_file": str(tmpdir / "out.wav"),
                        "exit_at_end": True,
                    },
                    "earcons": {"enabled": False},
                    "state": {"dir": str(tmpdir / "state")},
                },
                "bench",
                env={},
            )
            player = TimingPlayer(rate=16000)
            daemon = Daemon(settings, player=player)
            cpu0, wall0 = time.process_time(), time.monotonic()
            run_task = asyncio.create_task(daemon.run())
            await daemon.ready.wait()
            cpu1, wall1 = time.process_time(), time.monotonic()
            code = await run_task
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            conv_cpu, conv_wall = time.process_time() - cpu1, time.monotonic() - wall1
    finally:
        proc.terminate()
        proc.wait(5)
    wire = [x * 1000 for s in daemon.sessions for x in s.stats.wire_latency_s]
    frames = sum(s.stats.frames_sent for s in daemon.sessions)
    frame_ms = settings.audio.frame_ms
    to_out = [d * 1000 for d in player.delays]
    print(f"exit code {code}; {len(daemon.sessions)} conversation(s); {frames} frames sent")
    print()
    print("| measure | p50 | p99 | max | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| capture -> wire (ms) | {pct(wire, 50):.2f} | {pct(wire, 99):.2f} | "
        f"{max(wire, default=float('nan')):.2f} | p99 <= 5 |"
    )
    print(
        f"| agent audio -> output (ms, {len(to_out)} turns) | {pct(to_out, 50):.1f} | "
        f"{pct(to_out, 99):.1f} | {max(to_out, default=float('nan')):.1f} | <= {frame_ms} |"
    )
    print()
    print(f"official client chunk: 250 ms; ratio to our p99: {250 / pct(wire, 99):.0f}x")
    print(
        f"CPU, whole process incl. boot: {cpu:.2f} s over {wall:.1f} s = "
        f"{100 * cpu / wall:.2f} % of one core"
    )
    print(
        f"CPU, the conversation (from READY): {conv_cpu:.2f} s over {conv_wall:.1f} s = "
        f"{100 * conv_cpu / conv_wall:.2f} % of one core (goal: well under 2 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--format", default="pcm_16000", help="agent output format")
    parser.add_argument("--input-format", default="pcm_16000", help="mic format")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.format, args.input_format))


if __name__ == "__main__":
    main()
