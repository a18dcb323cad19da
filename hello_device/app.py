"""The daemon: builds the pieces from the settings and supervises them.

Tasks (each catches, logs, backs off and recovers on its own; all end on cancellation):

- the audio backend (captures frames, plays the player; reopens devices itself);
- the conversation loop: wait for a trigger (button, voice, or ``auto``), hold a
  conversation, resume a cut-off one as a new conversation with backoff and jitter;
- the agent-configuration provider (boot from platform or cache, retry in background);
- the systemd watchdog, which pings only while audio frames really advance.

Every captured frame goes through :meth:`Daemon.on_frame` on the event loop: the VAD
gate, the barge-in detector, the turn state and the uplink gate, then into the session.
All of that is pure and cheap; nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from hello_device import __version__
from hello_device.audio.backend import AudioBackend, Frame
from hello_device.audio.earcons import earcon
from hello_device.audio.player import Player
from hello_device.config import Settings, load_settings
from hello_device.errors import AudioDeviceError, ConfigError, PlatformError
from hello_device.logs import REDACTOR, set_log_context
from hello_device.service import Notifier
from hello_device.session import Session, SessionEnd, SessionListener, conversation_url, safe_url
from hello_device.tools import ToolRegistry, default_registry
from hello_device.turn import BargeInDetector, DeviceState, TurnStateMachine, VadGate
from hello_device.uplink import UplinkGate

if TYPE_CHECKING:
    from hello_device.audio.aec import EchoCanceller
    from hello_device.gpio import Action, Gpio
    from hello_device.platform_api import AgentConfigProvider, AgentProfile, PlatformClient

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 1.5
"""How long a stop may take to close the conversation before tasks are cancelled."""
ECHO_TAIL_S = 0.3
"""After the agent stops talking, the room still rings with it for a moment: no user
speech is taken from the microphone for this long (a user who starts right away is not
lost: the uplink's pre-roll still holds those frames)."""
AUDIO_READY_GRACE_S = 10.0
"""If the sound card has not opened by then but the backend has reported why (and keeps
retrying), the daemon reports READY=1 anyway, with the problem in STATUS: systemd must
not kill and restart, over and over, a device waiting for its USB microphone."""
BOOT_FETCH_WITH_CACHE_S = 0.3
"""With a cached agent configuration, how long boot waits for the platform before it
uses the cache (and keeps trying in the background)."""


def backoff_delay(attempt: int, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to 1 s, then 2, 4, ... cap."""
    return rng.uniform(0.0, min(cap, 2.0 ** max(0, attempt - 1)))


def make_backend(settings: Settings, player: Player) -> AudioBackend:
    if settings.audio.backend == "file":
        from hello_device.audio.file_backend import FileBackend

        return FileBackend(settings.audio, player)
    from hello_device.audio.pyaudio_backend import PyAudioBackend

    return PyAudioBackend(settings.audio, player)


class Daemon(SessionListener):
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
            set_volume=self._set_volume,
            get_volume=lambda: self.player.volume,
        )
        self.state = TurnStateMachine()
        self.state.add_listener(self._on_state)
        set_log_context(DEVICE_ID=settings.device.id, DEVICE_STATE=self.state.state.value)
        self.session: Session | None = None
        self.sessions: list[Session] = []
        """Every session since boot (the last few), for tests, benchmarks and STATUS."""
        self.reconnects = 0
        self.conversations = 0
        self.ended: list[SessionEnd] = []
        self.ready = asyncio.Event()
        """Set once the daemon is ready to converse (audio open, configuration loaded)."""
        self._stop = asyncio.Event()
        self._trigger = asyncio.Event()
        self._reload_requested = False
        self._ptt_held = settings.gpio.button_mode != "push_to_talk"
        self._muted = False
        self.gpio: Gpio | None = None
        self._agent_audible_since: float | None = None
        self._barged_in = False
        self._echo_tail_until = 0.0
        self._audio_problem: str | None = None
        self._pending_preroll: list[bytes] = []
        self._build_turn_parts()

    # ------------------------------------------------------------------ set-up

    def _build_turn_parts(self, end_silence_ms: int | None = None) -> None:
        s = self.settings
        frame_ms = s.audio.frame_ms
        self.vad = VadGate(
            frame_ms=frame_ms,
            aggressiveness=s.vad.aggressiveness,
            start_frames=s.vad.start_frames,
            end_silence_ms=end_silence_ms or s.vad.end_silence_ms or 700,
            preroll_ms=s.vad.preroll_ms,
        )
        self.bargein = BargeInDetector(
            frame_ms=frame_ms,
            min_speech_ms=s.barge_in.min_speech_ms,
            warmup_ms=s.barge_in.warmup_ms,
            echo_margin_db=s.barge_in.echo_margin_db,
        )
        self.uplink = UplinkGate(
            s.vad.send,
            preroll_frames=max(1, s.vad.preroll_ms // frame_ms),
            min_frames=max(0, s.vad.start_frames - 1),
            settle_frames=1500 // frame_ms,
        )

    @property
    def provider(self) -> AgentConfigProvider:
        if self._provider is None:
            from hello_device.platform_api import AgentConfigCache, AgentConfigProvider

            cache = AgentConfigCache(self.settings.state.dir)
            self._provider = AgentConfigProvider(self.base_settings, self.client, cache)
        return self._provider

    @property
    def client(self) -> PlatformClient:
        if self._client is None:
            from hello_device.platform_api import PlatformClient

            self._client = PlatformClient(self.base_settings.platform)
        return self._client

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

    def _set_volume(self, value: float) -> None:
        self.player.volume = value

    # ------------------------------------------------------------------ running

    async def run(self) -> int:
        """Run until stopped (signal, or the file backend's end); return the exit code."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        tasks: list[asyncio.Task[None]] = []
        try:
            profile = await self._boot_config()
            self._apply_profile(profile)
            tasks.append(asyncio.create_task(self._run_backend(), name="audio"))
            tasks.append(asyncio.create_task(self.provider.run_background(), name="config"))
            await self._wait_audio_ready()
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
            if self.settings.conversation.start == "auto":
                self._trigger.set()
            finished = asyncio.create_task(self.backend.finished.wait())
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({finished, stop}, return_when=asyncio.FIRST_COMPLETED)
            finished.cancel()
            stop.cancel()
            await self._shutdown()
            return 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._remove_signals(loop)
            if self.gpio is not None:
                self.gpio.close()
                self.gpio = None

    def stop(self) -> None:
        """Ask the daemon to stop cleanly (what SIGTERM and SIGINT do)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Reload the TOML and the agent configuration at the next boundary (SIGHUP)."""
        log.info("reload requested; applied at the next conversation boundary")
        self._reload_requested = True
        with contextlib.suppress(Exception):
            self.provider.request_refresh()
        if self.session is None:
            self._maybe_reload()

    def start_conversation(self) -> None:
        """Start a conversation (button press, voice onset, kiosk start)."""
        self._trigger.set()

    def end_conversation(self, reason: str = "ended on the device") -> None:
        if self.session is not None:
            self.session.request_close(1000, reason)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        session = self.session
        if session is not None:
            session.request_close(1000, "device stopping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.done.wait(), STOP_TIMEOUT_S)
        log.info("stopped")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    async def _run_backend(self) -> None:
        try:
            await self.backend.run(self.on_frame, self._on_audio_status)
        except AudioDeviceError as exc:
            log.error("audio: %s", exc)
            self.state.set_error(str(exc), self.clock())
            self.backend.finished.set()

    async def _wait_audio_ready(self) -> None:
        """Until the audio moves; or, after a grace period, until the backend has at least
        said what is wrong (it goes on retrying by itself)."""
        ready = asyncio.create_task(self.backend.ready.wait())
        finished = asyncio.create_task(self.backend.finished.wait())
        try:
            pending = {ready, finished}
            while pending == {ready, finished}:
                _, pending = await asyncio.wait(
                    pending, timeout=AUDIO_READY_GRACE_S, return_when=asyncio.FIRST_COMPLETED
                )
                if pending == {ready, finished} and self._audio_problem is not None:
                    log.error(
                        "audio still unavailable after %.0f s (%s); ready anyway, retrying",
                        AUDIO_READY_GRACE_S,
                        self._audio_problem,
                    )
                    return
        finally:
            ready.cancel()
            finished.cancel()

    def _on_audio_status(self, problem: str | None) -> None:
        self._audio_problem = problem
        self.state.set_error(f"audio: {problem}" if problem else None, self.clock())

    # ------------------------------------------------------------------ agent config

    async def _boot_config(self) -> AgentProfile | None:
        """The platform's copy, or at once the cached one when the platform is slow."""
        from hello_device.platform_api import AgentConfigCache

        s = self.base_settings
        warm = AgentConfigCache(s.state.dir).load(s.platform.agent_id, quarantine=False)
        # Without a cache, wait longer (a fresh device), but bounded: a silent server
        # must not keep the device from starting; the background task keeps trying.
        limit = BOOT_FETCH_WITH_CACHE_S if warm else s.platform.connect_timeout_s
        profile = await self.provider.boot(timeout=limit)
        if self.provider.status in ("offline", "error"):
            log.warning("agent configuration: %s", self.provider.status_message)
        if self.provider.status == "offline":
            self.state.set_offline(True, self.clock())
        return profile

    def _apply_profile(self, profile: AgentProfile | None) -> None:
        from hello_device.platform_api import apply_profile

        self.profile = profile
        self.settings = apply_profile(self.base_settings, profile)
        self._build_turn_parts()

    async def _conversation_url(self) -> str:
        p = self.settings.platform
        private = bool(self.profile is not None and self.profile.private)
        if p.signed_url == "always" or (p.signed_url == "auto" and private):
            url = await self.client.get_signed_url()
            query = url.partition("?")[2]
            for part in query.split("&"):
                REDACTOR.add_transient(part.partition("=")[2])
            log.debug("signed URL fetched for %s", safe_url(url))
            return url
        return conversation_url(self.settings)

    def _maybe_reload(self) -> None:
        if not self._reload_requested or self.config_path is None:
            return
        self._reload_requested = False
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path, warn=lambda m: log.warning("%s", m))
        except ConfigError as exc:
            for line in exc.problems:
                log.error("reload refused, keeping the running configuration: %s", line)
        else:
            kept = ("audio", "gpio", "state", "logging")
            changed = [k for k in kept if getattr(new, k) != getattr(self.settings, k)]
            if changed:
                log.warning("reload: changes to %s take effect after a restart", ", ".join(changed))
                new = replace(new, **{k: getattr(self.settings, k) for k in kept})
            self.base_settings = new
            if new.platform.api_key:
                REDACTOR.add(new.platform.api_key.reveal())
            self._apply_profile(self.profile)
            log.info("configuration reloaded from %s", self.config_path)
        self.notifier.ready(self._status_text())

    # ------------------------------------------------------------------ conversations

    async def _conversation_loop(self) -> None:
        failures = 0
        while True:
            await self._trigger.wait()
            self._trigger.clear()
            try:
                await self._boundary()
                ok = await self._conversation_with_resume()
                await self._boundary()
            except Exception:  # never let one bad conversation end the daemon
                log.exception("conversation loop error; recovering")
                self.session = None
                ok = False
            failures = 0 if ok else failures + 1
            if self.settings.conversation.start == "auto" and not self._stop.is_set():
                delay = self.settings.conversation.restart_delay_s
                if failures:
                    cap = self.settings.platform.reconnect_max_backoff_s
                    delay = max(delay, backoff_delay(failures + 1, cap, self.rng))
                    log.info("next conversation in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                self._trigger.set()

    async def _boundary(self) -> None:
        """Between conversations: apply reloads and newer agent configurations."""
        self._maybe_reload()
        with contextlib.suppress(Exception):
            await self.provider.refresh_if_stale()
        update = self.provider.take_update()
        if update is not None:
            log.info("applying the newer agent configuration")
            self._apply_profile(update)
        self.state.set_offline(self.provider.status == "offline", self.clock())

    async def _conversation_with_resume(self) -> bool:
        """One wanted conversation, resumed as new ones while it is cut off. True if it
        ended normally."""
        attempt = 0
        cap = self.settings.platform.reconnect_max_backoff_s
        while not self._stop.is_set():
            self.state.conversation_starting(self.clock())
            session = Session(self.settings, self.player, self.tools, self)
            for pcm in self._pending_preroll:
                session.send_frame(pcm, self.clock())
            self._pending_preroll = []
            self._reset_conversation_audio()
            self.session = session
            self.sessions = [*self.sessions[-9:], session]
            try:
                url = await self._conversation_url()
                end = await session.run(url)
            except PlatformError as exc:
                log.warning("cannot start a conversation: %s", exc)
                end = SessionEnd(None, str(exc), resumable=True, error=str(exc))
            finally:
                self.session = None
            self.ended.append(end)
            set_log_context(CONVERSATION_ID=None)
            self.player.flush()
            self.state.conversation_ended(self.clock())
            if end.connected:
                self.conversations += 1
                attempt = 0
                self.state.set_error(None, self.clock())
            if end.by_client or not end.resumable or self._stop.is_set():
                if end.error and not end.by_client:
                    self.state.set_error(end.error, self.clock())
                    self._earcon("error")
                else:
                    self._earcon("end")
                return end.error is None
            attempt += 1
            self.reconnects += 1
            if attempt >= 3:
                self.state.set_offline(True, self.clock())
            delay = backoff_delay(attempt, cap, self.rng)
            log.warning(
                "conversation cut off (%s); resuming as a new conversation in %.1f s",
                end.error or f"code {end.code}",
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        return True

    def _reset_conversation_audio(self) -> None:
        self._agent_audible_since = None
        self._barged_in = False
        self.bargein.reset()

    # SessionListener -------------------------------------------------------

    def on_connected(self, conversation_id: str) -> None:
        set_log_context(CONVERSATION_ID=conversation_id)
        self.state.set_offline(False, self.clock())
        self.state.conversation_started(self.clock())
        self._earcon("listen")

    def on_agent_audio(self, samples: int) -> None:
        if self._agent_audible_since is None:
            self._agent_audible_since = self.clock()
            self._barged_in = False
            self.bargein.reset()
            self.uplink.settle()
            self.state.agent_audio_started(self.clock())

    def on_interruption(self) -> None:
        self._agent_audible_since = None

    def on_user_transcript(self, text: str) -> None:
        self._barged_in = False

    # ------------------------------------------------------------------ per frame

    def on_frame(self, frame: Frame) -> None:
        """One captured frame (event loop thread). Pure bookkeeping; never blocks."""
        if self.aec is not None:
            tap = self.player.tap  # type: ignore[attr-defined]
            pcm = self.aec.process(frame.pcm, tap.take(len(frame.pcm) // 2))
            frame = Frame(pcm, frame.index, frame.captured_at)
        gate = self.vad.process(frame.pcm)
        now = frame.captured_at
        self.state.tick(now)
        session = self.session
        if session is None:
            if gate.onset and self.settings.conversation.start == "voice" and not self._muted:
                self._pending_preroll = list(gate.preroll)
                log.info("voice detected: starting a conversation")
                self.start_conversation()
            return
        session.flush_tail_if_idle(now)
        agent_audible = self._agent_audible_since is not None
        if agent_audible and not self.player.playing:
            self._agent_audible_since = None
            agent_audible = False
            self.state.agent_audio_finished(now)
            if not self._barged_in:
                # The gate may be open on the loudspeaker's echo, and the uplink holds the
                # echo of the reply's last words: neither may reach the platform as speech.
                self.vad.close()
                for out in self.uplink.flush_silence():
                    session.send_frame(out, frame.captured_at)
                self._echo_tail_until = now + ECHO_TAIL_S
        if agent_audible and not self._barged_in and self.settings.barge_in.enabled:
            since = self._agent_audible_since or now
            if self.bargein.update(
                gate.voiced,
                gate.level_dbfs,
                self.player.level_dbfs(),
                True,
                (now - since) * 1000.0,
            ):
                self._barged_in = True
                log.info("barge-in: the user talks over the agent; playback stopped")
                session.local_barge_in()
                self._agent_audible_since = None
                self.state.barge_in(now)
        if gate.onset:
            session.note_activity()
            if not agent_audible:
                self.state.user_speech_started(now)
        elif gate.ended:
            self.state.user_speech_ended(now)
        pcm = frame.pcm
        speech = (
            gate.speaking
            and (not agent_audible or self._barged_in)
            and now >= self._echo_tail_until
        )
        if self._muted or not self._ptt_held:
            pcm, speech = bytes(len(pcm)), False  # nothing private leaves the device
        for out in self.uplink.process(pcm, speech):
            session.send_frame(out, frame.captured_at)

    # ------------------------------------------------------------------ GPIO

    def _open_gpio(self, loop: asyncio.AbstractEventLoop) -> None:
        g = self.settings.gpio
        if g.button_pin is None and g.mute_pin is None and g.led_type == "none":
            return
        from hello_device.errors import GpioError
        from hello_device.gpio import Gpio

        try:
            self.gpio = Gpio(
                g,
                call_soon=loop.call_soon_threadsafe,
                on_press=self._button_pressed,
                on_release=self._button_released,
                on_long_press=self._button_long_pressed,
                on_mute_changed=self.set_muted,
            )
        except GpioError as exc:
            log.error("GPIO unavailable, running without button and LED: %s", exc)
            return
        self.gpio.show(self.state.state)

    def _button_pressed(self) -> None:
        if self.gpio is not None:
            self._run_actions(self.gpio.logic.pressed(self.session is not None))

    def _button_released(self) -> None:
        if self.gpio is not None:
            self._run_actions(self.gpio.logic.released(self.session is not None))

    def _button_long_pressed(self) -> None:
        if self.gpio is not None:
            actions = self.gpio.logic.long_pressed(self.session is not None, self._muted)
            self._run_actions(actions)

    def _run_actions(self, actions: list[Action]) -> None:
        from hello_device.gpio import Action

        for action in actions:
            log.debug("button: %s", action.name)
            if action is Action.START and self.session is None:
                self.start_conversation()
            elif action is Action.END:
                self.end_conversation("ended with the button")
            elif action in (Action.PTT_DOWN, Action.PTT_UP):
                self.set_push_to_talk_held(action is Action.PTT_DOWN)
            elif action in (Action.MUTE, Action.UNMUTE):
                self.set_muted(action is Action.MUTE)

    async def _housekeeping(self) -> None:
        """Once a second: state timeouts, and GPIO edges a bounce window may have hidden."""
        while True:
            await asyncio.sleep(1.0)
            self.state.tick(self.clock())
            if self.gpio is not None:
                self.gpio.resync()

    # ------------------------------------------------------------------ misc

    def set_muted(self, muted: bool) -> None:
        if muted == self._muted:
            return
        self._muted = muted
        self.state.set_muted(muted, self.clock())
        log.info("microphone %s", "muted" if muted else "unmuted")

    def set_push_to_talk_held(self, held: bool) -> None:
        self._ptt_held = held

    def _earcon(self, kind: str) -> None:
        e = self.settings.earcons
        if e.enabled and e.volume > 0:
            self.player.push(earcon(kind, self.player.rate, e.volume))  # type: ignore[arg-type]

    async def wait_state(self, state: DeviceState, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until the visible state is ``state`` (raises TimeoutError)."""
        if self.state.state is state:
            return
        reached = asyncio.Event()

        def listener(old: DeviceState, new: DeviceState, reason: str) -> None:
            if new is state:
                reached.set()

        self.state.add_listener(listener)
        try:
            await asyncio.wait_for(reached.wait(), timeout)
        finally:
            self.state.remove_listener(listener)

    def _on_state(self, old: DeviceState, new: DeviceState, reason: str) -> None:
        set_log_context(DEVICE_STATE=new.value)
        log.debug("state %s -> %s (%s)", old.value, new.value, reason)
        if self.gpio is not None:
            self.gpio.show(new)
        self.notifier.status(self._status_text())

    def _status_text(self) -> str:
        extras = []
        session = self.session
        if session is not None and session.conversation_id:
            extras.append(f"conversation {session.conversation_id}")
        if self.reconnects:
            extras.append(f"{self.reconnects} reconnects since boot")
        if self.state.error:
            extras.append(self.state.error)
        text = self.state.state.value
        return text + (" — " + "; ".join(extras) if extras else "")

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        last = -1
        while True:
            await asyncio.sleep(interval)
            frames = self.backend.frames_captured
            if frames != last or self._audio_problem is not None:
                # Audio advances, or the backend is handling a fault it reported (and
                # retries with backoff): alive. Stuck without knowing it: starve systemd.
                self.notifier.watchdog()
                last = frames
            else:
                log.warning("audio has not advanced for %.1f s; not feeding the watchdog", interval)


def run_daemon(settings: Settings, config_path: str | None = None) -> int:
    """Run the daemon in the foreground; return the exit code."""
    if settings.platform.api_key:
        REDACTOR.add(settings.platform.api_key.reveal())
    try:
        return asyncio.run(Daemon(settings, config_path=config_path).run())
    except KeyboardInterrupt:
        return 0
    except AudioDeviceError as exc:
        log.error("audio: %s", exc)
        return 1
