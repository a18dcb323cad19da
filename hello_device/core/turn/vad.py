"""The VAD gate: speech / not speech per frame, confirmed onsets and ends, a pre-roll ring.

Pure and clock-free: time is counted in frames. Input is 16 kHz mono signed 16-bit
little-endian PCM in frames of 10, 20 or 30 ms (what webrtcvad accepts).

A frame is **voiced** when all of these hold:

1. the classifier (webrtcvad by default) calls it speech;
2. its RMS level is at least ``min_level_dbfs`` (near-digital silence is never speech);
3. its level exceeds the running **noise-floor estimate** by ``noise_margin_db``
   (``hold_margin_db`` while the gate is open).

webrtcvad alone fires on steady noise: on a fan it calls the first frames speech (its
own noise model is still adapting) and, with 10 ms frames, keeps firing in bursts. The
noise floor is what makes the gate robust to that. It costs a few float operations per
frame and has two parts:

* an asymmetric tracker of the frame level in dB: a frame **below** the floor pulls it
  down quickly (time constant :data:`FLOOR_FALL_MS`), so it sits near the quiet part of
  the background; a frame above it that is **not speech-like** (the classifier says no,
  or the level is within the margin) pulls it up with :data:`FLOOR_RISE_MS`, so a
  background that gets louder is learnt within a second or two; a **speech-like** frame
  only creeps it up with :data:`FLOOR_CREEP_MS`, so speech does not raise its own
  threshold;
* **minimum statistics**: the floor is never below the quietest frame of the last
  :data:`FLOOR_WINDOW_MS` (once that much was heard; kept per :data:`FLOOR_BLOCK_MS`
  block). Speech always has quieter moments within that window; a
  steady sound the classifier insists is speech (a hum, a tone, loud noise that started
  abruptly) does not, so it is absorbed and the gate closes within about two seconds.

The first frame seeds the floor. On the pink fan noise of the test recordings, single
frames exceed the floor by at most ~9 dB (10 ms frames; ~7 dB at 20 ms, ~6 dB at 30 ms)
and runs of three frames by at most ~5.5 dB, hence the 10 dB default margin; speech
onsets in that noise are 14 dB or more above it within a few tens of ms.

Known behaviour: a loud noise that starts abruptly after quiet (a fan switched on) can
open the gate once, because webrtcvad calls its first frames speech and the floor has
not learnt it yet; the gate then closes after ``end_silence_ms`` plus at most
:data:`FLOOR_WINDOW_MS`. A pure tone is speech to webrtcvad: tone bursts open the gate
like short words, and a continuous tone is absorbed by the minimum statistics.

**Hysteresis**: the gate opens after ``start_frames`` consecutive voiced frames and closes
after ``end_silence_ms`` without one; while open the margin drops to ``hold_margin_db``
so the soft end of a word keeps it open.

On **onset** the result carries the frames from up to ``preroll_ms`` before the first
voiced frame of the confirming run through the current frame (``preroll``), so a caller
that starts streaming at the onset still sends the first syllable. The speech started
``(result.frame_index - result.onset_offset_frames) * frame_ms`` ms after the first
frame's start.

Levels are RMS in dBFS relative to a full-scale square wave (a full-scale sine is about
-3 dBFS); an all-zero frame is :data:`SILENCE_DBFS`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from hello_device.core.level import rms_int16

SAMPLE_RATE = 16000
"""The only rate the gate accepts (what the daemon captures at)."""
FRAME_MS_ALLOWED = (10, 20, 30)
"""Frame lengths webrtcvad accepts."""
SILENCE_DBFS = -120.0
"""Level reported for an all-zero frame (the log of zero is not a number)."""
FLOOR_FALL_MS = 100.0
"""Time constant with which a quieter frame pulls the noise floor down."""
FLOOR_RISE_MS = 1000.0
"""Time constant with which a louder, non-speech frame pulls the noise floor up."""
FLOOR_CREEP_MS = 10000.0
"""Time constant with which a speech-like frame pulls the noise floor up."""
FLOOR_WINDOW_MS = 1500.0
"""Minimum-statistics window: the floor is at least the quietest level in this window."""
FLOOR_BLOCK_MS = 250.0
"""Granularity of the minimum-statistics window."""


def frame_dbfs(frame: bytes) -> float:
    """RMS level of a frame of int16 little-endian samples in dBFS.

    0 dBFS is a full-scale square wave; an empty or all-zero frame gives
    :data:`SILENCE_DBFS`. Runs on every captured frame: one C call (``audioop.rms``,
    from the ``audioop-lts`` package on Python 3.13+) where available, else numpy.
    """
    rms = rms_int16(frame)
    if rms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms / 32768.0))


@dataclass(slots=True)
class GateResult:
    """What :meth:`VadGate.process` decided about one frame (read-only by convention:
    one is built per captured frame, and a frozen dataclass is three times slower to
    build)."""

    voiced: bool
    """This frame was classified as speech (classifier, level and noise floor agree)."""
    speaking: bool
    """The gate is open after this frame."""
    onset: bool
    """Speech was confirmed at this frame (the gate opened)."""
    ended: bool
    """The utterance ended at this frame (``end_silence_ms`` without a voiced frame)."""
    onset_offset_frames: int
    """On onset: how many frames back the speech started (the first voiced frame of the
    confirming run); 0 otherwise."""
    preroll: tuple[bytes, ...]
    """On onset only: the frames from up to ``preroll_ms`` before the speech start through
    this frame, oldest first; empty otherwise."""
    level_dbfs: float
    """RMS level of this frame in dBFS."""
    frame_index: int = 0
    """Index of this frame since the gate was created or reset (the first frame is 0)."""
    noise_floor_dbfs: float = SILENCE_DBFS
    """Noise-floor estimate used for this frame's decision (for logs and tuning)."""


