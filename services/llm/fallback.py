"""A chain of providers tried in order. It switches only before the first token.

What was already said stays said: an error after the first token ends the turn, and no second
voice is spliced in. A provider that fails before its first token leaves no trace in the turn's
statistics, so the turn names the provider that answered. One failure ends the chain at once:
:class:`EngineBusyError`, the shared engine at capacity, since the providers after it are
lesser ones (demo mode's canned text is no answer to a real question).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from services.llm.engine import (
    Delta,
    EndScorer,
    EngineBusyError,
    GenerationStats,
    LanguageModel,
    Turn,
)
from voice.errors import EngineError

log = logging.getLogger(__name__)


class FallbackChain:
    def __init__(self, providers: Sequence[LanguageModel]) -> None:
        if not providers:
            raise ValueError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(provider.name for provider in self.providers)

    async def score_end(self, turn: Turn) -> float | None:
        """The first provider that can score a turn's end scores it; None when none can."""
        for provider in self.providers:
            if isinstance(provider, EndScorer):
                return await provider.score_end(turn)
        return None

    async def generate(self, turn: Turn) -> AsyncIterator[Delta]:
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
            except EngineBusyError:
                _forget(turn.stats)
                raise
            except Exception as error:
                if started:
                    raise
                log.warning("provider %s failed before its first token: %s", provider.name, error)
                errors.append(f"{provider.name}: {error}")
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            _forget(turn.stats)
        raise EngineError("every provider failed: " + "; ".join(errors))


def _forget(stats: GenerationStats) -> None:
    """Clear what a provider that did not answer wrote into the turn's statistics."""
    fresh = GenerationStats()
    for name in vars(fresh):
        setattr(stats, name, getattr(fresh, name))
