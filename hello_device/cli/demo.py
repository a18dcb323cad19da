"""``hello-device demo``: one conversation with the local emulator, over WAV files.

The emulator starts in this process, the daemon runs with the ``file`` audio backend on
a recorded question (the bundled ``examples/hello.wav`` by default), the transcript is
printed and what the device played is written to ``--output``. Exit 0 only when that
conversation really happened; otherwise 1, with one ``hello-device demo: ...`` line on
stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import tempfile
from importlib import resources
from pathlib import Path

from hello_device.cli.common import EXIT_FATAL, EXIT_OK, SubParsers

__all__ = ["cmd_demo", "register"]


def register(sub: SubParsers) -> None:
    """Add ``demo``."""
    p = sub.add_parser(
        "demo",
        help="a headless conversation with the local emulator, over WAV files",
        description="Start the emulator, run the daemon with the file audio backend on a "
        "recorded question, print the transcript, and write what the device played.",
    )
    p.add_argument("--input", metavar="WAV", help="the microphone recording (default: bundled)")
    p.add_argument(
        "--output", metavar="WAV", default="demo-output.wav", help="what the loudspeaker plays"
    )
    p.add_argument("--format", default="pcm_16000", help="agent audio format the emulator uses")
    p.set_defaults(func=cmd_demo)


def _demo_fail(message: str) -> int:
    """The demo's one line on stderr when it could not hold its conversation; exit 1."""
    print(f"hello-device demo: {message}", file=sys.stderr)
    return EXIT_FATAL


def _unreadable(path: str) -> str | None:
    """Why the WAV file at ``path`` cannot be the demo's input, or None if it can."""
    from hello_device.audio.wav import read_wav

    try:
        samples, _ = read_wav(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:
        # read_wav names the file first; the caller names it already.
        return str(exc).removeprefix(f"{Path(path)}: ")
    if samples.size == 0:
        return "the WAV file holds no audio"
    return None


def _unwritable(path: str) -> str | None:
    """Why the demo cannot write its output WAV at ``path``, or None if it can.

    Checked up front: the daemon does not survive an output it cannot create (it waits
    for the sound card for ever).
    """
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except FileExistsError:
        return f"{folder} is a file, not a folder"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """One conversation with the local emulator over files; 0 only if it really happened.

    Exit 1, with one line on stderr naming the file, when the input recording cannot be
    read or the output cannot be written, when no audio of the input reached the
    emulator, or when no transcript came back.
    """
    from hello_device.daemon import Daemon
    from hello_device.emulator import Emulator, EmulatorConfig
    from hello_device.logs import setup_logging
    from hello_device.platform.proxy import exempt_from_proxy
    from hello_device.settings import load_settings

    examples = resources.files("hello_device") / "examples"
    with contextlib.ExitStack() as files:
        demo_toml = files.enter_context(resources.as_file(examples / "demo.toml"))
        if args.input:
            input_file = args.input
        else:
            input_file = str(files.enter_context(resources.as_file(examples / "hello.wav")))
        problem = _unreadable(input_file)
        if problem is not None:
            if not args.input:
                problem += " (the recording that comes with hello-device is missing: reinstall it)"
            return _demo_fail(f"cannot read the input recording {input_file}: {problem}")
        output_file = str(Path(args.output).resolve())
        problem = _unwritable(output_file)
        if problem is not None:
            return _demo_fail(f"cannot write the output recording {output_file}: {problem}")
        settings = load_settings(str(demo_toml), env={})
        setup_logging(args.log_level or "INFO", "stderr")

        async def go() -> tuple[int, Daemon, Emulator]:
            config = EmulatorConfig(agent_id=settings.platform.agent_id, output_format=args.format)
            async with Emulator(config) as emu:
                # The emulator is in this process, on loopback, where a proxy from the
                # environment (HTTPS_PROXY) cannot reach it: REST and the conversation skip it.
                exempt_from_proxy(emu.host)
                with tempfile.TemporaryDirectory(prefix="hello-device-demo-") as state:
                    s = dataclasses.replace(
                        settings,
                        platform=dataclasses.replace(settings.platform, api_base_url=emu.http_url),
                        audio=dataclasses.replace(
                            settings.audio, input_file=input_file, output_file=output_file
                        ),
                        state=dataclasses.replace(settings.state, dir=state),
                    )
                    daemon = Daemon(s)
                    code = await daemon.run()
            return code, daemon, emu

        code, daemon, emu = asyncio.run(go())

    lines = [line for session in daemon.sessions for line in session.transcript]
    if lines:
        print("\nTranscript:")
        for speaker, text in lines:
            print(f"  {speaker:>5}: {text}")
    if Path(output_file).is_file():
        print(f"\nThe device's loudspeaker output is in {output_file}")
    if code != 0:
        return _demo_fail(f"the daemon stopped with exit code {code} (see the log above)")
    sent_s = sum(record.user_audio_s for record in emu.conversations)
    if sent_s == 0:
        return _demo_fail(f"no audio from {input_file} reached the emulator (see the log above)")
    speakers = {speaker for speaker, _ in lines}
    if "user" not in speakers:
        return _demo_fail(
            f"the emulator heard no speech in {input_file} ({sent_s:.1f} s of audio sent); "
            "no transcript came back"
        )
    if "agent" not in speakers:
        return _demo_fail(f"the agent did not answer what it heard in {input_file}")
    return EXIT_OK
