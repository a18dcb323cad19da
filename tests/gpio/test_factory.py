"""Pin factories: the configured one, gpiozero's MockFactory, and clear errors."""

from __future__ import annotations

import sys

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device.errors import GpioError
from hello_device.gpio.factory import make_pin_factory

# --------------------------------------------------------------------------- pin factory


def test_auto_leaves_the_choice_to_gpiozero() -> None:
    assert make_pin_factory("auto") is None


def test_mock_factory_has_pwm_pins() -> None:
    f = make_pin_factory("mock")
    assert isinstance(f, MockFactory)
    try:
        assert f.pin_class is MockPWMPin
    finally:
        f.close()


@pytest.mark.parametrize(
    ("name", "library", "module", "fix"),
    [
        ("lgpio", "lgpio", "gpiozero.pins.lgpio", "python3-lgpio"),
        ("rpigpio", "RPi", "gpiozero.pins.rpigpio", "python3-rpi.gpio"),
        ("pigpio", "pigpio", "gpiozero.pins.pigpio", "pigpiod"),
    ],
)
def test_missing_factory_library_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, library: str, module: str, fix: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # import fails as if not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(GpioError, match=fix) as info:
        make_pin_factory(name)
    assert f'pin_factory = "{name}"' in str(info.value)


def test_native_factory_off_a_pi_says_what_to_do() -> None:
    try:
        factory = make_pin_factory("native")
    except GpioError as exc:
        assert "mock" in str(exc)
    else:  # running on a real Pi
        assert factory is not None
        factory.close()


def test_unknown_factory_lists_the_choices() -> None:
    with pytest.raises(GpioError, match="lgpio"):
        make_pin_factory("wiringpi")
