"""SttSettings: defaults, the model's aliases, ranges, the pause within the end of turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.stt.settings import SttSettings
from voice.errors import SettingsError

pytestmark = pytest.mark.unit


def test_stt_defaults() -> None:
    settings = SttSettings.from_env({})
    assert settings.listen == "127.0.0.1:50051"
    assert settings.model == "tiny.en"
    assert settings.device == "auto"
    assert settings.vad_threshold == 0.5
    assert (settings.min_speech_ms, settings.pause_ms, settings.end_of_turn_ms) == (96, 160, 480)
    assert settings.max_utterance_s == 30.0
    assert settings.common.log_level == "INFO"
    assert settings.common.cache_dir == Path(".cache/models")


@pytest.mark.parametrize(
    ("environ", "model"),
    [
        ({"WHISPER_MODEL": "base.en"}, "base.en"),
        ({"STT_MODEL_SIZE": "small"}, "small"),
        ({"WHISPER_MODEL": "base.en", "STT_MODEL_SIZE": "small"}, "base.en"),
        ({"STT_MODEL": "medium", "WHISPER_MODEL": "base.en", "STT_MODEL_SIZE": "small"}, "medium"),
        ({"STT_MODEL": "  ", "STT_MODEL_SIZE": "small"}, "small"),
    ],
)
def test_stt_model_aliases(environ: dict[str, str], model: str) -> None:
    assert SttSettings.from_env(environ).model == model


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("STT_VAD_THRESHOLD", "0.05", "0.95"),
        ("STT_MIN_SPEECH_MS", "0", "2000"),
        ("STT_CPU_THREADS", "0", "64"),
        ("STT_MAX_UTTERANCE_S", "1", "120"),
    ],
)
def test_stt_range_bounds_are_inclusive(name: str, low: str, high: str) -> None:
    SttSettings.from_env({name: low})
    SttSettings.from_env({name: high})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STT_VAD_THRESHOLD", "0.04"),
        ("STT_VAD_THRESHOLD", "0.96"),
        ("STT_MIN_SPEECH_MS", "-1"),
        ("STT_MIN_SPEECH_MS", "2001"),
        ("STT_PAUSE_MS", "31"),
        ("STT_END_OF_TURN_MS", "10001"),
        ("STT_PARTIAL_INTERVAL_MS", "99"),
        ("STT_MAX_UTTERANCE_S", "0.5"),
        ("STT_CPU_THREADS", "65"),
    ],
)
def test_stt_out_of_range(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}={value}: expected a value in"):
        SttSettings.from_env({name: value})


def test_pause_must_not_exceed_end_of_turn() -> None:
    with pytest.raises(SettingsError, match="STT_PAUSE_MS must not exceed STT_END_OF_TURN_MS"):
        SttSettings.from_env({"STT_PAUSE_MS": "600", "STT_END_OF_TURN_MS": "500"})
    equal = SttSettings.from_env({"STT_PAUSE_MS": "500", "STT_END_OF_TURN_MS": "500"})
    assert equal.pause_ms == 500
