"""One turn of speech: text deltas in, framed PCM at the client's rate out, as soon as it exists.

The turn reads its deltas, cuts them into speakable chunks as they arrive, cleans each chunk
for speech and has it spoken by the turn's engine (see ``chain.py``), sending the audio in
fixed frames as it is made. Chunks are synthesised one after another, each as soon as its text
is complete and the previous one is done: synthesis runs several times faster than real time,
so the next chunk is ready long before the client has played the current one. Starting a
chunk while the previous one is still being synthesised does not help on a small machine:
measured on 2 cores (``bench/tts_latency.py``), two Piper syntheses at once finish the earlier
chunk later and the pair no sooner.

The reply's first audio starts with the voice, not with the silence an engine puts before it
(``trim.py``): that silence is only delay. Later chunks keep theirs (the pause between
sentences).

The turn's first text tells the engine to get ready (Edge opens its connection while the first
clause is still being written), and so does each chunk's first audio while more may follow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace

from services.tts.chain import EngineChain, ends_sentence
from services.tts.chunking import SpeakableChunker
from services.tts.normalize import normalize_for_speech
from services.tts.trim import LeadingSilenceTrim
from voice.audio import FrameBuffer

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.tts")


@dataclass(frozen=True)
class ChunkingConfig:
    first_min_words: int
    first_max_words: int
    frame_ms: int


class TurnOutput(Protocol):
    """Where a turn's events go (the servicer turns them into protocol messages)."""

    def start(self, engine: str) -> None: ...

    def audio(self, pcm: bytes, text: str) -> None: ...

    def end(self, *, cancelled: bool = False, error: str = "") -> None: ...


class TurnSpeaker:
    def __init__(
        self,
        chain: EngineChain,
        config: ChunkingConfig,
        *,
        sample_rate: int,
        voice: str,
        output: TurnOutput,
    ) -> None:
        self._voice = chain.turn(voice, sample_rate)
        self._chunker = SpeakableChunker(config.first_min_words, config.first_max_words)
        self._framer = FrameBuffer(sample_rate, config.frame_ms)
        self._lead_in = LeadingSilenceTrim(sample_rate)
        self._out = output
        self._started = False
        self._previous_chunk = ""

    @property
    def engine(self) -> str:
        return self._voice.engine_name

    async def run(self, deltas: asyncio.Queue[str | None], span: trace.Span) -> None:
        """Speak until the turn's text ends (a None delta); sends start, audio and end."""
        span.add_event("tts_start")
        try:
            first = True
            while True:
                delta = await deltas.get()
                if delta is None:
                    chunks = self._chunker.flush()
                else:
                    if first:
                        self._voice.prepare()
                        first = False
                    chunks = self._chunker.push(delta)
                for index, chunk in enumerate(chunks):
                    last = delta is None and index == len(chunks) - 1
                    await self._speak(chunk, span, more_to_come=not last)
                if delta is None:
                    break
            if not self._lead_in.done and (held := self._lead_in.flush()):
                for frame in self._framer.push(held):
                    self._audio(frame, "", span)
            if self._lead_in.cut_bytes:
                span.set_attribute("tts.lead_in_cut_ms", self._lead_in.cut_ms)
            if rest := self._framer.drain():
                self._audio(rest, "", span)
            self._start()
            span.set_attribute("tts.engine", self.engine)
            self._out.end()
        except asyncio.CancelledError:
            span.add_event("interrupted")
            self._start()
            self._out.end(cancelled=True)
            raise
        except Exception as error:
            log.warning("turn failed: %s", error)
            span.record_exception(error)
            self._start()
            self._out.end(error=str(error))

    async def _speak(self, chunk: str, span: trace.Span, *, more_to_come: bool) -> None:
        text = normalize_for_speech(chunk)
        if not text:
            return
        starts_sentence = not self._previous_chunk or ends_sentence(self._previous_chunk)
        self._previous_chunk = chunk
        label = text
        async for pcm in self._voice.speak(
            text, starts_sentence=starts_sentence, more_to_come=more_to_come
        ):
            if not self._lead_in.done:
                pcm = self._lead_in.push(pcm)
            for frame in self._framer.push(pcm):
                self._audio(frame, label, span)
                label = ""

    def _audio(self, frame: bytes, text: str, span: trace.Span) -> None:
        if not self._started:
            self._start()
            span.add_event("first_audio")
        self._out.audio(frame, text)

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._out.start(self.engine)
