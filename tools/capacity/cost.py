"""``make cost``: CPU and memory per turn and per conversation minute for each stage, from a
``make load`` report, and how many conversations a node of a given size serves.

The node's capacity is the smaller of two limits:
- CPU: cores x target utilisation / the CPU seconds all stages use per second of conversation;
  the target utilisation (0.6, the HPAs' target, or --target-utilisation) is what should keep
  the p90 within the latency budget; the load run checks it: the utilisation of its largest
  step within budget, and the sessions it held, against the prediction for its machine.
- memory: (node memory - every stage's resident base) / the memory one more session adds.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("stt", "llm", "tts", "gateway")
# Spread of one turn's service time around its mean (coefficient of variation), for the
# simulation: the load run measures CPU per step, not per turn, so this is an assumption.
SERVICE_CV = 0.5
# The CPU share a node is planned at (the HPAs' target): the prediction the load run checks.
TARGET_UTILISATION = 0.6


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 when xs do not vary)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def stage_costs(steps: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage: CPU s per answered turn and per conversation minute, RSS base and per session."""
    used = [s for s in steps if s["answered"] > 0]
    turns = sum(s["answered"] for s in used)
    minutes = sum(s["conversation_s"] for s in used) / 60
    costs: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        cpu = sum(s["cpu_s"].get(stage, 0.0) for s in used)
        points = [
            (s["sessions_held"], s["peak_rss_mb"][stage]) for s in used if stage in s["peak_rss_mb"]
        ]
        if not points:
            continue
        per_session = max(0.0, _slope([p[0] for p in points], [p[1] for p in points]))
        base = min(p[1] - per_session * p[0] for p in points)
        costs[stage] = {
            "cpu_s_per_turn": round(cpu / turns, 4) if turns else 0.0,
            "cpu_s_per_minute": round(cpu / minutes, 3) if minutes else 0.0,
            "rss_base_mb": round(max(base, 0.0), 1),
            "rss_per_session_mb": round(per_session, 2),
        }
    return costs


def measured_within_budget(
    steps: Sequence[Mapping[str, Any]], budget_ms: float
) -> Mapping[str, Any] | None:
    """The step with the most sessions held whose p90 was within budget, without errors."""
    good = [
        s
        for s in steps
        if s["p90_ms"] is not None and s["p90_ms"] <= budget_ms and s["error_rate"] == 0
    ]
    return max(good, key=lambda s: s["sessions_held"], default=None)


def utilisation(step: Mapping[str, Any], cores: float) -> float:
    """The share of the machine's CPU the stages used during a step."""
    return float(sum(step["cpu_s"].values())) / (float(step["seconds"]) * cores)


def node_sessions(
    costs: Mapping[str, Mapping[str, float]],
    cores: float,
    memory_mb: float,
    target_utilisation: float,
) -> dict[str, float | None]:
    """Concurrent conversations one node serves: the CPU limit, the memory limit, the smaller."""
    cpu_per_session_s = sum(c["cpu_s_per_minute"] for c in costs.values()) / 60
    base = sum(c["rss_base_mb"] for c in costs.values())
    per_session = sum(c["rss_per_session_mb"] for c in costs.values())
    by_cpu = cores * target_utilisation / cpu_per_session_s if cpu_per_session_s else math.inf
    free = memory_mb - base
    by_memory = (free / per_session if per_session else math.inf) if free > 0 else 0.0
    return {
        "by_cpu": round(by_cpu, 2),
        # None: the load run saw no memory grow with sessions, so memory sets no limit.
        "by_memory": round(by_memory, 2) if math.isfinite(by_memory) else None,
        "sessions": math.floor(min(by_cpu, by_memory)),
    }


def cost_model(
    report: Mapping[str, Any],
    cores: float,
    memory_mb: float,
    budget_ms: float,
    measured_cores: float,
    target_utilisation: float | None = None,
) -> dict[str, Any]:
    steps = report["load"]
    costs = stage_costs(steps)
    best = measured_within_budget(steps, budget_ms)
    calibrated = utilisation(best, measured_cores) if best else None
    target = target_utilisation or TARGET_UTILISATION
    machine = node_sessions(costs, measured_cores, memory_mb, target)
    alone = min(steps, key=lambda s: s["offered"])
    # When one session alone is over budget, no CPU share brings the p90 within it.
    reachable = alone["p90_ms"] is not None and alone["p90_ms"] <= budget_ms
    return {
        "budget_ms": budget_ms,
        "service_cv": SERVICE_CV,
        "stages": costs,
        "target_utilisation": round(target, 3),
        # The latency of one session alone: the simulation's uncontended part of a turn.
        "uncontended_p50_ms": alone["p50_ms"],
        "node": {
            "cores": cores,
            "memory_mb": memory_mb,
            **node_sessions(costs, cores, memory_mb, target),
        },
        "check": {
            "cores": measured_cores,
            "predicted_sessions": machine["sessions"] if reachable else 0,
            "predicted_by_cpu_alone": machine["sessions"],
            "one_session_p90_ms": alone["p90_ms"],
            "measured_sessions_within_budget": best["sessions_held"] if best else 0,
            "measured_p90_ms": best["p90_ms"] if best else None,
            "measured_utilisation": None if calibrated is None else round(calibrated, 3),
        },
    }


def latest_load_report(results: Path) -> Path:
    found = sorted(results.glob("load-*.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no load report in {results}: run make load first")
    return found[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description="Cost model from a make load report.")
    parser.add_argument("--load", type=Path, default=None, help="make load JSON (default: latest)")
    parser.add_argument("--cores", type=float, default=8, help="cores of the node to size")
    parser.add_argument("--memory-gb", type=float, default=16, help="memory of the node to size")
    parser.add_argument("--budget-ms", type=float, default=800, help="p90 latency budget")
    parser.add_argument("--measured-cores", type=float, default=2, help="cores of the load run")
    parser.add_argument("--target-utilisation", type=float, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cost.json")
    args = parser.parse_args()
    source = args.load or latest_load_report(ROOT / "bench" / "results")
    model = cost_model(
        json.loads(source.read_text()),
        args.cores,
        args.memory_gb * 1000,
        args.budget_ms,
        args.measured_cores,
        args.target_utilisation,
    )
    model["source"] = str(source)
    print(f"{'stage':<8}{'cpu s/turn':>11}{'cpu s/min':>10}{'base MB':>9}{'MB/session':>11}")
    for stage, c in model["stages"].items():
        print(
            f"{stage:<8}{c['cpu_s_per_turn']:>11.3f}{c['cpu_s_per_minute']:>10.2f}"
            f"{c['rss_base_mb']:>9.0f}{c['rss_per_session_mb']:>11.1f}"
        )
    node, check = model["node"], model["check"]
    print(
        f"node {args.cores:g} cores, {args.memory_gb:g} GB, p90 <= {args.budget_ms:g} ms at "
        f"{model['target_utilisation']:.0%} CPU: {node['sessions']} conversations "
        f"(CPU limit {node['by_cpu']}, memory limit {node['by_memory']})"
    )
    print(
        f"check on {check['cores']:g} cores: predicted {check['predicted_sessions']} (CPU alone "
        f"{check['predicted_by_cpu_alone']}, one session's p90 {check['one_session_p90_ms']} ms), "
        "measured "
        f"{check['measured_sessions_within_budget']} within budget "
        f"(p90 {check['measured_p90_ms']} ms)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
