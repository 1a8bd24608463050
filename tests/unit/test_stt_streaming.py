"""TranscriptionStream with a fake decoder and an energy VAD: pause, commit, partials."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services.stt.endpointing import EndpointConfig
from services.stt.engine import (
    AudioInput,
    Decoder,
    Decoding,
    FlushInput,
    Segment,
    SpeechEvent,
    SpeechEventKind,
    StreamInput,
    Transcript,
    TranscriptEvent,
)
from services.stt.pool import DecodePool
from services.stt.streaming import StreamConfig, TranscriptionStream

pytestmark = pytest.mark.unit

RATE = 16000
CONFIG = StreamConfig(
    EndpointConfig(
        threshold=0.5, min_speech_s=0.1, pause_s=0.15, end_of_turn_s=0.4, max_utterance_s=30
    ),
    partial_interval_s=0.3,
)


class EnergyVad:
    window_samples = 512

    def probability(self, window: np.ndarray) -> float:
        return 1.0 if float(np.sqrt(np.mean(window**2))) > 0.05 else 0.0


class SecondsDecoder:
    """Says how much audio it was given, so a test sees what each decode covered."""

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        return Decoding(f"heard {len(samples) / RATE:.2f}")


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def chunks(audio: np.ndarray) -> Iterator[AudioInput]:
    step = RATE // 50
    for start in range(0, len(audio), step):
        yield AudioInput(audio[start : start + step])


@pytest.fixture
def vad_executor() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown()


async def run(
    decoder: Decoder,
    inputs: AsyncIterator[StreamInput],
    vad_executor: ThreadPoolExecutor,
    seen: asyncio.Queue[TranscriptEvent] | None = None,
    config: StreamConfig = CONFIG,
) -> list[TranscriptEvent]:
    pool = DecodePool(decoder, workers=2)
    stream = TranscriptionStream(pool, EnergyVad, config, vad_executor)
    events = []
    try:
        async for event in stream.transcribe(inputs):
            events.append(event)
            if seen is not None:
                seen.put_nowait(event)
    finally:
        pool.shutdown()
    return events


def transcripts(events: list[TranscriptEvent]) -> list[Transcript]:
    return [e for e in events if isinstance(e, Transcript)]


def kinds(events: list[TranscriptEvent]) -> list[SpeechEventKind]:
    return [e.kind for e in events if isinstance(e, SpeechEvent)]


async def wait_for(seen: asyncio.Queue[TranscriptEvent], wanted: str) -> None:
    while True:
        event = await seen.get()
        if isinstance(event, Transcript) and event.at_pause and wanted == "at_pause":
            return


async def test_the_final_is_the_pause_transcript_when_no_speech_followed(
    vad_executor: ThreadPoolExecutor,
) -> None:
    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.5), tone(1.2), silence(1.0)])):
            yield chunk

    events = await asyncio.wait_for(run(SecondsDecoder(), inputs(), vad_executor), 20)
    at_pause = [t for t in transcripts(events) if t.at_pause]
    final = [t for t in transcripts(events) if t.final]
    assert len(at_pause) == 1 and len(final) == 1
    assert final[0].text == at_pause[0].text
    assert kinds(events)[-2:] == [SpeechEventKind.PAUSE, SpeechEventKind.END_OF_TURN]


async def test_after_a_pause_only_the_new_audio_is_decoded(
    vad_executor: ThreadPoolExecutor,
) -> None:
    seen: asyncio.Queue[TranscriptEvent] = asyncio.Queue()

    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.5), tone(1.0), silence(0.25)])):
            yield chunk
        await asyncio.wait_for(wait_for(seen, "at_pause"), 10)
        for chunk in chunks(np.concatenate([tone(1.0), silence(1.0)])):
            yield chunk

    events = await asyncio.wait_for(run(SecondsDecoder(), inputs(), vad_executor, seen), 20)
    assert SpeechEventKind.SPEECH_RESUMED in kinds(events)
    final = next(t for t in transcripts(events) if t.final)
    first, second = (float(part) for part in final.text.split("heard ")[1:])
    # The first pause's text is committed with its audio; the final decode read only the rest.
    assert first < 1.6 and second < 1.6
    assert first + second > 2.0
    assert final.speech_end_s == pytest.approx(2.75, abs=0.1)


class BlockingFirstDecoder:
    """The first decode (a partial) runs until the test lets it go; later ones are quick."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.first_cancel: threading.Event | None = None

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        self.calls += 1
        if self.calls == 1:
            self.first_cancel = cancel
            self.release.wait(timeout=10)
            return Decoding("slow partial")
        return Decoding(f"quick {len(samples) / RATE:.2f}")


