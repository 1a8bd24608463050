"""An instant engine for measuring overhead: a short tone per chunk, no model."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator

import numpy as np

TONE_S = 0.2


class InstantEngine:
    name = "instant"
    sample_rate = 22050

    def __init__(self) -> None:
        t = np.arange(int(self.sample_rate * TONE_S)) / self.sample_rate
        self._tone = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()

    def synthesize(self, text: str) -> Iterator[bytes]:
        yield self._tone

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        yield self._tone

    def prepare(self) -> None:
        pass

    def available(self) -> bool:
        return True

    def warm_up(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
