"""The tool loop against real tool servers on this machine, through the llm servicer over gRPC.

A real MCP server (tests/integration/mcp_calendar_server.py, over stdio through the ``mcp``
SDK) and a real HTTP webhook server (aiohttp on 127.0.0.1) serve an agent defined in an agent
file; demo mode asks for the calls (``<tool name> {json arguments}``), so each test knows which.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from services.llm.demo import DemoModel
from services.llm.servicer import LanguageModelServicer
from services.llm.tool_loop import ToolLoop
from services.llm.tools.agent import Agent, build_agent, read_definition
from tests.integration.conftest import serving
from tests.integration.test_llm_servicer import Conversation
from voice.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration

MCP_SERVER = Path(__file__).with_name("mcp_calendar_server.py")


@dataclass
class Booking:
    """The webhook server: /book records bookings (a side effect), /slow never answers in
    time, /broken fails. It checks the header the agent file takes from the environment."""

    url: str = ""
    booked: list[dict[str, Any]] = field(default_factory=list)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def book(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "no token"}, status=401)
        body = await request.json()
        self.booked.append(body)
        return web.json_response({"confirmation": f"T-{len(self.booked)}", "day": body["day"]})

    async def slow(self, request: web.Request) -> web.Response:
        self.slow_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.slow_gone.set()  # the client went: the call was really stopped
            raise
        return web.json_response({})

    async def broken(self, _request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")


@asynccontextmanager
async def booking_server() -> AsyncIterator[Booking]:
    booking = Booking()
    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_post("/book", booking.book)
    app.router.add_post("/slow", booking.slow)
    app.router.add_get("/broken", booking.broken)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    booking.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield booking
    finally:
        await runner.cleanup()


def agent_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"""
instructions: You book appointments.
builtins: [current_time]
tools:
  - webhook: {url}/book
    name: book_table
    description: Book a table.
    side_effects: true
    headers: {{Authorization: "Bearer ${{BOOKING_TOKEN}}"}}
    parameters:
      type: object
      properties: {{day: {{type: string}}}}
      required: [day]
  - webhook: {url}/slow
    name: slow_lookup
    description: A lookup that takes long.
    timeout_s: 20
  - webhook: {url}/broken
    method: GET
    name: broken_lookup
    description: A lookup whose server is down.
  - mcp: [{sys.executable}, {MCP_SERVER}]
    name: calendar
"""
    )
    return path


@asynccontextmanager
async def served_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Conversation, Booking, Agent]]:
    monkeypatch.setenv("BOOKING_TOKEN", "s3cret")
    async with booking_server() as booking:
        agent = await build_agent(read_definition(agent_file(tmp_path, booking.url)))
        servicer = LanguageModelServicer(
            DemoModel(),  # type: ignore[arg-type]
            "Be brief.",
            2000,
            64,
            tool_loop=ToolLoop(agent.tools, filler_s=0.3),
        )
        try:
            async with serving(
                lambda server: llm_pb2_grpc.add_LanguageModelServiceServicer_to_server(
                    servicer, server
                )
            ) as channel:
                conversation = Conversation(channel)
                yield conversation, booking, agent
                conversation.queue.put_nowait(None)
        finally:
            await agent.aclose()


async def collect(conversation: Conversation) -> tuple[str, list[llm_pb2.ConverseResponse]]:
    """The turn's text and its tool events, up to its done message (which ends the list)."""
    text, events = "", []
    async for response in conversation.call:
        kind = response.WhichOneof("event")
        if kind == "delta":
            text += response.delta.text
        else:
            events.append(response)
            if kind == "done":
                return text, events
    raise AssertionError("the stream ended without a done message")


def turn(turn_id: str, text: str, *, early: bool = False) -> llm_pb2.ConverseRequest:
    return llm_pb2.ConverseRequest(turn=llm_pb2.UserTurn(turn_id=turn_id, text=text, early=early))


