"""The agent configuration read defensively (every alias), and merged with the settings
where the file is silent."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hello_device.core.agent_profile import (
    AgentProfile,
    apply_profile,
    effective_settings,
    map_agent_config,
)
from hello_device.settings import (
    Settings,
    load_settings,
)
from tests.platform.support import AGENT, AGENT_CONFIG, KEY, PROFILE, write_config

# --------------------------------------------------------------------------- mapping


def test_mapping_real_platform_fields() -> None:
    cfg = json.loads(json.dumps(AGENT_CONFIG))
    cfg["platform_settings"]["auth"]["enable_auth"] = True
    p = map_agent_config(cfg)
    assert p == AgentProfile(
        agent_id=AGENT,
        name="Front desk",
        user_input_audio_format="pcm_16000",
        agent_output_audio_format="pcm_22050",
        first_message="Hello!",
        language="en",
        turn_timeout_s=7.0,
        max_duration_s=600.0,
        private=True,
    )


def test_mapping_every_alias() -> None:
    cfg = {
        "conversation_config": {
            "asr": {"user_input_audio_format": "ULAW_8000"},
            "tts": {"output_format": "pcm_24000"},
            "stt": {"language": "fr"},
            "turn": {"silence_duration_ms": 650, "prefix_padding_ms": 250.4, "threshold": 0.6},
        },
        "platform_settings": {"auth": {"mode": "private"}},
    }
    p = map_agent_config(cfg)
    assert p.user_input_audio_format == "ulaw_8000"
    assert p.agent_output_audio_format == "pcm_24000"
    assert p.language == "fr"
    assert (p.silence_duration_ms, p.prefix_padding_ms, p.vad_threshold) == (650, 250, 0.6)
    assert p.private is True
    top = map_agent_config(
        {"turn_detection": {"silence_duration_ms": 800, "prefix_padding_ms": 100, "threshold": 0.4}}
    )
    assert (top.silence_duration_ms, top.prefix_padding_ms, top.vad_threshold) == (800, 100, 0.4)
    top_turn = map_agent_config({"turn": {"silence_duration_ms": 900}})
    assert top_turn.silence_duration_ms == 900
    nested_td = map_agent_config(
        {
            "conversation_config": {"turn_detection": {"silence_duration_ms": 1000}},
            "turn_detection": {"silence_duration_ms": 1},
        }
    )
    assert nested_td.silence_duration_ms == 1000  # conversation_config first


def test_mapping_real_field_wins_over_alias() -> None:
    p = map_agent_config(
        {
            "conversation_config": {
                "tts": {"agent_output_audio_format": "pcm_44100", "output_format": "pcm_8000"},
                "agent": {"language": "de"},
                "stt": {"language": "fr"},
            }
        }
    )
    assert p.agent_output_audio_format == "pcm_44100" and p.language == "de"


def test_mapping_defaults_and_wrong_types(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hello_device")
    assert map_agent_config({}) == AgentProfile()
    assert map_agent_config([]) == AgentProfile()  # type: ignore[arg-type]
    assert AgentProfile().private is False
    p = map_agent_config(
        {
            "name": 5,
            "conversation_config": {
                "agent": {"first_message": 42, "language": ["en"]},
                "stt": {"language": "es"},
                "turn": {"turn_timeout": "7", "silence_duration_ms": True, "threshold": 3},
                "conversation": {"max_duration_seconds": -5},
                "asr": "pcm_16000",
            },
            "platform_settings": {"auth": {"enable_auth": "yes"}},
        }
    )
    assert p.name is None and p.first_message is None
    assert p.language == "es"  # the wrong-typed real field is skipped, the alias used
    assert p.turn_timeout_s is None and p.silence_duration_ms is None
    assert p.vad_threshold is None and p.max_duration_s is None and p.private is False
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("conversation_config.agent.first_message" in m for m in debug)


def test_mapping_unknown_audio_format_warns(caplog: pytest.LogCaptureFixture) -> None:
    p = map_agent_config({"conversation_config": {"tts": {"agent_output_audio_format": "mp3"}}})
    assert p.agent_output_audio_format == "pcm_16000"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mp3" in warnings[0].getMessage()


def test_explicit_keys_are_captured_when_the_file_is_read(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "[vad]\nend_silence_ms = 500\n[conversation.dynamic_variables]\na = 1\n"
    )
    settings = load_settings(path, env={})
    assert settings.explicit == {
        "platform.agent_id",
        "platform.api_key",
        "state.dir",
        "vad.end_silence_ms",
        "conversation.dynamic_variables",
    }
    assert Settings().explicit == frozenset()


def test_an_edit_without_a_reload_changes_nothing(tmp_path: Path) -> None:
    """apply_profile and effective_settings use the keys the file set when it was read:
    editing the file on disk without a reload must not change the running behaviour."""
    path = write_config(tmp_path)
    settings = load_settings(path, env={})
    before = apply_profile(settings, PROFILE)
    rows_before = effective_settings(settings, PROFILE, "platform")
    assert before.vad.preroll_ms == 2000  # the platform's hint (5000), clamped
    path.write_text(path.read_text() + "[vad]\npreroll_ms = 100\nend_silence_ms = 400\n")
    assert apply_profile(settings, PROFILE) == before
    assert effective_settings(settings, PROFILE, "platform") == rows_before
    # A reload (reading the file again) is what applies the edit.
    reloaded = apply_profile(load_settings(path, env={}), PROFILE)
    assert (reloaded.vad.preroll_ms, reloaded.vad.end_silence_ms) == (100, 400)


def test_effective_settings_file_wins_over_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)
    path = write_config(tmp_path, '[vad]\nend_silence_ms = 500\n[conversation]\nlanguage = "de"\n')
    settings = load_settings(path)
    rows = {k: (v, s) for k, v, s in effective_settings(settings, PROFILE, "platform")}
    assert rows["vad.end_silence_ms"] == (500, "file")
    assert rows["conversation.language"] == ("de", "file")
    assert rows["vad.preroll_ms"] == (5000, "platform")
    assert rows["conversation.first_message"] == ("Hi there", "platform")
    assert rows["conversation.max_duration_s"] == (600.0, "platform")
    assert rows["platform.api_key"] == ("***", "file")
    assert rows["platform.agent_id"] == (AGENT, "file")
    assert rows["device.name"] == ("hello-device", "default")
    assert rows["platform.private"] == (True, "platform")
    assert rows["platform.agent_output_audio_format"] == ("pcm_24000", "platform")
    assert rows["platform.user_input_audio_format"] == ("pcm_16000", "platform")
    assert rows["platform.turn_timeout_s"] == (5.0, "platform")
    assert all(KEY not in repr(v) for v, _ in rows.values())

    cached = {k: (v, s) for k, v, s in effective_settings(settings, PROFILE, "cache")}
    assert cached["vad.preroll_ms"] == (5000, "cache")
    none = {k: (v, s) for k, v, s in effective_settings(settings, None, "none")}
    assert none["vad.preroll_ms"] == (300, "default")
    assert none["platform.private"] == (False, "default")
    # Profile fields the platform left out keep the local default.
    sparse = {k: (v, s) for k, v, s in effective_settings(settings, AgentProfile(), "platform")}
    assert sparse["conversation.first_message"] == (None, "default")

    # Every key of every section, then the platform rows, in order.
    keys = [k for k, _, _ in effective_settings(settings, None, "none")]
    assert len(keys) == len(set(keys))
    assert keys.index("platform.private") < keys.index("conversation.start")


def test_effective_settings_key_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[platform]\nagent_id = "{AGENT}"\n')
    settings = load_settings(path, env={"HELLO_DEVICE_API_KEY": KEY})
    rows = {k: (v, s) for k, v, s in effective_settings(settings, None, "none")}
    assert rows["platform.api_key"] == ("***", "environment")


def test_apply_profile_only_local_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELLO_DEVICE_API_KEY", raising=False)
    settings = load_settings(write_config(tmp_path, "[vad]\nend_silence_ms = 500\n"))
    merged = apply_profile(settings, PROFILE)
    assert merged.vad.end_silence_ms == 500  # file wins
    assert merged.vad.preroll_ms == 2000  # platform, clamped to the allowed maximum
    assert merged.conversation.max_duration_s == 600.0
    assert merged.conversation.first_message is None  # overrides stay file-only
    assert apply_profile(settings, None) is settings
