"""What the device sends while a conversation is open (pure; no clock, no I/O).

``vad.send = "all"`` streams the microphone as it is. ``vad.send = "speech"`` sends the
user's speech and replaces everything else by digital silence, so the platform's turn
detection still sees time pass but hears nothing private between utterances, and never
hears the device's own loudspeaker while the agent talks (the app only reports speech
during agent audio once a barge-in is confirmed).

The first syllable is never lost, and the end of a turn is never delayed much:

- while nothing is sent, the last frames are held back and silence goes out only for
  frames that leave that window; when speech starts, the held frames go out as they
  were, at once, then live frames follow with no added delay. No frame is sent twice or
  skipped, so the wire timeline stays truthful: it lags real time only by what is held.
- right after an utterance only ``min_frames`` are held (the frames the VAD needs to
  confirm a new onset, 40 ms by default), so the platform hears the end of the user's
  turn almost live and can answer at once;
- once the turn has settled (the agent's audio starts, or ``settle_frames`` pass with no
  speech) the window grows to the full pre-roll, by holding the next frames back: silence
  nobody waits for.
"""

from __future__ import annotations

import collections
from typing import Literal


class UplinkGate:
    """Decides, frame by frame, which audio goes to the platform."""

    def __init__(
        self,
        mode: Literal["speech", "all"],
        preroll_frames: int,
        min_frames: int = 2,
        settle_frames: int = 75,
    ) -> None:
        self.mode = mode
        self.preroll_frames = max(1, preroll_frames)
        self.min_frames = max(0, min(min_frames, self.preroll_frames))
        self.settle_frames = settle_frames
        self._held: collections.deque[bytes] = collections.deque()
        self._target = self.preroll_frames
        self._speaking = False
        self._quiet = 0
        self.silenced_frames = 0
        """Frames replaced by silence so far (for tests and stats)."""

    @property
    def lag_frames(self) -> int:
        """Frames held back right now (how far the wire is behind real time)."""
        return len(self._held)

    def settle(self) -> None:
        """The turn is over (the agent answers): grow the window to the full pre-roll."""
        self._target = self.preroll_frames

    def process(self, pcm: bytes, speech: bool) -> list[bytes]:
        """One captured frame in; the frames to send now out (zero, one or several).

        ``speech`` says whether the user is speaking now (the VAD gate is open and, while
        the agent is audible, a barge-in has been confirmed).
        """
        if self.mode == "all":
            return [pcm]
        if speech:
            self._quiet = 0
            if not self._speaking:
                self._speaking = True
                held = list(self._held)
                self._held.clear()
                held.append(pcm)
                return held
            return [pcm]
        if self._speaking:
            self._speaking = False
            self._target = self.min_frames
        self._quiet += 1
        if self._quiet >= self.settle_frames:
            self._target = self.preroll_frames
        self._held.append(pcm)
        out = []
        while len(self._held) > self._target:
            old = self._held.popleft()
            self.silenced_frames += 1
            out.append(bytes(len(old)))
        return out

    def flush_silence(self) -> list[bytes]:
        """The held frames as silence (when the conversation ends)."""
        out = [bytes(len(f)) for f in self._held]
        self._held.clear()
        return out

    def flush_held(self) -> list[bytes]:
        """The held frames as they were (the caller decided they may be sent)."""
        out = list(self._held)
        self._held.clear()
        return out

    def reset(self) -> None:
        """A new stream (a conversation opens): nothing held, the full pre-roll to come."""
        self._held.clear()
        self._speaking = False
        self._quiet = 0
        self._target = self.preroll_frames
