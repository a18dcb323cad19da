"""The GPIO facade the daemon uses: button, mute switch, like/dislike buttons and status
LED together. Every
failure to open a pin is a :class:`~hello_device.errors.GpioError`, so the daemon can log
it and run without GPIO.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gpiozero import Factory

from hello_device.core.buttons import ButtonLogic
from hello_device.core.turn.state import DeviceState
from hello_device.gpio.button import ButtonInput
from hello_device.gpio.factory import make_pin_factory
from hello_device.gpio.feedback import FeedbackButtons, Score
from hello_device.gpio.led import StatusLed
from hello_device.gpio.types import Callback, CallSoon, Clock
from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- facade


class Gpio:
    """Everything GPIO the app uses: button, mute switch, status LED.

    Builds the pin factory from ``gpio.pin_factory`` (or uses ``pin_factory`` if given, and
    then leaves it open on :meth:`close`), a :class:`ButtonInput` if ``button_pin`` or
    ``mute_pin`` is set, and a :class:`StatusLed`. The callbacks are handed over through
    ``call_soon`` (pass ``loop.call_soon_threadsafe``); see :class:`ButtonInput`.

    :raises GpioError: the factory or a pin could not be opened; nothing stays open then.
        The app logs it and runs without GPIO.
    """

    def __init__(
        self,
        settings: GpioSettings,
        *,
        call_soon: CallSoon,
        on_press: Callback | None = None,
        on_release: Callback | None = None,
        on_long_press: Callback | None = None,
        on_mute_changed: Callable[[bool], None] | None = None,
        on_feedback: Callable[[Score], None] | None = None,
        pin_factory: Factory | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self.logic = ButtonLogic.from_settings(settings)
        """The :class:`ButtonLogic` matching ``settings``."""
        self._owns_factory = pin_factory is None
        self._factory = (
            pin_factory if pin_factory is not None else make_pin_factory(settings.pin_factory)
        )
        self._buttons: ButtonInput | None = None
        self._feedback: FeedbackButtons | None = None
        self._led: StatusLed | None = None
        try:
            if settings.button_pin is not None or settings.mute_pin is not None:
                self._buttons = ButtonInput(
                    settings,
                    pin_factory=self._factory,
                    call_soon=call_soon,
                    on_press=on_press,
                    on_release=on_release,
                    on_long_press=on_long_press,
                    on_mute_changed=on_mute_changed,
                    clock=clock,
                )
            if on_feedback is not None and (
                settings.like_pin is not None or settings.dislike_pin is not None
            ):
                self._feedback = FeedbackButtons(
                    settings,
                    pin_factory=self._factory,
                    call_soon=call_soon,
                    on_feedback=on_feedback,
                    clock=clock,
                )
            self._led = StatusLed(settings, pin_factory=self._factory)
        except BaseException:
            self.close()
            raise
        log.info(
            "GPIO: factory %s, button %s, mute switch %s, like/dislike %s/%s, LED %s %s",
            settings.pin_factory,
            _pin_text(settings.button_pin),
            _pin_text(settings.mute_pin),
            _pin_text(settings.like_pin),
            _pin_text(settings.dislike_pin),
            settings.led_type,
            settings.led_pins or "",
        )

    @property
    def pin_factory(self) -> Factory | None:
        """The pin factory in use (``None``: gpiozero's default)."""
        return self._factory

    @property
    def buttons(self) -> ButtonInput | None:
        """The button and mute switch, if either is configured."""
        return self._buttons

    @property
    def led(self) -> StatusLed | None:
        """The status LED (a no-op one for ``led_type = "none"``)."""
        return self._led

    def show(self, state: DeviceState) -> None:
        """Show ``state`` on the status LED (no-op without one)."""
        if self._led is not None:
            self._led.show(state)

    def acknowledge(self, score: Score) -> float:
        """Flash the status LED for a rating (see :meth:`StatusLed.acknowledge`); how
        long the flash lasts, after which the caller calls :meth:`resync_led`."""
        return self._led.acknowledge(score) if self._led is not None else 0.0

    def resync_led(self) -> None:
        """Show the current state's pattern again (after an acknowledgment)."""
        if self._led is not None:
            self._led.reshow()

    def resync(self) -> None:
        """Call on a periodic tick: see :meth:`ButtonInput.resync` (no-op without button)."""
        if self._buttons is not None:
            self._buttons.resync()

    def close(self) -> None:
        """Release every pin, and the pin factory if this object made it. Idempotent."""
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
        if self._feedback is not None:
            self._feedback.close()
            self._feedback = None
        if self._led is not None:
            self._led.close()
            self._led = None
        factory, self._factory = self._factory, None
        if factory is not None and self._owns_factory:
            try:
                factory.close()
            except Exception:
                log.warning("closing the pin factory failed", exc_info=True)

    def __enter__(self) -> Gpio:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pin_text(pin: int | None) -> str:
    return "-" if pin is None else f"GPIO{pin}"
