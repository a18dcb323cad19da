"""The talk button and the mute switch (closed = muted), over gpiozero.

gpiozero calls its callbacks on its own threads (edge detection, the hold timer).
:class:`ButtonInput` does the minimum there (debounce, long-press bookkeeping, under a
lock) and hands every event over through ``call_soon`` -- the daemon passes
``loop.call_soon_threadsafe`` -- so the core never sees a thread.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import Button, Factory

from hello_device.core.buttons import ButtonLogic
from hello_device.gpio.factory import _open_error
from hello_device.gpio.types import Callback, CallSoon, Clock
from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- button input


class ButtonInput:
    """The talk button and the mute switch, reported through ``call_soon``.

    Every callback runs wherever ``call_soon`` runs it (the event loop in the app); none is
    ever called on a gpiozero thread. Events:

    - ``on_press()``: the button went down.
    - ``on_release()``: it came up -- except after a long press, whose release is swallowed
      so it never also counts as a short press.
    - ``on_long_press()``: held for ``hold_s``; once per press. Only in toggle mode with
      ``long_press`` set (:attr:`ButtonLogic.long_press_enabled`).
    - ``on_mute_changed(muted)``: the mute switch state, once at start and on every change.

    Debounce: ``bounce_ms`` goes to gpiozero (``bounce_time``) so the pin driver filters
    chatter where it can; on top of that, as gpiozero documents for ``bounce_time``, a
    button edge that comes less than ``bounce_ms`` after the last accepted one is ignored
    (``MockFactory`` pins do no debouncing of their own); :meth:`resync` repairs the one
    case this leaves wrong. The mute switch reports levels, so its last edge always wins.

    The mute switch is wired like the button (``button_pull_up``); closed means muted.

    :raises GpioError: a pin could not be opened.
    """

    def __init__(
        self,
        settings: GpioSettings,
        *,
        pin_factory: Factory | None,
        call_soon: CallSoon,
        on_press: Callback | None = None,
        on_release: Callback | None = None,
        on_long_press: Callback | None = None,
        on_mute_changed: Callable[[bool], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._call_soon = call_soon
        self._on_press = on_press
        self._on_release = on_release
        self._on_long_press = on_long_press
        self._on_mute_changed = on_mute_changed
        self._clock = clock
        self._bounce_s = settings.bounce_ms / 1000
        self._lock = threading.RLock()
        self._closed = False
        self._pressed = False
        self._long_fired = False
        self._last_edge: float | None = None
        self._muted: bool | None = None
        self._button: Any = None
        self._mute: Any = None
        long_press = ButtonLogic.from_settings(settings).long_press_enabled
        bounce_time = self._bounce_s or None
        what = "the GPIO inputs"
        try:
            if settings.button_pin is not None:
                what = f"the button on GPIO{settings.button_pin}"
                self._button = Button(
                    settings.button_pin,
                    pull_up=settings.button_pull_up,
                    bounce_time=bounce_time,
                    hold_time=settings.hold_s,
                    hold_repeat=False,
                    pin_factory=pin_factory,
                )
                self._button.when_pressed = self._edge_pressed
                self._button.when_released = self._edge_released
                if long_press:
                    self._button.when_held = self._held
            if settings.mute_pin is not None:
                what = f"the mute switch on GPIO{settings.mute_pin}"
                self._mute = Button(
                    settings.mute_pin,
                    pull_up=settings.button_pull_up,
                    bounce_time=bounce_time,
                    pin_factory=pin_factory,
                )
                self._mute.when_pressed = self._mute_closed
                self._mute.when_released = self._mute_opened
        except Exception as exc:
            self.close()
            raise _open_error(what, exc, settings) from exc
        if self._mute is not None:
            self._mute_level(bool(self._mute.is_pressed))
        log.debug(
            "button on %s (%s, long press %s), mute switch on %s",
            settings.button_pin,
            settings.button_mode,
            settings.long_press if long_press else "off",
            settings.mute_pin,
        )

    @property
    def is_pressed(self) -> bool:
        """The debounced button state as last reported (false without a button)."""
        return self._pressed

    @property
    def muted(self) -> bool | None:
        """The mute switch state as last reported; ``None`` without a switch."""
        return self._muted

    def resync(self) -> None:
        """Report a button edge the debounce swallowed, if the window has passed since.

        A contact glitch shorter than ``bounce_ms`` that the pin driver lets through is
        reported as a press whose release fell inside the window; no further edge comes
        to correct that. Call this from a periodic tick (any thread, cheap): when the
        pin's level differs from the last reported state, the missing edge is reported
        now, so push-to-talk never stays open on a glitch.
        """
        with self._lock:
            if self._button is not None and not self._closed:
                self._edge(bool(self._button.is_pressed))

    def close(self) -> None:
        """Release the pins; no callback is handed over afterwards. Idempotent."""
        with self._lock:
            self._closed = True
            devices, self._button, self._mute = (self._button, self._mute), None, None
        # Outside the lock: closing joins gpiozero's hold thread, which may be waiting on it.
        for device in devices:
            if device is not None:
                try:
                    device.close()
                except Exception:
                    log.warning("closing %r failed", device, exc_info=True)

    def __enter__(self) -> ButtonInput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # gpiozero threads below: decide under the lock, hand over, return.

    def _edge_pressed(self) -> None:
        self._edge(True)

    def _edge_released(self) -> None:
        self._edge(False)

    def _edge(self, pressed: bool) -> None:
        with self._lock:
            if self._closed or pressed == self._pressed:
                return
            now = self._clock()
            if self._last_edge is not None and now - self._last_edge < self._bounce_s:
                log.debug(
                    "button %s %.1f ms after the last edge: bounce, ignored",
                    "press" if pressed else "release",
                    (now - self._last_edge) * 1000,
                )
                return
            self._last_edge = now
            self._pressed = pressed
            if pressed:
                self._long_fired = False
                self._hand_over(self._on_press)
            elif self._long_fired:
                log.debug("button released after a long press: not a short press")
            else:
                self._hand_over(self._on_release)

    def _held(self) -> None:
        with self._lock:
            if self._closed or not self._pressed or self._long_fired:
                return
            self._long_fired = True
            self._hand_over(self._on_long_press)

    def _mute_closed(self) -> None:
        self._mute_level(True)

    def _mute_opened(self) -> None:
        self._mute_level(False)

    def _mute_level(self, muted: bool) -> None:
        with self._lock:
            if self._closed or muted == self._muted:
                return
            self._muted = muted
            log.debug("mute switch %s", "closed (muted)" if muted else "open")
            if self._on_mute_changed is not None:
                self._hand_over(functools.partial(self._on_mute_changed, muted))

    def _hand_over(self, callback: Callback | None) -> None:
        if callback is None:
            return
        try:
            self._call_soon(callback)
        except Exception:  # e.g. the loop is closed during shutdown
            log.warning("could not hand a GPIO event over to the event loop", exc_info=True)
