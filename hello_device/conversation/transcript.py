"""What a session keeps of its conversation's words: the last lines, each bounded (a
server cannot grow the device's memory with them), with the agent's corrections."""

from __future__ import annotations

import collections
from collections.abc import Iterator

TRANSCRIPT_LINES = 500
TRANSCRIPT_CHARS = 4000


class Transcript:
    """(speaker, text) lines, oldest first; iterate it like a list."""

    def __init__(self) -> None:
        self._lines: collections.deque[tuple[str, str]] = collections.deque(maxlen=TRANSCRIPT_LINES)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, speaker: str, text: str) -> None:
        self._lines.append((speaker, text[:TRANSCRIPT_CHARS]))

    def correct(self, original: str, corrected: str) -> None:
        """After an interruption: the agent's last line becomes what it really said."""
        lines = self._lines
        for i in range(len(lines) - 1, -1, -1):
            speaker, text = lines[i]
            if speaker == "agent" and (text == original or original.startswith(text[:20])):
                lines[i] = ("agent", corrected[:TRANSCRIPT_CHARS])
                return
        self.add("agent", corrected)
