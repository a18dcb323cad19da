"""``hello-device emulator``: arguments, configuration, and serving until a signal."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from hello_device.core.formats import AUDIO_FORMATS
from hello_device.core.urls import is_loopback_host
from hello_device.emulator.config import DIALECTS, LIST_STYLES, SIGNED_URL_FORMS, EmulatorConfig
from hello_device.emulator.rest import _host_port
from hello_device.emulator.server import Emulator

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# CLI: hello-device emulator
# ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hello-device emulator``."""
    defaults = EmulatorConfig()
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", type=int, default=8765, help="port (default: 8765; 0 = pick a free one)")
    add(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the conversation socket has no authentication)",
    )
    add("--agent-id", default=defaults.agent_id, help="agent id (default: %(default)s)")
    add("--private", action="store_true", help="require a signed URL for the conversation")
    add("--api-key-env", metavar="VAR", help="require the API key held in this variable")
    add("--input-format", choices=AUDIO_FORMATS, default=defaults.input_format)
    add("--output-format", choices=AUDIO_FORMATS, default=defaults.output_format)
    add("--first-message", metavar="TEXT", help="greeting the agent says first")
    add("--first-message-audio", metavar="WAV", help="audio of the greeting")
    add("--reply", default="parrot", metavar="parrot|WAV", help="parrot, or a WAV to play")
    add("--ping-interval", type=float, default=defaults.ping_interval_s, metavar="S")
    add("--no-interruption", action="store_true", help="never send interruption")
    add("--tool-call", metavar="NAME[:JSON]", help="client tool to call after the first turn")
    add("--dialect", choices=DIALECTS, default=defaults.dialect)
    add("--max-duration", type=float, default=0.0, metavar="S", help="close 1000 after S s")
    add("--signed-url-form", choices=SIGNED_URL_FORMS, default=defaults.signed_url_form)
    add("--send-speed", type=float, default=defaults.send_speed, metavar="X")
    add("--end-silence-ms", type=int, default=defaults.end_silence_ms, metavar="MS")
    add("--language", default=defaults.language)
    add("--strict", action="store_true", help="close 1008 on malformed client messages")
    add(
        "--extra-agents",
        type=int,
        default=0,
        metavar="N",
        help="list N more agents (agent_extra_001…, 'Lobby kiosk 1'…; every third private)",
    )
    add(
        "--list-style",
        choices=LIST_STYLES,
        default=defaults.list_style,
        help="agents list paging: cursor (next_cursor) or page (page/page_size, "
        "data+pagination) (default: %(default)s)",
    )
    add(
        "--declared-tool-call",
        metavar="NAME[:JSON]",
        help="call this tool after the first reply, only if a tool of that name was "
        "declared (POST /v1/convai/tools) and attached to the agent (tool_ids)",
    )
    add(
        "--tool-call-after-silence",
        type=float,
        default=0.0,
        metavar="S",
        help="call the --declared-tool-call after S seconds without user speech once the "
        "agent has finished speaking, instead of after the first reply",
    )


def _parse_tool_call(spec: str, option: str = "--tool-call") -> tuple[str, dict[str, Any]]:
    name, sep, params = spec.partition(":")
    if not name:
        raise ValueError(f"{option} needs a tool name")
    if not sep:
        return name, {}
    try:
        value = json.loads(params)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} parameters are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} parameters must be a JSON object")
    return name, value


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """Build (and validate) the configuration; :class:`ValueError` says what is wrong."""
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(f"environment variable {args.api_key_env} is not set")
    tool_call = _parse_tool_call(args.tool_call) if args.tool_call else None
    declared: str | None = None
    declared_params: dict[str, Any] = {}
    if args.declared_tool_call:
        declared, declared_params = _parse_tool_call(
            args.declared_tool_call, "--declared-tool-call"
        )
    elif args.tool_call_after_silence:
        raise ValueError("--tool-call-after-silence needs --declared-tool-call")
    cfg = EmulatorConfig(
        agent_id=args.agent_id,
        private=args.private,
        api_key=api_key,
        input_format=args.input_format,
        output_format=args.output_format,
        first_message=args.first_message,
        first_message_audio=args.first_message_audio,
        reply=args.reply,
        ping_interval_s=args.ping_interval,
        interruptions=not args.no_interruption,
        tool_call=tool_call,
        dialect=args.dialect,
        max_duration_s=args.max_duration,
        signed_url_form=args.signed_url_form,
        send_speed=args.send_speed,
        end_silence_ms=args.end_silence_ms,
        language=args.language,
        strict=args.strict,
        extra_agents=args.extra_agents,
        list_style=args.list_style,
        declared_tool_call=declared,
        declared_tool_parameters=declared_params,
        declared_tool_after_silence_s=args.tool_call_after_silence,
    )
    cfg.validate()
    return cfg


async def _serve_until_signal(cfg: EmulatorConfig, host: str, port: int) -> int:
    emulator = Emulator(cfg, host, port)
    try:
        await emulator.start()
    except OSError as exc:
        print(f"error: cannot listen on {_host_port(host, port)}: {exc}", file=sys.stderr)
        return 1
    print(f"emulator listening on {emulator.http_url} (agent {cfg.agent_id})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await emulator.stop()
    return 0


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hello-device emulator`` until SIGINT/SIGTERM; exit code 0, or 2 on bad options."""
    if not is_loopback_host(args.host) and not args.allow_remote:
        print(
            f"error: --host {args.host} is not a loopback address; the emulator has no "
            "authentication on its conversation socket (add --allow-remote to do it anyway)",
            file=sys.stderr,
        )
        return 2
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:  # run outside the CLI's logging setup
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return asyncio.run(_serve_until_signal(cfg, args.host, args.port))
