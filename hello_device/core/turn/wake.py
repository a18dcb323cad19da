"""The wake-word gate: what a wake-word detection means, frame by frame (pure).

The spotter (:class:`WakeSpotter`, the microWakeWord model in the daemon, a fake in
tests) only says "I heard the word". This gate decides whether that is the user, and
which audio goes with it:

* **Privacy**: the spotter is fed only while the microphone is not muted; on unmute it
  starts afresh (its window must not join audio from both sides of the mute).
* **Echo**: the device's own voice must not wake it. A frame counts as the user's when
  the VAD calls it speech and, if the loudspeaker may be heard in it (the agent is
  audible, or stopped less than :data:`ECHO_HOLD_S` ago), the barge-in detector's echo
  guard found it clearly above the predicted echo (``over_echo``). A detection whose
  window (:data:`WINDOW_S`) held any such echo-suspect frame is accepted only with at
  least ``min_user_ms`` of the user's frames in that window; otherwise it is rejected
  as echo (counted in :attr:`WakeGate.rejected_as_echo`). With no echo possible, the
  spotter's word is final.
* **What is sent**: with ``send_wake_audio`` the detection carries the phrase: the
  frames since the start of the speech run it ended (with ``preroll_frames`` before),
  at most :data:`WAKE_AUDIO_S` (pauses shorter than :data:`PHRASE_GAP_S` are inside it). Without it, the phrase stays on the device; if the user
  already talks again at the detection (the spotter answers some 200 ms after the
  phrase ends) and a pause of at least :data:`GAP_FRAMES` frames separates that speech
  from the phrase within the last :data:`LOOKBACK_S`, the frames from that pause on go
  with the detection, so a question spoken straight after the word loses nothing.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW_S = 1.5
"""The audio a detection is judged on (a wake phrase and the spotter's delay)."""
ECHO_HOLD_S = 1.0
"""After the agent stops, the loudspeaker's last words are still in the spotter's window."""
WAKE_AUDIO_S = 2.0
"""At most this much of the phrase goes to the platform with ``send_wake_audio``."""
LOOKBACK_S = 0.4
"""How far back a question that began before the detection is looked for."""
GAP_FRAMES = 3
"""Unvoiced frames that separate the wake phrase from what follows it (60 ms: longer
than most closures inside a word)."""
PHRASE_GAP_S = 0.3
"""A pause this long ends the phrase (shorter ones are inside it: "okay ... nabu")."""


class SpotterHit(Protocol):
    """One detection of the spotter."""

    @property
    def probability(self) -> float: ...


class WakeSpotter(Protocol):
    """The wake-word model: fed 16 kHz mono int16 audio, it answers with detections."""

    @property
    def model_id(self) -> str:
        """The model's name (``okay_nabu``), what logs and status call the word."""
        ...

    def feed(self, pcm: bytes) -> Sequence[SpotterHit]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WakeEvent:
    """An accepted detection: the word, how surely, and the audio that goes with it."""

    word: str
    probability: float
    frames: tuple[bytes, ...] = ()
    """Audio to send before the next live frame, oldest first (see the module doc)."""
    echo: bool = False
    """Rejected: heard in the device's own voice (nothing is to be done but log it)."""


class WakeGate:
    """Feeds the spotter and judges its detections (see the module docstring)."""

    def __init__(
        self,
        spotter: WakeSpotter,
        *,
        frame_ms: int = 20,
        send_wake_audio: bool = False,
        preroll_frames: int = 15,
        min_user_ms: int = 120,
    ) -> None:
        self.spotter = spotter
        self.send_wake_audio = send_wake_audio
        self.preroll_frames = preroll_frames
        self._window = max(1, round(WINDOW_S * 1000 / frame_ms))
        self._echo_hold = round(ECHO_HOLD_S * 1000 / frame_ms)
        self._min_user = max(1, -(-min_user_ms // frame_ms))
        self._lookback = max(GAP_FRAMES + 1, round(LOOKBACK_S * 1000 / frame_ms))
        keep = round(WAKE_AUDIO_S * 1000 / frame_ms) if send_wake_audio else self._lookback
        self._audio: collections.deque[tuple[bytes, bool]] = collections.deque(maxlen=keep)
        # Per frame of the window: 1 = the user's, 0 = unvoiced, -1 = echo-suspect.
        self._frames: collections.deque[int] = collections.deque(maxlen=self._window)
        self._echo_frames = 0  # echo-suspect frames in the window
        self._user_frames = 0
        self._since_echo = self._echo_hold + 1  # frames since the loudspeaker was heard
        self._phrase_gap = max(1, round(PHRASE_GAP_S * 1000 / frame_ms))
        self._feeding = False
        self.rejected_as_echo = 0
        """Detections rejected because the window held echo and too little user speech."""

    @property
    def wake_word(self) -> str:
        """The model's name (``okay_nabu``)."""
        return self.spotter.model_id

    def pause(self) -> None:
        """Stop feeding (muted, or nothing to listen for): the next frame starts afresh."""
        self._feeding = False

    def process(
        self, pcm: bytes, voiced: bool, *, echo_possible: bool, over_echo: bool
    ) -> WakeEvent | None:
        """One captured frame (after any echo cancellation); a detection (accepted, or
        rejected as ``echo``) or None.

        :param voiced: the VAD called this frame speech.
        :param echo_possible: the agent is audible in this frame.
        :param over_echo: the echo guard found this frame clearly above the predicted echo.
        """
        if not self._feeding:
            self._feeding = True
            self.spotter.reset()
            self._audio.clear()
            self._frames.clear()
            self._echo_frames = self._user_frames = 0
        self._since_echo = 0 if echo_possible else self._since_echo + 1
        suspect = self._since_echo <= self._echo_hold
        if suspect and not (voiced and over_echo):
            kind = -1 if echo_possible or voiced else 0
        else:
            kind = 1 if voiced else 0
        self._count(kind)
        self._audio.append((pcm, voiced))
        hits = self.spotter.feed(pcm)
        if not hits:
            return None
        probability = max(hit.probability for hit in hits)
        if self._echo_frames and self._user_frames < self._min_user:
            self.rejected_as_echo += 1
            return WakeEvent(self.wake_word, probability, echo=True)
        frames = self._phrase() if self.send_wake_audio else self._question_start()
        self._audio.clear()
        self._frames.clear()
        self._echo_frames = self._user_frames = 0
        return WakeEvent(self.wake_word, probability, frames)

    # ------------------------------------------------------------ internals

    def _count(self, kind: int) -> None:
        frames = self._frames
        if len(frames) == frames.maxlen:
            old = frames[0]
            self._echo_frames -= old == -1
            self._user_frames -= old == 1
        frames.append(kind)
        self._echo_frames += kind == -1
        self._user_frames += kind == 1

    def _phrase(self) -> tuple[bytes, ...]:
        """The last speech run (pauses shorter than PHRASE_GAP_S bridged) through now,
        with pre-roll before it; at most WAKE_AUDIO_S."""
        audio = list(self._audio)
        i = len(audio) - 1
        while i >= 0 and not audio[i][1]:
            i -= 1  # back over the pause between the phrase and the detection
        start, quiet = i, 0
        while i >= 0 and quiet < self._phrase_gap:
            if audio[i][1]:
                start, quiet = i, 0
            else:
                quiet += 1
            i -= 1
        if start < 0:
            return tuple(pcm for pcm, _ in audio)  # nothing voiced: all we have
        return tuple(pcm for pcm, _ in audio[max(0, start - self.preroll_frames) :])

    def _question_start(self) -> tuple[bytes, ...]:
        """The speech that began after the phrase, before the detection (usually none)."""
        recent = list(self._audio)[-self._lookback :]
        if not recent or not recent[-1][1]:
            return ()  # the user is silent now: the question has not started
        i = len(recent) - 1
        while i >= 0 and recent[i][1]:
            i -= 1  # back over the speech going on now
        gap_end = i
        while i >= 0 and not recent[i][1]:
            i -= 1  # back over the pause before it
        if gap_end - i < GAP_FRAMES or i < 0:
            return ()  # no pause in sight: this speech may be the phrase itself
        return tuple(pcm for pcm, _ in recent[i + 1 :])
