"""The shapes the stt service works with: events out of a stream, and the engines behind it."""

from __future__ import annotations

import enum
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

MODEL_SAMPLE_RATE = 16000


class SpeechEventKind(enum.Enum):
    SPEECH_STARTED = "speech_started"
    PAUSE = "pause"
    END_OF_TURN = "end_of_turn"
    SPEECH_RESUMED = "speech_resumed"


@dataclass(frozen=True)
class SpeechEvent:
    kind: SpeechEventKind
    utterance_id: str
    stream_time_s: float
    speech_end_s: float = 0.0


@dataclass(frozen=True)
class Transcript:
    utterance_id: str
    text: str
    final: bool
    stable_text: str
    speech_start_s: float
    speech_end_s: float
    decode_ms: float
    at_pause: bool = False


TranscriptEvent = SpeechEvent | Transcript


@dataclass(frozen=True)
class AudioInput:
    """Audio for the stream, already at :data:`MODEL_SAMPLE_RATE`, as float32 samples."""

    samples: np.ndarray


@dataclass(frozen=True)
class FlushInput:
    """End the current utterance now, whatever the silence so far."""


@dataclass(frozen=True)
class ResetInput:
    """Forget the current utterance and listen afresh."""


StreamInput = AudioInput | FlushInput | ResetInput


@dataclass(frozen=True)
class Segment:
    """A stretch of decoded text with its place in the decoded audio, in seconds."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Decoding:
    """What one decode of some audio gave: its text and, where the engine knows them, segments."""

    text: str
    segments: tuple[Segment, ...] = ()


class DecodeCancelledError(Exception):
    """The decode was given up because its result was no longer wanted."""


class Decoder(Protocol):
    """Turns audio into text. Blocking: call it from a worker thread.

    ``cancel``, when given and set, asks the decoder to give up early (raising
    :class:`DecodeCancelledError`) at the next point where it can; a decoder may ignore it.
    """

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding: ...


@runtime_checkable
class LanguageDecoder(Protocol):
    """A decoder that can be told the language of the speech (a per-stream choice).

    ``languages`` are the primary language subtags it can decode ("en"); ``language`` in
    ``decode`` is one of them, or empty for the decoder's own default. A decoder without
    ``languages`` does not look at the language (a fake, the instant decoder) and any is
    accepted for it.
    """

    name: str  # for messages: "whisper tiny.en"
    languages: frozenset[str]
    english_only: bool

    def decode(
        self, samples: np.ndarray, cancel: threading.Event | None = None, language: str = ""
    ) -> Decoding: ...


def primary_language(tag: str) -> str:
    """The language of a BCP-47 tag, lower case: "en-US" -> "en", "pt_BR" -> "pt"."""
    return tag.strip().replace("_", "-").split("-")[0].lower()


class VoiceActivityDetector(Protocol):
    """Speech probability of consecutive windows of one stream. Holds per-stream state."""

    window_samples: int

    def probability(self, window: np.ndarray) -> float: ...


class Transcriber(Protocol):
    def transcribe(self, inputs: AsyncIterator[StreamInput]) -> AsyncIterator[TranscriptEvent]: ...
