"""WAV files: reading test and input recordings, writing the file backend's output.

:func:`read_wav` parses the RIFF chunks itself (the stdlib ``wave`` module of Python
3.11 rejects float and ``WAVE_FORMAT_EXTENSIBLE`` files) and returns int16 samples for
8/16/24/32-bit integer PCM and 32/64-bit float WAV files. A data chunk whose size is
larger than the file (a recording cut short, or a streaming header) is read up to the
end of the file.

:func:`read_wav_pcm` returns the same as interleaved int16 bytes, without numpy for
16-bit PCM (the file backend's common case).

:class:`WavWriter` writes 16-bit PCM. Its header is rewritten on :meth:`WavWriter.close`,
on :meth:`WavWriter.flush_header`, and every ``header_every_s`` seconds of audio, so a
file cut short by a killed process is still valid up to the last update.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["WavWriter", "read_wav", "read_wav_pcm"]

_PCM: Final = 0x0001
_FLOAT: Final = 0x0003
_EXTENSIBLE: Final = 0xFFFE


def read_wav(path: str | os.PathLike[str]) -> tuple[NDArray[np.int16], int]:
    """Samples of a WAV file as int16 of shape ``(frames, channels)``, and its rate.

    Raises OSError if the file cannot be read and ValueError if it is not a WAV file
    this can decode; both name the file.
    """
    p = Path(path)
    fmt, data = _parse(p)
    return _samples(p, fmt, data), fmt[2]


def read_wav_pcm(path: str | os.PathLike[str]) -> tuple[bytes, int, int]:
    """A WAV file as interleaved native-endian int16 bytes, its rate and channel count
    (errors as :func:`read_wav`)."""
    p = Path(path)
    fmt, data = _parse(p)
    tag, channels, rate, bits = fmt
    if tag == _PCM and bits == 16 and channels >= 1 and rate >= 1:
        return bytes(data[: len(data) - len(data) % (2 * channels)]), rate, channels
    samples = _samples(p, fmt, data)
    return samples.tobytes(), rate, channels


def _parse(p: Path) -> tuple[tuple[int, int, int, int], memoryview]:
    """The (tag, channels, rate, bits) of a WAV file and its data chunk."""
    with p.open("rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        size = f.readinto(buf)
    del buf[size:]
    if len(buf) < 12 or bytes(buf[:4]) not in (b"RIFF", b"RF64") or buf[8:12] != b"WAVE":
        raise ValueError(f"{p}: not a WAV file (no RIFF/WAVE header)")

    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, bits
    pos = 12
    while pos + 8 <= len(buf):
        chunk_id = bytes(buf[pos : pos + 4])
        (chunk_size,) = struct.unpack_from("<I", buf, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16:
                raise ValueError(f"{p}: malformed WAV fmt chunk ({chunk_size} bytes)")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", buf, body)
            if tag == _EXTENSIBLE and chunk_size >= 26:
                (tag,) = struct.unpack_from("<H", buf, body + 24)  # the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{p}: WAV data chunk comes before its fmt chunk")
            end = min(body + chunk_size, len(buf))
            return fmt, memoryview(buf)[body:end]
        pos = body + chunk_size + (chunk_size & 1)
    raise ValueError(f"{p}: WAV file has no {'data' if fmt else 'fmt'} chunk")


def _samples(p: Path, fmt: tuple[int, int, int, int], data: memoryview) -> NDArray[np.int16]:
    import numpy as np

    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise ValueError(f"{p}: WAV header claims {channels} channels at {rate} Hz")
    width = bits // 8
    if bits % 8 or width == 0:
        raise ValueError(f"{p}: unsupported WAV sample size ({bits} bits)")
    frames = len(data) // (width * channels)
    count = frames * channels
    if tag == _PCM and bits == 16:
        out = np.frombuffer(data, dtype="<i2", count=count).astype(np.int16, copy=False)
    elif tag == _PCM and bits == 8:
        u8 = np.frombuffer(data, dtype=np.uint8, count=count)
        out = ((u8.astype(np.int16) - 128) << 8).astype(np.int16)
    elif tag == _PCM and bits == 24:
        b = np.frombuffer(data, dtype=np.uint8, count=count * 3).reshape(-1, 3)
        out = np.ascontiguousarray(b[:, 1:]).view("<i2").reshape(-1).astype(np.int16)
    elif tag == _PCM and bits == 32:
        out = (np.frombuffer(data, dtype="<i4", count=count) >> 16).astype(np.int16)
    elif tag == _FLOAT and bits in (32, 64):
        x = np.frombuffer(data, dtype="<f4" if bits == 32 else "<f8", count=count)
        scaled = np.rint(np.nan_to_num(x) * 32768.0)
        out = np.clip(scaled, -32768, 32767).astype(np.int16)
    else:
        kind = {_PCM: "integer PCM", _FLOAT: "float"}.get(tag, f"format tag 0x{tag:04x}")
        raise ValueError(
            f"{p}: unsupported WAV encoding ({kind}, {bits} bits); "
            "use 8/16/24/32-bit PCM or 32/64-bit float"
        )
    return out.reshape(frames, channels)


class WavWriter:
    """Writes a 16-bit PCM WAV file incrementally.

    ``write`` takes little-endian int16 bytes (or an int16 array), interleaved if
    ``channels > 1``; bytes short of a whole frame wait for the next write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rate: int,
        channels: int = 1,
        *,
        header_every_s: float | None = 1.0,
    ) -> None:
        if rate <= 0 or channels <= 0:
            raise ValueError(f"{path}: invalid WAV rate {rate!r} or channels {channels!r}")
        self.path: Final = Path(path)
        self.rate: Final = rate
        self.channels: Final = channels
        self._block = 2 * channels
        self._header_every = (
            None if header_every_s is None else max(1, round(header_every_s * rate)) * self._block
        )
        # A buffer that holds a header interval (at least 64 KiB): one write to the OS
        # per header update instead of one every 8 KiB (a syscall every few frames).
        buffering = max(1 << 16, (self._header_every or 0) + 4096)
        self._file: BinaryIO | None = self.path.open("wb", buffering=buffering)
        self._data_bytes = 0
        self._since_header = 0
        self._partial = b""
        self._file.write(self._header())

    @property
    def frames_written(self) -> int:
        """Whole frames written so far."""
        return self._data_bytes // self._block

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._file is None

    def write(self, pcm: bytes | bytearray | memoryview | NDArray[np.int16]) -> None:
        """Append samples."""
        f = self._file
        if f is None:
            raise ValueError(f"{self.path}: write to a closed WavWriter")
        if isinstance(pcm, bytes | bytearray | memoryview):
            data = bytes(pcm)
        else:
            data = pcm.astype("<i2", copy=False).tobytes()
        if self._partial:
            data = self._partial + data
        whole = len(data) - len(data) % self._block
        self._partial = data[whole:]
        if not whole:
            return
        f.write(data[:whole] if whole < len(data) else data)
        self._data_bytes += whole
        self._since_header += whole
        if self._header_every is not None and self._since_header >= self._header_every:
            self.flush_header()

    def flush_header(self) -> None:
        """Make the header match the data written so far and flush to the OS."""
        f = self._file
        if f is None:
            return
        f.seek(0)
        f.write(self._header())
        f.seek(0, os.SEEK_END)
        f.flush()
        self._since_header = 0

    def close(self) -> None:
        """Finish the header and close the file (a partial trailing frame is dropped)."""
        if self._file is None:
            return
        try:
            self.flush_header()
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _header(self) -> bytes:
        data = min(self._data_bytes, 0xFFFFFFFF - 36)
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            36 + data,
            b"WAVE",
            b"fmt ",
            16,
            _PCM,
            self.channels,
            self.rate,
            self.rate * self._block,
            self._block,
            16,
            b"data",
            data,
        )
