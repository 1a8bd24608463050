"""The llm servicer over real gRPC: turns, cancellation, history, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from services.llm.demo import DemoModel
from services.llm.engine import Message, Turn
from services.llm.servicer import TOKENS, LanguageModelServicer
from tests.integration.conftest import serving
from voice.v1 import llm_pb2, llm_pb2_grpc

pytestmark = pytest.mark.integration


class RecordingModel:
    """Streams numbered words slowly and remembers every prompt it was given."""

    name = "recording"

    def __init__(self, words: int = 50, delay_s: float = 0.01) -> None:
        self.prompts: list[tuple[Message, ...]] = []
        self.words = words
        self.delay_s = delay_s
        self.stopped = asyncio.Event()

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        self.prompts.append(turn.messages)
        turn.stats.provider = self.name
        try:
            for index in range(self.words):
                await asyncio.sleep(self.delay_s)
                yield f"word{index} "
        finally:
            self.stopped.set()


def _register(model: object) -> object:
    servicer = LanguageModelServicer(model, "Be brief.", 2000, 64)  # type: ignore[arg-type]
    return lambda server: llm_pb2_grpc.add_LanguageModelServiceServicer_to_server(servicer, server)


class Conversation:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.queue: asyncio.Queue[llm_pb2.ConverseRequest | None] = asyncio.Queue()
        self.call = llm_pb2_grpc.LanguageModelServiceStub(channel).Converse(self._requests())

    async def _requests(self) -> AsyncIterator[llm_pb2.ConverseRequest]:
        yield llm_pb2.ConverseRequest(config=llm_pb2.ConverseConfig(session_id="test"))
        while (request := await self.queue.get()) is not None:
            yield request

    def say(self, turn_id: str, text: str) -> None:
        self.queue.put_nowait(
            llm_pb2.ConverseRequest(turn=llm_pb2.UserTurn(turn_id=turn_id, text=text))
        )

    async def reply(
        self, cancel_after: int | None = None, heard: str = ""
    ) -> tuple[str, llm_pb2.TurnDone]:
        text = ""
        deltas = 0
        async for response in self.call:
            if response.HasField("done"):
                return text, response.done
            text += response.delta.text
            deltas += 1
            if cancel_after is not None and deltas == cancel_after:
                self.queue.put_nowait(
                    llm_pb2.ConverseRequest(
                        cancel=llm_pb2.CancelTurn(
                            turn_id=response.delta.turn_id, heard_text=heard, has_heard_text=True
                        )
                    )
                )
        raise AssertionError("the stream ended without a done message")


async def test_demo_reply_streams_in_deltas_and_names_the_provider() -> None:
    async with serving(_register(DemoModel())) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        conversation.say("t1", "What's the weather like?")
        text, done = await conversation.reply()
        conversation.queue.put_nowait(None)
    assert "weather" in text.lower() or "outside" in text.lower()
    assert done.turn_id == "t1" and not done.cancelled and not done.error
    assert done.provider == "demo"
    assert done.completion_tokens > 3


async def test_tokens_are_counted_by_how_the_turn_ended() -> None:
    complete = TOKENS.labels("completion", "complete")
    before = complete._value.get()
    async with serving(_register(DemoModel())) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        conversation.say("t1", "What's the weather like?")
        _, done = await conversation.reply()
        conversation.queue.put_nowait(None)
    assert done.completion_tokens > 0
    assert complete._value.get() - before == done.completion_tokens


async def test_cancel_stops_generation_and_history_keeps_what_was_heard() -> None:
    model = RecordingModel(words=500, delay_s=0.01)
    async with serving(_register(model)) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        conversation.say("t1", "Tell me a long story.")
        text, done = await conversation.reply(cancel_after=3, heard="word0 word1")
        assert done.cancelled
        await asyncio.wait_for(model.stopped.wait(), 1.0)
        assert len(text.split()) < 50
        conversation.say("t2", "And then?")
        _, second = await conversation.reply()
        conversation.queue.put_nowait(None)
    assert not second.cancelled
    history = model.prompts[1]
    assert history[0].role == "system"
    assert [m.content for m in history[1:]] == ["Tell me a long story.", "word0 word1", "And then?"]


async def test_empty_text_gets_a_clear_error_and_the_stream_goes_on() -> None:
    async with serving(_register(RecordingModel(words=2))) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        conversation.say("t1", "   ")
        _, done = await conversation.reply()
        assert "empty" in done.error
        conversation.say("t2", "Hello")
        text, second = await conversation.reply()
        conversation.queue.put_nowait(None)
    assert text.strip() == "word0 word1" and not second.error


async def test_a_stream_that_does_not_start_with_a_config_is_refused() -> None:
    async with serving(_register(RecordingModel())) as channel:  # type: ignore[arg-type]

        async def requests() -> AsyncIterator[llm_pb2.ConverseRequest]:
            yield llm_pb2.ConverseRequest(turn=llm_pb2.UserTurn(turn_id="t", text="hi"))

        call = llm_pb2_grpc.LanguageModelServiceStub(channel).Converse(requests())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call:
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config" in (raised.value.details() or "")


class ScoringModel(RecordingModel):
    """A model that can score a turn's end: "?" scores 0.9, anything else 0.05."""

    async def score_end(self, turn: Turn) -> float:
        return 0.9 if turn.messages[-1].content.endswith("?") else 0.05


async def _scored_turn(model: object, text: str) -> list[llm_pb2.ConverseResponse]:
    async with serving(_register(model)) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        turn = llm_pb2.UserTurn(turn_id="t1", text=text, score_end=True)
        conversation.queue.put_nowait(llm_pb2.ConverseRequest(turn=turn))
        responses = []
        async for response in conversation.call:
            responses.append(response)
            if response.HasField("done"):
                break
        conversation.queue.put_nowait(None)
    return responses


async def test_a_turn_that_asks_for_its_end_score_gets_it_before_its_first_delta() -> None:
    responses = await _scored_turn(ScoringModel(words=3, delay_s=0), "What time is it?")
    kinds = [response.WhichOneof("event") for response in responses]
    assert kinds == ["score", "delta", "delta", "delta", "done"]
    score = responses[0].score
    assert score.turn_id == "t1" and score.available and score.p_end == pytest.approx(0.9)
    assert score.elapsed_ms >= 0


async def test_a_model_that_cannot_score_says_so_and_still_answers() -> None:
    responses = await _scored_turn(DemoModel(), "What's the weather like?")
    assert responses[0].HasField("score") and not responses[0].score.available
    assert responses[-1].HasField("done") and not responses[-1].done.error
    assert any(response.HasField("delta") for response in responses)
