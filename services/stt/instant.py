"""An instant decoder for measuring overhead: no model, the same text for every utterance."""

from __future__ import annotations

import numpy as np


class InstantDecoder:
    description = "instant (no model: measures the pipeline's own overhead)"
    text = "instant transcript"

    def decode(self, samples: np.ndarray) -> str:
        return self.text if samples.size else ""

    def warm_up(self) -> None:
        pass
