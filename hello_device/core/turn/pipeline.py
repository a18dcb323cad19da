"""The frame pipeline: one captured frame in, the actions it calls for out (pure).

Every 20 ms the microphone hands in a frame. What happens to it is decided here and
only here: the VAD gate, the echo tail after the agent's last word, the barge-in
detector (is the agent audible? is the user really talking over it?), mute and
push-to-talk (silence on the wire, never the microphone), the voice trigger, and the
uplink's pre-roll. The daemon executes the :class:`Action` list it gets back, in order:
send these bytes, stop the agent's playback, start a conversation, move the turn state.

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
    BARGE_IN = "barge_in"
    """The user talks over the agent: stop its playback now (and tell the state)."""
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
    ) -> None:
        self.vad = vad
        self.bargein = bargein
        self.uplink = uplink
        self.playback = playback
        self.start_on_voice = start_on_voice
        self.barge_in_enabled = barge_in
        self.echo_tail_s = echo_tail_s
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
        if not in_conversation:
            if gate.onset and self.start_on_voice and not muted:
                return [Action(Act.START_CONVERSATION, frames=list(gate.preroll))]
            return []
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
        if agent_audible and not self._barged_in and self.barge_in_enabled:
            since = self._agent_since if self._agent_since is not None else now
            if self.bargein.update(
                gate.voiced,
                gate.level_dbfs,
                self.playback.level_dbfs(),
                True,
                (now - since) * 1000.0,
            ):
                self._barged_in = True
                self._agent_since = None
                actions.append(Action(Act.BARGE_IN))
        if gate.onset:
            actions.append(Action(Act.NOTE_ACTIVITY))
            if not agent_audible:
                actions.append(Action(Act.USER_SPEECH_STARTED))
        elif gate.ended:
            actions.append(Action(Act.USER_SPEECH_ENDED))
        speech = (
            gate.speaking
            and (not agent_audible or self._barged_in)
            and now >= self._echo_tail_until
        )
        if muted or not ptt_held:
            pcm, speech = bytes(len(pcm)), False  # nothing private leaves the device
        for out in self.uplink.process(pcm, speech):
            actions.append(Action(Act.SEND, out))
        return actions
