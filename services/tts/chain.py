"""Engines tried in a configured order, and the rule that gives each turn one voice.

A turn is spoken by one engine. The engine is chosen before the turn's first audio byte: the
first available engine in ``TTS_ENGINES`` that serves the session's voice (every engine serves
the default, "") and produces audio for the turn's first chunk (a failure before that byte
costs nothing audible, so the next engine is tried). From then on the turn keeps that engine,
so a listener never hears two voices inside a sentence.

If the turn's engine fails later, before a chunk's first byte:

- at a sentence boundary (the previous chunk ended a sentence), the turn switches to the next
  engine for the rest of its text: a different voice for the next sentence is better than
  silence for the rest of the reply;
- inside a sentence (after the short first clause, or a long sentence cut in two), the turn
  ends with an error rather than finish the sentence in another voice.

A failure after a chunk's first byte ends the turn with an error: the chunk cannot be taken
back, and saying it again in another voice would repeat words.

Each chunk's audio is resampled to the client's rate on its own (a chunk is a whole utterance
for every engine), which also makes it a self-contained value for the phrase cache.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from services.tts.cache import AudioCache, CacheKey
from services.tts.engine import SpeechEngine, serves, voices
from voice.audio import Resampler
from voice.errors import EngineError

log = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]\u201d\u2019]*\s*$")


def ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END.search(text))


class EngineChain:
    def __init__(self, engines: Sequence[SpeechEngine], cache: AudioCache | None = None) -> None:
        if not engines:
            raise ValueError("at least one engine is needed")
        self.engines = list(engines)
        self.cache = cache

    def voice_problem(self, voice: str) -> str | None:
        """Why no engine here can speak in ``voice``, or None when one can."""
        if any(serves(engine, voice) for engine in self.engines):
            return None
        names = ",".join(engine.name for engine in self.engines)
        offered = "; ".join(f"{engine.name} speaks {voices(engine)}" for engine in self.engines)
        return f"voice {voice!r} is not one this tts can speak (TTS_ENGINES={names}): {offered}"

    def turn(self, voice: str, sample_rate: int) -> TurnVoice:
        return TurnVoice(self, voice, sample_rate)

    async def aclose(self) -> None:
        for engine in self.engines:
            await engine.aclose()


class TurnVoice:
    """Speaks the chunks of one turn, all with the same engine where it can."""

    def __init__(self, chain: EngineChain, voice: str, sample_rate: int) -> None:
        self._chain = chain
        self.voice = voice
        self.sample_rate = sample_rate
        self.engine: SpeechEngine | None = None
        self.failures: list[str] = []

    @property
    def engine_name(self) -> str:
        """The engine speaking the turn, or the one that would be tried first."""
        if self.engine is not None:
            return self.engine.name
        return next((e.name for e in self._candidates()), self._chain.engines[0].name)

    def prepare(self) -> None:
        """Let the engine that will speak next get ready (a remote one opens a connection)."""
        engine = self.engine or next(iter(self._candidates()), None)
        if engine is not None:
            engine.prepare()

    async def speak(
        self, text: str, *, starts_sentence: bool, more_to_come: bool = True
    ) -> AsyncGenerator[bytes, None]:
        """One chunk's audio at the client's rate, as it is made."""
        if self.engine is not None:
            engines = [self.engine]
            if starts_sentence:
                engines += [e for e in self._candidates() if e is not self.engine]
        else:
            engines = self._candidates()
        if not engines:
            raise EngineError("no speech engine is available: " + "; ".join(self.failures))
        for engine in engines:
            cached = self._cached(engine, text)
            if cached is not None:
                self.engine = engine
                yield cached
                return
            pieces = engine.stream(text, self.voice)
            async with contextlib.aclosing(pieces):
                try:
                    first = await anext(pieces, None)
                except Exception as error:
                    log.warning("%s failed before its first audio: %s", engine.name, error)
                    self.failures.append(f"{engine.name}: {error}")
                    continue
                if first is None:
                    return  # nothing speakable in the chunk (e.g. only punctuation)
                if self.engine is not None and engine is not self.engine:
                    log.info("turn switches from %s to %s", self.engine.name, engine.name)
                self.engine = engine
                if more_to_come:
                    engine.prepare()
                async for pcm in self._resampled(engine, text, first, pieces):
                    yield pcm
            return
        raise EngineError("; ".join(self.failures[-len(engines) :]))

    def _candidates(self) -> list[SpeechEngine]:
        """The engines that could speak the turn now: available, and serving its voice."""
        return [
            engine
            for engine in self._chain.engines
            if engine.available() and serves(engine, self.voice)
        ]

    def _key(self, engine: SpeechEngine, text: str) -> CacheKey:
        return CacheKey(engine.name, self.voice, self.sample_rate, text)

    def _cached(self, engine: SpeechEngine, text: str) -> bytes | None:
        cache = self._chain.cache
        if cache is None or not cache.wants(text):
            return None
        return cache.get(self._key(engine, text))

    async def _resampled(
        self, engine: SpeechEngine, text: str, first: bytes, rest: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        resampler = Resampler(engine.sample_rate, self.sample_rate)
        cache = self._chain.cache
        kept: list[bytes] | None = [] if cache is not None and cache.wants(text) else None
        pcm = resampler.process(first)
        if pcm:
            if kept is not None:
                kept.append(pcm)
            yield pcm
        async for piece in rest:
            if pcm := resampler.process(piece):
                if kept is not None:
                    kept.append(pcm)
                yield pcm
        if tail := resampler.process(b"", last=True):
            if kept is not None:
                kept.append(tail)
            yield tail
        if cache is not None and kept is not None:
            cache.put(self._key(engine, text), b"".join(kept))
