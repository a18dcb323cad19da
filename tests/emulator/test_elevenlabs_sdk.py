"""The official ``elevenlabs`` Python SDK holds conversations with the emulator.

This is the evidence that the emulator speaks the real platform's protocol: an unmodified
official client, with a file-backed audio interface instead of PortAudio, talks to it.

How the SDK is pointed at the emulator (no monkeypatching): the SDK builds the
conversation URL from its HTTP client's base URL (``BaseConversation._get_wss_url`` ->
``client._client_wrapper.get_base_url()``, ``http`` becoming ``ws``), so
``ElevenLabs(base_url=emulator.http_url)`` is enough; a private agent's signed URL comes
from the same base URL through ``conversations.get_signed_url`` (the primary form).
The httpx client is created with ``trust_env=False`` so that no proxy setting of the
machine can divert loopback requests.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
import wave
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from hello_device.emulator import Emulator, EmulatorConfig
from tests.conftest import UNIT

httpx = pytest.importorskip("httpx")
with warnings.catch_warnings():  # the SDK itself still imports websockets' legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("elevenlabs")
    from elevenlabs.client import ElevenLabs
    from elevenlabs.conversational_ai.conversation import (
        AsyncAudioInterface,
        AsyncConversation,
        AudioInterface,
        ClientTools,
        Conversation,
        DisconnectionDetails,
    )
    from elevenlabs.types.get_agent_response_model import GetAgentResponseModel

T = TypeVar("T")
RATE = 16_000
WAIT = 15 * UNIT
CHUNK = 4000  # what the SDK's AudioInterface asks for: 4000 samples (250 ms) at 16 kHz


def run(coro: Coroutine[Any, Any, T], timeout: float = 90 * UNIT) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def best_match(reference: np.ndarray, probe: np.ndarray) -> tuple[float, float]:
    """(lag in seconds, normalised correlation) where ``probe`` best fits in ``reference``."""
    ref, pr = reference.astype(np.float64), probe.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(ref) + len(pr))))
    xc = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(pr, n)), n)
    valid = len(ref) - len(pr) + 1
    energy = np.convolve(ref**2, np.ones(len(pr)), "valid")[:valid]
    score = xc[:valid] / np.sqrt(np.maximum(energy, 1e-9) * np.sum(pr**2))
    lag = int(np.argmax(score))
    return lag / RATE, float(score[lag])


def sdk_client(emu: Emulator, api_key: str = "unused-key") -> Any:
    return ElevenLabs(
        base_url=emu.http_url, api_key=api_key, httpx_client=httpx.Client(trust_env=False)
    )


class Events:
    """What the SDK's callbacks reported; waitable from the event loop, fed from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transcripts: list[str] = []
        self.responses: list[str] = []
        self.disconnects: list[DisconnectionDetails] = []
        self._changed = asyncio.Event()

    def note(self) -> None:
        self.loop.call_soon_threadsafe(self._changed.set)

    def on_transcript(self, text: str) -> None:
        self.transcripts.append(text)
        self.note()

    def on_response(self, text: str) -> None:
        self.responses.append(text)
        self.note()

    def on_disconnect(self, details: DisconnectionDetails) -> None:
        self.disconnects.append(details)
        self.note()

    async def until(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

        await asyncio.wait_for(wait(), within)


class FileAudioInterface(AudioInterface):  # type: ignore[misc]
    """The SDK's sync audio interface over a WAV: feeds it in the SDK's 250 ms chunks,
    ``speed`` times faster than real time, then silence in real time; keeps the output."""

    def __init__(self, samples: np.ndarray, events: Events, speed: float = 4.0) -> None:
        self.samples = samples
        self.events = events
        self.speed = speed
        self.output_pcm = bytearray()
        self.interrupts = 0
        self.chunks_fed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, input_callback: Callable[[bytes], None]) -> None:
        def feed() -> None:
            data = self.samples.astype("<i2").tobytes()
            step = CHUNK * 2
            for offset in range(0, len(data), step):
                if self._stop.is_set():
                    return
                input_callback(data[offset : offset + step].ljust(step, b"\0"))
                self.chunks_fed += 1
                self._stop.wait(CHUNK / RATE / self.speed)
            silence = bytes(step)
            while not self._stop.wait(CHUNK / RATE):
                input_callback(silence)
                self.chunks_fed += 1

        self._thread = threading.Thread(target=feed, name="file-audio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=WAIT)

    def output(self, audio: bytes) -> None:
        self.output_pcm += audio
        self.events.note()

    def interrupt(self) -> None:
        self.interrupts += 1
        self.events.note()


class AsyncFileAudioInterface(AsyncAudioInterface):  # type: ignore[misc]
    """The same over the SDK's asyncio interface."""

    def __init__(self, samples: np.ndarray, events: Events, speed: float = 4.0) -> None:
        self.samples = samples
        self.events = events
        self.speed = speed
        self.output_pcm = bytearray()
        self.output_marks: list[int] = []  # len(output_pcm) at each interrupt()
        self.interrupts = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, input_callback: Callable[[bytes], Awaitable[None]]) -> None:
        async def feed() -> None:
            data = self.samples.astype("<i2").tobytes()
            step = CHUNK * 2
            for offset in range(0, len(data), step):
                await input_callback(data[offset : offset + step].ljust(step, b"\0"))
                await asyncio.sleep(CHUNK / RATE / self.speed)  # pacing the "microphone"
            while True:
                await input_callback(bytes(step))
                await asyncio.sleep(CHUNK / RATE)

        self._task = asyncio.create_task(feed())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def output(self, audio: bytes) -> None:
        self.output_pcm += audio
        self.events.note()

    async def interrupt(self) -> None:
        self.interrupts += 1
        self.output_marks.append(len(self.output_pcm))
        self.events.note()


