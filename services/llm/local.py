"""The embedded model: a GGUF (Qwen2.5 0.5B by default) run in-process by llama.cpp (xllamacpp).

llama.cpp's server core keeps a KV cache per slot and reuses the longest matching prompt prefix,
so a session's system prompt and history are not read again on every turn. Generation runs on a
worker thread; every streamed chunk goes back to the event loop, and the per-chunk callback
returns True to stop as soon as the caller has gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import xllamacpp

from services.llm.engine import Turn
from voice.errors import EngineError
from voice.models import qwen_gguf_path
from voice.settings import LlmSettings

log = logging.getLogger(__name__)

_DONE = object()


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
        threads = settings.threads or max(1, os.cpu_count() or 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        # Threads that sleep between tokens instead of spinning leave the CPU to stt and tts.
        params.cpuparams.poll = 0
        params.cpuparams_batch.poll = 0
        params.cache_prompt = True
        params.verbosity = -1
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        self.model = path.stem
        self._temperature = settings.temperature
        self._parallel = settings.parallel
        self._slots = asyncio.Semaphore(settings.parallel)
        log.info(
            "loaded %s (%d slots) in %.2fs",
            path.name,
            settings.parallel,
            time.perf_counter() - started,
        )

    def warm_up(self, system_prompt: str) -> None:
        """Read the system prompt into every slot's cache, so no user waits for it."""
        request = {
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": "Hello."},
            ],
            "max_tokens": 1,
            "cache_prompt": True,
        }
        for _ in range(self._parallel):
            self._server.handle_chat_completions(request, lambda _chunk: False)

    async def generate(self, turn: Turn) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        request = {
            "messages": [{"role": m.role, "content": m.content} for m in turn.messages],
            "stream": True,
            "max_tokens": turn.max_tokens,
            "temperature": self._temperature,
            "cache_prompt": True,
        }
        turn.stats.model = self.model
        turn.stats.provider = self.name

        def on_chunk(chunk: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return stop.is_set()

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, on_chunk)
            except Exception as error:
                loop.call_soon_threadsafe(queue.put_nowait, EngineError(str(error)))
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        async with self._slots:
            worker = loop.run_in_executor(None, run)
            try:
                while (chunk := await queue.get()) is not _DONE:
                    if isinstance(chunk, Exception):
                        raise chunk
                    text = self._read_chunk(chunk, turn)
                    if text:
                        yield text
            finally:
                stop.set()
                # The slot is free only once llama.cpp has stopped; that is one token away.
                await asyncio.shield(worker)

    @staticmethod
    def _read_chunk(chunk: Any, turn: Turn) -> str:
        if not isinstance(chunk, dict):
            return ""
        if "error" in chunk:
            raise EngineError(str(chunk["error"]))
        timings = chunk.get("timings")
        if timings:
            turn.stats.prompt_tokens = int(timings.get("prompt_n", 0)) + int(
                timings.get("cache_n", 0)
            )
            turn.stats.cached_tokens = int(timings.get("cache_n", 0))
            turn.stats.completion_tokens = int(timings.get("predicted_n", 0))
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        return str(choices[0].get("delta", {}).get("content") or "")
