"""The private PulseAudio server, for the tests marked ``sound``."""

from tests.soundserver import sound_server

__all__ = ["sound_server"]
