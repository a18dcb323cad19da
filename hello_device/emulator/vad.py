"""The emulator's voice activity detection, on the user-audio timeline."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import webrtcvad

from hello_device.emulator.audio import Int16Array
from hello_device.emulator.config import (
    FRAME,
    FRAME_S,
    MIN_UTTERANCE_S,
    ONSET_FRAMES,
    RATE,
    VAD_AGGRESSIVENESS,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# VAD on the user-audio timeline
# ---------------------------------------------------------------------------------------


@dataclass
class _Onset:
    t: float


@dataclass
class _Utterance:
    start: float
    end: float


class _UtteranceDetector:
    """webrtcvad (20 ms frames) gated by an energy floor; times are sample-based."""

    def __init__(self, end_silence_ms: int, floor_dbfs: float) -> None:
        self._vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
        self._floor = 32768.0 * 10.0 ** (floor_dbfs / 20.0)
        self._end_frames = max(2, math.ceil(end_silence_ms / (FRAME_S * 1000)))
        self._pending = np.zeros(0, dtype=np.int16)
        self._frame_no = 0
        self._run = 0
        self._run_start = 0
        self.in_speech = False
        self._onset = 0
        self._last_voiced_end = 0
        self._silence = 0

    def _voiced(self, frame: Int16Array) -> bool:
        rms = math.sqrt(float(np.mean(frame.astype(np.float64) ** 2)))
        return rms >= self._floor and bool(self._vad.is_speech(frame.tobytes(), RATE))

    def feed(self, samples: Int16Array) -> list[_Onset | _Utterance]:
        events: list[_Onset | _Utterance] = []
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(buf) - len(buf) % FRAME
        for i in range(0, whole, FRAME):
            event = self._step(self._voiced(buf[i : i + FRAME]))
            if event is not None:
                events.append(event)
        self._pending = buf[whole:].copy()
        return events

    def _step(self, voiced: bool) -> _Onset | _Utterance | None:
        n = self._frame_no
        self._frame_no += 1
        if not self.in_speech:
            if not voiced:
                self._run = 0
                return None
            if self._run == 0:
                self._run_start = n
            self._run += 1
            if self._run < ONSET_FRAMES:
                return None
            self.in_speech = True
            self._onset = self._run_start
            self._last_voiced_end = n + 1
            self._silence = 0
            return _Onset(self._onset * FRAME_S)
        if voiced:
            self._silence = 0
            self._last_voiced_end = n + 1
            return None
        self._silence += 1
        if self._silence < self._end_frames:
            return None
        return self.flush()

    def flush(self) -> _Utterance | None:
        """End the current speech now; an utterance if it was long enough."""
        if not self.in_speech:
            return None
        self.in_speech = False
        self._run = 0
        start, end = self._onset * FRAME_S, self._last_voiced_end * FRAME_S
        if end - start < MIN_UTTERANCE_S:
            return None
        return _Utterance(start, end)
