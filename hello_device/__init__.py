"""hello-device: a voice appliance daemon for ElevenLabs-compatible agent platforms."""

__version__ = "0.1.0"
__all__ = ["__version__"]