class _NoiseFloor:
    """The noise-floor tracker described in the module docstring (levels in dBFS)."""

    def __init__(self, frame_ms: int) -> None:
        self._fall = 1.0 - math.exp(-frame_ms / FLOOR_FALL_MS)
        self._rise = 1.0 - math.exp(-frame_ms / FLOOR_RISE_MS)
        self._creep = 1.0 - math.exp(-frame_ms / FLOOR_CREEP_MS)
        self._block_frames = max(1, round(FLOOR_BLOCK_MS / frame_ms))
        self._blocks: deque[float] = deque(maxlen=round(FLOOR_WINDOW_MS / FLOOR_BLOCK_MS) - 1)
        self._blocks_min = math.inf
        self._block_min = math.inf
        self._block_len = 0
        self.value: float | None = None
        """The estimate (``None`` before the first frame)."""

    def update(self, level: float, speech_like: bool) -> None:
        """Take one frame's level into account."""
        floor = level if self.value is None else self.value
        if level < floor:
            floor += (level - floor) * self._fall
        elif speech_like:
            floor += (level - floor) * self._creep
        else:
            floor += (level - floor) * self._rise
        # Minimum statistics: the floor is never below the quietest frame of the last
        # FLOOR_WINDOW_MS, so no steady sound stays above it for longer than that.
        self._block_min = min(self._block_min, level)
        self._block_len += 1
        if self._block_len >= self._block_frames:
            self._blocks.append(self._block_min)
            self._blocks_min = min(self._blocks)
            self._block_min = math.inf
            self._block_len = 0
        window_min = min(self._blocks_min, self._block_min)
        self.value = max(floor, window_min) if len(self._blocks) == self._blocks.maxlen else floor


