"""GPIO adapters against gpiozero's own MockFactory: buttons pressed, LEDs read.

Pins are gpiozero's ``MockPWMPin``\\ s (no fakes of our own): a test presses the button by
driving the pin (pull-up wiring: pressed = low) and reads the LED from the pin's value and
its recorded history (``MockPin.states``). ``call_soon`` queues callbacks the way
``loop.call_soon_threadsafe`` does and the test runs them on its own thread, so every test
also checks that nothing reaches the app on a gpiozero thread. Every wait is bounded
(multiples of ``UNIT``); no sleep stands in for synchronisation.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import LED, Button, Device
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from gpiozero.threads import GPIOThread

from hello_device.config import GpioSettings
from hello_device.errors import GpioError
from hello_device.gpio import (
    LED_PATTERNS,
    Action,
    ButtonInput,
    ButtonLogic,
    Gpio,
    LedPattern,
    StatusLed,
    make_pin_factory,
    pattern_table_markdown,
)
from hello_device.turn.state import DeviceState

from .conftest import UNIT

BUTTON = 17
MUTE = 27
LED_PIN = 22
RGB_PINS = [5, 6, 13]
HOLD_S = 0.2


# --------------------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (x UNIT) seconds pass."""
    deadline = time.monotonic() + timeout * UNIT
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.005)
    return True


def gpio_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, GPIOThread) and t.is_alive()]


class FakeClock:
    """The clock ButtonInput debounces with; tests move it by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Loop:
    """Stands in for the event loop: ``call_soon`` queues, the test thread runs."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self.events: list[str] = []
        self.threads: set[int] = set()

    def call_soon(self, callback: Callable[[], None]) -> None:
        self._queue.put(callback)

    def _record(self, event: str) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)

    def on_press(self) -> None:
        self._record("press")

    def on_release(self) -> None:
        self._record("release")

    def on_long_press(self) -> None:
        self._record("long_press")

    def on_mute_changed(self, muted: bool) -> None:
        self._record(f"muted={muted}")

    def callbacks(self) -> dict[str, Any]:
        return {
            "call_soon": self.call_soon,
            "on_press": self.on_press,
            "on_release": self.on_release,
            "on_long_press": self.on_long_press,
            "on_mute_changed": self.on_mute_changed,
        }

    def run_pending(self) -> list[str]:
        """Run what is queued now; the events so far."""
        while True:
            try:
                callback = self._queue.get_nowait()
            except queue.Empty:
                return self.events
            callback()

    def wait_for(self, event: str, timeout: float) -> bool:
        """Run callbacks as they come until ``event`` has happened (bounded)."""
        deadline = time.monotonic() + timeout * UNIT
        while event not in self.run_pending():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._queue.get(timeout=remaining)()
            except queue.Empty:
                return False
        return True

    def quiet_for(self, timeout: float) -> bool:
        """True if no callback arrives within ``timeout`` (x UNIT) seconds."""
        try:
            callback = self._queue.get(timeout=timeout * UNIT)
        except queue.Empty:
            return True
        callback()
        return False


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


def pin(factory: MockFactory, number: int) -> MockPin:
    return factory.pin(number)


def press(factory: MockFactory, clock: FakeClock, number: int = BUTTON) -> None:
    """A deliberate press (pull-up wiring: the pin goes low), well past any bounce window."""
    clock.advance(1.0)
    pin(factory, number).drive_low()


def release(factory: MockFactory, clock: FakeClock, number: int = BUTTON) -> None:
    clock.advance(1.0)
    pin(factory, number).drive_high()


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


# --------------------------------------------------------------------------- button logic

S, E, D, U, M, UM = (
    Action.START,
    Action.END,
    Action.PTT_DOWN,
    Action.PTT_UP,
    Action.MUTE,
    Action.UNMUTE,
)

# (mode, long_press) -> pressed(idle), pressed(in conv.), released(idle), released(in conv.),
#                       long_pressed[(in_conv, muted)] for FF, FT, TF, TT
LOGIC_TABLE: dict[tuple[str, str], tuple[Any, Any, Any, Any, list[list[Action]]]] = {
    ("toggle", "none"): ([S], [E], [], [], [[], [], [], []]),
    ("toggle", "end"): ([], [], [S], [E], [[], [], [E], [E]]),
    ("toggle", "mute"): ([], [], [S], [E], [[M], [UM], [M], [UM]]),
    ("push_to_talk", "none"): ([S, D], [D], [U], [U], [[], [], [], []]),
    ("push_to_talk", "end"): ([S, D], [D], [U], [U], [[], [], [], []]),
    ("push_to_talk", "mute"): ([S, D], [D], [U], [U], [[], [], [], []]),
}


@pytest.mark.parametrize(("mode", "long_press"), list(LOGIC_TABLE))
def test_button_logic_every_combination(mode: Any, long_press: Any) -> None:
    logic = ButtonLogic(mode, long_press)
    p_idle, p_conv, r_idle, r_conv, held = LOGIC_TABLE[mode, long_press]
    assert logic.pressed(in_conversation=False) == p_idle
    assert logic.pressed(in_conversation=True) == p_conv
    assert logic.released(in_conversation=False) == r_idle
    assert logic.released(in_conversation=True) == r_conv
    combos = [(False, False), (False, True), (True, False), (True, True)]
    for (in_conv, muted), expected in zip(combos, held, strict=True):
        assert logic.long_pressed(in_conversation=in_conv, muted=muted) == expected
    assert logic.long_press_enabled == (mode == "toggle" and long_press != "none")


def test_a_toggle_is_one_action_per_short_press() -> None:
    # With a long press configured the toggle waits for the release; without, it is the press.
    for logic in (ButtonLogic("toggle", "mute"), ButtonLogic("toggle", "none")):
        in_conv = False
        for _ in range(4):
            actions = logic.pressed(in_conv) + logic.released(in_conv)
            assert actions == [E if in_conv else S]
            in_conv = not in_conv


def test_button_logic_from_settings_and_validation() -> None:
    settings = GpioSettings(button_mode="push_to_talk", long_press="end")
    assert ButtonLogic.from_settings(settings) == ButtonLogic("push_to_talk", "end")
    with pytest.raises(ValueError, match="mode"):
        ButtonLogic("hold", "end")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="long_press"):
        ButtonLogic("toggle", "reboot")  # type: ignore[arg-type]


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


def expected_pins(led_type: str, level: Any) -> list[float]:
    if led_type == "rgb":
        return list(level)
    return [float(level)]


def pin_values(factory: MockFactory, led_type: str) -> list[float]:
    numbers = RGB_PINS if led_type == "rgb" else [LED_PIN]
    return [float(pin(factory, n).state) for n in numbers]


STEADY = [(t, s) for t, ps in LED_PATTERNS.items() for s, p in ps.items() if p.steady]
MOVING = [(t, s) for t, ps in LED_PATTERNS.items() for s, p in ps.items() if not p.steady]


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
