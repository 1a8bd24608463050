"""The tool loop with scripted models and tools: results back to the model, deadlines, errors,
the filler, side effects only once confirmed, cancellation, and what the history keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.llm.demo import DemoModel
from services.llm.engine import Delta, Message, Turn
from services.llm.tool_loop import ToolLoop, TurnTools
from services.llm.tools.builtins import calculate_tool, current_time_tool, end_call_tool
from services.llm.tools.knowledge import knowledge_tool
from services.llm.tools.spec import Tool, ToolCall, ToolRegistry, ToolSpec
from voice.v1 import llm_pb2

pytestmark = pytest.mark.unit


class Scripted:
    """Asks for the calls it is given (one round each), then says what the last result was."""

    name = "scripted"

    def __init__(self, *rounds: list[ToolCall], before: str = "") -> None:
        self.rounds = list(rounds)
        self.before = before
        self.seen: list[Turn] = []

    async def generate(self, turn: Turn) -> AsyncIterator[Delta]:
        self.seen.append(turn)
        if self.rounds and turn.tools:
            if self.before:
                yield self.before
            for call in self.rounds.pop(0):
                yield call
            return
        last = turn.messages[-1]
        yield f"Said: {last.content}" if last.role == "tool" else "No tools."


def slow_tool(name: str, seconds: float, *, side_effects: bool = False, log: list[str]) -> Tool:
    async def run(arguments: dict[str, Any]) -> str:
        log.append(f"start {name}")
        await asyncio.sleep(seconds)
        log.append(f"end {name}")
        return f"{name} done"

    spec = ToolSpec(name, f"The {name} tool.", side_effects=side_effects)
    return Tool(spec, run, timeout_s=1.0)


def turn(text: str = "Go.") -> Turn:
    return Turn((Message("system", "Be brief."), Message("user", text)), 64)


def tools_state(confirmed: bool = True) -> tuple[TurnTools, list[llm_pb2.ConverseResponse]]:
    events: list[llm_pb2.ConverseResponse] = []
    state = TurnTools("t1", events.append)
    if confirmed:
        state.confirmed.set()
    return state, events


# Words that suit the built-ins the tests call (ToolSpec.hints): a sum and the time.
ASKS = "What is 6*7, and what time is it?"


async def reply(loop: ToolLoop, model: Any, state: TurnTools, text: str = ASKS) -> str:
    return "".join([piece async for piece in loop.reply(model, turn(text), state)])


async def test_a_turn_whose_words_suit_no_tool_is_not_told_of_any() -> None:
    loop = ToolLoop(ToolRegistry([calculate_tool(), current_time_tool("UTC")]))
    model = Scripted([ToolCall("c1", "calculate", {"expression": "6*7"})])
    state, events = tools_state()
    assert await reply(loop, model, state, "My name is Anna.") == "No tools."
    assert model.seen[0].tools == () and events == []


async def test_a_result_goes_back_to_the_model_which_speaks_on() -> None:
    loop = ToolLoop(ToolRegistry([calculate_tool()]))
    model = Scripted([ToolCall("c1", "calculate", {"expression": "6*7"})])
    state, events = tools_state()
    assert await reply(loop, model, state) == "Said: 6*7 = 42"
    second = model.seen[1].messages
    assert second[-2].tool_calls[0].name == "calculate"
    assert (second[-1].role, second[-1].tool_call_id) == ("tool", "c1")
    assert [e.WhichOneof("event") for e in events] == ["tool_call", "tool_result"]
    assert events[0].tool_call.arguments_json == '{"expression": "6*7"}'
    assert events[1].tool_result.outcome == "ok"


async def test_a_result_that_is_the_answer_is_spoken_as_it_is_without_another_round() -> None:
    loop = ToolLoop(ToolRegistry([current_time_tool("UTC"), calculate_tool()]))
    model = Scripted([ToolCall("c1", "current_time", {})])
    state, events = tools_state()
    text = await reply(loop, model, state, "What time is it?")
    assert text.startswith("It is ") and text.endswith("(UTC).")
    assert len(model.seen) == 1  # the model is not asked to read the time back
    assert state.outcomes == {"c1": "ok"}
    assert [m.role for m in state.kept_for(None)] == ["assistant", "tool"]
    assert events[1].tool_result.result == text


async def test_a_spoken_result_that_failed_goes_back_to_the_model() -> None:
    async def broken(_arguments: dict[str, Any]) -> str:
        raise RuntimeError("no clock")

    clock = Tool(ToolSpec("current_time", "The time."), broken, speaks_result=True)
    model = Scripted([ToolCall("c1", "current_time", {})])
    state, _ = tools_state()
    text = await reply(ToolLoop(ToolRegistry([clock])), model, state, "What time is it?")
    assert text == "Said: The current_time tool failed: no clock"
    assert len(model.seen) == 2


async def test_several_calls_in_one_turn_and_the_last_round_offers_no_tools() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("a", 0, log=log), slow_tool("b", 0, log=log)])
    model = Scripted([ToolCall("1", "a")], [ToolCall("2", "b")], [ToolCall("3", "a", {"x": 1})])
    state, _ = tools_state()
    text = await reply(ToolLoop(registry, max_rounds=3), model, state)
    assert log == ["start a", "end a", "start b", "end b"]
    assert text == "Said: b done"
    assert model.seen[-1].tools == ()


async def test_errors_timeouts_and_unknown_tools_become_results_to_speak_about() -> None:
    async def broken(_arguments: dict[str, Any]) -> str:
        raise ConnectionError("booking system unreachable")

    async def stuck(_arguments: dict[str, Any]) -> str:
        await asyncio.sleep(10)
        return "never"

    registry = ToolRegistry(
        [
            Tool(ToolSpec("book", "Book."), broken),
            Tool(ToolSpec("wait", "Wait."), stuck, timeout_s=0.05),
            calculate_tool(),
        ]
    )
    loop = ToolLoop(registry, filler_text="")
    for call, outcome, said in [
        (ToolCall("1", "book"), "error", "The book tool failed: booking system unreachable"),
        (ToolCall("2", "wait"), "timeout", "did not answer within 0.05 seconds"),
        (ToolCall("3", "fly"), "not_found", "There is no tool fly"),
        (ToolCall("4", "calculate", {}), "error", "Invalid arguments: 'expression' is a required"),
    ]:
        state, events = tools_state()
        text = await reply(loop, Scripted([call]), state)
        assert said in text
        assert events[-1].tool_result.outcome == outcome


async def test_a_slow_call_gets_one_filler() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("slow", 0.2, log=log), slow_tool("quick", 0, log=log)])
    loop = ToolLoop(registry, filler_s=0.05, filler_text="One moment.")
    model = Scripted([ToolCall("1", "slow")], [ToolCall("2", "slow", {"again": 1})])
    registry_state, _ = tools_state()
    pieces = [p async for p in loop.reply(model, turn(), registry_state)]
    assert pieces.count("One moment. ") == 1
    assert pieces[0] == "One moment. "
    state, _ = tools_state()
    quick = [p async for p in loop.reply(Scripted([ToolCall("3", "quick")]), turn(), state)]
    assert "One moment. " not in quick


async def test_a_side_effect_waits_for_the_confirmation() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("book", 0, side_effects=True, log=log)])
    state, events = tools_state(confirmed=False)
    task = asyncio.create_task(reply(ToolLoop(registry), Scripted([ToolCall("1", "book")]), state))
    await asyncio.sleep(0.05)
    assert log == [] and events == [] and not task.done()
    state.confirmed.set()
    assert await task == "Said: book done"
    assert log == ["start book", "end book"]


async def test_a_discarded_turn_never_starts_its_side_effect() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("book", 0, side_effects=True, log=log)])
    state, events = tools_state(confirmed=False)
    task = asyncio.create_task(reply(ToolLoop(registry), Scripted([ToolCall("1", "book")]), state))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert log == [] and events == []


async def test_a_tool_without_side_effects_runs_before_the_confirmation() -> None:
    state, events = tools_state(confirmed=False)
    loop = ToolLoop(ToolRegistry([current_time_tool("UTC")]))
    text = await reply(loop, Scripted([ToolCall("1", "current_time")]), state)
    assert text.startswith("It is ")
    assert not state.confirmed.is_set() and events[-1].tool_result.outcome == "ok"


async def test_a_barge_in_cancels_the_call_in_flight_and_drops_its_result() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("slow", 5, log=log)])
    state, events = tools_state()
    task = asyncio.create_task(reply(ToolLoop(registry), Scripted([ToolCall("1", "slow")]), state))
    await asyncio.sleep(0.05)
    assert log == ["start slow"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert log == ["start slow"]  # stopped, not finished
    assert [e.WhichOneof("event") for e in events] == ["tool_call"]
    assert state.kept_for(0) == ()


async def test_the_history_keeps_a_call_only_if_its_outcome_was_heard() -> None:
    loop = ToolLoop(ToolRegistry([calculate_tool()]))
    state, _ = tools_state()
    model = Scripted([ToolCall("1", "calculate", {"expression": "1+1"})], before="Let me see. ")
    await reply(loop, model, state)
    assert [m.role for m in state.kept_for(None)] == ["assistant", "tool"]
    assert state.kept_for(len("Let me see.")) == ()  # heard only what came before the call
    assert [m.role for m in state.kept_for(len("Let me see. Said"))] == ["assistant", "tool"]


async def test_end_call_marks_the_turn_and_only_once_confirmed() -> None:
    state, _ = tools_state(confirmed=False)
    loop = ToolLoop(ToolRegistry([end_call_tool()]))
    task = asyncio.create_task(reply(loop, DemoModel(), state, "Thanks, goodbye."))
    await asyncio.sleep(0.1)
    assert not state.end_call
    state.confirmed.set()
    assert await task == "Thank you for calling. Goodbye!"
    assert state.end_call


async def test_demo_mode_calls_by_its_rules() -> None:
    loop = ToolLoop(ToolRegistry([current_time_tool("UTC"), calculate_tool()]))
    state, events = tools_state()
    assert (await reply(loop, DemoModel(), state, "What is 12 plus 30?")) == "That makes 42."
    assert events[0].tool_call.name == "calculate"
    state, events = tools_state()
    assert (await reply(loop, DemoModel(), state, "Hello there")).startswith("Hello!")
    assert events == []


async def test_the_knowledge_base_is_looked_up_before_the_model_answers(tmp_path: Path) -> None:
    (tmp_path / "hours.md").write_text("On Sundays the bakery opens at 11.\n")
    loop = ToolLoop(ToolRegistry([knowledge_tool(tmp_path), calculate_tool()]))
    model = Scripted()
    state, events = tools_state()
    text = await reply(loop, model, state, "When do you open on Sunday?")
    assert text == "Said: From hours.md: On Sundays the bakery opens at 11."
    assert [e.WhichOneof("event") for e in events] == ["tool_call", "tool_result"]
    assert events[0].tool_call.name == "search_knowledge"
    assert [m.role for m in state.kept_for(None)] == ["assistant", "tool"]
    # Words the knowledge base knows nothing about: no lookup is given to the model.
    state, events = tools_state()
    assert await reply(loop, Scripted(), state, "Tell me a joke.") == "No tools."
    assert events == []
    # Without prefetching the model must ask for it.
    state, events = tools_state()
    quiet = ToolLoop(loop.registry, prefetch=False)
    assert await reply(quiet, Scripted(), state, "When do you open on Sunday?") == "No tools."


async def test_a_repeated_call_is_not_run_again_and_the_model_still_speaks() -> None:
    log: list[str] = []
    registry = ToolRegistry([slow_tool("a", 0, log=log)])
    model = Scripted([ToolCall("1", "a")], [ToolCall("2", "a")])
    state, _ = tools_state()
    text = await reply(ToolLoop(registry, max_rounds=3), model, state)
    assert log == ["start a", "end a"]
    assert text == "Said: a done"
    assert model.seen[-1].tools == ()


async def test_each_call_is_a_span_of_its_turn_and_session() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    loop = ToolLoop(ToolRegistry([calculate_tool()]), tracer=provider.get_tracer("test"))
    events: list[llm_pb2.ConverseResponse] = []
    state = TurnTools("t9", events.append, session_id="s9")
    state.confirmed.set()
    await reply(loop, Scripted([ToolCall("1", "calculate", {"expression": "2+2"})]), state)
    (span,) = exporter.get_finished_spans()
    assert span.name == "llm.tool"
    attributes = dict(span.attributes or {})
    assert attributes["voice.session_id"] == "s9" and attributes["voice.turn_id"] == "t9"
    assert (attributes["tool.name"], attributes["tool.outcome"]) == ("calculate", "ok")
