"""The emulator's keep-alive, as the websockets server it used to run on did it: a ping
every interval; a client that never answers is closed with 1011 "keepalive ping
timeout"; one that answers (the websockets client does by itself) stays. The interval is
shortened here (module constants) so the test takes a second, not forty."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
from websockets.asyncio.client import connect

from hello_device.emulator import Emulator, EmulatorConfig, wsocket
from tests.conftest import UNIT


@pytest.fixture(autouse=True)
def fast_keepalive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsocket, "PING_INTERVAL_S", 0.2)
    monkeypatch.setattr(wsocket, "PING_TIMEOUT_S", 0.3)


def masked(payload: bytes) -> bytes:
    """One client text frame (clients must mask)."""
    mask = os.urandom(4)
    return (
        bytes([0x81, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def test_a_client_that_never_answers_pings_is_closed_with_1011() -> None:
    async def main() -> tuple[int | None, str]:
        async with Emulator(EmulatorConfig()) as emu:
            _reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET /v1/convai/conversation?agent_id={emu.config.agent_id} HTTP/1.1\r\n"
                f"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            init = {"type": "conversation_initiation_client_data"}
            writer.write(masked(json.dumps(init).encode()))
            await writer.drain()
            record = await emu.wait_conversation(1, timeout=5 * UNIT)
            await asyncio.wait_for(record.finished.wait(), 10 * UNIT)  # never answers a ping
            writer.close()
            return record.close_code, record.close_reason

    code, reason = asyncio.run(main())
    assert (code, reason) == (1011, "keepalive ping timeout")


def test_a_client_that_answers_pings_stays() -> None:
    async def main() -> bool:
        async with Emulator(EmulatorConfig()) as emu, connect(emu.ws_url) as ws:
            await ws.send(json.dumps({"type": "conversation_initiation_client_data"}))
            record = await emu.wait_conversation(1, timeout=5 * UNIT)
            # seven keep-alive rounds pass while the client reads (and so answers)
            deadline = asyncio.get_running_loop().time() + 1.5
            while asyncio.get_running_loop().time() < deadline:
                try:
                    await asyncio.wait_for(ws.recv(), 0.1)
                except TimeoutError:
                    pass
            return record.finished.is_set()

    assert asyncio.run(main()) is False
