"""The cost model's arithmetic (tools/capacity/cost.py) over a recorded load report."""

from __future__ import annotations

from typing import Any

import pytest

from tools.capacity.cost import (
    cost_model,
    measured_within_budget,
    node_sessions,
    stage_costs,
    utilisation,
)

pytestmark = pytest.mark.unit


def step(
    offered: int, held: int, answered: int, p90: float | None, cpu: dict[str, float], rss: float
) -> dict[str, Any]:
    return {
        "offered": offered,
        "seconds": 30.0,
        "sessions_held": held,
        "answered": answered,
        "errors": 0,
        "error_rate": 0.0,
        "conversation_s": held * 30.0,
        "p50_ms": 500.0,
        "p90_ms": p90,
        "cpu_s": cpu,
        "peak_rss_mb": {"stt": 300 + 10 * held, "llm": rss},
    }


STEPS = [
    step(1, 1, 4, 600, {"stt": 3.0, "llm": 6.0}, 900),
    step(2, 2, 8, 700, {"stt": 6.0, "llm": 12.0}, 900),
    step(4, 4, 16, 2000, {"stt": 12.0, "llm": 24.0}, 900),
]


def test_per_turn_and_per_minute_costs() -> None:
    costs = stage_costs(STEPS)
    # 21 CPU s of stt over 28 turns and 3.5 conversation minutes.
    assert costs["stt"]["cpu_s_per_turn"] == pytest.approx(0.75)
    assert costs["stt"]["cpu_s_per_minute"] == pytest.approx(6.0)
    assert costs["llm"]["cpu_s_per_minute"] == pytest.approx(12.0)
    # stt grows 10 MB per session over a 300 MB base; llm does not grow.
    assert costs["stt"]["rss_per_session_mb"] == pytest.approx(10)
    assert costs["stt"]["rss_base_mb"] == pytest.approx(300)
    assert costs["llm"]["rss_per_session_mb"] == 0


def test_the_largest_step_within_budget_calibrates_the_utilisation() -> None:
    best = measured_within_budget(STEPS, 800)
    assert best is not None and best["sessions_held"] == 2
    assert utilisation(best, cores=2) == pytest.approx(18 / 60)
    assert measured_within_budget(STEPS, 100) is None


def test_node_sessions_take_the_smaller_limit() -> None:
    costs = stage_costs(STEPS)
    # 18 CPU s per conversation minute = 0.3 cores per conversation.
    node = node_sessions(costs, cores=8, memory_mb=4000, target_utilisation=0.6)
    assert node["by_cpu"] == pytest.approx(16)
    assert node["by_memory"] == pytest.approx((4000 - 1200) / 10)
    assert node["sessions"] == 16
    small = node_sessions(costs, cores=8, memory_mb=1300, target_utilisation=0.6)
    assert small["sessions"] == 10  # (1300 - 1200) / 10 MB
    assert node_sessions(costs, cores=8, memory_mb=1000, target_utilisation=0.6)["sessions"] == 0


def test_the_model_checks_itself_against_the_run() -> None:
    model = cost_model({"load": STEPS}, cores=8, memory_mb=16000, budget_ms=800, measured_cores=2)
    assert model["target_utilisation"] == pytest.approx(0.6)
    assert model["check"]["measured_sessions_within_budget"] == 2
    assert model["check"]["measured_utilisation"] == pytest.approx(0.3)
    # 2 cores x 0.6 / 0.3 = 4 predicted where 2 were measured within budget.
    assert model["check"]["predicted_sessions"] == 4
    assert model["node"]["sessions"] == 16
    assert model["uncontended_p50_ms"] == 500.0


def test_a_budget_one_session_alone_misses_predicts_none() -> None:
    model = cost_model({"load": STEPS}, cores=8, memory_mb=16000, budget_ms=550, measured_cores=2)
    assert model["check"]["one_session_p90_ms"] == 600
    assert model["check"]["predicted_sessions"] == 0
    assert model["check"]["predicted_by_cpu_alone"] == 4
