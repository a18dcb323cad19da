"""Conversations: the loop that waits for a trigger and holds them, resuming a cut-off
one as a new conversation with backoff; the session's events; and the execution, frame
by frame, of what the pure :class:`~hello_device.core.turn.pipeline.FramePipeline` decides.
"""

from __future__ import annotations

import contextlib
import logging

from hello_device.aio import first_of
from hello_device.audio.backends.base import (
    Frame,
)
from hello_device.conversation.ending import SessionEnd
from hello_device.conversation.listener import SessionListener
from hello_device.conversation.session import (
    Session,
)
from hello_device.core.backoff import Backoff
from hello_device.core.turn.pipeline import Act
from hello_device.daemon.wake import WakeMixin
from hello_device.errors import (
    AgentNotFoundError,
    AuthError,
    PlatformError,
    PlatformUnavailable,
    needs_human,
)
from hello_device.logs import (
    set_log_context,
)
from hello_device.platform.provider import ProviderStatus

log = logging.getLogger(__name__)


class ConversationsMixin(WakeMixin, SessionListener):
    """The conversation loop, the session listener and the frame executor."""

    def start_conversation(self) -> None:
        """Start a conversation (button press, voice onset, kiosk start)."""
        self._trigger.set()

    def end_conversation(self, reason: str = "ended on the device") -> None:
        if self.session is not None:
            self.session.request_close(1000, reason)

    async def _conversation_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            await first_of(self._trigger.wait(), self._stop.wait())
            self._trigger.clear()
            if self._stop.is_set():
                return
            try:
                await self._boundary()
                if self._blocked():
                    # A refused key or unknown agent: nothing to try until it is fixed.
                    log.debug("not starting a conversation: the platform refused the device")
                    self._earcon("error")
                    self._take_pending()
                    self._wake_note = None
                    self.state.conversation_ended(self.clock())
                    continue
                ok = await self._conversation_with_resume()
                await self._boundary()
            except Exception:  # never let one bad conversation end the daemon
                log.exception("conversation loop error; recovering")
                self.session = None
                self.state.conversation_ended(self.clock())
                ok = False
            if not self._trigger.is_set():  # else: a trigger heard since, kept for it
                self._take_pending()
                self._wake_note = None
            failures = 0 if ok else failures + 1
            auto = self.settings.conversation.start == "auto"
            if auto and not self._stop.is_set() and not self._blocked():
                delay = self.settings.conversation.restart_delay_s
                if failures:
                    cap = self.settings.platform.reconnect_max_backoff_s
                    delay = max(delay, Backoff(cap).delay(failures + 1, self.rng))
                    log.info("next conversation in %.1f s", delay)
                await first_of(self._stop.wait(), timeout=delay)
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
        self.state.set_offline(self.provider.status is ProviderStatus.OFFLINE, self.clock())

    async def _conversation_with_resume(self) -> bool:
        """One wanted conversation, resumed as new ones while it is cut off. True if it
        ended normally.

        Each attempt costs at most one signed-URL request and one connection; between
        attempts the backoff (jittered, first retry within 1 s) is never shorter than
        a ``Retry-After`` the platform asked for. A refusal (key, agent) ends the
        attempts: a human must act.
        """
        attempt = 0
        cap = self.settings.platform.reconnect_max_backoff_s
        while not self._stop.is_set():
            self.state.conversation_starting(self.clock())
            self._trigger.clear()  # this attempt answers every trigger heard so far
            session = Session(self.settings, self.player, self.tools, self, clock=self.clock)
            if self.metrics is not None:
                session.stats.on_wire_latency = self.metrics.capture_to_wire.observe
            for pcm, captured_at in self._take_pending():  # said since the trigger
                session.send_frame(pcm, captured_at)
            self.pipeline.conversation_started()
            self.conversation_rateable(None)  # a press now is the next visitor's
            self.session = session
            self.sessions = [*self.sessions[-9:], session]
            retry_after = 0.0
            try:
                url = await self._conversation_url()
                if self._stop.is_set():
                    return True
                end = await session.run(url)
            except PlatformError as exc:
                refused = needs_human(exc)
                if self.metrics is not None:
                    self.metrics.platform_errors.labels(error_kind(exc)).inc()
                log.log(logging.ERROR if refused else logging.WARNING, "no signed URL: %s", exc)
                if refused:  # a human must act: the provider shows it and retries slowly
                    self.provider.report_failure(exc)
                end = SessionEnd(None, str(exc), resumable=not refused, error=str(exc))
                if isinstance(exc, PlatformUnavailable):
                    retry_after = exc.retry_after or 0.0
            finally:
                self.session = None
            self.ended.append(end)
            for listener in list(self.listeners):
                listener("conversation_ended", end)
            if end.connected and self.metrics is not None:
                normal = end.by_client or (end.code == 1000 and end.error is None)
                self.metrics.count_conversation(normal, end.resumable)
            if end.connected:
                self.conversation_rateable(session.conversation_id)
                self.events.publish(
                    "conversation_ended",
                    conversation_id=session.conversation_id,
                    reason=end.reason or end.error or "",
                    code=end.code,
                )
            set_log_context(CONVERSATION_ID=None)
            self._wake_note = None
            self.player.flush()
            self.state.conversation_ended(self.clock())
            if end.connected:
                self.conversations += 1
                attempt = 0
                self._show_error()
            if end.by_client or not end.resumable or self._stop.is_set():
                if end.error and not end.by_client:
                    self._show_error(end.error)
                    self._earcon("error")
                else:
                    self._earcon("end")
                return end.error is None
            attempt += 1
            self.reconnects += 1
            if attempt >= 3:
                self.state.set_offline(True, self.clock())
            delay = max(Backoff(cap).delay(attempt, self.rng), retry_after)
            log.warning(
                "conversation cut off (%s); resuming as a new conversation in %.1f s",
                end.error or ("connection lost" if end.code is None else f"code {end.code}"),
                delay,
            )
            # The platform's Retry-After binds; the rest of the backoff is cut short by a
            # user who wants to talk (the wake word, the button, the voice trigger).
            await first_of(self._stop.wait(), timeout=retry_after)
            await first_of(self._stop.wait(), self._trigger.wait(), timeout=delay - retry_after)
            self._trigger.clear()  # this attempt is what the trigger asked for
        return True

    def on_connected(self, conversation_id: str) -> None:
        set_log_context(CONVERSATION_ID=conversation_id)
        self.events.publish("conversation_started", conversation_id=conversation_id)
        now = self.clock()
        self.state.set_offline(False, now)
        self._show_error()  # the platform took us: a past conversation's error is over
        self.state.conversation_started(now)
        if self._wake_note is None:  # the wake word played it already
            self._earcon("listen")

    def on_agent_audio(self, samples: int) -> None:
        now = self.clock()
        if self.pipeline.agent_audio_started(now):
            self.state.agent_audio_started(now)
            done, self._user_done_at = self._user_done_at, None
            if done is not None and self.metrics is not None:
                self.metrics.response.observe(max(0.0, now - done))

    def on_interruption(self) -> None:
        self.pipeline.interrupted()

    def on_user_transcript(self, text: str) -> None:
        self.pipeline.user_transcript()
        self.events.publish("user_transcript", text=text)

    def on_agent_response(self, text: str) -> None:
        self.events.publish("agent_response", text=text)

    def on_agent_response_correction(self, original: str, corrected: str) -> None:
        self.events.publish("agent_response_correction", original=original, corrected=corrected)

    def on_frame(self, frame: Frame) -> None:
        """One captured frame (event loop thread): the pipeline decides, this executes."""
        pcm = frame.pcm
        if self.aec is not None:
            tap = self.player.tap  # type: ignore[attr-defined]
            pcm = self.aec.process(pcm, tap.take(len(pcm) // 2))
        now = frame.captured_at
        self.state.tick(now)
        session = self.session
        if session is not None:
            session.flush_tail_if_idle(now)
        actions = self.pipeline.process(
            pcm,
            now,
            in_conversation=session is not None or self._opening,
            muted=self._muted,
            ptt_held=self._ptt_held,
        )
        for action in actions:
            act = action.act
            if act is Act.SEND:
                if session is not None:
                    session.send_frame(action.pcm, now)
                else:
                    self._keep(action.pcm, now)  # until the conversation being opened exists
            elif act is Act.WAKE and action.wake is not None:
                self._woken(action.wake, now)
            elif act is Act.START_CONVERSATION:
                self._open(action.frames or [], now)
                log.info("voice detected: starting a conversation")
                self.start_conversation()
            elif act is Act.WAKE_ECHO and action.wake is not None:
                log.info(
                    "wake word %s in the device's own voice (probability %.2f): ignored",
                    action.wake.word,
                    action.wake.probability,
                )
            elif act is Act.BARGE_IN and session is not None:
                session.local_barge_in()
                self.state.barge_in(now)
                self.events.publish("barge_in")
                onset, self._onset_over_agent = self._onset_over_agent, None
                if self.metrics is not None:
                    self.metrics.barge_ins.inc()
                    if onset is not None and now - onset < 3.0:
                        self.metrics.barge_in_reaction.observe(now - onset)
                if action.wake is not None:
                    self._woken_over_agent(action.wake)
                else:
                    log.info("barge-in: the user talks over the agent; playback stopped")
            elif act is Act.NOTE_ACTIVITY and session is not None:
                session.note_activity()
                if self.pipeline.agent_audible:
                    self._onset_over_agent = now
            elif act is Act.USER_SPEECH_STARTED:
                self.state.user_speech_started(now)
            elif act is Act.USER_SPEECH_ENDED:
                self.state.user_speech_ended(now)
                self._user_done_at = now
            elif act is Act.AGENT_AUDIO_FINISHED:
                self.state.agent_audio_finished(now)


def error_kind(exc: Exception) -> str:
    """A platform failure's kind, as the metrics label it."""
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, AgentNotFoundError):
        return "agent_not_found"
    if isinstance(exc, PlatformUnavailable):
        return "unavailable"
    return "other"
