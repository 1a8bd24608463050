"""Demo mode: canned spoken replies streamed word by word, with no key and no model.

With tools offered, it calls them by fixed rules (services/llm/demo_tools.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.llm.demo_tools import answer_from, choose_call
from services.llm.engine import Delta, Turn

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

    async def generate(self, turn: Turn) -> AsyncIterator[Delta]:
        last_user = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        lowered = last_user.lower()
        reply = next((text for key, text in REPLIES.items() if key in lowered), FALLBACK)
        turn.stats.model = self.model
        turn.stats.provider = self.name
        last = turn.messages[-1] if turn.messages else None
        if last is not None and last.role == "tool":
            reply = answer_from(last)  # a tool answered: say what it said
        elif turn.tools and (call := choose_call(last_user, turn.tools)) is not None:
            await asyncio.sleep(WORD_DELAY_S)
            yield call
            return
        words = reply.split(" ")
        for index, word in enumerate(words):
            await asyncio.sleep(WORD_DELAY_S)
            turn.stats.completion_tokens += 1
            yield word if index == 0 else " " + word
