"""Talk button, mute switch and status LED, through gpiozero only.

Hardware sits behind a gpiozero *pin factory* passed to every constructor, the way
gpiozero itself does it: :func:`make_pin_factory` turns ``gpio.pin_factory`` from the
settings into one (``"mock"`` gives gpiozero's own :class:`~gpiozero.pins.mock.MockFactory`
with PWM-capable pins, for demos and tests), and nothing below knows which one it got.

Threads: gpiozero calls its callbacks on its own threads (edge detection, the hold
timer). :class:`ButtonInput` does the minimum there (debounce, long-press bookkeeping,
under a lock) and hands every event over through ``call_soon`` -- the app passes
``loop.call_soon_threadsafe`` -- so the core never sees a thread. :class:`StatusLed`
uses gpiozero's own background blink/pulse threads; this module starts none of its own.

Pieces:

- :class:`ButtonLogic`: pure mapping from button events to conversation :class:`Action`\\ s
  for the two button modes (``toggle``, ``push_to_talk``) and the long-press setting.
- :class:`ButtonInput`: the talk button and the mute switch (closed = muted).
- :class:`StatusLed`: one pattern per :class:`~hello_device.turn.state.DeviceState` for a
  single LED, a PWM LED or an RGB LED (tables :data:`LED_PATTERNS`).
- :class:`Gpio`: the facade the app uses; every failure to open a pin is a
  :class:`~hello_device.errors.GpioError`, so the app can log it and run without GPIO.
"""

from __future__ import annotations

import enum
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from gpiozero import LED, PWMLED, RGBLED, Button, Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hello_device.config import GpioSettings
from hello_device.errors import GpioError
from hello_device.turn.state import DeviceState

__all__ = [
    "LED_PATTERNS",
    "Action",
    "ButtonInput",
    "ButtonLogic",
    "Gpio",
    "LedPattern",
    "StatusLed",
    "make_pin_factory",
    "pattern_table_markdown",
]

log = logging.getLogger(__name__)

CallSoon: TypeAlias = Callable[[Callable[[], None]], object]
"""Hands a callback to the event loop from any thread (``loop.call_soon_threadsafe``)."""

Callback: TypeAlias = Callable[[], None]
Clock: TypeAlias = Callable[[], float]
Color: TypeAlias = tuple[float, float, float]
Level: TypeAlias = float | Color
ButtonMode: TypeAlias = Literal["toggle", "push_to_talk"]
LongPress: TypeAlias = Literal["end", "mute", "none"]
LedType: TypeAlias = Literal["none", "led", "pwm", "rgb"]


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


# --------------------------------------------------------------------------- button logic


class Action(enum.Enum):
    """What the app should do in answer to a button event."""

    START = "start"
    """Start a conversation."""
    END = "end"
    """End the conversation."""
    PTT_DOWN = "ptt_down"
    """Push-to-talk: let microphone audio flow (the button is held)."""
    PTT_UP = "ptt_up"
    """Push-to-talk: stop microphone audio (the button was let go)."""
    MUTE = "mute"
    """Mute the microphone (send silence) and show it."""
    UNMUTE = "unmute"
    """Unmute the microphone."""


