"""The shapes the llm service works with: a turn in, text deltas out, behind one Protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from services.llm.tools.spec import ToolCall, ToolSpec
from voice.errors import ResourceExhaustedError

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    # An assistant message that asked for tools; a tool message's call and tool name.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass
class GenerationStats:
    """Filled in by an engine while it generates; read after the stream ends."""

    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    # Time the turn waited for a free engine slot.
    queue_ms: float = 0.0


@dataclass(frozen=True)
class Turn:
    messages: tuple[Message, ...]
    max_tokens: int
    stats: GenerationStats = field(default_factory=GenerationStats, compare=False)
    # Which conversation the turn belongs to: an engine with a prompt cache keeps its prefix.
    session_id: str = ""
    # The tools the model may ask for in this round (none: text only).
    tools: tuple[ToolSpec, ...] = ()


# What an engine streams: text, or a tool the model asks for (only when the turn has tools).
Delta = str | ToolCall


class EngineBusyError(ResourceExhaustedError):
    """The shared engine's slots and its wait queue are full.

    The fallback chain does not move past it to a lesser provider: a canned answer is no answer,
    so the turn fails with ``resource_exhausted`` and the caller may try again.
    """


class LanguageModel(Protocol):
    """A provider. ``generate`` streams text deltas; closing the iterator stops the work."""

    name: str

    def generate(self, turn: Turn) -> AsyncIterator[Delta]: ...


@runtime_checkable
class EndScorer(Protocol):
    """A provider that can say how complete a turn's text reads (the embedded model)."""

    async def score_end(self, turn: Turn) -> float: ...
