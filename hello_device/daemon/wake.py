"""The wake word in the daemon: the model (loaded once, only when a wake word starts
conversations), and what a detection does: the earcon and the listening state at once,
the conversation opening behind them, and what the user says meanwhile kept for it."""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hello_device.conversation.uplink import UPLINK_BACKLOG_S
from hello_device.core.turn.wake import WakeEvent, WakeGate
from hello_device.daemon.base import DaemonBase

if TYPE_CHECKING:
    from hello_device.wake.detector import WakeWordDetector

log = logging.getLogger(__name__)


class WakeMixin(DaemonBase):
    """The wake-word gate, and the buffer of a conversation that is being opened."""

    _wake_spotter: WakeWordDetector | None = None

    def _wake_gate(self) -> WakeGate | None:
        """A gate over the model, when the wake word starts conversations (the model is
        loaded once and kept across reloads that do not change it)."""
        s = self.settings
        if s.conversation.start != "wake_word":
            return None
        spotter = self._wake_spotter
        if spotter is None or spotter.settings != s.wake_word:
            from hello_device.wake.detector import WakeWordDetector

            spotter = self._wake_spotter = WakeWordDetector(s.wake_word)
            log.info(
                "wake word %s (probability cutoff %.2f at sensitivity %.2f)",
                spotter.wake_word,
                spotter.cutoff,
                s.wake_word.sensitivity,
            )
        return WakeGate(
            spotter,
            frame_ms=s.audio.frame_ms,
            send_wake_audio=s.wake_word.send_wake_audio,
            preroll_frames=max(1, s.vad.preroll_ms // s.audio.frame_ms),
            min_user_ms=s.barge_in.min_speech_ms,
        )

    # ------------------------------------------------------------ opening buffer

    def _open(self, frames: Sequence[bytes], now: float) -> None:
        """A trigger heard on the microphone (``frames``: the audio that goes first, the
        last one captured at ``now``): until the session exists, what the frame
        pipeline sends is kept here (bounded like the session's own backlog)."""
        frame_s = self.settings.audio.frame_ms / 1000
        keep = int(UPLINK_BACKLOG_S / frame_s)
        last = len(frames) - 1
        self._opening = True
        self._pending_preroll = collections.deque(
            ((pcm, now - (last - i) * frame_s) for i, pcm in enumerate(frames)), maxlen=keep
        )

    def _keep(self, pcm: bytes, captured_at: float) -> None:
        self._pending_preroll.append((pcm, captured_at))

    def _take_pending(self) -> list[tuple[bytes, float]]:
        """The kept frames and their capture times, for the session being created; the
        opening is over."""
        frames = list(self._pending_preroll)
        self._pending_preroll.clear()
        self._opening = False
        return frames

    # ------------------------------------------------------------ detections

    def _woken(self, event: WakeEvent, now: float) -> None:
        """The wake word outside a conversation: listening at once, connecting behind."""
        self._wake_note = f"woken by {event.word} ({event.probability:.2f})"
        log.info(
            "wake word %s heard (probability %.2f): listening",
            event.word,
            event.probability,
            extra={"WAKE_WORD": event.word, "WAKE_PROBABILITY": f"{event.probability:.2f}"},
        )
        self.events.publish("wake_word", word=event.word, probability=event.probability)
        if self.metrics is not None:
            self.metrics.wake_words.inc()
        self._earcon("listen")
        self._open(event.frames, now)
        self.state.wake_word(now)
        self.start_conversation()

    def _woken_over_agent(self, event: WakeEvent) -> None:
        """The wake word while the agent talks (``during_agent = "interrupt"``)."""
        log.info(
            "wake word %s while the agent talks (probability %.2f): playback stopped",
            event.word,
            event.probability,
            extra={"WAKE_WORD": event.word, "WAKE_PROBABILITY": f"{event.probability:.2f}"},
        )
        self._wake_note = f"woken by {event.word} ({event.probability:.2f})"
        if self.metrics is not None:
            self.metrics.wake_words.inc()
        self._earcon("listen")
