"""Demo mode's tool use: fixed rules, so a test knows which call a sentence makes.

- a tool named in the text (``book_table`` or "book table") is called, with the first JSON
  object in the text as its arguments (``book_table {"day": "Friday"}``);
- "what time", "the time", "what day", "today's date" -> ``current_time``;
- "what is 12 plus 30" (digits and + - * / or their words) -> ``calculate``;
- "goodbye", "bye", "hang up", "end the call" -> ``end_call``;
- any other question, when ``search_knowledge`` is offered -> ``search_knowledge`` with it.

After a tool's result the reply speaks the result (a calculation's value, the time as told,
a passage found); after a failure it says it could not get the answer.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

from services.llm.engine import Message
from services.llm.tools.spec import ToolCall, ToolSpec

_ids = itertools.count(1)
_ARITHMETIC = re.compile(
    r"(-?\d+(?:\.\d+)?(?:\s*(?:[-+*/x×÷]|plus|minus|times|multiplied by|divided by)\s*"
    r"-?\d+(?:\.\d+)?)+)"
)
_TIME = re.compile(r"\b(what time|the time|what day|today's date|what date)\b")
_GOODBYE = re.compile(r"\b(goodbye|bye|hang up|end the call)\b")


def _json_object(text: str) -> dict[str, Any]:
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def choose_call(text: str, tools: Sequence[ToolSpec]) -> ToolCall | None:
    """The call demo mode makes for the user's text, if any (the rules above)."""
    names = {tool.name for tool in tools}
    lowered = text.lower()

    def call(name: str, arguments: dict[str, Any] | None = None) -> ToolCall | None:
        if name not in names:
            return None
        return ToolCall(f"demo-{next(_ids)}", name, arguments or {})

    for tool in tools:
        if tool.name.lower() in lowered or tool.name.replace("_", " ").lower() in lowered:
            return call(tool.name, _json_object(text))
    if _TIME.search(lowered):
        return call("current_time")
    arithmetic = _ARITHMETIC.search(lowered)
    if arithmetic:
        return call("calculate", {"expression": arithmetic.group(1)})
    if _GOODBYE.search(lowered):
        return call("end_call")
    if text.strip().endswith("?"):
        return call("search_knowledge", {"query": text.strip()})
    return None


def answer_from(result: Message) -> str:
    """What demo mode says after a tool's result."""
    content = result.content.strip()
    if result.name == "end_call":
        return "Thank you for calling. Goodbye!"
    if content.startswith(f"The {result.name} tool ") or content.startswith(
        ("Invalid arguments", "There is no tool")
    ):
        return f"Sorry, I couldn't get that: {content}"
    if result.name == "calculate" and " = " in content:
        return f"That makes {content.rsplit(' = ', 1)[1]}."
    return content
