"""The tool loop: the model asks for tools, they run, their results go back, the model speaks on.

One user turn is up to ``MAX_ROUNDS`` rounds of generation. A round's text streams out as it
comes; the tools it asked for run one after the other, each within its deadline; a failure, a
timeout or an unknown tool becomes a result the model can speak about. The last round offers no
tools, so a turn always ends in words.

Safe under barge-in and early thinking:

- A tool with side effects runs only once the turn is confirmed (``TurnTools.confirmed``: set
  at once for a turn sent after the end of turn, on ``ConfirmTurn`` for an early one). A turn
  that is discarded or cancelled while waiting never starts it.
- Cancelling the turn (a barge-in, a discard, the stream closing) cancels the call in flight:
  its task is cancelled and its result dropped (no ``tool_result`` goes out).
- ``TurnTools.kept_for`` gives the history only the calls whose outcome the user heard.

When a call takes longer than the filler threshold the user hears a short filler ("One
moment."), once per turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import jsonschema
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from services.llm.engine import LanguageModel, Message, Turn
from services.llm.tools.builtins import END_CALL
from services.llm.tools.spec import Tool, ToolCall, ToolRegistry, ToolSpec
from voice.v1 import llm_pb2

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("voice.llm")

MAX_ROUNDS = 3
_lookups = itertools.count(1)
MAX_RESULT_CHARS = 2000

TOOL_CALLS = Counter("voice_llm_tool_calls", "Tool calls by tool and outcome", ["tool", "outcome"])
TOOL_SECONDS = Histogram(
    "voice_llm_tool_seconds",
    "How long a tool call ran, by tool",
    ["tool"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 0.7, 1.0, 2.0, 5.0, 10.0),
)


@dataclass
class TurnTools:
    """One turn's tool state, shared by the servicer (confirmation, events) and the loop."""

    turn_id: str
    emit: Callable[[llm_pb2.ConverseResponse], None]
    # For the spans (every span of a turn names its session).
    session_id: str = ""
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    end_call: bool = False
    # The assistant's tool-call messages and the tool results, in order, with how much of the
    # reply's text had been spoken before each (the user heard the outcome if they heard more).
    exchange: list[tuple[int, Message]] = field(default_factory=list)
    spoken_chars: int = 0
    # Each call's outcome (ok, error, timeout, not_found), by call id.
    outcomes: dict[str, str] = field(default_factory=dict)

    def kept_for(self, heard_chars: int | None) -> tuple[Message, ...]:
        """The tool messages the history keeps: all of them for a reply heard to its end
        (``None``); for an interrupted one, those whose outcome the user began to hear."""
        kept = [m for at, m in self.exchange if heard_chars is None or at < heard_chars]
        # A call without its result (or the reverse) would confuse the model: keep pairs.
        if kept and kept[-1].role == "assistant":
            kept.pop()
        return tuple(kept)


