"""What a button press means, for every mode and long-press setting (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from hello_device.core.buttons import (
    Action,
    ButtonLogic,
)
from hello_device.settings import GpioSettings

# --------------------------------------------------------------------------- button logic

S, E, D, U, M, UM = (
    Action.START,
    Action.END,
    Action.PTT_DOWN,
    Action.PTT_UP,
    Action.MUTE,
    Action.UNMUTE,
)

# (mode, long_press) -> pressed(idle), pressed(in conv.), released(idle), released(in conv.),
#                       long_pressed[(in_conv, muted)] for FF, FT, TF, TT
LOGIC_TABLE: dict[tuple[str, str], tuple[Any, Any, Any, Any, list[list[Action]]]] = {
    ("toggle", "none"): ([S], [E], [], [], [[], [], [], []]),
    ("toggle", "end"): ([], [], [S], [E], [[], [], [E], [E]]),
    ("toggle", "mute"): ([], [], [S], [E], [[M], [UM], [M], [UM]]),
    ("push_to_talk", "none"): ([S, D], [D], [U], [U], [[], [], [], []]),
    ("push_to_talk", "end"): ([S, D], [D], [U], [U], [[], [], [], []]),
    ("push_to_talk", "mute"): ([S, D], [D], [U], [U], [[], [], [], []]),
}


@pytest.mark.parametrize(("mode", "long_press"), list(LOGIC_TABLE))
def test_button_logic_every_combination(mode: Any, long_press: Any) -> None:
    logic = ButtonLogic(mode, long_press)
    p_idle, p_conv, r_idle, r_conv, held = LOGIC_TABLE[mode, long_press]
    assert logic.pressed(in_conversation=False) == p_idle
    assert logic.pressed(in_conversation=True) == p_conv
    assert logic.released(in_conversation=False) == r_idle
    assert logic.released(in_conversation=True) == r_conv
    combos = [(False, False), (False, True), (True, False), (True, True)]
    for (in_conv, muted), expected in zip(combos, held, strict=True):
        assert logic.long_pressed(in_conversation=in_conv, muted=muted) == expected
    assert logic.long_press_enabled == (mode == "toggle" and long_press != "none")


def test_a_toggle_is_one_action_per_short_press() -> None:
    # With a long press configured the toggle waits for the release; without, it is the press.
    for logic in (ButtonLogic("toggle", "mute"), ButtonLogic("toggle", "none")):
        in_conv = False
        for _ in range(4):
            actions = logic.pressed(in_conv) + logic.released(in_conv)
            assert actions == [E if in_conv else S]
            in_conv = not in_conv


def test_button_logic_from_settings_and_validation() -> None:
    settings = GpioSettings(button_mode="push_to_talk", long_press="end")
    assert ButtonLogic.from_settings(settings) == ButtonLogic("push_to_talk", "end")
    with pytest.raises(ValueError, match="mode"):
        ButtonLogic("hold", "end")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="long_press"):
        ButtonLogic("toggle", "reboot")  # type: ignore[arg-type]
