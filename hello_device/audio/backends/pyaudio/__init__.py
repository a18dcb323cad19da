"""Real sound cards through PortAudio (PyAudio), in callback mode.

Two streams, opened separately on the configured devices (see
:mod:`hello_device.audio.devices` for how ``audio.input_device`` and
``audio.output_device`` are matched):

* **capture**: at the first rate of 16000, 48000, 44100, 32000, 22050, 24000, 8000 Hz (then
  the device's default) that PortAudio accepts *and* that actually opens, with up to two
  channels (more when ``audio.input_channel`` needs them), ``frame_ms`` per callback.
  The callback only appends ``(bytes, time)`` to a bounded queue and, unless one is
  already pending, schedules a drain with ``loop.call_soon_threadsafe``. On the event
  loop the drain runs the :class:`~hello_device.audio.convert.CaptureConverter`
  (channel pick or mix, resampling to 16 kHz) and hands each
  :class:`~hello_device.audio.backends.base.Frame` to ``on_frame``. If the loop falls behind,
  the queue drops its oldest chunk; :attr:`PyAudioBackend.frames_dropped` counts them
  and frame indices skip accordingly.
* **playback**: mono (stereo with both channels equal if the device refuses mono) at the
  first accepted rate of the same list, in blocks of a quarter of
  ``audio.output_buffer_ms`` (:func:`output_block_ms_for`: 15 ms at the default 60 ms,
  at least 10 ms). The callback returns ``player.read(n)``; the
  :class:`~hello_device.audio.player.Player` is set to this rate.

Device buffer: PyAudio 0.2.14 always asks PortAudio for the device's
``defaultLowOutputLatency`` (its ``open()`` has no latency parameter, and the host-API
specific stream info is only used on macOS), so the only lever is the block size:
PortAudio's ALSA buffer comes out at two blocks. The backend logs the latency PortAudio
reports and warns once if it is above ``audio.output_buffer_ms``. Measured through
PulseAudio (``bench/bench_audio.py``), push to speaker with an empty queue is p99 ~30 ms
with 10 ms blocks, ~46 ms with 15 ms and ~61 ms with 20 ms, and 60 s of playback showed
3-7 underflows with 10 ms blocks, 0-1 with 15 ms and none with 20 ms: hence a quarter of
the budget.

Timestamps: ``Frame.captured_at`` is the ``time.monotonic()`` of the frame's last
sample: the callback's ``input_buffer_adc_time`` mapped onto the monotonic clock when
PortAudio provides it (else the callback's entry time), minus whatever the converter
still holds back.

Faults: a device missing at start, a failed open, a stream that is no longer active, a
stream whose callbacks stop for :data:`STALL_TIMEOUT_S` (USB unplug), or an exception
inside a callback is logged once per incident, reported through ``on_status``, and the
whole set-up (PortAudio included, so newly plugged devices are found) is torn down and
retried with exponential backoff and jitter up to ``audio.reopen_max_backoff_s``; the
player is flushed (what it held would play late). When it works again ``on_status(None)``
is called. :meth:`PyAudioBackend.run` only ever ends by
cancellation; it then closes the streams and terminates PortAudio.

PortAudio calls that may block (initialising, opening, starting, closing) run in a
short-lived daemon thread, one at a time, so the event loop never waits on a sound card.
ALSA and JACK would print pages of probing noise to standard error while PortAudio
initialises; :func:`~hello_device.audio.alsa_quiet.silence_probe_noise` sends it to the
debug log through the libraries' own error hooks (standard error itself is left alone).
"""

from hello_device.audio.backends.pyaudio.backend import PyAudioBackend
from hello_device.audio.backends.pyaudio.constants import (
    PA_CONTINUE,
    PA_INPUT_OVERFLOW,
    PA_OUTPUT_UNDERFLOW,
    STALL_TIMEOUT_S,
    output_block_ms_for,
)

__all__ = [
    "PA_CONTINUE",
    "PA_INPUT_OVERFLOW",
    "PA_OUTPUT_UNDERFLOW",
    "STALL_TIMEOUT_S",
    "PyAudioBackend",
    "output_block_ms_for",
]