class VadGate:
    """Turns a stream of frames into voiced flags, onsets and ends; see the module docstring.

    :param frame_ms: frame length, 10, 20 or 30.
    :param aggressiveness: webrtcvad mode 0 (least) to 3 (most aggressive filtering of
        non-speech); unused when ``classifier`` is given.
    :param start_frames: consecutive voiced frames that confirm an onset.
    :param end_silence_ms: silence that ends an utterance (the agent's turn hints may
        change it: :meth:`set_end_silence_ms`).
    :param preroll_ms: audio kept from before the first voiced frame and handed out on
        onset.
    :param classifier: ``frame -> is speech``; defaults to ``webrtcvad.Vad(aggressiveness)``
        at 16 kHz. Injectable for tests.
    :param min_level_dbfs: frames quieter than this are never voiced (an absolute floor
        below any real speech at the microphone, above digital near-silence).
    :param noise_margin_db: a frame must be this far above the noise floor to open the
        gate.
    :param hold_margin_db: the same margin while the gate is open (hysteresis; at most
        ``noise_margin_db``).
    """

    def __init__(
        self,
        frame_ms: int = 20,
        aggressiveness: int = 2,
        start_frames: int = 3,
        end_silence_ms: int = 700,
        preroll_ms: int = 300,
        classifier: Callable[[bytes], bool] | None = None,
        min_level_dbfs: float = -60.0,
        noise_margin_db: float = 10.0,
        hold_margin_db: float = 6.0,
    ) -> None:
        if frame_ms not in FRAME_MS_ALLOWED:
            raise ValueError(f"frame_ms must be one of {FRAME_MS_ALLOWED}, not {frame_ms!r}")
        if classifier is None and aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0..3, not {aggressiveness!r}")
        if start_frames < 1:
            raise ValueError(f"start_frames must be at least 1, not {start_frames!r}")
        if preroll_ms < 0:
            raise ValueError(f"preroll_ms must not be negative, not {preroll_ms!r}")
        if noise_margin_db < 0 or not 0 <= hold_margin_db <= noise_margin_db:
            raise ValueError("need 0 <= hold_margin_db <= noise_margin_db")
        self.frame_ms = frame_ms
        self.start_frames = start_frames
        self.preroll_ms = preroll_ms
        self.min_level_dbfs = min_level_dbfs
        self.noise_margin_db = noise_margin_db
        self.hold_margin_db = hold_margin_db
        if classifier is None:
            import webrtcvad

            vad = webrtcvad.Vad(aggressiveness)

            def classify(frame: bytes) -> bool:
                return bool(vad.is_speech(frame, SAMPLE_RATE))

            classifier = classify
        self._classify: Callable[[bytes], bool] = classifier
        self._frame_bytes = SAMPLE_RATE * frame_ms // 1000 * 2
        self._preroll_frames = math.ceil(preroll_ms / frame_ms)
        self._floor = _NoiseFloor(frame_ms)
        self.end_silence_ms = 0
        self._end_frames = 1
        self.set_end_silence_ms(end_silence_ms)
        self._ring: deque[bytes] = deque(maxlen=self._preroll_frames + start_frames)
        self.frame_index = -1
        """Index of the last frame processed (-1 before the first)."""
        self.speaking = False
        """The gate is open."""
        self._run = 0
        self._silence = 0

    @property
    def noise_floor_dbfs(self) -> float | None:
        """Current noise-floor estimate in dBFS (``None`` before the first frame)."""
        return self._floor.value

    def set_end_silence_ms(self, ms: int) -> None:
        """Change the silence that ends an utterance (takes effect from the next frame)."""
        if ms <= 0:
            raise ValueError(f"end_silence_ms must be positive, not {ms!r}")
        self.end_silence_ms = ms
        self._end_frames = max(1, math.ceil(ms / self.frame_ms))

    def close(self) -> None:
        """Close the gate now, keeping the noise floor and the frame counter: what it
        hears next must confirm a fresh onset (the app calls this when the agent stops
        talking, so the loudspeaker's echo that held it open is not taken for the user)."""
        self.speaking = False
        self._run = 0
        self._silence = 0

    def reset(self) -> None:
        """Forget everything: closed gate, empty pre-roll, frame counter and noise floor."""
        self._ring.clear()
        self.frame_index = -1
        self.speaking = False
        self._floor = _NoiseFloor(self.frame_ms)
        self._run = 0
        self._silence = 0

    def process(self, frame: bytes) -> GateResult:
        """Classify one frame and advance the gate; see :class:`GateResult`."""
        if len(frame) != self._frame_bytes:
            raise ValueError(
                f"expected a {self.frame_ms} ms frame of {self._frame_bytes} bytes, "
                f"got {len(frame)}"
            )
        self.frame_index += 1
        self._ring.append(frame)
        level = frame_dbfs(frame)
        floor = self._floor.value if self._floor.value is not None else level
        margin = self.hold_margin_db if self.speaking else self.noise_margin_db
        loud = level >= self.min_level_dbfs and level - floor >= margin
        # Always classify, even when the level already decides: webrtcvad adapts its own
        # noise model and hangover from every frame it sees.
        speech_like = self._classify(frame) and loud
        voiced = speech_like

        self._floor.update(level, speech_like)

        onset = ended = False
        offset = 0
        preroll: tuple[bytes, ...] = ()
        if self.speaking:
            if voiced:
                self._silence = 0
            else:
                self._silence += 1
                if self._silence >= self._end_frames:
                    self.speaking = False
                    ended = True
                    self._silence = 0
                    self._run = 0
        elif voiced:
            self._run += 1
            if self._run >= self.start_frames:
                self.speaking = True
                onset = True
                offset = self._run - 1
                self._run = 0
                self._silence = 0
                # The ring holds preroll_frames + start_frames frames: exactly the
                # pre-roll before the run plus the run itself.
                preroll = tuple(self._ring)
        else:
            self._run = 0

        return GateResult(
            voiced=voiced,
            speaking=self.speaking,
            onset=onset,
            ended=ended,
            onset_offset_frames=offset,
            preroll=preroll,
            level_dbfs=level,
            frame_index=self.frame_index,
            noise_floor_dbfs=floor,
        )
