"""The PyAudio backend and the device helpers.

Most tests run the backend against a FAKE PyAudio (``FakeHost`` below, handed in through
``pyaudio_factory``): a real sound server cannot refuse 16 kHz, unplug a USB microphone,
or stop calling back, and those are exactly the faults the backend must survive. The
fake's streams call their callbacks from their own threads at the real-time pace of
their block size, like PortAudio does.

The tests marked ``sound`` use real PortAudio streams through a private PulseAudio server
(:mod:`tests.soundserver`): speech played into a virtual microphone, a tone checked on the
speaker's monitor, and the time a flush takes to silence the output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.backends import pyaudio as pyaudio_backend
from hello_device.audio.backends.base import Frame
from hello_device.audio.backends.pyaudio import (
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_OUTPUT_UNDERFLOW,
    PyAudioBackend,
    output_block_ms_for,
)
from hello_device.audio.devices import (
    PA_INT16,
    find_device,
    list_devices,
    pick_rate,
    supported_rates,
)
from hello_device.audio.player import Player
from hello_device.audio.wav import read_wav
from hello_device.errors import AudioDeviceError
from hello_device.settings import AudioSettings
from tests.conftest import UNIT
from tests.soundserver import SoundServer, sound_server

__all__ = ["sound_server"]  # the fixture, imported for the `sound` tests

# ====================================================================== the fake PyAudio


def sine(freq: float, rate: int, start: int, n: int, amp: float = 0.5) -> NDArray[np.int16]:
    t = (start + np.arange(n)) / rate
    return np.rint(np.sin(2 * math.pi * freq * t) * amp * 32767).astype(np.int16)


@dataclass
class FakeDevice:
    name: str
    max_in: int = 0
    max_out: int = 0
    default_rate: int = 48000
    in_rates: frozenset[int] = frozenset({8000, 16000, 22050, 32000, 44100, 48000})
    out_rates: frozenset[int] = frozenset({8000, 16000, 22050, 32000, 44100, 48000})
    in_channels: frozenset[int] | None = None
    """Channel counts the device opens with (None: 1..max)."""
    out_channels: frozenset[int] | None = None
    lies: bool = False
    """is_format_supported says yes to everything; only open() refuses."""

    def accepts(self, kind: str, rate: int, channels: int) -> tuple[bool, str, int]:
        maxc = self.max_in if kind == "input" else self.max_out
        allowed = self.in_channels if kind == "input" else self.out_channels
        if channels < 1 or channels > maxc or (allowed is not None and channels not in allowed):
            return False, "Invalid number of channels", -9998
        if rate not in (self.in_rates if kind == "input" else self.out_rates):
            return False, "Invalid sample rate", -9997
        return True, "", 0


class FakeStream:
    """One callback stream; its thread calls back every block, in real time."""

    def __init__(self, host: FakeHost, pa: FakePyAudio, **kw: Any) -> None:
        self.host = host
        self.pa = pa
        self.kw = kw
        self.rate: int = kw["rate"]
        self.channels: int = kw["channels"]
        self.input: bool = bool(kw.get("input"))
        self.device: FakeDevice = pa.devices[
            kw["input_device_index"] if self.input else kw["output_device_index"]
        ]
        self.block: int = kw["frames_per_buffer"]
        self.callback: Callable[..., tuple[bytes | None, int]] = kw["stream_callback"]
        self.played = bytearray()
        self.position = 0
        self.callbacks = 0
        self.status_flags: list[int] = []
        """Flags passed (one per callback) before the normal 0."""
        self.stalled = threading.Event()
        self.dead = False
        self.closed = False
        self.started = False
        self.thread_ids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_stream(self) -> None:
        if self.dead or self.closed:
            raise OSError(-9988, "Stream is stopped")
        self.started = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-portaudio")
        self._thread.start()

    def _run(self) -> None:
        period = self.block / self.rate
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            k += 1
            # The fake device's own clock: wake once per block (stop-aware).
            if self._stop.wait(max(0.0, t0 + k * period - time.monotonic())):
                return
            if self.dead:
                return
            if self.stalled.is_set():
                continue
            self.thread_ids.add(threading.get_ident())
            status = self.status_flags.pop(0) if self.status_flags else 0
            now = time.monotonic()
            if self.input:
                data = self.host.signal(self, self.position, self.block)
                info = {
                    "input_buffer_adc_time": 1000.0 + now - period - 0.005,
                    "current_time": 1000.0 + now,
                    "output_buffer_dac_time": 0.0,
                }
                result = self.callback(data, self.block, info, status)
            else:
                info = {
                    "input_buffer_adc_time": 0.0,
                    "current_time": 1000.0 + now,
                    "output_buffer_dac_time": 1000.0 + now + 0.02,
                }
                result = self.callback(None, self.block, info, status)
                out, _flag = result
                assert out is not None and len(out) == 2 * self.block * self.channels
                self.played += out
            assert result[1] == PA_CONTINUE
            self.position += self.block
            self.callbacks += 1

    def stall(self) -> None:
        self.stalled.set()

    def die(self) -> None:
        self.dead = True

    def is_active(self) -> bool:
        if self.closed:
            raise OSError(-9988, "Stream closed")
        return self.started and not self.dead

    def get_input_latency(self) -> float:
        return 0.03

    def get_output_latency(self) -> float:
        return 0.02

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self.closed = True


class FakePyAudio:
    """A PortAudio instance: sees the devices present when it was created."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.devices = list(host.devices)
        self.default_in = host.default_in if host.default_in < len(self.devices) else -1
        self.default_out = host.default_out if host.default_out < len(self.devices) else -1
        self.streams: list[FakeStream] = []
        self.terminated = False

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.devices):
            raise OSError(-9996, "Invalid device")
        d = self.devices[index]
        return {
            "index": index,
            "name": d.name,
            "hostApi": 0,
            "maxInputChannels": d.max_in,
            "maxOutputChannels": d.max_out,
            "defaultSampleRate": float(d.default_rate),
            "defaultLowInputLatency": 0.0087,
            "defaultLowOutputLatency": 0.0087,
        }

    def get_default_input_device_info(self) -> dict[str, Any]:
        if self.default_in < 0:
            raise OSError(-9996, "No Default Input Device Available")
        return self.get_device_info_by_index(self.default_in)

    def get_default_output_device_info(self) -> dict[str, Any]:
        if self.default_out < 0:
            raise OSError(-9996, "No Default Output Device Available")
        return self.get_device_info_by_index(self.default_out)

    def get_host_api_info_by_index(self, index: int) -> dict[str, Any]:
        return {"index": index, "name": "ALSA"}

    def is_format_supported(self, rate: float, **kw: Any) -> bool:
        self.host.format_checks += 1
        kind = "input" if "input_device" in kw else "output"
        d = self.devices[kw[f"{kind}_device"]]
        assert kw[f"{kind}_format"] == PA_INT16
        ok, text, code = d.accepts(kind, int(rate), kw[f"{kind}_channels"])
        if ok or d.lies:
            return True
        raise ValueError(text, code)

    def open(self, **kw: Any) -> FakeStream:
        if self.host.open_error is not None:
            raise self.host.open_error
        kind = "input" if kw.get("input") else "output"
        index = kw[f"{kind}_device_index"]
        if index is None or not 0 <= index < len(self.devices):
            raise OSError(-9996, "Invalid device")
        d = self.devices[index]
        if d.name not in {x.name for x in self.host.devices}:
            raise OSError(-9985, "Device unavailable")
        ok, text, code = d.accepts(kind, kw["rate"], kw["channels"])
        self.host.opens.append((d.name, kind, kw["rate"], kw["channels"], ok))
        if not ok:
            raise OSError(code, text)
        assert kw["format"] == PA_INT16 and kw.get("start") is False
        stream = FakeStream(self.host, self, **kw)
        self.streams.append(stream)
        self.host.streams.append(stream)
        return stream

    def terminate(self) -> None:
        for s in self.streams:
            s.close()
        self.terminated = True


