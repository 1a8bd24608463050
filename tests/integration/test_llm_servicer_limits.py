"""The llm servicer at its limits, over real gRPC: a full engine, a closed stream, bad input."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from services.llm.demo import DemoModel
from services.llm.engine import LanguageModel, Message, Turn
from services.llm.fallback import FallbackChain
from services.llm.servicer import MAX_TURN_TEXT_CHARS, LanguageModelServicer
from services.llm.slots import SlotPool
from tests.integration.conftest import serving
from tests.integration.test_llm_servicer import Conversation
from voice.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration


class SlottedModel:
    """Like the embedded engine: every generation holds a slot of a shared pool."""

    name = "local"

    def __init__(self, slots: int, queue_limit: int, words: int = 400) -> None:
        self.pool = SlotPool(slots, queue_limit)
        self.words = words
        self.prompts: list[tuple[Message, ...]] = []
        self.sessions: list[str] = []
        self.stopped = asyncio.Event()

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        turn.stats.provider = self.name
        async with self.pool.slot(turn.session_id):
            self.prompts.append(turn.messages)
            self.sessions.append(turn.session_id)
            try:
                for index in range(self.words):
                    await asyncio.sleep(0.01)
                    yield f"w{index} "
            finally:
                self.stopped.set()


def register(model: LanguageModel) -> object:
    servicer = LanguageModelServicer(model, "Be brief.", 2000, 64)
    return lambda server: llm_pb2_grpc.add_LanguageModelServiceServicer_to_server(servicer, server)


class Session(Conversation):
    """A conversation with its own session id."""

    def __init__(self, channel: grpc.aio.Channel, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(channel)

    async def _requests(self) -> AsyncIterator[llm_pb2.ConverseRequest]:
        yield llm_pb2.ConverseRequest(config=llm_pb2.ConverseConfig(session_id=self.session_id))
        while (request := await self.queue.get()) is not None:
            yield request

    async def first_delta(self) -> str:
        async for response in self.call:
            assert response.HasField("delta"), response
            turn_id: str = response.delta.turn_id
            return turn_id
        raise AssertionError("the stream ended")

    def cancel(self, turn_id: str) -> None:
        self.queue.put_nowait(llm_pb2.ConverseRequest(cancel=llm_pb2.CancelTurn(turn_id=turn_id)))


async def test_a_full_engine_fails_the_turn_with_resource_exhausted_and_the_session_goes_on() -> (
    None
):
    model = SlottedModel(slots=1, queue_limit=0)
    # Demo mode after the engine must not answer for a busy engine.
    chain = FallbackChain([model, DemoModel()])
    async with serving(register(chain)) as channel:  # type: ignore[arg-type]
        alice, bob = Session(channel, "alice"), Session(channel, "bob")
        alice.say("a1", "Tell me a long story.")
        assert await alice.first_delta() == "a1"
        bob.say("b1", "Hello?")
        text, done = await bob.reply()
        assert text == ""
        assert done.turn_id == "b1" and done.error.startswith("resource_exhausted:")
        assert "LLM_QUEUE_LIMIT" in done.error and done.provider == ""
        # Alice's turn ends; Bob's stream is still open and his next turn is answered.
        alice.cancel("a1")
        _, alice_done = await alice.reply()
        assert alice_done.cancelled
        bob.say("b2", "Hello again?")
        text, done = await bob.reply(cancel_after=2)
        assert text.startswith("w0 w1") and done.provider == "local"
        for session in (alice, bob):
            session.queue.put_nowait(None)
    assert model.sessions == ["alice", "bob"]
    assert model.pool.busy == 0


async def test_a_queued_turn_waits_for_the_slot_and_then_answers() -> None:
    model = SlottedModel(slots=1, queue_limit=1, words=3)
    async with serving(register(model)) as channel:  # type: ignore[arg-type]
        alice, bob = Session(channel, "alice"), Session(channel, "bob")
        alice.say("a1", "First.")
        await alice.first_delta()
        bob.say("b1", "Second.")
        (alice_text, alice_done), (bob_text, bob_done) = await asyncio.gather(
            alice.reply(), bob.reply()
        )
        for session in (alice, bob):
            session.queue.put_nowait(None)
    assert (alice_text, bob_text) == ("w1 w2 ", "w0 w1 w2 ")
    assert not alice_done.error and not bob_done.error
    assert model.sessions == ["alice", "bob"]


async def test_a_closed_stream_stops_generation_and_frees_the_slot() -> None:
    model = SlottedModel(slots=1, queue_limit=0)
    async with serving(register(model)) as channel:  # type: ignore[arg-type]
        alice = Session(channel, "alice")
        alice.say("a1", "Tell me a long story.")
        await alice.first_delta()
        alice.call.cancel()
        await asyncio.wait_for(model.stopped.wait(), 2.0)
        # The engine is free: another session is answered at once.
        bob = Session(channel, "bob")
        bob.say("b1", "Hi.")
        text, done = await bob.reply(cancel_after=1)
        bob.queue.put_nowait(None)
    assert text == "w0 " and done.cancelled and not done.error
    assert model.pool.busy == 0


async def test_a_config_without_a_session_id_is_refused() -> None:
    async with serving(register(DemoModel())) as channel:  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in Session(channel, "  ").call:
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "session_id" in (raised.value.details() or "")


async def test_a_second_config_is_refused() -> None:
    async with serving(register(DemoModel())) as channel:  # type: ignore[arg-type]
        session = Session(channel, "s")
        session.queue.put_nowait(
            llm_pb2.ConverseRequest(config=llm_pb2.ConverseConfig(session_id="other"))
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in session.call:
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config" in (raised.value.details() or "")


async def test_empty_text_is_an_invalid_argument_turn_error() -> None:
    async with serving(register(DemoModel())) as channel:  # type: ignore[arg-type]
        session = Session(channel, "s")
        session.say("t1", " \n ")
        _, done = await session.reply()
        session.queue.put_nowait(None)
    assert done.error == "invalid_argument: empty text: nothing to answer"


async def test_very_long_text_is_cut_with_a_warning_and_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = SlottedModel(slots=1, queue_limit=0, words=2)
    caplog.set_level(logging.WARNING)
    async with serving(register(model)) as channel:  # type: ignore[arg-type]
        session = Session(channel, "s")
        session.say("t1", "word " * 10_000)
        text, done = await session.reply()
        session.queue.put_nowait(None)
    assert text == "w0 w1 " and not done.error
    user = model.prompts[0][-1]
    assert user.role == "user" and 0 < len(user.content) <= MAX_TURN_TEXT_CHARS
    assert any("cut to" in record.getMessage() for record in caplog.records)


async def test_a_cancel_for_an_unknown_turn_is_ignored() -> None:
    async with serving(register(DemoModel())) as channel:  # type: ignore[arg-type]
        session = Session(channel, "s")
        session.cancel("no-such-turn")
        session.say("t1", "hello")
        text, done = await session.reply()
        session.queue.put_nowait(None)
    assert "Hello" in text and not done.cancelled and not done.error
