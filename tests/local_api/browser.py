"""A real headless Chromium (Debian's ``chromium``), driven over its DevTools protocol
with the websockets client we already have: open a page, evaluate JavaScript in it,
click, take a screenshot. No Selenium, no driver binary."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import UNIT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab, over the DevTools protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events (no id) are skipped
            message = json.loads(await asyncio.wait_for(self.ws.recv(), 30 * UNIT))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, expected: object, within_s: float = 20.0) -> None:
        """Until ``expression`` evaluates to ``expected`` (polled every 50 ms)."""
        deadline = asyncio.get_running_loop().time() + within_s * UNIT
        value = None
        while asyncio.get_running_loop().time() < deadline:
            value = await self.evaluate(expression)
            if value == expected:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{expression} is {value!r}, not {expected!r}")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(profile: Path, url: str) -> AsyncIterator[Page]:
    """Chromium showing ``url`` (headless, its own profile; no sandbox: tests may run
    as root or in a container without user namespaces)."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
        "--no-first-run", "--disable-extensions", "--window-size=900,640",
        f"--user-data-dir={profile}", "--remote-debugging-port=0", url,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(profile)},
    )  # fmt: skip
    try:
        port = 0
        for _ in range(int(300 * UNIT)):  # bounded: 30 s
            port = await asyncio.to_thread(_devtools_port, profile)
            if port:
                break
            await asyncio.sleep(0.1)
        assert port, "chromium did not open its DevTools port within 30 s"
        targets = await asyncio.to_thread(_targets, port)
        page = next(t for t in targets if t.get("type") == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await asyncio.wait_for(process.wait(), 10)


def _devtools_port(profile: Path) -> int:
    """The port Chromium wrote into its profile, or 0 while it has not."""
    try:
        text = (profile / "DevToolsActivePort").read_text()
    except FileNotFoundError:
        return 0
    first = text.split()
    return int(first[0]) if first else 0


def _targets(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
        return list(json.load(answer))
