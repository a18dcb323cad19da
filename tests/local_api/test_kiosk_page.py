"""The example kiosk page in a real headless Chromium, served by the running daemon's
local API: it loads, shows the state, and its "Talk" button starts a conversation with
the emulator. Real time (the browser runs on its own clock); a screenshot is written to
``HELLO_DEVICE_SCREENSHOT`` when set (the README's picture comes from there)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hello_device.core.turn import DeviceState
from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT
from tests.e2e import active, silence_wav

from .browser import CHROMIUM, chromium
from .support import Api, run_api

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("HELLO_DEVICE_REQUIRE_BROWSER", "") not in ("", "0")


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("chromium is not installed (HELLO_DEVICE_REQUIRE_BROWSER is set)")
        pytest.skip("chromium is not installed (apt-get install chromium)")


GREETING = "Welcome! Ask me anything about the museum."


def test_the_page_shows_the_state_and_talk_starts_a_conversation(tmp_path: Path) -> None:
    async def scenario(daemon: Daemon, emu: Emulator, api: Api) -> None:
        async with chromium(tmp_path / "profile", f"{api.base}/") as page:
            await page.wait_for("document.getElementById('state').textContent", "idle")
            await page.wait_for(
                "document.getElementById('link').textContent", f"127.0.0.1:{api.port}"
            )
            await page.evaluate("document.getElementById('talk').click()")
            await active(emu, 1)
            await daemon.wait_state(DeviceState.SPEAKING, 30 * UNIT)  # the parrot answers
            await page.wait_for("document.getElementById('state').textContent", "speaking")
            await page.wait_for(
                "document.querySelector('#transcript .line.agent')?.textContent", GREETING
            )
            await page.wait_for("document.getElementById('talk').textContent", "End")
            shot = os.environ.get("HELLO_DEVICE_SCREENSHOT")
            if shot:
                await page.screenshot(Path(shot))
            await page.evaluate("document.getElementById('mute').click()")
            await daemon.wait_state(DeviceState.MUTED, 10 * UNIT)
            await page.evaluate("document.getElementById('talk').click()")  # "End"
            await asyncio.wait_for(emu.conversations[0].finished.wait(), 10 * UNIT)
        daemon.stop()

    run = run_api(
        tmp_path,
        silence_wav(tmp_path / "s.wav", 1.0),
        scenario,
        EmulatorConfig(first_message=GREETING),
        limit_s=120,
        local_api={"serve_example": True},
        real_time=True,
        audio={"exit_at_end": False},  # silence until the page is done
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert (record.close_code, record.close_reason) == (1000, "ended by the local API")
