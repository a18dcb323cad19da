"""End to end: the daemon (file backend) holds real conversations with the emulator.

Real parts throughout: the emulator is a real WebSocket server on loopback and the
daemon is the real one; only the sound card is replaced, by the file backend (a virtual
card paced in real time), because no sound card exists here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from hello_device.daemon import Daemon
from hello_device.emulator import Emulator, EmulatorConfig
from hello_device.testing import virtual_time
from tests.e2e import (
    active,
    best_alignment,
    first_sound,
    last_sound,
    load_wav,
    resample_to,
    run_with_emulator,
    silence_wav,
)

pytestmark = pytest.mark.slow

SPEECH = (1.05, 3.90)  # ground truth of utterance.wav (shared/audio/README.md)


@pytest.mark.parametrize(
    ("input_format", "output_format"),
    [
        ("pcm_16000", "pcm_16000"),
        ("pcm_16000", "pcm_22050"),
        ("pcm_22050", "pcm_44100"),
        ("ulaw_8000", "ulaw_8000"),
    ],
)
def test_conversation_round_trip(
    input_format: str,
    output_format: str,
    shared_audio: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = EmulatorConfig(input_format=input_format, output_format=output_format)
    run = virtual_time.run(run_with_emulator(tmp_path, shared_audio / "utterance.wav", config))
    assert run.code == 0

    # The emulator heard the speech, in the negotiated format, at the right time.
    record = run.emulator.conversations[0]
    assert record.first_message_type == "conversation_initiation_client_data"
    assert record.init is not None
    dyn = record.init["dynamic_variables"]
    assert dyn["device_id"] == "test-device" and dyn["device_name"] == "Test kiosk"
    assert record.init["source_info"]["source"] == "hello-device"
    assert len(record.utterances) == 1
    start, end = record.utterances[0]
    received = np.frombuffer(bytes(record.user_audio), dtype="<i2").astype(np.float64)
    speech_ref, rate = load_wav(shared_audio / "utterance.wav")
    ref = speech_ref[int(1.1 * rate) : int(3.8 * rate)]
    lag, corr = best_alignment(ref, received)
    # The wire timeline starts when the conversation does (a few frames after boot).
    assert abs(lag / 16000 - 1.1) < 0.1, lag / 16000
    assert corr > (0.9 if input_format == "ulaw_8000" else 0.97), corr
    # Chunks are one frame each (20 ms), never more than 50 ms.
    encoding, rate_text = input_format.split("_")
    per_ms = {"pcm": 2, "ulaw": 1}[encoding] * int(rate_text) / 1000
    frame = int(20 * per_ms)
    assert max(record.chunk_sizes) <= 50 * per_ms
    # Every chunk is one frame; the very first is short by the resampler's look-ahead
    # (at most 2.5 ms) when the format's rate is not 16 kHz.
    assert set(record.chunk_sizes[1:]) == {frame}
    assert frame - 2.5 * per_ms <= record.chunk_sizes[0] <= frame
    # Every streamed frame took the lean writer (websockets' own path only when it has
    # something pending, which never happens between two of the daemon's turns).
    stats = run.daemon.sessions[0].stats
    assert stats.frames_sent == record.audio_chunks

    # The output file holds the echo, at the right pitch and speed, after the utterance.
    out = resample_to(run.output, run.output_rate, 16000)
    lag, corr = best_alignment(ref, out)
    assert corr > (0.8 if output_format == "ulaw_8000" else 0.9), corr
    echo_at = lag / 16000
    assert SPEECH[1] < echo_at - 0.05 < SPEECH[1] + 1.5, echo_at
    heard_from, heard_to = first_sound(out, 16000), last_sound(out, 16000)
    assert heard_from is not None and heard_to is not None
    assert abs((heard_to - heard_from) - (end - start + 0.1)) < 0.3  # right speed

    # Transcript lines were logged, one each.
    messages = [
        r.getMessage() for r in caplog.records if r.name == "hello_device.conversation.session"
    ]
    assert sum(m.startswith("user: ") for m in messages) == 1
    assert sum(m.startswith("agent: ") for m in messages) == 1
    assert record.pongs, "pings were not answered"


def test_pings_answered_at_once_and_malformed_messages_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = EmulatorConfig(ping_interval_s=0.2)

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        for raw in ("{not json", "[1,2]", "null", '{"type":"audio","audio_event":{}}', b"\x00"):
            await emu.send_raw(raw)
        await emu.send_raw('{"type":"brand_new_event","x":1}')

    run = virtual_time.run(
        run_with_emulator(tmp_path, silence_wav(tmp_path / "s.wav", 2.0), config, during)
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert len(record.pongs) >= 5
    assert max(record.pongs.values()) < 0.1
    assert len(run.emulator.conversations) == 1  # malformed input did not end it
    assert record.close_code == 1000


def test_cut_off_conversation_resumes_as_a_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        await emu.end_conversation(1011, "server error")
        await active(emu, 2)
        await emu.abort_connections()
        await active(emu, 3)
        await emu.end_conversation(1001, "going away")
        await active(emu, 4)

    run = virtual_time.run(
        run_with_emulator(tmp_path, silence_wav(tmp_path / "s.wav", 6.0), None, during)
    )
    assert run.code == 0
    assert run.daemon.reconnects == 3
    text = caplog.text
    assert text.count("resuming as a new conversation") == 3


def test_normal_close_ends_the_conversation_and_auto_starts_the_next(tmp_path: Path) -> None:
    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        await emu.end_conversation(1000, "agent ended the call")
        await active(emu, 2)

    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 3.0),
            None,
            during,
            conversation={"restart_delay_s": 0.2},
        )
    )
    assert run.code == 0
    assert run.daemon.reconnects == 0
    assert run.daemon.ended[0].code == 1000 and not run.daemon.ended[0].resumable


def test_device_tools_answer_tool_calls(shared_audio: Path, tmp_path: Path) -> None:
    config = EmulatorConfig(tool_call=("get_device_info", {}))
    run = virtual_time.run(run_with_emulator(tmp_path, shared_audio / "utterance.wav", config))
    results = run.emulator.conversations[0].tool_results
    assert len(results) == 1
    assert results[0]["is_error"] is False
    assert '"device_id":"test-device"' in results[0]["result"]


def test_unknown_tool_is_answered_with_an_error(shared_audio: Path, tmp_path: Path) -> None:
    config = EmulatorConfig(tool_call=("open_the_pod_bay_doors", {"door": 1}))
    run = virtual_time.run(run_with_emulator(tmp_path, shared_audio / "utterance.wav", config))
    (result,) = run.emulator.conversations[0].tool_results
    assert result["is_error"] is True and isinstance(result["result"], str)


def test_private_agent_uses_a_fresh_signed_url(tmp_path: Path) -> None:
    config = EmulatorConfig(private=True, api_key="sk_emulator_test_key_0001")

    async def during(daemon: Daemon, emu: Emulator) -> None:
        await active(emu, 1)
        await emu.end_conversation(1000)
        await active(emu, 2)

    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 3.0),
            config,
            during,
            platform={"api_key": "sk_emulator_test_key_0001"},
            conversation={"restart_delay_s": 0.1},
        )
    )
    assert run.code == 0
    signed = [r for r in run.emulator.rest_requests if "signed-url" in r.path]
    assert len(signed) >= 2  # one fresh URL per conversation
    assert all(c.close_code != 1008 for c in run.emulator.conversations[:2])


def long_reply_wav(shared_audio: Path, tmp_path: Path, repeats: int = 3) -> Path:
    """An agent greeting of ~8.5 s: the speech of utterance.wav three times."""
    import wave

    speech, rate = load_wav(shared_audio / "utterance.wav")
    part = speech[int(1.0 * rate) : int(3.95 * rate)]
    data = np.concatenate([part] * repeats).astype("<i2")
    path = tmp_path / "long_reply.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def test_interruption_from_the_platform_stops_playback(shared_audio: Path, tmp_path: Path) -> None:
    """bargein.wav talks over a long greeting at 6.02 s; with local barge-in off, the
    platform's ``interruption`` must silence the device (queued audio dropped)."""
    config = EmulatorConfig(
        first_message="Let me tell you a long story.",
        first_message_audio=str(long_reply_wav(shared_audio, tmp_path)),
        interruptions=True,
    )
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            shared_audio / "bargein.wav",
            config,
            barge_in={"enabled": False},
            vad={"send": "all"},
        )
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert record.interruptions_sent, "the emulator did not interrupt"
    out = resample_to(run.output, run.output_rate, 16000)
    began = first_sound(out, 16000)
    assert began is not None and began < 1.0  # the greeting played from the start
    # Between the user's onset (6.02 s) and the end of the user's speech (9.77 s) the
    # greeting stops once the interruption arrives and nothing else plays.
    window = out[int(6.0 * 16000) : int(9.7 * 16000)]
    stopped = last_sound(window, 16000)
    assert stopped is not None and stopped < 0.8, stopped