async def test_the_pause_decode_does_not_wait_behind_a_partial(
    vad_executor: ThreadPoolExecutor,
) -> None:
    decoder = BlockingFirstDecoder()
    seen: asyncio.Queue[TranscriptEvent] = asyncio.Queue()

    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.5), tone(1.2), silence(0.25)])):
            yield chunk
        # The partial is still running: the pause transcript must come anyway.
        await asyncio.wait_for(wait_for(seen, "at_pause"), 10)
        decoder.release.set()
        for chunk in chunks(silence(1.0)):
            yield chunk

    try:
        events = await asyncio.wait_for(run(decoder, inputs(), vad_executor, seen), 20)
    finally:
        decoder.release.set()
    assert decoder.first_cancel is not None and decoder.first_cancel.is_set()
    texts = [t.text for t in transcripts(events)]
    assert "slow partial" not in texts
    final = next(t for t in transcripts(events) if t.final)
    assert final.text.startswith("quick ")


class WordsDecoder:
    """One word per 0.2 s of audio, so successive partials agree on a growing prefix."""

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        count = int(len(samples) / RATE / 0.2)
        return Decoding(" ".join(f"w{i}" for i in range(count)))


async def test_partials_carry_the_prefix_successive_decodes_agree_on(
    vad_executor: ThreadPoolExecutor,
) -> None:
    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.3), tone(3.0), silence(1.0)])):
            yield chunk
            await asyncio.sleep(0.002)  # let decodes finish between chunks

    events = await asyncio.wait_for(run(WordsDecoder(), inputs(), vad_executor), 20)
    partials = [t for t in transcripts(events) if not t.final and not t.at_pause]
    assert len(partials) >= 2
    for partial in partials:
        assert partial.text.startswith(partial.stable_text)
    assert partials[-1].stable_text, "later partials have agreed words"
    assert len(partials[-1].text.split()) > len(partials[0].text.split())


async def test_a_flush_ends_the_utterance_at_once(vad_executor: ThreadPoolExecutor) -> None:
    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.3), tone(0.8)])):
            yield chunk
        yield FlushInput()

    events = await asyncio.wait_for(run(SecondsDecoder(), inputs(), vad_executor), 20)
    assert kinds(events) == [SpeechEventKind.SPEECH_STARTED, SpeechEventKind.END_OF_TURN]
    assert transcripts(events)[-1].final


class RecordingDecoder:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        self.seconds.append(len(samples) / RATE)
        return Decoding(f"heard {len(samples) / RATE:.3f}")


async def test_a_decode_started_as_silence_begins_becomes_the_pause_decode(
    vad_executor: ThreadPoolExecutor,
) -> None:
    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.5), tone(1.0), silence(1.0)])):
            yield chunk
            await asyncio.sleep(0.001)

    read: dict[float, float] = {}
    for anticipate_s in (0.064, 0.0):
        config = StreamConfig(CONFIG.endpoint, partial_interval_s=10.0, anticipate_s=anticipate_s)
        decoder = RecordingDecoder()
        events = await asyncio.wait_for(run(decoder, inputs(), vad_executor, config=config), 20)
        final = next(t for t in transcripts(events) if t.final)
        at_pause = next(t for t in transcripts(events) if t.at_pause)
        assert final.text == at_pause.text
        # One decode served as the pause decode and the final, either way.
        assert len(decoder.seconds) == 1
        read[anticipate_s] = decoder.seconds[0]
    # Anticipating, it started two windows into the silence; otherwise at the pause (five).
    assert read[0.0] - read[0.064] == pytest.approx(3 * 512 / RATE)


class SegmentsDecoder:
    """One timestamped segment ("s") per 0.5 s of audio; records how much audio it read."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        seconds = len(samples) / RATE
        self.seconds.append(seconds)
        count = int(seconds / 0.5)
        segments = tuple(Segment(i * 0.5, (i + 1) * 0.5, "s") for i in range(count))
        return Decoding(" ".join(s.text for s in segments), segments)


async def test_a_long_stretch_without_pauses_is_decoded_in_a_rolling_window(
    vad_executor: ThreadPoolExecutor,
) -> None:
    config = StreamConfig(CONFIG.endpoint, partial_interval_s=0.2, rolling_window_s=1.5)
    decoder = SegmentsDecoder()

    async def inputs() -> AsyncIterator[StreamInput]:
        for chunk in chunks(np.concatenate([silence(0.3), tone(5.0), silence(1.0)])):
            yield chunk
            await asyncio.sleep(0.002)

    events = await asyncio.wait_for(run(decoder, inputs(), vad_executor, config=config), 30)
    final = next(t for t in transcripts(events) if t.final)
    # Agreed segments were committed: later decodes read less than all the audio so far...
    growing = [b >= a for a, b in zip(decoder.seconds, decoder.seconds[1:], strict=False)]
    assert not all(growing), decoder.seconds
    assert max(decoder.seconds) < 3.0
    # ...and the final is the committed text followed by the rest: one word per 0.5 s.
    assert abs(len(final.text.split()) - 5.0 / 0.5) <= 2
