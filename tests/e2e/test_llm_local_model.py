"""The real embedded model (Qwen2.5 0.5B GGUF via llama.cpp): prompt cache, slots, cancellation.

These load the assembled model from .cache/models (``make models``) and skip when it is absent.
They check behaviour, not speed: ``make bench-llm`` prints the timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.llm.engine import Turn
from services.llm.fallback import FallbackChain
from services.llm.history import History
from services.llm.local import CACHE_REUSE_MIN_TOKENS, LocalLlama
from services.llm.servicer import LanguageModelServicer
from services.llm.settings import LlmSettings
from tests.integration.conftest import serving
from tests.integration.test_llm_servicer import Conversation
from voice.models import ModelUnavailableError, qwen_gguf_path
from voice.v1 import llm_pb2_grpc

pytestmark = pytest.mark.e2e

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def settings() -> LlmSettings:
    settings = LlmSettings.from_env({"LLM_PARALLEL": "2", "LLM_QUEUE_LIMIT": "2"})
    try:
        qwen_gguf_path(settings.common.cache_dir)
    except ModelUnavailableError as error:
        pytest.skip(f"embedded model not available: {error}")
    return settings


@pytest.fixture(scope="module")
def engine(settings: LlmSettings) -> Iterator[LocalLlama]:
    engine = LocalLlama(settings)
    engine.warm_up(settings.system_prompt)
    yield engine


async def answer(engine: LocalLlama, history: History, session: str, text: str) -> Turn:
    turn = Turn(history.prompt_for(text), MAX_TOKENS, session_id=session)
    reply = "".join([d async for d in engine.generate(turn) if isinstance(d, str)])
    assert reply.strip(), "the model said nothing"
    history.record(text, reply)
    return turn


async def test_a_follow_up_turn_reads_its_conversation_from_the_cache(
    engine: LocalLlama, settings: LlmSettings
) -> None:
    history = History(settings.system_prompt, 2000)
    first = await answer(engine, history, "cache", "What is the capital of France?")
    second = await answer(engine, history, "cache", "And of Italy?")
    assert first.stats.provider == "local" and first.stats.completion_tokens > 0
    # Everything up to the new user text was in the slot: system prompt, question, reply.
    assert second.stats.prompt_tokens > first.stats.prompt_tokens
    assert second.stats.cached_tokens >= first.stats.prompt_tokens
    assert engine.pool.busy == 0


async def test_two_sessions_taking_turns_each_find_their_own_prefix(
    engine: LocalLlama, settings: LlmSettings
) -> None:
    alice, bob = History(settings.system_prompt, 2000), History(settings.system_prompt, 2000)
    alice_first = await answer(engine, alice, "alice", "Name a red fruit.")
    bob_first = await answer(engine, bob, "bob", "Name a large animal.")
    assert engine.pool.home_of("alice") != engine.pool.home_of("bob")
    alice_second = await answer(engine, alice, "alice", "And a yellow one?")
    bob_second = await answer(engine, bob, "bob", "And a small one?")
    assert alice_second.stats.cached_tokens >= alice_first.stats.prompt_tokens
    assert bob_second.stats.cached_tokens >= bob_first.stats.prompt_tokens


async def test_past_the_history_budget_the_kept_history_is_still_read_from_the_cache(
    engine: LocalLlama, settings: LlmSettings
) -> None:
    history = History(settings.system_prompt, 200)
    questions = [
        f"Question {n}: name a colour that starts with the letter {letter}."
        for n, letter in enumerate("BGRYPOWT", 1)
    ]
    first = await answer(engine, history, "tight", questions[0])
    # The cache a brand-new session finds: the system prompt that warm-up read.
    system_only = first.stats.cached_tokens
    for question in questions[1:]:
        if history.prompt_for(question)[1].content != questions[0]:
            break  # this prompt no longer holds the oldest exchange
        await answer(engine, history, "tight", question)
    else:
        raise AssertionError("the history never reached its budget")
    # The prefix changed right after the system prompt; the rest of the history is shifted into
    # place rather than read again.
    trimmed = await answer(engine, history, "tight", question)
    assert trimmed.stats.cached_tokens > system_only + CACHE_REUSE_MIN_TOKENS
    assert trimmed.stats.cached_tokens > trimmed.stats.prompt_tokens // 2


def register(engine: LocalLlama, settings: LlmSettings) -> object:
    servicer = LanguageModelServicer(
        FallbackChain([engine]), settings.system_prompt, 2000, MAX_TOKENS * 8
    )
    return lambda server: llm_pb2_grpc.add_LanguageModelServiceServicer_to_server(servicer, server)


async def test_a_cancel_frees_the_engine_and_the_next_turn_is_answered(
    engine: LocalLlama, settings: LlmSettings
) -> None:
    async with serving(register(engine, settings)) as channel:  # type: ignore[arg-type]
        conversation = Conversation(channel)
        conversation.say("t1", "Tell me a long story about a lighthouse keeper.")
        text, done = await conversation.reply(cancel_after=3, heard="Once upon")
        assert done.cancelled and not done.error
        # The engine slot is free by the time the turn is reported done.
        assert engine.pool.busy == 0
        assert text.strip() and done.completion_tokens < MAX_TOKENS * 8
        conversation.say("t2", "Thanks. Now say goodbye in three words.")
        text, done = await conversation.reply()
        conversation.queue.put_nowait(None)
    assert text.strip() and not done.cancelled and not done.error
    assert done.provider == "local"
    assert engine.pool.busy == 0


async def test_a_closed_stream_frees_the_engine_for_another_session(
    engine: LocalLlama, settings: LlmSettings
) -> None:
    async with serving(register(engine, settings)) as channel:  # type: ignore[arg-type]
        leaving = Conversation(channel)
        leaving.say("t1", "Tell me a long story about a dragon.")
        async for response in leaving.call:
            assert response.HasField("delta")
            break
        assert engine.pool.busy == 1
        leaving.call.cancel()
        for _ in range(200):  # up to 10 s on a loaded machine; typically one token
            if engine.pool.busy == 0:
                break
            await asyncio.sleep(0.05)
        assert engine.pool.busy == 0
        staying = Conversation(channel)
        staying.say("t1", "Say hello.")
        text, done = await staying.reply()
        staying.queue.put_nowait(None)
    assert text.strip() and not done.error and done.provider == "local"


@pytest.mark.parametrize(
    ("complete", "text"),
    [
        (True, "What time is it?"),
        (True, "Turn on the lights."),
        (False, "I'd like to book a"),
        (False, "one, two,"),
    ],
)
async def test_the_model_scores_a_complete_turn_above_one_cut_mid_sentence(
    engine: LocalLlama, settings: LlmSettings, complete: bool, text: str
) -> None:
    history = History(settings.system_prompt, 2000)
    turn = Turn(history.prompt_for(text), MAX_TOKENS, session_id="score")
    p_end = await engine.score_end(turn)
    assert 0.0 <= p_end <= 1.0
    # The default threshold is 0.2 (GATEWAY_END_OF_TURN_THRESHOLD); these are far from it.
    assert (p_end >= 0.2) == complete, f"{text!r} scored {p_end:.3f}"
    # The reply finds the scored prefix in the slot's cache: it reads only the few tokens
    # that close the user's message and open the assistant's.
    reply = await answer(engine, history, "score", text)
    assert reply.stats.prompt_tokens - reply.stats.cached_tokens <= 8, reply.stats
