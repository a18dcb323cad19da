"""The event hub and the command checks, without a server."""

from __future__ import annotations

import asyncio
import json

import pytest

from hello_device.local_api.commands import CommandError, parse_command
from hello_device.local_api.hub import EventHub
from hello_device.local_api.security import RateLimit, host_allowed, origin_allowed, token_ok


def test_events_in_order_and_a_lagged_notice_for_what_was_dropped() -> None:
    async def scenario() -> list[dict[str, object]]:
        hub = EventHub(scrub=lambda text: text.replace("SECRET", "***"))
        hub.publish("state", state="idle")  # no client: nothing is even encoded
        subscriber = hub.subscribe(maxlen=3)
        for i in range(5):
            hub.publish("volume", volume=i / 10, note="SECRET")
        subscriber.put_result('{"type": "result", "id": 1, "ok": true}')
        got = [json.loads(await subscriber.get()) for _ in range(5)]
        hub.unsubscribe(subscriber)
        hub.publish("state", state="idle")
        assert len(subscriber) == 0  # gone: it receives nothing more
        return got

    got = asyncio.run(scenario())
    assert got[0] == {"type": "result", "id": 1, "ok": True}  # answers first
    assert got[1] == {"type": "lagged", "dropped": 2}
    assert [e["volume"] for e in got[2:]] == [0.2, 0.3, 0.4]  # the newest, in order
    assert all(e["note"] == "***" for e in got[2:])


@pytest.mark.parametrize(
    ("name", "args"),
    [("set_volume", {"volume": float("nan")}), ("set_volume", {"volume": 2}), ("nope", {})],
)
def test_bad_commands_raise_command_error(name: str, args: dict[str, object]) -> None:
    with pytest.raises(CommandError):
        parse_command(name, args)


def test_origins_hosts_tokens_and_the_rate() -> None:
    assert origin_allowed(None, []) and not origin_allowed("null", [])
    assert origin_allowed("null", ["null"])  # a kiosk page opened as a file, if listed
    assert origin_allowed("http://[::1]:8080", []) and not origin_allowed("http://10.0.0.2", [])
    assert not origin_allowed("ftp://localhost", [])
    assert host_allowed("127.0.0.1:8766", "127.0.0.1") and host_allowed("localhost", "0.0.0.0")
    assert host_allowed("kiosk-7.lan:8766", "kiosk-7.lan")
    assert host_allowed("192.168.1.10:8766", "0.0.0.0", token_required=True)
    assert not host_allowed("evil.example:8766", "127.0.0.1") and not host_allowed(None, "x")
    assert token_ok(None, None) and token_ok("Bearer abc", "abc")
    assert not token_ok("Bearer abd", "abc") and not token_ok("abc", "abc")
    limit = RateLimit(2.0, now=0.0)
    assert [limit.take(0.0) for _ in range(5)] == [True] * 4 + [False]
    assert limit.take(0.5) and not limit.take(0.5)
