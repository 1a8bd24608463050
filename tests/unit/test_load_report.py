"""The load report's arithmetic (loadtest/report.py) over recorded samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.report import (
    ANSWERED,
    FAILED,
    REFUSED,
    TurnRecord,
    cpu_seconds,
    parse_stat_cpu_s,
    peak_rss_mb,
    percentile,
    step_summary,
    table,
)
from loadtest.run import read_records

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 90) == 7.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)


def test_refusals_are_counted_apart_from_errors_and_latency() -> None:
    records = [
        TurnRecord(ANSWERED, 500, 6.0),
        TurnRecord(ANSWERED, 700, 6.0),
        TurnRecord(ANSWERED, 900, 6.0),
        TurnRecord(FAILED, 20000, 21.0),
        TurnRecord(REFUSED, 3, 0.01),
        TurnRecord(REFUSED, 4, 0.01),
    ]
    step = step_summary(4, 30.0, records, {"stt": 3.0}, {"stt": 400.0}, 3)
    assert (step["admitted"], step["refused"], step["answered"], step["errors"]) == (4, 2, 3, 1)
    assert step["error_rate"] == 0.25
    assert step["p50_ms"] == 700
    assert step["p90_ms"] == pytest.approx(860)
    assert step["conversation_s"] == 39.0


def test_a_step_without_answers_has_no_percentiles() -> None:
    step = step_summary(1, 10.0, [TurnRecord(REFUSED, 1)], {}, {}, 0)
    assert step["p50_ms"] is None and step["error_rate"] == 0.0 and step["admitted"] == 0
    assert "-" in table([step])


def test_cpu_seconds_are_differences_and_skip_processes_that_changed() -> None:
    before = {"stt": 10.0, "llm": 5.0, "tts": 2.0}
    after = {"stt": 14.5, "llm": 1.0, "gateway": 3.0}
    # llm went backwards (restarted), tts died, gateway appeared: only stt is a measurement.
    assert cpu_seconds(before, after) == {"stt": 4.5}


def test_peak_rss_is_the_largest_sample_per_process() -> None:
    assert peak_rss_mb([{"stt": 300, "llm": 900}, {"stt": 350, "llm": 850}]) == {
        "stt": 350,
        "llm": 900,
    }


def test_proc_stat_with_spaces_in_the_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime ...
    stat = "42 (python -m x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 10 40 20 0 1 0"
    assert parse_stat_cpu_s(stat, 100.0) == pytest.approx(3.5)


def test_records_written_by_the_locust_users_are_read_back(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        '{"name": "first audible answer", "latency_ms": 812.5, "held_s": 5.2}\n'
        "\n"
        '{"name": "refused session", "latency_ms": 2.0, "held_s": 0.0}\n'
    )
    assert read_records(path) == [TurnRecord(ANSWERED, 812.5, 5.2), TurnRecord(REFUSED, 2.0)]
    assert read_records(tmp_path / "missing.jsonl") == []
