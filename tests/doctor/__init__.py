"""``hello-device doctor``: every check's PASS and FAIL paths, against real local parts.

Real parts wherever they run here: the agent emulator on 127.0.0.1 for the platform
checks (HTTP, 401, 404, private agents, slow answers), a local TLS server with a
certificate made by ``openssl`` for the handshake check, temporary directories for the
key file, configuration and state permission cases (chowned to a stand-in service user
id), gpiozero's ``MockFactory`` for pins, the file audio backend, the fake PortAudio host
of :mod:`hello_device.testing.fake_pyaudio` for sound cards (and the private PulseAudio
server when it can start), and a fake file-system root for the systemd unit files. The
user database and ``systemctl``/``timedatectl`` are faked: the doctor must not depend on
this machine's. Nothing leaves 127.0.0.1. The API key never appears in any output.
"""
