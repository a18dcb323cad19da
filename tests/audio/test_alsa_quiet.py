"""ALSA's and JACK's probe noise goes to the debug log, and standard error stays whole.

Every test runs a fresh interpreter (``python -c``): the hooks are process-wide and set
once, and only a child's file descriptor 2, read through a pipe, shows honestly what
reached standard error. Each hook test has a control run without the hooks, where the
library's message does reach standard error.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hello_device.audio.alsa_quiet import MAX_LOGGED
from tests.conftest import REPO, UNIT


def loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


needs_alsa = pytest.mark.skipif(
    not loadable("libasound.so.2"), reason="libasound.so.2 is not installed (Debian: libasound2)"
)
needs_jack = pytest.mark.skipif(
    not loadable("libjack.so.0"), reason="libjack.so.0 is not installed (Debian: libjack-jackd2-0)"
)


def run_child(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,  # the checkout's hello_device comes first on sys.path
        env=env,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )


# ---------------------------------------------------------------------- ALSA

ALSA_CHILD = """
import atexit, ctypes, logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(levelname)s %(message)s")
from hello_device.audio import alsa_quiet

mode, tries = sys.argv[1], int(sys.argv[2])
lib = ctypes.CDLL("libasound.so.2")
pcm = ctypes.c_void_p()

def provoke():
    rc = lib.snd_pcm_open(ctypes.byref(pcm), b"hello_device_no_such_pcm", 0, 0)
    assert rc < 0, f"snd_pcm_open returned {rc}"

if mode == "exit":  # runs after alsa_quiet's own exit handler (registered later)
    atexit.register(lambda: (print("at exit", file=sys.stderr, flush=True), provoke()))
if mode in ("silenced", "exit"):
    hook = lambda: ctypes.c_void_p.in_dll(lib, "snd_lib_error").value
    default = hook()
    assert alsa_quiet.silence_probe_noise() is True
    ours = hook()
    assert ours != default, "snd_lib_error was not replaced"
    assert alsa_quiet.silence_probe_noise() is True and hook() == ours, "installed twice"
for _ in range(tries):
    provoke()
print("count", alsa_quiet.noise_count())
"""


def child_count(out: str) -> int:
    return int(out.strip().splitlines()[-1].removeprefix("count "))


@needs_alsa
def test_alsa_errors_go_to_the_debug_log_and_not_to_stderr() -> None:
    done = run_child(ALSA_CHILD, "silenced", "1")
    assert done.returncode == 0, done.stderr  # also: a clean exit with the hook installed
    assert done.stderr == ""
    debug = [line for line in done.stdout.splitlines() if line.startswith("DEBUG ALSA ")]
    assert debug and "(snd_pcm_open_noupdate)" in debug[0], done.stdout
    assert "hello_device_no_such_pcm" not in done.stdout  # the format is never expanded
    assert child_count(done.stdout) == len(debug) >= 1


@needs_alsa
def test_control_without_the_hook_alsa_writes_to_stderr() -> None:
    done = run_child(ALSA_CHILD, "control", "1")
    assert done.returncode == 0, done.stderr
    assert "ALSA lib" in done.stderr and "Unknown PCM hello_device_no_such_pcm" in done.stderr
    assert child_count(done.stdout) == 0


@needs_alsa
def test_alsa_gets_its_own_handler_back_at_exit() -> None:
    """So ALSA never calls into a finalising interpreter."""
    done = run_child(ALSA_CHILD, "exit", "1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("at exit\n"), done.stderr  # nothing before
    assert "Unknown PCM hello_device_no_such_pcm" in done.stderr
    assert child_count(done.stdout) == 1


@needs_alsa
def test_alsa_debug_log_is_bounded_then_counted() -> None:
    tries = 3 * MAX_LOGGED
    done = run_child(ALSA_CHILD, "silenced", str(tries))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert sum(line.startswith("DEBUG ALSA ") for line in lines) == MAX_LOGGED
    assert sum("only counted" in line for line in lines) == 1
    assert child_count(done.stdout) >= tries
    assert not any(line.startswith(("INFO", "WARNING", "ERROR")) for line in lines)


# ---------------------------------------------------------------------- JACK

JACK_CHILD = """
import ctypes, logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(levelname)s %(message)s")
from hello_device.audio import alsa_quiet

if sys.argv[1] == "silenced":
    assert alsa_quiet.silence_probe_noise() is True
