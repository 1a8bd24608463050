"""What a tool is: the description the model reads, and the coroutine that runs it.

A tool's ``parameters`` is a JSON schema of an object (``{"type": "object", "properties": ...}``).
A tool with ``side_effects`` changes something outside the conversation (books a slot, sends a
message, ends the call): it runs only once the user's turn is confirmed (see tool_loop.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT_S = 5.0

Runner = Callable[[dict[str, Any]], Awaitable[str]]
# A tool that can answer the user's words before the model asks: its result, or None.
Lookup = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True)
class ToolSpec:
    """What the model is told about a tool."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    side_effects: bool = False
    # A regular expression (case-insensitive) the user's words must match for the tools to be
    # offered in that turn (``ToolLoop.offered``); empty: the tool suits every turn.
    hints: str = ""

    def suits(self, words: str) -> bool:
        return not self.hints or re.search(self.hints, words, re.IGNORECASE) is not None

    def openai_shape(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry (what chat templates render)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool: its name and arguments (a JSON object)."""

    call_id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    run: Runner = field(compare=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Where it comes from, for logs and docs: builtin, python, webhook, mcp:<server>.
    source: str = "python"
    # Set for the knowledge base: the loop may look the user's words up before the first
    # round (ToolLoop.prefetch), with the arguments ``{"query": words}``.
    lookup: Lookup | None = field(default=None, compare=False)
    # Its result is a complete spoken answer ("It is 11:52 PM on Tuesday..."): the loop speaks
    # it as it is instead of asking the model to read it back (a small model may talk about
    # the tool instead, and a round costs a second on 2 CPU cores).
    speaks_result: bool = False

    @property
    def name(self) -> str:
        return self.spec.name


class ToolRegistry:
    """The agent's tools by name. A name given twice is an error (the model could not tell)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        if not tool.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"tool name {tool.name!r}: use letters, digits, '_' and '-' only")
        if tool.name in self._tools:
            raise ValueError(f"two tools are named {tool.name!r}")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self._tools.values())

    def tools_with_lookup(self) -> list[Tool]:
        return [tool for tool in self._tools.values() if tool.lookup is not None]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __bool__(self) -> bool:
        return bool(self._tools)
