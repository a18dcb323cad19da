"""The emulator's conversation: the metadata, the first message, pings, the parrot reply
in every output format, turns and the utterance detector."""

from __future__ import annotations

import asyncio
import base64
import warnings
from pathlib import Path

import numpy as np
import pytest

from hello_device.emulator import ConversationRecord, Emulator, EmulatorConfig
from hello_device.emulator import audio as emu_audio
from tests.conftest import UNIT
from tests.emulator.support import INIT, RATE, WAIT, Client, best_match, conversation, read_wav, run

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference G.711 codec (stdlib up to 3.12), independent of the emulator's


# ---------------------------------------------------------------------------------------
# Codec
# ---------------------------------------------------------------------------------------


def test_ulaw_codec_matches_reference() -> None:
    everything = np.arange(-32768, 32768, dtype=np.int16)
    ours = emu_audio._ulaw_encode(everything)
    assert ours == audioop.lin2ulaw(everything.astype("<i2").tobytes(), 2)
    all_bytes = bytes(range(256))
    reference = np.frombuffer(audioop.ulaw2lin(all_bytes, 2), dtype="<i2")
    assert np.array_equal(emu_audio._ulaw_decode(all_bytes), reference)


@pytest.mark.parametrize(("fmt", "sizes"), [("pcm_22050", [220]), ("pcm_48000", [479, 481, 1])])
def test_input_timeline_does_not_drift_with_odd_chunk_sizes(fmt: str, sizes: list[int]) -> None:
    decoder = emu_audio._InputDecoder(fmt)
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
