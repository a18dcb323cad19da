"""The agent's audio from the wire to the player.

Decoded (and resampled) in the conversation's format, dropped when a barge-in or an
interruption cut its turn, capped so a server cannot fill the memory, and with a turn's
resampler tail pushed out when the turn pauses, so its last sound is never stranded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hello_device.audio.convert import AgentDecoder
from hello_device.audio.player import Player
from hello_device.core.formats import AudioFormat

log = logging.getLogger(__name__)

AGENT_AUDIO_MAX_QUEUE_S = 120.0
"""Agent audio waiting to play beyond this is dropped: the platform sends faster than
real time, but never minutes ahead; a server that does cannot fill the memory."""
TAIL_IDLE_S = 0.05
TAIL_QUEUE_MS = 60.0
"""A turn's audio has ended when nothing arrived for TAIL_IDLE_S and less than
TAIL_QUEUE_MS is left to play; then the resampler's held tail is pushed."""


class AgentPlayback:
    """One conversation's agent audio (see the module docstring)."""

    def __init__(self, player: Player, clock: Callable[[], float]) -> None:
        self.player = player
        self.clock = clock
        self.decoder: AgentDecoder | None = None
        self.suppressed = False
        """True after a local barge-in, until the platform's interruption or the next
        user transcript: the rest of the cut turn is dropped."""
        self.last_audio_at = clock()
        self._overflow_logged = False

    def start(self, fmt: AudioFormat) -> None:
        """The conversation's agent format is known (its metadata arrived)."""
        self.decoder = AgentDecoder(fmt, self.player.rate)

    def push(self, audio: bytes) -> int:
        """Queue one agent audio chunk; return the samples queued: 0 when the resampler
        holds them all for now, -1 when the chunk was dropped (a cut turn, or the cap)."""
        decoder = self.decoder
        if self.suppressed or decoder is None:
            return -1
        if decoder.out_rate != self.player.rate:  # the sound card reopened at a new rate
            decoder = self.decoder = AgentDecoder(decoder.fmt, self.player.rate)
        if self.player.queued_ms > AGENT_AUDIO_MAX_QUEUE_S * 1000.0:
            if not self._overflow_logged:
                self._overflow_logged = True
                log.warning(
                    "more than %.0f s of agent audio queued; dropping the excess",
                    AGENT_AUDIO_MAX_QUEUE_S,
                )
            return -1
        pcm = decoder.decode(audio)
        if not len(pcm):
            return 0
        self.player.push(pcm)
        self.last_audio_at = self.clock()
        return len(pcm)

    def flush_tail_if_idle(self, now: float) -> None:
        """Called once per captured frame: when the agent's audio has paused (nothing for
        ``TAIL_IDLE_S``) and the playout queue runs low, push the few milliseconds the
        resampler still holds."""
        decoder = self.decoder
        if (
            decoder is not None
            and decoder.pending_ms > 0
            and now - self.last_audio_at > TAIL_IDLE_S
            and self.player.queued_ms < TAIL_QUEUE_MS
            and not self.suppressed
        ):
            tail = decoder.flush()
            if len(tail):
                self.player.push(tail)

    def cut(self) -> int:
        """Stop the agent now and drop the rest of its turn (a local barge-in); return the
        samples that will never play."""
        self.suppressed = True
        return self._flush()

    def interrupted(self) -> int:
        """The platform interrupted the agent: stop now; its next turn plays."""
        self.suppressed = False
        return self._flush()

    def resume(self) -> None:
        """The user's turn was transcribed: the agent's next turn plays."""
        self.suppressed = False

    def _flush(self) -> int:
        dropped = self.player.flush()
        if self.decoder is not None:
            self.decoder.reset()
        return dropped
