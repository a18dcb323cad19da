"""The daemon: builds the pieces from the settings and supervises them.

Tasks (each catches, logs, backs off and recovers on its own; all end on cancellation):

- the audio backend (captures frames, plays the player; reopens devices itself);
- the conversation loop: wait for a trigger (button, voice, wake word, or ``auto``), hold a
  conversation, resume a cut-off one as a new conversation with backoff and jitter;
- the agent-configuration provider (boot from platform or cache, retry in background);
- the systemd watchdog, which pings only while audio frames really advance.

Every captured frame goes through :meth:`Daemon.on_frame` on the event loop: the VAD
gate, the barge-in detector, the turn state and the uplink gate, then into the session.
All of that is pure and cheap; nothing blocks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hello_device import __version__
from hello_device.aio import first_of
from hello_device.audio.backends.base import (
    AudioBackend,
)
from hello_device.audio.player import Player
from hello_device.conversation.ending import SessionEnd
from hello_device.conversation.session import (
    Session,
)
from hello_device.conversation.tools import (
    ToolRegistry,
    default_registry,
)
from hello_device.core.text import peer
from hello_device.core.turn import (
    BargeInDetector,
    TurnStateMachine,
    VadGate,
)
from hello_device.core.turn.pipeline import FramePipeline
from hello_device.core.turn.uplink import UplinkGate
from hello_device.daemon.agent_tools import AgentToolsMixin
from hello_device.daemon.api import ApiMixin
from hello_device.daemon.controls import ControlsMixin
from hello_device.daemon.conversations import ConversationsMixin
from hello_device.daemon.platform_link import PlatformLinkMixin
from hello_device.daemon.status import StatusMixin
from hello_device.errors import (
    AudioDeviceError,
)
from hello_device.local_api.hub import EventHub
from hello_device.logs import (
    REDACTOR,
    set_log_context,
)
from hello_device.settings import (
    Settings,
)
from hello_device.systemd import Notifier

if TYPE_CHECKING:
    from hello_device.audio.aec import EchoCanceller
    from hello_device.core.agent_profile import AgentProfile
    from hello_device.gpio.facade import Gpio
    from hello_device.metrics import DeviceMetrics
    from hello_device.platform.client import PlatformClient
    from hello_device.platform.provider import AgentConfigProvider

log = logging.getLogger(__name__)
T = TypeVar("T")

STOP_TIMEOUT_S = 1.0
"""How long a stop may take to close the conversation before tasks are cancelled."""
TASKS_STOP_S = 0.5
"""How long cancelled tasks may take to finish; a task that takes longer is left behind."""
AUDIO_READY_GRACE_S = 10.0
"""If the sound card has not opened by then but the backend has reported why (and keeps
retrying), the daemon reports READY=1 anyway, with the problem in STATUS: systemd must
not kill and restart, over and over, a device waiting for its USB microphone."""


def make_backend(settings: Settings, player: Player) -> AudioBackend:
    if settings.audio.backend == "file":
        from hello_device.audio.backends.file import FileBackend

        return FileBackend(settings.audio, player)
    from hello_device.audio.backends.pyaudio import PyAudioBackend

    return PyAudioBackend(settings.audio, player)


class Daemon(
    PlatformLinkMixin, ConversationsMixin, ControlsMixin, StatusMixin, ApiMixin, AgentToolsMixin
):
    """The running device. ``await Daemon(settings).run()`` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: str | None = None,
        backend: AudioBackend | None = None,
        player: Player | None = None,
        notifier: Notifier | None = None,
        provider: AgentConfigProvider | None = None,
        tools: ToolRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        hard_stop_s: float | None = None,
        audio_ready_grace_s: float = AUDIO_READY_GRACE_S,
    ) -> None:
        self.settings = settings
        """The settings in force: the file's, with the agent's hints where it is silent."""
        self.base_settings = settings
        """The settings as the file gives them."""
        self.profile: AgentProfile | None = None
        self._client: PlatformClient | None = None
        self.config_path = config_path
        self.clock = clock
        self.rng = rng or random.Random()
        self.aec: EchoCanceller | None = None
        if player is None and settings.barge_in.echo_cancel == "webrtc":
            player = self._echo_cancelling_player(settings)
        self.player = player or Player(rate=16000, volume=settings.audio.volume)
        self.backend = backend or make_backend(settings, self.player)
        self.notifier = notifier or Notifier()
        self._provider = provider
        self.tools = tools or default_registry(
            settings.device.id,
            settings.device.name,
            __version__,
            set_volume=self.set_volume,
            get_volume=lambda: self.player.volume,
        )
        self._background: set[asyncio.Task[None]] = set()
        """Tasks started on the side (feedback requests, an agent's end of conversation)."""
        if tools is None:
            self._add_daemon_tools()
        self.metrics: DeviceMetrics | None = None
        if settings.metrics.enabled:
            from hello_device.metrics import DeviceMetrics

            self.metrics = DeviceMetrics(self)
        self.events = EventHub(REDACTOR.scrub)
        """What the local API's clients hear (nothing is done while none listens)."""
        self.state = TurnStateMachine()
        self.state.add_listener(self._on_state)
        set_log_context(DEVICE_ID=settings.device.id, DEVICE_STATE=self.state.state.value)
        self.session: Session | None = None
        self.sessions: list[Session] = []
        """Every session since boot (the last few), for tests, benchmarks and STATUS."""
        self.reconnects = 0
        self.conversations = 0
        self.ended: collections.deque[SessionEnd] = collections.deque(maxlen=100)
        """How the last conversation attempts ended (bounded: a kiosk runs for months)."""
        self.listeners: list[Callable[[str, SessionEnd | None], None]] = []
        """Called with ("conversation_ended", end) after each conversation attempt."""
        self.ready = asyncio.Event()
        self.api_started = asyncio.Event()
        """Set once the daemon is ready to converse (audio open, configuration loaded)."""
        self._stop = asyncio.Event()
        """Set once the daemon is stopping: every loop checks it (a cancellation alone
        can be lost, e.g. by ``asyncio.wait_for`` on Python 3.11)."""
        self._hard_stop_s = hard_stop_s
        self._audio_ready_grace_s = audio_ready_grace_s
        self._hard_stop: threading.Timer | None = None
        self.exit_code = 0
        self._trigger = asyncio.Event()
        self._reload_requested = False
        self._reload_scheduled = False
        self._watched: dict[str, float | None] = {}
        self._refused = False
        self._ptt_held = settings.gpio.button_mode != "push_to_talk"
        self._muted = False
        self.gpio: Gpio | None = None
        self._audio_problem: str | None = None
        self._pending_preroll: collections.deque[tuple[bytes, float]] = collections.deque()
        """What the microphone sent since a trigger, with capture times, until the
        session exists."""
        self._opening = False
        self._user_done_at: float | None = None  # the user's turn ended (for metrics)
        self._onset_over_agent: float | None = None  # user speech began over the agent
        self._last_rtt: float | None = None
        """A trigger heard on the microphone (voice, wake word) opens a conversation."""
        self._wake_note: str | None = None
        """What woke the open conversation, for STATUS (``woken by okay_nabu (0.97)``)."""
        self._build_turn_parts()

    # ------------------------------------------------------------------ set-up

    def _build_turn_parts(self) -> None:
        """The frame pipeline for the settings in force (rebuilt when they change)."""
        s = self.settings
        frame_ms = s.audio.frame_ms
        vad = VadGate(
            frame_ms=frame_ms,
            aggressiveness=s.vad.aggressiveness,
            start_frames=s.vad.start_frames,
            end_silence_ms=s.vad.end_silence_ms or 700,
            preroll_ms=s.vad.preroll_ms,
        )
        bargein = BargeInDetector(
            frame_ms=frame_ms,
            min_speech_ms=s.barge_in.min_speech_ms,
            warmup_ms=s.barge_in.warmup_ms,
            echo_margin_db=s.barge_in.echo_margin_db,
        )
        uplink = UplinkGate(
            s.vad.send,
            preroll_frames=max(1, s.vad.preroll_ms // frame_ms),
            min_frames=max(0, s.vad.start_frames - 1),
            settle_frames=1500 // frame_ms,
        )
        self.pipeline = FramePipeline(
            vad,
            bargein,
            uplink,
            self.player,
            start_on_voice=s.conversation.start == "voice",
            barge_in=s.barge_in.enabled,
            wake=self._wake_gate(),
            wake_interrupts=s.wake_word.during_agent == "interrupt",
        )

    def _echo_cancelling_player(self, settings: Settings) -> Player | None:
        """A player that keeps what it plays for the in-process echo canceller."""
        from hello_device.audio import aec

        if not aec.available():
            log.warning(
                "barge_in.echo_cancel = webrtc, but %s; running without it",
                aec.unavailable_reason(),
            )
            return None
        self.aec = aec.EchoCanceller(settings.audio.frame_ms)
        log.info("in-process echo cancellation on (WebRTC AEC3)")
        return aec.TappedPlayer(rate=16000, volume=settings.audio.volume)

    # ------------------------------------------------------------------ running

    async def run(self) -> int:
        """Run until stopped (signal, or the file backend's end); return the exit code."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        tasks: list[asyncio.Task[None]] = []
        try:
            profile = await self._boot_config()
            self._apply_profile(profile)
            backend = asyncio.create_task(self._run_backend(), name="audio")
            tasks.append(backend)
            tasks.append(asyncio.create_task(self.provider.run_background(), name="config"))
            await self._wait_audio_ready()
            if not self._stop.is_set():
                self.notifier.ready(self._status_text())
                log.info(
                    "hello-device %s ready (device %s, start %s)",
                    __version__,
                    self.settings.device.id,
                    self.settings.conversation.start,
                )
                self._open_gpio(loop)
                self.ready.set()
                tasks.append(asyncio.create_task(self._conversation_loop(), name="conversations"))
                tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
                tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
                tasks.append(asyncio.create_task(self._start_api(), name="local-api"))
                tasks.append(asyncio.create_task(self._run_mqtt(), name="mqtt"))
                textfile = self.settings.metrics.textfile
                if self.metrics is not None and textfile:
                    from hello_device.metrics import write_textfile

                    interval = self.settings.metrics.interval_s
                    writer = write_textfile(self.metrics, textfile, interval, self._stop.is_set)
                    tasks.append(asyncio.create_task(writer, name="metrics-textfile"))
                if self.settings.conversation.start == "auto":
                    self._trigger.set()
                await first_of(self.backend.finished.wait(), self._stop.wait())
            self._stop.set()  # whatever ended it, every loop now winds down
            await self._shutdown()
            return self.exit_code
        finally:
            self._stop.set()
            tasks.extend(self._background)  # a rating on its way, an agent's end
            for task in tasks:
                task.cancel()
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=TASKS_STOP_S)
                for task in stuck:
                    log.warning("task %s did not stop in time; leaving it", task.get_name())
            self._remove_signals(loop)
            await self._stop_api()
            if self.gpio is not None:
                self.gpio.close()
                self.gpio = None

    def stop(self) -> None:
        """Ask the daemon to stop cleanly (what SIGTERM and SIGINT do)."""
        self._arm_hard_stop()
        self._stop.set()

    def _arm_hard_stop(self) -> None:
        """Start the deadline after which the process exits whatever it is doing (only
        for the real process: ``hard_stop_s``). Safe from a signal handler."""
        if self._hard_stop_s is not None and self._hard_stop is None:
            self._hard_stop = threading.Timer(self._hard_stop_s, hard_exit, (self._hard_stop_s,))
            self._hard_stop.daemon = True
            self._hard_stop.start()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        session = self.session
        if session is not None:
            session.request_close(1000, "device stopping")
            await first_of(session.done.wait(), timeout=STOP_TIMEOUT_S)
        log.info("stopped")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
            if self._hard_stop_s is None:
                loop.add_signal_handler(signal.SIGTERM, self.stop)
                loop.add_signal_handler(signal.SIGINT, self.stop)
                return

            # A plain Python handler runs in the main thread even while the event loop
            # is stuck in a system call, so the hard deadline is armed whatever happens.
            def on_signal(signum: int, frame: object) -> None:
                self._arm_hard_stop()
                loop.call_soon_threadsafe(self.stop)

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        # After the daemon, a late SIGTERM or Ctrl-C ends the process at once.
        if self._hard_stop_s is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)

    async def _run_backend(self) -> None:
        """The audio backend's task. A backend retries device faults by itself; what
        reaches here is fatal (a file it cannot read or write, a bug): the daemon stops
        with status 1 and says why."""
        try:
            await self.backend.run(self.on_frame, self._on_audio_status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, AudioDeviceError):
                log.error("audio: %s", exc)
            else:
                log.error("audio backend failed: %s", peer(exc), exc_info=exc)
            self.state.set_error(f"audio: {exc}", self.clock())
            self.exit_code = 1
            self.backend.finished.set()
            self._stop.set()

    async def _wait_audio_ready(self) -> None:
        """Until the audio moves, the backend gives up, or the daemon stops; or, after a
        grace period, until the backend has at least said what is wrong (it goes on
        retrying by itself)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._audio_ready_grace_s
        while not (self.backend.ready.is_set() or self.backend.finished.is_set()):
            remaining = deadline - loop.time()
            if remaining <= 0 and self._audio_problem is not None:
                log.error(
                    "audio still unavailable after %.0f s (%s); ready anyway, retrying",
                    self._audio_ready_grace_s,
                    self._audio_problem,
                )
                return
            await first_of(
                self.backend.ready.wait(),
                self.backend.finished.wait(),
                self._stop.wait(),
                timeout=max(remaining, 1.0),
            )
            if self._stop.is_set():
                return

    # ------------------------------------------------------------------ agent config

    # ------------------------------------------------------------------ conversations

    # SessionListener -------------------------------------------------------

    # ------------------------------------------------------------------ per frame

    # ------------------------------------------------------------------ GPIO

    # ------------------------------------------------------------------ misc


def hard_exit(after_s: float) -> None:
    """The last resort of a stop (a timer thread): the clean stop is stuck somewhere."""
    with contextlib.suppress(Exception):
        log.critical("did not stop within %.1f s of SIGTERM; exiting now", after_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
    os._exit(1)
