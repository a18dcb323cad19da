"""Audio backends: a real sound card (PyAudio), WAV files in real time, memory."""
