"""Device choice: CUDA float16 when a GPU is there, CPU int8 otherwise; settings override."""

from __future__ import annotations

import ctranslate2
import pytest

from services.stt.whisper import DeviceChoice, choose_device

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("gpus", "device", "compute_type", "expected"),
    [
        (0, "auto", "auto", DeviceChoice("cpu", "int8")),
        (1, "auto", "auto", DeviceChoice("cuda", "float16")),
        (1, "cpu", "auto", DeviceChoice("cpu", "int8")),
        (0, "cuda", "auto", DeviceChoice("cuda", "float16")),
        (1, "auto", "int8_float16", DeviceChoice("cuda", "int8_float16")),
        (0, "auto", "float32", DeviceChoice("cpu", "float32")),
    ],
)
def test_device_choice(
    monkeypatch: pytest.MonkeyPatch,
    gpus: int,
    device: str,
    compute_type: str,
    expected: DeviceChoice,
) -> None:
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: gpus)
    assert choose_device(device, compute_type) == expected
