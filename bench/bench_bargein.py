"""Barge-in benchmark (issue 6, "How well"): reaction time and false barge-ins.

Runs the real daemon (file backend, paced in real time) against the bundled emulator,
in-process, several daemons at once (each with its own emulator on its own loopback
port). The agent's greeting is long (the speech of ``utterance.wav`` four times, about
11.8 s) and starts well before 6 s, so it is playing when the user talks.

Reaction (``bargein.wav`` as the microphone, shifted by ``i * 23 ms`` of leading silence
so the onset falls on every phase of the 20 ms frame and of the greeting):

- ``local``: the device's own barge-in; the emulator's ``interruption`` is turned off,
  so only the device can stop the greeting;
- ``platform``: local barge-in off, the emulator's interruption on and ``vad.send =
  "all"``: what a client that relies on the platform's interruption (the official
  Python client) gets on the same setup.

Reaction is measured in the files' shared timeline, from the user's speech onset in the
input (6.02 s + shift, README of shared/audio) to the end of agent audio in the output,
two ways: ``stop`` is the last non-zero sample before the first 100 ms of digital
silence after the greeting began (a flushed player writes zeros; the greeting itself has
no run of zeros longer than 2 ms), so a reply that follows later is not counted;
``audible`` is the end of the last 10 ms window above -45 dBFS before that (earlier than
``stop`` when the onset falls in a pause of the greeting).

False barge-ins (counted from the daemon's "barge-in" log line, per run): the long
greeting with ``noise_fan.wav`` as the microphone; with no user and the loudspeaker fed
back into the microphone (``audio.loopback_gain`` 1.0 and 2.0); and noise plus loopback.
Each also checks that the greeting played to its end.

``--aec`` adds rows with the in-process echo canceller (``hello_device.audio.aec``)
wired in front of the VAD and the barge-in detector the way the app would (see that
module), including the reaction with the echo at 1.0 in the microphone.

Usage: .venv/bin/python bench/bench_bargein.py [--runs 24] [--concurrency 8] [--aec]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import shlex
import sys
import tempfile
import time
import wave
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.audio.backends.base import Frame
from hello_device.audio.wav import read_wav
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.settings import (
    Settings,
    parse_settings,
)

SHARED = REPO / "tests" / "data" / "audio"  # copies of shared/audio, kept with the code
RATE = 16000
ONSET_S = 6.02  # first user speech in bargein.wav (shared/audio/README.md)
USER_END_S = 9.77  # end of the user's last segment in bargein.wav
STEP_MS = 23  # shift between runs: not a multiple of the 20 ms frame
MAX_SHIFT_MS = 460
GREETING_REPEATS = 4
LOUD_DBFS = -45.0
GOAL_MEDIAN_MS = 150.0
GOAL_MAX_MS = 250.0
AEC_LAG = 128  # samples: pywebrtc-audio's AEC3 delays the capture by 8 ms (measured)
ECHO_PATH_MS = 2  # acoustic + converter delay emulated in the AEC rows (see make_daemon)

RUN_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("run_tag", default="")


# ---------------------------------------------------------------------------- logging


class PerRunLog(logging.Handler):
    """Collects the daemon's log lines per run (a context variable tags each run's tasks)."""

    def __init__(self, echo: bool) -> None:
        super().__init__(logging.INFO)
        self.lines: defaultdict[str, list[str]] = defaultdict(list)
        self.echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        tag = RUN_TAG.get()
        message = record.getMessage()
        self.lines[tag].append(message)
        if self.echo or record.levelno >= logging.ERROR:
            print(f"  [{tag}] {record.levelname} {record.name}: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------- audio


def load_mono(path: Path) -> np.ndarray:
    data, rate = read_wav(str(path))
    if rate != RATE:
        raise SystemExit(f"{path}: expected {RATE} Hz, got {rate}")
    mono = data.mean(axis=1) if data.ndim == 2 else data
    return mono.astype(np.int16)


def write_wav(path: Path, data: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(data, dtype="<i2").tobytes())
    return path


def greeting_wav(path: Path) -> tuple[Path, float]:
    """The long greeting: the speech of utterance.wav, GREETING_REPEATS times."""
    speech = load_mono(SHARED / "utterance.wav")
    part = speech[int(1.0 * RATE) : int(3.95 * RATE)]
    data = np.concatenate([part] * GREETING_REPEATS)
    return write_wav(path, data), len(data) / RATE


def shifted(path: Path, source: np.ndarray, shift_ms: int) -> Path:
    return write_wav(path, np.concatenate([np.zeros(shift_ms * RATE // 1000, np.int16), source]))


def read_output(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return data, w.getframerate()


def envelope_dbfs(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS per 10 ms window, dBFS."""
    n = rate // 100
    frames = len(x) // n
    rms = np.sqrt(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-9)
    return np.asarray(20 * np.log10(rms / 32768.0))


