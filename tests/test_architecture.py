"""The shape of the code, enforced: a pure core, and modules of a readable size.

- ``hello_device/core`` imports nothing that does I/O, directly (no asyncio, socket,
  threading, time, websockets, pyaudio, gpiozero, subprocess, ...) or through anything it
  imports (checked in a fresh interpreter: importing any core module loads none of them;
  ``threading`` and ``time`` come with ``logging`` and are allowed only that way);
- core imports only core, ``errors`` and ``settings.schema`` of the package;
- no module of the package is longer than :data:`MAX_LINES`, no test file than
  :data:`MAX_TEST_LINES`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "hello_device"
CORE = PACKAGE / "core"
MAX_LINES = 450
"""Hard cap; the aim is ~400 (a module past it is split along its seams)."""
MAX_TEST_LINES = 650
"""Hard cap for a test file; the aim is ~600."""

DIRECT_IO = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "threading",
    "time",
    "subprocess",
    "multiprocessing",
    "http",
    "urllib.request",
    "websockets",
    "pyaudio",
    "gpiozero",
    "numpy",
    "soxr",
    "os",
    "shutil",
    "signal",
}
"""Never imported by a core module itself (``numpy`` and ``soxr`` too: the core stays
light for the small board; a level falls back to numpy only where audioop is missing,
and imports it then)."""
LOADED_IO = DIRECT_IO - {"threading", "os", "time"}
"""Never loaded at all by importing a core module (``logging`` brings threading and
time, many modules bring os)."""
CORE_MAY_IMPORT = ("hello_device.core", "hello_device.errors", "hello_device.settings")


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """Every module a file imports at its top level (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", core_modules(), ids=module_name)
def test_core_module_imports_no_io(path: Path) -> None:
    imports = top_level_imports(path)
    io = {name for name in imports if name in DIRECT_IO or name.split(".")[0] in DIRECT_IO}
    assert not io, f"{module_name(path)} imports {sorted(io)}"
    ours = {name for name in imports if name.startswith("hello_device")}
    foreign = {name for name in ours if not name.startswith(CORE_MAY_IMPORT)}
    assert not foreign, f"{module_name(path)} imports {sorted(foreign)} (core imports core)"
    settings = {name for name in ours if name.startswith("hello_device.settings")}
    assert settings <= {"hello_device.settings", "hello_device.settings.schema"}


def test_importing_the_core_loads_no_io_module() -> None:
    modules = [module_name(p) for p in core_modules()]
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    io = sorted(m for m in loaded if m in LOADED_IO or m.split(".")[0] in LOADED_IO)
    assert not io, f"importing the core loads {io}"


def test_the_16_khz_daemon_path_loads_no_numpy() -> None:
    """A Pi Zero 2 W has 512 MB: numpy (~15 MB) is loaded only where rates differ."""
    probe = (
        "import json, sys\n"
        "import hello_device.cli.run, hello_device.daemon, hello_device.audio.backends.file\n"
        "from hello_device.audio.convert import AgentDecoder, CaptureConverter, MicEncoder\n"
        "from hello_device.audio.earcons import earcon\n"
        "from hello_device.audio.player import Player\n"
        "from hello_device.core.formats import AudioFormat\n"
        "pcm = AudioFormat.parse('pcm_16000')\n"
        "p = Player(16000)\n"
        "p.push(AgentDecoder(pcm, 16000).decode(b'\\x01\\x00' * 800))\n"
        "p.push(earcon('listen', 16000, 0.5))\n"
        "p.read(320); p.flush(); p.read(320)\n"
        "CaptureConverter(16000, 1, 'mix', 20).feed(bytes(1000))\n"
        "MicEncoder(pcm).encode(bytes(640))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'soxr'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_test_file_is_too_long() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / "tests").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_TEST_LINES
    }
    assert not long, f"test files over {MAX_TEST_LINES} lines: {long}"
