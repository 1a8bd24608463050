"""FallbackChain details: a full engine ends the chain; a failed provider leaves no stats."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.llm.demo import DemoModel
from services.llm.engine import EngineBusyError, LanguageModel, Message, Turn
from services.llm.fallback import FallbackChain
from voice.errors import UpstreamUnavailableError

pytestmark = pytest.mark.unit


class Failing:
    """Writes its stats the way real engines do, then fails before its first token."""

    def __init__(self, name: str, error: Exception) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        self.calls += 1
        turn.stats.provider = self.name
        turn.stats.model = f"{self.name}-model"
        turn.stats.prompt_tokens = 99
        turn.stats.queue_ms = 12.0
        raise self.error
        yield ""  # pragma: no cover - makes this an async generator


def turn() -> Turn:
    return Turn((Message("user", "hello"),), max_tokens=16, session_id="s")


def chain(*providers: LanguageModel) -> FallbackChain:
    return FallbackChain(list(providers))


async def test_a_busy_engine_ends_the_chain_instead_of_falling_to_canned_text() -> None:
    demo = DemoModel()
    busy = Failing("local", EngineBusyError("the language model is busy"))
    current = turn()
    with pytest.raises(EngineBusyError):
        async for _ in chain(busy, demo).generate(current):
            pass
    assert busy.calls == 1
    assert current.stats.provider == "" and current.stats.model == ""


async def test_an_unavailable_provider_falls_through_and_leaves_no_stats() -> None:
    down = Failing("gemini", UpstreamUnavailableError("gemini HTTP 503"))
    current = turn()
    text = "".join(
        [d async for d in chain(down, DemoModel()).generate(current) if isinstance(d, str)]
    )
    assert "hear" in text or "demo" in text
    assert current.stats.provider == "demo"
    assert current.stats.model == "demo"
    # Nothing the failed provider wrote survives into the turn that demo answered.
    assert current.stats.prompt_tokens == 0
    assert current.stats.queue_ms == 0.0
    assert current.stats.completion_tokens > 0
