"""``hello-device setup``: the technician's wizard (and the same with flags, for Ansible).

On a terminal it asks, with the current values as defaults; with ``--yes`` (or without a
terminal) it asks nothing and changes only what the flags give. Then it writes the key
and the configuration (:mod:`hello_device.provision.wizard`), runs ``doctor``, and offers
to restart the service.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import getpass
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hello_device.cli.common import EXIT_OK, SubParsers, add_config_arg
from hello_device.provision.wizard import (
    LISTED_AGENTS,
    TRIGGERS,
    Answers,
    Prompts,
    collect,
    read_current,
    write,
)

DEVICE_LIST_TIMEOUT_S = 10.0


def register(sub: SubParsers) -> None:
    """Add ``setup``."""
    p = sub.add_parser(
        "setup",
        help="set the device up: agent, API key, sound devices, trigger, pins (run as root)",
        description="Ask for the agent, the API key (hidden), the microphone and "
        "loudspeaker, the trigger and the GPIO pins, with the current values as defaults; "
        "write the key (0600) and the configuration (checked first), run doctor, and offer "
        "to restart the service. With --yes nothing is asked: only the flags given change.",
    )
    add_config_arg(p)
    p.add_argument("--agent-id", help="the platform's agent id")
    p.add_argument("--api-base-url", help="the platform's management API (default: ElevenLabs)")
    p.add_argument(
        "--api-key-file",
        metavar="PATH|-",
        help="read the API key from this file, or from standard input with '-'",
    )
    p.add_argument("--input-device", help="microphone: name (or part of it), index or default")
    p.add_argument("--output-device", help="loudspeaker: name (or part of it), index or default")
    p.add_argument("--trigger", choices=TRIGGERS, help="what starts a conversation")
    p.add_argument(
        "--wake-word",
        metavar="MODEL",
        help="with --trigger wake_word: okay_nabu, alexa, hey_jarvis, hey_mycroft or a .json",
    )
    p.add_argument("--button-pin", type=int, metavar="BCM", help="the button's GPIO pin")
    p.add_argument(
        "--led-pins", metavar="BCM,...", help="status LED pins (comma-separated; '' for none)"
    )
    p.add_argument("--yes", "-y", action="store_true", help="ask nothing; restart the service")
    p.add_argument("--no-doctor", action="store_true", help="do not run doctor afterwards")
    p.add_argument("--skip-network", action="store_true", help="doctor: skip the network")
    p.add_argument("--skip-audio", action="store_true", help="doctor: skip the sound card")
    p.add_argument("--no-restart", action="store_true", help="do not restart the service")
    p.set_defaults(func=cmd_setup)


def cmd_setup(args: argparse.Namespace) -> int:
    """``hello-device setup``."""
    config_path = Path(args.config)
    given = Answers(
        agent_id=args.agent_id,
        api_base_url=args.api_base_url,
        api_key=_read_key(args.api_key_file),
        input_device=args.input_device,
        output_device=args.output_device,
        trigger=args.trigger,
        wake_model=args.wake_word,
        button_pin=args.button_pin,
        led_pins=None
        if args.led_pins is None
        else [int(x) for x in args.led_pins.split(",") if x.strip()],
    )
    interactive = not args.yes and sys.stdin.isatty()
    prompts = Prompts(ask=input, ask_secret=getpass.getpass, say=print) if interactive else None
    current = read_current(config_path)
    pick_devices = args.input_device is None or args.output_device is None
    devices = _device_lines() if interactive and pick_devices else []
    base_url = args.api_base_url or current.get("platform", {}).get("api_base_url")
    search = functools.partial(_search_agents, base_url, config_path)
    answers = collect(current, given, prompts, devices, search)
    _, done = write(config_path, current, answers)
    for line in done:
        print(line)
    if interactive and input(
        "Test the microphone and loudspeaker now (level meter, then a tone)? [y/N]: "
    ).strip().lower() in ("y", "yes"):
        from hello_device.cli.audio import cmd_audio_test

        cmd_audio_test(argparse.Namespace(config=str(config_path), seconds=4.0))
    code = EXIT_OK
    if not args.no_doctor:
        from hello_device.doctor import run_doctor

        print()
        code = run_doctor(
            str(config_path), skip_network=args.skip_network, skip_audio=args.skip_audio
        )
    if not args.no_restart:
        _offer_restart(args.yes, interactive)
    return code


def _search_agents(
    base_url: str | None, config_path: Path, word: str, key: str | None
) -> list[tuple[str, str]]:
    """The platform's agents whose name holds ``word`` (with the key typed now, else the
    configuration's)."""
    import asyncio

    from hello_device.platform.client import PlatformClient
    from hello_device.platform.management import ManagementApi
    from hello_device.settings import PlatformSettings, Secret, load_settings

    if key is None and config_path.exists():
        with contextlib.suppress(Exception):
            current = load_settings(config_path).platform.api_key
            key = current.reveal() if current is not None else None
    fields: dict[str, Any] = {"agent_id": "setup", "api_key": Secret(key) if key else None}
    if base_url:
        fields["api_base_url"] = base_url
    api = ManagementApi(PlatformClient(PlatformSettings(**fields), max_attempts=2))
    found = asyncio.run(api.agents(word, limit=LISTED_AGENTS))
    return [(agent.agent_id, agent.name) for agent in found]


def _read_key(source: str | None) -> str | None:
    if source is None:
        return None
    text = sys.stdin.readline() if source == "-" else Path(source).read_text(encoding="utf-8")
    return text.strip() or None


def _device_lines() -> list[str]:
    """``index: name (in/out)`` of every sound device PortAudio finds (bounded)."""
    from hello_device.aio import call_in_daemon_thread
    from hello_device.audio.alsa_quiet import silence_probe_noise
    from hello_device.audio.devices import list_devices

    def probe() -> list[str]:
        import pyaudio

        silence_probe_noise()
        pa = pyaudio.PyAudio()
        try:
            found = list_devices(pa, probe_rates=False)
        finally:
            pa.terminate()
        return [
            f"{d.index}: {d.name} ({d.max_input_channels} in, {d.max_output_channels} out)"
            for d in found
        ]

    try:
        return call_in_daemon_thread(probe, DEVICE_LIST_TIMEOUT_S, name="setup-devices")
    except Exception as exc:  # no PortAudio, no sound card: the names can still be typed
        return [f"(could not list the sound devices: {exc})"]


def _offer_restart(yes: bool, interactive: bool) -> None:
    systemctl = shutil.which("systemctl")
    if systemctl is None or not Path("/run/systemd/system").is_dir():
        print("start the service with: sudo systemctl enable --now hello-device")
        return
    declined = not yes and (
        not interactive or input("Restart hello-device now? [Y/n]: ").strip().lower() in ("n", "no")
    )
    if declined:
        print("restart it when ready: sudo systemctl restart hello-device")
        return
    result = subprocess.run(
        [systemctl, "restart", "hello-device"], capture_output=True, text=True, check=False
    )
    print(
        "hello-device restarted"
        if result.returncode == 0
        else f"restart failed: {result.stderr.strip()}"
    )
