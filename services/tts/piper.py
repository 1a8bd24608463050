"""The embedded voice: Piper en_US-joe-medium, run on the CPU through onnxruntime.

Piper speaks a chunk one sentence at a time, each sentence in one onnxruntime call on a worker
thread. Cancelling stops that call mid-way: every synthesis runs with its own
``onnxruntime.RunOptions``, and closing the stream sets its ``terminate`` flag, which the
runtime checks between graph nodes (about 2 ms on a 2-core CPU), so a cancelled turn does not
keep a core busy for the rest of a long sentence.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import onnxruntime
from piper import PiperVoice

from voice.errors import EngineError
from voice.models import piper_voice_files

log = logging.getLogger(__name__)

_DONE = object()
# The names of the one voice the embedded model speaks.
VOICE_NAMES = frozenset({"joe", "en_us-joe-medium"})


class _CancellableSession:
    """Piper's onnxruntime session, run with the calling thread's ``RunOptions``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._local = threading.local()

    def run(self, output_names: Any, input_feed: Any) -> Any:
        options = getattr(self._local, "options", None)
        return self._session.run(output_names, input_feed, options)

    def using(self, options: onnxruntime.RunOptions | None) -> None:
        self._local.options = options


class PiperEngine:
    name = "piper"
    voices = "one voice, joe"

    def __init__(self, threads: int = 0, *, workers: int = 2, executor: Executor | None = None):
        files = piper_voice_files()
        started = time.perf_counter()
        self._voice = PiperVoice.load(str(files.model), str(files.config))
        if threads:
            # Piper's own session uses every core; on a small machine that fights the LLM.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._voice.session = onnxruntime.InferenceSession(
                str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self._session = _CancellableSession(self._voice.session)
        self._voice.session = self._session
        self._executor = executor or ThreadPoolExecutor(workers, thread_name_prefix="piper")
        self._owns_executor = executor is None
        self.sample_rate: int = int(self._voice.config.sample_rate)
        log.info("loaded piper voice %s in %.2fs", files.model.stem, time.perf_counter() - started)

    def synthesize(self, text: str) -> Iterator[bytes]:
        """Blocking: the whole chunk, one piece per sentence (for warm-up and scripts)."""
        for chunk in self._voice.synthesize(text):
            yield chunk.audio_int16_bytes

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello there."):
            pass

    def prepare(self) -> None:
        pass

    def available(self) -> bool:
        return True

    @staticmethod
    def serves_voice(voice: str) -> bool:
        return not voice or voice.strip().lower() in VOICE_NAMES

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        """One piece per sentence, each as soon as it is made; closing stops the work at once."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        options = onnxruntime.RunOptions()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, item)

        job = loop.run_in_executor(self._executor, self._work, text, options, emit)
        # After every piece: the job's result reaches the loop after the pieces it emitted.
        job.add_done_callback(lambda _: pieces.put_nowait(_DONE))
        try:
            while (item := await pieces.get()) is not _DONE:
                assert isinstance(item, bytes)
                yield item
            await job
        finally:
            # Stops the onnxruntime call in progress, or the job before it starts.
            options.terminate = True

    def _work(
        self, text: str, options: onnxruntime.RunOptions, emit: Callable[[object], None]
    ) -> None:
        self._session.using(options)
        try:
            if options.terminate:
                return
            for chunk in self._voice.synthesize(text):
                if options.terminate:
                    return
                emit(chunk.audio_int16_bytes)
        except Exception as error:
            if options.terminate:
                return  # onnxruntime's "terminate flag" failure: the stream was closed
            raise EngineError(f"piper failed: {error}") from error
        finally:
            self._session.using(None)

    async def aclose(self) -> None:
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
