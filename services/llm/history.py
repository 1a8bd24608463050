"""A session's conversation, bounded by a token budget: oldest turns go first, the prompt stays."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.llm.engine import Message

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """A cheap, conservative estimate (English averages about four characters a token)."""
    return len(text) // CHARS_PER_TOKEN + 1


@dataclass
class History:
    system_prompt: str
    budget_tokens: int
    turns: list[tuple[Message, Message | None]] = field(default_factory=list)

    def prompt_for(self, user_text: str) -> tuple[Message, ...]:
        """The messages to send for a new user turn, trimmed to the budget."""
        user = Message("user", self._cut(user_text))
        messages: list[Message] = [user]
        used = estimate_tokens(self.system_prompt) + estimate_tokens(user.content)
        for past_user, reply in reversed(self.turns):
            pair = [past_user] + ([reply] if reply is not None else [])
            cost = sum(estimate_tokens(m.content) for m in pair)
            if used + cost > self.budget_tokens:
                break
            messages[:0] = pair
            used += cost
        return (Message("system", self.system_prompt), *messages)

    def record(self, user_text: str, reply: str) -> None:
        """Remember a finished or interrupted exchange (``reply`` is what the user heard)."""
        user = Message("user", self._cut(user_text))
        self.turns.append((user, Message("assistant", reply) if reply.strip() else None))
        while (
            sum(
                estimate_tokens(u.content) + (estimate_tokens(r.content) if r else 0)
                for u, r in self.turns
            )
            > self.budget_tokens
            and len(self.turns) > 1
        ):
            self.turns.pop(0)

    def _cut(self, text: str) -> str:
        limit = max(16, self.budget_tokens // 2) * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text
        log.warning("user text of %d characters cut to %d to fit the budget", len(text), limit)
        return text[:limit]
