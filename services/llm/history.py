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
    # Beside each turn: the tool calls and results kept with it (those whose outcome the user
    # heard), which go between the user's message and the reply.
    calls: list[tuple[Message, ...]] = field(default_factory=list)

    def prompt_for(self, user_text: str) -> tuple[Message, ...]:
        """The messages to send for a new user turn, trimmed to the budget."""
        user = Message("user", self._cut(user_text))
        messages: list[Message] = [user]
        used = estimate_tokens(self.system_prompt) + estimate_tokens(user.content)
        for index in range(len(self.turns) - 1, -1, -1):
            past_user, reply = self.turns[index]
            pair = [past_user, *self._calls_of(index)] + ([reply] if reply is not None else [])
            cost = sum(_cost(m) for m in pair)
            if used + cost > self.budget_tokens:
                break
            messages[:0] = pair
            used += cost
        return (Message("system", self.system_prompt), *messages)

    def record(self, user_text: str, reply: str, calls: tuple[Message, ...] = ()) -> None:
        """Remember a finished or interrupted exchange (``reply`` is what the user heard;
        ``calls``: the tool calls and results to keep with it)."""
        user = Message("user", self._cut(user_text))
        while len(self.calls) < len(self.turns):  # turns set from outside have no calls
            self.calls.append(())
        self.turns.append((user, Message("assistant", reply) if reply.strip() else None))
        self.calls.append(calls)
        while (
            sum(
                _cost(u) + (_cost(r) if r else 0) + sum(_cost(m) for m in self._calls_of(i))
                for i, (u, r) in enumerate(self.turns)
            )
            > self.budget_tokens
            and len(self.turns) > 1
        ):
            self.turns.pop(0)
            self.calls.pop(0)

    def _calls_of(self, index: int) -> tuple[Message, ...]:
        return self.calls[index] if index < len(self.calls) else ()

    def _cut(self, text: str) -> str:
        limit = max(16, self.budget_tokens // 2) * CHARS_PER_TOKEN
        if len(text) <= limit:
            return text
        log.warning("user text of %d characters cut to %d to fit the budget", len(text), limit)
        return text[:limit]


def _cost(message: Message) -> int:
    calls = sum(estimate_tokens(c.arguments_json) + 4 for c in message.tool_calls)
    return estimate_tokens(message.content) + calls