@dataclass
class FakeHost:
    """The machine: its sound devices, and everything opened on them."""

    devices: list[FakeDevice]
    default_in: int = 0
    default_out: int = 0
    tone_hz: float = 1000.0
    instances: list[FakePyAudio] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)
    opens: list[tuple[str, str, int, int, bool]] = field(default_factory=list)
    format_checks: int = 0
    init_error: Exception | None = None
    open_error: Exception | None = None
    channel_values: bool = False
    """Fill input channel c with the constant (c + 1) * 1000 instead of a tone."""

    def factory(self) -> FakePyAudio:
        if self.init_error is not None:
            raise self.init_error
        pa = FakePyAudio(self)
        self.instances.append(pa)
        return pa

    def signal(self, stream: FakeStream, start: int, n: int) -> bytes:
        if self.channel_values:
            frame = np.array([(c + 1) * 1000 for c in range(stream.channels)], dtype=np.int16)
            return np.tile(frame, n).tobytes()
        mono = sine(self.tone_hz, stream.rate, start, n)
        return np.repeat(mono, stream.channels).tobytes()

    def live(self, kind: str) -> list[FakeStream]:
        return [
            s
            for s in self.streams
            if s.input == (kind == "input") and s.started and not s.closed and not s.dead
        ]

    def unplug(self, name: str) -> None:
        self.devices = [d for d in self.devices if d.name != name]
        for s in self.streams:
            if s.device.name == name:
                s.die()

    def plug(self, device: FakeDevice) -> None:
        self.devices.append(device)

    @property
    def all_closed(self) -> bool:
        return all(s.closed for s in self.streams) and all(p.terminated for p in self.instances)


