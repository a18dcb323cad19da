"""TurnStateMachine: every transition, the ignored events, overlays, listeners, timeout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hello_device.core.turn import (
    DeviceState,
    TurnStateMachine,
)

S = DeviceState
Change = tuple[DeviceState, DeviceState, str]

EVENTS: dict[str, Callable[[TurnStateMachine, float], bool]] = {
    "conversation_starting": TurnStateMachine.conversation_starting,
    "conversation_started": TurnStateMachine.conversation_started,
    "conversation_ended": TurnStateMachine.conversation_ended,
    "user_speech_started": TurnStateMachine.user_speech_started,
    "user_speech_ended": TurnStateMachine.user_speech_ended,
    "agent_audio_started": TurnStateMachine.agent_audio_started,
    "agent_audio_finished": TurnStateMachine.agent_audio_finished,
    "barge_in": TurnStateMachine.barge_in,
    "wake_word": TurnStateMachine.wake_word,
}

# The transition table of the module docstring: (event, from) -> to. Anything else is
# ignored.
TRANSITIONS: dict[tuple[str, DeviceState], DeviceState] = {
    ("conversation_starting", S.IDLE): S.CONNECTING,
    ("conversation_started", S.IDLE): S.LISTENING,
    ("conversation_started", S.CONNECTING): S.LISTENING,
    ("conversation_ended", S.CONNECTING): S.IDLE,
    ("conversation_ended", S.LISTENING): S.IDLE,
    ("conversation_ended", S.THINKING): S.IDLE,
    ("conversation_ended", S.SPEAKING): S.IDLE,
    ("user_speech_started", S.THINKING): S.LISTENING,
    ("user_speech_ended", S.LISTENING): S.THINKING,
    ("agent_audio_started", S.CONNECTING): S.SPEAKING,
    ("agent_audio_started", S.LISTENING): S.SPEAKING,
    ("agent_audio_started", S.THINKING): S.SPEAKING,
    ("agent_audio_finished", S.SPEAKING): S.LISTENING,
    ("barge_in", S.SPEAKING): S.LISTENING,
    ("wake_word", S.IDLE): S.LISTENING,
    ("wake_word", S.CONNECTING): S.LISTENING,
}
CONVERSATION_STATES = [S.IDLE, S.CONNECTING, S.LISTENING, S.THINKING, S.SPEAKING]

# How to reach each conversation state from IDLE.
PATHS: dict[DeviceState, list[str]] = {
    S.IDLE: [],
    S.CONNECTING: ["conversation_starting"],
    S.LISTENING: ["conversation_starting", "conversation_started"],
    S.THINKING: ["conversation_starting", "conversation_started", "user_speech_ended"],
    S.SPEAKING: ["conversation_starting", "conversation_started", "agent_audio_started"],
}


def machine_in(state: DeviceState, now: float = 0.0) -> TurnStateMachine:
    machine = TurnStateMachine(now=now)
    for event in PATHS[state]:
        assert EVENTS[event](machine, now)
    assert machine.state is state
    return machine


def record(machine: TurnStateMachine) -> list[Change]:
    changes: list[Change] = []
    machine.add_listener(lambda old, new, reason: changes.append((old, new, reason)))
    return changes


@pytest.mark.parametrize("start", CONVERSATION_STATES)
@pytest.mark.parametrize("event", list(EVENTS))
def test_every_event_from_every_state(event: str, start: DeviceState) -> None:
    machine = machine_in(start)
    changes = record(machine)
    expected = TRANSITIONS.get((event, start), start)
    changed = EVENTS[event](machine, 5.0)
    assert machine.state is expected
    assert changed is (expected is not start)
    if expected is start:
        assert changes == []
        assert machine.since == 0.0
    else:
        assert [(old, new) for old, new, _ in changes] == [(start, expected)]
        assert machine.since == 5.0


def test_a_whole_conversation() -> None:
    machine = TurnStateMachine(now=100.0)
    changes = record(machine)
    machine.conversation_starting(101.0)
    machine.conversation_started(102.0)
    machine.agent_audio_started(102.5)  # greeting
    machine.agent_audio_finished(104.0)
    machine.user_speech_started(105.0)  # already LISTENING: nothing visible
    machine.user_speech_ended(107.0)
    machine.agent_audio_started(108.0)
    machine.barge_in(109.0)
    machine.user_speech_ended(110.0)
    machine.user_speech_started(110.5)  # the user goes on
    machine.conversation_ended(112.0)
    assert changes == [
        (S.IDLE, S.CONNECTING, "conversation starting"),
        (S.CONNECTING, S.LISTENING, "conversation started"),
        (S.LISTENING, S.SPEAKING, "agent speaking"),
        (S.SPEAKING, S.LISTENING, "agent done"),
        (S.LISTENING, S.THINKING, "user done"),
        (S.THINKING, S.SPEAKING, "agent speaking"),
        (S.SPEAKING, S.LISTENING, "barge-in"),
        (S.LISTENING, S.THINKING, "user done"),
        (S.THINKING, S.LISTENING, "user speaking"),
        (S.LISTENING, S.IDLE, "conversation ended"),
    ]
    assert machine.since == 112.0
    assert not machine.in_conversation


def test_state_values_are_lowercase_names() -> None:
    assert [s.value for s in DeviceState] == [s.name.lower() for s in DeviceState]
    assert isinstance(S.THINKING, str) and S.THINKING == "thinking"
    assert DeviceState("offline") is S.OFFLINE


# -- overlays ---------------------------------------------------------------------------


def test_mute_overlay_hides_and_restores_the_conversation_state() -> None:
    machine = machine_in(S.LISTENING)
    changes = record(machine)
    assert machine.set_muted(True, 1.0)
    assert machine.state is S.MUTED and machine.muted
    assert not machine.set_muted(True, 1.5)  # no change
    machine.user_speech_ended(2.0)  # moves underneath, invisibly
    assert machine.state is S.MUTED and machine.conversation_state is S.THINKING
    assert machine.set_muted(False, 3.0)
    assert machine.state is S.THINKING
    assert changes == [(S.LISTENING, S.MUTED, "muted"), (S.MUTED, S.THINKING, "unmuted")]
    assert machine.since == 3.0


def test_overlay_priorities() -> None:
    machine = machine_in(S.SPEAKING)
    changes = record(machine)
    machine.set_muted(True, 1.0)
    machine.set_offline(True, 2.0)
    machine.set_error("microphone gone", 3.0)
    assert machine.state is S.ERROR and machine.error == "microphone gone"
    machine.set_muted(False, 4.0)  # hidden below ERROR: nothing visible
    machine.set_offline(False, 5.0)
    assert machine.state is S.ERROR
    machine.set_muted(True, 5.5)
    machine.set_error(None, 6.0)
    assert machine.state is S.MUTED
    machine.set_muted(False, 7.0)
    assert machine.state is S.SPEAKING
    assert changes == [
        (S.SPEAKING, S.MUTED, "muted"),
        (S.MUTED, S.OFFLINE, "offline"),
        (S.OFFLINE, S.ERROR, "error: microphone gone"),
        (S.ERROR, S.MUTED, "error cleared"),
        (S.MUTED, S.SPEAKING, "unmuted"),
    ]


def test_offline_above_muted() -> None:
    machine = machine_in(S.IDLE)
    machine.set_muted(True, 1.0)
    machine.set_offline(True, 2.0)
    assert machine.state is S.OFFLINE and machine.offline
    machine.set_offline(False, 3.0)
    assert machine.state is S.MUTED


def test_a_new_error_message_is_not_a_visible_change() -> None:
    machine = machine_in(S.IDLE)
    changes = record(machine)
    assert machine.set_error("a", 1.0)
    assert machine.set_error("b", 2.0)
    assert not machine.set_error("b", 3.0)
    assert machine.error == "b" and machine.since == 1.0
    assert changes == [(S.IDLE, S.ERROR, "error: a")]
    assert machine.set_error(None, 4.0)  # clearing is a change
    assert machine.state is S.IDLE and machine.error is None
    assert not machine.set_error(None, 5.0)


def test_conversation_ends_under_an_overlay() -> None:
    machine = machine_in(S.SPEAKING)
    machine.set_offline(True, 1.0)
    changes = record(machine)
    assert machine.conversation_ended(2.0)
    assert changes == [] and machine.state is S.OFFLINE
    machine.set_offline(False, 3.0)
    assert changes == [(S.OFFLINE, S.IDLE, "online")]


# -- the thinking timeout ---------------------------------------------------------------


def test_thinking_times_out_back_to_listening() -> None:
    machine = machine_in(S.LISTENING)
    machine.user_speech_ended(10.0)
    changes = record(machine)
    assert not machine.tick(17.99)
    assert machine.state is S.THINKING
    assert machine.tick(18.0)
    assert machine.state is S.LISTENING and machine.since == 18.0
    assert changes == [(S.THINKING, S.LISTENING, "thinking timed out")]
    assert not machine.tick(100.0)


def test_the_timeout_counts_from_entering_thinking() -> None:
    machine = TurnStateMachine(thinking_timeout_s=2.0)
    machine.conversation_started(0.0)
    machine.user_speech_ended(1.0)
    machine.user_speech_started(2.0)
    machine.user_speech_ended(2.5)
    assert not machine.tick(4.0)
    assert machine.tick(4.5)


def test_the_timeout_runs_under_an_overlay() -> None:
    machine = machine_in(S.LISTENING)
    machine.user_speech_ended(0.0)
    machine.set_muted(True, 5.0)
    changes = record(machine)
    assert not machine.tick(7.9)
    assert machine.tick(8.0)
    assert changes == [] and machine.conversation_state is S.LISTENING
    machine.set_muted(False, 10.0)
    assert machine.state is S.LISTENING


@pytest.mark.parametrize("state", [S.IDLE, S.CONNECTING, S.LISTENING, S.SPEAKING])
def test_tick_does_nothing_outside_thinking(state: DeviceState) -> None:
    machine = machine_in(state)
    assert not machine.tick(1e6)
    assert machine.state is state


def test_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="thinking_timeout_s"):
        TurnStateMachine(thinking_timeout_s=0.0)


# -- listeners --------------------------------------------------------------------------


def test_listeners_see_the_new_state_and_can_be_removed() -> None:
    machine = TurnStateMachine()
    seen: list[tuple[DeviceState, DeviceState]] = []

    def listener(old: DeviceState, new: DeviceState, reason: str) -> None:
        assert machine.state is new  # called after the change
        seen.append((old, new))

    machine.add_listener(listener)
    machine.conversation_starting(1.0)
    machine.remove_listener(listener)
    machine.remove_listener(listener)  # unknown: ignored
    machine.conversation_started(2.0)
    assert seen == [(S.IDLE, S.CONNECTING)]


def test_a_failing_listener_does_not_stop_the_others() -> None:
    machine = TurnStateMachine()
    after: list[Change] = []

    def broken(old: DeviceState, new: DeviceState, reason: str) -> None:
        raise RuntimeError("led driver")

    machine.add_listener(broken)
    machine.add_listener(lambda old, new, reason: after.append((old, new, reason)))
    with pytest.raises(RuntimeError, match="led driver"):
        machine.conversation_starting(1.0)
    assert machine.state is S.CONNECTING
    assert after == [(S.IDLE, S.CONNECTING, "conversation starting")]
    machine.add_listener(broken)
    with pytest.raises(ExceptionGroup) as group:
        machine.conversation_started(2.0)
    assert len(group.value.exceptions) == 2
    assert machine.state is S.LISTENING