def test_sdk_conversation_with_the_parrot(shared_audio: Path) -> None:
    """Sync ``Conversation``: speech in, transcript, response, echo and a client tool."""
    speech = read_wav(shared_audio / "utterance.wav")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        events = Events(loop)
        cfg = EmulatorConfig(ping_interval_s=0.2, tool_call=("get_weather", {"city": "Lisbon"}))
        async with Emulator(cfg) as emu:
            tools = ClientTools()
            tools.register("get_weather", lambda params: f"sunny in {params['city']}")
            audio = FileAudioInterface(speech, events)
            conversation = Conversation(
                sdk_client(emu),
                cfg.agent_id,
                requires_auth=False,
                audio_interface=audio,
                client_tools=tools,
                callback_agent_response=events.on_response,
                callback_user_transcript=events.on_transcript,
                callback_disconnect=events.on_disconnect,
            )
            await asyncio.to_thread(conversation.start_session)
            try:
                rec = await emu.wait_conversation(1, WAIT)
                done = "The tool get_weather returned: sunny in Lisbon"
                await events.until(lambda: done in events.responses)
                await events.until(lambda: len(rec.pongs) >= 2)
            finally:
                await asyncio.to_thread(conversation.end_session)
                conversation_id = await asyncio.wait_for(
                    asyncio.to_thread(conversation.wait_for_session_end), WAIT
                )
            await asyncio.wait_for(rec.finished.wait(), WAIT)

        # what the emulator received from the SDK
        assert rec.first_message_type == "conversation_initiation_client_data"
        assert rec.init is not None and rec.init["source_info"]["source"] == "python_sdk"
        assert set(rec.chunk_sizes) == {CHUNK * 2}  # 250 ms of pcm_16000
        heard = np.frombuffer(bytes(rec.user_audio), dtype="<i2")
        lag, corr = best_match(heard, speech[int(0.5 * RATE) : int(4.5 * RATE)])
        assert lag == pytest.approx(0.5, abs=0.002) and corr > 0.99
        assert len(rec.utterances) == 1
        start, end = rec.utterances[0]
        assert start == pytest.approx(1.05, abs=0.08) and end == pytest.approx(3.9, abs=0.08)
        assert rec.pongs  # the SDK answered the pings
        assert rec.tool_results == [
            {
                "type": "client_tool_result",
                "tool_call_id": rec.tool_results[0]["tool_call_id"],
                "result": "sunny in Lisbon",
                "is_error": False,
            }
        ]
        assert rec.malformed == []
        # what the SDK got from the emulator
        assert conversation_id == rec.conversation_id
        assert events.transcripts == [f"({end - start:.1f} s of speech)"]
        assert events.responses[0] == f"You said: {events.transcripts[0]}"
        echo = np.frombuffer(bytes(audio.output_pcm), dtype="<i2")
        assert len(echo) / RATE == pytest.approx(end - start + 0.1, abs=0.01)
        lag, corr = best_match(speech, echo)
        assert lag == pytest.approx(start - 0.1, abs=0.003) and corr > 0.99
        assert audio.interrupts == 0
        assert [d.reason for d in events.disconnects] == ["user"]

    run(main())


