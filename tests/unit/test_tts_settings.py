"""TtsSettings: engine chain, Edge TTS, phrase cache and frame length, validated at start."""

from __future__ import annotations

import pytest

from services.tts.settings import TtsSettings
from voice.errors import SettingsError

pytestmark = pytest.mark.unit


def test_defaults_are_offline_safe() -> None:
    settings = TtsSettings.from_env({})
    assert settings.engines == ("piper",)
    assert settings.edge_voice == "en-US-AriaNeural"
    assert settings.edge_url == ""
    assert settings.edge_timeout_ms == 2000
    assert settings.cache_mb == 8.0


def test_edge_first_with_piper_behind_it() -> None:
    settings = TtsSettings.from_env(
        {
            "TTS_ENGINES": "edge, piper",
            "EDGE_TTS_VOICE": "en-GB-SoniaNeural",
            "EDGE_TTS_URL": "ws://127.0.0.1:9/edge/v1",
            "EDGE_TTS_TIMEOUT_MS": "800",
            "TTS_CACHE_MB": "0.5",
        }
    )
    assert settings.engines == ("edge", "piper")
    assert settings.edge_voice == "en-GB-SoniaNeural"
    assert settings.edge_url == "ws://127.0.0.1:9/edge/v1"
    assert settings.edge_timeout_ms == 800
    assert settings.cache_mb == 0.5


def test_the_long_edge_voice_name_is_accepted() -> None:
    name = "Microsoft Server Speech Text to Speech Voice (en-US, AriaNeural)"
    assert TtsSettings.from_env({"EDGE_TTS_VOICE": name}).edge_voice == name


def test_the_cache_can_be_turned_off() -> None:
    assert TtsSettings.from_env({"TTS_CACHE_MB": "0"}).cache_mb == 0.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"TTS_ENGINES": "edge,piper,edge"},
            "TTS_ENGINES=edge,piper,edge: an engine is listed twice",
        ),
        ({"TTS_ENGINES": "gemini"}, "TTS_ENGINES=gemini: choose from piper, edge, instant"),
        (
            {"EDGE_TTS_VOICE": "Aria"},
            "EDGE_TTS_VOICE='Aria': expected a name like en-US-AriaNeural",
        ),
        ({"EDGE_TTS_URL": "https://example.com"}, "EDGE_TTS_URL='https://example.com': expected a"),
        ({"EDGE_TTS_TIMEOUT_MS": "50"}, "EDGE_TTS_TIMEOUT_MS=50: expected a value in [100, 60000]"),
        ({"TTS_CACHE_MB": "-1"}, "TTS_CACHE_MB=-1.0: expected a value in [0.0, 4096.0]"),
        ({"TTS_FRAME_MS": "10"}, "TTS_FRAME_MS=10: expected a value in [20, 40]"),
        ({"TTS_FRAME_MS": "60"}, "TTS_FRAME_MS=60: expected a value in [20, 40]"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        TtsSettings.from_env(environ)
    assert message in str(raised.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        TtsSettings.from_env(
            {"EDGE_TTS_VOICE": "x", "EDGE_TTS_URL": "http://x", "TTS_CACHE_MB": "z"}
        )
    text = str(raised.value)
    assert "EDGE_TTS_VOICE" in text and "EDGE_TTS_URL" in text and "TTS_CACHE_MB" in text


def test_tts_defaults() -> None:
    settings = TtsSettings.from_env({})
    assert settings.engines == ("piper",)
    assert (settings.first_chunk_min_words, settings.first_chunk_max_words) == (2, 3)
    assert settings.threads == 1
    assert settings.frame_ms == 20


def test_tts_engines_and_first_chunk_words() -> None:
    with pytest.raises(SettingsError, match="TTS_ENGINES=piper,kokoro: choose from"):
        TtsSettings.from_env({"TTS_ENGINES": "piper,kokoro"})
    with pytest.raises(SettingsError, match="MIN_WORDS must not exceed"):
        TtsSettings.from_env({"TTS_FIRST_CHUNK_MIN_WORDS": "9", "TTS_FIRST_CHUNK_MAX_WORDS": "4"})