def sound_span(x: np.ndarray, rate: int) -> tuple[float, float] | None:
    """(first, last) second of 10 ms windows above LOUD_DBFS."""
    loud = np.nonzero(envelope_dbfs(x, rate) > LOUD_DBFS)[0]
    if len(loud) == 0:
        return None
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


def first_span(x: np.ndarray, rate: int, max_gap_s: float = 0.5) -> tuple[float, float] | None:
    """The first stretch of sound (10 ms windows above LOUD_DBFS, gaps under ``max_gap_s``
    bridged): the greeting, without the replies that may follow it."""
    loud = np.nonzero(envelope_dbfs(x, rate) > LOUD_DBFS)[0]
    if len(loud) == 0:
        return None
    gaps = np.nonzero(np.diff(loud) * 0.01 >= max_gap_s)[0]
    last = loud[gaps[0]] if len(gaps) else loud[-1]
    return loud[0] * 0.01, (last + 1) * 0.01


def greeting_end(out: np.ndarray, rate: int, min_zeros_s: float = 0.1) -> float | None:
    """When the greeting's playback stopped: the start of the first run of at least
    ``min_zeros_s`` of digital silence after its first sound (the greeting itself has no
    run of zeros longer than 2 ms; a flushed player writes zeros)."""
    nonzero = np.nonzero(out)[0]
    if len(nonzero) == 0:
        return None
    gaps = np.nonzero(np.diff(nonzero) > min_zeros_s * rate)[0]
    last = nonzero[gaps[0]] if len(gaps) else nonzero[-1]
    return float(last + 1) / rate


def reaction(out: np.ndarray, rate: int, onset_s: float) -> tuple[float, float]:
    """(stop, audible) in ms after ``onset_s``; see the module docstring. Negative: the
    greeting stopped before the user spoke."""
    stop_s = greeting_end(out, rate) or 0.0
    span = sound_span(out[: int(stop_s * rate)], rate)
    audible_s = span[1] if span else 0.0
    return (stop_s - onset_s) * 1000.0, (audible_s - onset_s) * 1000.0


# ---------------------------------------------------------------------------- runs


@dataclass
class Scenario:
    name: str
    mic: str  # "bargein" | "noise" | "silence"
    local: bool = True
    platform_interruptions: bool = False
    loopback: float = 0.0
    aec: bool = False
    uplink_chunk_ms: int = 0
    runs: int = 1


@dataclass
class Result:
    scenario: str
    shift_ms: int
    code: int
    barge_ins: int
    interruptions_sent: int
    user_turns: int = 0
    stop_ms: float | None = None
    audible_ms: float | None = None
    greeting_span: tuple[float, float] | None = None
    aec_cpu_us: list[float] = field(default_factory=list)


