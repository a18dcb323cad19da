"""The wake word's latency and cost (issue 14). Detection accuracy: bench_wake_detection.py.

Latency, the real daemon in this process (wall-clock time, not virtual), the file
backend, earcons on, the emulator on loopback:

- the **model**: when the detector fires after the end of each shared wake phrase (its
  end found by level: the last 10 ms above -40 dBFS), at sensitivities 0.5 and 0.7;
- the **daemon**: how long after the end of the frame that completed the detection the
  earcon was in the player and the state was ``listening`` (processing and scheduling,
  wall clock); the file backend's output then plays it from the next frame on, as a
  device's output buffer would (add the sound card's output latency on a device);
- **earcon after the phrase** = the two added (the file output's timeline is nominal);
- the **first question frame on the wire**: from the end of the phrase to the moment the
  question's first frame was handed to the socket (the session's per-frame send times,
  the frame found by aligning what the emulator received with the file), for
  ``wake_then_question.wav`` (a 1.05 s pause before the question) and for a copy whose
  pause is cut to 0.15 s (the question is spoken while the conversation opens), with
  the platform answering at once and after ``--slow-s`` (metadata delayed).

Cost, the daemon as a process of its own on an idle device (the file backend feeding
``no_wake_word_speech.wav`` and silence in real time, no conversation): CPU seconds
from /proc over a window after it is ready, as a share of one core, with
``start = "wake_word"`` against ``start = "button"`` (the idle daemon without it), runs
alternated; RSS at the end of the window (VmRSS).

Usage: .venv/bin/python bench/bench_wake.py [--runs 5] [--cost-runs 3] [--window-s 30]
       [--slow-s 1.0] [--skip-cost]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from idle_cost import compare
from machine import describe

from hello_device.audio.wav import read_wav_pcm
from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import WakeWordSettings, parse_settings
from hello_device.wake.detector import WakeWordDetector

WAKE = REPO / "tests" / "data" / "audio" / "wake"
RATE = 16000
PHRASE_END = 2.31  # wake_then_question.wav ground truth
QUESTION = 3.36


def mono(path: Path) -> np.ndarray:
    pcm, rate, channels = read_wav_pcm(path)
    assert (rate, channels) == (RATE, 1), path
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def write_wav(path: Path, data: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(data, -32768, 32767).astype("<i2").tobytes())
    return path


def phrase_end(x: np.ndarray) -> float:
    """End of the last 10 ms window above -40 dBFS."""
    win = RATE // 100
    env = np.sqrt(np.mean(x[: len(x) // win * win].reshape(-1, win) ** 2, axis=1) + 1e-9)
    loud = np.nonzero(20 * np.log10(env / 32768) > -40)[0]
    return float((loud[-1] + 1) * 0.01)


def med(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})"


# ------------------------------------------------------------------ the model


def model_delays(sensitivity: float) -> list[tuple[str, float | None]]:
    out: list[tuple[str, float | None]] = []
    for path in sorted(WAKE.glob("*__*.wav")):
        model = path.stem.split("__")[0]
        detector = WakeWordDetector(WakeWordSettings(model=model, sensitivity=sensitivity))
        x = mono(path)
        pcm = x.astype("<i2").tobytes()
        hits = [d.at_s for i in range(0, len(pcm), 640) for d in detector.feed(pcm[i : i + 640])]
        out.append((path.stem, hits[0] - phrase_end(x) if hits else None))
    return out


# ------------------------------------------------------------------ the daemon


def settings_for(tmp: Path, emu: Emulator, mic: Path) -> object:
    data = {
        "device": {"id": "bench-wake"},
        "platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url},
        "conversation": {"start": "wake_word"},
        "audio": {
            "backend": "file",
            "input_file": str(mic),
            "output_file": str(tmp / "out.wav"),
            "exit_at_end": True,
        },
        "earcons": {"enabled": True},
        "state": {"dir": str(tmp / "state")},
    }
    return parse_settings(data, str(tmp / "config.toml"), env={})


async def one_run(tmp: Path, mic: Path, slow_s: float, question_s: float) -> dict[str, float]:
    """One conversation opened by the wake word; the figures of this run."""
    source = mono(mic)
    async with Emulator(EmulatorConfig(metadata_delay_s=slow_s)) as emu:
        daemon = Daemon(settings_for(tmp, emu, mic))  # type: ignore[arg-type]
        woke: list[float] = []
        original = daemon.on_frame

        def on_frame(frame):  # type: ignore[no-untyped-def]
            before = daemon.state.state
            original(frame)
            if before is DeviceState.IDLE and daemon.state.state is DeviceState.LISTENING:
                # the frame's end on the file's timeline, and the wall delay after it
                woke.append((frame.index + 1) * 0.02)
                woke.append(time.monotonic() - frame.captured_at)

        daemon.on_frame = on_frame  # type: ignore[method-assign]
        code = await daemon.run()
    assert code == 0 and len(woke) == 2, (code, woke)
    session = daemon.sessions[0]
    record = emu.conversations[0]
    received = np.frombuffer(bytes(record.user_audio), dtype="<i2").astype(np.float64)
    q0 = int(question_s * RATE)
    ref = source[q0 : q0 + RATE // 2]
    corr = np.correlate(received, ref, mode="valid")
    lag = int(np.argmax(corr))
    origin = question_s - lag / RATE  # file time of the first received sample
    first_frame = round((question_s - origin) / 0.02)
    sent = session.stats.wire_latency_s
    # the first question frame was captured at its end on the file timeline, and sent
    # wire_latency later: from the phrase end that is
    captured_end = origin + (first_frame + 1) * 0.02
    return {
        "detect_after_end": woke[0] - PHRASE_END,
        "processing": woke[1],
        "question_on_wire": captured_end + sent[first_frame] - PHRASE_END,
        "origin": origin,
    }


def straight_on(tmp: Path) -> Path:
    """wake_then_question.wav with the pause cut to 0.15 s: the question starts at 2.46 s."""
    x = mono(WAKE / "wake_then_question.wav")
    cut = int((QUESTION - PHRASE_END - 0.15) * RATE)
    start = int(PHRASE_END * RATE)
    return write_wav(tmp / "straight_on.wav", np.concatenate([x[:start], x[start + cut :]]))


def latency(runs: int, slow_s: float) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        cases = [
            ("pause 1.05 s, platform at once", WAKE / "wake_then_question.wav", 0.0, QUESTION),
            ("pause 0.15 s, platform at once", straight_on(tmp), 0.0, PHRASE_END + 0.15),
            (
                f"pause 0.15 s, platform after {slow_s:g} s",
                straight_on(tmp),
                slow_s,
                PHRASE_END + 0.15,
            ),
        ]
        for label, mic, slow, question_s in cases:
            rows = [asyncio.run(one_run(tmp, mic, slow, question_s)) for _ in range(runs)]
            print(f"\n{label} ({runs} runs):")
            print(
                f"  detection after the phrase end (model, 20 ms frames): {med([r['detect_after_end'] for r in rows])}"
            )
            print(
                f"  detection -> earcon queued, listening shown (wall):    {med([r['processing'] for r in rows])}"
            )
            earcon = [r["detect_after_end"] + r["processing"] for r in rows]
            print(f"  phrase end -> earcon plays (+ the card's output latency): {med(earcon)}")
            print(
                f"  phrase end -> first question frame on the wire:          {med([r['question_on_wire'] for r in rows])}"
            )
            print(
                f"  first sample sent is from {min(r['origin'] for r in rows):.3f} s of the file (phrase ends {PHRASE_END} s)"
            )


# ------------------------------------------------------------------ the cost


def cost(runs: int, window_s: float) -> None:
    speech = mono(WAKE / "no_wake_word_speech.wav")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        length = int((window_s + 10) * RATE)
        padded = np.concatenate([speech, np.zeros(length)])[:length]
        mic = write_wav(tmp / "idle.wav", padded)
        variants = {
            'start = "button"': '[conversation]\nstart = "button"',
            'start = "wake_word"': '[conversation]\nstart = "wake_word"',
        }
        compare(tmp, mic, variants, runs, window_s, "continuous detection")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cost-runs", type=int, default=3)
    p.add_argument("--window-s", type=float, default=30.0)
    p.add_argument("--slow-s", type=float, default=1.0)
    p.add_argument("--skip-cost", action="store_true")
    args = p.parse_args()
    print(describe())
    for sensitivity in (0.5, 0.7):
        delays = model_delays(sensitivity)
        found = [d for _, d in delays if d is not None]
        missed = [n for n, d in delays if d is None]
        print(f"\nModel alone, sensitivity {sensitivity}: detection after the phrase end {med(found)}"
              f"; missed: {', '.join(missed) or 'none'}")  # fmt: skip
    latency(args.runs, args.slow_s)
    if not args.skip_cost:
        cost(args.cost_runs, args.window_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
