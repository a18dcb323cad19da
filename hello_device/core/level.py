"""Signal level of int16 PCM, for code that runs on every frame (pure).

One C call (``audioop.rms``; on Python 3.13+ from the ``audioop-lts`` package, a
dependency); numpy, imported only then, where neither is available.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

__all__ = ["rms_int16", "sum_squares"]

try:  # audioop left the standard library in 3.13; audioop-lts brings it back
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    _rms: Callable[[bytes, int], int] | None = audioop.rms
except ImportError:  # pragma: no cover - only without audioop-lts on 3.13+
    _rms = None


def rms_int16(pcm: bytes) -> float:
    """RMS of native-endian int16 samples (0.0 for an empty buffer; a trailing odd
    byte is ignored). Integer precision with audioop, which is plenty for a level."""
    n = len(pcm) // 2
    if n == 0:
        return 0.0
    if _rms is not None:
        return float(_rms(pcm if len(pcm) == 2 * n else pcm[: 2 * n], 2))
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16, count=n).astype(np.float64)
    return float(np.sqrt(np.dot(samples, samples) / n))


def sum_squares(pcm: bytes) -> float:
    """Sum of the squared int16 samples of ``pcm`` (from :func:`rms_int16`)."""
    n = len(pcm) // 2
    rms = rms_int16(pcm)
    return rms * rms * n
