"""The "thumbs up" / "thumbs down" button pair: the user rates the agent's answer.

Each press is handed to the event loop through ``call_soon`` as ``on_feedback("like")``
or ``on_feedback("dislike")``. A press less than ``REPEAT_S`` after the last accepted
one of either button is ignored: contact chatter, or a child hammering the button, must
not send a burst of ratings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from gpiozero import Button, Factory

from hello_device.gpio.factory import _open_error
from hello_device.gpio.types import CallSoon, Clock
from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)

Score = Literal["like", "dislike"]
REPEAT_S = 1.0
"""Presses closer together than this count once."""


class FeedbackButtons:
    """The like / dislike buttons of ``settings`` (either may be unset).

    :raises GpioError: a pin could not be opened (nothing stays open then).
    """

    def __init__(
        self,
        settings: GpioSettings,
        *,
        pin_factory: Factory | None,
        call_soon: CallSoon,
        on_feedback: Callable[[Score], None],
        clock: Clock = time.monotonic,
    ) -> None:
        self._call_soon = call_soon
        self._on_feedback = on_feedback
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._buttons: list[Any] = []
        bounce_time = settings.bounce_ms / 1000 or None
        score: Score
        for score, pin in (("like", settings.like_pin), ("dislike", settings.dislike_pin)):
            if pin is None:
                continue
            try:
                button = Button(
                    pin,
                    pull_up=settings.button_pull_up,
                    bounce_time=bounce_time,
                    pin_factory=pin_factory,
                )
            except Exception as exc:
                self.close()
                raise _open_error(f"the {score} button on GPIO{pin}", exc, settings) from exc
            button.when_pressed = lambda _device=None, s=score: self._pressed(s)
            self._buttons.append(button)

    def _pressed(self, score: Score) -> None:  # on a gpiozero thread
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < REPEAT_S:
                log.debug("%s button: pressed again within %.1f s, ignored", score, REPEAT_S)
                return
            self._last = now
        self._call_soon(lambda: self._on_feedback(score))

    def close(self) -> None:
        """Release the pins. Idempotent."""
        buttons, self._buttons = self._buttons, []
        for button in buttons:
            try:
                button.close()
            except Exception:
                log.warning("closing a feedback button failed", exc_info=True)
