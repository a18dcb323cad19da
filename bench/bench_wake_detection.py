"""Wake-word accuracy benchmark: detections and false accepts of the on-device detector.

Feeds recordings to :class:`hello_device.wake.detector.WakeWordDetector` the way the
daemon does (16 kHz mono int16, 20 ms chunks) and reports, never asserts:

1. the detection matrix at the default sensitivity 0.5: each wake phrase recording of
   ``tests/data/audio/wake`` (three phrases, three espeak-ng voices) against each
   built-in model, with the peak probability and the model's cutoff;
2. the own-model detection rate at sensitivities 0.3, 0.5, 0.7 and 0.9;
3. false accepts per hour of speech without a wake word, per model and sensitivity:
   on the shared recordings (``no_wake_word_speech.wav``, ``noise_fan.wav``,
   ``utterance.wav``, ``two_turns.wav``, ``bargein.wav``), then on ``--minutes`` of
   speech synthesised with espeak-ng (several voices and speeds, everyday sentences and
   near-miss sentences such as "okay, no booze" or "Alexis"; see ``bench/wake_material.py``),
   clean and mixed with ``noise_fan.wav`` at 10 dB SNR. The near-miss sentences that
   fired are listed.

The generated material is cached (``--material DIR``, default a directory under the
system's temp dir). Without espeak-ng, ``--install`` installs it with apt-get; otherwise
that part is skipped. ``--quick`` uses the shared recordings only.

Usage: .venv/bin/python bench/bench_wake_detection.py [--minutes 30] [--install]
       [--material DIR] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import wake_material

from hello_device.audio.wav import read_wav_pcm
from hello_device.settings import WakeWordSettings
from hello_device.wake.detector import Detection, WakeWordDetector

AUDIO = REPO / "tests" / "data" / "audio"
WAKE = AUDIO / "wake"
RATE = 16000
CHUNK = 640  # 20 ms of 16 kHz int16 mono, as the daemon feeds it
MODELS = ("okay_nabu", "alexa", "hey_mycroft")
EXTRA_MODEL = "hey_jarvis"  # no recordings of its phrase: only "other model" firing
VOICES = ("en-us", "en-gb", "en-us_f3")
SENSITIVITIES = (0.3, 0.5, 0.7, 0.9)
DEFAULT_SENSITIVITY = 0.5
PHRASE_ONSET_S = 1.0  # README of tests/data/audio/wake: each phrase starts at ~1.0 s
NO_WAKE_FILES = (
    WAKE / "no_wake_word_speech.wav",
    AUDIO / "noise_fan.wav",
    AUDIO / "utterance.wav",
    AUDIO / "two_turns.wav",
    AUDIO / "bargein.wav",
)
SNR_DB = 10.0


@dataclass(frozen=True)
class Run:
    """One pass of one detector over one recording."""

    detections: list[Detection]
    peak: float
    peak_at_s: float
    cutoff: float

    def at_s(self) -> list[float]:
        return [d.at_s for d in self.detections]


def detect(model: str, sensitivity: float, pcm: bytes) -> Run:
    detector = WakeWordDetector(WakeWordSettings(model=model, sensitivity=sensitivity))
    found: list[Detection] = []
    for i in range(0, len(pcm), CHUNK):
        found += detector.feed(pcm[i : i + CHUNK])
    return Run(found, detector.highest[0], detector.highest[1], detector.cutoff)


def load(path: Path) -> bytes:
    pcm, rate, channels = read_wav_pcm(path)
    if rate != RATE or channels != 1:
        raise SystemExit(f"{path}: expected 16 kHz mono, got {rate} Hz x {channels}")
    return pcm


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / RATE


def cutoffs(sensitivity: float, models: tuple[str, ...] = MODELS) -> dict[str, float]:
    return {m: detect(m, sensitivity, b"").cutoff for m in models}


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def header() -> None:
    print("# Wake-word detection benchmark")
    print(f"command: {shlex.join(sys.orig_argv)}")
    print(f"machine: {platform.machine()}, {cpu_model()}, {platform.platform()}")
    versions = []
    for pkg in ("pymicro-wakeword", "numpy", "soxr"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{pkg} {metadata.version(pkg)}")
    print(f"python {platform.python_version()}, {', '.join(versions)}")
    print(f"feeding {CHUNK}-byte (20 ms) chunks of 16 kHz mono int16\n")


# ---------------------------------------------------------------------------- 1, 2


def wake_files() -> list[tuple[str, Path]]:
    """(own model, recording) for the nine phrase recordings."""
    return [(m, WAKE / f"{m}__{v}.wav") for m in MODELS for v in VOICES]


def detection_matrix() -> None:
    models = (*MODELS, EXTRA_MODEL)
    cut = cutoffs(DEFAULT_SENSITIVITY, models)
    print(f"## 1. Detection matrix, sensitivity {DEFAULT_SENSITIVITY}")
    print("cell: YES/no, peak probability (cutoff in the header); * = the file's own model")
    print(f"{'recording':<28}" + "".join(f"{f'{m} >{cut[m]:.2f}':>20}" for m in models))
    own_hits, other_fired, jarvis_fired, latencies = 0, 0, 0, []
    files = [*wake_files(), ("okay_nabu", WAKE / "wake_then_question.wav")]
    for own, path in files:
        pcm = load(path)
        cells = []
        for m in models:
            run = detect(m, DEFAULT_SENSITIVITY, pcm)
            hit = bool(run.detections)
            mark = "*" if m == own else " "
            cells.append(f"{mark}{'YES' if hit else 'no':>4} {run.peak:.3f}")
            if path.name == "wake_then_question.wav":
                continue  # an extra row, outside the nine-file summary
            if m == own:
                own_hits += hit
                if hit:
                    latencies.append(run.detections[0].at_s - PHRASE_ONSET_S)
            elif m == EXTRA_MODEL:
                jarvis_fired += hit
            else:
                other_fired += hit
        print(f"{path.name:<28}" + "".join(f"{c:>20}" for c in cells))
    n = len(wake_files())
    print(
        f"own model detected {own_hits}/{n}, other models fired {other_fired}/{2 * n}"
        f" ({EXTRA_MODEL} fired {jarvis_fired}/{n}); wake_then_question.wav not counted"
    )
    if latencies:
        print(
            f"own-model detection {np.median(latencies):.2f} s after the phrase onset"
            f" (median; min {min(latencies):.2f}, max {max(latencies):.2f})"
        )
    print()


def sensitivity_sweep() -> None:
    print("## 2. Own-model detection rate by sensitivity (9 phrase recordings)")
    print(f"{'sens':>5}  " + "".join(f"{m + ' cutoff/hits':>24}" for m in MODELS) + "   own total")
    pcm = {path: load(path) for _, path in wake_files()}
    for s in SENSITIVITIES:
        hits: dict[str, int] = defaultdict(int)
        cut = cutoffs(s)
        for own, path in wake_files():
            hits[own] += bool(detect(own, s, pcm[path]).detections)
        cells = "".join(f"{f'{cut[m]:.3f} {hits[m]}/{len(VOICES)}':>24}" for m in MODELS)
        total = sum(hits.values())
        print(f"{s:>5}  {cells}   {total}/{len(pcm)} ({100 * total / len(pcm):.0f}%)")
    print()


# ---------------------------------------------------------------------------- 3


def false_accepts(pcm: bytes) -> dict[tuple[str, float], Run]:
    return {(m, s): detect(m, s, pcm) for m in MODELS for s in SENSITIVITIES}


def fa_table(
    conditions: dict[str, tuple[float, dict[tuple[str, float], Run]]],
    near: Callable[[Run], int] | None = None,
) -> None:
    """One row per (model, sensitivity): false accepts, their rate per hour and the peak
    probability per condition; with ``near``, how many fell on near-miss sentences."""
    names = list(conditions)
    fa = "FA (near-miss)" if near else "FA"
    print(
        f"{'model':<12}{'sens':>5}{'cutoff':>8}"
        + "".join(f"{f'{c}: {fa}':>26}{'/hour':>8}{'peak':>7}" for c in names)
    )
    for m in MODELS:
        for s in SENSITIVITIES:
            cells = ""
            for c in names:
                hours, runs = conditions[c]
                run = runs[(m, s)]
                n = len(run.detections)
                count = f"{n} ({near(run)})" if near else str(n)
                cells += f"{count:>26}{n / hours:>8.1f}{run.peak:>7.3f}"
            cutoff = conditions[names[0]][1][(m, s)].cutoff
            print(f"{m:<12}{s:>5}{cutoff:>8.3f}{cells}")


def shared_false_accepts() -> None:
    pcm = {p: load(p) for p in NO_WAKE_FILES}
    # Each file on its own, as separate streams: no detection spans two files.
    runs: dict[tuple[str, float], Run] = {}
    fired: list[str] = []
    for m, s in ((m, s) for m in MODELS for s in SENSITIVITIES):
        parts = {p: detect(m, s, pcm[p]) for p in NO_WAKE_FILES}
        best = max(parts.values(), key=lambda r: r.peak)
        found = [d for r in parts.values() for d in r.detections]
        runs[(m, s)] = Run(found, best.peak, best.peak_at_s, best.cutoff)
        fired += [
            f"{m} at sensitivity {s}: {p.name} at {d.at_s:.2f} s (p={d.probability:.2f})"
            for p, r in parts.items()
            for d in r.detections
        ]
    minutes = sum(seconds(x) for x in pcm.values()) / 60
    print("## 3a. False accepts on the shared recordings without a wake word")
    print(f"{', '.join(p.name for p in NO_WAKE_FILES)}: {minutes:.2f} min in total")
    print(f"(one false accept in {minutes:.1f} min is {60 / minutes:.0f} per hour)")
    fa_table({"shared": (minutes / 60, runs)})
    for line in fired:
        print(f"  fired: {line}")
    print()


def generated_false_accepts(args: argparse.Namespace) -> None:
    print(f"## 3b. False accepts on {args.minutes:g} min of synthesised speech (espeak-ng)")
    if not wake_material.ensure_espeak(args.install):
        print("skipped: no espeak-ng\n")
        return
    directory = Path(args.material or Path(tempfile.gettempdir()) / "hello-device-wake-material")
    t0 = time.monotonic()
    material = wake_material.build(args.minutes, directory)
    print(f"material ready in {time.monotonic() - t0:.0f} s: {material.path}")
    near = [s for s in material.segments if s.near_miss]
    voices = sorted({s.voice for s in material.segments})
    print(
        f"{wake_material.espeak_version()}; {len(material.segments)} sentences "
        f"({len(near)} near-miss, {sum(s.end_s - s.start_s for s in near) / 60:.1f} min), "
        f"voices {', '.join(voices)}, speeds {min(wake_material.SPEEDS)}..{max(wake_material.SPEEDS)}"
    )
    noise = np.frombuffer(load(AUDIO / "noise_fan.wav"), np.int16)
    audio: dict[str, NDArray[np.int16]] = {
        "clean": material.pcm,
        f"+fan {SNR_DB:g}dB": wake_material.with_noise(material, noise, SNR_DB),
    }
    hours = material.seconds / 3600
    print(f"{material.seconds / 60:.1f} min = {hours:.3f} h per condition")
    t0 = time.monotonic()
    results = {c: (hours, false_accepts(pcm.tobytes())) for c, pcm in audio.items()}
    print(f"(detectors ran in {time.monotonic() - t0:.0f} s)")

    def on_near_miss(run: Run) -> int:
        return sum(bool(seg and seg.near_miss) for seg in map(material.segment_at, run.at_s()))

    print("a false accept belongs to the sentence that started last before it")
    fa_table(results, on_near_miss)
    # sentence -> "model@sensitivity/condition" -> count, and the voices that fired
    fired: dict[tuple[str, bool], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    voices_fired: dict[str, set[str]] = defaultdict(set)
    for c, (_, runs) in results.items():
        for (m, s), run in runs.items():
            for seg in map(material.segment_at, run.at_s()):
                if seg is not None:
                    fired[(seg.text, seg.near_miss)][f"{m}@{s}/{c}"] += 1
                    voices_fired[seg.text].add(f"{seg.voice} s{seg.speed}")
    spoken: dict[str, int] = defaultdict(int)
    for seg in material.segments:
        spoken[seg.text] += 1
    for want, title in ((True, "near-miss"), (False, "everyday")):
        rows = sorted((k for k in fired if k[1] == want), key=lambda k: -sum(fired[k].values()))
        total = len(wake_material.NEAR_MISS if want else wake_material.EVERYDAY)
        print(f"\n{title} sentences that fired: {len(rows)} of {total}" + ":" * bool(rows))
        for text, _ in rows:
            hits = ", ".join(f"{k} x{n}" for k, n in fired[(text, want)].items())
            print(f"  {text!r} (spoken {spoken[text]}x): {hits}")
            print(f"      by voice/speed: {', '.join(sorted(voices_fired[text]))}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="length of the generated speech (30)"
    )
    parser.add_argument(
        "--install", action="store_true", help="apt-get install espeak-ng if it is missing"
    )
    parser.add_argument("--material", help="cache directory for the generated speech")
    parser.add_argument("--quick", action="store_true", help="shared recordings only")
    args = parser.parse_args()
    t0 = time.monotonic()
    with contextlib.suppress(BrokenPipeError):
        header()
        detection_matrix()
        sensitivity_sweep()
        shared_false_accepts()
        if args.quick:
            print("## 3b. skipped (--quick)\n")
        else:
            generated_false_accepts(args)
        print(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
