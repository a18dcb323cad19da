"""What the device sends while a conversation is open (pure; no clock, no I/O).

``vad.send = "all"`` streams the microphone as it is. ``vad.send = "speech"`` sends the
user's speech and replaces everything else by digital silence, so the platform's turn
detection still sees time pass but hears nothing private between utterances, and never
hears the device's own loudspeaker while the agent talks (the app only reports speech
during agent audio once a barge-in is confirmed).

The first syllable is never lost: while nothing is sent, the last ``preroll_frames``
frames are held back, and silence goes out only for frames that leave that window. When
speech starts, the held frames go out as they were, at once, then live frames follow
with no added delay. The wire timeline stays truthful (no frame sent twice, none
skipped): between utterances it lags real time by the pre-roll, during speech not at
all. To build that lag again after an utterance, the first ``preroll_frames`` of silence
after it are held, so the platform hears the end of silence up to ``preroll_ms`` later;
the silence inside the VAD's end-of-utterance window is sent live.
"""

from __future__ import annotations

import collections
from typing import Literal


class UplinkGate:
    """Decides, frame by frame, which audio goes to the platform."""

    def __init__(self, mode: Literal["speech", "all"], preroll_frames: int) -> None:
        self.mode = mode
        self.preroll_frames = max(1, preroll_frames)
        self._held: collections.deque[bytes] = collections.deque()
        self._speaking = False
        self.silenced_frames = 0
        """Frames replaced by silence so far (for tests and stats)."""

    def process(self, pcm: bytes, speech: bool) -> list[bytes]:
        """One captured frame in; the frames to send now out (zero, one or several).

        ``speech`` says whether the user is speaking now (the VAD gate is open and, while
        the agent is audible, a barge-in has been confirmed).
        """
        if self.mode == "all":
            return [pcm]
        if speech:
            if not self._speaking:
                self._speaking = True
                held = list(self._held)
                self._held.clear()
                held.append(pcm)
                return held
            return [pcm]
        self._speaking = False
        self._held.append(pcm)
        if len(self._held) > self.preroll_frames:
            old = self._held.popleft()
            self.silenced_frames += 1
            return [bytes(len(old))]
        return []

    def flush_silence(self) -> list[bytes]:
        """The held frames as silence (when the conversation ends)."""
        out = [bytes(len(f)) for f in self._held]
        self._held.clear()
        return out
