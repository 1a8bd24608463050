"""An instant decoder for measuring overhead: no model, the same text for every utterance."""

from __future__ import annotations

import threading

import numpy as np

from services.stt.engine import Decoding


class InstantDecoder:
    description = "instant (no model: measures the pipeline's own overhead)"
    text = "instant transcript"

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        return Decoding(self.text if samples.size else "")

    def warm_up(self) -> None:
        pass
