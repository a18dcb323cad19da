"""Conversation engine benchmark (issue 3): latency on the wire and to the speaker, CPU.

Runs the real daemon (file backend, paced in real time) against the emulator, which
runs in a separate process so that the CPU figure is the daemon's alone:

- capture to wire: from a frame's last captured sample to the end of its ``send``
  (p50 / p99 / max), against the official Python client's 250 ms chunks;
- agent audio to the output stream: from an audio event's arrival with nothing queued
  ahead of it to the first read that plays it, in frames (goal: within one frame);
- CPU: the daemon process's CPU time over a 60 s full-duplex conversation, in percent
  of one core.

The CPU of waking up 50 times a second varies a lot on a shared virtual machine (by 3x
over a day here), so each run is preceded by the *floor*, measured the same way: a
do-nothing asyncio program that wakes at the frame rate and writes a message of the
same size to a loopback TCP socket each time (what any client streaming 20 ms frames
must at least do). ``--runs N`` repeats both and prints medians.

Usage: .venv/bin/python bench/bench_engine.py [--seconds 60] [--runs 1]
       [--format pcm_16000] [--input-format pcm_16000] [--frame-ms 20]
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
from statistics import median

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.audio.player import Player
from hello_device.daemon import Daemon
from hello_device.settings import parse_settings

SHARED = REPO / "tests" / "data" / "audio"  # copies of shared/audio, kept with the code


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


SINK = """
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
while c.recv(65536):
    pass
"""


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    return sink, int(sink.stdout.readline())


async def floor(seconds: float, frame_s: float, payload_bytes: int) -> float:
    """CPU (% of one core) of bare asyncio ticking at ``frame_s`` and writing
    ``payload_bytes`` per tick to a loopback TCP socket read by another process."""
    sink, port = start_sink()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        payload = os.urandom(payload_bytes)
        count = int(seconds / frame_s)
        start = loop.time()
        state = {"i": 0}

        def tick() -> None:
            writer.transport.write(payload)
            state["i"] += 1
            if state["i"] >= count:
                done.set_result(None)
            else:
                loop.call_at(start + (state["i"] + 1) * frame_s, tick)

        cpu, wall = time.process_time(), time.monotonic()
        loop.call_at(start + frame_s, tick)
        await done
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        writer.close()
        await writer.wait_closed()
    finally:
        sink.wait(5)
    return 100 * cpu / wall


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Result:
    def __init__(self, daemon: Daemon, player: TimingPlayer, code: int) -> None:
        self.code = code
        self.conversations = len(daemon.sessions)
        self.frames = sum(s.stats.frames_sent for s in daemon.sessions)
        self.frame_ms = daemon.settings.audio.frame_ms
        self.wire = [x * 1000 for s in daemon.sessions for x in s.stats.wire_latency_s]
        self.to_out = [d * 1000 for d in player.delays]
        self.cpu_all = self.conv_cpu = 0.0
        self.floor = float("nan")


async def run(seconds: float, output_format: str, input_format: str, frame_ms: int) -> Result:
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
                        "frame_ms": frame_ms,
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
    result = Result(daemon, player, code)
    result.cpu_all = 100 * cpu / wall
    result.conv_cpu = 100 * conv_cpu / conv_wall
    return result


def wire_message_bytes(frame_ms: int, input_format: str) -> int:
    """Bytes on the wire for one microphone frame: WebSocket header, mask, JSON, base64."""
    from hello_device.core.formats import AudioFormat

    fmt = AudioFormat.parse(input_format)
    raw = fmt.rate * frame_ms // 1000 * (1 if fmt.encoding == "ulaw" else 2)
    text = len('{"user_audio_chunk":""}') + 4 * ((raw + 2) // 3)
    return text + (4 if text < 126 else 8 if text < 65536 else 14)


async def run_all(
    seconds: float, runs: int, output_format: str, input_format: str, frame_ms: int
) -> None:
    results = []
    for i in range(runs):
        floor_pct = await floor(
            min(seconds, 20.0), frame_ms / 1000, wire_message_bytes(frame_ms, input_format)
        )
        result = await run(seconds, output_format, input_format, frame_ms)
        result.floor = floor_pct
        results.append(result)
        print(
            f"run {i + 1}: exit code {result.code}; {result.conversations} conversation(s); "
            f"{result.frames} frames sent; CPU {result.conv_cpu:.2f} %, floor {floor_pct:.2f} %",
            flush=True,
        )
    wire = [x for r in results for x in r.wire]
    to_out = [x for r in results for x in r.to_out]
    frame_ms = results[0].frame_ms
    conv = [r.conv_cpu for r in results]
    floors = [r.floor for r in results]
    above = [r.conv_cpu - r.floor for r in results]
    ratio = [r.conv_cpu / r.floor for r in results]
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
    print()
    print(f"CPU over {len(results)} run(s) of {seconds:.0f} s, median (min..max), % of one core:")
    print(
        f"  the conversation (from READY):       {median(conv):.2f} "
        f"({min(conv):.2f}..{max(conv):.2f})  goal: well under 2 %"
    )
    print(f"  whole process incl. boot:            {median([r.cpu_all for r in results]):.2f}")
    print(
        f"  floor: asyncio waking every {frame_ms} ms, writing one frame to loopback TCP: "
        f"{median(floors):.2f} ({min(floors):.2f}..{max(floors):.2f})"
    )
    print(
        f"  the daemon above that floor:         {median(above):.2f} "
        f"(ratio to the floor {median(ratio):.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--format", default="pcm_16000", help="agent output format")
    parser.add_argument("--input-format", default="pcm_16000", help="mic format")
    parser.add_argument("--runs", type=int, default=1, help="repeat, print medians")
    parser.add_argument("--frame-ms", type=int, default=20, choices=(10, 20, 30))
    args = parser.parse_args()
    asyncio.run(run_all(args.seconds, args.runs, args.format, args.input_format, args.frame_ms))


if __name__ == "__main__":
    main()
