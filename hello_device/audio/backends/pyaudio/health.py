"""Whether an open pair of streams still works, and the periodic glitch summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hello_device.audio.backends.pyaudio.constants import GLITCH_REPORT_S
from hello_device.audio.backends.pyaudio.streams import OpenStreams
from hello_device.audio.devices import describe_error

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the callbacks left behind: their last call times and an error, if any."""

    last_in_cb: float | None
    last_out_cb: float | None
    callback_error: BaseException | None
    opened_at: float


def stream_problem(
    s: OpenStreams, seen: Liveness, now: float, *, grace_s: float, stall_s: float
) -> str | None:
    """A one-line problem description, or None while both streams are fine.

    A stream is dead when PortAudio says it is no longer active, when it never called
    back within ``grace_s`` of opening, or when its callbacks stopped for ``stall_s``.
    """
    if seen.callback_error is not None:
        return f"audio callback failed: {seen.callback_error!r}"
    for what, dev, stream, last in (
        ("microphone", s.mic, s.capture, seen.last_in_cb),
        ("loudspeaker", s.speaker, s.playback, seen.last_out_cb),
    ):
        try:
            active = bool(stream.is_active())
        except Exception as exc:
            return f"{what} {dev.label} failed: {describe_error(exc)}"
        if not active:
            return f"{what} {dev.label} stopped (its stream is no longer active)"
        if last is None:
            if now - seen.opened_at >= grace_s:
                return f"{what} {dev.label} never started (no audio {grace_s:.1f} s after opening)"
        elif now - last >= stall_s:
            return f"{what} {dev.label} stalled (no audio callback for {now - last:.1f} s)"
    return None


class GlitchSummary:
    """Underflows, overflows and dropped frames summed up in one warning per
    :data:`GLITCH_REPORT_S` at most (never one line per glitch)."""

    def __init__(self, now: float, counts: tuple[int, int, int]) -> None:
        self._seen = counts
        self._next = now + GLITCH_REPORT_S

    def update(self, now: float, counts: tuple[int, int, int]) -> None:
        """``counts``: (underflows, overflows, frames dropped) so far."""
        if now < self._next:
            return
        self._next = now + GLITCH_REPORT_S
        if counts == self._seen:
            return
        under, over, dropped = (a - b for a, b in zip(counts, self._seen, strict=True))
        self._seen = counts
        log.warning(
            "audio glitches in the last %.0f s: %d playback underflows, "
            "%d capture overflows, %d captured frames dropped (event loop late)",
            GLITCH_REPORT_S,
            under,
            over,
            dropped,
        )