def settings_for(tmp: Path, emu: Emulator, mic: Path, sc: Scenario) -> Settings:
    data: dict[str, Any] = {
        "device": {"id": "bench-device", "name": "Bench"},
        "platform": {"agent_id": emu.config.agent_id, "api_base_url": emu.http_url},
        "conversation": {"start": "auto", "inactivity_timeout_s": 0},
        "audio": {
            "backend": "file",
            "input_file": str(mic),
            "output_file": str(tmp / "out.wav"),
            "exit_at_end": True,
            "loopback_gain": sc.loopback,
        },
        "barge_in": {"enabled": sc.local, "echo_cancel": "webrtc" if sc.aec else "off"},
        "earcons": {"enabled": False},
        "state": {"dir": str(tmp / "state")},
    }
    if not sc.local:
        data["vad"] = {"send": "all"}  # like the official client: stream everything
    return parse_settings(data, str(tmp / "bench.toml"), env={})


def make_daemon(settings: Settings, sc: Scenario) -> tuple[Daemon, list[float]]:
    """The daemon, with the bench's wrappers around :meth:`Daemon.on_frame`:

    - ``sc.aec``: the in-process echo canceller in front of everything, fed with what the
      player played (the patch proposed for the app, see hardware/echo-cancellation.md);
    - ``sc.uplink_chunk_ms``: the uplink batched into chunks of that length, as the
      official Python client sends the microphone (250 ms).
    """
    cpu: list[float] = []
    player = None
    if sc.aec:
        from hello_device.audio.aec import TappedPlayer

        player = TappedPlayer(rate=RATE, volume=settings.audio.volume)
    daemon = Daemon(settings, player=player)
    plain_on_frame = daemon.on_frame
    process = None
    if sc.aec:
        from hello_device.audio.aec import EchoCanceller

        assert isinstance(player, TappedPlayer)
        aec = EchoCanceller(settings.audio.frame_ms, RATE)
        tap = player.tap
        # The file backend's echo is sample-aligned with what was played (no acoustic
        # path); a real echo comes at least ~1 ms later, and AEC3 needs that: with the
        # reference not leading, it leaves bursts of echo. Delay the microphone by
        # ECHO_PATH_MS, like the air and the converters would.
        line = np.zeros(ECHO_PATH_MS * RATE // 1000, dtype=np.int16)

        def process(pcm: bytes) -> bytes:
            nonlocal line
            far = tap.take(len(pcm) // 2)
            joined = np.concatenate([line, np.frombuffer(pcm, dtype="<i2")])
            mic, line = joined[: len(joined) - len(line)], joined[len(joined) - len(line) :]
            t0 = time.thread_time()
            clean = aec.process(mic.tobytes(), far)
            cpu.append((time.thread_time() - t0) * 1e6)
            return clean

    batched: set[int] = set()

    def batch_uplink(session: Any) -> None:
        send = session.send_frame
        pending: list[tuple[bytes, float]] = []
        per_chunk = max(1, round(sc.uplink_chunk_ms / settings.audio.frame_ms))

        def send_frame(pcm: bytes, captured_at: float) -> None:
            pending.append((pcm, captured_at))
            if len(pending) >= per_chunk:
                for item in pending:
                    send(*item)
                pending.clear()

        session.send_frame = send_frame
        batched.add(id(session))

    def on_frame(frame: Frame) -> None:
        session = daemon.session
        if sc.uplink_chunk_ms and session is not None and id(session) not in batched:
            batch_uplink(session)
        if process is not None:
            frame = Frame(process(frame.pcm), frame.index, frame.captured_at)
        plain_on_frame(frame)

    daemon.on_frame = on_frame  # type: ignore[method-assign]
    return daemon, cpu


async def one_run(
    sc: Scenario,
    index: int,
    shift_ms: int,
    greeting: Path,
    sources: dict[str, np.ndarray],
    tmp_root: Path,
    limit_s: float,
) -> Result:
    tag = f"{sc.name}#{index}"
    RUN_TAG.set(tag)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=tmp_root))
    mic = shifted(tmp / "mic.wav", sources[sc.mic], shift_ms)
    config = EmulatorConfig(
        first_message="Let me tell you a long story.",
        first_message_audio=str(greeting),
        interruptions=sc.platform_interruptions,
    )
    async with Emulator(config) as emu:
        settings = settings_for(tmp, emu, mic, sc)
        daemon, cpu = make_daemon(settings, sc)
        code = await asyncio.wait_for(daemon.run(), limit_s)
        sent = sum(len(c.interruptions_sent) for c in emu.conversations)
        turns = sum(len(c.utterances) for c in emu.conversations)
    lines = LOG.lines.get(tag, []) if LOG else []
    barge_ins = sum(1 for m in lines if m.startswith("barge-in"))
    out, rate = read_output(tmp / "out.wav")
    result = Result(sc.name, shift_ms, code, barge_ins, sent, turns, aec_cpu_us=cpu)
    if sc.mic == "bargein":
        onset = ONSET_S + shift_ms / 1000
        result.stop_ms, result.audible_ms = reaction(out, rate, onset)
    else:
        result.greeting_span = first_span(out, rate)
    return result


