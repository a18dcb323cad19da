"""Sample-rate, channel and encoding conversion on the three live audio paths.

* :class:`CaptureConverter`: sound-card input at any rate and channel count to
  ``frame_ms`` frames of 16 kHz mono int16 (what the VAD and the rest of the daemon use);
* :class:`MicEncoder`: a 16 kHz frame to the platform's ``user_input_audio_format``;
* :class:`AgentDecoder`: an agent audio chunk to int16 bytes at the output device's rate.

All three are stateful streams: feeding one in chunks of any size gives the same bytes
as feeding it at once. Where nothing needs converting (16 kHz mono capture, ``pcm_16000``
both ways, a 16 kHz output) they only slice bytes, and numpy is never imported: a Pi Zero
2 W keeps its 15 MB. Otherwise they resample with :mod:`hello_device.audio.resample` and
convert µ-law with :mod:`hello_device.audio.formats`, both loaded on first use.

Byte order: wire and sound-card bytes are little-endian int16; the converters assume a
little-endian host (every Raspberry Pi is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from hello_device.core.formats import AudioFormat

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from hello_device.audio.resample import Resampler

__all__ = [
    "AgentDecoder",
    "CaptureConverter",
    "MicEncoder",
    "check_channel",
    "to_mono",
]


def _resampler(in_rate: int, out_rate: int, quality: str) -> Resampler:
    from hello_device.audio.resample import Resampler

    return Resampler(in_rate, out_rate, quality)


def to_mono(
    interleaved: NDArray[np.int16], channels: int, channel: int | Literal["mix"]
) -> NDArray[np.int16]:
    """One channel of interleaved samples, or the rounded average of all of them.

    With one channel, or when picking a channel, the result may be a view of the input.
    """
    import numpy as np

    check_channel(channels, channel)
    if channels == 1:
        return interleaved
    if len(interleaved) % channels:
        raise ValueError(
            f"{len(interleaved)} interleaved samples are not whole frames of {channels} channels"
        )
    if channel != "mix":
        return interleaved[channel::channels]
    # Strided adds are several times faster than reshape().sum(axis=1) for few channels.
    total = interleaved[0::channels].astype(np.int32)
    for c in range(1, channels):
        total += interleaved[c::channels]
    # floor(total / channels + 1/2): round to nearest; always within int16.
    if channels == 2:
        total += 1
        total >>= 1
    else:
        total *= 2
        total += channels
        total //= 2 * channels
    return total.astype(np.int16)


def check_channel(channels: int, channel: int | Literal["mix"]) -> None:
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, not {channels!r}")
    if channel == "mix":
        return
    if not isinstance(channel, int) or isinstance(channel, bool) or not 0 <= channel < channels:
        raise ValueError(
            f"channel must be 'mix' or a channel index 0..{channels - 1}, not {channel!r}"
        )


class CaptureConverter:
    """Sound-card input bytes to fixed-length 16 kHz mono frames.

    :meth:`feed` takes raw interleaved little-endian int16 bytes at ``in_rate`` with
    ``in_channels`` channels, in chunks of any size (a chunk may end in the middle of a
    sample or of a multi-channel frame), and returns the frames completed so far, each
    exactly ``frame_ms`` of ``out_rate`` mono int16 bytes.
    """

    def __init__(
        self,
        in_rate: int,
        in_channels: int,
        channel: int | Literal["mix"],
        frame_ms: int,
        out_rate: int = 16000,
        *,
        quality: str = "LL",
    ) -> None:
        check_channel(in_channels, channel)
        if frame_ms <= 0 or (out_rate * frame_ms) % 1000:
            raise ValueError(f"frame_ms={frame_ms!r} is not a whole number of samples")
        self.in_rate: Final = in_rate
        self.in_channels: Final = in_channels
        self.channel: Final = channel
        self.frame_ms: Final = frame_ms
        self.out_rate: Final = out_rate
        self.frame_bytes: Final = out_rate * frame_ms // 1000 * 2
        """Length of every frame :meth:`feed` returns."""
        self._block = 2 * in_channels
        self._resampler = None if in_rate == out_rate else _resampler(in_rate, out_rate, quality)
        self._partial = bytearray()  # input bytes short of a whole multi-channel frame
        self._out = bytearray()  # converted bytes short of a whole output frame

    def feed(self, raw: bytes | bytearray | memoryview) -> list[bytes]:
        """Convert the next chunk of sound-card bytes; return the frames now complete."""
        fb = self.frame_bytes
        bytes_only = self._resampler is None and self.in_channels == 1
        if bytes_only and len(raw) == fb and not self._partial and not self._out:
            return [bytes(raw)]  # the common 16 kHz mono case: no copy for bytes
        if self._partial:
            self._partial += raw
            data: bytes | bytearray | memoryview = self._partial
        else:
            data = raw
        usable = len(data) - len(data) % self._block
        if usable and bytes_only:
            self._out += data[:usable]
        elif usable:
            import numpy as np

            interleaved = np.frombuffer(data, dtype=np.int16, count=usable // 2)
            mono = to_mono(interleaved, self.in_channels, self.channel)
            if self._resampler is not None:
                mono = self._resampler.process(mono)
            self._out += mono.tobytes()
        rest = bytes(data[usable:]) if usable < len(data) else b""
        self._partial = bytearray(rest)
        return self._take_frames()

    def flush(self) -> list[bytes]:
        """End of input: the remaining frames, the last one padded with silence; resets."""
        self._partial.clear()
        if self._resampler is not None:
            self._out += self._resampler.flush().tobytes()
        frames = self._take_frames()
        if self._out:
            frames.append(bytes(self._out) + bytes(self.frame_bytes - len(self._out)))
            self._out.clear()
        return frames

    def reset(self) -> None:
        """Drop everything held (after a device reopen, for instance)."""
        self._partial.clear()
        self._out.clear()
        if self._resampler is not None:
            self._resampler.reset()

    def _take_frames(self) -> list[bytes]:
        fb = self.frame_bytes
        count = len(self._out) // fb
        if not count:
            return []
        out = self._out
        frames = [bytes(out[i * fb : (i + 1) * fb]) for i in range(count)]
        del out[: count * fb]
        return frames


class MicEncoder:
    """16 kHz mono int16 frames to the platform's ``user_input_audio_format``.

    Stateful: feed consecutive frames of one stream. While the resampler fills (formats
    other than 16 kHz), :meth:`encode` can return ``b""``: skip sending those.
    """

    def __init__(self, fmt: AudioFormat, *, quality: str = "LL") -> None:
        self.fmt: Final = fmt
        self._identity = fmt.encoding == "pcm" and fmt.rate == 16000
        self._resampler = None if fmt.rate == 16000 else _resampler(16000, fmt.rate, quality)

    def encode(self, frame16k: bytes) -> bytes:
        """The wire bytes for the next frame (``frame16k`` itself for ``pcm_16000``)."""
        if self._identity:
            return frame16k
        import numpy as np

        from hello_device.audio.formats import encode

        pcm = np.frombuffer(frame16k, dtype=np.int16, count=len(frame16k) // 2)
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        return encode(self.fmt, pcm)

    def flush(self) -> bytes:
        """End of the stream: the wire bytes still held in the resampler; resets."""
        if self._resampler is None:
            return b""
        from hello_device.audio.formats import encode

        return encode(self.fmt, self._resampler.flush())

    def reset(self) -> None:
        """Drop the resampler state (a new conversation)."""
        if self._resampler is not None:
            self._resampler.reset()


class AgentDecoder:
    """Agent audio chunks (``agent_output_audio_format``) to int16 bytes at the output rate.

    Stateful across chunks of one stream. Call :meth:`flush` when the agent's audio
    stops (end of its turn) to get the last samples still inside the resampler, and
    :meth:`reset` after an interruption to throw them away.
    """

    def __init__(self, fmt: AudioFormat, out_rate: int, *, quality: str = "auto") -> None:
        self.fmt: Final = fmt
        self.out_rate: Final = out_rate
        self._resampler: Resampler | None = None
        if fmt.rate != out_rate:
            from hello_device.audio.resample import is_fast_ratio

            if quality == "auto":
                # Small integer ratios (16k->48k, 24k->48k, 8k->16k): the low-latency
                # filter is cheap. Others (44.1k<->16k/48k, 22.05k->16k) cost it ~8x what
                # soxr does, and agent audio arrives ahead of time anyway: soxr, with its
                # tail flushed by the session when a turn's audio ends (see :meth:`flush`).
                quality = "LL" if is_fast_ratio(fmt.rate, out_rate) else "HQ"
            self._resampler = _resampler(fmt.rate, out_rate, quality)
        self.odd_bytes = 0
        """Chunks that ended in half a sample (the stray byte was dropped)."""

    def decode(self, data: bytes | bytearray | memoryview) -> bytes:
        """Little-endian int16 bytes at ``out_rate`` for the next chunk."""
        pcm_in = self.fmt.encoding == "pcm"
        if pcm_in and len(data) % 2:
            self.odd_bytes += 1
            data = data[: len(data) - 1]
        if pcm_in and self._resampler is None:
            return bytes(data)
        from hello_device.audio.formats import decode

        samples = decode(self.fmt, data)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        return samples.tobytes()

    def flush(self) -> bytes:
        """The bytes still held in the resampler (end of the agent's audio); resets."""
        return b"" if self._resampler is None else self._resampler.flush().tobytes()

    def reset(self) -> None:
        """Drop what the resampler holds (new turn, interruption)."""
        if self._resampler is not None:
            self._resampler.reset()

    @property
    def pending_ms(self) -> float:
        """Audio held inside the resampler right now, in milliseconds."""
        if self._resampler is None:
            return 0.0
        return self._resampler.pending * 1000 / self.out_rate