def pulse_like() -> FakeHost:
    """Like the PulseAudio devices: everything accepted."""
    return FakeHost(
        [FakeDevice("pulse", 32, 32, 44100), FakeDevice("default", 32, 32, 44100)], 1, 1
    )


def hat_codec() -> FakeDevice:
    """A HAT codec: 48 kHz capture, 44.1 kHz playback, stereo only."""
    return FakeDevice(
        "seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)",
        max_in=2,
        max_out=2,
        default_rate=48000,
        in_rates=frozenset({48000}),
        out_rates=frozenset({44100}),
        in_channels=frozenset({2}),
        out_channels=frozenset({2}),
    )


def usb_mic() -> FakeDevice:
    return FakeDevice(
        "USB PnP Sound Device: Audio (hw:2,0)", max_in=1, max_out=0, default_rate=44100
    )


# ====================================================================== helpers


def asynctest(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (bounded); fixtures pass through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 90 * UNIT))

    return wrapper


async def wait_until(pred: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``pred`` until true; fail after ``within`` seconds (scaled by UNIT)."""
    deadline = time.monotonic() + within * UNIT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within * UNIT:.1f} s")
        await asyncio.sleep(0.005)


@dataclass
class Run:
    backend: PyAudioBackend
    frames: list[Frame]
    statuses: list[str | None]
    frame_threads: set[int]

    def problems(self) -> list[str]:
        return [s for s in self.statuses if s]


@contextlib.asynccontextmanager
async def running(backend: PyAudioBackend) -> AsyncIterator[Run]:
    run = Run(backend, [], [], set())

    def on_frame(frame: Frame) -> None:
        run.frame_threads.add(threading.get_ident())
        run.frames.append(frame)

    task = asyncio.create_task(backend.run(on_frame, run.statuses.append))
    try:
        yield run
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5 * UNIT)


def make_backend(
    host: FakeHost, player: Player | None = None, **settings: Any
) -> tuple[PyAudioBackend, Player]:
    player = player or Player(16000)
    audio = AudioSettings(reopen_max_backoff_s=0.5, **settings)
    backend = PyAudioBackend(
        audio,
        player,
        pyaudio_factory=host.factory,
        stall_timeout_s=0.3,
        start_grace_s=0.5,
        check_interval_s=0.02,
        backoff_base_s=0.02,
    )
    return backend, player


def dominant_hz(x: NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    return k * rate / len(x)


def user_visible(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


# ====================================================================== devices.py


def test_constants_match_pyaudio() -> None:
    pyaudio = pytest.importorskip("pyaudio")
    assert pyaudio.paInt16 == PA_INT16
    assert pyaudio.paContinue == PA_CONTINUE
    assert pyaudio.paInputOverflow == PA_INPUT_OVERFLOW
    assert pyaudio.paOutputUnderflow == PA_OUTPUT_UNDERFLOW


def test_find_device_by_name_index_and_default() -> None:
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2), usb_mic(), hat_codec()], 2, 0)
    pa = host.factory()
    assert find_device(pa, None, "input").index == 2
    assert find_device(pa, None, "output").index == 0
    assert find_device(pa, "usb pnp", "input").index == 1
    assert find_device(pa, "WM8960", "output").index == 2
    assert find_device(pa, 1, "input").name.startswith("USB PnP")
    assert find_device(pa, "2", "input").index == 2  # digits: an index
    with pytest.raises(AudioDeviceError) as err:
        find_device(pa, "respeaker", "input")
    message = str(err.value)
    assert "no microphone (input device) matches 'respeaker'" in message
    assert "#1 'USB PnP Sound Device: Audio (hw:2,0)'" in message
    assert "Headphones" not in message  # only input devices are listed
    with pytest.raises(AudioDeviceError, match="has no output channels"):
        find_device(pa, 1, "output")
    with pytest.raises(AudioDeviceError, match="there is no device #7"):
        find_device(pa, 7, "input")


def test_find_device_exact_name_beats_substring() -> None:
    host = FakeHost([FakeDevice("pulse", 32, 32), FakeDevice("pulse monitor", 2, 0)])
    assert find_device(host.factory(), "PULSE", "input").name == "pulse"


def test_find_device_without_any_default() -> None:
    host = FakeHost([FakeDevice("HDMI", 0, 2)], default_in=5)
    with pytest.raises(AudioDeviceError, match="there is no default microphone"):
        find_device(host.factory(), None, "input")


def test_list_devices_reports_accepted_rates() -> None:
    host = FakeHost([hat_codec(), usb_mic()])
    devices = list_devices(host.factory())
    assert [(d.index, d.max_input_channels, d.max_output_channels) for d in devices] == [
        (0, 2, 2),
        (1, 1, 0),
    ]
    assert devices[0].input_rates == (48000,)
    assert devices[0].output_rates == (44100,)
    assert devices[1].input_rates == (16000, 44100, 48000)
    assert devices[1].output_rates == ()
    assert devices[0].host_api == "ALSA"


def test_rate_preference_and_default_rate_fallback() -> None:
    odd = FakeDevice("odd", 1, 1, default_rate=96000, in_rates=frozenset({96000, 44100}))
    pa = FakeHost([odd]).factory()
    dev = find_device(pa, None, "input")
    assert supported_rates(pa, dev, "input", 1) == [44100, 96000]
    assert pick_rate(pa, dev, "input", 1) == 44100
    only_default = FakeDevice("x", 1, 1, default_rate=96000, in_rates=frozenset({96000}))
    pa = FakeHost([only_default]).factory()
    assert pick_rate(pa, find_device(pa, 0, "input"), "input", 1) == 96000
    none = FakeDevice("none", 1, 1, in_rates=frozenset())
    pa = FakeHost([none]).factory()
    with pytest.raises(AudioDeviceError, match="accepts none of the sample rates"):
        pick_rate(pa, find_device(pa, 0, "input"), "input", 1)


# ====================================================================== the backend, faked


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


@asynctest
async def test_device_missing_at_start_retries_with_backoff_then_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hello_device")
    host = FakeHost([FakeDevice("bcm2835 Headphones", 0, 2)], default_in=-1, default_out=0)
    backend, _ = make_backend(host, input_device="usb")
    async with running(backend) as run:
        await wait_until(lambda: backend.open_attempts >= 5)
        assert not backend.ready.is_set()
        assert len(run.problems()) == 1  # reported once, not per attempt
        assert "no microphone (input device) matches 'usb'" in run.problems()[0]
        assert "'bcm2835 Headphones'" not in run.problems()[0]  # it lists input devices
        delays = list(backend.backoff_history)
        assert all(b >= a * 0.99 for a, b in itertools.pairwise(delays))
        assert delays[-1] > delays[0]
        assert max(delays) <= 0.5  # audio.reopen_max_backoff_s
        host.plug(usb_mic())
        await wait_until(lambda: len(run.frames) >= 3)
        assert run.statuses[-1] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "reopening" in warnings[0].getMessage()
    assert sum("works again" in r.getMessage() for r in caplog.records) == 1
    assert backend.faults == 1
    assert host.all_closed


@asynctest
async def test_stream_dying_mid_run_is_reopened(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hello_device")
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        host.live("input")[0].die()
        await wait_until(lambda: len(run.problems()) == 1)
        assert "stopped" in run.problems()[0]
        await wait_until(lambda: run.statuses[-1] is None and len(host.instances) == 2)
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)
    assert host.instances[0].terminated  # PortAudio restarted, so new devices are seen
    assert backend.faults == 1
    indices = [f.index for f in run.frames]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert host.all_closed


@asynctest
async def test_usb_unplug_and_replug() -> None:
    host = FakeHost([FakeDevice("spk", 0, 2), usb_mic()], default_in=1, default_out=0)
    backend, _ = make_backend(host, input_device="USB PnP")
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        host.unplug(usb_mic().name)
        await wait_until(lambda: backend.open_attempts >= 4)
        assert not host.live("input")
        assert len(run.problems()) == 2  # "stopped", then "no microphone matches"
        assert "matches 'USB PnP'" in run.problems()[-1]
        host.plug(usb_mic())
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)
        assert run.statuses[-1] is None
    assert backend.faults == 1


@asynctest
async def test_stalled_capture_is_a_fault() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 3)
        stalled_at = time.monotonic()
        host.live("input")[0].stall()
        await wait_until(lambda: len(run.problems()) == 1)
        detected = time.monotonic() - stalled_at
        assert "stalled (no audio callback for" in run.problems()[0]
        assert detected >= 0.3 * 0.9  # the stall timeout, not earlier
        await wait_until(lambda: run.statuses[-1] is None)
        before = len(run.frames)
        await wait_until(lambda: len(run.frames) >= before + 3)


@asynctest
async def test_stream_that_never_starts_is_a_fault() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    original = FakeStream.start_stream

    def start_stalled(self: FakeStream) -> None:
        original(self)
        if self.input and len(host.instances) == 1:
            self.stall()

    FakeStream.start_stream = start_stalled  # type: ignore[method-assign]
    try:
        async with running(backend) as run:
            await wait_until(lambda: len(run.problems()) == 1)
            assert "never started" in run.problems()[0]
            await wait_until(lambda: len(run.frames) >= 3)
    finally:
        FakeStream.start_stream = original  # type: ignore[method-assign]


@asynctest
async def test_run_never_raises_and_cleans_up(caplog: pytest.LogCaptureFixture) -> None:
    host = pulse_like()
    host.init_error = OSError(-9999, "Unanticipated host error")
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: backend.open_attempts >= 3)
        assert run.problems() == ["PortAudio failed to start: Unanticipated host error"]
        host.init_error = RuntimeError("a bug somewhere")
        await wait_until(lambda: len(run.problems()) == 2)
        host.init_error = None
        host.open_error = TypeError("an unexpected bug")
        attempts = backend.open_attempts
        await wait_until(lambda: backend.open_attempts >= attempts + 3)
        assert "unexpected error while opening the sound card" in run.problems()[-1]
        host.open_error = None
        await wait_until(lambda: len(run.frames) >= 2)
    assert host.all_closed and host.instances and backend.streams is None
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # once, not once per retry


@asynctest
async def test_callbacks_only_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    feed_threads: set[int] = set()
    real_feed = pyaudio_backend.CaptureConverter.feed

    def spy_feed(self: Any, raw: bytes) -> list[bytes]:
        feed_threads.add(threading.get_ident())
        return real_feed(self, raw)

    monkeypatch.setattr(pyaudio_backend.CaptureConverter, "feed", spy_feed)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 10)
        stream_threads = host.live("input")[0].thread_ids
    loop_thread = threading.get_ident()
    assert feed_threads == {loop_thread} and run.frame_threads == {loop_thread}
    assert loop_thread not in stream_threads

    # Called directly: the callback only queues; nothing converts until the loop runs.
    class NoNumpy:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"numpy.{name} used in the capture callback")

    feed_threads.clear()
    backend2, _ = make_backend(host)
    backend2._loop = asyncio.get_running_loop()
    backend2._converter = pyaudio_backend.CaptureConverter(16000, 1, "mix", 20)
    monkeypatch.setattr(pyaudio_backend, "np", NoNumpy())
    chunk = sine(440, 16000, 0, 320).tobytes()
    assert backend2._on_input(chunk, 320, {}, 0) == (None, PA_CONTINUE)
    assert backend2._on_input(chunk, 320, {}, PA_INPUT_OVERFLOW) == (None, PA_CONTINUE)
    assert backend2._callback_error is None
    assert len(backend2._chunks) == 2 and not feed_threads and backend2.frames_captured == 0
    assert backend2.overflows == 1
    await asyncio.sleep(0)  # one loop iteration runs the (single) scheduled drain
    assert backend2.frames_captured == 2 and feed_threads == {loop_thread}


@asynctest
async def test_capture_queue_drops_oldest_when_the_loop_falls_behind() -> None:
    backend, _ = make_backend(pulse_like())
    backend._queue_max = 10
    backend._chunks = collections.deque(maxlen=10)
    backend._loop = asyncio.get_running_loop()
    backend._converter = pyaudio_backend.CaptureConverter(16000, 1, "mix", 20)
    got: list[Frame] = []
    backend._on_frame = got.append
    for i in range(40):  # the loop does not run in between: it has fallen behind
        backend._on_input(np.full(320, i, dtype=np.int16).tobytes(), 320, {}, 0)
    await asyncio.sleep(0)
    assert backend.frames_dropped == 30
    assert [f.index for f in got] == list(range(30, 40))  # the newest survive
    assert [int(np.frombuffer(f.pcm, np.int16)[0]) for f in got] == list(range(30, 40))
    assert backend.frames_captured == 10


@asynctest
async def test_underflow_flags_are_counted() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 2)
        host.live("output")[0].status_flags.extend([PA_OUTPUT_UNDERFLOW] * 3)
        await wait_until(lambda: backend.underflows == 3)
        assert backend.output_delay_s == pytest.approx(0.02, abs=1e-6)


@asynctest
async def test_frame_timestamps_follow_the_adc_clock() -> None:
    host = pulse_like()
    backend, _ = make_backend(host)
    async with running(backend) as run:
        await wait_until(lambda: len(run.frames) >= 20)
        now = time.monotonic()
    stamps = np.array([f.captured_at for f in run.frames[:20]])
    steps = np.diff(stamps)
    assert np.all(steps > 0)
    assert abs(float(np.median(steps)) - 0.020) < 0.003
    assert stamps[-1] < now


@asynctest
async def test_on_frame_errors_do_not_stop_capture(caplog: pytest.LogCaptureFixture) -> None:
    backend, _ = make_backend(pulse_like())
    calls = 0

    def bad(frame: Frame) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("consumer bug")

    task = asyncio.create_task(backend.run(bad))
    try:
        await wait_until(lambda: calls >= 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sum("on_frame failed" in r.getMessage() for r in caplog.records) == 1


def test_output_block_follows_the_buffer_budget() -> None:
    assert output_block_ms_for(60) == 15  # the default audio.output_buffer_ms
    assert output_block_ms_for(40) == 10
    assert output_block_ms_for(10) == 10  # Python callbacks: never faster
    assert output_block_ms_for(500) == 50
    backend, _ = make_backend(pulse_like(), output_buffer_ms=100)
    assert backend.output_block_ms == 25


# ====================================================================== real audio


def envelope_db(x: NDArray[np.int16], rate: int, hop_s: float = 0.01) -> NDArray[np.float64]:
    hop = round(rate * hop_s)
    n = len(x) // hop
    blocks = x[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(blocks**2, axis=1)) + 1e-3
    return np.asarray(20 * np.log10(rms / 32768.0))


async def _frames_for(run: Run, seconds: float) -> None:
    target = len(run.frames) + round(seconds * 50)
    await wait_until(lambda: len(run.frames) >= target, within=seconds + 5)


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_capture_carries_the_speech(
    sound_server: SoundServer, shared_audio: Path
) -> None:
    speech, rate = read_wav(shared_audio / "utterance.wav")
    assert rate == 16000
    backend = PyAudioBackend(AudioSettings(), Player(16000))
    async with running(backend) as run:
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        await _frames_for(run, 0.2)
        first = len(run.frames)
        t0 = time.monotonic()
        player = sound_server.play_into_mic(shared_audio / "utterance.wav")
        await asyncio.wait_for(asyncio.to_thread(player.wait), 30 * UNIT)
        await _frames_for(run, 0.5)
    assert player.returncode == 0
    assert run.problems() == [] and backend.frames_dropped == 0
    frames = run.frames[first:]
    got = np.frombuffer(b"".join(f.pcm for f in frames), dtype=np.int16)
    ref_env = envelope_db(speech[:, 0], 16000)
    got_env = envelope_db(got, 16000)
    # Align the energy envelopes; they must match closely.
    best, lag = -1.0, 0
    for k in range(0, min(100, len(got_env) - len(ref_env))):
        c = float(np.corrcoef(ref_env, got_env[k : k + len(ref_env)])[0, 1])
        if c > best:
            best, lag = c, k
    assert best > 0.9, f"envelope correlation {best:.2f}"
    # Onset: the first 20 ms frame above -35 dBFS, on the monotonic clock.
    onset = next(
        f
        for f in frames
        if 20
        * math.log10(
            np.sqrt(np.mean(np.frombuffer(f.pcm, np.int16).astype(float) ** 2)) / 32768 + 1e-9
        )
        > -35
    )
    onset_s = onset.captured_at - 0.02 - t0
    print(f"speech onset {onset_s:.3f} s after paplay started (file: 1.05 s); lag {lag * 10} ms")
    assert 0.95 <= onset_s <= 1.05 + 0.35


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_playback_pitch_and_level(sound_server: SoundServer) -> None:
    player = Player(16000)
    backend = PyAudioBackend(AudioSettings(), player)
    async with running(backend) as run:
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        with sound_server.start_recording() as rec:
            assert await asyncio.to_thread(rec.wait_for, 2400, 5 * UNIT)
            underflows = backend.underflows
            player.push(sine(1000, player.rate, 0, player.rate, amp=0.5))
            await wait_until(lambda: not player.playing, within=5)
            underflows = backend.underflows - underflows
            target = rec.samples_received + round(0.3 * 48000)
            assert await asyncio.to_thread(rec.wait_for, target, 5 * UNIT)
            recording = rec.stop()
    assert run.problems() == []
    assert player.underruns == 0
    x = recording.samples
    env = envelope_db(x, recording.rate)
    # The tone must last its second. An output underflow (a loaded machine: the bench
    # counts them) makes PortAudio restart the device, which can drop up to one device
    # buffer (20 ms) of audio, so each one may shorten it by up to 2 blocks.
    full = env > -12
    shape = "".join("#" if f else "." for f in full)
    assert 100 - 3 - 2 * underflows <= int(full.sum()) <= 103, f"{underflows} underflows: {shape}"
    # Pitch and level over the longest stretch without a gap.
    runs = np.split(np.flatnonzero(full), np.flatnonzero(np.diff(np.flatnonzero(full)) != 1) + 1)
    longest = max(runs, key=len)
    assert len(longest) >= 20, f"no 200 ms of uninterrupted tone ({backend.underflows} underflows)"
    mid = x[(longest[0] + 1) * 480 : longest[-1] * 480]
    assert abs(dominant_hz(mid, recording.rate) - 1000) < 5
    level = 20 * math.log10(float(np.sqrt(np.mean(mid.astype(np.float64) ** 2))) / 32768)
    assert abs(level - 20 * math.log10(0.5 / math.sqrt(2))) < 0.5, f"level {level:.2f} dBFS"


@pytest.mark.sound
@pytest.mark.slow
@asynctest
async def test_real_flush_silences_the_output(sound_server: SoundServer) -> None:
    player = Player(16000)
    settings = AudioSettings()
    backend = PyAudioBackend(settings, player)
    async with running(backend):
        await asyncio.wait_for(backend.ready.wait(), 10 * UNIT)
        with sound_server.start_recording() as rec:
            assert await asyncio.to_thread(rec.wait_for, 2400, 5 * UNIT)
            player.push(sine(1000, player.rate, 0, 5 * player.rate, amp=0.5))
            await wait_until(lambda: player.samples_played >= player.rate // 2)
            flushed_at = time.monotonic()
            player.flush()
            target = rec.samples_received + round(0.8 * 48000)
            assert await asyncio.to_thread(rec.wait_for, target, 5 * UNIT)
            recording = rec.stop()
    env = envelope_db(recording.samples, recording.rate)
    loud = np.flatnonzero(env > -40)
    assert len(loud) > 40  # the tone played for 0.5 s or more before the flush
    last = (loud[-1] + 1) * 480 - 1
    heard_until = recording.arrival_of(last)  # an upper bound (includes the monitor's delay)
    delay_ms = (heard_until - flushed_at) * 1000
    print(f"flush -> silence on the monitor: <= {delay_ms:.0f} ms")
    assert delay_ms <= settings.output_buffer_ms + 250
