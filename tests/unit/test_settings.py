"""Settings from the environment: defaults, aliases, range checks, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice.errors import SettingsError
from voice.settings import (
    DEFAULT_SYSTEM_PROMPT,
    Env,
    GatewaySettings,
    LlmSettings,
    SttSettings,
    TtsSettings,
)

pytestmark = pytest.mark.unit

SECRET = "s" * 16


def problems(error: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    lines = str(error.value).splitlines()
    return [line.strip() for line in lines[1:]]


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


def test_llm_defaults() -> None:
    settings = LlmSettings.from_env({})
    assert settings.providers == ("local", "demo")
    assert settings.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert (settings.max_reply_tokens, settings.context_tokens) == (96, 4096)
    assert settings.nice == 10


def test_tts_defaults() -> None:
    settings = TtsSettings.from_env({})
    assert settings.engines == ("piper",)
    assert (settings.first_chunk_min_words, settings.first_chunk_max_words) == (2, 3)
    assert settings.threads == 1
    assert settings.frame_ms == 20


def test_gateway_defaults_with_a_token() -> None:
    settings = GatewaySettings.from_env({"GATEWAY_TOKENS": "abc"})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.tokens == ("abc",)
    assert settings.token_secret == ""
    assert settings.allowed_origins == ("*",)
    assert (settings.input_sample_rate, settings.output_sample_rate) == (16000, 24000)


def test_values_are_read_and_stripped() -> None:
    settings = SttSettings.from_env(
        {"STT_LISTEN": " 0.0.0.0:9000 ", "STT_VAD_THRESHOLD": "0.7", "LOG_LEVEL": "DEBUG"}
    )
    assert settings.listen == "0.0.0.0:9000"
    assert settings.vad_threshold == 0.7
    assert settings.common.log_level == "DEBUG"


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


def test_blank_values_mean_the_default() -> None:
    assert SttSettings.from_env({"STT_PAUSE_MS": "", "STT_DEVICE": "   "}).pause_ms == 160


def test_every_problem_is_listed_in_one_error() -> None:
    environ = {
        "STT_DEVICE": "tpu",
        "STT_CPU_THREADS": "many",
        "STT_VAD_THRESHOLD": "2",
        "STT_LISTEN": "nohost",
        "STT_MAX_UTTERANCE_S": "soon",
        "LOG_LEVEL": "LOUD",
    }
    with pytest.raises(SettingsError) as error:
        SttSettings.from_env(environ)
    assert str(error.value).startswith("invalid stt settings:")
    found = problems(error)
    assert len(found) == len(environ)
    for name in environ:
        assert any(line.startswith(name) for line in found), (name, found)


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


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="STT_VAD_THRESHOLD"):
        SttSettings.from_env({"STT_VAD_THRESHOLD": value})


@pytest.mark.parametrize("value", ["1.5", "1e3", "ten", "0x10"])
def test_integers_must_be_whole_numbers(value: str) -> None:
    with pytest.raises(SettingsError, match=r"STT_PAUSE_MS=.*expected a whole number"):
        SttSettings.from_env({"STT_PAUSE_MS": value})


def test_pause_must_not_exceed_end_of_turn() -> None:
    with pytest.raises(SettingsError, match="STT_PAUSE_MS must not exceed STT_END_OF_TURN_MS"):
        SttSettings.from_env({"STT_PAUSE_MS": "600", "STT_END_OF_TURN_MS": "500"})
    equal = SttSettings.from_env({"STT_PAUSE_MS": "500", "STT_END_OF_TURN_MS": "500"})
    assert equal.pause_ms == 500


@pytest.mark.parametrize("address", ["localhost", ":50051", "host:", "host:port", "host:-1"])
def test_addresses_need_host_and_port(address: str) -> None:
    with pytest.raises(SettingsError, match=r"STT_LISTEN=.*expected host:port"):
        SttSettings.from_env({"STT_LISTEN": address})


def test_ipv6_address_is_accepted() -> None:
    assert SttSettings.from_env({"STT_LISTEN": "[::1]:50051"}).listen == "[::1]:50051"


@pytest.mark.parametrize("providers", ["openai", "local,cloud", ",", " , "])
def test_llm_providers_must_be_known_and_not_empty(providers: str) -> None:
    with pytest.raises(SettingsError, match="LLM_PROVIDERS"):
        LlmSettings.from_env({"LLM_PROVIDERS": providers})


def test_llm_providers_list_is_trimmed() -> None:
    assert LlmSettings.from_env({"LLM_PROVIDERS": " demo , ,local"}).providers == ("demo", "local")


def test_tts_engines_and_first_chunk_words() -> None:
    with pytest.raises(SettingsError, match="TTS_ENGINES=piper,kokoro: choose from"):
        TtsSettings.from_env({"TTS_ENGINES": "piper,kokoro"})
    with pytest.raises(SettingsError, match="MIN_WORDS must not exceed"):
        TtsSettings.from_env({"TTS_FIRST_CHUNK_MIN_WORDS": "9", "TTS_FIRST_CHUNK_MAX_WORDS": "4"})


def test_gateway_needs_tokens_or_a_secret() -> None:
    with pytest.raises(SettingsError, match="set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET"):
        GatewaySettings.from_env({})
    with pytest.raises(SettingsError, match="set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET"):
        GatewaySettings.from_env({"GATEWAY_TOKENS": " , "})
    assert GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": SECRET}).token_secret == SECRET
    assert GatewaySettings.from_env({"GATEWAY_TOKENS": "a, b"}).tokens == ("a", "b")


def test_gateway_secret_must_be_at_least_16_characters() -> None:
    with pytest.raises(SettingsError, match="at least 16 characters"):
        GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": SECRET[:-1]})
    with pytest.raises(SettingsError, match="at least 16 characters"):
        GatewaySettings.from_env({"GATEWAY_TOKEN_SECRET": "short", "GATEWAY_TOKENS": "a"})


def test_gateway_ranges() -> None:
    with pytest.raises(SettingsError) as error:
        GatewaySettings.from_env(
            {
                "GATEWAY_TOKENS": "a",
                "GATEWAY_PORT": "70000",
                "GATEWAY_INPUT_SAMPLE_RATE": "4000",
                "GATEWAY_MAX_FRAME_BYTES": "1023",
            }
        )
    found = problems(error)
    assert [line.split("=")[0] for line in found] == [
        "GATEWAY_PORT",
        "GATEWAY_INPUT_SAMPLE_RATE",
        "GATEWAY_MAX_FRAME_BYTES",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_env_flag(value: str, expected: bool) -> None:
    env = Env({"FLAG": value})
    assert env.flag(not expected, "FLAG") is expected
    env.check("test")


def test_env_flag_problem_and_default() -> None:
    env = Env({"FLAG": "maybe"})
    assert env.flag(True, "FLAG") is True
    assert Env({}).flag(False, "FLAG") is False
    with pytest.raises(SettingsError, match="FLAG='maybe': expected true or false"):
        env.check("test")


def test_env_reads_os_environ_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_TEST_SETTING", "from-os")
    assert Env().text("default", "VOICE_TEST_SETTING") == "from-os"
    assert Env({}).text("default", "VOICE_TEST_SETTING") == "default"
