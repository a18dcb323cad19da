"""Audio: formats and conversion, the playout queue, and the sound-card backends.

Inside the daemon, captured audio is always 16 kHz mono signed 16-bit little-endian
PCM in frames of ``audio.frame_ms``; agent audio is decoded and resampled to the output
device's rate before it enters the :class:`~hello_device.audio.player.Player`.
"""

CAPTURE_RATE = 16000
"""Rate of every captured frame inside the daemon (what webrtcvad needs)."""
