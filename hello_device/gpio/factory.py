"""gpiozero pin factories: the configured one, or gpiozero's own MockFactory.

Hardware sits behind a gpiozero *pin factory* passed to every constructor, the way
gpiozero itself does it: :func:`make_pin_factory` turns ``gpio.pin_factory`` from the
settings into one (``"mock"`` gives :class:`~gpiozero.pins.mock.MockFactory` with
PWM-capable pins, for demos and tests), and nothing else knows which one it got.
"""

from __future__ import annotations

import importlib
import logging

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device.errors import GpioError
from hello_device.settings import GpioSettings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- pin factory

_VENV_HINT = " (in a virtualenv, create it with --system-site-packages to see apt packages)"

_FACTORIES: dict[str, tuple[str, str, str]] = {
    "lgpio": (
        "gpiozero.pins.lgpio",
        "LGPIOFactory",
        "install lgpio: `sudo apt install python3-lgpio`" + _VENV_HINT,
    ),
    "rpigpio": (
        "gpiozero.pins.rpigpio",
        "RPiGPIOFactory",
        "install RPi.GPIO: `sudo apt install python3-rpi.gpio`"
        + _VENV_HINT
        + '; it does not support the Pi 5, use pin_factory = "lgpio" there',
    ),
    "pigpio": (
        "gpiozero.pins.pigpio",
        "PiGPIOFactory",
        "install pigpio (`sudo apt install python3-pigpio pigpio`"
        + _VENV_HINT
        + ") and start its daemon: `sudo systemctl enable --now pigpiod`",
    ),
    "native": (
        "gpiozero.pins.native",
        "NativeFactory",
        "the native factory needs a Raspberry Pi and read/write access to /dev/gpiomem "
        '(add the user to the "gpio" group); it has no PWM, so use led_type = "led"',
    ),
}

_NO_HARDWARE_HINT = 'not on a Raspberry Pi? set gpio.pin_factory = "mock" to run without pins'


def make_pin_factory(name: str) -> Factory | None:
    """The gpiozero pin factory named by ``gpio.pin_factory``.

    ``"auto"`` returns ``None``: gpiozero picks its default (``GPIOZERO_PIN_FACTORY``, else
    lgpio, RPi.GPIO, pigpio, native) when the first device is opened. ``"mock"`` returns a
    :class:`~gpiozero.pins.mock.MockFactory` whose pins support PWM, so PWM and RGB LEDs
    work in demos and tests. The hardware factories are imported only when asked for.

    :raises GpioError: the factory's library is missing or it cannot reach the hardware;
        the message says how to fix it.
    """
    if name == "auto":
        return None
    if name == "mock":
        return MockFactory(pin_class=MockPWMPin)
    try:
        module_name, class_name, hint = _FACTORIES[name]
    except KeyError:
        choices = ", ".join(["auto", "mock", *_FACTORIES])
        raise GpioError(f"unknown gpio.pin_factory {name!r} (choose one of {choices})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GpioError(f'gpio.pin_factory = "{name}": {exc}; fix: {hint}') from exc
    try:
        factory = getattr(module, class_name)()
    except Exception as exc:
        raise GpioError(
            f'gpio.pin_factory = "{name}" could not start: {exc}; fix: {hint}; {_NO_HARDWARE_HINT}'
        ) from exc
    log.debug("pin factory %s ready", class_name)
    return factory


def _open_error(what: str, exc: Exception, settings: GpioSettings) -> GpioError:
    """A :class:`GpioError` for a device that gpiozero could not open, with a fix hint."""
    kind = type(exc).__name__
    if kind == "BadPinFactory":
        hint = "install python3-lgpio (`sudo apt install python3-lgpio`); " + _NO_HARDWARE_HINT
    elif kind == "PinUnknownPi":
        hint = _NO_HARDWARE_HINT
    elif kind == "GPIOPinInUse":
        hint = "the pin is already used by another device; give every role its own pin"
    elif kind == "PinPWMUnsupported":
        hint = (
            f'gpio.pin_factory = "{settings.pin_factory}" has no PWM on this pin: use '
            'led_type = "led", or pin_factory = "lgpio" for software PWM'
        )
    elif kind in ("PinInvalidPin", "PinInvalidFunction") or isinstance(exc, ValueError):
        hint = "check the BCM pin numbers in [gpio]"
    elif isinstance(exc, PermissionError):
        hint = 'add the user to the "gpio" group (`sudo adduser $USER gpio`) and log in again'
    else:
        hint = "check the wiring and the [gpio] settings"
    return GpioError(f"cannot open {what}: {kind}: {exc}; fix: {hint}")
