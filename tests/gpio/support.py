"""What the GPIO tests share: pin numbers, a loop stand-in that runs the callbacks the
adapters hand over (and checks they never run on a gpiozero thread), a fake clock."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin
from gpiozero.threads import GPIOThread

from hello_device.core.led_patterns import (
    LED_PATTERNS,
)
from tests.conftest import UNIT

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


def pin(factory: MockFactory, number: int) -> MockPin:
    return factory.pin(number)


def press(factory: MockFactory, clock: FakeClock, number: int = BUTTON) -> None:
    """A deliberate press (pull-up wiring: the pin goes low), well past any bounce window."""
    clock.advance(1.0)
    pin(factory, number).drive_low()


def release(factory: MockFactory, clock: FakeClock, number: int = BUTTON) -> None:
    clock.advance(1.0)
    pin(factory, number).drive_high()


def expected_pins(led_type: str, level: Any) -> list[float]:
    if led_type == "rgb":
        return list(level)
    return [float(level)]


def pin_values(factory: MockFactory, led_type: str) -> list[float]:
    numbers = RGB_PINS if led_type == "rgb" else [LED_PIN]
    return [float(pin(factory, n).state) for n in numbers]


STEADY = [(t, s) for t, ps in LED_PATTERNS.items() for s, p in ps.items() if p.steady]
MOVING = [(t, s) for t, ps in LED_PATTERNS.items() for s, p in ps.items() if not p.steady]