@dataclass
class ToolLoop:
    registry: ToolRegistry
    filler_s: float = 0.7
    filler_text: str = "One moment."
    max_rounds: int = MAX_ROUNDS
    # Look the user's words up in the knowledge base before the first round, and give the
    # model what matches as if it had asked (a small model rarely asks by itself).
    prefetch: bool = True
    tracer: trace.Tracer = field(default_factory=lambda: _tracer)

    def offered(self, turn: Turn) -> tuple[ToolSpec, ...]:
        """The tools the model is told of in this turn: every tool, when the user's words suit
        one of them (``ToolSpec.hints``), else none. A small model told of tools talks about
        them, or calls one, when nothing needs it ("the function current_time..." in reply to
        "My name is Anna"); a turn without tools also keeps the plain prompt and its cache."""
        words = turn.messages[-1].content if turn.messages else ""
        return self.registry.specs if any(s.suits(words) for s in self.registry.specs) else ()

    async def reply(self, model: LanguageModel, turn: Turn, tools: TurnTools) -> AsyncIterator[str]:
        messages = list(turn.messages)
        filler_said = False
        called: set[tuple[str, str]] = set()
        if self.prefetch:
            for call, result in await self._prefetched(turn, tools):
                called.add((call.name, call.arguments_json))
                asked = Message("assistant", "", tool_calls=(call,))
                answer = Message("tool", result, tool_call_id=call.call_id, name=call.name)
                messages += [asked, answer]
                tools.exchange += [(0, asked), (0, answer)]
        offered = self.offered(turn)
        for round_number in range(self.max_rounds):
            last = round_number == self.max_rounds - 1
            this_round = dataclasses.replace(
                turn, messages=tuple(messages), tools=() if last else offered
            )
            calls: list[ToolCall] = []
            async for delta in model.generate(this_round):
                if isinstance(delta, ToolCall):
                    calls.append(delta)
                elif delta:
                    tools.spoken_chars += len(delta)
                    yield delta
            if not calls:
                return
            # The same call twice in one turn is a model going round in circles: it gets one
            # more round, without tools, to say something.
            calls = [c for c in calls if (c.name, c.arguments_json) not in called]
            if not calls:
                last_words = dataclasses.replace(turn, messages=tuple(messages), tools=())
                async for delta in model.generate(last_words):
                    if isinstance(delta, str) and delta:
                        tools.spoken_chars += len(delta)
                        yield delta
                return
            asked = Message("assistant", "", tool_calls=tuple(calls))
            messages.append(asked)
            tools.exchange.append((tools.spoken_chars, asked))
            spoken: list[str] = []
            for call in calls:
                called.add((call.name, call.arguments_json))
                task = asyncio.create_task(self._call(call, tools), name=f"tool-{call.name}")
                try:
                    if not filler_said and self.filler_text:
                        done, _ = await asyncio.wait({task}, timeout=self.filler_s)
                        if not done:
                            filler_said = True
                            filler = self.filler_text + " "
                            tools.spoken_chars += len(filler)
                            yield filler
                    result = await task
                finally:
                    if not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                answer = Message("tool", result, tool_call_id=call.call_id, name=call.name)
                messages.append(answer)
                tools.exchange.append((tools.spoken_chars, answer))
                if tools.outcomes.get(call.call_id) == "ok" and self._speaks_result(call):
                    spoken.append(result)
            if spoken and len(spoken) == len(calls):
                words = " ".join(spoken)
                tools.spoken_chars += len(words)
                yield words
                return

    def _speaks_result(self, call: ToolCall) -> bool:
        tool = self.registry.get(call.name)
        return tool is not None and tool.speaks_result

    async def _prefetched(self, turn: Turn, tools: TurnTools) -> list[tuple[ToolCall, str]]:
        """The knowledge base's answer to the user's words, where it has one."""
        words = turn.messages[-1].content if turn.messages[-1].role == "user" else ""
        found = []
        for tool in self.registry.tools_with_lookup():
            assert tool.lookup is not None
            try:
                async with asyncio.timeout(tool.timeout_s):
                    result = await tool.lookup(words)
            except Exception as error:  # the model may still ask for the tool itself
                log.warning("turn %s: looking up %s failed: %s", tools.turn_id, tool.name, error)
                continue
            if result is None:
                continue
            call = ToolCall(f"lookup-{next(_lookups)}", tool.name, {"query": words})
            self._announce(call, tools, side_effects=False)
            found.append((call, self._report(call, tools, "ok", result[:MAX_RESULT_CHARS], 0.0)))
        return found

    async def _call(self, call: ToolCall, tools: TurnTools) -> str:
        tool = self.registry.get(call.name)
        if tool is None:
            self._announce(call, tools, side_effects=False)
            known = ", ".join(self.registry.names)
            return self._report(
                call, tools, "not_found", f"There is no tool {call.name} ({known}).", 0.0
            )
        problem = _check_arguments(tool, call)
        if problem:
            self._announce(call, tools, side_effects=tool.spec.side_effects)
            return self._report(call, tools, "error", f"Invalid arguments: {problem}", 0.0)
        if tool.spec.side_effects and not tools.confirmed.is_set():
            # Runs only for a turn the user really ended; a discard cancels this wait.
            await tools.confirmed.wait()
        self._announce(call, tools, side_effects=tool.spec.side_effects)
        started = time.perf_counter()
        with self.tracer.start_as_current_span("llm.tool") as span:
            span.set_attribute("voice.session_id", tools.session_id)
            span.set_attribute("voice.turn_id", tools.turn_id)
            span.set_attribute("tool.name", call.name)
            span.set_attribute("tool.source", tool.source)
            span.set_attribute("tool.side_effects", tool.spec.side_effects)
            span.set_attribute("tool.arguments", call.arguments_json)
            try:
                async with asyncio.timeout(tool.timeout_s):
                    result = await tool.run(call.arguments)
                outcome = "ok"
            except TimeoutError:
                outcome = "timeout"
                result = f"The {call.name} tool did not answer within {tool.timeout_s:g} seconds."
            except asyncio.CancelledError:
                elapsed = time.perf_counter() - started
                span.set_attribute("tool.outcome", "cancelled")
                TOOL_CALLS.labels(call.name, "cancelled").inc()
                TOOL_SECONDS.labels(call.name).observe(elapsed)
                log.info("turn %s: tool %s cancelled", tools.turn_id, call.name)
                raise
            except Exception as error:
                outcome = "error"
                result = f"The {call.name} tool failed: {error}"
                span.record_exception(error)
                log.warning("turn %s: tool %s failed: %s", tools.turn_id, call.name, error)
            span.set_attribute("tool.outcome", outcome)
        if outcome == "ok" and call.name == END_CALL:
            tools.end_call = True
        elapsed_ms = (time.perf_counter() - started) * 1000
        return self._report(call, tools, outcome, result[:MAX_RESULT_CHARS], elapsed_ms)

    @staticmethod
    def _announce(call: ToolCall, tools: TurnTools, *, side_effects: bool) -> None:
        """The client hears of the call (``tool_call``) as it starts, or as it is refused."""
        tools.emit(
            llm_pb2.ConverseResponse(
                tool_call=llm_pb2.ToolCall(
                    turn_id=tools.turn_id,
                    call_id=call.call_id,
                    name=call.name,
                    arguments_json=call.arguments_json,
                    side_effects=side_effects,
                )
            )
        )

    def _report(
        self, call: ToolCall, tools: TurnTools, outcome: str, result: str, elapsed_ms: float
    ) -> str:
        TOOL_CALLS.labels(call.name if self.registry.get(call.name) else "unknown", outcome).inc()
        tools.outcomes[call.call_id] = outcome
        if elapsed_ms:
            TOOL_SECONDS.labels(call.name).observe(elapsed_ms / 1000)
        tools.emit(
            llm_pb2.ConverseResponse(
                tool_result=llm_pb2.ToolResult(
                    turn_id=tools.turn_id,
                    call_id=call.call_id,
                    name=call.name,
                    outcome=outcome,
                    result=result,
                    duration_ms=elapsed_ms,
                )
            )
        )
        return result


def _check_arguments(tool: Tool, call: ToolCall) -> str:
    """What is wrong with the call's arguments by the tool's schema ('' when nothing)."""
    try:
        jsonschema.validate(call.arguments, tool.spec.parameters)
    except jsonschema.ValidationError as error:
        return str(error.message)
    except jsonschema.SchemaError:
        return ""  # a server's odd schema: let the tool judge
    return ""
