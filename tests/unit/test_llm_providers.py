"""Building the provider chain at start: gemini without a key is skipped with a clear line."""

from __future__ import annotations

import logging

import pytest

from services.llm.__main__ import build_providers, close_providers
from services.llm.demo import DemoModel
from services.llm.gemini import GeminiModel
from services.llm.settings import LlmSettings
from voice.errors import SettingsError

pytestmark = pytest.mark.unit


async def test_gemini_without_a_key_is_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = LlmSettings.from_env({"LLM_PROVIDERS": "gemini,demo"})
    providers = await build_providers(settings)
    assert [type(p) for p in providers] == [DemoModel]
    assert any(
        "gemini skipped" in r.getMessage() and "GEMINI_API_KEY" in r.getMessage()
        for r in caplog.records
    )


async def test_a_key_builds_the_gemini_provider_without_touching_the_network() -> None:
    settings = LlmSettings.from_env(
        {
            "GEMINI_API_KEY": "k",
            "LLM_PROVIDERS": "gemini,demo",
            "LLM_GEMINI_BASE_URL": "http://127.0.0.1:9",
            "LLM_GEMINI_MODEL": "gemini-2.5-flash-lite",
        }
    )
    providers = await build_providers(settings)
    assert [p.name for p in providers] == ["gemini", "demo"]
    assert isinstance(providers[0], GeminiModel)
    assert providers[0].model == "gemini-2.5-flash-lite"
    await close_providers(providers)


async def test_nothing_left_to_run_fails_the_start_clearly() -> None:
    settings = LlmSettings.from_env({"LLM_PROVIDERS": "gemini"})
    with pytest.raises(SettingsError, match="no provider can run"):
        await build_providers(settings)
