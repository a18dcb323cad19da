"""Packaging: a regular (non-editable) install holds every file the program reads.

An editable install reads the source tree, so it never shows a data file that the wheel
leaves out. These tests build the wheel the way ``pip install .`` does (offline: the
build backend is the one installed with the test tools, no build isolation), list it,
and install it into a fresh virtual environment to run ``hello-device demo`` from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, UNIT

PACKAGE = REPO / "hello_device"

RUNTIME_DATA = ("py.typed", "examples/demo.toml", "examples/hello.wav")
"""What the program opens at run time besides its modules (``hello-device demo`` reads
both examples through importlib.resources; py.typed is for type checkers)."""

IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def package_files() -> list[str]:
    """Every file under hello_device/ (byte-code aside), relative to it, POSIX-style."""
    return sorted(
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _env() -> dict[str, str]:
    """This environment without anything that would point Python at the source tree."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` would build from this checkout.

    Built from a copy of the tree, so a stale build/ folder in the checkout can neither
    add files to it nor be left behind by it.
    """
    import setuptools

    major = int(setuptools.__version__.split(".")[0])
    if major < 77:
        pytest.fail(
            f"setuptools {setuptools.__version__} cannot build hello-device (PEP 639 license "
            "needs setuptools>=77): pip install -e '.[test]'"
        )
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for p in REPO.iterdir():
        if p.is_file():
            shutil.copy2(p, src / p.name)
    shutil.copytree(PACKAGE, src / PACKAGE.name, ignore=IGNORED)
    out = root / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(src)]
    build = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120 * UNIT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert build.returncode == 0, f"wheel build failed:\n{build.stdout}\n{build.stderr}"
    (built,) = out.glob("hello_device-*.whl")
    return built


def test_the_package_has_the_runtime_data_files() -> None:
    # If one of these moves, RUNTIME_DATA and the code that opens it move together.
    files = package_files()
    assert [f for f in RUNTIME_DATA if f not in files] == []


def test_wheel_ships_every_file_of_the_package(wheel: Path) -> None:
    """Not just the modules: any data file added under hello_device/ must be shipped
    (a package-data rule in pyproject.toml) or is not a file the package should hold."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [f for f in package_files() if f"hello_device/{f}" not in names]
    assert missing == [], f"not in {wheel.name}; add to [tool.setuptools.package-data]"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_ships_the_runtime_data_byte_for_byte(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        for name in RUNTIME_DATA:
            assert z.read(f"hello_device/{name}") == (PACKAGE / name).read_bytes(), name
        entry_points = z.read(
            next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        ).decode()
    assert "hello-device = hello_device.cli:main" in entry_points


@pytest.mark.slow
def test_demo_runs_from_a_regular_install(wheel: Path, tmp_path: Path) -> None:
    """``pip install`` the wheel into a fresh virtual environment and run its
    ``hello-device demo`` with the bundled recording: a transcript and exit 0.

    The runtime dependencies (numpy, websockets, soxr, ...) come from this test
    environment through a plain path in a .pth file, so nothing is downloaded. A plain
    path does not run the .pth files found there, so the editable install of this
    checkout stays inert; the test checks hello_device is imported from the new
    environment.
    """
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        env=_env(),
        check=True,
    ).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "test-deps.pth").write_text("".join(f"{d}\n" for d in deps))

    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    command += ["--no-index", "--disable-pip-version-check", "-q", str(wheel)]
    install = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120 * UNIT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert install.returncode == 0, f"{install.stdout}\n{install.stderr}"

    work = tmp_path / "work"  # not the checkout: nothing in the current folder to import
    work.mkdir()
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import hello_device; from importlib import resources; "
            "ex = resources.files('hello_device') / 'examples'; "
            "print(hello_device.__file__); "
            "print((ex / 'hello.wav').is_file(), (ex / 'demo.toml').is_file())",
        ],
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        env=_env(),
        cwd=work,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    where, found = probe.stdout.splitlines()
    assert Path(where).is_relative_to(Path(site)), where
    assert found == "True True"

    demo = subprocess.run(
        [str(env_dir / "bin" / "hello-device"), "demo", "--output", str(work / "out.wav")],
        capture_output=True,
        text=True,
        timeout=120 * UNIT,
        env=_env(),
        cwd=work,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "user: (" in demo.stdout and "agent: You said" in demo.stdout, demo.stdout
    assert (work / "out.wav").stat().st_size > 44
