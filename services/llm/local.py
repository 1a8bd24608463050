"""The embedded model: a GGUF (Qwen2.5 0.5B by default) run in-process by llama.cpp (xllamacpp).

llama.cpp's server core keeps a KV cache per slot and reuses the longest matching prompt prefix,
so a session's system prompt and history are not read again on every turn. Each request names
its slot (``id_slot``): the :class:`SlotPool` gives a session back the slot holding its
conversation, queues turns fairly and refuses them when the queue is full. When the oldest turns
are dropped from a long conversation, ``n_cache_reuse`` lets llama.cpp shift the rest of the
cached history into place instead of reading it again.

Generation runs on a worker thread; every streamed chunk goes back to the event loop, and the
per-chunk callback returns True to stop as soon as the caller has gone. Prompt progress chunks
(one per batch of ``LLM_BATCH_TOKENS``) let a cancel land while a long prompt is still being
read, not only once tokens flow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import xllamacpp

from services.llm.end_score import TOP_TOKENS, chatml_prefix, closing_probability
from services.llm.engine import Delta, Turn
from services.llm.local_tools import (
    TEXT_RULE,
    chat_messages,
    grammar_for,
    looks_like_call,
    parse_call,
    words_in_call_text,
)
from services.llm.settings import LlmSettings
from services.llm.slots import SlotPool
from voice.errors import EngineError
from voice.models import qwen_gguf_path

log = logging.getLogger(__name__)

PROMPT_CACHE_RAM_MIB = 128

_DONE = object()
WORDS_ONLY_GRAMMAR = "root ::= text\n" + TEXT_RULE


class _CallNotWordsError(EngineError):
    """Call-shaped text with no words in it, in a round where words were due."""


# The smallest run of cached tokens llama.cpp shifts into place when the prefix changed.
CACHE_REUSE_MIN_TOKENS = 32


class LocalLlama:
    name = "local"

    def __init__(self, settings: LlmSettings) -> None:
        path = (
            Path(settings.model_path)
            if settings.model_path
            else qwen_gguf_path(settings.common.cache_dir)
        )
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = settings.context_tokens * settings.parallel
        params.n_parallel = settings.parallel
        params.n_batch = settings.batch_tokens
        params.n_ubatch = settings.batch_tokens
        threads = settings.threads or max(1, os.cpu_count() or 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        # Threads that sleep between tokens instead of spinning leave the CPU to stt and tts.
        params.cpuparams.poll = 0
        params.cpuparams_batch.poll = 0
        params.cache_prompt = True
        # llama.cpp keeps old prompt states in host memory for reuse; its default cap is
        # gigabytes, so an always-on service would grow until it reached it. Bound it.
        params.cache_ram_mib = PROMPT_CACHE_RAM_MIB
        params.n_cache_reuse = CACHE_REUSE_MIN_TOKENS
        params.verbosity = -1
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        self.model = path.stem
        self._temperature = settings.temperature
        self._tool_temperature = min(settings.temperature, settings.tool_temperature)
        self.pool = SlotPool(settings.parallel, settings.queue_limit)
        # One thread per slot: a generation holds its thread until llama.cpp has stopped.
        self._threads = ThreadPoolExecutor(settings.parallel, thread_name_prefix="llama")
        log.info(
            "loaded %s (%d slots, queue of %d) in %.2fs",
            path.name,
            settings.parallel,
            settings.queue_limit,
            time.perf_counter() - started,
        )

    def warm_up(self, system_prompt: str) -> None:
        """Read the system prompt into every slot's cache, so no user waits for it."""
        for slot in range(self.pool.size):
            request = {
                "messages": [
                    {"role": "system", "content": system_prompt},
                    {"role": "user", "content": "Hello."},
                ],
                "max_tokens": 1,
                "cache_prompt": True,
                "id_slot": slot,
            }
            self._server.handle_chat_completions(request, lambda _chunk: False)

    async def score_end(self, turn: Turn) -> float:
        """How likely the turn's text is a finished turn (services/llm/end_score.py).

        It runs on the session's slot, one forward step over the prompt the reply then reads:
        the reply finds that prefix in the slot's cache and reads only what follows it."""
        request = {
            "prompt": chatml_prefix(chat_messages(turn.messages, turn.tools)),
            "max_tokens": 1,
            "n_probs": TOP_TOKENS,
            "temperature": 0.0,
            "cache_prompt": True,
        }
        loop = asyncio.get_running_loop()
        async with self.pool.slot(turn.session_id) as slot:
            request["id_slot"] = slot
            worker = loop.run_in_executor(self._threads, self._complete, request)
            try:
                result = await asyncio.shield(worker)
            finally:
                if not worker.done():  # cancelled: the slot is free once the step is over
                    await asyncio.wait([worker])
        return closing_probability(result)

    def _complete(self, request: dict[str, Any]) -> Any:
        results: list[Any] = []

        def keep(chunk: Any) -> bool:
            results.append(chunk)
            return False

        self._server.handle_completions(request, keep)
        if not results or (isinstance(results[-1], dict) and "error" in results[-1]):
            raise EngineError(f"scoring failed: {results[-1]['error'] if results else 'no result'}")
        return results[-1]

    async def generate(self, turn: Turn) -> AsyncIterator[Delta]:
        try:
            async for delta in self._generate(turn):
                yield delta
        except _CallNotWordsError as error:
            # Nothing was said before it (a call is held from its first token): once more,
            # held to words by a grammar.
            log.info("%s; asking again for words", error)
            async for delta in self._generate(turn, words_only=True):
                yield delta

    async def _generate(self, turn: Turn, *, words_only: bool = False) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        turn.stats.model = self.model
        turn.stats.provider = self.name
        queued = time.perf_counter()
        # Greedy too in the rounds after a tool's result: sampled, the small model often
        # writes another call, or about the tool, instead of reading the result back.
        tool_round = bool(turn.tools) or any(m.role == "tool" for m in turn.messages)
        async with self.pool.slot(turn.session_id) as slot:
            turn.stats.queue_ms = (time.perf_counter() - queued) * 1000
            request = {
                "messages": chat_messages(turn.messages, turn.tools),
                "stream": True,
                "max_tokens": turn.max_tokens,
                # With tools the first token decides between a call and words: sampled, a
                # small model misses calls it makes greedily (LLM_TOOL_TEMPERATURE).
                "temperature": self._tool_temperature if tool_round else self._temperature,
                "cache_prompt": True,
                "id_slot": slot,
                "return_progress": True,
            }
            if turn.tools:
                # Either one call to a tool that exists, or words (services/llm/local_tools.py).
                request["grammar"] = grammar_for(turn.tools)
            elif words_only:
                request["grammar"] = WORDS_ONLY_GRAMMAR
            held: list[str] | None = None

            def on_chunk(chunk: Any) -> bool:
                if stop.is_set():
                    return True
                loop.call_soon_threadsafe(queue.put_nowait, chunk)
                return False

            def run() -> None:
                try:
                    self._server.handle_chat_completions(request, on_chunk)
                except Exception as error:
                    loop.call_soon_threadsafe(queue.put_nowait, EngineError(str(error)))
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _DONE)

            worker = loop.run_in_executor(self._threads, run)
            try:
                while (chunk := await queue.get()) is not _DONE:
                    if isinstance(chunk, Exception):
                        raise chunk
                    text = self._read_chunk(chunk, turn)
                    if held is None and text and looks_like_call(text):
                        held = []  # a tool call: read it whole, then parse it
                    if held is not None:
                        held.append(text)
                    elif text:
                        yield text
                if held is not None and not turn.tools:
                    # Call-shaped JSON where words were due (the round after a tool's result)
                    # is never spoken: the answer inside it is, or else the chain's next
                    # provider answers.
                    words = words_in_call_text("".join(held))
                    if not words:
                        raise _CallNotWordsError(
                            f"the model wrote a call, not words: {''.join(held)!r}"
                        )
                    yield words
                    held = None
                if held is not None:
                    call = parse_call("".join(held), turn.tools)
                    if call is None:
                        raise EngineError(f"the model's tool call did not parse: {''.join(held)!r}")
                    yield call
            finally:
                stop.set()
                # The slot is free only once llama.cpp has stopped: one token or one prompt
                # batch away. A second cancel does not wait for it; llama.cpp then defers the
                # next request for this slot until it is free.
                await asyncio.shield(worker)

    @staticmethod
    def _read_chunk(chunk: Any, turn: Turn) -> str:
        if not isinstance(chunk, dict):
            return ""
        if "error" in chunk:
            raise EngineError(str(chunk["error"]))
        stats = turn.stats
        progress = chunk.get("prompt_progress")
        if progress:
            stats.cached_tokens = int(progress.get("cache", 0))
            stats.prompt_tokens = int(progress.get("total", 0))
        timings = chunk.get("timings")
        if timings:
            stats.cached_tokens = int(timings.get("cache_n", 0))
            stats.prompt_tokens = int(timings.get("prompt_n", 0)) + stats.cached_tokens
            stats.completion_tokens = int(timings.get("predicted_n", 0))
            stats.tokens_per_s = float(timings.get("predicted_per_second", 0.0))
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        return str(choices[0].get("delta", {}).get("content") or "")
