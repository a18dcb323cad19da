"""What a session tells the outside: its listener's callbacks and its statistics."""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field


class SessionListener:
    """What the app hears from a session; every method is optional."""

    def on_connected(self, conversation_id: str) -> None:
        """The platform accepted the conversation."""

    def on_agent_audio(self, samples: int) -> None:
        """Agent audio was queued for playback (``samples`` at the player's rate)."""

    def on_interruption(self) -> None:
        """The platform interrupted the agent; playback was flushed."""

    def on_user_transcript(self, text: str) -> None:
        """The platform transcribed a user turn."""

    def on_agent_response(self, text: str) -> None:
        """The agent's text for its turn."""

    def on_agent_response_correction(self, original: str, corrected: str) -> None:
        """After an interruption: what the agent really got to say."""


@dataclass
class SessionStats:
    frames_sent: int = 0
    frames_dropped: int = 0
    audio_events: int = 0
    audio_dropped: int = 0
    pings: int = 0
    wire_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=5000)
    )
    """Seconds from a frame's last captured sample to the end of its ``send``."""
    on_wire_latency: Callable[[float], None] | None = None
    """Also called with each of those (the metrics' histogram)."""
    audio_arrivals: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=2000)
    )
    """(arrival time, samples queued) of agent audio events, for latency benchmarks."""
