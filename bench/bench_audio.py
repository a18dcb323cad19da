"""Real-audio benchmark (issue 5): the PyAudio backend through a private PulseAudio server.

Starts the same server as the tests (``tests/soundserver.py``: null sink ``speaker``,
virtual microphone ``mic``), opens the backend on the default devices and measures:

(a) capture: from the capture callback's entry (PortAudio thread) to the ``on_frame``
    call on the event loop, while speech plays into the microphone. Goal: p99 <= 5 ms.
(b) playback latency with an empty queue: from ``player.push`` of a click (at a random
    phase against the device's blocks) to the click on the speaker's monitor. The
    monitor is recorded by ``parec`` and each block is timestamped on arrival, so the
    figure is an upper bound that includes the monitor path; the monitor may hold a
    sample for at most its configured latency (read from ``pactl``), which gives the
    lower bound. The parts of the playback path (PortAudio's device buffer and its own
    dac-time estimate, PulseAudio's view of our stream) are shown too. Goal: <= 60 ms.
(c) continuous playback: a long sine pushed at once; no underrun: ``player.underruns``
    and PortAudio's ``paOutputUnderflow`` flags stay 0, and the monitor shows no dropout.

Usage: .venv/bin/python bench/bench_audio.py [--capture-s 20] [--clicks 30]
       [--continuous-s 60] [--block-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.audio.backends.base import Frame
from hello_device.audio.backends.pyaudio import PyAudioBackend
from hello_device.audio.player import Player
from hello_device.settings import AudioSettings
from tests.soundserver import SPEAKER_RATE, Recording, SoundServer

SHARED = REPO / "tests" / "data" / "audio"  # copies of shared/audio, kept with the code


async def until(pred: Callable[[], bool], limit_s: float) -> None:
    """Poll ``pred`` until true, at most ``limit_s`` seconds."""
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {limit_s:.0f} s")
        await asyncio.sleep(0.005)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def tone(freq: float, rate: int, seconds: float, amp: float) -> NDArray[np.int16]:
    n = round(rate * seconds)
    y = np.sin(2 * math.pi * freq * np.arange(n) / rate) * amp * 32767
    return np.rint(y).astype(np.int16)


def pactl_latencies(server: SoundServer, section: str, pid: int | None = None) -> list[int]:
    """``Buffer``/``Sink``/``Source Latency`` figures (us) in ``pactl list <section>``
    (only for the streams of process ``pid`` when given)."""
    found: list[int] = []
    for block in re.split(r"\n(?=\S)", server.pactl("list", section)):
        if pid is not None and f'application.process.id = "{pid}"' not in block:
            continue
        found += [int(v) for v in re.findall(r"(?:Buffer|Sink|Source) Latency: (\d+) usec", block)]
    return found


def configured_latency_us(server: SoundServer, source: str) -> int:
    """The latency PulseAudio configured for ``source`` (how long it may hold data)."""
    for block in re.split(r"\n(?=\S)", server.pactl("list", "sources")):
        if re.search(rf"^\s*Name: {re.escape(source)}$", block, re.M):
            m = re.search(r"configured (\d+) usec", block)
            if m:
                return int(m.group(1))
    return 0


# ---------------------------------------------------------------------- (a) capture


async def bench_capture(
    backend: PyAudioBackend, frames: list[tuple[float, float]], server: SoundServer, seconds: float
) -> dict[str, float]:
    frames.clear()
    stop = threading.Event()

    def speak() -> None:
        while not stop.is_set():
            server.play_into_mic(SHARED / "utterance.wav", wait=True, timeout=30)

    talker = threading.Thread(target=speak, daemon=True)
    talker.start()
    dropped = backend.frames_dropped
    await asyncio.sleep(seconds)  # the measurement window
    delays = [(t - entry) * 1000 for t, entry in frames]
    dropped = backend.frames_dropped - dropped
    stop.set()
    await asyncio.to_thread(talker.join, 15)
    return {
        "n": len(delays),
        "p50": pct(delays, 50),
        "p99": pct(delays, 99),
        "max": max(delays, default=float("nan")),
        "dropped": dropped,
    }


# ---------------------------------------------------------------------- (b) playback latency


def onsets(rec: Recording, threshold: float, quiet_s: float = 0.1) -> list[int]:
    """Indices where |x| first exceeds ``threshold`` after ``quiet_s`` below it."""
    loud = np.flatnonzero(np.abs(rec.samples.astype(np.int32)) > threshold)
    out: list[int] = []
    last = -(10**9)
    for i in loud:
        if i - last > quiet_s * rec.rate:
            out.append(int(i))
        last = int(i)
    return out


async def bench_playback_latency(
    backend: PyAudioBackend, player: Player, server: SoundServer, clicks: int
) -> dict[str, float]:
    rate = player.rate
    click = tone(2000, rate, 0.005, 0.8)
    pushes: list[float] = []
    rng = random.Random(5)
    with server.start_recording(latency_ms=5) as rec:
        await asyncio.to_thread(rec.wait_for, SPEAKER_RATE // 10, 5)
        monitor_us = await asyncio.to_thread(configured_latency_us, server, "speaker.monitor")
        monitor_ms = monitor_us / 1000
        for _ in range(clicks):
            # Queue empty, and a random phase against the device's blocks.
            await until(lambda: not player.playing, 5.0)
            await asyncio.sleep(0.15 + rng.random() * 0.1)
            pushes.append(time.monotonic())
            player.push(click)
        sink_input_us = await asyncio.to_thread(pactl_latencies, server, "sink-inputs", os.getpid())
        await asyncio.sleep(0.3)
        recording = await asyncio.to_thread(rec.stop)
    found = onsets(recording, 0.1 * 32767)
    if len(found) != len(pushes):
        raise RuntimeError(f"found {len(found)} clicks on the monitor, pushed {len(pushes)}")
    raw = [(recording.arrival_of(i) - t) * 1000 for i, t in zip(found, pushes, strict=True)]
    streams = backend.streams
    return {
        "n": len(raw),
        "p50": pct(raw, 50),
        "p99": pct(raw, 99),
        "max": max(raw),
        "monitor_ms": monitor_ms,
        "low_p50": pct(raw, 50) - monitor_ms,
        "low_p99": pct(raw, 99) - monitor_ms,
        "portaudio_ms": (streams.out_latency * 1000) if streams else float("nan"),
        "dac_lag_ms": backend.output_delay_s * 1000,
        "pulse_stream_ms": sum(sink_input_us) / 1000,
    }


# ---------------------------------------------------------------------- (c) continuous


async def bench_continuous(
    backend: PyAudioBackend, player: Player, server: SoundServer, seconds: float
) -> dict[str, float]:
    rate = player.rate
    with server.start_recording() as rec:
        await asyncio.to_thread(rec.wait_for, SPEAKER_RATE // 10, 5)
        # Longer than UNDERRUN_GAP_S after the last click, so that the player does not
        # count this push as the continuation of a stream that ran dry.
        await asyncio.sleep(1.5)
        underruns, underflows = player.underruns, backend.underflows
        player.push(tone(440, rate, seconds, 0.5))
        await until(lambda: not player.playing, seconds + 10)
        await asyncio.sleep(0.3)
        recording = await asyncio.to_thread(rec.stop)
    x = recording.samples.astype(np.float64)
    hop = SPEAKER_RATE // 100
    n = len(x) // hop
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    loud = np.flatnonzero(rms > 0.5 * 32767 / math.sqrt(2) / 4)  # above -21 dBFS
    span = loud[-1] - loud[0] + 1 if len(loud) else 0
    return {
        "seconds": seconds,
        "underruns": player.underruns - underruns,
        "underflows": backend.underflows - underflows,
        "dropouts": int(span - len(loud)),
        "heard_s": len(loud) / 100,
    }


# ---------------------------------------------------------------------- main


async def run(args: argparse.Namespace, server: SoundServer) -> None:
    player = Player(16000)
    backend = PyAudioBackend(AudioSettings(), player, output_block_ms=args.block_ms)
    frames: list[tuple[float, float]] = []

    def on_frame(frame: Frame) -> None:
        frames.append((time.monotonic(), backend.chunk_entry_time))

    problems: list[str] = []

    def on_status(problem: str | None) -> None:
        if problem:
            problems.append(problem)

    task = asyncio.create_task(backend.run(on_frame, on_status))
    try:
        await asyncio.wait_for(backend.ready.wait(), 15)
        s = backend.streams
        assert s is not None
        print(
            f"devices: mic {s.mic.label} {s.in_rate} Hz x{s.in_channels}, "
            f"speaker {s.speaker.label} {s.out_rate} Hz x{s.out_channels}, "
            f"output blocks {backend.output_block_ms} ms",
            flush=True,
        )
        print(f"(a) capture for {args.capture_s:g} s ...", flush=True)
        a = await bench_capture(backend, frames, server, args.capture_s)
        print(f"(b) {args.clicks} clicks ...", flush=True)
        b = await bench_playback_latency(backend, player, server, args.clicks)
        print(f"(c) {args.continuous_s:g} s of continuous playback ...", flush=True)
        c = await bench_continuous(backend, player, server, args.continuous_s)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    rows = [
        ("(a) capture callback -> on_frame", f"{a['p50']:.2f}", f"{a['p99']:.2f}",
         f"{a['max']:.2f}", "p99 <= 5 ms", "ok" if a["p99"] <= 5 else "MISSED"),
        ("(b) push -> speaker monitor", f"{b['p50']:.1f}", f"{b['p99']:.1f}",
         f"{b['max']:.1f}", "<= 60 ms", "ok" if b["p99"] <= 60 else "MISSED"),
        ("    minus monitor fragment", f"{b['low_p50']:.1f}", f"{b['low_p99']:.1f}",
         "", "(lower bound)", ""),
    ]  # fmt: skip
    print()
    print(f"{'measure (ms)':<38}{'p50':>8}{'p99':>8}{'max':>8}  {'goal':<14}")
    for name, p50, p99, mx, goal, verdict in rows:
        print(f"{name:<38}{p50:>8}{p99:>8}{mx:>8}  {goal:<14}{verdict}")
    print(f"\n(a) {a['n']:.0f} frames, {a['dropped']:.0f} dropped; p99/goal = {a['p99'] / 5:.2f}")
    print(
        f"(b) {b['n']:.0f} clicks, timed by parec block arrival (an upper bound: the "
        f"monitor may hold a sample up to its configured {b['monitor_ms']:.1f} ms); "
        f"p99/goal = {b['p99'] / 60:.2f}.\n    Parts: PortAudio device buffer "
        f"{b['portaudio_ms']:.1f} ms; PortAudio's own estimate (dac time - now) "
        f"{b['dac_lag_ms']:.1f} ms; PulseAudio's view of our stream (buffer + sink) "
        f"{b['pulse_stream_ms']:.1f} ms"
    )
    verdict = "ok" if c["underruns"] == c["underflows"] == c["dropouts"] == 0 else "MISSED"
    print(
        f"(c) {c['seconds']:.0f} s continuous: player underruns {c['underruns']:.0f}, "
        f"paOutputUnderflow {c['underflows']:.0f}, dropouts on the monitor "
        f"{c['dropouts']:.0f} x 10 ms, heard {c['heard_s']:.2f} s  [{verdict}]"
    )
    if problems:
        print(f"faults during the run: {problems}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture-s", type=float, default=20.0)
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--continuous-s", type=float, default=60.0)
    parser.add_argument(
        "--block-ms",
        type=int,
        default=None,
        help="playback block in ms (default: from audio.output_buffer_ms, 15 ms)",
    )
    args = parser.parse_args()
    with SoundServer.start() as server:
        server.apply_env()
        print(f"PulseAudio test server in {server.root}", flush=True)
        t0 = time.monotonic()
        asyncio.run(run(args, server))
        print(f"\n(bench took {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
