"""A private PulseAudio sound server for the real-audio tests and benchmarks.

:class:`SoundServer` starts ``pulseaudio`` in user mode (no D-Bus, no system config,
anonymous auth) in a fresh temporary directory, with

* ``speaker``: a 48 kHz null sink, the default sink (what the device plays into; record
  it from ``speaker.monitor``);
* ``micsrc``: a second null sink whose monitor is remapped into the source ``mic``, the
  default source: whatever is played into ``micsrc`` is what the device's microphone
  hears.

PortAudio reaches it through ALSA's ``pulse`` and ``default`` PCMs (the ALSA pulse
plugin, Debian package ``libasound2-plugins``, which ``pulseaudio`` depends on).

Use from pytest: the session fixture :func:`sound_server` starts one server for the whole
run, points ``PULSE_SERVER`` and ``XDG_RUNTIME_DIR`` at it for the test process (so
in-process PortAudio and child processes use it) and stops it at the end. It **skips**,
saying why, when no server can be started (set ``HELLO_DEVICE_REQUIRE_SOUND=1`` to make
that a failure, as CI should). Other test modules import it::

    from tests.soundserver import SoundServer, sound_server  # noqa: F401

or ``pytest_plugins = ("tests.soundserver",)`` in the top-level ``conftest.py``; both may
be used at once (the server is shared).

Outside pytest (benchmarks)::

    with SoundServer.start() as server:
        server.apply_env()
        ...

Helpers: :meth:`SoundServer.play_into_mic` (``paplay`` into ``micsrc``),
:meth:`SoundServer.record_speaker` (``parec`` from ``speaker.monitor`` for N seconds), and
:meth:`SoundServer.start_recording` for a recording that runs alongside a test, with the
arrival time of every block (to put recorded samples on the ``time.monotonic`` clock).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import pytest
from numpy.typing import NDArray

__all__ = [
    "SPEAKER_RATE",
    "Recorder",
    "Recording",
    "SoundServer",
    "SoundServerUnavailable",
    "sound_server",
]

SPEAKER_RATE = 48000
"""Rate of the ``speaker`` and ``micsrc`` null sinks, and of recordings."""

START_TIMEOUT_S = 15.0
KEEPALIVE_MS = 5
_SINK_LATENCY = re.compile(r"^\s*Latency: (\d+) usec", re.MULTILINE)
STOP_TIMEOUT_S = 5.0

_PA_SCRIPT = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=speaker rate={rate} channels=1 \
sink_properties=device.description=Speaker
load-module module-null-sink sink_name=micsrc rate={rate} channels=1 \
sink_properties=device.description=MicFeed
load-module module-remap-source source_name=mic master=micsrc.monitor channels=1 \
source_properties=device.description=Mic
set-default-sink speaker
set-default-source mic
"""

_ENV_KEYS = ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_CLIENTCONFIG")


class SoundServerUnavailable(RuntimeError):
    """No sound server could be started here; the message says why and what to install."""


@dataclass
class Recording:
    """Samples recorded from a PulseAudio source, with when each block arrived."""

    samples: NDArray[np.int16]
    rate: int
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    """``(time.monotonic() at arrival, samples received so far)`` per block read."""

    def arrival_of(self, index: int) -> float:
        """When sample ``index`` had been played at the latest: the arrival time of its
        block, minus the samples after it in that block."""
        for t, end in self.arrivals:
            if end > index:
                return t - (end - 1 - index) / self.rate
        raise IndexError(f"sample {index} was not recorded ({len(self.samples)} were)")