async def test_mcp_and_webhook_tools_run_and_the_reply_speaks_their_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_agent(tmp_path, monkeypatch) as (conversation, booking, agent):
        assert {"free_slots", "book_slot", "book_table"} <= set(agent.tools.names)
        conversation.say("t1", 'free_slots {"day": "Monday"}')
        text, events = await collect(conversation)
        assert text == "On Monday 10:00 and 14:30 are free."
        call, result, done = events
        assert (call.tool_call.name, json.loads(call.tool_call.arguments_json)) == (
            "free_slots",
            {"day": "Monday"},
        )
        assert result.tool_result.outcome == "ok" and result.tool_result.duration_ms > 0
        assert not done.done.error

        conversation.say("t2", 'book_table {"day": "Friday"}')
        text, events = await collect(conversation)
        assert booking.booked == [{"day": "Friday"}]
        assert json.loads(text) == {"confirmation": "T-1", "day": "Friday"}
        assert events[0].tool_call.side_effects


async def test_a_server_down_is_a_result_the_model_can_speak_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_agent(tmp_path, monkeypatch) as (conversation, _, _agent):
        conversation.say("t1", "broken_lookup")
        text, events = await collect(conversation)
        assert text.startswith(
            "Sorry, I couldn't get that: The broken_lookup tool failed: HTTP 503"
        )
        assert events[1].tool_result.outcome == "error"
        conversation.say("t2", 'book_slot {"day": "Monday"}')  # the MCP server refuses it
        text, events = await collect(conversation)
        assert events[1].tool_result.outcome == "error"
        assert "Invalid arguments: 'time' is a required property" in text


async def test_an_early_turn_books_only_once_confirmed_and_a_discarded_one_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_agent(tmp_path, monkeypatch) as (conversation, booking, _agent):
        conversation.queue.put_nowait(turn("t1", 'book_table {"day": "Monday"}', early=True))
        await asyncio.sleep(0.5)
        assert booking.booked == []
        conversation.queue.put_nowait(
            llm_pb2.ConverseRequest(confirm=llm_pb2.ConfirmTurn(turn_id="t1"))
        )
        _, events = await collect(conversation)
        assert booking.booked == [{"day": "Monday"}]
        assert [e.WhichOneof("event") for e in events] == ["tool_call", "tool_result", "done"]

        conversation.queue.put_nowait(turn("t2", 'book_table {"day": "Sunday"}', early=True))
        await asyncio.sleep(0.3)
        conversation.queue.put_nowait(
            llm_pb2.ConverseRequest(cancel=llm_pb2.CancelTurn(turn_id="t2", discard=True))
        )
        _, events = await collect(conversation)
        # Only the filler was said while it waited (the gateway never plays a discarded reply).
        assert [e.WhichOneof("event") for e in events] == ["done"]
        assert events[0].done.cancelled
        assert booking.booked == [{"day": "Monday"}]


async def test_a_barge_in_stops_the_call_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_agent(tmp_path, monkeypatch) as (conversation, booking, _agent):
        conversation.say("t1", "slow_lookup")
        responses = []
        async for response in conversation.call:
            responses.append(response)
            if response.HasField("delta"):  # the filler, while the call runs
                assert response.delta.text == "One moment. "
                break
        await asyncio.wait_for(booking.slow_started.wait(), 5)
        conversation.queue.put_nowait(
            llm_pb2.ConverseRequest(
                cancel=llm_pb2.CancelTurn(
                    turn_id="t1", heard_text="One moment.", has_heard_text=True
                )
            )
        )
        _, events = await collect(conversation)
        await asyncio.wait_for(booking.slow_gone.wait(), 5)
        assert [r.WhichOneof("event") for r in responses] == ["tool_call", "delta"]
        assert [e.WhichOneof("event") for e in events] == ["done"]  # no result: dropped
        assert events[0].done.cancelled
