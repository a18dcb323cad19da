"""Barge-in detection: is the user really talking over the agent, or is it the loudspeaker?

Pure and clock-free: one :meth:`BargeInDetector.update` per captured frame, time passed
in as milliseconds, levels in dBFS (see :func:`hello_device.turn.vad.frame_dbfs`).

While agent audio is audible the microphone hears the agent too (the echo), and a VAD
calls that echo speech. So a frame only counts towards a barge-in (a **candidate**) when

* the VAD calls it speech (``voiced``), and
* the microphone level exceeds the **predicted echo** by ``echo_margin_db``:
  ``mic_dbfs >= held_playback_dbfs + coupling_db + echo_margin_db``.

A barge-in is confirmed by ``min_speech_ms`` of candidate frames in one run. The run may
contain one non-candidate frame (``max_gap_frames``: the closure of a plosive, a frame
where the agent was momentarily louder), which does not count towards the duration; a
second one restarts the run just after the first, two in a row end it. After a barge-in the detector stays quiet until
:meth:`~BargeInDetector.reset` or a new agent turn (``agent_turn_ms`` going back down).

**Warm-up**: nothing is confirmed in the first ``warmup_ms`` of an agent turn, counted
from ``agent_turn_ms`` 0 *and again* from the turn's first sound (playback at least
``min_playback_dbfs``), so a reply that starts with silence still gets its warm-up where
the echo starts. The user may still be finishing their sentence there, and it is where
the echo path is first heard.

Predicting the echo
-------------------

``held_playback_dbfs`` is a peak-hold of the playback level: the maximum over the last
``echo_hold_ms``, then falling by at most ``echo_tail_db_per_s``. The hold covers the
delay between the player's "now" and the echo reaching the microphone (output buffering,
the acoustic path); the slow fall covers the room's reverberation, which rings on after a
loud syllable (60 dB/s is a reverberation time of 1 s, on the safe side for living rooms)
and also absorbs longer delays. Without them, every syllable's end would look like a user
(see the tests).

``coupling_db`` is the echo path's gain: microphone level minus playback level when the
microphone hears only echo. It starts at ``initial_coupling_db`` (0 dB: "the echo is as
loud as the playback") and is learnt from frames where the agent is actually playing
(playback at least ``min_playback_dbfs``; otherwise the microphone hears the room, not
the echo path). The observation is ``mic_dbfs - held_playback_dbfs``; the estimate is a
**windowed maximum** of the *accepted* observations over the last ``coupling_window_ms``
of agent sound — an envelope of the echo's peaks, not its average, so a quiet stretch of
echo does not make the next loud syllable look like a user — approached at limited
rates:

* **down** by at most ``coupling_decay_db_per_s``, fast enough that a device whose
  microphone hardly hears its loudspeaker allows barge-in within the first second;
* **up** by at most ``coupling_rise_db_per_s`` (slowly) from observations above the
  estimate but less than the margin above it. They are ambiguous: a louder echo, or a
  user talking quietly over the agent; a user's onset grows by tens of dB within 50 ms
  and stays well ahead of a slow rise;
* observations the margin or more above the estimate are **never learnt**: they are
  exactly what the detector is testing, and learning from them would let a user's voice
  raise its own threshold;
* after a barge-in nothing is learnt until the next turn (the microphone carries the
  user).

**Calibration**: the echo path may be hotter than the initial guess (a loudspeaker right
next to the microphone, a high capture gain); an echo more than the margin above the
estimate would then be taken for a user, and never learnt. So the first ``warmup_ms`` of
agent sound the detector ever hears (again after ``reset(forget_coupling=True)``) is
taken for echo whatever its level, and may raise the estimate at once. A user talking
through that very first warm-up only makes the detector conservative until the window
forgets it. Later warm-ups are not trusted, so a user who goes on talking when the agent
starts is heard as soon as the warm-up is over.

What the caller must provide
----------------------------

``playback_dbfs`` is the level of what the loudspeaker is driven with during the
captured frame, after any software volume, aligned for the output latency as well as the
caller can (the hold and the tail absorb the rest). ``agent_turn_ms`` is the time since
the agent's turn became audible. When the output volume or device changes in a way the
playback level does not show (a hardware mixer), call ``reset(forget_coupling=True)`` so
the next turn calibrates again; otherwise an echo that became more than ``echo_margin_db``
louder than learnt is taken for a user.

Limits
------

Only levels are compared, so the user must be audibly louder than the echo. On the test
recordings: with the echo 30 dB below the user's voice (or no echo) a barge-in is
confirmed 100-140 ms after the onset; 20 dB below, the quiet "s" of "Stop" is often
masked and confirmation comes on the vowel (140-240 ms); 10 dB below, mostly 240-260 ms;
at equal level only in the agent's pauses. Echo cancellation in front of the detector
(in-process or PipeWire's echo-cancel module) moves a device towards the first case.
"""

