"""The frame pipeline: one captured frame in, the actions it calls for out (pure).

Every 20 ms the microphone hands in a frame. What happens to it is decided here and
only here: the VAD gate, the echo tail after the agent's last word, the barge-in
detector (is the agent audible? is the user really talking over it?), mute and
push-to-talk (silence on the wire, never the microphone), the voice and wake-word
triggers, and the uplink's pre-roll. The daemon executes the :class:`Action` list it
gets back, in order: send these bytes, stop the agent's playback, start a conversation,
move the turn state.

Nothing here reads a clock or touches a socket: the frame's capture time comes in as
``now``, the playback side as a :class:`PlaybackView` (the player's ``playing`` flag and
output level), and the conversation's events through :meth:`FramePipeline.agent_audio_started`,
:meth:`~FramePipeline.interrupted` and :meth:`~FramePipeline.user_transcript`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from hello_device.core.turn.bargein import BargeInDetector
from hello_device.core.turn.uplink import UplinkGate
from hello_device.core.turn.vad import VadGate
from hello_device.core.turn.wake import WakeEvent, WakeGate

ECHO_TAIL_S = 0.3
"""After the agent stops talking, the room still rings with it for a moment: no user
speech is taken from the microphone for this long (a user who starts right away is not
lost: the uplink's pre-roll still holds those frames)."""


class Act(enum.Enum):
    """What an :class:`Action` asks the daemon to do."""

    SEND = "send"
    """Send :attr:`Action.pcm` to the platform (one frame, 16 kHz mono)."""
    START_CONVERSATION = "start_conversation"
    """The voice trigger fired: start a conversation; :attr:`Action.frames` is the
    pre-roll to send first, so the first syllable is not lost."""
    WAKE = "wake"
    """The wake word, outside a conversation: start one at once; :attr:`Action.wake`
    says what was heard and which frames go first. Until the conversation is open
    the caller keeps what the following frames send (nothing of it is lost)."""
    WAKE_ECHO = "wake_echo"
    """The wake word was heard in the device's own voice and ignored (to be logged)."""
    BARGE_IN = "barge_in"
    """The user talks over the agent: stop its playback now (and tell the state); with
    :attr:`Action.wake` set, it was the wake word (``during_agent = "interrupt"``)."""
    NOTE_ACTIVITY = "note_activity"
    """The user started speaking: the conversation's inactivity timer starts again."""
    USER_SPEECH_STARTED = "user_speech_started"
    USER_SPEECH_ENDED = "user_speech_ended"
    AGENT_AUDIO_FINISHED = "agent_audio_finished"
    """The agent's playback ran out (a turn ended without a barge-in, or after one)."""


@dataclass(slots=True)
class Action:
    """One thing to do, in order (slotted, not frozen: one or two of these a frame)."""

    act: Act
    pcm: bytes = b""
    frames: list[bytes] | None = None
    wake: WakeEvent | None = None


class PlaybackView(Protocol):
    """What the pipeline needs to know of the agent's playback (the player has both)."""

    @property
    def playing(self) -> bool: ...

    def level_dbfs(self) -> float: ...


class FramePipeline:
    """Decides, frame by frame, what the microphone's audio does (see the module doc)."""

    def __init__(
        self,
        vad: VadGate,
        bargein: BargeInDetector,
        uplink: UplinkGate,
        playback: PlaybackView,
        *,
        start_on_voice: bool = False,
        barge_in: bool = True,
        echo_tail_s: float = ECHO_TAIL_S,
        wake: WakeGate | None = None,
        wake_interrupts: bool = True,
    ) -> None:
        self.vad = vad
        self.bargein = bargein
        self.uplink = uplink
        self.playback = playback
        self.start_on_voice = start_on_voice
        self.barge_in_enabled = barge_in
        self.echo_tail_s = echo_tail_s
        self.wake = wake
        """The wake-word gate, when a wake word starts conversations."""
        self.wake_interrupts = wake is not None and wake_interrupts
        """The wake word while the agent talks stops it (else it is not listened for in
        a conversation at all)."""
        self._in_conversation = False
        self.mic_dbfs = -120.0
        """The level of the last frame (for level meters)."""
        self._agent_since: float | None = None
        self._barged_in = False
        self._echo_tail_until = 0.0

    # ------------------------------------------------------------ conversation events

    @property
    def agent_audible(self) -> bool:
        """The agent's voice is (or should be) coming out of the loudspeaker."""
        return self._agent_since is not None

    def conversation_started(self) -> None:
        """A new conversation: nothing of the last one's agent turn carries over."""
        self._agent_since = None
        self._barged_in = False
        self.bargein.reset()

    def agent_audio_started(self, now: float) -> bool:
        """Agent audio was queued; True when this starts a new agent turn."""
        if self._agent_since is not None:
            return False
        self._agent_since = now
        self._barged_in = False
        self.bargein.reset()
        self.uplink.settle()
        return True

    def interrupted(self) -> None:
        """The platform interrupted the agent (its playback was flushed)."""
        self._agent_since = None

    def user_transcript(self) -> None:
        """The platform transcribed a user turn: a past barge-in is over."""
        self._barged_in = False

    # ------------------------------------------------------------ per frame

    def process(
        self,
        pcm: bytes,
        now: float,
        *,
        in_conversation: bool,
        muted: bool = False,
        ptt_held: bool = True,
    ) -> list[Action]:
        """One captured frame (16 kHz mono int16, captured at ``now``); the actions."""
        gate = self.vad.process(pcm)
        self.mic_dbfs = gate.level_dbfs
        if not in_conversation:
            self._in_conversation = False
            if self.wake is not None:
                if muted:
                    self.wake.pause()
                else:
                    event = self.wake.process(
                        pcm, gate.voiced, echo_possible=False, over_echo=False
                    )
                    if event is not None and event.echo:
                        return [Action(Act.WAKE_ECHO, wake=event)]
                    if event is not None:
                        self.vad.close()  # what follows must open the gate afresh
                        return [Action(Act.WAKE, wake=event)]
            if gate.onset and self.start_on_voice and not muted:
                return [Action(Act.START_CONVERSATION, frames=list(gate.preroll))]
            return []
        if not self._in_conversation:
            self._in_conversation = True
            self.uplink.reset()  # a new conversation's audio starts here, nothing before
        actions: list[Action] = []
        agent_audible = self._agent_since is not None
        if agent_audible and not self.playback.playing:
            self._agent_since = None
            agent_audible = False
            actions.append(Action(Act.AGENT_AUDIO_FINISHED))
            if not self._barged_in:
                # The gate may be open on the loudspeaker's echo, and the uplink holds the
                # echo of the reply's last words: neither may reach the platform as speech.
                self.vad.close()
                actions.extend(Action(Act.SEND, out) for out in self.uplink.flush_silence())
                self._echo_tail_until = now + self.echo_tail_s
        guarded = agent_audible and not self._barged_in
        if guarded and (self.barge_in_enabled or self.wake_interrupts):
            since = self._agent_since if self._agent_since is not None else now
            fired = self.bargein.update(
                gate.voiced,
                gate.level_dbfs,
                self.playback.level_dbfs(),
                True,
                (now - since) * 1000.0,
            )
            if fired and self.barge_in_enabled:
                self._barged_in = True
                self._agent_since = None
                actions.append(Action(Act.BARGE_IN))
        woke = False
        if self.wake_interrupts:
            woke = self._wake_in_conversation(pcm, gate.voiced, agent_audible, muted, actions)
        elif self.wake is not None:
            self.wake.pause()  # not listened for in a conversation: afresh after it
        if gate.onset:
            actions.append(Action(Act.NOTE_ACTIVITY))
            if not agent_audible:
                actions.append(Action(Act.USER_SPEECH_STARTED))
        elif gate.ended:
            actions.append(Action(Act.USER_SPEECH_ENDED))
        speech = (
            gate.speaking
            and not woke
            and (not agent_audible or self._barged_in)
            and now >= self._echo_tail_until
        )
        if muted or not ptt_held:
            pcm, speech = bytes(len(pcm)), False  # nothing private leaves the device
        for out in self.uplink.process(pcm, speech):
            actions.append(Action(Act.SEND, out))
        return actions

    def _wake_in_conversation(
        self, pcm: bytes, voiced: bool, agent_audible: bool, muted: bool, actions: list[Action]
    ) -> bool:
        """The wake word while the agent talks stops it; True when it did so now."""
        wake = self.wake
        assert wake is not None
        if muted:
            wake.pause()
            return False
        guarded = agent_audible and not self._barged_in
        event = wake.process(
            pcm, voiced, echo_possible=guarded, over_echo=guarded and self.bargein.over_echo
        )
        if event is not None and event.echo:
            actions.append(Action(Act.WAKE_ECHO, wake=event))
            return False
        if event is None or not guarded:
            return False  # the user's turn: already listening
        self._barged_in = True
        self._agent_since = None
        self.vad.close()  # the question must open the gate afresh
        held = self.uplink.flush_held() if wake.send_wake_audio else self.uplink.flush_silence()
        actions.extend(Action(Act.SEND, out) for out in held)
        actions.append(Action(Act.BARGE_IN, wake=event))
        return True
