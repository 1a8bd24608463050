"""The shape of a speech engine: one speakable chunk of text in, PCM16 audio out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class SpeechEngine(Protocol):
    """Blocking: call ``synthesize`` from a worker thread. Yields PCM16 mono pieces."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[bytes]: ...
