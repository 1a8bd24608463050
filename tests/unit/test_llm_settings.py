"""LlmSettings: Gemini's key and its place in the order, the queue, validation."""

from __future__ import annotations

import pytest

from services.llm.settings import DEFAULT_SYSTEM_PROMPT, LlmSettings
from voice.errors import SettingsError

pytestmark = pytest.mark.unit


def test_without_a_key_the_default_order_stays_offline() -> None:
    settings = LlmSettings.from_env({})
    assert settings.providers == ("local", "demo")
    assert settings.gemini_api_key == ""
    assert settings.gemini_model == "gemini-2.5-flash"
    assert settings.gemini_base_url == ""
    assert (settings.queue_limit, settings.batch_tokens) == (8, 128)


@pytest.mark.parametrize("variable", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
def test_a_key_puts_gemini_first(variable: str) -> None:
    settings = LlmSettings.from_env({variable: "secret-key"})
    assert settings.providers == ("gemini", "local", "demo")
    assert settings.gemini_api_key == "secret-key"


def test_gemini_api_key_wins_over_google_api_key() -> None:
    settings = LlmSettings.from_env({"GEMINI_API_KEY": "gemini", "GOOGLE_API_KEY": "google"})
    assert settings.gemini_api_key == "gemini"


def test_an_explicit_order_is_kept_with_or_without_a_key() -> None:
    assert LlmSettings.from_env({"LLM_PROVIDERS": "gemini,demo"}).providers == ("gemini", "demo")
    keyed = {"LLM_PROVIDERS": "local", "GEMINI_API_KEY": "k"}
    assert LlmSettings.from_env(keyed).providers == ("local",)


def test_the_key_never_appears_in_the_settings_repr() -> None:
    settings = LlmSettings.from_env({"GEMINI_API_KEY": "do-not-print-me"})
    assert "do-not-print-me" not in repr(settings)


def test_gemini_settings_are_read() -> None:
    settings = LlmSettings.from_env(
        {
            "LLM_GEMINI_MODEL": "gemini-2.5-flash-lite",
            "LLM_GEMINI_BASE_URL": "http://127.0.0.1:9999",
            "LLM_GEMINI_TIMEOUT_S": "2.5",
            "LLM_GEMINI_THINKING_BUDGET": "-1",
            "LLM_QUEUE_LIMIT": "0",
            "LLM_BATCH_TOKENS": "64",
        }
    )
    assert settings.gemini_model == "gemini-2.5-flash-lite"
    assert settings.gemini_base_url == "http://127.0.0.1:9999"
    assert settings.gemini_timeout_s == 2.5
    assert settings.gemini_thinking_budget == -1
    assert (settings.queue_limit, settings.batch_tokens) == (0, 64)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"LLM_GEMINI_BASE_URL": "127.0.0.1:9999"}, "LLM_GEMINI_BASE_URL"),
        ({"LLM_QUEUE_LIMIT": "-1"}, "LLM_QUEUE_LIMIT"),
        ({"LLM_BATCH_TOKENS": "8"}, "LLM_BATCH_TOKENS"),
        ({"LLM_GEMINI_TIMEOUT_S": "0"}, "LLM_GEMINI_TIMEOUT_S"),
        ({"LLM_PROVIDERS": "local,local"}, "listed twice"),
        ({"LLM_MAX_REPLY_TOKENS": "600", "LLM_CONTEXT_TOKENS": "1024"}, "at most half"),
    ],
)
def test_bad_values_are_refused_by_name(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        LlmSettings.from_env(environ)


def test_llm_defaults() -> None:
    settings = LlmSettings.from_env({})
    assert settings.providers == ("local", "demo")
    assert settings.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert (settings.max_reply_tokens, settings.context_tokens) == (96, 4096)
    assert settings.nice == 10


@pytest.mark.parametrize("providers", ["openai", "local,cloud", ",", " , "])
def test_llm_providers_must_be_known_and_not_empty(providers: str) -> None:
    with pytest.raises(SettingsError, match="LLM_PROVIDERS"):
        LlmSettings.from_env({"LLM_PROVIDERS": providers})


def test_llm_providers_list_is_trimmed() -> None:
    assert LlmSettings.from_env({"LLM_PROVIDERS": " demo , ,local"}).providers == ("demo", "local")
