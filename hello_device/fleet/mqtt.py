"""The device on an MQTT broker (aiomqtt on paho-mqtt 2; imported only when
``[mqtt] url`` is set).

- ``<prefix>/availability``: ``online`` / ``offline``, retained; ``offline`` is also the
  last will, so a dead or unplugged device shows as unavailable;
- ``<prefix>/state``: the local API's snapshot (plus ``conversations_today``), retained,
  on every change;
- ``<prefix>/event``: the local API's events, not retained (transcripts only with
  ``publish_transcripts``);
- ``<prefix>/command/<name>`` (JSON arguments): the local API's commands, same checks,
  same code path; answered on ``<prefix>/command/<name>/result``; Home Assistant's
  switch and number send ``ON``/``OFF`` and a number to ``<prefix>/ha/{mute,volume}/set``;
- Home Assistant discovery, re-published when ``<discovery>/status`` says ``online``.

The bridge reads the daemon's events like any local API client (a bounded queue): the
conversation path never waits for the broker. A broker down, restarting or refusing
the password is one log line per change of state, and a reconnection per backoff step.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import random
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiomqtt

from hello_device.aio import first_of
from hello_device.core.backoff import Backoff
from hello_device.fleet.discovery import discovery_messages, topics
from hello_device.local_api.commands import CommandError, parse_command
from hello_device.local_api.hub import EventHub, Subscriber
from hello_device.settings import Settings

if TYPE_CHECKING:
    from hello_device.local_api.server import ApiTarget

log = logging.getLogger(__name__)

STATE_EVENTS = frozenset(
    {"state", "muted", "volume", "conversation_started", "conversation_ended", "error"}
)
TRANSCRIPT_EVENTS = frozenset({"user_transcript", "agent_response", "agent_response_correction"})
MAX_BACKOFF_S = 60.0


class MqttBridge:
    """Runs until ``stop`` is set; see the module docstring."""

    def __init__(self, target: ApiTarget, hub: EventHub, settings: Settings) -> None:
        self.target = target
        self.hub = hub
        self.settings = settings
        m = settings.mqtt
        assert m.url is not None
        url = urlsplit(m.url)
        self.host = url.hostname or "localhost"
        self.tls = url.scheme == "mqtts"
        self.port = url.port or (8883 if self.tls else 1883)
        self.prefix = m.topic_prefix or f"hello-device/{settings.device.id}"
        self.topics = topics(self.prefix)
        self.connected = asyncio.Event()
        """Set while connected (for tests and benchmarks)."""
        self._today = (datetime.date.today(), 0)
        self._texts = {"user": "", "agent": ""}
        self._problem: str | None = None

    def _password(self) -> str | None:
        path = self.settings.mqtt.password_file
        return Path(path).read_text(encoding="utf-8").strip() if path else None

    def _client(self) -> aiomqtt.Client:
        m = self.settings.mqtt
        tls = None
        if self.tls:
            tls = ssl.create_default_context(cafile=m.tls_ca_file)
        return aiomqtt.Client(
            self.host,
            self.port,
            username=m.username,
            password=self._password(),
            identifier=m.client_id or self.settings.device.id,
            keepalive=m.keepalive_s,
            will=aiomqtt.Will(self.topics["availability"], "offline", qos=1, retain=True),
            tls_context=tls,
            timeout=10.0,
            # small messages, sent at once (Nagle's algorithm would hold some 40 ms)
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def run(self, stop: asyncio.Event, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        attempt = 0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    attempt = 0
                    self._say(None, f"MQTT connected to {self.host}:{self.port} as {self.prefix}")
                    self.connected.set()
                    try:
                        await self._session(client, stop)
                    finally:
                        self.connected.clear()
            except aiomqtt.MqttError as exc:
                self._say(str(exc), f"MQTT {self.host}:{self.port} unavailable: {exc}")
            except OSError as exc:  # the password file went away, say
                self._say(str(exc), f"MQTT: {exc}")
            if stop.is_set():
                return
            attempt += 1
            await first_of(stop.wait(), timeout=Backoff(MAX_BACKOFF_S).delay(attempt, rng))

    def _say(self, problem: str | None, line: str) -> None:
        """One log line per change of state (never one per retry)."""
        if problem == self._problem and problem is not None:
            return
        if problem is None:
            log.info("%s", line)
        else:
            log.warning("%s; retrying with backoff", line)
        self._problem = problem

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        t = self.topics
        await client.publish(t["availability"], "online", qos=1, retain=True)
        await self._publish_discovery(client)
        await self._publish_state(client)
        await client.subscribe(f"{t['command']}/+", qos=1)
        await client.subscribe(f"{self.prefix}/ha/+/set", qos=1)
        if self.settings.mqtt.discovery_prefix:
            await client.subscribe(f"{self.settings.mqtt.discovery_prefix}/status", qos=1)
        subscriber = self.hub.subscribe()
        tasks = [
            asyncio.create_task(self._forward(client, subscriber)),
            asyncio.create_task(self._commands(client)),
        ]
        try:
            await first_of(stop.wait(), *tasks)
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if stop.is_set():  # a clean goodbye; the will covers the other cases
                await client.publish(t["availability"], "offline", qos=1, retain=True)
        finally:
            self.hub.unsubscribe(subscriber)
            for task in tasks:
                task.cancel()

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        m, d = self.settings.mqtt, self.settings.device
        if not m.publish_transcripts:  # no old words left on the broker
            await client.publish(self.topics["transcript"], "", qos=1, retain=True)
        if not m.discovery_prefix:
            return
        for topic, payload in discovery_messages(
            m.discovery_prefix, self.prefix, d.id, d.name, m.publish_transcripts
        ):
            body = "" if payload is None else json.dumps(payload)  # "": remove the entity
            await client.publish(topic, body, qos=1, retain=True)

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        if self._today[0] != datetime.date.today():
            self._today = (datetime.date.today(), 0)
        state = {**self.target.api_snapshot(), "conversations_today": self._today[1]}
        await client.publish(
            self.topics["state"], self.hub.scrub(json.dumps(state)), qos=1, retain=True
        )

    async def _forward(self, client: aiomqtt.Client, subscriber: Subscriber) -> None:
        transcripts = self.settings.mqtt.publish_transcripts
        while True:
            text = await subscriber.get()
            event = json.loads(text)
            kind = event.get("type")
            if kind == "conversation_started":
                day, count = self._today
                self._today = (day, count + 1) if day == datetime.date.today() else (
                    datetime.date.today(), 1)  # fmt: skip
            if kind in TRANSCRIPT_EVENTS:
                if not transcripts:
                    continue
                who = "user" if kind == "user_transcript" else "agent"
                self._texts[who] = str(event.get("text", event.get("corrected", "")))[:255]
                await client.publish(
                    self.topics["transcript"], self.hub.scrub(json.dumps(self._texts)), retain=True
                )
            if kind in ("snapshot", "levels", "result"):
                continue
            await client.publish(self.topics["event"], text, qos=0)
            if kind in STATE_EVENTS:
                await self._publish_state(client)

    async def _commands(self, client: aiomqtt.Client) -> None:
        status = f"{self.settings.mqtt.discovery_prefix}/status"
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload
            text = (
                payload.decode("utf-8", "replace")
                if isinstance(payload, bytes)
                else str(payload or "")
            )
            if topic == status:
                if text == "online":
                    log.info("Home Assistant is back: discovery published again")
                    await self._publish_discovery(client)
                continue
            name, args, reply = self._parse(topic, text)
            if name is None:
                continue
            problem = self._run(name, args)
            answer = {"ok": problem is None, **({"error": problem} if problem else {})}
            await client.publish(reply, json.dumps(answer), qos=1)
            if name in ("mute", "unmute", "set_volume"):
                await self._publish_state(client)

    def _parse(self, topic: str, text: str) -> tuple[str | None, Any, str]:
        """(command name, its arguments, the result topic) of an incoming message."""
        t = self.topics
        if topic == t["mute_set"]:
            return ("mute" if text.strip().upper() == "ON" else "unmute"), {}, f"{topic}/result"
        if topic == t["volume_set"]:
            try:
                return "set_volume", {"volume": float(text)}, f"{topic}/result"
            except ValueError:
                return "set_volume", {"volume": text}, f"{topic}/result"
        if not topic.startswith(t["command"] + "/") or topic.endswith("/result"):
            return None, None, ""
        name = topic[len(t["command"]) + 1 :]
        try:
            args = json.loads(text) if text.strip() else {}
        except (ValueError, RecursionError):
            args = "not JSON"
        return name, args, f"{topic}/result"

    def _run(self, name: str, args: Any) -> str | None:
        if not isinstance(args, dict):
            return "the payload must be a JSON object of the command's arguments"
        try:
            return self.target.api_command(parse_command(name, args))
        except CommandError as exc:
            return str(exc)