class Recorder:
    """``parec`` running in the background, read by a thread that timestamps each block."""

    def __init__(
        self,
        env: dict[str, str],
        device: str = "speaker.monitor",
        rate: int = SPEAKER_RATE,
        latency_ms: int = 10,
    ) -> None:
        self.rate = rate
        self._buf = bytearray()
        self._arrivals: list[tuple[float, int]] = []
        self._cond = threading.Condition()
        self._proc = subprocess.Popen(
            [
                "parec",
                f"--device={device}",
                f"--rate={rate}",
                "--channels=1",
                "--format=s16le",
                "--raw",
                f"--latency-msec={latency_ms}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._read, name="parec-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            now = time.monotonic()
            if not data:
                break
            with self._cond:
                self._buf += data
                self._arrivals.append((now, len(self._buf) // 2))
                self._cond.notify_all()

    @property
    def samples_received(self) -> int:
        with self._cond:
            return len(self._buf) // 2

    def wait_for(self, samples: int, timeout: float) -> bool:
        """Wait (bounded) until ``samples`` samples have arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._buf) // 2 < samples:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def stop(self) -> Recording:
        """End the recording and return it."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(STOP_TIMEOUT_S)
        self._thread.join(STOP_TIMEOUT_S)
        with self._cond:
            data = bytes(self._buf[: len(self._buf) // 2 * 2])
            arrivals = list(self._arrivals)
        return Recording(np.frombuffer(data, dtype="<i2").astype(np.int16), self.rate, arrivals)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc.poll() is None:
            self.stop()


class SoundServer:
    """One private PulseAudio server (see the module docstring)."""

    def __init__(self, root: Path, process: subprocess.Popen[bytes], env: dict[str, str]) -> None:
        self.root = root
        self.process = process
        self.env = env
        """Variables pointing clients at this server (merge into a child's environment)."""
        self.log_path = root / "pulseaudio.log"
        self._saved_env: dict[str, str | None] | None = None
        self._keepalive: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(cls, timeout: float = START_TIMEOUT_S) -> SoundServer:
        """Start a server and wait (bounded) until it answers; SoundServerUnavailable if not."""
        for tool, package in (
            ("pulseaudio", "pulseaudio"),
            ("pactl", "pulseaudio-utils"),
            ("pacat", "pulseaudio-utils"),
        ):
            if shutil.which(tool) is None:
                raise SoundServerUnavailable(f"{tool} not installed: apt install {package}")
        root = Path(tempfile.mkdtemp(prefix="hd-pulse-"))
        runtime = root / "run"
        home = root / "home"
        (runtime / "pulse").mkdir(parents=True, mode=0o700)
        home.mkdir(mode=0o700)
        socket = runtime / "pulse" / "native"
        script = root / "server.pa"
        script.write_text(_PA_SCRIPT.format(socket=socket, rate=SPEAKER_RATE))
        client_conf = root / "client.conf"
        client_conf.write_text("autospawn = no\n")
        env = {
            "XDG_RUNTIME_DIR": str(runtime),
            "PULSE_SERVER": f"unix:{socket}",
            "PULSE_CLIENTCONFIG": str(client_conf),
        }
        server_env = {
            **os.environ,
            **env,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
        }
        server_env.pop("PULSE_SERVER", None)
        log_path = root / "pulseaudio.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    "pulseaudio",
                    "-n",
                    "-F",
                    str(script),
                    "--daemonize=no",
                    "--system=false",
                    "--exit-idle-time=-1",
                    "--log-target=stderr",
                    "--use-pid-file=false",
                    "--disallow-exit",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=server_env,
                start_new_session=True,
            )
        server = cls(root, process, env)
        try:
            server._wait_ready(timeout)
            server._start_keepalive(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SoundServerUnavailable(
                    f"pulseaudio exited with code {self.process.returncode}: {self.log_tail()}"
                )
            probe = subprocess.run(
                ["pactl", "info"],
                env=self.child_env(),
                capture_output=True,
                timeout=max(1.0, min(5.0, deadline - time.monotonic())),
                check=False,
            )
            if probe.returncode == 0 and b"Default Sink: speaker" in probe.stdout:
                return
            if time.monotonic() >= deadline:
                raise SoundServerUnavailable(
                    f"pulseaudio did not answer within {timeout:.0f} s: {self.log_tail()}"
                )
            time.sleep(0.05)  # polling interval of a bounded wait

    def _start_keepalive(self, timeout: float) -> None:
        """Keep both null sinks rendering in small blocks.

        A null sink nobody asks for low latency renders 2 s at a time; a PortAudio
        stream joining it then starves (and stalls) for up to 2 s at a time. A
        low-latency recording of each sink's monitor, started here and kept until
        :meth:`stop`, makes both sinks work in 5 ms blocks. (With 10 ms sink blocks, a
        client playing 10 ms blocks through a 20 ms buffer underflows in bursts: a
        sink's block must be well under half the client's buffer.) The new block size
        applies after the current 2 s block, so this waits (bounded) until both sinks
        report a small latency.
        """
        for device in ("speaker.monitor", "mic"):
            self._keepalive.append(
                subprocess.Popen(
                    ["parec", f"--device={device}", "--raw", f"--latency-msec={KEEPALIVE_MS}"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=self.child_env(),
                )
            )
        deadline = time.monotonic() + timeout
        while True:
            latencies = [
                int(m.group(1)) for m in _SINK_LATENCY.finditer(self.pactl("list", "sinks"))
            ]
            if len(latencies) == 2 and max(latencies) < 100_000:
                return
            if time.monotonic() >= deadline:
                raise SoundServerUnavailable(
                    f"the null sinks did not switch to low latency within {timeout:.0f} s "
                    f"(latencies {latencies} us)"
                )
            time.sleep(0.05)  # polling interval of a bounded wait

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        self.restore_env()
        for proc in self._keepalive:
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT_S)
        self._keepalive.clear()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SoundServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        useful = [ln for ln in text.splitlines() if ln.startswith("E:")] or text.splitlines()
        return " | ".join(useful[-lines:]) or "(empty log)"

    # ------------------------------------------------------------------ environment

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """``os.environ`` plus the variables that point clients at this server."""
        return {**os.environ, **self.env, **(extra or {})}

    def apply_env(self) -> None:
        """Point this process's clients (PortAudio via ALSA, libpulse) at the server."""
        if self._saved_env is None:
            self._saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
        os.environ.update(self.env)

    def restore_env(self) -> None:
        """Undo :meth:`apply_env`."""
        saved, self._saved_env = self._saved_env, None
        for key, value in (saved or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # ------------------------------------------------------------------ helpers

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against this server; its standard output."""
        done = subprocess.run(
            ["pactl", *args],
            env=self.child_env(),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def play_into_mic(
        self,
        wav_path: str | os.PathLike[str],
        *,
        wait: bool = False,
        timeout: float = 60.0,
        latency_ms: int = 20,
    ) -> subprocess.Popen[bytes]:
        """Play a WAV file into ``micsrc`` (so the ``mic`` source carries it).

        Returns the ``paplay`` process; with ``wait`` it has finished (bounded by
        ``timeout``).
        """
        proc = subprocess.Popen(
            ["paplay", "--device=micsrc", f"--latency-msec={latency_ms}", str(wav_path)],
            env=self.child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if wait:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"paplay failed ({proc.returncode}): {err.decode().strip()}")
        return proc

    def start_recording(self, device: str = "speaker.monitor", latency_ms: int = 10) -> Recorder:
        """Record ``device`` (default: what the speaker plays) until ``stop()``."""
        return Recorder(self.child_env(), device, SPEAKER_RATE, latency_ms)

    def record_speaker(self, seconds: float) -> tuple[NDArray[np.int16], int]:
        """Record the speaker's monitor for ``seconds``: (int16 samples, rate)."""
        n = round(seconds * SPEAKER_RATE)
        with self.start_recording() as rec:
            rec.wait_for(n, timeout=seconds + 10.0)
            recording = rec.stop()
        return recording.samples[:n], recording.rate

    def portaudio_devices(self) -> list[str]:
        """Device names PortAudio sees in this process (needs :meth:`apply_env` first)."""
        import pyaudio

        from hello_device.audio.alsa_quiet import silence_probe_noise

        silence_probe_noise()
        pa = pyaudio.PyAudio()
        try:
            return [
                str(pa.get_device_info_by_index(i)["name"]) for i in range(pa.get_device_count())
            ]
        finally:
            pa.terminate()


# ---------------------------------------------------------------------- pytest fixture

_shared: SoundServer | None = None
_users = 0
_failure: str | None = None
_lock = threading.Lock()


def _acquire() -> SoundServer:
    global _shared, _users, _failure
    with _lock:
        if _failure is not None:
            raise SoundServerUnavailable(_failure)
        if _shared is None:
            try:
                server = SoundServer.start()
            except SoundServerUnavailable as exc:
                _failure = str(exc)
                raise
            server.apply_env()
            names = server.portaudio_devices()
            if "pulse" not in names:
                server.stop()
                _failure = (
                    "PortAudio does not see the PulseAudio server (no 'pulse' device among "
                    f"{names}): the ALSA pulse plugin is missing: apt install libasound2-plugins"
                )
                raise SoundServerUnavailable(_failure)
            _shared = server
        _users += 1
        return _shared


def _release() -> None:
    global _shared, _users
    with _lock:
        _users -= 1
        if _users <= 0 and _shared is not None:
            _shared.stop()
            _shared = None
            _users = 0


@pytest.fixture(scope="session")
def sound_server() -> Iterator[SoundServer]:
    """A running private PulseAudio server for the whole session (see the module docstring)."""
    try:
        server = _acquire()
    except SoundServerUnavailable as exc:
        if os.environ.get("HELLO_DEVICE_REQUIRE_SOUND", "") not in ("", "0"):
            pytest.fail(f"no sound server (HELLO_DEVICE_REQUIRE_SOUND is set): {exc}")
        pytest.skip(f"no sound server: {exc}")
    try:
        yield server
    finally:
        _release()