@dataclass(frozen=True)
class ButtonLogic:
    """Pure mapping from button events to :class:`Action`\\ s; no I/O, no state.

    ``toggle`` mode: a press starts a conversation, the next press ends it. When a long
    press is configured (``long_press`` is ``"end"`` or ``"mute"``) the toggle happens on
    the *release* of a short press, because at the moment of the press nobody knows yet
    whether it will become a long one (:class:`ButtonInput` does not report the release
    that ends a long press). With ``long_press = "none"`` the toggle happens on the press.

    ``push_to_talk`` mode: a press starts a conversation if none is open and lets audio
    flow; the release stops it. Holding the button *is* talking there, so long presses
    are off in this mode (:attr:`long_press_enabled` is false).
    """

    mode: ButtonMode = "toggle"
    """``toggle`` or ``push_to_talk`` (``gpio.button_mode``)."""

    long_press: LongPress = "mute"
    """What a long press does: ``end``, ``mute`` (toggles) or ``none`` (``gpio.long_press``)."""

    def __post_init__(self) -> None:
        if self.mode not in ("toggle", "push_to_talk"):
            raise ValueError(f"button mode must be toggle or push_to_talk, not {self.mode!r}")
        if self.long_press not in ("end", "mute", "none"):
            raise ValueError(f"long_press must be end, mute or none, not {self.long_press!r}")

    @classmethod
    def from_settings(cls, settings: GpioSettings) -> ButtonLogic:
        """The logic ``[gpio]`` asks for."""
        return cls(mode=settings.button_mode, long_press=settings.long_press)

    @property
    def long_press_enabled(self) -> bool:
        """Whether long presses are detected at all (toggle mode with a long-press action)."""
        return self.mode == "toggle" and self.long_press != "none"

    def pressed(self, in_conversation: bool) -> list[Action]:
        """The button went down."""
        if self.mode == "push_to_talk":
            return [Action.PTT_DOWN] if in_conversation else [Action.START, Action.PTT_DOWN]
        if self.long_press_enabled:
            return []  # decided on release: a short press toggles, a long one does not
        return [self._toggle(in_conversation)]

    def released(self, in_conversation: bool) -> list[Action]:
        """The button came up (never called for the release that ends a long press)."""
        if self.mode == "push_to_talk":
            return [Action.PTT_UP]  # even if the conversation ended meanwhile: fail closed
        if self.long_press_enabled:
            return [self._toggle(in_conversation)]
        return []

    def long_pressed(self, in_conversation: bool, muted: bool) -> list[Action]:
        """The button has been held for ``gpio.hold_s``."""
        if not self.long_press_enabled:
            return []
        if self.long_press == "end":
            return [Action.END] if in_conversation else []
        return [Action.UNMUTE] if muted else [Action.MUTE]

    @staticmethod
    def _toggle(in_conversation: bool) -> Action:
        return Action.END if in_conversation else Action.START


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


# --------------------------------------------------------------------------- status LED


@dataclass(frozen=True)
class LedPattern:
    """One LED pattern: a steady level, or gpiozero ``blink`` parameters.

    With all times zero the LED shows ``on`` steadily. Otherwise it runs gpiozero's
    background ``blink(on_time, off_time, fade_in_time, fade_out_time)`` between ``on`` and
    ``off`` (a *pulse* is a blink with fades). Levels are 0..1 for single and PWM LEDs,
    ``(red, green, blue)`` for RGB LEDs; a single LED knows only 0 and 1, and a PWM LED
    blinks between 1 and 0 only.
    """

    on: Level
    off: Level = 0.0
    on_time: float = 0.0
    off_time: float = 0.0
    fade_in: float = 0.0
    fade_out: float = 0.0
    text: str = ""
    """How it looks, for the README."""

    @property
    def steady(self) -> bool:
        """No blinking: the LED just shows :attr:`on`."""
        return not (self.on_time or self.off_time or self.fade_in or self.fade_out)


def _steady(level: Level, text: str) -> LedPattern:
    return LedPattern(on=level, text=text)


def _blink(on_time: float, off_time: float, text: str, on: Level = 1.0) -> LedPattern:
    return LedPattern(on=on, on_time=on_time, off_time=off_time, text=text)


def _pulse(
    fade_in: float, fade_out: float, text: str, on: Level = 1.0, off_time: float = 0.0
) -> LedPattern:
    return LedPattern(on=on, fade_in=fade_in, fade_out=fade_out, off_time=off_time, text=text)


_S = DeviceState
_WHITE_DIM: Color = (0.05, 0.05, 0.05)
_BLUE: Color = (0.0, 0.0, 1.0)
_CYAN: Color = (0.0, 1.0, 1.0)
_GREEN: Color = (0.0, 1.0, 0.0)
_RED: Color = (1.0, 0.0, 0.0)
_AMBER: Color = (1.0, 0.5, 0.0)

