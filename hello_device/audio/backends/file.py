"""A virtual sound card over WAV files, paced in real time.

Every ``frame_ms`` it delivers one frame of ``audio.input_file`` (any rate and channel
count, converted to 16 kHz mono) as the microphone, and writes exactly one frame pulled
from the player to ``audio.output_file`` (16-bit mono at ``audio.output_rate``) as the
loudspeaker; silence when nothing plays. The output starts with one frame of silence:
like a real card with a one-frame buffer, what is pulled at tick *t* sounds during the
next frame. So time *t* in the input file and time *t* in the output file are the same
instant, and latencies can be read off the two files.

With ``audio.loopback_gain`` above zero, what the loudspeaker plays during a frame is
mixed into the microphone frame captured over the same interval, like a loudspeaker the
microphone hears: the echo path of a real device, for tests of the echo guard.

When the input ends it feeds digital silence; with ``audio.exit_at_end`` it writes two
more seconds, sets :attr:`finished` and returns. If the event loop falls behind (a slow
board, a debugger), it catches up by running the missed ticks at once, so the two
timelines stay aligned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hello_device.audio import CAPTURE_RATE
from hello_device.audio.backends.base import (
    AudioBackend,
    Frame,
    FrameSink,
    StatusSink,
)
from hello_device.audio.convert import CaptureConverter
from hello_device.audio.player import Player
from hello_device.audio.wav import WavWriter, read_wav_pcm
from hello_device.errors import AudioDeviceError, describe_os_error
from hello_device.settings import AudioSettings

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

TAIL_S = 2.0
"""Seconds written after the input ends when ``exit_at_end`` is set."""


def load_input_frames(path: str, frame_ms: int, channel: int | str = "mix") -> list[bytes]:
    """The whole input file as 16 kHz mono frames (the last one padded with silence).

    The file is converted once, up front, with soxr's high-quality recipe: latency does
    not matter here, and nothing heavy then runs while the virtual card ticks. A 16 kHz
    mono 16-bit file is only cut into frames.
    """
    try:
        pcm, rate, channels = read_wav_pcm(path)
    except (OSError, ValueError) as exc:
        raise AudioDeviceError(f"cannot read audio.input_file {path}: {exc}") from exc
    pick: int | Literal["mix"] = "mix"
    if channel != "mix" and int(channel) < channels:
        pick = int(channel)
    converter = CaptureConverter(rate, channels, pick, frame_ms, quality="HQ")
    return converter.feed(pcm) + converter.flush()


def _mix(pcm: bytes, echo: NDArray[np.int16], gain: float) -> bytes:
    """``pcm`` plus ``gain`` times ``echo`` (as long as they overlap), saturated."""
    import numpy as np

    mic = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    n = min(len(mic), len(echo))
    mic[:n] += gain * echo[:n].astype(np.float32)
    return np.clip(mic, -32768, 32767).astype("<i2").tobytes()


class FileBackend(AudioBackend):
    """The ``file`` audio backend (see the module docstring)."""

    def __init__(
        self,
        settings: AudioSettings,
        player: Player,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not settings.input_file or not settings.output_file:
            raise AudioDeviceError("the file backend needs audio.input_file and output_file")
        self.settings = settings
        self.player = player
        self.clock = clock
        self.frame_ms = settings.frame_ms
        self.output_rate = settings.output_rate
        self.input_path = settings.input_file
        self.output_path = settings.output_file
        self.input_frames = 0
        """Frames the input file holds."""

    async def run(self, on_frame: FrameSink, on_status: StatusSink | None = None) -> None:
        frames = load_input_frames(self.input_path, self.frame_ms, self.settings.input_channel)
        self.input_frames = len(frames)
        self.player.set_rate(self.output_rate)
        silence_in = bytes(CAPTURE_RATE * self.frame_ms // 1000 * 2)
        frame_s = self.frame_ms / 1000.0
        out_per_s = self.output_rate
        tail_frames = int(TAIL_S / frame_s) if self.settings.exit_at_end else None
        writer = self._open_output()
        log.info(
            "file audio: %s (%.1f s) -> %s at %d Hz",
            self.input_path,
            len(frames) * frame_s,
            self.output_path,
            self.output_rate,
        )
        loopback = self.settings.loopback_gain
        if loopback:  # the echo path of a real device (tests of the echo guard)
            import numpy as np

            from hello_device.audio.resample import Resampler

            to_mic: Resampler | None = Resampler(self.output_rate, CAPTURE_RATE, "LL")
            echo = np.zeros(0, dtype=np.int16)
        else:
            to_mic = None
        with writer:
            written = self._out_samples(1, out_per_s, frame_s)
            writer.write(bytes(written * 2))  # the one-frame device buffer
            self.ready.set()
            if on_status is not None:
                on_status(None)
            # Each tick is a plain loop callback (call_at), not a coroutine sleeping:
            # on a small board every wake-up counts.
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()
            total = None if tail_frames is None else len(frames) + tail_frames
            start = loop.time()
            index = 0
            handle: asyncio.TimerHandle | None = None

            def tick() -> None:
                nonlocal index, written, echo, handle
                try:
                    while total is None or index < total:
                        deadline = start + (index + 1) * frame_s
                        if deadline > loop.time():
                            handle = loop.call_at(deadline, tick)
                            return
                        pcm = frames[index] if index < len(frames) else silence_in
                        if to_mic is not None:
                            pcm = _mix(pcm, echo, loopback)
                        self.frames_captured += 1
                        on_frame(Frame(pcm, index, deadline))
                        target = self._out_samples(index + 2, out_per_s, frame_s)
                        played = self.player.read(target - written)
                        writer.write(played)
                        if to_mic is not None:
                            # What sounds during the next frame reaches the mic with it.
                            echo = to_mic.process(np.frombuffer(played, dtype="<i2"))
                        written = target
                        index += 1
                    done.set_result(None)
                except Exception as exc:  # hand it to run(), never lose it in the loop
                    if not done.done():
                        done.set_exception(exc)

            handle = loop.call_at(start + frame_s, tick)
            try:
                await done
            except OSError as exc:  # a full disk, a removed directory
                raise AudioDeviceError(
                    f"cannot write audio.output_file {self.output_path}: {describe_os_error(exc)}"
                ) from exc
            finally:
                handle.cancel()
        log.info("file audio: input finished; wrote %s", self.output_path)
        self.finished.set()

    def _open_output(self) -> WavWriter:
        """The output WAV, opened before the first tick: a path that cannot be written
        is a clear error at once, not a silent daemon."""
        path = Path(self.output_path)
        if path.parent.exists() and not path.parent.is_dir():
            raise AudioDeviceError(
                f"cannot write audio.output_file {path}: {path.parent} is not a directory"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return WavWriter(path, self.output_rate)
        except OSError as exc:
            raise AudioDeviceError(
                f"cannot write audio.output_file {path}: {describe_os_error(exc)}"
            ) from None

    @staticmethod
    def _out_samples(frames: int, rate: int, frame_s: float) -> int:
        """Output samples in the first ``frames`` frames (exact for any rate)."""
        return round(frames * frame_s * rate)
