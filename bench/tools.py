"""``make bench-tools``: tool selection accuracy on scripted requests, and a tool's round trip.

Each request names the tool it needs (or none) and how to judge the arguments: a calculation's
expression must come to the right value, a knowledge-base query must find the right document.
The model sees the built-in tools (current_time, calculate, end_call, and search_knowledge over
bench/tools_kb/) as the llm service would offer them, with the default system prompt and a
sentence naming the business the knowledge base is about (``INSTRUCTIONS``).
Scored on the first round of each turn: the right tool with the right arguments, no call when
none is needed. For each right call it also times the round trip a tool adds to the reply:
from the call's last token to the first token of the words spoken after the result.

    python -m bench.tools --provider local   # the embedded model (minutes on 2 cores)
    python -m bench.tools --provider demo    # demo mode's fixed rules
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.llm.engine import LanguageModel, Message, Turn
from services.llm.settings import DEFAULT_SYSTEM_PROMPT, LlmSettings
from services.llm.tools.agent import load_agent
from services.llm.tools.builtins import ExpressionError, evaluate
from services.llm.tools.knowledge import LOOKUP_MIN_COVERAGE, KnowledgeBase
from services.llm.tools.spec import ToolCall, ToolRegistry

KB = Path(__file__).resolve().parent / "tools_kb"
MAX_TOKENS = 96
# What an agent file with a knowledge base says (docs/agent.md's example does the same): the
# model cannot know that questions about "you" are about the business unless it is told.
INSTRUCTIONS = (
    DEFAULT_SYSTEM_PROMPT + " You answer the phone for Rosa's Bakery. For any question about "
    "the bakery (opening hours, prices, products, orders, delivery, refunds, parking, contact) "
    "call search_knowledge first and answer from what it finds."
)


@dataclass(frozen=True)
class Request:
    text: str
    tool: str | None
    # calculate: the value; search_knowledge: the file that answers it.
    expect: Any = None


REQUESTS = [
    Request("What time is it?", "current_time"),
    Request("Can you tell me the time, please?", "current_time"),
    Request("What's today's date?", "current_time"),
    Request("What day of the week is it today?", "current_time"),
    Request("Do you know what time it is right now?", "current_time"),
    Request("What is 17 times 23?", "calculate", 391),
    Request("How much is 250 divided by 5?", "calculate", 50),
    Request("What's 1234 plus 5678?", "calculate", 6912),
    Request("What is 99 minus 42?", "calculate", 57),
    Request("How much is 3 times 7 plus 2?", "calculate", 23),
    Request("What is 144 divided by 12?", "calculate", 12),
    Request("What's 45 times 11?", "calculate", 495),
    Request("Can you add 38 and 17 for me?", "calculate", 55),
    Request("When do you open on Sunday?", "search_knowledge", "hours.md"),
    Request("What are your opening hours on Saturday?", "search_knowledge", "hours.md"),
    Request("Do you deliver to the city centre?", "search_knowledge", "shop.md"),
    Request("What is your refund policy?", "search_knowledge", "shop.md"),
    Request(
        "How much does a sourdough loaf cost at the bakery?", "search_knowledge", "products.md"
    ),
    Request("Is there parking near the bakery?", "search_knowledge", "shop.md"),
    Request("Do you have gluten-free bread?", "search_knowledge", "products.md"),
    Request("What's the bakery's phone number?", "search_knowledge", "shop.md"),
    Request("Can I order a birthday cake from you?", "search_knowledge", "products.md"),
    Request("Thanks, that's all. Goodbye!", "end_call"),
    Request("Please hang up now.", "end_call"),
    Request("Okay, end the call.", "end_call"),
    Request("Hello, how are you?", None),
    Request("Tell me a joke.", None),
    Request("What's the capital of France?", None),
    Request("Thank you very much.", None),
    Request("Can you speak a little more slowly?", None),
    Request("My name is Anna.", None),
    Request("What is your name?", None),
    Request("Tell me something interesting about cats.", None),
]


@dataclass
class Outcome:
    request: Request
    called: str | None
    arguments: dict[str, Any]
    right_tool: bool
    right_arguments: bool
    round_trip_ms: float | None = None
    # What the knowledge base's lookup before the first round (LLM_KNOWLEDGE_PREFETCH) found.
    prefetched: str | None = None


def arguments_right(request: Request, call: ToolCall, knowledge: KnowledgeBase) -> bool:
    if request.tool == "calculate":
        try:
            value = float(evaluate(str(call.arguments.get("expression", ""))))
            return abs(value - float(request.expect)) < 1e-6
        except ExpressionError:
            return False
    if request.tool == "search_knowledge":
        found = knowledge.search(str(call.arguments.get("query", "")))
        return bool(found) and found[0].path == request.expect
    return True


async def first_round(model: LanguageModel, turn: Turn) -> tuple[ToolCall | None, float]:
    """The model's first move (a call or words) and when it was complete."""
    stream = model.generate(turn)
    try:
        async for delta in stream:
            if isinstance(delta, ToolCall):
                return delta, time.perf_counter()
            if delta.strip():
                return None, time.perf_counter()
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return None, time.perf_counter()