LOG: PerRunLog | None = None


def shift_of(index: int) -> int:
    """Leading silence of run ``index``: 0, 23, ... 460 ms, then 3, 26, ... (all distinct
    for the first 480 runs)."""
    return (index * STEP_MS) % (MAX_SHIFT_MS + 20)


async def run_all(
    scenarios: list[Scenario], concurrency: int, tmp_root: Path, greeting: Path
) -> list[Result]:
    sources = {
        "bargein": load_mono(SHARED / "bargein.wav"),
        "noise": load_mono(SHARED / "noise_fan.wav"),
        "silence": np.zeros(12 * RATE, dtype=np.int16),
    }
    sources["noise"] = np.concatenate([sources["noise"], np.zeros(0, np.int16)])
    sem = asyncio.Semaphore(concurrency)
    done = 0
    total = sum(sc.runs for sc in scenarios)

    async def guarded(sc: Scenario, index: int) -> Result:
        nonlocal done
        async with sem:
            ctx = contextvars.copy_context()
            task = asyncio.get_running_loop().create_task(
                one_run(sc, index, shift_of(index), greeting, sources, tmp_root, 60.0),
                context=ctx,
            )
            result = await task
            done += 1
            print(f"\r  {done}/{total} runs", end="", file=sys.stderr, flush=True)
            return result

    jobs = []
    for sc in scenarios:
        for i in range(sc.runs):
            jobs.append(guarded(sc, i))
    results = await asyncio.gather(*jobs)
    print(file=sys.stderr)
    return list(results)


# ---------------------------------------------------------------------------- report


def stats(values: list[float]) -> tuple[float, float, float, float]:
    a = np.asarray(values)
    return (
        float(np.median(a)),
        float(np.percentile(a, 90)),
        float(a.min()),
        float(a.max()),
    )


