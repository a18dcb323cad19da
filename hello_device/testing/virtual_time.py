"""An event loop on virtual time: when nothing is left to do, time jumps to the next timer.

End-to-end tests run the daemon (file backend, one frame every 20 ms) against the
emulator (sending agent audio paced in real time) on one event loop. On the wall clock a
12 s recording takes 12 s. On this loop, ``loop.time()`` is virtual: whenever every task
waits and no socket has data ready, the clock jumps straight to the next scheduled timer,
so the same conversation runs as fast as the CPU allows, in exactly the order the timers
say. Real I/O is never skipped: each turn of the loop first polls the sockets (loopback
data is ready as soon as it is sent), and while a worker thread of the daemon's is busy
(a REST request, named ``hello-device-*``), time runs on the wall clock until it answers.

Built only from public API: a selector handed to ``asyncio.SelectorEventLoop`` and an
overridden ``time()``. Code under test must take its times from the loop (the daemon's
``clock=loop.time``); ``time.monotonic()`` elsewhere keeps running on the wall clock.

Run a coroutine on it with :func:`run`::

    result = virtual_time.run(scenario())
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_REAL_WAIT_S = 0.005
"""While a worker thread is busy, the longest real wait between two looks at it."""


def _worker_busy() -> bool:
    return any(t.name.startswith("hello-device-") for t in threading.enumerate())


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, instead of sleeping until the next timer, moves the clock there."""

    def __init__(self) -> None:
        self._inner = selectors.DefaultSelector()
        self.offset = 0.0
        """Seconds added to the wall clock (the time skipped so far)."""

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or _worker_busy():
            # Waiting for the outside world (a thread, a signal, a subprocess): real time.
            wait = _REAL_WAIT_S if timeout is None else min(timeout, _REAL_WAIT_S)
            return self._inner.select(wait)
        self.offset += timeout  # nothing to do until then: go there at once
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` jumps over idle waits (see the module docstring)."""

    def __init__(self) -> None:
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return time.monotonic() + self._jumping.offset

    @property
    def skipped_s(self) -> float:
        """Seconds of waiting skipped so far."""
        return self._jumping.offset


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a :class:`VirtualTimeLoop`."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
