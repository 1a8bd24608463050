"""FallbackChain: the next provider is tried only before the first token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from services.llm.engine import LanguageModel, Message, Turn
from services.llm.fallback import FallbackChain
from voice.errors import EngineError

pytestmark = pytest.mark.unit


class ProviderDownError(RuntimeError):
    pass


class FakeProvider:
    """Yields ``deltas``; raises ``error`` after ``fail_after`` of them when set."""

    def __init__(
        self,
        name: str,
        deltas: Sequence[str] = (),
        *,
        error: Exception | None = None,
        fail_after: int = 0,
    ) -> None:
        self.name = name
        self.deltas = list(deltas)
        self.error = error
        self.fail_after = fail_after
        self.calls = 0
        self.closed = 0

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        self.calls += 1
        try:
            for index, delta in enumerate(self.deltas):
                if self.error is not None and index == self.fail_after:
                    raise self.error
                yield delta
            if self.error is not None:
                raise self.error
        finally:
            self.closed += 1


def make_turn() -> Turn:
    return Turn(messages=(Message("user", "hi"),), max_tokens=32)


async def collect(chain: FallbackChain, turn: Turn) -> list[str]:
    return [delta async for delta in chain.generate(turn) if isinstance(delta, str)]


def chain_of(*providers: FakeProvider) -> FallbackChain:
    models: list[LanguageModel] = list(providers)
    return FallbackChain(models)


async def test_first_provider_answers_alone() -> None:
    first, second = FakeProvider("local", ["Hel", "lo"]), FakeProvider("demo", ["x"])
    turn = make_turn()
    assert await collect(chain_of(first, second), turn) == ["Hel", "lo"]
    assert turn.stats.provider == "local"
    assert (first.calls, second.calls) == (1, 0)
    assert first.closed == 1


async def test_failure_before_the_first_token_switches_provider() -> None:
    first = FakeProvider("local", ["never"], error=ProviderDownError("model not loaded"))
    second = FakeProvider("demo", ["Hi", " there"])
    turn = make_turn()
    assert await collect(chain_of(first, second), turn) == ["Hi", " there"]
    assert turn.stats.provider == "demo"
    assert (first.calls, second.calls) == (1, 1)
    assert first.closed == 1


async def test_a_provider_with_no_output_is_skipped() -> None:
    empty, second = FakeProvider("local", []), FakeProvider("demo", ["ok"])
    turn = make_turn()
    assert await collect(chain_of(empty, second), turn) == ["ok"]
    assert turn.stats.provider == "demo"


async def test_error_after_the_first_token_propagates() -> None:
    first = FakeProvider(
        "local", ["One", " two", " three"], error=ProviderDownError("oom"), fail_after=2
    )
    second = FakeProvider("demo", ["never"])
    turn = make_turn()
    received: list[str] = []
    with pytest.raises(ProviderDownError, match="oom"):
        async for delta in chain_of(first, second).generate(turn):
            received.append(str(delta))
    # What was already said stays said; no second voice is spliced in after it.
    assert received == ["One", " two"]
    assert second.calls == 0
    assert turn.stats.provider == "local"
    assert first.closed == 1


async def test_every_provider_failing_raises_engine_error() -> None:
    first = FakeProvider("local", error=ProviderDownError("model not loaded"))
    second = FakeProvider("demo", [])
    turn = make_turn()
    with pytest.raises(EngineError) as caught:
        await collect(chain_of(first, second), turn)
    message = str(caught.value)
    assert "local: model not loaded" in message
    assert "demo: no output" in message
    assert turn.stats.provider == ""
    assert (first.closed, second.closed) == (1, 1)


async def test_closing_the_chain_early_closes_the_provider_stream() -> None:
    provider = FakeProvider("local", ["a", "b", "c"])
    stream = chain_of(provider).generate(make_turn())
    assert await anext(stream) == "a"
    await stream.aclose()  # type: ignore[attr-defined]
    assert provider.closed == 1


def test_chain_name_and_empty_chain() -> None:
    assert chain_of(FakeProvider("local"), FakeProvider("demo")).name == "local+demo"
    with pytest.raises(ValueError, match="at least one provider"):
        FallbackChain([])