from __future__ import annotations

import math
from collections import deque

from hello_device.core.turn.vad import SILENCE_DBFS

_COUPLING_BLOCK_MS = 100


class BargeInDetector:
    """Per-frame barge-in decision with an echo guard; see the module docstring.

    :param frame_ms: length of one captured frame.
    :param min_speech_ms: candidate speech that confirms a barge-in.
    :param warmup_ms: start of each agent turn (and of its sound) when nothing is
        confirmed.
    :param echo_margin_db: how far the microphone must exceed the predicted echo.
    :param initial_coupling_db: echo path gain assumed before anything was learnt.
    :param echo_hold_ms: how long the playback level's peak is held for the prediction.
    :param echo_tail_db_per_s: how fast the predicted echo may fall after the hold.
    :param min_playback_dbfs: playback quieter than this teaches nothing about the echo
        path and does not start the warm-up.
    :param coupling_window_ms: agent sound over which the echo's peaks are remembered.
    :param coupling_decay_db_per_s: how fast the coupling estimate may fall.
    :param coupling_rise_db_per_s: how fast it may rise outside the calibration.
    :param max_gap_frames: single non-candidate frames tolerated inside a confirming run;
        at one more, the run restarts after the oldest. Two in a row end the run.
    :param min_coupling_db: the echo path estimate never falls below this. Behind an
        echo canceller (in-process, the sound server's, or a speakerphone's own) the
        learnt echo can sink to -60 dB, and then a burst of residual echo would pass
        for a user.
    """

    def __init__(
        self,
        frame_ms: int = 20,
        min_speech_ms: int = 120,
        warmup_ms: int = 250,
        echo_margin_db: float = 6.0,
        initial_coupling_db: float = 0.0,
        echo_hold_ms: int = 60,
        echo_tail_db_per_s: float = 60.0,
        min_playback_dbfs: float = -50.0,
        coupling_window_ms: int = 1500,
        coupling_decay_db_per_s: float = 40.0,
        min_coupling_db: float = -30.0,
        coupling_rise_db_per_s: float = 2.0,
        max_gap_frames: int = 1,
    ) -> None:
        if frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, not {frame_ms!r}")
        if min_speech_ms <= 0:
            raise ValueError(f"min_speech_ms must be positive, not {min_speech_ms!r}")
        if warmup_ms < 0 or echo_hold_ms < 0 or max_gap_frames < 0:
            raise ValueError("warmup_ms, echo_hold_ms and max_gap_frames must not be negative")
        if min(coupling_decay_db_per_s, coupling_rise_db_per_s, echo_tail_db_per_s) < 0:
            raise ValueError("rates must not be negative")
        if coupling_window_ms < frame_ms:
            raise ValueError("coupling_window_ms must be at least one frame")
        self.frame_ms = frame_ms
        self.min_speech_ms = min_speech_ms
        self.warmup_ms = warmup_ms
        self.echo_margin_db = echo_margin_db
        self.initial_coupling_db = initial_coupling_db
        self.min_coupling_db = min_coupling_db
        self.min_playback_dbfs = min_playback_dbfs
        self.max_gap_frames = max_gap_frames
        self._min_frames = max(1, math.ceil(min_speech_ms / frame_ms))
        self._calibration_frames = math.ceil(warmup_ms / frame_ms)
        self._calibration_left = self._calibration_frames
        self._decay = coupling_decay_db_per_s * frame_ms / 1000.0
        self._rise = coupling_rise_db_per_s * frame_ms / 1000.0
        self._tail = echo_tail_db_per_s * frame_ms / 1000.0
        self._recent: deque[float] = deque(maxlen=max(1, math.ceil(echo_hold_ms / frame_ms)))
        self._held = SILENCE_DBFS
        # Windowed maximum of the accepted observations, kept per block of frames.
        self._block_frames = max(1, round(_COUPLING_BLOCK_MS / frame_ms))
        self._blocks: deque[float] = deque(
            maxlen=max(1, round(coupling_window_ms / (self._block_frames * frame_ms)))
        )
        self._block_max = -math.inf
        self._block_len = 0
        self.coupling_db = initial_coupling_db
        """Current estimate of the echo path gain (dB, mic level minus playback level)."""
        self.reason = "idle"
        """Why the last :meth:`update` decided what it did (for logs and tests)."""
        self.fired = False
        """A barge-in was confirmed in the current agent turn."""
        self.predicted_echo_dbfs = SILENCE_DBFS
        """The echo level the last frame was compared with."""
        self.over_echo = False
        """The last frame was speech clearly above the predicted echo (the echo guard's
        verdict, warm-up or not; the wake-word gate shares it)."""
        # The confirming run: candidate counts between its non-candidate frames.
        self._segments: list[int] = [0]
        self._last_turn_ms = -math.inf
        self._first_sound_ms: float | None = None

    def reset(self, *, forget_coupling: bool = False) -> None:
        """Re-arm for a new agent turn; the coupling estimate is kept unless asked."""
        self.fired = False
        self.reason = "reset"
        self._clear_run()
        self._forget_playback()
        self._last_turn_ms = -math.inf
        if forget_coupling:
            self.coupling_db = self.initial_coupling_db
            self._calibration_left = self._calibration_frames
            self._blocks.clear()
            self._block_max = -math.inf
            self._block_len = 0

    def _forget_playback(self) -> None:
        self._recent.clear()
        self._held = SILENCE_DBFS
        self._first_sound_ms = None

    def _clear_run(self) -> None:
        self._segments = [0]

    def update(
        self,
        voiced: bool,
        mic_dbfs: float,
        playback_dbfs: float,
        agent_audible: bool,
        agent_turn_ms: float,
    ) -> bool:
        """Take one captured frame; True exactly once when a barge-in is confirmed.

        :param voiced: the VAD calls this microphone frame speech.
        :param mic_dbfs: RMS level of the microphone frame.
        :param playback_dbfs: RMS level of the agent audio the loudspeaker plays during
            this frame (:data:`~hello_device.turn.vad.SILENCE_DBFS` when nothing plays).
        :param agent_audible: an agent turn is being played (its audio may be heard).
        :param agent_turn_ms: time since the current agent turn became audible; going
            back down means a new agent turn, which re-arms the detector.
        """
        if agent_turn_ms < self._last_turn_ms:
            # A new agent turn: re-arm; the playback history belongs to the old one.
            self.fired = False
            self._clear_run()
            self._forget_playback()
        self._last_turn_ms = agent_turn_ms

        if not agent_audible:
            self._forget_playback()
            self._clear_run()
            self.predicted_echo_dbfs = SILENCE_DBFS
            self.over_echo = False
            self.reason = "agent not audible"
            return False

        self._recent.append(playback_dbfs)
        held = max(*self._recent, self._held - self._tail)
        self._held = held
        predicted = held + self.coupling_db
        self.predicted_echo_dbfs = predicted
        above = mic_dbfs - predicted
        self.over_echo = voiced and above >= self.echo_margin_db
        if self._first_sound_ms is None and playback_dbfs >= self.min_playback_dbfs:
            self._first_sound_ms = agent_turn_ms
        warming_up = agent_turn_ms < self.warmup_ms or (
            self._first_sound_ms is not None
            and agent_turn_ms - self._first_sound_ms < self.warmup_ms
        )
        if not self.fired:
            # After a barge-in the microphone carries the user: nothing to learn there.
            self._learn(mic_dbfs - held, playback_dbfs, calibrating=warming_up)

        if self.fired:
            self.reason = "already fired this agent turn"
            return False
        if warming_up:
            self._clear_run()
            self.reason = "warm-up"
            return False

        segments = self._segments
        if self.over_echo:
            segments[-1] += 1
        elif segments[-1] == 0:
            self._clear_run()  # two non-candidates in a row (or no run yet)
        else:
            segments.append(0)
            if len(segments) > self.max_gap_frames + 1:
                del segments[0]  # one gap too many: restart after the oldest one
        run = sum(self._segments)

        if run >= self._min_frames:
            self.fired = True
            self.reason = (
                f"barge-in: {run * self.frame_ms} ms of speech "
                f"{above:.1f} dB above the predicted echo"
            )
            return True
        if not voiced:
            self.reason = "not voiced"
        elif above < self.echo_margin_db:
            self.reason = f"echo: mic {above:.1f} dB vs predicted echo"
        else:
            self.reason = f"candidate {run * self.frame_ms} ms"
        return False

    def _learn(self, observed: float, playback: float, calibrating: bool) -> None:
        """Adapt the coupling estimate from one frame (see the module docstring)."""
        if playback < self.min_playback_dbfs:
            return  # the agent is (nearly) silent: the mic hears the room, not the echo path
        trusted = calibrating and self._calibration_left > 0
        if trusted:
            self._calibration_left -= 1
        if trusted or observed < self.coupling_db + self.echo_margin_db:
            self._block_max = max(self._block_max, observed)
        self._block_len += 1
        if self._block_len >= self._block_frames:
            self._blocks.append(self._block_max)
            self._block_max = -math.inf
            self._block_len = 0
        target = max(max(self._blocks, default=-math.inf), self._block_max)
        if target == -math.inf:
            return  # nothing accepted in the whole window: keep the estimate
        if target > self.coupling_db:
            self.coupling_db = target if trusted else min(target, self.coupling_db + self._rise)
        else:
            self.coupling_db = max(target, self.coupling_db - self._decay)
        self.coupling_db = max(self.coupling_db, self.min_coupling_db)

    @property
    def calibrated(self) -> bool:
        """The first warm-up's worth of agent sound has been heard (see the module
        docstring); until then warm-up frames are all taken for echo."""
        return self._calibration_left <= 0
