"""A fake PyAudio: sound devices that refuse rates, get unplugged, or stop calling back.

A real sound server cannot refuse 16 kHz, unplug a USB microphone or stop calling back,
and those are exactly the faults the PyAudio backend must survive. Hand
``FakeHost(...).factory`` to :class:`~hello_device.audio.backends.pyaudio.PyAudioBackend`
as ``pyaudio_factory`` (like gpiozero's ``MockFactory``): its streams call their callbacks
from their own threads at the real-time pace of their block size, as PortAudio does,
with a tone (or per-channel constants) as the microphone's signal.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hello_device.audio.backends.pyaudio import PA_CONTINUE
from hello_device.audio.devices import PA_INT16

__all__ = [
    "FakeDevice",
    "FakeHost",
    "FakePyAudio",
    "FakeStream",
    "hat_codec",
    "pulse_like",
    "sine",
    "usb_mic",
]


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
