"""A turn's latency waterfall and its summary."""

from __future__ import annotations

import time

import pytest

from gateway.driver import wall_ns, wall_offset_ns
from gateway.timeline import STAGES, Timeline

pytestmark = pytest.mark.unit

ORIGIN = 1000.0
OFFSETS_MS = {
    "stt_complete": 120.0,
    "llm_start": 125.0,
    "llm_first_token": 310.0,
    "tts_start": 320.0,
    "first_audio_sent": 450.0,
    "pipeline_complete": 2400.0,
}


def full_timeline(order: list[str] | None = None) -> Timeline:
    timeline = Timeline(ORIGIN)
    for name in order or list(OFFSETS_MS):
        timeline.mark(name, at=ORIGIN + OFFSETS_MS[name] / 1000)
    return timeline


def test_waterfall_is_in_turn_order_with_the_total() -> None:
    waterfall = full_timeline().waterfall_ms()
    assert list(waterfall) == [*STAGES, "total"]
    assert waterfall["audio_received"] == 0.0
    for name, offset in OFFSETS_MS.items():
        assert waterfall[name] == pytest.approx(offset)
    assert waterfall["total"] == pytest.approx(450.0)


def test_waterfall_is_ordered_by_time_not_by_marking_order() -> None:
    waterfall = full_timeline(list(reversed(OFFSETS_MS))).waterfall_ms()
    assert list(waterfall) == [*STAGES, "total"]


def test_waterfall_rounds_to_a_tenth_of_a_ms() -> None:
    timeline = Timeline(ORIGIN)
    timeline.mark("stt_complete", at=ORIGIN + 0.12345)
    assert timeline.waterfall_ms()["stt_complete"] == 123.5


def test_no_total_without_audio() -> None:
    timeline = Timeline(ORIGIN)
    timeline.mark("stt_complete", at=ORIGIN + 0.1)
    assert timeline.waterfall_ms() == {"audio_received": 0.0, "stt_complete": 100.0}


def test_a_moment_is_measured_once() -> None:
    timeline = Timeline(ORIGIN)
    timeline.mark("llm_first_token", at=ORIGIN + 0.2)
    timeline.mark("llm_first_token", at=ORIGIN + 0.9)
    timeline.mark("audio_received", at=ORIGIN + 5)
    assert timeline.marks == {"audio_received": ORIGIN, "llm_first_token": ORIGIN + 0.2}


def test_wall_clock_follows_the_monotonic_clock() -> None:
    now = time.perf_counter()
    offset = wall_offset_ns()
    assert wall_ns(now + 0.25, offset) - wall_ns(now, offset) == pytest.approx(250_000_000, abs=1)
    # A moment just now is placed on the wall clock, within a second of now.
    assert abs(wall_ns(time.perf_counter(), offset) - time.time_ns()) < 1_000_000_000


def test_summary_format() -> None:
    lines = full_timeline().summary(3).splitlines()
    assert lines[0] == "=== Latency Summary (turn 3) ==="
    assert lines[1] == "  audio_received: +0.0ms (total: 0.0ms)"
    assert lines[2] == "  stt_complete: +120.0ms (total: 120.0ms)"
    assert lines[3] == "  llm_start: +5.0ms (total: 125.0ms)"
    assert lines[4] == "  llm_first_token: +185.0ms (total: 310.0ms)"
    assert lines[6] == "  first_audio_sent: +130.0ms (total: 450.0ms)"
    assert lines[-1] == "  TOTAL LATENCY: 450.0ms"
    assert len(lines) == len(STAGES) + 2


def test_summary_without_audio() -> None:
    timeline = Timeline(ORIGIN)
    timeline.mark("stt_complete", at=ORIGIN + 0.05)
    assert timeline.summary(1).splitlines() == [
        "=== Latency Summary (turn 1) ===",
        "  audio_received: +0.0ms (total: 0.0ms)",
        "  stt_complete: +50.0ms (total: 50.0ms)",
        "  TOTAL LATENCY: no audio",
    ]
