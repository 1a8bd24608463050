"""An instant provider for measuring overhead: a fixed one-sentence reply, no model, no delay."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.llm.engine import Turn


class InstantModel:
    name = "instant"
    model = "instant"
    reply = "Okay."

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        turn.stats.provider = self.name
        turn.stats.model = self.model
        turn.stats.completion_tokens = 1
        yield self.reply
