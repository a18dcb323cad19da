"""PortAudio and its two streams: devices found, each opened at the first rate and
channel count it accepts *and* actually opens, started, closed. Everything here blocks;
the backend runs it in a worker thread, one call at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hello_device.audio.alsa_quiet import noise_count, silence_probe_noise
from hello_device.audio.devices import (
    PA_INT16,
    DeviceInfo,
    Kind,
    describe_error,
    find_device,
    supported_rates,
)
from hello_device.errors import AudioDeviceError
from hello_device.settings import AudioSettings

log = logging.getLogger(__name__)

Callback = Callable[[bytes | None, int, Mapping[str, float], int], tuple[bytes | None, int]]


@dataclass(slots=True)
class OpenStreams:
    """What one successful open produced (owned by the PortAudio worker)."""

    pa: Any
    capture: Any
    playback: Any
    mic: DeviceInfo
    speaker: DeviceInfo
    in_rate: int
    in_channels: int
    channel: int | Literal["mix"]
    out_rate: int
    out_channels: int
    in_latency: float
    out_latency: float

    def log_formats(self, frame_ms: int, output_block_ms: int) -> None:
        """One INFO line per stream: device, rate, channels, block, latency."""
        log.info(
            "microphone %s: %d Hz, %d channel%s (%s), %d ms blocks, latency %.0f ms",
            self.mic.label,
            self.in_rate,
            self.in_channels,
            "s" if self.in_channels != 1 else "",
            "mix" if self.channel == "mix" else f"channel {self.channel}",
            frame_ms,
            self.in_latency * 1000,
        )
        log.info(
            "loudspeaker %s: %d Hz, %s, %d ms blocks, latency %.0f ms",
            self.speaker.label,
            self.out_rate,
            "mono" if self.out_channels == 1 else "stereo (mono duplicated)",
            output_block_ms,
            self.out_latency * 1000,
        )


class StreamOpener:
    """Opens both streams on a PortAudio instance with the backend's callbacks.

    Every stream it opens is appended to :attr:`opened` at once, so a failure halfway
    leaves nothing the caller cannot close.
    """

    def __init__(
        self,
        settings: AudioSettings,
        frame_ms: int,
        output_block_ms: int,
        on_input: Callback,
        on_output: Callback,
    ) -> None:
        self.settings = settings
        self.frame_ms = frame_ms
        self.output_block_ms = output_block_ms
        self.on_input = on_input
        self.on_output = on_output
        self.opened: list[Any] = []
        self._channel_warned = False

    def open(self, pa: Any) -> OpenStreams:
        """Find the configured devices on ``pa`` and open (not start) both streams."""
        s = self.settings
        mic = find_device(pa, s.input_device, "input")
        speaker = find_device(pa, s.output_device, "output")
        capture, in_rate, in_channels, channel, in_latency = self._open_capture(pa, mic)
        playback, out_rate, out_channels, out_latency = self._open_playback(pa, speaker)
        return OpenStreams(
            pa,
            capture,
            playback,
            mic,
            speaker,
            in_rate,
            in_channels,
            channel,
            out_rate,
            out_channels,
            in_latency,
            out_latency,
        )

    def _open_capture(
        self, pa: Any, mic: DeviceInfo
    ) -> tuple[Any, int, int, int | Literal["mix"], float]:
        wanted_channel = self.settings.input_channel
        maxc = mic.max_input_channels
        if wanted_channel != "mix" and int(wanted_channel) >= maxc:
            if not self._channel_warned:
                self._channel_warned = True
                log.warning(
                    "audio.input_channel = %s but microphone %s has %d channel%s; mixing them",
                    wanted_channel,
                    mic.label,
                    maxc,
                    "s" if maxc != 1 else "",
                )
            wanted_channel = "mix"
        need = 2 if wanted_channel == "mix" else int(wanted_channel) + 1
        options = list(dict.fromkeys([min(maxc, need), maxc]))
        stream, rate, channels, latency = self._open_first(pa, mic, "input", options)
        channel: int | Literal["mix"] = (
            "mix" if wanted_channel == "mix" or channels == 1 else int(wanted_channel)
        )
        return stream, rate, channels, channel, latency

    def _open_playback(self, pa: Any, speaker: DeviceInfo) -> tuple[Any, int, int, float]:
        options = [c for c in (1, 2) if c <= speaker.max_output_channels]
        return self._open_first(pa, speaker, "output", options)

    def _open_first(
        self, pa: Any, dev: DeviceInfo, kind: Kind, channel_options: list[int]
    ) -> tuple[Any, int, int, float]:
        """Open ``dev`` with the first (channels, rate) that PortAudio accepts and opens."""
        failures: list[str] = []
        tried_rates: list[int] = []
        for channels in channel_options:
            rates = supported_rates(pa, dev, kind, channels)
            tried_rates += rates
            for rate in rates:
                try:
                    stream = self._open_stream(pa, dev, kind, rate, channels)
                except (OSError, ValueError) as exc:
                    failures.append(f"{rate} Hz x{channels}: {describe_error(exc)}")
                    log.debug(
                        "%s %s refused %d Hz, %d ch: %s", kind, dev.label, rate, channels, exc
                    )
                    continue
                self.opened.append(stream)
                try:
                    latency = float(
                        stream.get_input_latency()
                        if kind == "input"
                        else stream.get_output_latency()
                    )
                except Exception:
                    latency = 0.0
                return stream, rate, channels, latency
        what = "microphone" if kind == "input" else "loudspeaker"
        if not tried_rates:
            counts = " or ".join(str(c) for c in channel_options) or "any number of"
            raise AudioDeviceError(
                f"{what} {dev.label} accepts none of the sample rates we can use "
                f"(16000, 48000, 44100, 32000, 22050, 24000, 8000 or {dev.default_rate} Hz) "
                f"with {counts} channels"
            )
        raise AudioDeviceError(f"cannot open {what} {dev.label}: {failures[-1].split(': ', 1)[-1]}")

    def _open_stream(self, pa: Any, dev: DeviceInfo, kind: Kind, rate: int, channels: int) -> Any:
        if kind == "input":
            return pa.open(
                rate=rate,
                channels=channels,
                format=PA_INT16,
                input=True,
                input_device_index=dev.index,
                frames_per_buffer=rate * self.frame_ms // 1000,
                stream_callback=self.on_input,
                start=False,
            )
        return pa.open(
            rate=rate,
            channels=channels,
            format=PA_INT16,
            output=True,
            output_device_index=dev.index,
            frames_per_buffer=rate * self.output_block_ms // 1000,
            stream_callback=self.on_output,
            start=False,
        )


class PortAudioWorker:
    """The PortAudio instance and the streams opened on it (one call at a time)."""

    def __init__(self, factory: Callable[[], Any], opener: StreamOpener) -> None:
        self._factory = factory
        self._opener = opener
        self._lock = threading.Lock()
        self._pa: Any = None

    def open(self) -> OpenStreams:
        """Start PortAudio (afresh, so newly plugged devices are seen), open both streams."""
        with self._lock:
            self._close_locked()
            silence_probe_noise()
            noise = noise_count()
            try:
                pa = self._factory()
            except Exception as exc:
                raise AudioDeviceError(f"PortAudio failed to start: {describe_error(exc)}") from exc
            finally:
                if noise_count() > noise:
                    log.debug(
                        "ALSA/JACK: %d probe messages as PortAudio started", noise_count() - noise
                    )
            self._pa = pa
            return self._opener.open(pa)

    def start(self, s: OpenStreams) -> None:
        """Start the loudspeaker, then the microphone."""
        with self._lock:
            for what, stream in (("loudspeaker", s.playback), ("microphone", s.capture)):
                try:
                    stream.start_stream()
                except (OSError, ValueError) as exc:
                    dev = s.speaker if what == "loudspeaker" else s.mic
                    raise AudioDeviceError(
                        f"cannot start {what} {dev.label}: {describe_error(exc)}"
                    ) from exc

    def close(self) -> None:
        """Close every stream opened so far and terminate PortAudio."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        streams, self._opener.opened = self._opener.opened, []
        for stream in streams:
            try:
                stream.close()
            except Exception as exc:
                log.debug("closing a stream: %s", exc)
        pa, self._pa = self._pa, None
        if pa is not None:
            try:
                pa.terminate()
            except Exception as exc:
                log.debug("terminating PortAudio: %s", exc)
