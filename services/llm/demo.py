"""Demo mode: canned spoken replies streamed word by word, with no key and no model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.llm.engine import Turn

WORD_DELAY_S = 0.02

REPLIES = {
    "weather": "I can't look outside from here. But I hope it's a nice day where you are.",
    "hello": "Hello! It's good to hear from you. What would you like to talk about?",
    "name": "I'm a demo voice assistant. I run in demo mode, so my answers are canned.",
}
FALLBACK = (
    "I'm running in demo mode, so I can't really think yet. "
    "But I heard you, and the whole voice pipeline is working."
)


class DemoModel:
    name = "demo"
    model = "demo"

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        last_user = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        lowered = last_user.lower()
        reply = next((text for key, text in REPLIES.items() if key in lowered), FALLBACK)
        turn.stats.model = self.model
        turn.stats.provider = self.name
        words = reply.split(" ")
        for index, word in enumerate(words):
            await asyncio.sleep(WORD_DELAY_S)
            turn.stats.completion_tokens += 1
            yield word if index == 0 else " " + word
