"""The GPIO facade the daemon uses, with the MockFactory and without pins."""

from __future__ import annotations

import pytest
from gpiozero import Button, Device
from gpiozero.pins.mock import MockFactory

from hello_device.core.buttons import (
    ButtonLogic,
)
from hello_device.core.turn.state import DeviceState
from hello_device.errors import GpioError
from hello_device.gpio.facade import Gpio
from hello_device.settings import GpioSettings
from tests.gpio.support import (
    BUTTON,
    HOLD_S,
    LED_PIN,
    MUTE,
    RGB_PINS,
    FakeClock,
    Loop,
    pin_values,
    press,
    release,
)

# --------------------------------------------------------------------------- facade


def test_gpio_facade_with_the_mock_factory(loop: Loop, clock: FakeClock) -> None:
    settings = GpioSettings(
        pin_factory="mock",
        button_pin=BUTTON,
        mute_pin=MUTE,
        hold_s=HOLD_S,
        long_press="mute",
        led_type="rgb",
        led_pins=RGB_PINS,
    )
    gpio = Gpio(settings, clock=clock, **loop.callbacks())
    try:
        factory = gpio.pin_factory
        assert isinstance(factory, MockFactory)
        assert gpio.logic == ButtonLogic("toggle", "mute")
        press(factory, clock)
        assert loop.wait_for("long_press", 10 * HOLD_S)
        release(factory, clock)
        assert loop.run_pending() == ["muted=False", "press", "long_press"]
        gpio.show(DeviceState.MUTED)
        assert pin_values(factory, "rgb") == [1.0, 0.0, 0.0]
    finally:
        gpio.close()
    gpio.close()
    assert factory.pins == {}  # the factory it made is closed
    assert gpio.buttons is None and gpio.led is None


def test_gpio_facade_without_pins_is_inert(loop: Loop) -> None:
    with Gpio(GpioSettings(pin_factory="mock"), call_soon=loop.call_soon) as gpio:
        assert gpio.buttons is None
        for state in DeviceState:
            gpio.show(state)
    assert loop.run_pending() == []


def test_gpio_facade_error_closes_what_it_opened(factory: MockFactory, loop: Loop) -> None:
    settings = GpioSettings(
        pin_factory="mock", button_pin=BUTTON, led_type="led", led_pins=[BUTTON]
    )
    with pytest.raises(GpioError, match="already used"):
        Gpio(settings, pin_factory=factory, **loop.callbacks())
    Button(BUTTON, pin_factory=factory).close()  # the button pin was released
    assert factory.pins  # a factory passed in is left open


def test_gpio_facade_auto_uses_gpiozero_default(
    monkeypatch: pytest.MonkeyPatch, loop: Loop
) -> None:
    # gpiozero's own default choice, steered to its mock factory through its environment.
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    monkeypatch.setattr(Device, "pin_factory", None)
    settings = GpioSettings(pin_factory="auto", led_type="pwm", led_pins=[LED_PIN])
    with Gpio(settings, call_soon=loop.call_soon) as gpio:
        assert gpio.pin_factory is None
        gpio.show(DeviceState.IDLE)
        assert isinstance(Device.pin_factory, MockFactory)
        assert Device.pin_factory.pin(LED_PIN).state == pytest.approx(0.05)
    Device.pin_factory.close()
