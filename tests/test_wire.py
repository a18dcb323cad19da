"""The microphone's frame writer: byte-exact RFC 6455 client frames, checked by
websockets' own parser and by a real websockets server on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Opcode
from websockets.protocol import SERVER, Protocol, State

from hello_device import wire
from hello_device.wire import AudioFrameWriter, MaskPool, text_frame


def parse_as_server(data: bytes) -> list[tuple[int, bool, bytes]]:
    """Frames as websockets' server side reads them (it rejects unmasked client frames)."""
    server = Protocol(SERVER, max_size=None)
    server.receive_data(data)
    return [(f.opcode.value, f.fin, bytes(f.data)) for f in server.events_received()]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000])
def test_text_frame_parses_back_at_every_length_boundary(size: int) -> None:
    payload = bytes((i * 7 + 3) % 256 for i in range(size))
    frames = parse_as_server(text_frame(payload, os.urandom(4)))
    assert frames == [(Opcode.TEXT.value, True, payload)]


def test_text_frame_is_masked() -> None:
    payload = b'{"user_audio_chunk":"AAAA"}'
    frame = text_frame(payload, b"\x01\x02\x03\x04")
    assert frame[1] & 0x80  # MASK bit
    assert frame[2:6] == b"\x01\x02\x03\x04"
    assert payload not in frame


def test_mask_pool_draws_fresh_keys_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(wire.os, "urandom", counting)
    pool = MaskPool(block=64)
    keys = [pool.next() for _ in range(40)]  # 16 keys per block -> 3 blocks
    assert calls == [64, 64, 64]
    assert all(len(k) == 4 for k in keys)
    assert len(set(keys)) > 35  # random keys, not a counter or a constant
    with pytest.raises(ValueError):
        MaskPool(block=6)


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client TLS contexts for 127.0.0.1 (a certificate made by openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def _round_trip(
    writes: int, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
) -> tuple[list[str], list[bool]]:
    received: list[str] = []
    done = asyncio.Event()

    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            assert isinstance(message, str)
            received.append(message)
            if message == "end":
                done.set()

    results: list[bool] = []
    server_ssl, client_ssl = tls if tls is not None else (None, None)
    async with serve(handler, "127.0.0.1", 0, compression=None, ssl=server_ssl) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "wss" if tls is not None else "ws"
        url = f"{scheme}://127.0.0.1:{port}"
        async with connect(url, compression=None, ssl=client_ssl) as ws:
            writer = AudioFrameWriter(ws)
            for i in range(writes):
                results.append(writer.write(json.dumps({"n": i}).encode()))
                if i == writes // 2:
                    await ws.send("between")  # websockets' own path, in between
            # Something of websockets' own pending (sent but not yet written): the
            # writer must step aside so the order holds.
            ws.protocol.send_text(b"pending")
            results.append(writer.write(b"not now"))
            ws.send_data()
            await ws.send("end")
            await asyncio.wait_for(done.wait(), 10)
            await ws.close()
            assert ws.protocol.state is State.CLOSED
            results.append(writer.write(b"after close"))
    return received, results


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_writer_against_a_real_server_keeps_order_and_steps_aside(
    tls: bool, tmp_path: Path
) -> None:
    received, results = asyncio.run(_round_trip(200, self_signed(tmp_path) if tls else None))
    expected = [json.dumps({"n": i}) for i in range(200)]
    expected.insert(101, "between")
    assert received == [*expected, "pending", "end"]
    assert results == [True] * 200 + [False, False]
