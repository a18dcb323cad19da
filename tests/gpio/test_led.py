"""The status LED over gpiozero's MockFactory: exact values, running patterns, active-low
wiring, clean close."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from hello_device.core.led_patterns import (
    LED_PATTERNS,
    LedPattern,
)
from hello_device.core.turn.state import DeviceState
from hello_device.errors import GpioError
from hello_device.gpio.led import StatusLed
from hello_device.settings import GpioSettings
from tests.gpio.support import (
    LED_PIN,
    MOVING,
    RGB_PINS,
    STEADY,
    expected_pins,
    gpio_threads,
    pin,
    pin_values,
    wait_until,
)


@pytest.mark.parametrize(("led_type", "state"), STEADY)
def test_steady_states_show_their_exact_value(
    make_led: Callable[..., StatusLed], factory: MockFactory, led_type: str, state: DeviceState
) -> None:
    led = make_led(led_type)
    # Come from a blinking state, so the test also shows the blink stops.
    led.show(DeviceState.ERROR)
    led.show(state)
    pattern = LED_PATTERNS[led_type][state]
    assert led.state is state and led.pattern == pattern
    assert pin_values(factory, led_type) == pytest.approx(expected_pins(led_type, pattern.on))
    value = led.device.value
    assert (list(value) if led_type == "rgb" else [float(value)]) == pytest.approx(
        expected_pins(led_type, pattern.on)
    )
    assert not gpio_threads()  # no blink thread left running


@pytest.mark.parametrize(("led_type", "state"), MOVING)
def test_blinking_states_run_their_pattern(
    make_led: Callable[..., StatusLed], factory: MockFactory, led_type: str, state: DeviceState
) -> None:
    led = make_led(led_type)
    pattern: LedPattern = LED_PATTERNS[led_type][state]
    numbers = RGB_PINS if led_type == "rgb" else [LED_PIN]
    pins = [pin(factory, n) for n in numbers]
    target = expected_pins(led_type, pattern.on)
    lead = pins[target.index(max(target))]  # the brightest channel
    for p in pins:
        p.clear_states()
    led.show(state)
    period = pattern.on_time + pattern.off_time + pattern.fade_in + pattern.fade_out
    # Recorded history: the initial level plus at least two changes (on and back off).
    assert wait_until(lambda: len(lead.states) >= 3, period + 1.0), lead.states
    history = [[float(s.state) for s in p.states] for p in pins]
    for channel, seen in zip(target, history, strict=True):
        assert max(seen) == pytest.approx(channel) or (pattern.fade_in and max(seen) <= channel)
        if channel == 0:
            assert seen == [0.0]  # channels the colour does not use stay dark
    lead_seen = history[pins.index(lead)]
    if pattern.fade_in or pattern.fade_out:
        assert any(0.0 < v < 1.0 for v in lead_seen), lead_seen  # a fade, not a blink
    else:
        assert set(lead_seen) <= {0.0, max(target)}, lead_seen
        # The first "on" lasted at least on_time (threads run late, never early).
        on_index = lead_seen.index(max(target))
        if on_index + 1 < len(lead.states):
            assert lead.states[on_index + 1].timestamp >= 0.8 * pattern.on_time


def test_showing_the_same_state_again_does_not_restart_the_pattern(
    make_led: Callable[..., StatusLed], factory: MockFactory
) -> None:
    led = make_led("led")
    lead = pin(factory, LED_PIN)
    lead.clear_states()
    led.show(DeviceState.OFFLINE)  # 0.5 s on, 2.5 s off
    assert wait_until(lambda: len(lead.states) >= 3, 2.0)  # on, then into the long "off"
    led.show(DeviceState.OFFLINE)
    assert not lead.state  # a restart would have switched it on
    assert len(lead.states) == 3


@pytest.mark.parametrize(
    ("led_type", "state", "pins_when_active_low"),
    [
        ("led", DeviceState.LISTENING, [0.0]),
        ("led", DeviceState.IDLE, [1.0]),
        ("pwm", DeviceState.IDLE, [0.95]),
        ("pwm", DeviceState.LISTENING, [0.0]),
        ("rgb", DeviceState.MUTED, [0.0, 1.0, 1.0]),
        ("rgb", DeviceState.LISTENING, [1.0, 1.0, 0.0]),
    ],
)
def test_active_low_leds_are_inverted_on_the_pins(
    make_led: Callable[..., StatusLed],
    factory: MockFactory,
    led_type: str,
    state: DeviceState,
    pins_when_active_low: list[float],
) -> None:
    led = make_led(led_type, led_active_high=False)
    led.show(state)
    assert pin_values(factory, led_type) == pytest.approx(pins_when_active_low)
    on = LED_PATTERNS[led_type][state].on
    value = led.device.value
    assert (list(value) if led_type == "rgb" else [float(value)]) == pytest.approx(
        expected_pins(led_type, on)
    )


def test_led_type_none_does_nothing(make_led: Callable[..., StatusLed]) -> None:
    led = make_led("none")
    for state in DeviceState:
        led.show(state)
    assert led.device is None and led.pattern is None
    led.close()


@pytest.mark.parametrize("led_type", ["led", "pwm", "rgb"])
def test_close_stops_the_pattern_and_frees_the_pins(
    make_led: Callable[..., StatusLed], factory: MockFactory, led_type: str
) -> None:
    led = make_led(led_type)
    led.show(DeviceState.THINKING)
    assert gpio_threads()
    led.close()
    led.close()
    assert not gpio_threads()
    again = make_led(led_type)  # the same pins open again
    again.show(DeviceState.LISTENING)
    assert again.pattern == LED_PATTERNS[led_type][DeviceState.LISTENING]


def test_pwm_led_on_a_factory_without_pwm_is_a_gpio_error() -> None:
    plain = MockFactory()  # MockPin: no PWM
    settings = GpioSettings(pin_factory="mock", led_type="pwm", led_pins=[LED_PIN])
    try:
        with pytest.raises(GpioError, match="PWM"):
            StatusLed(settings, pin_factory=plain)
        LED(LED_PIN, pin_factory=plain).close()  # nothing left reserved
    finally:
        plain.close()


def test_wrong_number_of_led_pins_is_a_gpio_error(factory: MockFactory) -> None:
    settings = GpioSettings(pin_factory="mock", led_type="rgb", led_pins=[5])
    with pytest.raises(GpioError, match="3 pin"):
        StatusLed(settings, pin_factory=factory)
