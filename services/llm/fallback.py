"""A chain of providers tried in order. It switches only before the first token."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from services.llm.engine import LanguageModel, Turn
from voice.errors import EngineError

log = logging.getLogger(__name__)


class FallbackChain:
    def __init__(self, providers: Sequence[LanguageModel]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(provider.name for provider in self.providers)

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        errors: list[str] = []
        for provider in self.providers:
            stream = provider.generate(turn)
            started = False
            try:
                async for delta in stream:
                    if not started:
                        started = True
                        turn.stats.provider = provider.name
                    yield delta
                if started:
                    return
                errors.append(f"{provider.name}: no output")
            except Exception as error:
                if started:
                    raise
                log.warning("provider %s failed before its first token: %s", provider.name, error)
                errors.append(f"{provider.name}: {error}")
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        raise EngineError("every provider failed: " + "; ".join(errors))
