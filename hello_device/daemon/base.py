"""What the parts of the daemon share: the attributes :class:`~.device.Daemon` sets up,
and the few methods one part calls on another (each part overrides its own)."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hello_device.audio.aec import EchoCanceller
    from hello_device.audio.backends.base import AudioBackend
    from hello_device.audio.player import Player
    from hello_device.conversation.ending import SessionEnd
    from hello_device.conversation.session import Session
    from hello_device.conversation.tools import ToolRegistry
    from hello_device.core.agent_profile import AgentProfile
    from hello_device.core.turn import TurnStateMachine
    from hello_device.core.turn.pipeline import FramePipeline
    from hello_device.gpio.facade import Gpio
    from hello_device.local_api.hub import EventHub
    from hello_device.metrics import DeviceMetrics
    from hello_device.platform.client import PlatformClient
    from hello_device.platform.provider import AgentConfigProvider
    from hello_device.settings import Settings
    from hello_device.systemd import Notifier


class DaemonBase:
    """The shared state (see :class:`~.device.Daemon` for what each attribute means)."""

    settings: Settings
    base_settings: Settings
    profile: AgentProfile | None
    config_path: str | None
    clock: Callable[[], float]
    rng: random.Random
    player: Player
    aec: EchoCanceller | None
    notifier: Notifier
    tools: ToolRegistry
    state: TurnStateMachine
    events: EventHub
    metrics: DeviceMetrics | None
    pipeline: FramePipeline
    session: Session | None
    sessions: list[Session]
    reconnects: int
    conversations: int
    ended: collections.deque[SessionEnd]
    listeners: list[Callable[[str, SessionEnd | None], None]]
    ready: asyncio.Event
    gpio: Gpio | None
    backend: AudioBackend
    _stop: asyncio.Event
    _trigger: asyncio.Event
    _provider: AgentConfigProvider | None
    _client: PlatformClient | None
    _reload_requested: bool
    _reload_scheduled: bool
    _watched: dict[str, float | None]
    _refused: bool
    _ptt_held: bool
    _muted: bool
    _audio_problem: str | None
    _pending_preroll: collections.deque[tuple[bytes, float]]
    _opening: bool
    _user_done_at: float | None
    _onset_over_agent: float | None
    _last_rtt: float | None
    _wake_note: str | None

    @property
    def provider(self) -> AgentConfigProvider:
        raise NotImplementedError

    def _show_error(self, conversation_error: str | None = None) -> None:
        raise NotImplementedError

    def _earcon(self, kind: str) -> None:
        raise NotImplementedError

    def _build_turn_parts(self) -> None:
        raise NotImplementedError

    def _status_text(self) -> str:
        raise NotImplementedError

    def _maybe_reload(self) -> None:
        raise NotImplementedError

    def _blocked(self) -> bool:
        raise NotImplementedError

    def _apply_profile(self, profile: AgentProfile | None) -> None:
        raise NotImplementedError

    async def _conversation_url(self) -> str:
        raise NotImplementedError

    def _remember_watched_files(self) -> None:
        raise NotImplementedError

    def _watched_files_changed(self) -> bool:
        raise NotImplementedError

    def request_reload(self) -> None:
        raise NotImplementedError

    def start_conversation(self) -> None:
        raise NotImplementedError

    def end_conversation(self, reason: str = "ended on the device") -> None:
        raise NotImplementedError

    def set_muted(self, muted: bool) -> None:
        raise NotImplementedError

    def set_volume(self, value: float) -> None:
        raise NotImplementedError

    def give_feedback(self, score: Literal["like", "dislike"]) -> str | None:
        raise NotImplementedError

    def api_snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def conversation_rateable(self, conversation_id: str | None) -> None:
        raise NotImplementedError

    @property
    def client(self) -> PlatformClient:
        raise NotImplementedError
