"""The status LED's pattern for each device state, per kind of LED (pure data)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from hello_device.core.turn.state import DeviceState

log = logging.getLogger(__name__)

Color: TypeAlias = tuple[float, float, float]
Level: TypeAlias = float | Color

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


ACK_FLASHES: Mapping[str, Mapping[str, tuple[LedPattern, int]]] = {
    kind: {
        "like": (_blink(0.1, 0.1, "two quick flashes", on=_GREEN if kind == "rgb" else 1.0), 2),
        "dislike": (_blink(0.6, 0.2, "one long flash", on=_AMBER if kind == "rgb" else 1.0), 1),
    }
    for kind in ("led", "pwm", "rgb")
}
"""How the status LED acknowledges a rating (pattern, number of flashes), per LED type;
then it shows the state's pattern again."""


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
