"""The capacity simulation's core (tools/capacity/sim.py, policies.py): queueing sanity against
M/M/1 formulas with a fixed seed, and the scaling and admission decisions."""

from __future__ import annotations

import math

import pytest

from tools.capacity.day import load_curve
from tools.capacity.policies import (
    CpuAutoscaler,
    FixedRoundRobin,
    LatencyAutoscaler,
    erlang_c,
    hpa_desired,
    percentile,
    predicted_p95_s,
    wait_quantile_s,
)
from tools.capacity.sim import Simulator, StageSpec, Workload, mm1_sojourn_p

pytestmark = pytest.mark.unit


def mm1(rho: float, service_s: float = 0.1, seed: int = 3, hours: float = 2.0) -> Simulator:
    """Single-turn conversations, Poisson at rho / service, one exponential server."""
    stage = StageSpec("only", service_s, workers=1, exponential=True)
    rate = rho / service_s
    sim = Simulator(
        [stage],
        Workload(turns_mean=1, gap_mean_s=1, fixed_latency_s=0.0),
        lambda _t: rate,
        rate,
        FixedRoundRobin({"only": 1}, control_s=60),
        {"only": 1},
        seed=seed,
    )
    sim.run(hours * 3600)
    return sim


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_mm1_mean_and_p95_sojourn_match_the_formulas(rho: float) -> None:
    sim = mm1(rho)
    latencies = [t.latency_s for t in sim.done]
    assert len(latencies) > 10000
    mean = sum(latencies) / len(latencies)
    assert mean == pytest.approx(0.1 / (1 - rho), rel=0.08)
    assert percentile(latencies, 95) == pytest.approx(mm1_sojourn_p(0.95, 0.1, rho), rel=0.08)


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not() -> None:
    a, b, c = (mm1(0.5, seed=s, hours=0.2) for s in (1, 1, 2))
    assert [t.latency_s for t in a.done] == [t.latency_s for t in b.done]
    assert [t.latency_s for t in a.done] != [t.latency_s for t in c.done]


def test_two_round_robin_replicas_halve_the_load_of_each() -> None:
    stage = StageSpec("only", 0.1, workers=1, exponential=True)
    sim = Simulator(
        [stage],
        Workload(1, 1, 0.0),
        lambda _t: 14.0,
        14.0,
        FixedRoundRobin({"only": 2}),
        {"only": 2},
        seed=5,
    )
    sim.run(3600)
    latencies = [t.latency_s for t in sim.done]
    mean = sum(latencies) / len(latencies)
    # Each replica sees rho = 0.7 (round robin is not Poisson per replica: a little better).
    assert 0.1 < mean < 0.1 / (1 - 0.7) * 1.05


def test_hpa_rule() -> None:
    assert hpa_desired(2, 0.9, 0.6) == 3
    assert hpa_desired(4, 0.62, 0.6) == 4  # within the 10 % tolerance
    assert hpa_desired(4, 0.15, 0.6) == 1
    assert hpa_desired(1, 0.0, 0.6) == 1


def test_cpu_autoscaler_scales_up_at_once_and_down_after_the_cooldown() -> None:
    scaler = CpuAutoscaler(target=0.5, cooldown_s=300, max_replicas=10)
    assert scaler._stabilised("x", 0, 6) == 6
    assert scaler._stabilised("x", 100, 2) == 6  # still within the cool-down
    assert scaler._stabilised("x", 400, 2) == 2
    assert scaler._stabilised("x", 415, 50) == 10  # capped


def test_erlang_c_and_the_wait_quantile() -> None:
    # M/M/1: a job waits with probability rho; P(W > t) = rho exp(-(mu - lambda) t).
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert wait_quantile_s(1, 5.0, 0.1, 0.95) == pytest.approx(math.log(0.5 / 0.05) / 5.0)
    # The textbook M/M/2 case: a = 1 Erlang -> C = 1/3.
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert wait_quantile_s(4, 1.0, 0.5, 0.95) == 0.0  # hardly anyone waits
    assert wait_quantile_s(1, 10.0, 0.1, 0.95) == math.inf


def test_predicted_p95_grows_with_load_and_is_infinite_at_saturation() -> None:
    low = predicted_p95_s(0.3, [(1, 2.0, 0.1)])
    high = predicted_p95_s(0.3, [(1, 8.0, 0.1)])
    assert low == pytest.approx(0.3 + math.log(0.2 / 0.05) / 8.0 + 3.0 * 0.1, rel=0.01)
    assert high > low
    assert predicted_p95_s(0.3, [(1, 10.0, 0.1)]) == math.inf
    assert predicted_p95_s(0.3, [(2, 0.1, 0.1)], count_service=False) == 0.3


def test_mm1_wait_p95_matches_the_simulation() -> None:
    sim = mm1(0.7)
    latencies = [t.latency_s for t in sim.done]
    # Sojourn = wait + service; the simulated sojourn p95 against M/M/1's.
    assert percentile(latencies, 95) == pytest.approx(mm1_sojourn_p(0.95, 0.1, 0.7), rel=0.08)


def test_admission_refuses_when_the_predicted_p95_is_over_budget() -> None:
    stage = StageSpec("only", 0.5, workers=1)
    policy = LatencyAutoscaler(budget_s=3.0, max_replicas=1)
    sim = Simulator(
        [stage],
        Workload(turns_mean=20, gap_mean_s=2, fixed_latency_s=0.3),
        lambda _t: 1.0,
        1.0,
        policy,
        {"only": 1},
        seed=2,
    )
    sim.run(1800)
    assert sim.refused > 0 and sim.refused < sim.arrived
    # Admitted ones keep their p95 near the budget; without admission it runs away.
    admitted = percentile([t.latency_s for t in sim.done], 95)
    open_door = Simulator(
        [stage],
        Workload(turns_mean=20, gap_mean_s=2, fixed_latency_s=0.3),
        lambda _t: 1.0,
        1.0,
        LatencyAutoscaler(budget_s=3.0, max_replicas=1, admission=False),
        {"only": 1},
        seed=2,
    )
    open_door.run(1800)
    assert open_door.refused == 0
    unlimited = percentile([t.latency_s for t in open_door.done], 95)
    assert admitted is not None and unlimited is not None and admitted < unlimited


def test_cpu_autoscaling_adds_replicas_under_load_and_costs_replica_hours() -> None:
    stage = StageSpec("only", 0.2, workers=1)
    sim = Simulator(
        [stage],
        Workload(turns_mean=5, gap_mean_s=4, fixed_latency_s=0.0),
        load_curve(0.5, 8),
        6.0,
        CpuAutoscaler(target=0.6),
        {"only": 1},
        startup_s=30,
        seed=4,
    )
    sim.run(12 * 3600)
    counts = [row["only"] for row in sim.timeline]
    assert max(counts) > 1 and counts[0] == 1
    assert sim.replica_seconds["only"] > 12 * 3600  # more than one replica for some time


def test_load_curve_ramps_to_peak_and_bursts() -> None:
    rate = load_curve(1.0, 10, bursts=(12.0,))
    assert rate(3 * 3600) == 1.0
    assert rate(8 * 3600) == pytest.approx(5.5)
    assert rate(11 * 3600) == 10
    assert rate(12.05 * 3600) == 15
