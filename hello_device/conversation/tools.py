"""Device-side client tools: what the agent may ask the device to do.

The platform sends ``client_tool_call`` with a tool name and parameters; the session
looks the name up in a :class:`ToolRegistry` and answers ``client_tool_result``. The
result on the wire is always a string (structured results are JSON-encoded); an unknown
tool, bad parameters or a tool that raises give ``is_error: true`` with a short reason,
never a crash. Names, parameters and the errors they cause are the platform's text: they
reach the log through :func:`~hello_device.logs.peer`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hello_device.core.text import peer

log = logging.getLogger(__name__)

ToolFunc = Callable[..., Any | Awaitable[Any]]


class ToolRegistry:
    """Named device tools; each takes keyword parameters and returns a JSON-able value."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._tools: dict[str, ToolFunc] = {}
        self.timeout_s = timeout_s

    def register(self, name: str, func: ToolFunc) -> None:
        self._tools[name] = func

    def names(self) -> list[str]:
        return sorted(self._tools)

    async def call(self, name: str, parameters: Mapping[str, Any]) -> tuple[str, bool]:
        """Run a tool; return ``(result string, is_error)``. Never raises."""
        func = self._tools.get(name)
        if func is None:
            shown = peer(name, 64)
            log.warning("the agent called an unknown device tool %s", shown)
            return f"unknown tool: {shown}", True
        try:
            value = func(**dict(parameters))
            if inspect.isawaitable(value):
                value = await asyncio.wait_for(value, self.timeout_s)
        except TypeError as exc:
            log.warning("device tool %s: bad parameters: %s", name, peer(exc))
            return f"bad parameters for {name}: {peer(exc)}", True
        except TimeoutError:
            log.warning("device tool %s timed out after %.0f s", name, self.timeout_s)
            return f"{name} timed out", True
        except Exception as exc:
            log.warning("device tool %s failed: %s", name, peer(exc))
            return f"{name} failed: {peer(exc)}", True
        return to_result_string(value), False


def to_result_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def default_registry(
    device_id: str,
    device_name: str,
    version: str,
    set_volume: Callable[[float], None] | None = None,
    get_volume: Callable[[], float] | None = None,
) -> ToolRegistry:
    """The tools every device offers: its identity, the time, and its volume."""
    registry = ToolRegistry()

    def get_device_info() -> dict[str, str]:
        return {"device_id": device_id, "device_name": device_name, "version": version}

    def get_local_time() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z")

    registry.register("get_device_info", get_device_info)
    registry.register("get_local_time", get_local_time)
    if set_volume is not None and get_volume is not None:
        setter, getter = set_volume, get_volume

        def set_volume_tool(level: float | int | str) -> dict[str, float]:
            value = float(level)
            if value > 1.0:  # agents often think in percent
                value /= 100.0
            if not 0.0 <= value <= 1.0:
                raise ValueError("level must be 0..1 (or 0..100 %)")
            setter(value)
            return {"volume": round(getter(), 3)}

        registry.register("set_volume", set_volume_tool)
    return registry