LED_PATTERNS: Mapping[str, Mapping[DeviceState, LedPattern]] = {
    "led": {
        _S.IDLE: _steady(0.0, "off"),
        _S.CONNECTING: _blink(0.1, 0.4, "short flash twice a second (0.1 s on, 0.4 s off)"),
        _S.LISTENING: _steady(1.0, "on"),
        _S.THINKING: _blink(0.5, 0.5, "even blink once a second (0.5 s on, 0.5 s off)"),
        _S.SPEAKING: _blink(0.4, 0.1, "on with quick dips (0.4 s on, 0.1 s off)"),
        _S.MUTED: _blink(0.05, 1.95, "brief blip every 2 s"),
        _S.ERROR: _blink(0.1, 0.1, "rapid blink, 5 per second"),
        _S.OFFLINE: _blink(0.5, 2.5, "slow blink, long off (0.5 s on, 2.5 s off)"),
    },
    "pwm": {
        _S.IDLE: _steady(0.05, "dim glow (5 %)"),
        _S.CONNECTING: _blink(0.1, 0.4, "short flash twice a second (0.1 s on, 0.4 s off)"),
        _S.LISTENING: _steady(1.0, "full brightness"),
        _S.THINKING: _pulse(0.6, 0.6, "breathing (0.6 s fade in, 0.6 s fade out)"),
        _S.SPEAKING: _pulse(0.3, 0.3, "fast breathing (0.3 s fade in, 0.3 s fade out)"),
        _S.MUTED: _blink(0.05, 1.95, "brief blip every 2 s"),
        _S.ERROR: _blink(0.1, 0.1, "rapid blink, 5 per second"),
        _S.OFFLINE: _pulse(1.0, 1.0, "slow breath then 2 s dark", off_time=2.0),
    },
    "rgb": {
        _S.IDLE: _steady(_WHITE_DIM, "dim white"),
        _S.CONNECTING: _blink(0.25, 0.25, "blue blink (0.25 s on, 0.25 s off)", on=_BLUE),
        _S.LISTENING: _steady(_BLUE, "blue"),
        _S.THINKING: _pulse(0.6, 0.6, "cyan breathing (0.6 s in, 0.6 s out)", on=_CYAN),
        _S.SPEAKING: _steady(_GREEN, "green"),
        _S.MUTED: _steady(_RED, "red"),
        _S.ERROR: _blink(0.1, 0.1, "red rapid blink, 5 per second", on=_RED),
        _S.OFFLINE: _blink(1.0, 2.0, "amber slow blink (1 s on, 2 s off)", on=_AMBER),
    },
}
"""The pattern for each state, per ``gpio.led_type`` (``none`` shows nothing)."""


def pattern_table_markdown() -> str:
    """The README table of LED patterns (state x single / PWM / RGB), from the code."""
    lines = [
        "| State | Single LED (`led`) | PWM LED (`pwm`) | RGB LED (`rgb`) |",
        "|---|---|---|---|",
    ]
    for state in DeviceState:
        cells = [LED_PATTERNS[kind][state].text for kind in ("led", "pwm", "rgb")]
        lines.append(f"| `{state.value}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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

    def _apply(self, p: LedPattern) -> None:
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
                )
        elif p.steady:
            dev.value = _level(p.on) if self._type == "pwm" else _level(p.on) >= 0.5
        elif self._type == "pwm":
            dev.blink(
                on_time=p.on_time,
                off_time=p.off_time,
                fade_in_time=p.fade_in,
                fade_out_time=p.fade_out,
            )
        else:
            dev.blink(on_time=p.on_time, off_time=p.off_time)

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
            self._led = StatusLed(settings, pin_factory=self._factory)
        except BaseException:
            self.close()
            raise
        log.info(
            "GPIO: factory %s, button %s, mute switch %s, LED %s %s",
            settings.pin_factory,
            _pin_text(settings.button_pin),
            _pin_text(settings.mute_pin),
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

    def resync(self) -> None:
        """Call on a periodic tick: see :meth:`ButtonInput.resync` (no-op without button)."""
        if self._buttons is not None:
            self._buttons.resync()

    def close(self) -> None:
        """Release every pin, and the pin factory if this object made it. Idempotent."""
        if self._buttons is not None:
            self._buttons.close()
            self._buttons = None
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
