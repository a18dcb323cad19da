"""The status LED over gpiozero: one pattern per device state for a single LED, a PWM LED
or an RGB LED (:data:`~hello_device.core.led_patterns.LED_PATTERNS`). It uses gpiozero's
own background blink/pulse threads and starts none of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from gpiozero import LED, PWMLED, RGBLED, Factory

from hello_device.core.led_patterns import ACK_FLASHES, LED_PATTERNS, Color, LedPattern, Level
from hello_device.core.turn.state import DeviceState
from hello_device.errors import GpioError
from hello_device.gpio.factory import _open_error
from hello_device.gpio.types import LedType
from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)


class StatusLed:
    """The status LED: :meth:`show` puts up the pattern of a :class:`DeviceState`.

    ``led_type`` picks gpiozero's ``LED`` (one pin), ``PWMLED`` (one pin) or ``RGBLED``
    (red, green, blue pins, PWM); ``led_active_high = false`` inverts the pins (common-anode
    RGB LEDs). Blinking and pulsing run on gpiozero's own background threads. With
    ``led_type = "none"`` every method is a no-op. Call :meth:`show` from one thread (the
    event loop).

    :raises GpioError: the LED pins could not be opened.
    """

    def __init__(self, settings: GpioSettings, *, pin_factory: Factory | None) -> None:
        self._type: LedType = settings.led_type
        self._device: Any = None
        self._state: DeviceState | None = None
        self._pattern: LedPattern | None = None
        if self._type == "none":
            return
        pins = list(settings.led_pins)
        wanted = 3 if self._type == "rgb" else 1
        if len(pins) != wanted:
            raise GpioError(
                f'gpio.led_type = "{self._type}" needs {wanted} pin(s) in gpio.led_pins, got {pins}'
            )
        what = f"the {self._type} status LED on GPIO{'/'.join(map(str, pins))}"
        high = settings.led_active_high
        try:
            if self._type == "led":
                self._device = LED(pins[0], active_high=high, pin_factory=pin_factory)
            elif self._type == "pwm":
                self._device = PWMLED(pins[0], active_high=high, pin_factory=pin_factory)
            else:
                self._device = RGBLED(*pins, active_high=high, pwm=True, pin_factory=pin_factory)
        except Exception as exc:
            raise _open_error(what, exc, settings) from exc
        log.debug("%s ready (active %s)", what, "high" if high else "low")

    @property
    def led_type(self) -> LedType:
        """``gpio.led_type``."""
        return self._type

    @property
    def device(self) -> Any:
        """The gpiozero device (``LED``, ``PWMLED``, ``RGBLED``) or ``None``."""
        return self._device

    @property
    def state(self) -> DeviceState | None:
        """The state shown last (``None`` before the first :meth:`show`)."""
        return self._state

    @property
    def pattern(self) -> LedPattern | None:
        """The pattern running now (``None`` before the first :meth:`show` or without LED)."""
        return self._pattern

    def show(self, state: DeviceState) -> None:
        """Show ``state``'s pattern; showing the state already shown changes nothing.

        :raises GpioError: gpiozero could not drive the LED.
        """
        if self._device is None or state == self._state:
            self._state = state
            return
        pattern = LED_PATTERNS[self._type][state]
        try:
            self._apply(pattern)
        except Exception as exc:
            raise GpioError(f"status LED: cannot show {state.value}: {exc}") from exc
        self._state = state
        self._pattern = pattern
        log.debug("status LED: %s (%s)", state.value, pattern.text)

    def acknowledge(self, score: str) -> float:
        """Flash the rating's acknowledgment (:data:`ACK_FLASHES`) in the background; the
        seconds it lasts (0: no LED). Call :meth:`reshow` after that; a :meth:`show` of
        another state meanwhile cuts the flash short.

        :raises GpioError: gpiozero could not drive the LED.
        """
        if self._device is None:
            return 0.0
        pattern, count = ACK_FLASHES[self._type][score]
        try:
            self._apply(pattern, count)
        except Exception as exc:
            raise GpioError(f"status LED: cannot acknowledge {score}: {exc}") from exc
        self._pattern = pattern
        return count * (pattern.on_time + pattern.off_time)

    def reshow(self) -> None:
        """Show the current state's pattern again (after :meth:`acknowledge`)."""
        state, self._state = self._state, None
        if state is not None:
            self.show(state)

    def _apply(self, p: LedPattern, count: int | None = None) -> None:
        dev = self._device
        if self._type == "rgb":
            on, off = _color(p.on), _color(p.off)
            if p.steady:
                dev.value = on
            else:
                dev.blink(
                    on_time=p.on_time,
                    off_time=p.off_time,
                    fade_in_time=p.fade_in,
                    fade_out_time=p.fade_out,
                    on_color=on,
                    off_color=off,
                    n=count,
                )
        elif p.steady:
            dev.value = _level(p.on) if self._type == "pwm" else _level(p.on) >= 0.5
        elif self._type == "pwm":
            dev.blink(
                on_time=p.on_time,
                off_time=p.off_time,
                fade_in_time=p.fade_in,
                fade_out_time=p.fade_out,
                n=count,
            )
        else:
            dev.blink(on_time=p.on_time, off_time=p.off_time, n=count)

    def close(self) -> None:
        """Stop the pattern, switch the LED off and release its pins. Idempotent."""
        device, self._device = self._device, None
        self._pattern = None
        if device is not None:
            try:
                device.close()
            except Exception:
                log.warning("closing the status LED failed", exc_info=True)

    def __enter__(self) -> StatusLed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _color(level: Level) -> Color:
    return level if isinstance(level, tuple) else (level, level, level)


def _level(level: Level) -> float:
    if isinstance(level, tuple):
        raise TypeError(f"a single or PWM LED has no colour: {level}")
    return level
