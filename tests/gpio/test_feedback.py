"""The like / dislike buttons and the LED's acknowledgment, over gpiozero's MockFactory."""

from __future__ import annotations

from typing import Any

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from hello_device.core.led_patterns import ACK_FLASHES
from hello_device.core.turn.state import DeviceState
from hello_device.errors import GpioError
from hello_device.gpio.facade import Gpio
from hello_device.gpio.feedback import REPEAT_S
from hello_device.settings import GpioSettings
from tests.gpio.support import (
    LED_PIN,
    RGB_PINS,
    FakeClock,
    Loop,
    gpio_threads,
    pin,
    pin_values,
    wait_until,
)

LIKE, DISLIKE = 23, 24


class Ratings(Loop):
    def on_feedback(self, score: str) -> None:
        self._record(score)


def open_gpio(factory: MockFactory, loop: Ratings, clock: FakeClock, **kw: Any) -> Gpio:
    kw.setdefault("like_pin", LIKE)
    kw.setdefault("dislike_pin", DISLIKE)
    settings = GpioSettings(pin_factory="mock", **kw)
    return Gpio(
        settings,
        call_soon=loop.call_soon,
        on_feedback=loop.on_feedback,
        pin_factory=factory,
        clock=clock,
    )


def test_each_button_rates_once_per_press_on_the_loop(
    factory: MockFactory, clock: FakeClock
) -> None:
    loop = Ratings()
    gpio = open_gpio(factory, loop, clock)
    try:
        assert pin(factory, LIKE).pull == "up"
        clock.advance(5)
        pin(factory, LIKE).drive_low()
        assert loop.events == []  # handed to the loop, not run on gpiozero's thread
        assert loop.run_pending() == ["like"]
        clock.advance(0.1)
        pin(factory, LIKE).drive_high()
        clock.advance(0.1)
        pin(factory, DISLIKE).drive_low()  # 0.2 s after the like: one rating, not two
        clock.advance(0.1)
        pin(factory, DISLIKE).drive_high()
        clock.advance(REPEAT_S)
        pin(factory, DISLIKE).drive_low()
        assert loop.run_pending() == ["like", "dislike"]
    finally:
        gpio.close()
    assert LIKE not in factory.pins and DISLIKE not in factory.pins


def test_a_pin_that_cannot_be_opened_is_a_gpio_error_and_nothing_stays_open(
    factory: MockFactory, clock: FakeClock
) -> None:
    holder = LED(DISLIKE, pin_factory=factory)  # the pin is taken
    try:
        with pytest.raises(GpioError, match=f"dislike button on GPIO{DISLIKE}"):
            open_gpio(factory, Ratings(), clock)
        assert LIKE not in factory.pins or factory.pins[LIKE].function == "input"
    finally:
        holder.close()


def test_same_pin_twice_is_a_config_error() -> None:
    from hello_device.errors import ConfigError
    from hello_device.settings import parse_settings

    data = {"platform": {"agent_id": "a"}, "gpio": {"like_pin": 5, "mute_pin": 5}}
    with pytest.raises(ConfigError, match="like_pin, dislike_pin"):
        parse_settings(data, "device.toml", env={})


@pytest.mark.parametrize("led_type", ["led", "rgb"])
@pytest.mark.parametrize("score", ["like", "dislike"])
def test_the_led_acknowledges_then_shows_the_state_again(
    factory: MockFactory, clock: FakeClock, led_type: str, score: str
) -> None:
    pins = [LED_PIN] if led_type == "led" else RGB_PINS
    # No buttons here: gpiozero's buttons keep a hold thread, the blink's thread is the
    # only one then.
    gpio = open_gpio(
        factory,
        Ratings(),
        clock,
        led_type=led_type,
        led_pins=pins,
        like_pin=None,
        dislike_pin=None,
    )
    try:
        gpio.show(DeviceState.IDLE)
        idle = pin_values(factory, led_type)
        pattern, count = ACK_FLASHES[led_type][score]
        seconds = gpio.acknowledge(score)  # type: ignore[arg-type]
        assert seconds == pytest.approx(count * (pattern.on_time + pattern.off_time))
        assert gpio.led is not None and gpio.led.pattern is pattern
        # gpiozero blinks n times in the background, then its thread ends by itself.
        assert wait_until(lambda: not gpio_threads(), seconds + 2.0)
        gpio.resync_led()
        assert pin_values(factory, led_type) == idle
        assert gpio.led.state is DeviceState.IDLE
    finally:
        gpio.close()
