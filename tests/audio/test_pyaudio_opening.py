"""The PyAudio backend opens what a card accepts: rate and channel fallbacks,
device choice, stereo output, block size (on the fake PortAudio host: a real sound server
accepts everything)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hello_device.audio.backends.pyaudio import (
    output_block_ms_for,
)
from hello_device.testing.fake_pyaudio import (
    FakeDevice,
    FakeHost,
    hat_codec,
    pulse_like,
    sine,
    usb_mic,
)
from tests.audio.support import (
    asynctest,
    dominant_hz,
    make_backend,
    running,
    user_visible,
    wait_until,
)


@asynctest
async def test_rate_fallback_when_16k_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = FakeHost([hat_codec()])
    backend, player = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 25)
        s = backend.streams
        assert s is not None
        assert (s.in_rate, s.in_channels, s.out_rate, s.out_channels) == (48000, 2, 44100, 2)
        assert player.rate == 44100
        assert backend.ready.is_set()
    pcm = np.frombuffer(b"".join(f.pcm for f in run.frames[5:25]), dtype=np.int16)
    assert all(len(f.pcm) == 640 for f in run.frames)  # 20 ms at 16 kHz mono
    assert abs(dominant_hz(pcm, 16000) - 1000) < 30
    assert run.statuses == [None]
    shown = user_visible(caplog)
    assert "-9997" not in shown and "Invalid sample rate" not in shown
    assert "48000 Hz, 2 channels" in shown and "44100 Hz, stereo" in shown
    # It never asked for a rate the card refuses: every open succeeded.
    assert all(ok for *_, ok in host.opens)


@asynctest
async def test_open_refusal_is_caught_when_is_format_supported_lies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    liar = FakeDevice(
        "liar", 1, 1, in_rates=frozenset({44100}), out_rates=frozenset({44100}), lies=True
    )
    host = FakeHost([liar])
    backend, player = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 5)
    refused = [(rate, ok) for _, _, rate, _, ok in host.opens if not ok]
    assert (16000, False) in refused and (48000, False) in refused
    assert backend.streams is None  # closed on exit
    assert player.rate == 44100
    assert run.problems() == []
    shown = user_visible(caplog)
    assert "-9997" not in shown and "Invalid sample rate" not in shown


@asynctest
async def test_devices_by_name_index_and_default() -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), usb_mic(), hat_codec()], 2, 0)
    backend, _ = make_backend(host, input_device="usb", output_device=2)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        s = backend.streams
        assert s is not None and (s.mic.index, s.speaker.index) == (1, 2)
        assert (s.in_rate, s.in_channels, s.channel) == (16000, 1, "mix")
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        s = backend.streams
        assert s is not None and (s.mic.index, s.speaker.index) == (2, 0)
        assert (s.out_rate, s.out_channels) == (16000, 1)


@asynctest
async def test_input_channel_is_picked_from_a_multichannel_mic() -> None:
    array = FakeDevice("ReSpeaker 4 Mic Array", max_in=6, max_out=0, in_channels=frozenset({6}))
    host = FakeHost([array, FakeDevice("spk", 0, 2)], 0, 1, channel_values=True)
    backend, _ = make_backend(host, input_channel=3)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        s = backend.streams
        assert s is not None and (s.in_channels, s.channel) == (6, 3)
    pcm = np.frombuffer(run.frames[-1].pcm, dtype=np.int16)
    assert np.all(pcm == 4000)


@asynctest
async def test_stereo_output_duplicates_mono() -> None:
    host = FakeHost([FakeDevice("mic", 1, 0), hat_codec()], 0, 1)
    backend, player = make_backend(host)
    async with running(backend) as run:
        await wait_until(backend.ready.is_set)
        player.push(sine(1000, player.rate, 0, player.rate // 5))
        await wait_until(lambda: not player.playing)
        out = host.live("output")[0]
        assert out.channels == 2 and out.block == 661  # 15 ms at 44.1 kHz
        played = np.frombuffer(bytes(out.played), dtype=np.int16).reshape(-1, 2)
    assert run.problems() == []
    assert np.array_equal(played[:, 0], played[:, 1])
    assert np.abs(played[:, 0]).max() > 15000


def test_output_block_follows_the_buffer_budget() -> None:
    assert output_block_ms_for(60) == 15  # the default audio.output_buffer_ms
    assert output_block_ms_for(40) == 10
    assert output_block_ms_for(10) == 10  # Python callbacks: never faster
    assert output_block_ms_for(500) == 50
    backend, _ = make_backend(pulse_like(), output_buffer_ms=100)
    assert backend.output_block_ms == 25
