"""Long speech without a wake word, synthesised with espeak-ng, for bench_wake_detection.

:func:`build` speaks :data:`EVERYDAY` and :data:`NEAR_MISS` sentences (a shuffled pass
over all of them, again and again) in several voices (:data:`VOICES`) at speeds of
140..190 words per minute, resamples espeak-ng's 22050 Hz to 16 kHz (``soxr``) and joins
them with 0.3..1.0 s pauses, all from a seeded RNG, until the material is long enough. The
result is cached in a directory as a 16 kHz mono WAV and a JSON list of its sentences, so
a second run reuses it. :func:`with_noise` mixes in a noise recording at a given SNR.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr
from numpy.typing import NDArray

from hello_device.audio.wav import WavWriter, read_wav

RATE = 16000
ESPEAK = "espeak-ng"
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb-x-rp", "en-gb-scotland+f2")
SPEEDS = (140, 150, 160, 170, 180, 190)
PAUSE_S = (0.3, 1.0)

EVERYDAY = (
    "Good morning, did you sleep well last night?",
    "Could you turn the lights off in the living room?",
    "I think it is going to rain later this afternoon.",
    "The train to the city leaves at a quarter past eight.",
    "Please remind me to call the dentist tomorrow.",
    "We are out of milk, eggs and bread again.",
    "What time does the pharmacy close on Sundays?",
    "My sister is coming over for dinner on Friday.",
    "The kids need to be picked up from school at three.",
    "Can you play some quiet music while I cook?",
    "I left my keys on the kitchen table, I think.",
    "How long should the pasta boil for?",
    "The heating has been making a strange noise all week.",
    "Let's go for a walk by the river after lunch.",
    "I need to water the plants before we leave.",
    "The package should arrive sometime between ten and two.",
    "Set a timer for twelve minutes, please.",
    "Did anyone see where I put my glasses?",
    "The football match starts at half past seven tonight.",
    "I would like a cup of tea with a little honey.",
    "Our flight was delayed by almost two hours.",
    "The neighbours are having a party again this weekend.",
    "Could you read me the news headlines?",
    "It is colder today than it was yesterday.",
    "Remember to take the recycling out on Tuesday.",
    "I have a meeting with the bank at eleven thirty.",
    "The library books are due back next Monday.",
    "What is the capital city of Australia?",
    "Turn the volume down a little, it is too loud.",
    "The cat has been sleeping on the sofa all day.",
    "I am thinking about painting the bedroom blue.",
    "How many grams are there in a pound?",
    "We should book a table for six people.",
    "The printer is out of paper and ink.",
    "My phone battery is almost empty.",
    "Tell me a joke about a penguin.",
    "The garden needs a lot of work this spring.",
    "I can never remember my password for that site.",
    "Traffic on the motorway was terrible this morning.",
    "Put the leftovers in the fridge before you go to bed.",
    "Which film would you like to watch tonight?",
    "The doctor said I should drink more water.",
    "I am going to the gym after work today.",
    "Could you add washing powder to the shopping list?",
    "The baby finally fell asleep around midnight.",
    "We need to fix the leaking tap in the bathroom.",
    "Tomorrow will be sunny with a light breeze.",
    "How far is it to the nearest petrol station?",
    "I started reading a new book about sailing.",
    "Please lock the back door when you leave.",
    "The soup needs a bit more salt and pepper.",
    "My grandmother turns ninety next month.",
    "Is the post office open on Saturday morning?",
    "I forgot to charge the vacuum cleaner again.",
    "The bus was full, so I walked the whole way.",
    "Let me know when the washing machine is done.",
    "There is a concert in the park next Thursday.",
    "I would rather stay home and relax this evening.",
    "The windows are dirty, we should clean them soon.",
    "What's the weather going to be like on the weekend?",
    "Could you call a taxi for half past nine?",
    "I bought fresh strawberries at the market.",
)
NEAR_MISS = (
    "Okay, now let's move on to the next item on the list.",
    "Okay, no problem, I will call you back later.",
    "Okay, no booze at the party tonight.",
    "Okay, new boots are on sale at the shop.",
    "Honestly, that restaurant was no bueno.",
    "The service was slow and the food was no bueno.",
    "Alexander will bring the salad tonight.",
    "Ask Alexander about the tickets for the show.",
    "Alexis said the meeting has moved to Friday.",
    "Alexis and her brother are visiting next week.",
    "Hey, how have you been lately?",
    "Hey, could you pass me the salt, please?",
    "Hey, my friend, it is good to see you again.",
    "This is my craft, and I practise it every day.",
    "I sold my craft beer collection last year.",
    "Hey, my craft project is finally finished.",
    "Microsoft released an update for my laptop.",
    "Hey, Microsoft Word keeps crashing on me.",
    "He always keeps a banana in his backpack.",
    "Okay, the banana bread is ready to come out.",
    "Hey, my cousin brought a banana cake.",
    "Okay, Nadia, see you at noon.",
)


@dataclass(frozen=True)
class Segment:
    """One sentence of the material: where it is (seconds) and how it was spoken."""

    start_s: float
    end_s: float
    text: str
    voice: str
    speed: int
    near_miss: bool


@dataclass
class Material:
    pcm: NDArray[np.int16]
    segments: list[Segment]
    path: Path

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE

    def segment_at(self, t: float) -> Segment | None:
        """The sentence last started at ``t`` (a detection lands at or after its word)."""
        i = bisect.bisect_right([s.start_s for s in self.segments], t) - 1
        return self.segments[i] if i >= 0 else None


def ensure_espeak(install: bool, log: Callable[[str], None] = print) -> bool:
    """Whether espeak-ng can be run; with ``install``, try apt-get to install it first."""
    if shutil.which(ESPEAK):
        return True
    if not install:
        log(f"{ESPEAK} is not installed: rerun with --install (apt-get) or install it yourself")
        return False
    if not shutil.which("apt-get"):
        log(f"{ESPEAK} is not installed and there is no apt-get to install it")
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", ESPEAK]
    log("installing: " + " ".join(cmd))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # a stale package list: update it once and retry
        log("apt-get install failed; running apt-get update and retrying")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not shutil.which(ESPEAK):
        log(f"could not install {ESPEAK}: {done.stderr.strip()[-500:]}")
        return False
    return True


def espeak_version() -> str:
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split(" Data at")[0].strip()


def usable_voices() -> list[str]:
    """:data:`VOICES` that this espeak-ng knows (its variant, after ``+``, always works)."""
    out = subprocess.run([ESPEAK, "--voices=en"], capture_output=True, text=True, check=False)
    known = {line.split()[1] for line in out.stdout.splitlines()[1:] if len(line.split()) > 1}
    return [v for v in VOICES if v.split("+")[0] in known]


def synthesize(text: str, voice: str, speed: int, workdir: Path) -> NDArray[np.float32]:
    """One sentence as 16 kHz float samples (int16 scale)."""
    with tempfile.NamedTemporaryFile(dir=workdir, suffix=".wav") as tmp:
        cmd = [ESPEAK, "-v", voice, "-s", str(speed), "-w", tmp.name, text]
        subprocess.run(cmd, check=True, capture_output=True)
        data, rate = read_wav(tmp.name)
    x = data[:, 0].astype(np.float32)
    if rate != RATE:
        x = np.asarray(soxr.resample(x, rate, RATE), dtype=np.float32)
    return x


def _key(minutes: float, seed: int, voices: list[str]) -> str:
    spec = json.dumps([minutes, seed, voices, SPEEDS, PAUSE_S, EVERYDAY, NEAR_MISS])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def build(
    minutes: float, directory: Path, seed: int = 20240601, log: Callable[[str], None] = print
) -> Material:
    """At least ``minutes`` of speech (see the module docstring), cached in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    voices = usable_voices()
    if not voices:
        raise RuntimeError(f"{ESPEAK} knows none of the voices {VOICES}")
    stem = f"wake_speech_{minutes:g}min_{_key(minutes, seed, voices)}"
    wav_path, json_path = directory / f"{stem}.wav", directory / f"{stem}.json"
    if wav_path.is_file() and json_path.is_file():
        data, _ = read_wav(wav_path)
        cached = [Segment(**s) for s in json.loads(json_path.read_text())]
        log(f"reusing cached material {wav_path}")
        return Material(data[:, 0].copy(), cached, wav_path)

    log(f"synthesising {minutes:g} min of speech with {ESPEAK} into {wav_path} ...")
    rng = np.random.default_rng(seed)
    sentences = [(s, False) for s in EVERYDAY] + [(s, True) for s in NEAR_MISS]
    target = minutes * 60 * RATE
    parts: list[NDArray[np.float32]] = [np.zeros(RATE // 2, np.float32)]
    total = len(parts[0])
    segments: list[Segment] = []
    with (
        tempfile.TemporaryDirectory(dir=directory) as tmp,
        ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool,
    ):
        while total < target:  # one shuffled pass over all sentences per batch
            plan = [
                (*sentences[i], voices[rng.integers(len(voices))], int(rng.choice(SPEEDS)))
                for i in rng.permutation(len(sentences))
            ]
            pauses = rng.uniform(*PAUSE_S, size=len(plan))
            audio = pool.map(lambda p: synthesize(p[0], p[2], p[3], Path(tmp)), plan)
            for (text, near, voice, speed), x, pause in zip(plan, audio, pauses, strict=True):
                if total >= target:
                    break
                segments.append(
                    Segment(total / RATE, (total + len(x)) / RATE, text, voice, speed, near)
                )
                parts += [x, np.zeros(int(pause * RATE), np.float32)]
                total += len(x) + int(pause * RATE)
    pcm = np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype(np.int16)
    with WavWriter(wav_path, RATE, header_every_s=None) as w:
        w.write(pcm)
    json_path.write_text(json.dumps([asdict(s) for s in segments], indent=0))
    return Material(pcm, segments, wav_path)


def with_noise(material: Material, noise: NDArray[np.int16], snr_db: float) -> NDArray[np.int16]:
    """The material plus ``noise`` (looped), scaled so that the speech (the sentences,
    not the pauses) is ``snr_db`` above it."""
    speech = material.pcm.astype(np.float32)
    spoken = np.concatenate(
        [speech[int(s.start_s * RATE) : int(s.end_s * RATE)] for s in material.segments]
    )
    n = np.resize(noise.astype(np.float32), len(speech))
    power = float(np.mean(np.square(spoken, dtype=np.float64)))
    noise_power = float(np.mean(np.square(n, dtype=np.float64)))
    n *= np.float32(np.sqrt(power / (noise_power * 10 ** (snr_db / 10))))
    n += speech
    mixed: NDArray[np.int16] = np.clip(np.rint(n), -32768, 32767).astype(np.int16)
    return mixed