def test_sdk_async_conversation_private_agent_with_barge_in(shared_audio: Path) -> None:
    """``AsyncConversation`` via a signed URL; the user talks over the greeting."""
    bargein = read_wav(shared_audio / "bargein.wav")  # speech from 6.02 s
    key = "sk_emulator_sdk_test_key"

    async def main() -> None:
        events = Events(asyncio.get_running_loop())
        cfg = EmulatorConfig(
            private=True,
            api_key=key,
            first_message="Welcome to the emulator.",
            first_message_audio=str(shared_audio / "two_turns.wav"),  # 11.4 s long
            send_speed=2.0,
        )
        async with Emulator(cfg) as emu:
            audio = AsyncFileAudioInterface(bargein, events)

            async def on_response(text: str) -> None:
                events.on_response(text)

            async def on_transcript(text: str) -> None:
                events.on_transcript(text)

            async def on_disconnect(details: DisconnectionDetails) -> None:
                events.on_disconnect(details)

            conversation = AsyncConversation(
                sdk_client(emu, key),
                cfg.agent_id,
                requires_auth=True,
                audio_interface=audio,
                callback_agent_response=on_response,
                callback_user_transcript=on_transcript,
                callback_disconnect=on_disconnect,
            )
            await conversation.start_session()  # type: ignore[no-untyped-call]
            try:
                rec = await emu.wait_conversation(1, WAIT)
                await events.until(lambda: any(r.startswith("You said") for r in events.responses))
                await asyncio.wait_for(rec.replies[1].done.wait(), WAIT)
                answer = rec.replies[1]
                expected = audio.output_marks[0] + round(answer.sent_s * RATE) * 2
                await events.until(lambda: len(audio.output_pcm) >= expected)
            finally:
                await conversation.end_session()  # type: ignore[no-untyped-call]
                conversation_id = await asyncio.wait_for(conversation.wait_for_session_end(), WAIT)
            await asyncio.wait_for(rec.finished.wait(), WAIT)

        # the SDK fetched a signed URL with its key, and used it
        signed = [r for r in emu.rest_requests if "get-signed-url" in r.path]
        assert [r.status for r in signed] == [200]
        assert signed[0].headers["xi-api-key"] == "***"
        assert rec.init is not None and conversation_id == rec.conversation_id
        # the emulator interrupted its greeting when the speech began, and the SDK stopped it
        greeting = rec.replies[0]
        assert rec.interruptions_sent == [greeting.event_id]
        assert rec.interruption_times[0] == pytest.approx(6.02, abs=0.1)
        assert greeting.interrupted and greeting.sent_s < greeting.duration_s
        assert audio.interrupts == 1
        played_greeting = audio.output_marks[0] / 2 / RATE
        assert 0 < played_greeting <= greeting.sent_s + 1e-6
        # then the interrupting speech was a turn of its own, answered in full
        assert events.responses[0] == "Welcome to the emulator."
        assert events.responses[1] == f"You said: {events.transcripts[0]}"
        echo = np.frombuffer(bytes(audio.output_pcm[audio.output_marks[0] :]), dtype="<i2")
        lag, corr = best_match(bargein, echo)
        assert lag == pytest.approx(rec.utterances[0][0] - 0.1, abs=0.003) and corr > 0.99
        assert [d.reason for d in events.disconnects] == ["user"]

    run(main())


def test_sdk_reads_the_agent_configuration() -> None:
    """The agent document parses with the SDK's own models, strictly validated too."""
    cfg = EmulatorConfig(
        agent_id="agent_sdk",
        private=True,
        api_key="k",
        input_format="pcm_48000",
        output_format="ulaw_8000",
        first_message="Hello",
        tool_call=("beep", {}),
        max_duration_s=2.5,
    )

    async def main() -> Any:
        async with Emulator(cfg) as emu:
            client = sdk_client(emu, "k")
            agent = await asyncio.to_thread(client.conversational_ai.agents.get, "agent_sdk")
            signed = await asyncio.to_thread(
                client.conversational_ai.conversations.get_signed_url, agent_id="agent_sdk"
            )
            return agent, signed, emu.agent_document()

    agent, signed, document = run(main())
    assert agent.agent_id == "agent_sdk"
    conv = agent.conversation_config
    assert conv.asr.user_input_audio_format == "pcm_48000"
    assert conv.tts.agent_output_audio_format == "ulaw_8000"
    assert conv.agent.first_message == "Hello"
    assert conv.conversation.max_duration_seconds == 3
    assert agent.platform_settings.auth.enable_auth is True
    assert signed.signed_url.startswith("ws://127.0.0.1:")
    strict = GetAgentResponseModel.model_validate(document)
    assert (
        strict.model_dump()["conversation_config"]["agent"]["prompt"]["tools"][0]["name"] == "beep"
    )
