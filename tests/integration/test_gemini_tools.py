"""Gemini's native function calling through the tool loop, against the local Gemini server.

The request declares the agent's tools as ``functionDeclarations`` (automatic calling off: the
service runs them), a ``functionCall`` part comes back as a tool call, and the next request
carries the call and its ``functionResponse`` so the model can speak about the result.
"""

from __future__ import annotations

import dataclasses

import pytest

from services.llm.engine import Message, Turn
from services.llm.tool_loop import ToolLoop, TurnTools
from services.llm.tools.builtins import calculate_tool, current_time_tool
from services.llm.tools.spec import ToolRegistry
from tests.integration.test_gemini_contract import WORDS, fake_gemini, gemini
from voice.v1 import llm_pb2

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]


async def test_a_function_call_runs_the_tool_and_its_response_goes_back() -> None:
    # Read back by the model (the built-in clock speaks its result itself: see below).
    clock = dataclasses.replace(current_time_tool("UTC"), speaks_result=False)
    registry = ToolRegistry([clock, calculate_tool()])
    events: list[llm_pb2.ConverseResponse] = []
    tools = TurnTools("t1", events.append)
    tools.confirmed.set()
    turn = Turn((Message("system", "Speak briefly."), Message("user", "What time is it?")), 48)
    async with fake_gemini() as server:
        model = gemini(server.url, model="tool-call")
        text = "".join([d async for d in ToolLoop(registry).reply(model, turn, tools)])
        await model.aclose()
    assert text == "".join(WORDS)
    first, second = (seen.body for seen in server.requests)
    declared = first["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["current_time", "calculate"]
    # google-genai writes this field in snake case (proto3 JSON accepts either spelling).
    schema = declared[1].get("parametersJsonSchema") or declared[1]["parameters_json_schema"]
    assert schema["required"] == ["expression"]
    call_turn, result_turn = second["contents"][-2:]
    assert call_turn["role"] == "model"
    assert call_turn["parts"][0]["functionCall"] == {
        "id": "fc-1",
        "name": "current_time",
        "args": {},
    }
    response = result_turn["parts"][0]["functionResponse"]
    assert response["name"] == "current_time" and response["id"] == "fc-1"
    assert response["response"]["result"].startswith("It is ")
    assert response["response"]["result"].endswith("(UTC).")
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds == ["tool_call", "tool_result"]
    assert events[1].tool_result.outcome == "ok"


async def test_a_result_that_is_the_answer_is_spoken_without_a_second_request() -> None:
    registry = ToolRegistry([current_time_tool("UTC"), calculate_tool()])
    tools = TurnTools("t1", lambda _event: None)
    tools.confirmed.set()
    turn = Turn((Message("system", "Speak briefly."), Message("user", "What time is it?")), 48)
    async with fake_gemini() as server:
        model = gemini(server.url, model="tool-call")
        text = "".join([d async for d in ToolLoop(registry).reply(model, turn, tools)])
        await model.aclose()
    assert text.startswith("It is ") and text.endswith("(UTC).")
    assert len(server.requests) == 1


async def test_without_tools_the_request_declares_none() -> None:
    turn = Turn((Message("system", "Be brief."), Message("user", "Hi.")), 48)
    async with fake_gemini() as server:
        model = gemini(server.url)
        text = "".join([d async for d in model.generate(turn) if isinstance(d, str)])
        await model.aclose()
    assert text == "".join(WORDS)
    assert "tools" not in server.requests[0].body
