"""A refused API key needs a human: no hammering, no unsigned fallback, a clear state,
and recovery the moment the key is fixed (SIGHUP, or just the edited file).

The real ``hello-device run`` process, real signals, a real notify socket and the
emulator (a private agent that requires a signed URL) on loopback.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hello_device.emulator import EmulatorConfig
from hello_device.testing.notify import NotifySocket
from tests.conftest import UNIT
from tests.daemon.test_service import KEY, EmulatorThread, start_daemon, write_config

RIGHT_KEY = "sk_the_right_key_999999999999"
OBSERVE_S = 4.0
"""Window in which a refused device must stay quiet (the bug sent 12 REST requests and
opened 4 unsigned connections in 8 s)."""

pytestmark = pytest.mark.slow


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify.sock", time_scale=UNIT)
    yield s
    s.close()


@pytest.mark.parametrize("fix", ["sighup", "edit-only"])
def test_refused_key_waits_for_a_human(fix: str, notify: NotifySocket, tmp_path: Path) -> None:
    emulator = EmulatorThread(EmulatorConfig(api_key=RIGHT_KEY, private=True))
    emu = emulator.emu
    try:
        config = tmp_path / "config.toml"
        write_config(config, emu, tmp_path, "Lobby")
        proc = start_daemon(config, notify)  # sends KEY, which the platform refuses
        try:
            notify.receive_until(lambda m: "API key refused" in m, 20)
            refused_at = time.monotonic()
            # What a refused device does on its own: nothing more (one look, 60 s apart).
            time.sleep(OBSERVE_S * UNIT)  # an observation window, not a synchronisation
            assert len(emu.rest_requests) == 1, [r.path for r in emu.rest_requests]
            assert emu.conversations == []  # never an unsigned (or any) connection
            assert proc.poll() is None

            (tmp_path / "key").write_text(RIGHT_KEY)
            if fix == "sighup":
                proc.send_signal(signal.SIGHUP)
            record = emulator.call(emu.wait_conversation(1, timeout=15 * UNIT), 20)
            assert "conversation_signature" in "".join(r.path for r in emu.rest_requests) or (
                len(emu.tokens_issued) == 1
            )
            assert record.agent_id == "demo-agent"
            notify.receive_until(lambda m: m.startswith("STATUS=listening"), 20)
            recovered_in = time.monotonic() - refused_at
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10 * UNIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        emulator.close()
    assert proc.returncode == 0
    assert err.count("refused the API key") == 1, err  # logged once
    assert "Traceback" not in err
    for secret in (KEY, RIGHT_KEY, *emu.tokens_issued):
        assert secret not in out + err
    assert recovered_in < (OBSERVE_S + 15) * UNIT
