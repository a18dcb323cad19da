"""The talk button and the mute switch over gpiozero's MockFactory: debounce, long
presses, resync, and every event handed to the loop, never run on a gpiozero thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest
from gpiozero import LED, Button
from gpiozero.pins.mock import MockFactory

from hello_device.errors import GpioError
from hello_device.gpio.button import ButtonInput
from hello_device.settings import GpioSettings
from tests.gpio.support import (
    BUTTON,
    HOLD_S,
    MUTE,
    FakeClock,
    Loop,
    gpio_threads,
    pin,
    press,
    release,
)

# --------------------------------------------------------------------------- button input


def test_press_and_release_are_handed_to_the_loop(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    inp = make_input()
    press(factory, clock)
    assert loop.events == []  # nothing ran on the pin's thread: it waits for the loop
    assert loop.run_pending() == ["press"]
    assert inp.is_pressed
    release(factory, clock)
    assert loop.run_pending() == ["press", "release"]
    assert not inp.is_pressed
    assert loop.threads == {threading.get_ident()}


def test_button_wired_to_3v3_is_pressed_when_high(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(button_pull_up=False)
    assert pin(factory, BUTTON).pull == "down"
    clock.advance(1.0)
    pin(factory, BUTTON).drive_high()
    clock.advance(1.0)
    pin(factory, BUTTON).drive_low()
    assert loop.run_pending() == ["press", "release"]


def test_bounce_time_reaches_the_pin_driver(
    make_input: Callable[..., ButtonInput], factory: MockFactory
) -> None:
    inp = make_input(bounce_ms=30, mute_pin=MUTE)
    assert pin(factory, BUTTON).bounce == pytest.approx(0.030)
    assert pin(factory, MUTE).bounce == pytest.approx(0.030)
    inp.close()
    make_input(bounce_ms=0)
    assert pin(factory, BUTTON).bounce is None


def test_chatter_within_the_bounce_window_is_one_press_and_one_release(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(bounce_ms=30)
    button = pin(factory, BUTTON)
    clock.advance(1.0)
    button.drive_low()  # contact closes ...
    for _ in range(3):  # ... and bounces for 12 ms
        clock.advance(0.002)
        button.drive_high()
        clock.advance(0.002)
        button.drive_low()
    assert loop.run_pending() == ["press"]
    clock.advance(0.5)
    button.drive_high()  # let go ...
    clock.advance(0.003)
    button.drive_low()  # ... bounce ...
    clock.advance(0.003)
    button.drive_high()
    assert loop.run_pending() == ["press", "release"]


def test_an_edge_after_the_bounce_window_counts(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(bounce_ms=30)
    button = pin(factory, BUTTON)
    clock.advance(1.0)
    button.drive_low()
    clock.advance(0.031)
    button.drive_high()
    clock.advance(0.031)
    button.drive_low()
    assert loop.run_pending() == ["press", "release", "press"]


def test_resync_reports_a_release_the_debounce_swallowed(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    inp = make_input(bounce_ms=30, button_mode="push_to_talk")
    button = pin(factory, BUTTON)
    clock.advance(1.0)
    button.drive_low()  # a 5 ms glitch: its release falls inside the bounce window
    clock.advance(0.005)
    button.drive_high()
    assert loop.run_pending() == ["press"]
    inp.resync()  # still inside the window: nothing yet
    assert loop.run_pending() == ["press"]
    clock.advance(0.1)
    inp.resync()
    inp.resync()
    assert loop.run_pending() == ["press", "release"]
    assert not inp.is_pressed


def test_long_press_fires_once_and_its_release_is_not_a_short_press(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(long_press="mute")
    assert factory.pin(BUTTON).state  # pulled up, not pressed
    press(factory, clock)
    assert loop.wait_for("long_press", 10 * HOLD_S)
    assert loop.quiet_for(3 * HOLD_S)  # held on: no second long press
    release(factory, clock)
    assert loop.run_pending() == ["press", "long_press"]  # no "release"
    assert loop.threads == {threading.get_ident()}
    # The next short press is an ordinary one again.
    press(factory, clock)
    release(factory, clock)
    assert loop.run_pending() == ["press", "long_press", "press", "release"]


def test_short_press_is_not_a_long_press(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(long_press="end")
    press(factory, clock)
    release(factory, clock)
    assert loop.run_pending() == ["press", "release"]
    assert loop.quiet_for(2 * HOLD_S)


@pytest.mark.parametrize(("mode", "long_press"), [("push_to_talk", "mute"), ("toggle", "none")])
def test_no_long_press_where_holding_means_nothing_else(
    make_input: Callable[..., ButtonInput],
    factory: MockFactory,
    loop: Loop,
    clock: FakeClock,
    mode: str,
    long_press: str,
) -> None:
    # Push-to-talk: holding is talking, so the release after a long hold must come through.
    make_input(button_mode=mode, long_press=long_press)
    press(factory, clock)
    assert loop.wait_for("press", 1.0)
    assert loop.quiet_for(3 * HOLD_S)
    release(factory, clock)
    assert loop.run_pending() == ["press", "release"]


def test_mute_switch_reported_at_start_and_on_every_change(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    inp = make_input(button_pin=None, mute_pin=MUTE)
    assert loop.run_pending() == ["muted=False"]
    assert inp.muted is False
    press(factory, clock, MUTE)  # switch closed
    release(factory, clock, MUTE)
    press(factory, clock, MUTE)
    assert loop.run_pending() == ["muted=False", "muted=True", "muted=False", "muted=True"]
    assert inp.muted is True
    assert not inp.is_pressed  # no talk button configured


def test_mute_switch_chatter_ends_on_the_true_level(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop
) -> None:
    # The switch reports levels, not presses: whatever the chatter, the last edge wins.
    inp = make_input(button_pin=None, mute_pin=MUTE, bounce_ms=30)
    switch = pin(factory, MUTE)
    switch.drive_low()
    switch.drive_high()
    switch.drive_low()
    assert loop.run_pending()[-1] == "muted=True"
    assert inp.muted is True


def test_button_and_mute_switch_together(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    make_input(mute_pin=MUTE)
    press(factory, clock, MUTE)
    press(factory, clock)
    release(factory, clock)
    assert loop.run_pending() == ["muted=False", "muted=True", "press", "release"]


def test_close_releases_the_pins_and_silences_callbacks(
    make_input: Callable[..., ButtonInput], factory: MockFactory, loop: Loop, clock: FakeClock
) -> None:
    inp = make_input(mute_pin=MUTE, long_press="mute")
    loop.run_pending()
    inp.close()
    inp.close()  # idempotent
    assert not gpio_threads()  # the hold thread is gone
    press(factory, clock)
    press(factory, clock, MUTE)
    assert loop.run_pending() == ["muted=False"]
    # The same pins open again.
    release(factory, clock)
    release(factory, clock, MUTE)
    make_input(mute_pin=MUTE)
    press(factory, clock)
    assert loop.run_pending() == ["muted=False", "muted=False", "press"]


def test_pin_in_use_is_a_gpio_error(
    make_input: Callable[..., ButtonInput], factory: MockFactory
) -> None:
    other = LED(BUTTON, pin_factory=factory)
    try:
        with pytest.raises(GpioError, match="already used"):
            make_input(mute_pin=MUTE)
        # Nothing half-opened stays behind: the mute pin is free.
        Button(MUTE, pin_factory=factory).close()
    finally:
        other.close()


def test_a_failing_hand_over_is_logged_not_raised_on_the_pin_thread(
    factory: MockFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def closed_loop(callback: Callable[[], None]) -> None:
        raise RuntimeError("Event loop is closed")

    settings = GpioSettings(pin_factory="mock", button_pin=BUTTON, long_press="none")
    with (
        ButtonInput(
            settings, pin_factory=factory, call_soon=closed_loop, on_press=lambda: None, clock=clock
        ),
        caplog.at_level(logging.WARNING, logger="hello_device.gpio"),
    ):
        press(factory, clock)
    assert "could not hand a GPIO event over" in caplog.text