def details(results: list[Result]) -> None:
    print(
        "| scenario | shift (ms) | exit | stop (ms) | audible (ms) | barge-ins | platform "
        "interruptions | user turns | first stretch of sound (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        span = f"{r.greeting_span[0]:.2f}-{r.greeting_span[1]:.2f}" if r.greeting_span else ""
        stop = "" if r.stop_ms is None else f"{r.stop_ms:.0f}"
        aud = "" if r.audible_ms is None else f"{r.audible_ms:.0f}"
        print(
            f"| {r.scenario} | {r.shift_ms} | {r.code} | {stop} | {aud} | {r.barge_ins} "
            f"| {r.interruptions_sent} | {r.user_turns} | {span} |"
        )
    print()


def report(results: list[Result], greeting_s: float, command: str, wall: float) -> None:
    by: defaultdict[str, list[Result]] = defaultdict(list)
    for r in results:
        by[r.scenario].append(r)
    bad = [r for r in results if r.code != 0]
    print(f"command: {command}")
    print(f"{len(results)} runs in {wall:.0f} s; greeting {greeting_s:.2f} s long")
    if bad:
        print(f"WARNING: {len(bad)} runs exited with a non-zero code")
    print()
    print("Reaction: speech onset in the input -> end of agent audio in the output (ms)")
    print()
    print(
        "| mode | runs | stop median | p90 | min | max | audible median | p90 | max "
        "| barge-ins | platform interruptions |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    medians: dict[str, float] = {}
    for name, rs in by.items():
        if rs[0].stop_ms is None:
            continue
        stop = [r.stop_ms for r in rs if r.stop_ms is not None]
        aud = [r.audible_ms for r in rs if r.audible_ms is not None]
        s, a = stats(stop), stats(aud)
        medians[name] = s[0]
        print(
            f"| {name} | {len(rs)} | {s[0]:.0f} | {s[1]:.0f} | {s[2]:.0f} | {s[3]:.0f} "
            f"| {a[0]:.0f} | {a[1]:.0f} | {a[3]:.0f} "
            f"| {sum(r.barge_ins for r in rs)} | {sum(r.interruptions_sent for r in rs)} |"
        )
    print()
    if "local" in by and by["local"][0].stop_ms is not None:
        stop = [r.stop_ms or 0.0 for r in by["local"]]
        med, mx = float(np.median(stop)), max(stop)
        ok = med <= GOAL_MEDIAN_MS and mx <= GOAL_MAX_MS
        print(
            f"goal (local): median <= {GOAL_MEDIAN_MS:.0f} ms and max <= {GOAL_MAX_MS:.0f} ms: "
            f"{'MET' if ok else 'NOT MET'} (median {med:.0f}, max {mx:.0f})"
        )
        if "platform" in medians:
            print(
                f"platform interruption only / local barge-in, median: "
                f"{medians['platform'] / med:.1f}x ({medians['platform']:.0f} vs {med:.0f} ms)"
            )
        print()
    print("False barge-ins: no user speech while the greeting plays")
    print()
    print(
        "| mic | runs | barge-ins (goal 0) | greeting heard (s, min-max) | played to its end "
        "| user turns the platform heard |"
    )
    print("|---|---|---|---|---|---|")
    for name, rs in by.items():
        if rs[0].stop_ms is not None:
            continue
        spans = [r.greeting_span for r in rs]
        lengths = [(b - a) if (a, b) != (0, 0) else 0.0 for a, b in (s or (0, 0) for s in spans)]
        full = sum(1 for x in lengths if x >= greeting_s - 0.1)
        print(
            f"| {name} | {len(rs)} | {sum(r.barge_ins for r in rs)} "
            f"| {min(lengths):.2f}-{max(lengths):.2f} | {full}/{len(rs)} "
            f"| {sum(r.user_turns for r in rs)} |"
        )
    cpu = [x for r in results for x in r.aec_cpu_us]
    if cpu:
        print()
        print(
            f"in-process AEC cost per {20} ms frame (this machine, {len(cpu)} frames): "
            f"median {np.median(cpu):.0f} us, p99 {np.percentile(cpu, 99):.0f} us"
        )


def room_response(rt60_s: float, seed: int = 1) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then exponentially decaying
    noise (reverberation time ``rt60_s``) from 3 ms on."""
    rng = np.random.default_rng(seed)
    n = int(rt60_s * RATE)
    t = np.arange(n) / RATE
    ir = 0.25 * rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)
    ir[: int(0.003 * RATE)] = 0.0
    ir[0] = 1.0
    return ir


def run_canceller(mic: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """The whole signal through a fresh EchoCanceller, 20 ms frames; (output, CPU us/frame)."""
    from hello_device.audio.aec import EchoCanceller

    aec = EchoCanceller(20, RATE)
    n = 20 * RATE // 1000
    out = np.zeros(len(mic) // n * n, dtype=np.int16)
    cpu = []
    mic16 = np.clip(mic, -32768, 32767).astype("<i2")
    far16 = np.clip(far, -32768, 32767).astype("<i2")
    for i in range(0, len(out), n):
        t0 = time.thread_time()
        clean = aec.process(mic16[i : i + n].tobytes(), far16[i : i + n].tobytes())
        cpu.append((time.thread_time() - t0) * 1e6)
        out[i : i + n] = np.frombuffer(clean, dtype="<i2")
    return out.astype(np.float64), cpu


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-3))


def aec_evaluation() -> None:
    """In-process AEC on the recordings: ERLE, what is left of the user, CPU."""
    from hello_device.audio.aec import available, unavailable_reason

    print("In-process echo cancellation (WebRTC AEC3 via pywebrtc-audio), offline")
    print()
    if not available():
        print(f"not available: {unavailable_reason()}")
        return
    user = load_mono(SHARED / "bargein.wav").astype(np.float64)
    speech = load_mono(SHARED / "utterance.wav").astype(np.float64)
    part = speech[int(1.0 * RATE) : int(3.95 * RATE)]
    far = np.zeros(len(user))
    start = int(0.4 * RATE)
    greeting = np.tile(part, GREETING_REPEATS)[: len(user) - start]
    far[start : start + len(greeting)] = greeting
    n = RATE // 50
    frames = len(far) // n
    far_db = np.array([db(far[i * n : (i + 1) * n]) for i in range(frames)]) - 90.3
    active = far_db > -50  # frames where the greeting sounds
    settled = np.arange(frames) * 0.02 >= 1.4  # one second after the greeting starts
    no_user = np.arange(frames) * 0.02 < ONSET_S - 0.02
    talk = slice(int(ONSET_S * RATE), int(USER_END_S * RATE))
    first = slice(int(ONSET_S * RATE), int((ONSET_S + 0.12) * RATE))
    print(
        "echo = the greeting (utterance.wav x4, from 0.4 s) delayed, optionally through a "
        "room response, at the level played (0 dB); user = bargein.wav (6.02-9.77 s)"
    )
    print()
    print(
        "| echo path | ERLE (dB, echo only, 1.4-6 s) | frames < 20 dB | converged after (s) "
        "| user corr. raw -> AEC | user level change (dB) | first 120 ms of user (dB) "
        "| user through after (ms) | CPU us / 20 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for delay_ms, rt60 in ((2, 0.0), (20, 0.0), (60, 0.0), (150, 0.0), (20, 0.3), (60, 0.6)):
        echo = np.concatenate([np.zeros(delay_ms * RATE // 1000), far])[: len(far)]
        if rt60:
            echo = np.convolve(echo, room_response(rt60))[: len(far)]
            echo *= np.sqrt(np.mean(far**2) / np.mean(echo**2))
        out_e, cpu = run_canceller(echo, far)
        per = np.array(
            [db(echo[i * n : (i + 1) * n]) - db(out_e[i * n : (i + 1) * n]) for i in range(frames)]
        )
        sel = active & settled & no_user
        erle = db(np.concatenate([echo[i * n : (i + 1) * n] for i in np.nonzero(sel)[0]])) - db(
            np.concatenate([out_e[i * n : (i + 1) * n] for i in np.nonzero(sel)[0]])
        )
        weak = int(np.sum(per[sel] < 20))
        loud = (far_db > -35) & no_user
        bad = [i for i in np.nonzero(loud)[0] if per[i] < 20]
        converged = (bad[-1] + 1) * 0.02 - 0.4 if bad else 0.0
        mic = echo + user
        out_u, _ = run_canceller(mic, far)
        out_u = np.concatenate([out_u[AEC_LAG:], np.zeros(AEC_LAG)])  # AEC3's own latency

        def corr(x: np.ndarray, sl: slice = talk) -> float:
            a, b = x[sl], user[sl]
            return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))

        through = "never"
        for i in range(int(ONSET_S / 0.02), int(USER_END_S / 0.02)):
            sl = slice(i * n, (i + 1) * n)
            clean_db = db(user[sl]) - 90.3
            if clean_db > -40 and db(out_u[sl]) - 90.3 >= clean_db - 6:
                through = f"{(i + 1) * 20 - ONSET_S * 1000:.0f}"
                break
        path = f"{delay_ms} ms" + (f", RT60 {rt60:.1f} s" if rt60 else ", no reverb")
        print(
            f"| {path} | {erle:.1f} | {weak}/{int(sel.sum())} | {converged:.2f} "
            f"| {corr(mic):.2f} -> {corr(out_u):.2f} | {db(out_u[talk]) - db(user[talk]):+.1f} "
            f"| {db(out_u[first]) - db(user[first]):+.1f} | {through} "
            f"| {np.median(cpu):.0f} (p99 {np.percentile(cpu, 99):.0f}) |"
        )
    print()


def scenarios_for(args: argparse.Namespace) -> list[Scenario]:
    n, m = args.runs, args.false_runs
    out = [
        Scenario("local", "bargein", runs=n),
        Scenario("platform", "bargein", local=False, platform_interruptions=True, runs=n),
        Scenario(
            "platform, 250 ms uplink chunks",
            "bargein",
            local=False,
            platform_interruptions=True,
            uplink_chunk_ms=250,
            runs=n,
        ),
        Scenario("noise_fan", "noise", runs=m),
        Scenario("loopback 1.0", "silence", loopback=1.0, runs=m),
        Scenario("loopback 2.0", "silence", loopback=2.0, runs=m),
        Scenario("noise_fan + loopback 1.0", "noise", loopback=1.0, runs=m),
    ]
    if args.aec:
        out += [
            Scenario("local, loopback 1.0, AEC", "bargein", loopback=1.0, aec=True, runs=n),
            Scenario("local, loopback 1.0, no AEC", "bargein", loopback=1.0, runs=n),
            Scenario("loopback 1.0, AEC", "silence", loopback=1.0, aec=True, runs=m),
            Scenario("loopback 2.0, AEC", "silence", loopback=2.0, aec=True, runs=m),
        ]
    if args.only:
        out = [s for s in out if any(k in s.name for k in args.only)]
    return out


def main() -> None:
    global LOG
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=24, help="reaction runs per mode (>= 20)")
    parser.add_argument("--false-runs", type=int, default=4, help="runs per false-barge-in case")
    parser.add_argument("--concurrency", type=int, default=8, help="daemons at once")
    parser.add_argument("--aec", action="store_true", help="add in-process AEC rows")
    parser.add_argument(
        "--aec-eval", action="store_true", help="only the offline AEC evaluation, then exit"
    )
    parser.add_argument("--only", nargs="*", help="only scenarios whose name contains one")
    parser.add_argument("--details", action="store_true", help="also print every run")
    parser.add_argument("-v", "--verbose", action="store_true", help="echo the daemons' logs")
    args = parser.parse_args()
    if args.aec_eval:
        aec_evaluation()
        return
    LOG = PerRunLog(args.verbose)
    pkg = logging.getLogger("hello_device")
    pkg.setLevel(logging.INFO)
    pkg.addHandler(LOG)
    command = ".venv/bin/python bench/bench_bargein.py " + shlex.join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-bargein-") as tmp:
        root = Path(tmp)
        greeting, greeting_s = greeting_wav(root / "greeting.wav")
        t0 = time.monotonic()
        results = asyncio.run(run_all(scenarios_for(args), args.concurrency, root, greeting))
        wall = time.monotonic() - t0
    with contextlib.suppress(BrokenPipeError):
        if args.details:
            details(results)
        report(results, greeting_s, command.strip(), wall)


if __name__ == "__main__":
    main()
