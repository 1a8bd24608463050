"""EngineChain/TurnVoice: engines in order, one voice per turn, the phrase cache, resampling."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from services.tts.cache import AudioCache
from services.tts.chain import EngineChain, TurnVoice, ends_sentence
from voice.errors import EngineError

pytestmark = pytest.mark.unit


class ScriptedEngine:
    """Yields ``pieces`` pieces of 10 ms each; can fail before or after its first piece."""

    def __init__(self, name: str, sample_rate: int = 16000, pieces: int = 3) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.pieces = pieces
        self.fail_before = False
        self.fail_after = False
        self.up = True
        self.texts: list[str] = []
        self.prepared = 0
        self.closed_early = 0

    def available(self) -> bool:
        return self.up

    def prepare(self) -> None:
        self.prepared += 1

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        self.texts.append(text)
        if self.fail_before:
            raise EngineError(f"{self.name} is down")
        finished = False
        try:
            for index in range(self.pieces):
                if index == 1 and self.fail_after:
                    raise EngineError(f"{self.name} broke mid-chunk")
                yield b"\x10\x00" * (self.sample_rate // 100)
            finished = True
        finally:
            if not finished:
                self.closed_early += 1

    async def aclose(self) -> None:
        pass


async def speak(voice: TurnVoice, text: str, *, starts_sentence: bool = True) -> bytes:
    pcm = b""
    async for piece in voice.speak(text, starts_sentence=starts_sentence):
        pcm += piece
    return pcm


async def test_the_first_engine_that_makes_audio_speaks_the_whole_turn() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    edge.fail_before = True
    voice = EngineChain([edge, piper]).turn("", 16000)
    assert await speak(voice, "Hello there,")
    edge.fail_before = False  # recovered, but the turn keeps its voice
    assert await speak(voice, "how are you?", starts_sentence=False)
    assert await speak(voice, "Fine.")
    assert voice.engine is piper and voice.engine_name == "piper"
    assert edge.texts == ["Hello there,"]
    assert piper.texts == ["Hello there,", "how are you?", "Fine."]


async def test_an_unavailable_engine_is_skipped_without_a_call() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    edge.up = False
    voice = EngineChain([edge, piper]).turn("", 16000)
    assert voice.engine_name == "piper"
    await speak(voice, "Hello.")
    assert edge.texts == [] and voice.engine is piper


async def test_a_failure_inside_a_sentence_ends_the_turn_rather_than_switch_voice() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    voice = EngineChain([edge, piper]).turn("", 16000)
    await speak(voice, "Sure thing,")
    edge.fail_before = True
    with pytest.raises(EngineError, match="edge is down"):
        await speak(voice, "here is the plan.", starts_sentence=False)
    assert piper.texts == []


async def test_a_failure_at_a_sentence_boundary_switches_for_the_rest_of_the_turn() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    voice = EngineChain([edge, piper]).turn("", 16000)
    await speak(voice, "Sure thing.")
    edge.fail_before = True
    assert await speak(voice, "Here is the plan.")
    edge.fail_before = False
    assert await speak(voice, "It is simple.")
    assert voice.engine is piper
    assert edge.texts == ["Sure thing.", "Here is the plan."]
    assert piper.texts == ["Here is the plan.", "It is simple."]


async def test_a_failure_after_the_first_byte_is_not_retried_elsewhere() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    edge.fail_after = True
    voice = EngineChain([edge, piper]).turn("", 16000)
    pieces = []
    with pytest.raises(EngineError, match="mid-chunk"):
        async for piece in voice.speak("Hello there.", starts_sentence=True):
            pieces.append(piece)
    assert len(pieces) == 1 and piper.texts == []


async def test_when_every_engine_fails_the_error_names_each() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    edge.fail_before = piper.fail_before = True
    voice = EngineChain([edge, piper]).turn("", 16000)
    with pytest.raises(EngineError) as raised:
        await speak(voice, "Hello.")
    assert "edge is down" in str(raised.value) and "piper is down" in str(raised.value)


async def test_no_engine_available_is_an_error() -> None:
    edge = ScriptedEngine("edge")
    edge.up = False
    with pytest.raises(EngineError, match="no speech engine"):
        await speak(EngineChain([edge]).turn("", 16000), "Hello.")


async def test_audio_is_resampled_to_the_turn_rate() -> None:
    engine = ScriptedEngine("piper", sample_rate=22050, pieces=10)  # 100 ms
    pcm = await speak(EngineChain([engine]).turn("", 48000), "Hello.")
    assert abs(len(pcm) / 2 - 4800) <= 48  # 100 ms at 48 kHz, within 1 ms


async def test_a_recurring_phrase_comes_from_the_cache() -> None:
    engine = ScriptedEngine("piper")
    chain = EngineChain([engine], AudioCache(1 << 20))
    first = await speak(chain.turn("", 16000), "One moment.")
    again = await speak(chain.turn("", 16000), "One moment.")
    other_rate = await speak(chain.turn("", 24000), "One moment.")
    assert first == again and len(other_rate) > len(first)
    assert engine.texts == ["One moment.", "One moment."]  # the second at 24 kHz
    assert chain.cache is not None and chain.cache.hits == 1


async def test_a_cache_hit_also_pins_the_turn_to_its_engine() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    chain = EngineChain([edge, piper], AudioCache(1 << 20))
    await speak(chain.turn("", 16000), "Hello!")
    voice = chain.turn("", 16000)
    await speak(voice, "Hello!")
    assert voice.engine is edge and edge.texts == ["Hello!"]


async def test_a_chunk_that_failed_or_was_cut_short_is_not_cached() -> None:
    engine = ScriptedEngine("piper")
    chain = EngineChain([engine], AudioCache(1 << 20))
    engine.fail_after = True
    with pytest.raises(EngineError):
        await speak(chain.turn("", 16000), "Hello.")
    engine.fail_after = False
    stream = chain.turn("", 16000).speak("Hello.", starts_sentence=True)
    await anext(stream)
    await stream.aclose()
    assert engine.closed_early == 2
    assert chain.cache is not None and len(chain.cache) == 0


async def test_long_chunks_are_not_cached() -> None:
    engine = ScriptedEngine("piper")
    chain = EngineChain([engine], AudioCache(1 << 20))
    text = "This sentence is far too long to be a greeting that recurs in many conversations."
    await speak(chain.turn("", 16000), text)
    await speak(chain.turn("", 16000), text)
    assert len(engine.texts) == 2


async def test_prepare_reaches_the_engine_that_will_speak() -> None:
    edge, piper = ScriptedEngine("edge"), ScriptedEngine("piper")
    edge.up = False
    voice = EngineChain([edge, piper]).turn("", 16000)
    voice.prepare()
    assert (edge.prepared, piper.prepared) == (0, 1)
    # After a chunk's first audio, the engine gets ready for the next chunk too.
    await speak(voice, "Hello.")
    assert piper.prepared == 2
    async for _ in voice.speak("Bye.", starts_sentence=True, more_to_come=False):
        pass
    assert piper.prepared == 2


async def test_an_engine_with_nothing_to_say_is_not_a_failure() -> None:
    silent, piper = ScriptedEngine("edge", pieces=0), ScriptedEngine("piper")
    voice = EngineChain([silent, piper]).turn("", 16000)
    assert await speak(voice, "...") == b""
    assert piper.texts == [] and voice.engine is None


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("Hello there.", True),
        ("Really?", True),
        ("Stop!", True),
        ('He said "stop."', True),
        ("Wait\u2026", True),
        ("Sure thing,", False),
        ("the plan is", False),
        ("one; two", False),
    ],
)
def test_ends_sentence(text: str, ends: bool) -> None:
    assert ends_sentence(text) is ends
