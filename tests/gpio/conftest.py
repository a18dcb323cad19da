"""Fixtures of the GPIO tests: gpiozero's MockFactory, the loop stand-in, and builders.

Pins are gpiozero's ``MockPWMPin``\\ s (no fakes of our own): a test presses the button by
driving the pin (pull-up wiring: pressed = low) and reads the LED from the pin's value and
its recorded history (``MockPin.states``). Every wait is bounded (multiples of ``UNIT``);
no sleep stands in for synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device.gpio.button import ButtonInput
from hello_device.gpio.led import StatusLed
from hello_device.settings import GpioSettings
from tests.gpio.support import (
    BUTTON,
    HOLD_S,
    LED_PIN,
    RGB_PINS,
    FakeClock,
    Loop,
    gpio_threads,
    wait_until,
)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Each test leaves no gpiozero thread running and Device.pin_factory as it was."""
    saved = Device.pin_factory
    yield
    if Device.pin_factory is not saved:
        Device.pin_factory.close()
        Device.pin_factory = saved
    assert wait_until(lambda: not gpio_threads(), 2.0), gpio_threads()


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.close()
    f.reset()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_input(
    factory: MockFactory, loop: Loop, clock: FakeClock
) -> Iterator[Callable[..., ButtonInput]]:
    """Builds ButtonInputs on the mock factory (closed after the test)."""
    made: list[ButtonInput] = []

    def make(**overrides: Any) -> ButtonInput:
        fields: dict[str, Any] = {
            "pin_factory": "mock",
            "button_pin": BUTTON,
            "hold_s": HOLD_S,
            "long_press": "none",
        }
        fields.update(overrides)
        inp = ButtonInput(
            GpioSettings(**fields), pin_factory=factory, clock=clock, **loop.callbacks()
        )
        made.append(inp)
        return inp

    yield make
    for inp in made:
        inp.close()


@pytest.fixture
def make_led(factory: MockFactory) -> Iterator[Callable[..., StatusLed]]:
    made: list[StatusLed] = []

    def make(led_type: Any, **overrides: Any) -> StatusLed:
        pins = {"none": [], "led": [LED_PIN], "pwm": [LED_PIN], "rgb": RGB_PINS}[led_type]
        settings = GpioSettings(pin_factory="mock", led_type=led_type, led_pins=pins, **overrides)
        led = StatusLed(settings, pin_factory=factory)
        made.append(led)
        return led

    yield make
    for led in made:
        led.close()
