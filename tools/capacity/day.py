"""``make capacity-sim``: a day of conversations through the stages under three policies,
fed with the measured per-turn costs (``make cost``'s JSON); a summary, JSON and a plot.

The load curve: a night floor, a ramp to ``peak`` x the floor through the morning, a plateau
with bursts (a few minutes at 1.5x), and the evening fall.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.capacity.policies import (
    CpuAutoscaler,
    FixedRoundRobin,
    LatencyAutoscaler,
    percentile,
)
from tools.capacity.sim import Policy, Simulator, StageSpec, Workload

ROOT = Path(__file__).resolve().parents[2]
DAY_S = 24 * 3600
SIM_STAGES = ("stt", "llm", "tts")


def load_curve(
    floor: float, peak: float, bursts: tuple[float, ...] = (10.5, 14.25, 17.0)
) -> Callable[[float], float]:
    """Conversations per second over the day: floor at night, ramp 6h-10h to peak x floor,
    plateau until 18h, fall to the floor by 23h; each burst (hour) is 10 minutes at 1.5x."""

    def rate(t_s: float) -> float:
        hour = (t_s % DAY_S) / 3600
        if hour < 6 or hour >= 23:
            level = 1.0
        elif hour < 10:
            level = 1 + (peak - 1) * (hour - 6) / 4
        elif hour < 18:
            level = peak
        else:
            level = peak - (peak - 1) * (hour - 18) / 5
        if any(b <= hour < b + 1 / 6 for b in bursts):
            level *= 1.5
        return floor * level

    return rate


def stage_specs(cost: dict[str, Any], workers: int) -> list[StageSpec]:
    """Each stage's service time: its measured CPU seconds per turn; the spread is the cost
    model's assumed coefficient of variation."""
    return [
        StageSpec(
            name,
            service_mean_s=max(cost["stages"][name]["cpu_s_per_turn"], 1e-3),
            service_cv=cost.get("service_cv", 0.5),
            workers=workers,
        )
        for name in SIM_STAGES
    ]