def test_variant_dialect_end_to_end(shared_audio: Path, tmp_path: Path) -> None:
    """A compatible server that expects the variant shapes ({"type": "audio"} chunks)."""
    config = EmulatorConfig(dialect="variant", strict=True)
    run = virtual_time.run(
        run_with_emulator(
            tmp_path, shared_audio / "utterance.wav", config, platform={"dialect": "variant"}
        )
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    assert not record.malformed  # strict: a wrong shape would have closed with 1008
    assert len(record.utterances) == 1 and record.replies
    assert record.close_code == 1000


def test_user_activity_keeps_a_quiet_conversation_open(tmp_path: Path) -> None:
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 2.0),
            conversation={"user_activity_interval_s": 0.5},
        )
    )
    messages = run.emulator.conversations[0].client_messages
    activity = [m for m in messages if m.get("type") == "user_activity"]
    assert len(activity) >= 4  # 4 s of conversation (2 s input + 2 s tail), every 0.5 s


def test_voice_starts_a_conversation_and_the_first_syllable_arrives(
    shared_audio: Path, tmp_path: Path
) -> None:
    """start = "voice": nothing is sent until the user speaks; then the conversation
    opens and the pre-roll carries the speech from its very beginning (1.05 s)."""
    run = virtual_time.run(
        run_with_emulator(tmp_path, shared_audio / "utterance.wav", conversation={"start": "voice"})
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    received = np.frombuffer(bytes(record.user_audio), dtype="<i2").astype(np.float64)
    speech, rate = load_wav(shared_audio / "utterance.wav")
    # The first 300 ms of the utterance, onset included, must be on the wire, in order.
    onset = speech[int(1.0 * rate) : int(1.3 * rate)]
    lag, corr = best_alignment(onset, received)
    assert corr > 0.95, corr
    # The stream starts with the pre-roll: up to 300 ms of the quiet room before 1.0 s,
    # and nothing from earlier (a conversation that opened before the voice would have
    # carried the whole first second).
    assert 0.1 < lag / 16000 <= 0.35, lag / 16000
    before = received[:lag]
    assert 20 * np.log10(np.sqrt(np.mean(before**2)) / 32768 + 1e-12) < -40
    assert len(record.utterances) == 1


def test_inactivity_ends_a_conversation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 3.0),
            conversation={"start": "auto", "inactivity_timeout_s": 1.0, "restart_delay_s": 30},
        )
    )
    assert run.code == 0
    first = run.emulator.conversations[0]
    assert first.close_code == 1000 and first.close_reason == "inactivity"
    assert "no speech for 1 s" in caplog.text


