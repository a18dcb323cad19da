"""Small asyncio helpers shared by the adapters (one home for each).

- :func:`first_of` and :func:`until_stopped`: wait for the first of several things,
  never swallowing a cancellation (``asyncio.wait_for`` can, on Python 3.11);
- :func:`in_daemon_thread` and :func:`call_in_daemon_thread`: run a blocking call in a
  daemon thread, which the process never waits for at exit (a request stuck on a silent
  server, or a sound card stuck in its driver, must not delay a SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def first_of(*waits: Awaitable[object], timeout: float | None = None) -> None:  # noqa: ASYNC109
    """Until the first of ``waits`` completes or ``timeout`` passes; the others are
    cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def until_stopped(coro: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``await coro``, or None as soon as ``stop`` is set (``coro`` is then cancelled)."""
    task = asyncio.ensure_future(coro)
    await first_of(task, stop.wait())
    if task.done():
        return task.result()
    task.cancel()
    return None


def in_daemon_thread(func: Callable[..., T], *args: Any, name: str = "worker") -> asyncio.Future[T]:
    """Run ``func(*args)`` in a daemon thread; await the returned future for its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def work() -> None:
        try:
            result = func(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop may be closed at exit
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=work, name=f"hello-device-{name}", daemon=True).start()
    return future


def call_in_daemon_thread(func: Callable[[], T], timeout: float, name: str = "worker") -> T:
    """Blocking: ``func()`` in a daemon thread, its result or its exception; raises
    ``TimeoutError`` when it takes longer than ``timeout`` (the thread is left to finish)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"hello-device-{name}", daemon=True).start()
    if not done.wait(max(0.0, timeout)):
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep``, or a test's stand-in."""
Clock = Callable[[], float]
"""A clock in seconds (``time.monotonic``, ``time.time``, or a test's)."""