lib = ctypes.CDLL("libjack.so.0")
lib.jack_client_open.restype = ctypes.c_void_p
lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
status = ctypes.c_int()
client = lib.jack_client_open(b"hello-device-test", 0x01, ctypes.byref(status))  # JackNoStartServer
assert client is None, "a JACK server answered"
print("count", alsa_quiet.noise_count())
"""


def jack_env() -> dict[str, str]:
    return {
        **os.environ,
        "JACK_DEFAULT_SERVER": "hello_device_no_such_server",
        "JACK_NO_START_SERVER": "1",
    }


@needs_jack
@pytest.mark.parametrize("mode", ["silenced", "control"])
def test_jack_errors_go_to_the_debug_log_and_not_to_stderr(mode: str) -> None:
    done = run_child(JACK_CHILD, mode, env=jack_env())
    assert done.returncode == 0, done.stderr
    if mode == "control":
        assert "server" in done.stderr, "libjack printed nothing: the test proves nothing"
        assert child_count(done.stdout) == 0
        return
    assert done.stderr == ""
    assert "DEBUG JACK" in done.stdout and "server" in done.stdout
    assert child_count(done.stdout) >= 1


# ---------------------------------------------------------------------- no libraries

ABSENT_CHILD = """
import ctypes, ctypes.util, sys

def missing(*args, **kwargs):
    raise OSError("not here")

ctypes.CDLL = missing
ctypes.util.find_library = lambda name: None
from hello_device.audio import alsa_quiet

assert alsa_quiet.silence_probe_noise() is False
assert alsa_quiet.silence_probe_noise() is False
print("ok")
"""


def test_without_the_libraries_nothing_happens() -> None:
    done = run_child(ABSENT_CHILD)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


# ---------------------------------------------------------------------- the old bug

PROBE_CHILD = r"""
import argparse, asyncio, contextlib, io, json, logging, select, sys, threading

from hello_device.cli import audio
from hello_device.audio.player import Player
from hello_device.audio.backends.pyaudio import PyAudioBackend
from hello_device.settings import AudioSettings

mode, config, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(threadName)s: %(message)s")
in_probe, seen = threading.Event(), threading.Event()
result = {"hook_fired": False, "acked_in_probe": False}


class InsideTheProbe(logging.Handler):
    # Called from ALSA's error hook, so from inside PortAudio's device probe: hold the
    # probe there until the parent has read the other thread's line on stderr.
    def emit(self, record):
        if in_probe.is_set() or not record.getMessage().startswith(("ALSA ", "JACK")):
            return
        result["hook_fired"] = True
        result["probe_thread"] = threading.current_thread().name
        in_probe.set()
        result["acked_in_probe"] = seen.wait(timeout)


quiet = logging.getLogger("hello_device.audio.alsa_quiet")
quiet.setLevel(logging.DEBUG)
quiet.propagate = False
quiet.addHandler(InsideTheProbe())


def other_thread():
    in_probe.wait(timeout)
    logging.getLogger("other").warning("MARKER from another thread")
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if ready and sys.stdin.readline().strip() == "seen":
        seen.set()


async def daemon():
    loop = asyncio.get_running_loop()
    first = loop.create_future()

    def on_status(problem):
        if not first.done():
            first.set_result(problem)

    backend = PyAudioBackend(AudioSettings(), Player())
    task = asyncio.create_task(backend.run(lambda frame: None, on_status))
    result["status"] = await asyncio.wait_for(first, 2 * timeout)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


writer = threading.Thread(target=other_thread, name="writer")
writer.start()
if mode == "devices":
    audio.cmd_devices(argparse.Namespace(config=config), out=io.StringIO())
else:
    asyncio.run(daemon())
in_probe.set()  # ALSA had nothing to say: let the writer finish anyway
writer.join(2 * timeout)
print(json.dumps(result))
"""


@pytest.mark.parametrize("mode", ["devices", "daemon"])
def test_other_threads_stderr_reaches_the_terminal_while_portaudio_probes(
    mode: str, tmp_path: Path
) -> None:
    """A line another thread logs while PortAudio probes is on stderr at once.

    The child holds the probe inside ALSA's error hook (PortAudio's initialisation, in
    the ``devices`` command or the daemon's worker thread) until this test has read the
    other thread's marker from the child's real standard error. When standard error was
    redirected for the probe, the marker only came out afterwards.
    """
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nagent_id = "test-agent"\n\n[audio]\nbackend = "pyaudio"\n')
    wait_s = 10 * UNIT
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE_CHILD, mode, str(config), str(wait_s)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    err: list[str] = []
    marker_or_eof = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err.append(line)
            if "MARKER" in line:
                marker_or_eof.set()
        marker_or_eof.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert marker_or_eof.wait(3 * wait_s), f"the child hung; stderr so far:\n{''.join(err)}"
        with contextlib.suppress(BrokenPipeError):  # the child may be gone already
            proc.stdin.write("seen\n")
            proc.stdin.close()
        proc.wait(timeout=3 * wait_s)
        reader.join(timeout=wait_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(err)
    out = proc.stdout.read()
    assert proc.returncode == 0, stderr
    assert "ALSA lib" not in stderr and "jack server" not in stderr, stderr
    assert [line for line in err if "MARKER" in line] == ["writer: MARKER from another thread\n"]
    result = json.loads(out.strip().splitlines()[-1])
    if not result["hook_fired"]:
        pytest.skip("ALSA and JACK reported nothing while PortAudio probed on this host")
    assert result["probe_thread"] == (
        "MainThread" if mode == "devices" else "hello-device-portaudio"
    )
    assert result["acked_in_probe"], "the marker reached stderr only after the probe"