def test_maximum_duration_ends_a_conversation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # Set in the file, the device's limit wins over the agent's own maximum.
    (tmp_path / "config.toml").write_text("[conversation]\nmax_duration_s = 1.0\n")
    run = virtual_time.run(
        run_with_emulator(
            tmp_path,
            silence_wav(tmp_path / "s.wav", 3.0),
            conversation={"start": "auto", "max_duration_s": 1.0, "restart_delay_s": 30},
        )
    )
    assert run.code == 0
    first = run.emulator.conversations[0]
    assert first.close_code == 1000 and first.close_reason == "maximum duration"
    assert "conversation reached its maximum of 1 s" in caplog.text


def test_local_barge_in_tells_a_variant_server(shared_audio: Path, tmp_path: Path) -> None:
    """In the variant dialect a local barge-in also sends {"type": "interruption"}; the
    server (interruptions of its own off) stops its reply because of it."""
    config = EmulatorConfig(
        dialect="variant",
        strict=True,
        first_message="Let me tell you a long story.",
        first_message_audio=str(long_reply_wav(shared_audio, tmp_path)),
        interruptions=False,
    )
    run = virtual_time.run(
        run_with_emulator(
            tmp_path, shared_audio / "bargein.wav", config, platform={"dialect": "variant"}
        )
    )
    assert run.code == 0
    record = run.emulator.conversations[0]
    sent = [m for m in record.client_messages if m.get("type") == "interruption"]
    assert len(sent) == 1 and not record.malformed
    assert not record.interruptions_sent  # the server never interrupted on its own
    assert record.replies[0].interrupted
