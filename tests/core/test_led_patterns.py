"""The LED pattern tables: one distinct pattern per state and kind of LED (pure)."""

from __future__ import annotations

from hello_device.core.led_patterns import (
    LED_PATTERNS,
    pattern_table_markdown,
)
from hello_device.core.turn.state import DeviceState

# --------------------------------------------------------------------------- status LED


def test_every_led_type_has_a_distinct_pattern_for_every_state() -> None:
    for led_type, patterns in LED_PATTERNS.items():
        assert set(patterns) == set(DeviceState), led_type
        shapes = {
            (p.on, p.off, p.on_time, p.off_time, p.fade_in, p.fade_out) for p in patterns.values()
        }
        assert len(shapes) == len(DeviceState), led_type
        assert all(p.text for p in patterns.values())
    for p in LED_PATTERNS["led"].values():
        assert p.on in (0.0, 1.0) and p.off == 0.0 and not (p.fade_in or p.fade_out)
    for p in LED_PATTERNS["pwm"].values():
        assert p.steady or (p.on == 1.0 and p.off == 0.0)  # PWMLED blinks 0 <-> 1 only


def test_pattern_table_has_a_row_per_state() -> None:
    table = pattern_table_markdown()
    rows = table.strip().splitlines()
    assert len(rows) == 2 + len(DeviceState)
    for state in DeviceState:
        assert f"| `{state.value}` |" in table
