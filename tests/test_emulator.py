"""The local agent emulator, driven by a raw websockets client and plain HTTP.

The emulator's VAD and turn logic run on the user-audio timeline, so these tests stream
the shared recordings faster than real time. Every wait is bounded; the only sleeps pace
the audio being streamed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
import wave
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import soxr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from hello_device import emulator as emu_mod
from hello_device.emulator import ConversationRecord, Emulator, EmulatorConfig

from .conftest import REPO, UNIT

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


# ---------------------------------------------------------------------------------------
# Codec
# ---------------------------------------------------------------------------------------


def test_ulaw_codec_matches_reference() -> None:
    everything = np.arange(-32768, 32768, dtype=np.int16)
    ours = emu_mod._ulaw_encode(everything)
    assert ours == audioop.lin2ulaw(everything.astype("<i2").tobytes(), 2)
    all_bytes = bytes(range(256))
    reference = np.frombuffer(audioop.ulaw2lin(all_bytes, 2), dtype="<i2")
    assert np.array_equal(emu_mod._ulaw_decode(all_bytes), reference)


@pytest.mark.parametrize(("fmt", "sizes"), [("pcm_22050", [220]), ("pcm_48000", [479, 481, 1])])
def test_input_timeline_does_not_drift_with_odd_chunk_sizes(fmt: str, sizes: list[int]) -> None:
    decoder = emu_mod._InputDecoder(fmt)
    rate = int(fmt.split("_")[1])
    sent = 0
    received = 0
    for n in sizes * 2000:
        received += decoder.decode(np.zeros(n, dtype="<i2").tobytes()).size
        sent += n
    assert abs(received - sent * RATE / rate) <= 0.5


# ---------------------------------------------------------------------------------------
# Conversation start
# ---------------------------------------------------------------------------------------


def test_metadata_answers_initiation() -> None:
    cfg = EmulatorConfig(input_format="ulaw_8000", output_format="pcm_22050", ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        first = await client.wait_for(lambda c: c.messages[:1])
        assert first[0] == {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": rec.conversation_id,
                "agent_output_audio_format": "pcm_22050",
                "user_input_audio_format": "ulaw_8000",
            },
        }
        assert rec.init == INIT
        assert rec.first_message_type == "conversation_initiation_client_data"
        assert rec.agent_id == "demo-agent"
        assert rec.conversation_id.startswith("conv_")

    run(conversation(cfg, check))


def test_first_message_text_then_audio_with_one_event_id() -> None:
    cfg = EmulatorConfig(first_message="Welcome to the emulator.", output_format="pcm_24000")

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        await client.barrier()
        types = [m["type"] for m in client.messages if m["type"] != "ping"]
        assert types[:3] == ["conversation_initiation_metadata", "agent_response", "audio"]
        greeting = client.of_type("agent_response")[0]["agent_response_event"]
        assert greeting["agent_response"] == "Welcome to the emulator."
        audio = client.of_type("audio")
        assert {m["audio_event"]["event_id"] for m in audio} == {greeting["event_id"]}
        seconds = len(client.audio(greeting["event_id"], "pcm_24000")) / RATE
        assert seconds == pytest.approx(rec.replies[0].duration_s, abs=0.01)
        assert rec.agent_audio_sent_s == pytest.approx(rec.replies[0].duration_s, abs=0.01)
        assert 1.0 <= seconds <= 6.0
        # ~100 ms chunks (4800 bytes at 24 kHz), the last one possibly shorter
        sizes = [len(base64.b64decode(m["audio_event"]["audio_base_64"])) for m in audio]
        assert set(sizes[:-1]) == {4800} and 0 < sizes[-1] <= 4800

    run(conversation(cfg, check))


def test_first_message_override_from_initiation() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(first_message="Configured greeting")) as emu:
            init = dict(INIT, conversation_config_override={"agent": {"first_message": "Hi!"}})
            client = await Client.open(emu.ws_url, init=init)
            await client.barrier()
            assert client.agent_texts()[0] == "Hi!"
            await client.close()
            # an empty override means "wait for the user": no greeting at all
            init = dict(INIT, conversation_config_override={"agent": {"first_message": ""}})
            client = await Client.open(emu.ws_url, init=init)
            await client.barrier()
            assert client.agent_texts() == ["You wrote: barrier-1"]
            assert not client.of_type("audio")
            await client.close()

    run(main())


def test_first_client_message_must_be_initiation_but_is_tolerated(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")

    async def main() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            client = await Client.open(emu.ws_url, init=None)
            await client.stream(speech[:640])
            await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
            rec = emu.conversations[0]
            assert rec.first_message_type == "user_audio_chunk"
            assert rec.init is None
            await client.barrier()
            assert rec.audio_chunks == 2
            await client.close()

    run(main())


def test_ping_pong_round_trip_recorded() -> None:
    cfg = EmulatorConfig(ping_interval_s=0.05)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.wait_for(lambda c: len(rec.pongs) >= 3)
        pings = [m["ping_event"] for m in client.of_type("ping")]
        ids = [p["event_id"] for p in pings]
        assert ids == sorted(set(ids))
        assert pings[0]["ping_ms"] is None  # nothing measured yet
        assert all(isinstance(p["ping_ms"], int) for p in pings[1:])
        for event_id, rtt in rec.pongs.items():
            assert event_id in ids and 0 <= rtt < 1.0
        pongs = [m for m in rec.client_messages if m["type"] == "pong"]
        assert {m["event_id"] for m in pongs} == set(rec.pongs)

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# The parrot
# ---------------------------------------------------------------------------------------

OUTPUT_FORMATS = ["pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000"]


@pytest.mark.parametrize("fmt", [*OUTPUT_FORMATS, "ulaw_8000"])
def test_parrot_plays_the_utterance_back(shared_audio: Path, fmt: str) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(output_format=fmt, send_speed=8.0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        await client.wait_for(lambda c: c.of_type("agent_response"))
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        await client.barrier()
        # the emulator's VAD against the ground truth (1.05-3.90 s)
        assert len(rec.utterances) == 1
        start, end = rec.utterances[0]
        assert start == pytest.approx(1.05, abs=0.08) and end == pytest.approx(3.90, abs=0.08)
        transcript = client.of_type("user_transcript")[0]["user_transcription_event"]
        assert transcript["user_transcript"] == f"({end - start:.1f} s of speech)"
        response = client.of_type("agent_response")[0]["agent_response_event"]
        assert response["agent_response"] == f"You said: {transcript['user_transcript']}"
        assert response["event_id"] > transcript["event_id"]
        order = [m["type"] for m in client.messages if m["type"] != "ping"]
        assert order.index("user_transcript") < order.index("agent_response") < order.index("audio")
        # the reply is the utterance itself, from 100 ms before its onset to its end
        reply = client.audio(response["event_id"], fmt)
        assert len(reply) / RATE == pytest.approx(end - start + 0.1, abs=0.01)
        lag, corr = best_match(speech, reply)
        assert lag == pytest.approx(start - 0.1, abs=0.003)
        assert corr > (0.9 if fmt in ("pcm_8000", "ulaw_8000") else 0.98)
        assert rec.agent_audio_sent_s == pytest.approx(end - start + 0.1, abs=0.01)
        assert not rec.interruptions_sent

    run(conversation(cfg, check))


def test_agent_audio_is_sent_faster_than_real_time(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(send_speed=4.0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech, speed=20.0)
        await client.wait_for(lambda c: c.of_type("agent_response"))
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        await client.barrier()
        arrivals = [
            t for t, m in zip(client.times, client.messages, strict=True) if m["type"] == "audio"
        ]
        duration = rec.replies[0].duration_s
        span = arrivals[-1] - arrivals[0]
        assert span < duration / 2  # nominally (duration - one chunk) / 4
        assert span > 0.5 * (duration - 0.1) / 4.0  # paced, not dumped at once

    run(conversation(cfg, check))


@pytest.mark.parametrize("fmt", ["pcm_8000", "pcm_44100", "pcm_48000", "ulaw_8000"])
def test_user_audio_decoded_from_input_format(shared_audio: Path, fmt: str) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(input_format=fmt)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech, fmt=fmt)
        await client.barrier()
        rate = int(fmt.split("_")[1])
        width = 1 if fmt.startswith("ulaw") else 2
        assert set(rec.chunk_sizes[:-1]) == {rate // 50 * width}
        assert rec.audio_chunks == len(rec.chunk_sizes) == len(rec.chunk_arrivals)
        assert rec.chunk_arrivals == sorted(rec.chunk_arrivals)
        heard = np.frombuffer(bytes(rec.user_audio), dtype="<i2")
        assert len(heard) / RATE == pytest.approx(len(speech) / RATE, abs=0.02)
        lag, corr = best_match(np.concatenate([np.zeros(800, np.int16), heard]), speech[:-800])
        assert lag == pytest.approx(800 / RATE, abs=0.002)
        assert corr > (0.9 if rate == 8000 else 0.98)
        assert len(rec.utterances) == 1
        assert rec.utterances[0][0] == pytest.approx(1.05, abs=0.08)
        assert client.of_type("user_transcript")

    run(conversation(cfg, check))


def test_two_turns_get_two_replies_and_no_interruption(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "two_turns.wav")

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        await client.barrier()
        assert [round(s, 1) for s, _ in rec.utterances] == [1.0, 6.1]
        assert len(client.of_type("user_transcript")) == 2
        assert [r.kind for r in rec.replies[:2]] == ["parrot", "parrot"]
        assert not client.of_type("interruption") and not rec.interruptions_sent
        ids = [m["user_transcription_event"]["event_id"] for m in client.of_type("user_transcript")]
        ids += [r.event_id for r in rec.replies]
        assert len(set(ids)) == len(ids)

    run(conversation(EmulatorConfig(), check))


def test_noise_is_not_speech(shared_audio: Path) -> None:
    noise = read_wav(shared_audio / "noise_fan.wav")

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(noise, speed=20.0)
        await client.barrier()
        assert rec.utterances == []
        assert not client.of_type("user_transcript")

    run(conversation(EmulatorConfig(), check))


def test_utterance_ends_when_the_client_stops_streaming(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")[: int(4.0 * RATE)]  # 0.1 s after speech

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        await client.wait_for(lambda c: c.of_type("user_transcript"), within=5 * UNIT)
        assert rec.utterances[0][1] == pytest.approx(3.9, abs=0.08)

    run(conversation(EmulatorConfig(), check))


def test_reply_from_a_wav_file(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(reply=str(shared_audio / "two_turns.wav"), send_speed=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        await client.barrier()
        reply = rec.replies[0]
        assert reply.kind == "wav" and reply.text.startswith("Here is my answer")
        heard = client.audio(reply.event_id, "pcm_16000")
        assert np.array_equal(heard, read_wav(shared_audio / "two_turns.wav"))

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Interruptions
# ---------------------------------------------------------------------------------------


def _bargein_stream(shared_audio: Path, over: str) -> tuple[np.ndarray, float, EmulatorConfig]:
    """Audio that talks over the agent, the onset (s) of the interrupting speech, the config."""
    bargein = read_wav(shared_audio / "bargein.wav")  # silence, then speech from 6.02 s
    if over == "first_message":
        # the README's set-up: a reply that starts before 6.0 s and lasts past 8.0 s
        cfg = EmulatorConfig(first_message_audio=str(shared_audio / "two_turns.wav"))
        return bargein, 6.02, cfg
    # the parrot's own reply: turn 1 ends at 3.9 s, the reply plays from ~4.6 s for ~3 s
    utterance = read_wav(shared_audio / "utterance.wav")[: int(4.8 * RATE)]
    cut = int(5.5 * RATE)
    return np.concatenate([utterance, bargein[cut:]]), 4.8 + 6.02 - 5.5, EmulatorConfig()


@pytest.mark.parametrize("over", ["parrot", "first_message"])
def test_interruption_when_user_talks_over_the_reply(shared_audio: Path, over: str) -> None:
    stream, onset, cfg = _bargein_stream(shared_audio, over)
    cfg.send_speed = 2.0

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(stream)
        await client.barrier()
        victim = rec.replies[0]  # the greeting, or the parrot's answer to turn 1
        assert victim.interrupted and victim.sent_s < victim.duration_s
        interruptions = client.of_type("interruption")
        assert interruptions == [
            {"type": "interruption", "interruption_event": {"event_id": victim.event_id}}
        ]
        assert rec.interruptions_sent == [victim.event_id]
        assert rec.interruption_times[0] == pytest.approx(onset, abs=0.1)
        # nothing of the interrupted reply after the interruption
        cut = client.index(lambda m: m["type"] == "interruption")
        later = client.messages[cut:]
        assert not [
            m
            for m in later
            if m["type"] == "audio" and m["audio_event"]["event_id"] <= victim.event_id
        ]
        if victim.text:
            corrections = client.of_type("agent_response_correction")
            event = corrections[0]["agent_response_correction_event"]
            assert event["event_id"] == victim.event_id
            assert event["original_agent_response"] == victim.text
        # the speech that interrupted is a new user turn with its own reply
        new_reply = rec.replies[-2]  # the last one is the barrier's text reply
        assert new_reply.kind == "parrot" and new_reply.event_id > victim.event_id
        assert not new_reply.interrupted
        assert rec.utterances[-1][0] == pytest.approx(onset, abs=0.1)
        assert [m for m in later if m["type"] == "user_transcript"]

    run(conversation(cfg, check))


def test_no_interruption_when_disabled(shared_audio: Path) -> None:
    stream, _, cfg = _bargein_stream(shared_audio, "first_message")
    cfg.interruptions = False
    cfg.send_speed = 8.0

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(stream)
        await client.barrier()
        assert not client.of_type("interruption") and not rec.interruptions_sent
        first, answer = rec.replies[0], rec.replies[1]
        assert not first.interrupted and first.sent_s == pytest.approx(first.duration_s)
        assert answer.kind == "parrot" and answer.sent_s == pytest.approx(answer.duration_s)
        # the answer waits for the greeting: its audio comes after all of the greeting's
        last_greeting = max(
            i
            for i, m in enumerate(client.messages)
            if m["type"] == "audio" and m["audio_event"]["event_id"] == first.event_id
        )
        first_answer = client.index(
            lambda m: m["type"] == "audio" and m["audio_event"]["event_id"] == answer.event_id
        )
        assert first_answer > last_greeting
        assert answer.timeline_start_s == pytest.approx(first.duration_s, abs=0.01)

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Tools, client messages, dialects, malformed input
# ---------------------------------------------------------------------------------------


def test_client_tool_call_after_first_turn(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(tool_call=("get_weather", {"city": "Lisbon"}))

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech)
        calls = await client.wait_for(lambda c: c.of_type("client_tool_call"))
        call = calls[0]["client_tool_call"]
        assert set(call) == {
            "tool_name",
            "tool_call_id",
            "parameters",
            "event_id",
            "expects_response",
        }
        assert call["tool_name"] == "get_weather" and call["parameters"] == {"city": "Lisbon"}
        assert call["expects_response"] is True
        # issued after the whole first reply
        reply_audio = [
            i
            for i, m in enumerate(client.messages)
            if m["type"] == "audio" and m["audio_event"]["event_id"] == rec.replies[0].event_id
        ]
        assert client.index(lambda m: m["type"] == "client_tool_call") > max(reply_audio)
        result = {
            "type": "client_tool_result",
            "tool_call_id": call["tool_call_id"],
            "result": "sunny, 24 C",
            "is_error": False,
        }
        await client.send(result)
        await client.wait_for(
            lambda c: "The tool get_weather returned: sunny, 24 C" in c.agent_texts()
        )
        assert rec.tool_results == [result]
        assert len(client.of_type("client_tool_call")) == 1

    run(conversation(cfg, check))


def test_client_messages_are_recorded() -> None:
    sent: list[dict[str, Any]] = [
        {"type": "contextual_update", "text": "the user is in the kitchen"},
        {"type": "user_activity"},
        {"type": "feedback", "event_id": 1, "score": "like"},
        {"type": "user_message", "text": "hello there"},
    ]

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        for msg in sent:
            await client.send(msg)
        await client.barrier()
        assert rec.client_messages[1:5] == sent
        assert "You wrote: hello there" in client.agent_texts()
        assert ("user", "hello there") in rec.transcript
        assert rec.malformed == []

    run(conversation(EmulatorConfig(ping_interval_s=0), check))


def test_tool_result_must_be_a_string() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.send(
            {
                "type": "client_tool_result",
                "tool_call_id": "x",
                "result": {"a": 1},
                "is_error": False,
            }
        )
        await client.barrier()
        assert rec.tool_results == []
        assert len(rec.malformed) == 1 and "must be a string" in rec.malformed[0]

    run(conversation(EmulatorConfig(), check))


def test_malformed_messages_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    bad: list[str | bytes] = [
        "not json",
        "[1, 2]",
        b"\x00\x01binary",
        json.dumps({"user_audio_chunk": "***not base64***"}),
        json.dumps({"type": "no_such_type"}),
        json.dumps({"type": "audio", "audio": "AAAA"}),  # variant shape, elevenlabs dialect
        json.dumps({"type": "pong"}),
        json.dumps({"no": "type"}),
    ]

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        for frame in bad:
            await client.ws.send(frame)
        await client.barrier()
        assert len(rec.malformed) == len(bad)
        assert rec.audio_chunks == 0
        assert rec.close_code is None

    caplog.set_level(logging.WARNING, logger="hello_device.emulator")
    run(conversation(EmulatorConfig(ping_interval_s=0), check))
    assert "unknown message type 'no_such_type'" in caplog.text


def test_strict_mode_closes_1008_on_a_malformed_message() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.ws.send("not json")
        closed = await client.wait_closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        await asyncio.wait_for(rec.finished.wait(), WAIT)
        assert rec.close_code == 1008

    run(conversation(EmulatorConfig(strict=True), check))


def test_variant_dialect(shared_audio: Path) -> None:
    speech = read_wav(shared_audio / "utterance.wav")
    cfg = EmulatorConfig(dialect="variant", tool_call=("beep", {}), ping_interval_s=0)

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.stream(speech, shape="variant")
        calls = await client.wait_for(lambda c: c.of_type("tool_call"))
        assert calls[0]["tool_call_event"]["tool_name"] == "beep"
        assert set(calls[0]["tool_call_event"]) >= {"tool_name", "tool_call_id", "parameters"}
        assert not client.of_type("client_tool_call")
        assert rec.audio_chunks > 0 and len(rec.utterances) == 1
        transcript = client.of_type("user_transcript")[0]["user_transcription_event"]
        assert transcript["is_final"] is True
        finals = [m["audio_event"]["is_final"] for m in client.of_type("audio")]
        assert finals[-1] is True and not any(finals[:-1])
        await client.send({"type": "ping", "event_id": 77})
        await client.wait_for(lambda c: c.of_type("pong"))
        assert client.of_type("pong") == [{"type": "pong", "event_id": 77}]
        await client.barrier(kind="user_input")
        assert rec.malformed == []

    run(conversation(cfg, check))


def test_variant_client_interruption_stops_the_reply(shared_audio: Path) -> None:
    cfg = EmulatorConfig(
        dialect="variant", first_message_audio=str(shared_audio / "two_turns.wav"), send_speed=1.0
    )

    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await client.wait_for(lambda c: c.of_type("audio"))
        await client.send({"type": "interruption"})
        await asyncio.wait_for(rec.replies[0].done.wait(), WAIT)
        assert rec.replies[0].interrupted
        assert rec.replies[0].sent_s < rec.replies[0].duration_s / 2
        assert not client.of_type("interruption")  # the client's own, not echoed

    run(conversation(cfg, check))


# ---------------------------------------------------------------------------------------
# Connection control
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1011])
def test_end_conversation_with_close_code(code: int) -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.end_conversation(code, "bye now")
        closed = await client.wait_closed()
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (code, "bye now")
        await asyncio.wait_for(rec.finished.wait(), WAIT)
        assert rec.close_code == code and rec.close_reason == "bye now"

    run(conversation(EmulatorConfig(), check))


def test_abort_connections_drops_without_close_frame() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.abort_connections()
        closed = await client.wait_closed()
        assert isinstance(closed, ConnectionClosedError)
        assert closed.rcvd is None  # no close frame came
        assert rec.finished.is_set() and rec.close_code == 1006

    run(conversation(EmulatorConfig(), check))


def test_send_raw_delivers_frames() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        await emu.send_raw('{"type": "mystery", "x": 1}')
        await emu.send_raw(b"\x00\xffbinary")
        await emu.send_raw("{broken")
        await client.wait_for(lambda c: len(c.raw) >= 4)
        assert client.raw[1:4] == ['{"type": "mystery", "x": 1}', b"\x00\xffbinary", "{broken"]

    run(conversation(EmulatorConfig(ping_interval_s=0), check))


def test_max_duration_closes_1000() -> None:
    async def check(emu: Emulator, client: Client, rec: ConversationRecord) -> None:
        closed = await client.wait_closed(within=5 * UNIT)
        assert closed.rcvd is not None and closed.rcvd.code == 1000

    run(conversation(EmulatorConfig(max_duration_s=0.3), check))


def test_conversations_in_order_and_config_per_conversation() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(output_format="pcm_16000")) as emu:
            first = await Client.open(emu.ws_url)
            await first.wait_for(lambda c: c.messages)
            emu.config.output_format = "ulaw_8000"
            second = await Client.open(emu.ws_url)
            await second.wait_for(lambda c: c.messages)
            rec1 = await emu.wait_conversation(1, WAIT)
            rec2 = await emu.wait_conversation(2, WAIT)
            assert emu.conversations == [rec1, rec2]
            meta = [
                c.messages[0]["conversation_initiation_metadata_event"] for c in (first, second)
            ]
            assert [m["agent_output_audio_format"] for m in meta] == ["pcm_16000", "ulaw_8000"]
            assert [m["conversation_id"] for m in meta] == [
                rec1.conversation_id,
                rec2.conversation_id,
            ]
            with pytest.raises(TimeoutError):
                await emu.wait_conversation(3, timeout=0.05)
            await first.close()
            await second.close()

    run(main())


def test_stop_closes_open_conversations_with_1001() -> None:
    async def main() -> None:
        emu = Emulator(EmulatorConfig())
        await emu.start()
        client = await Client.open(emu.ws_url)
        rec = await emu.wait_conversation(1, WAIT)
        await asyncio.wait_for(emu.stop(), WAIT)
        closed = await client.wait_closed()
        assert closed.rcvd is not None and closed.rcvd.code == 1001
        assert rec.finished.is_set()

    run(main())


# ---------------------------------------------------------------------------------------
# WebSocket admission: agent id and signed URLs
# ---------------------------------------------------------------------------------------


async def _rejected(url: str) -> ConnectionClosed:
    client = await Client.open(url, init=None)
    return await client.wait_closed()


def test_unknown_agent_is_closed_1008() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig()) as emu:
            closed = await _rejected(emu.ws_url.replace("demo-agent", "someone-else"))
            assert closed.rcvd is not None
            assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "unknown agent")
            rec = emu.conversations[0]
            await asyncio.wait_for(rec.finished.wait(), WAIT)
            assert rec.agent_id == "someone-else" and rec.close_code == 1008 and rec.init is None

    run(main())


def test_private_agent_needs_a_valid_signature() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True)) as emu:
            closed = await _rejected(emu.ws_url)
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            closed = await _rejected(emu.ws_url + "&conversation_signature=forged")
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            status, _, body = await aget(
                f"{emu.http_url}/v1/convai/conversation/get-signed-url?agent_id=demo-agent"
            )
            assert status == 200
            client = await Client.open(body["signed_url"])
            await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
            await client.close()
            # single use
            closed = await _rejected(body["signed_url"])
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            await asyncio.wait_for(emu.conversations[-1].finished.wait(), WAIT)
            assert [r.close_code for r in emu.conversations] == [1008, 1008, 1000, 1008]

    run(main())


def test_expired_signed_url_is_refused() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True, signed_url_ttl_s=0)) as emu:
            _, _, body = await aget(
                f"{emu.http_url}/v1/convai/conversation/get-signed-url?agent_id=demo-agent"
            )
            closed = await _rejected(body["signed_url"])
            assert closed.rcvd is not None and closed.rcvd.code == 1008

    run(main())


# ---------------------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------------------


def test_agent_configuration_shape() -> None:
    cfg = EmulatorConfig(
        agent_id="agent_42",
        private=True,
        input_format="pcm_48000",
        output_format="ulaw_8000",
        first_message="Hello!",
        language="pt",
        turn_timeout_s=9.5,
        max_duration_s=120,
    )

    async def main() -> None:
        async with Emulator(cfg) as emu:
            status, headers, doc = await aget(f"{emu.http_url}/v1/convai/agents/agent_42")
            assert status == 200 and headers["Content-Type"] == "application/json"
            assert doc["agent_id"] == "agent_42" and isinstance(doc["name"], str)
            conv = doc["conversation_config"]
            assert conv["asr"]["user_input_audio_format"] == "pcm_48000"
            assert conv["tts"]["agent_output_audio_format"] == "ulaw_8000"
            assert conv["agent"]["first_message"] == "Hello!"
            assert conv["agent"]["language"] == "pt"
            assert conv["turn"]["turn_timeout"] == 9.5
            assert conv["conversation"]["max_duration_seconds"] == 120
            assert doc["platform_settings"]["auth"]["enable_auth"] is True
            status, _, body = await aget(f"{emu.http_url}/v1/convai/agents/nobody")
            assert status == 404 and "nobody" in body["detail"]["message"]
            status, _, body = await aget(f"{emu.http_url}/v1/no/such/path")
            assert status == 404 and body == {"detail": "Not Found"}
            assert [r.status for r in emu.rest_requests] == [200, 404, 404]
            assert emu.rest_requests[0].method == "GET"
            assert emu.rest_requests[0].path == "/v1/convai/agents/agent_42"

    run(main())


SIGNED_PATHS = {
    "primary": "/v1/convai/conversation/get-signed-url?agent_id=demo-agent",
    "a": "/v1/convai/agents/demo-agent/signed-url",
    "b": "/v1/convai/agents/demo-agent/link",
}


@pytest.mark.parametrize("form", ["primary", "a", "b"])
def test_signed_url_only_from_the_configured_form(form: str) -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(private=True, signed_url_form=form)) as emu:
            for other, path in SIGNED_PATHS.items():
                status, _, body = await aget(emu.http_url + path)
                if other != form:
                    assert status == 404, other
                    continue
                assert status == 200
                if form == "primary":
                    assert set(body) == {"signed_url"}
                    url = body["signed_url"]
                elif form == "a":
                    assert set(body) == {"signed_url", "expires_at"}
                    assert body["expires_at"].endswith("Z")
                    url = body["signed_url"]
                else:
                    url = body["link"]["signed_url"]
                prefix = f"ws://127.0.0.1:{emu.port}/v1/convai/conversation?agent_id=demo-agent"
                assert url.startswith(prefix + "&conversation_signature=")
                client = await Client.open(url)
                await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
                await client.close()

    run(main())


def test_api_key_enforced_and_masked() -> None:
    key = "sk_test_0123456789abcdef"

    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key=key)) as emu:
            url = f"{emu.http_url}/v1/convai/agents/demo-agent"
            status, _, body = await aget(url)
            assert status == 401 and body["detail"]["status"] == "invalid_api_key"
            status, _, _ = await aget(url, {"xi-api-key": "wrong"})
            assert status == 401
            status, _, _ = await aget(url, {"xi-api-key": key})
            assert status == 200
            status, _, _ = await aget(url, {"Authorization": f"Bearer {key}"})
            assert status == 200
            status, _, _ = await aget(url, {"Authorization": f"Basic {key}"})
            assert status == 401
            assert [r.status for r in emu.rest_requests] == [401, 401, 200, 200, 401]
            assert emu.rest_requests[2].headers["xi-api-key"] == "***"
            assert emu.rest_requests[3].headers["authorization"] == "Bearer ***"
            assert key not in repr(emu.rest_requests)

    run(main())


def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = "sk_test_secret_key_value"
    caplog.set_level(logging.DEBUG, logger="hello_device")
    caplog.set_level(logging.DEBUG, logger="hello_device.emulator.ws")

    async def main() -> str:
        async with Emulator(EmulatorConfig(api_key=key, private=True)) as emu:
            path = SIGNED_PATHS["primary"]
            status, _, body = await aget(emu.http_url + path, {"xi-api-key": key})
            assert status == 200
            client = await Client.open(body["signed_url"])
            await client.wait_for(lambda c: c.of_type("conversation_initiation_metadata"))
            await client.close()
            token: str = body["signed_url"].split("conversation_signature=")[1]
            return token

    token = run(main())
    assert "conversation_signature=***" in caplog.text  # websockets' request line, redacted
    assert "xi-api-key: ***" in caplog.text.lower()
    assert key not in caplog.text and token not in caplog.text


def test_fail_rest_injections() -> None:
    async def main() -> None:
        async with Emulator(EmulatorConfig(api_key="k")) as emu:
            url = f"{emu.http_url}/v1/convai/agents/demo-agent"
            ok = {"xi-api-key": "k"}
            emu.fail_rest(429, retry_after=2)
            emu.fail_rest(500, times=2)
            emu.fail_rest(
                502, body="<html><body>Bad gateway</body></html>", content_type="text/html"
            )
            emu.fail_rest(503, retry_after=0.25, content_type="text/html")
            status, headers, body = await aget(url)  # failures win over the missing key
            assert status == 429 and headers["Retry-After"] == "2"
            assert body["detail"]["status"] == "too_many_concurrent_requests"
            for _ in range(2):
                status, headers, body = await aget(url, ok)
                assert status == 500 and body == {"detail": "Internal Server Error"}
            status, headers, body = await aget(url, ok)
            assert status == 502 and headers["Content-Type"] == "text/html"
            assert body == "<html><body>Bad gateway</body></html>"
            status, headers, body = await aget(url, ok)
            assert status == 503 and headers["Retry-After"] == "0.25"
            assert body.startswith("<html>") and "503" in body
            status, _, body = await aget(url, ok)
            assert status == 200 and body["agent_id"] == "demo-agent"
            assert [r.status for r in emu.rest_requests] == [429, 500, 500, 502, 503, 200]

    run(main())


def test_rest_delay_for_timeouts() -> None:
    async def main() -> None:
        emu = Emulator(EmulatorConfig())
        await emu.start()
        url = f"{emu.http_url}/v1/convai/agents/demo-agent"
        emu.rest_delay_s = 30
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            await aget(url, within=0.2)
        emu.rest_delay_s = 0
        status, _, _ = await aget(url)
        assert status == 200
        # a pending delayed answer does not hold up stop()
        emu.rest_delay_s = 30
        pending = asyncio.create_task(aget(url, within=WAIT))

        async def held() -> None:
            # a bounded poll of a counter (there is no event for "request held")
            while emu.rest_pending == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

        await asyncio.wait_for(held(), WAIT)
        started = time.monotonic()
        await asyncio.wait_for(emu.stop(), WAIT)
        assert time.monotonic() - started < 5
        await asyncio.wait_for(asyncio.gather(pending, return_exceptions=True), WAIT)

    run(main())


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="input_format"):
        EmulatorConfig(input_format="mp3_44100").validate()
    with pytest.raises(ValueError, match="signed_url_form"):
        EmulatorConfig(signed_url_form="c").validate()
    with pytest.raises(ValueError, match="reply"):
        EmulatorConfig(reply="/nonexistent.wav").validate()

    async def main() -> None:
        with pytest.raises(ValueError, match="dialect"):
            await Emulator(EmulatorConfig(dialect="klingon")).start()

    run(main())


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emu_mod.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_options_build_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMU_KEY", "secret")
    args = _parse(
        "--agent-id=a1",
        "--private",
        "--api-key-env=EMU_KEY",
        "--input-format=ulaw_8000",
        "--output-format=pcm_44100",
        "--first-message=Hi",
        "--ping-interval=0.5",
        "--no-interruption",
        '--tool-call=get_time:{"tz": "UTC"}',
        "--dialect=variant",
        "--max-duration=30",
    )
    cfg = emu_mod.config_from_args(args)
    assert (args.host, args.port) == ("127.0.0.1", 8765)
    assert cfg.agent_id == "a1" and cfg.private and cfg.api_key == "secret"
    assert (cfg.input_format, cfg.output_format) == ("ulaw_8000", "pcm_44100")
    assert cfg.first_message == "Hi" and cfg.ping_interval_s == 0.5
    assert cfg.interruptions is False and cfg.dialect == "variant" and cfg.max_duration_s == 30
    assert cfg.tool_call == ("get_time", {"tz": "UTC"})
    assert emu_mod.config_from_args(_parse("--tool-call=beep")).tool_call == ("beep", {})
    with pytest.raises(ValueError, match="JSON"):
        emu_mod.config_from_args(_parse("--tool-call=beep:{nope"))
    monkeypatch.delenv("EMU_KEY")
    with pytest.raises(ValueError, match="EMU_KEY"):
        emu_mod.config_from_args(args)


def test_cli_refuses_a_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert emu_mod.run_from_args(_parse("--host=0.0.0.0")) == 2
    assert "--allow-remote" in capsys.readouterr().err
    assert emu_mod.run_from_args(_parse("--reply=/no/such.wav")) == 2


def test_cli_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys\n"
        "from hello_device import emulator\n"
        "p = argparse.ArgumentParser(); emulator.add_arguments(p)\n"
        "sys.exit(emulator.run_from_args(p.parse_args(sys.argv[1:])))\n"
    )
    env = dict(os.environ, EMU_TEST_KEY="cli-key")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port=0", "--agent-id=cli", "--api-key-env=EMU_TEST_KEY"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:") and line.endswith(
            "(agent cli)"
        )
        base = line.split()[3]
        status, _, body = http_get(f"{base}/v1/convai/agents/cli", {"xi-api-key": "cli-key"})
        assert status == 200 and json.loads(body)["agent_id"] == "cli"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, err
        assert "cli-key" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT)
