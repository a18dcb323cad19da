"""A virtual clock: ``now()`` and an async ``sleep`` that moves it instead of waiting.

Hand ``clock.now`` and ``clock.sleep`` to whatever takes a clock and a sleep (the
session's timers, the platform client and provider): timers then run in no time, in
the order their deadlines say.
"""

from __future__ import annotations

import asyncio


class VirtualClock:
    """Seconds since an arbitrary start; :meth:`sleep` advances them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.slept: list[float] = []
        """Every delay asked for, in order."""

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Moves the clock by ``seconds``, then lets the other tasks run once."""
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
