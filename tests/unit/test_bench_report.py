"""The benchmark's figures: percentiles over answered turns, both definitions, cache counters."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import _sum_series
from bench.report import caches, summarize
from bench.runner import TurnRecord, session_order

pytestmark = pytest.mark.unit


def record(latency_ms: float | None, **fields: float | None) -> TurnRecord:
    return TurnRecord(
        clip="a.wav",
        kind="speech",
        session=0,
        latency_ms=latency_ms,
        transcript="hello there",
        reference="hello there",
        agent_text="hi",
        stages={},
        **fields,  # type: ignore[arg-type]
    )


def test_unanswered_turns_are_errors_not_latency_samples() -> None:
    answered = [record(float(ms), first_frame_ms=ms - 50.0) for ms in (500, 600, 700)]
    silent = record(None, first_frame_ms=300.0)
    silent.errors.append({"code": "no_answer", "message": "no audible agent audio"})
    summary = summarize([*answered, silent], 1)
    assert summary["answered"] == 3 and summary["errors"] == 1
    assert summary["p50_ms"] == 600.0
    assert summary["first_frame_p50_ms"] == 550.0


def test_the_old_definition_is_computed_from_the_same_turn() -> None:
    # Speech ends acoustically at 1.00 s, Silero says 1.10 s; first frame at 1.60 s, audible
    # at 1.65 s: new 650 ms, old 500 ms.
    turn = record(650.0, speech_end_s=1.0, silero_end_s=1.1, first_frame_s=1.6)
    assert turn.old_latency_ms == 500.0
    summary = summarize([turn], 1)
    assert summary["old_definition_p50_ms"] == 500.0 and summary["p50_ms"] == 650.0
    assert TurnRecord.from_json(turn.as_json()) == turn


def test_sessions_do_not_replay_each_other_in_the_same_order() -> None:
    clips: list[Any] = list(range(20))
    orders = [session_order(clips, index) for index in range(4)]
    assert orders[0] == clips
    assert all(len(order) == 20 and set(order) == set(clips) for order in orders)
    assert len({tuple(order) for order in orders}) == 4


def test_counters_sum_every_series_with_the_labels_asked_for() -> None:
    page = "\n".join(
        [
            "# HELP voice_llm_tokens_total Tokens",
            'voice_llm_tokens_total{ending="complete",kind="cached"} 40.0',
            'voice_llm_tokens_total{ending="discarded",kind="cached"} 2.0',
            'voice_llm_tokens_total{ending="complete",kind="prompt"} 10.0',
            'voice_llm_tokens_created{ending="complete",kind="cached"} 1.7e9',
        ]
    )
    assert _sum_series(page, 'voice_llm_tokens_total{kind="cached"}') == 42.0
    assert _sum_series(page, 'voice_llm_tokens_total{ending="complete",kind="prompt"}') == 10.0
    assert _sum_series(page, "voice_missing_total") == 0.0
    served = caches({"llm_prompt_tokens_cached": 42.0, "llm_prompt_tokens_read": 10.0})
    assert served["llm_cached_share"] == round(42 / 52, 3)