def summarise(sim: Simulator, budget_s: float, bucket_s: float = 900) -> dict[str, Any]:
    buckets: dict[int, list[float]] = {}
    for turn in sim.done:
        buckets.setdefault(int(turn.time_s // bucket_s), []).append(turn.latency_s)
    series = [
        {"t_h": round(k * bucket_s / 3600, 2), "p95_s": percentile(v, 95), "turns": len(v)}
        for k, v in sorted(buckets.items())
    ]
    over = sum(1 for s in series if s["p95_s"] is not None and s["p95_s"] > budget_s)
    latencies = [t.latency_s for t in sim.done]
    return {
        "turns": len(latencies),
        "p95_s": percentile(latencies, 95),
        "buckets_over_budget": f"{over}/{len(series)}",
        "conversations": sim.arrived,
        "refused_fraction": round(sim.refused / sim.arrived, 4) if sim.arrived else 0.0,
        "replica_hours": {k: round(v / 3600, 1) for k, v in sim.replica_seconds.items()},
        "replica_hours_total": round(sum(sim.replica_seconds.values()) / 3600, 1),
        "p95_over_time": series,
        "replicas_over_time": sim.timeline[:: max(1, int(bucket_s // 15))],
    }


def policies(args: argparse.Namespace) -> dict[str, Policy]:
    fixed = dict.fromkeys(SIM_STAGES, args.fixed_replicas)
    return {
        "round-robin fixed": FixedRoundRobin(fixed),
        "HPA on CPU": CpuAutoscaler(target=args.cpu_target, max_replicas=args.max_replicas),
        "p95 + load, admission": LatencyAutoscaler(
            budget_s=args.budget_ms / 1000, target=args.cpu_target, max_replicas=args.max_replicas
        ),
    }


def simulate(args: argparse.Namespace, cost: dict[str, Any]) -> dict[str, Any]:
    rate = load_curve(args.floor, args.peak)
    rate_max = args.floor * args.peak * 1.5
    fixed_s = args.fixed_latency_ms / 1000
    workload = Workload(args.turns, args.gap_s, fixed_s, count_service=False)
    results = {}
    for name, policy in policies(args).items():
        sim = Simulator(
            stage_specs(cost, args.workers),
            workload,
            rate,
            rate_max,
            policy,
            initial_replicas=dict.fromkeys(SIM_STAGES, args.fixed_replicas),
            startup_s=args.startup_s,
            seed=args.seed,
        )
        sim.run(args.hours * 3600)
        results[name] = summarise(sim, args.budget_ms / 1000)
    return results


def plot(results: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = load_curve(args.floor, args.peak)
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    hours = [h / 12 for h in range(int(args.hours * 12))]
    axes[0].plot(hours, [rate(h * 3600) * 60 for h in hours], color="black")
    axes[0].set_ylabel("arrivals / min")
    for name, result in results.items():
        p95 = [(s["t_h"], s["p95_s"] * 1000) for s in result["p95_over_time"] if s["p95_s"]]
        axes[1].plot([t for t, _ in p95], [v for _, v in p95], label=name)
        rows = result["replicas_over_time"]
        axes[2].step(
            [r["t_s"] / 3600 for r in rows],
            [sum(r[s] for s in SIM_STAGES) for r in rows],
            where="post",
            label=name,
        )
    axes[1].axhline(args.budget_ms, color="grey", linestyle="--", label="budget")
    axes[1].set_ylabel("p95 ms (15 min)")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    axes[2].set_ylabel("replicas (all stages)")
    axes[2].set_xlabel("hour of the day")
    fig.suptitle("Simulated day: load, p95 end-to-end latency and replicas per policy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description="Simulate a day under three scaling policies.")
    parser.add_argument("--cost", type=Path, default=ROOT / "bench" / "results" / "cost.json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--floor", type=float, default=0.01, help="night conversations / s")
    parser.add_argument("--peak", type=float, default=10, help="peak load / night floor")
    parser.add_argument("--turns", type=float, default=6, help="mean turns per conversation")
    parser.add_argument("--gap-s", type=float, default=8, help="mean gap between turns")
    parser.add_argument(
        "--fixed-latency-ms",
        type=float,
        default=None,
        help="uncontended latency (default: the load run's p50 at 1 session)",
    )
    parser.add_argument("--budget-ms", type=float, default=None, help="p95 budget")
    parser.add_argument("--workers", type=int, default=1, help="workers per replica")
    parser.add_argument("--fixed-replicas", type=int, default=2)
    parser.add_argument("--max-replicas", type=int, default=20)
    parser.add_argument("--cpu-target", type=float, default=0.6)
    parser.add_argument("--startup-s", type=float, default=60)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "capacity-sim.json"
    )
    args = parser.parse_args()
    cost = json.loads(args.cost.read_text())
    if args.fixed_latency_ms is None:
        args.fixed_latency_ms = cost.get("uncontended_p50_ms") or 300
    args.budget_ms = args.budget_ms or cost.get("budget_ms", 800)
    results = simulate(args, cost)
    print(f"fixed latency {args.fixed_latency_ms:.0f} ms, p95 budget {args.budget_ms:.0f} ms")
    print(
        f"{'policy':<24}{'turns':>8}{'p95 ms':>9}{'15-min over':>12}{'refused':>9}{'replica-h':>10}"
    )
    for name, r in results.items():
        p95 = "-" if r["p95_s"] is None else f"{r['p95_s'] * 1000:.0f}"
        p95 = p95 if r["p95_s"] is None or math.isfinite(r["p95_s"]) else "inf"
        print(
            f"{name:<24}{r['turns']:>8}{p95:>9}{r['buckets_over_budget']:>12}"
            f"{r['refused_fraction']:>9.1%}{r['replica_hours_total']:>10}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": vars(args) | {"cost": str(args.cost), "out": str(args.out)},
                "policies": results,
            },
            indent=1,
        )
    )
    png = args.out.with_suffix(".png")
    plot(results, args, png)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
