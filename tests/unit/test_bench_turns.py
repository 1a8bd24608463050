"""The turn-taking benchmark's figures: cut-off rates by case, delays over whole turns only."""

from __future__ import annotations

import pytest

from bench.turns import Outcome, summarize

pytestmark = pytest.mark.unit


def test_cut_off_rates_by_case_and_delays_over_the_turns_that_were_not_cut() -> None:
    outcomes = [
        Outcome("a", "complete", "silence", decision_delay_ms=500.0, latency_ms=600.0),
        Outcome("b", "complete", "silence", decision_delay_ms=520.0, latency_ms=640.0),
        Outcome("a", "pause-600", "silence", cut_off=True, decision_delay_ms=10.0),
        Outcome("b", "pause-600", "silence", decision_delay_ms=540.0, latency_ms=700.0),
        Outcome("a", "pause-1500", "silence", cut_off=True),
        Outcome("a", "complete", "punctuation", decision_delay_ms=200.0, latency_ms=None),
    ]
    table = summarize(outcomes)
    silence = table["silence"]
    assert silence["false_cut_off_rate"] == {"complete": 0.0, "pause-600": 0.5, "pause-1500": 1.0}
    assert silence["false_cut_off_rate_pauses_up_to_1s"] == 0.5  # pause-1500 is not counted
    assert silence["decision_delay_p50_ms"] == 520.0  # the cut-off case's 10 ms is not a delay
    assert silence["latency_p50_ms"] == 640.0
    assert table["punctuation"]["unanswered"] == 1
