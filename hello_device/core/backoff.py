"""Exponential backoff with jitter: the one rule every retry of the device follows.

Attempt ``n`` waits between half and all of ``min(cap, base * 2**(n-1))``: the first
retry of a conversation within 0.5–1 s, then 1–2, 2–4 … Keeping half of each step means
attempts never bunch up (full jitter can put several within a second), and the random
half still spreads a fleet that lost its network at the same moment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``delay(attempt)`` for attempts 1, 2, 3 …"""

    cap: float
    """The longest wait."""
    base: float = 1.0
    """The first step (attempt 1 waits base/2 to base)."""

    def step(self, attempt: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(0, attempt - 1))

    def delay(self, attempt: int, rng: random.Random) -> float:
        step = self.step(attempt)
        return rng.uniform(step / 2.0, step)