async def round_trip_ms(
    model: LanguageModel, turn: Turn, call: ToolCall, registry: ToolRegistry, called_at: float
) -> float:
    """From the call to the first word of the reply after its result."""
    tool = registry.get(call.name)
    assert tool is not None
    result = await tool.run(call.arguments)
    messages = (
        *turn.messages,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", result, tool_call_id=call.call_id, name=call.name),
    )
    after = dataclasses.replace(turn, messages=messages, tools=())
    stream = model.generate(after)
    try:
        async for delta in stream:
            if isinstance(delta, str) and delta.strip():
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return (time.perf_counter() - called_at) * 1000


async def run(provider: str, limit: int) -> dict[str, Any]:
    settings = LlmSettings.from_env({"LLM_PARALLEL": "1", "LLM_TOOLS": "none"})
    agent = await load_agent(
        "",
        builtins=("current_time", "calculate", "end_call"),
        time_zone="",
        knowledge_dir=str(KB),
    )
    knowledge = KnowledgeBase(KB)
    model: LanguageModel
    if provider == "local":
        from services.llm.local import LocalLlama

        model = LocalLlama(settings)
    else:
        from services.llm.demo import DemoModel

        model = DemoModel()
    outcomes: list[Outcome] = []
    for number, request in enumerate(REQUESTS[:limit] if limit else REQUESTS, 1):
        messages = (Message("system", INSTRUCTIONS), Message("user", request.text))
        turn = Turn(messages, MAX_TOKENS, session_id="bench-tools", tools=agent.tools.specs)
        call, at = await first_round(model, turn)
        called = call.name if call else None
        right_tool = called == request.tool
        right_arguments = right_tool and (call is None or arguments_right(request, call, knowledge))
        outcome = Outcome(
            request, called, call.arguments if call else {}, right_tool, right_arguments
        )
        if call is not None and right_arguments and request.tool != "end_call":
            outcome.round_trip_ms = await round_trip_ms(model, turn, call, agent.tools, at)
        found = knowledge.search(request.text)
        outcome.prefetched = (
            found[0].path if found and found[0].coverage >= LOOKUP_MIN_COVERAGE else None
        )
        outcomes.append(outcome)
        mark = "ok " if right_arguments else "BAD"
        print(
            f"  {number:2d} {mark} {request.text!r}: wanted {request.tool or 'no call'}, "
            f"got {called or 'no call'} {json.dumps(outcome.arguments) if call else ''}",
            flush=True,
        )
    await agent.aclose()
    return summarize(provider, outcomes)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarize(provider: str, outcomes: list[Outcome]) -> dict[str, Any]:
    needing = [o for o in outcomes if o.request.tool]
    none_needed = [o for o in outcomes if not o.request.tool]
    trips = [o.round_trip_ms for o in outcomes if o.round_trip_ms is not None]
    knowledge = [o for o in outcomes if o.request.tool == "search_knowledge"]
    others = [o for o in outcomes if o.request.tool != "search_knowledge"]
    summary = {
        "provider": provider,
        "requests": len(outcomes),
        "fully_right": sum(o.right_arguments for o in outcomes),
        "right_tool": sum(o.right_tool for o in needing),
        "right_arguments": sum(o.right_arguments for o in needing),
        "needing_a_tool": len(needing),
        "no_call_when_none_needed": sum(o.called is None for o in none_needed),
        "needing_none": len(none_needed),
        "round_trip_ms_p50": round(percentile(trips, 50), 1) if trips else None,
        "round_trip_ms_p90": round(percentile(trips, 90), 1) if trips else None,
        "round_trips": len(trips),
        "prefetch_right_document": sum(o.prefetched == o.request.expect for o in knowledge),
        "knowledge_requests": len(knowledge),
        "prefetch_on_other_requests": sum(o.prefetched is not None for o in others),
        "other_requests": len(others),
    }
    print(
        f"\n{provider}: {summary['fully_right']}/{len(outcomes)} fully right; "
        f"right tool {summary['right_tool']}/{len(needing)}, right arguments "
        f"{summary['right_arguments']}/{len(needing)}; no call when none needed "
        f"{summary['no_call_when_none_needed']}/{len(none_needed)}; tool round trip "
        f"p50 {summary['round_trip_ms_p50']} ms, p90 {summary['round_trip_ms_p90']} ms "
        f"({len(trips)} calls)\n  the knowledge lookup before the first round found the right "
        f"document for {summary['prefetch_right_document']}/{len(knowledge)} knowledge questions "
        f"and something for {summary['prefetch_on_other_requests']}/{len(others)} other requests"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=("local", "demo"), default="local")
    parser.add_argument("--limit", type=int, default=0, help="only the first N requests")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    args = parser.parse_args()
    summary = asyncio.run(run(args.provider, args.limit))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
