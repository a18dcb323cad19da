"""What the emulator tests share: a raw WebSocket client that plays the device, audio
helpers, and HTTP helpers for the REST subset."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
import warnings
import wave
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soxr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hello_device.emulator import ConversationRecord, Emulator, EmulatorConfig
from tests.conftest import UNIT

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference G.711 codec (stdlib up to 3.12), independent of the emulator's

T = TypeVar("T")
RATE = 16_000
WAIT = 10 * UNIT


def run(coro: Coroutine[Any, Any, T], timeout: float = 60 * UNIT) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


# ---------------------------------------------------------------------------------------
# Audio helpers (test side: soxr + audioop, not the emulator's private codecs)
# ---------------------------------------------------------------------------------------


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    y = np.asarray(soxr.resample(x.astype(np.float32) / 32768, rate_in, rate_out))
    out: np.ndarray = np.clip(np.round(y * 32768), -32768, 32767).astype(np.int16)
    return out


def encode(samples16k: np.ndarray, fmt: str) -> bytes:
    rate = int(fmt.split("_")[1])
    pcm = resample(samples16k, RATE, rate).astype("<i2").tobytes()
    return audioop.lin2ulaw(pcm, 2) if fmt.startswith("ulaw") else pcm


def decode(data: bytes, fmt: str) -> np.ndarray:
    rate = int(fmt.split("_")[1])
    if fmt.startswith("ulaw"):
        data = audioop.ulaw2lin(data, 2)
    return resample(np.frombuffer(data, dtype="<i2").astype(np.int16), rate, RATE)


def best_match(reference: np.ndarray, probe: np.ndarray) -> tuple[float, float]:
    """(lag in seconds, normalised correlation) where ``probe`` best fits in ``reference``."""
    ref = reference.astype(np.float64)
    pr = probe.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(ref) + len(pr))))
    xc = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(pr, n)), n)
    valid = len(ref) - len(pr) + 1
    energy = np.convolve(ref**2, np.ones(len(pr)), "valid")[:valid]
    score = xc[:valid] / np.sqrt(np.maximum(energy, 1e-9) * np.sum(pr**2))
    lag = int(np.argmax(score))
    return lag / RATE, float(score[lag])


# ---------------------------------------------------------------------------------------
# A raw protocol client
# ---------------------------------------------------------------------------------------

INIT = {
    "type": "conversation_initiation_client_data",
    "conversation_config_override": {},
    "custom_llm_extra_body": {},
    "dynamic_variables": {"device_id": "test-1"},
    "source_info": {"source": "hello-device-tests", "version": "0"},
}


class Client:
    """Collects every server frame; answers pings unless told not to."""

    def __init__(self, ws: ClientConnection, auto_pong: bool = True) -> None:
        self.ws = ws
        self.auto_pong = auto_pong
        self.raw: list[str | bytes] = []
        self.messages: list[dict[str, Any]] = []
        self.times: list[float] = []  # time.monotonic() at the arrival of each message
        self.closed: ConnectionClosed | None = None
        self.done = False
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._receive())
        self._barriers = 0

    @classmethod
    async def open(
        cls, url: str, init: dict[str, Any] | None = INIT, auto_pong: bool = True
    ) -> Client:
        ws = await connect(url, proxy=None, max_size=16 * 1024 * 1024, open_timeout=WAIT)
        client = cls(ws, auto_pong)
        if init is not None:
            await client.send(init)
        return client

    async def _receive(self) -> None:
        try:
            while True:  # recv() raises ConnectionClosedOK too, unlike ``async for``
                frame = await self.ws.recv()
                self.raw.append(frame)
                try:
                    msg = json.loads(frame)
                except ValueError:
                    msg = None
                if isinstance(msg, dict):
                    self.messages.append(msg)
                    self.times.append(time.monotonic())
                    if msg.get("type") == "ping" and self.auto_pong:
                        event_id = msg["ping_event"]["event_id"]
                        await self.ws.send(json.dumps({"type": "pong", "event_id": event_id}))
                async with self._changed:
                    self._changed.notify_all()
        except ConnectionClosed as exc:
            self.closed = exc
        finally:
            self.done = True
            async with self._changed:
                self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Client], T], within: float = WAIT) -> T:
        async def wait() -> T:
            async with self._changed:
                while True:
                    value = predicate(self)
                    if value:
                        return value
                    if self.done:
                        raise AssertionError(f"connection ended ({self.closed}) while waiting")
                    await self._changed.wait()

        return await asyncio.wait_for(wait(), within)

    async def wait_closed(self, within: float = WAIT) -> ConnectionClosed:
        await asyncio.wait_for(self._task, within)
        assert self.closed is not None
        return self.closed

    def of_type(self, mtype: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == mtype]

    def index(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return next(i for i, m in enumerate(self.messages) if predicate(m))

    def agent_texts(self) -> list[str]:
        return [m["agent_response_event"]["agent_response"] for m in self.of_type("agent_response")]

    def audio(self, event_id: int, fmt: str) -> np.ndarray:
        chunks = [
            base64.b64decode(m["audio_event"]["audio_base_64"])
            for m in self.of_type("audio")
            if m["audio_event"]["event_id"] == event_id
        ]
        return decode(b"".join(chunks), fmt)

    async def send(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj))

    async def stream(
        self,
        samples16k: np.ndarray,
        fmt: str = "pcm_16000",
        chunk_ms: int = 20,
        speed: float = 10.0,
        shape: str = "elevenlabs",
    ) -> None:
        """Stream audio as the device would, ``speed`` times faster than real time."""
        rate = int(fmt.split("_")[1])
        width = 1 if fmt.startswith("ulaw") else 2
        data = encode(samples16k, fmt)
        step = rate * chunk_ms // 1000 * width
        for offset in range(0, len(data), step):
            b64 = base64.b64encode(data[offset : offset + step]).decode()
            msg = (
                {"user_audio_chunk": b64}
                if shape == "elevenlabs"
                else {"type": "audio", "audio": b64}
            )
            await self.send(msg)
            await asyncio.sleep(chunk_ms / 1000 / speed)

    async def barrier(self, kind: str = "user_message") -> None:
        """Everything sent before has been processed, and every reply queued before is out."""
        self._barriers += 1
        text = f"barrier-{self._barriers}"
        await self.send({"type": kind, "text": text})
        await self.wait_for(lambda c: f"You wrote: {text}" in c.agent_texts())

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._task, WAIT)


async def conversation(
    cfg: EmulatorConfig, fn: Callable[[Emulator, Client, ConversationRecord], Awaitable[None]]
) -> None:
    async with Emulator(cfg) as emu:
        client = await Client.open(emu.ws_url)
        rec = await emu.wait_conversation(1, WAIT)
        await asyncio.wait_for(rec.initiated.wait(), WAIT)
        await fn(emu, client, rec)
        await client.close()


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = WAIT
) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def aget(
    url: str, headers: dict[str, str] | None = None, within: float = WAIT
) -> tuple[int, dict[str, str], Any]:

    status, hdrs, body = await asyncio.to_thread(http_get, url, headers, within)
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(body)
    return status, hdrs, body.decode()


def http_call(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = WAIT,
) -> tuple[int, dict[str, str], bytes]:
    """One request with a JSON body (or ``raw`` bytes); (status, headers, body)."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def acall(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """:func:`http_call` off the event loop; a JSON answer decoded."""
    status, hdrs, data = await asyncio.to_thread(http_call, method, url, body, headers, raw)
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, hdrs, json.loads(data)
    return status, hdrs, data.decode()


TOOL = {
    "tool_config": {
        "type": "client",
        "name": "open_door",
        "description": "Opens the lobby door",
        "parameters": {
            "type": "object",
            "properties": {"door": {"type": "string", "description": "which door"}},
            "required": ["door"],
        },
        "expects_response": True,
    }
}


async def declare_tool(emu: Emulator, tool: dict[str, Any] = TOOL, attach: bool = True) -> str:
    """Declare a tool through the API (and attach it to the agent); its id."""
    status, _, body = await acall("POST", f"{emu.http_url}/v1/convai/tools", tool)
    assert status == 200, body
    tool_id: str = body["id"]
    if attach:
        patch = {"conversation_config": {"agent": {"prompt": {"tool_ids": [tool_id]}}}}
        url = f"{emu.http_url}/v1/convai/agents/{emu.config.agent_id}"
        status, _, body = await acall("PATCH", url, patch)
        assert status == 200, body
    return tool_id
