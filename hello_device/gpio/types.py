"""Type aliases shared by the GPIO adapters and the pure button and LED logic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeAlias

log = logging.getLogger(__name__)

CallSoon: TypeAlias = Callable[[Callable[[], None]], object]
"""Hands a callback to the event loop from any thread (``loop.call_soon_threadsafe``)."""

Callback: TypeAlias = Callable[[], None]
Clock: TypeAlias = Callable[[], float]
LedType: TypeAlias = Literal["none", "led", "pwm", "rgb"]
