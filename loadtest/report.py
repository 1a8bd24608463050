"""The load report's arithmetic: pure functions over recorded samples (no I/O, no clocks).

A step's figures come from the turn records Locust wrote (one row per answered turn, failed
turn or refused session) and from two readings of each service process's CPU time plus the RSS
samples taken during the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ANSWERED = "first audible answer"
FAILED = "failed turn"
REFUSED = "refused session"


@dataclass(frozen=True)
class TurnRecord:
    """One Locust request: an answered turn (latency_ms), a failed turn or a refused session."""

    name: str
    latency_ms: float
    held_s: float = 0.0  # how long its connection was open (conversation time)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two readings (a process missing from either is
    left out: it died or was not yet started)."""
    return {
        name: round(after[name] - before[name], 3)
        for name in before
        if name in after and after[name] >= before[name]
    }


def peak_rss_mb(samples: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The largest RSS sample of each process, in MB."""
    peak: dict[str, float] = {}
    for sample in samples:
        for name, mb in sample.items():
            peak[name] = max(peak.get(name, 0.0), mb)
    return peak


def step_summary(
    offered: int,
    seconds: float,
    records: Sequence[TurnRecord],
    cpu_s: Mapping[str, float],
    rss_mb: Mapping[str, float],
    sessions_held: int,
) -> dict[str, Any]:
    """The figures of one load step.

    ``admitted`` counts sessions the gateway let in (each answered or failed turn is one
    session: the load test opens one connection per turn); ``refused`` counts 503s at the
    upgrade. The error rate is failed / (answered + failed): a refusal is the gateway saying
    no on purpose, not an error. Percentiles are over answered turns only.
    """
    answered = [r.latency_ms for r in records if r.name == ANSWERED]
    failed = sum(1 for r in records if r.name == FAILED)
    refused = sum(1 for r in records if r.name == REFUSED)
    admitted = len(answered) + failed
    p50, p90 = percentile(answered, 50), percentile(answered, 90)
    return {
        "offered": offered,
        "seconds": round(seconds, 1),
        "sessions_held": sessions_held,
        "admitted": admitted,
        "refused": refused,
        "answered": len(answered),
        "conversation_s": round(sum(r.held_s for r in records if r.name != REFUSED), 1),
        "errors": failed,
        "error_rate": round(failed / admitted, 3) if admitted else 0.0,
        "p50_ms": None if p50 is None else round(p50, 1),
        "p90_ms": None if p90 is None else round(p90, 1),
        "cpu_s": dict(cpu_s),
        "peak_rss_mb": dict(rss_mb),
    }


STAGES = ("stt", "llm", "tts", "gateway")


def table(steps: Sequence[Mapping[str, Any]]) -> str:
    """The steps as a fixed-width text table."""
    head = (
        f"{'offered':>7}{'held':>5}{'admit':>6}{'refuse':>7}{'answer':>7}{'err %':>7}"
        f"{'p50 ms':>8}{'p90 ms':>8}  "
        + "".join(f"{s + ' cpu s':>14}" for s in STAGES)
        + "  "
        + "".join(f"{s + ' MB':>12}" for s in STAGES)
    )
    lines = [head]
    for step in steps:
        p50, p90 = ("-" if step[k] is None else f"{step[k]:.0f}" for k in ("p50_ms", "p90_ms"))
        cpu = "".join(f"{step['cpu_s'].get(s, float('nan')):>14.1f}" for s in STAGES)
        rss = "".join(f"{step['peak_rss_mb'].get(s, float('nan')):>12.0f}" for s in STAGES)
        lines.append(
            f"{step['offered']:>7}{step['sessions_held']:>5}{step['admitted']:>6}"
            f"{step['refused']:>7}{step['answered']:>7}{step['error_rate']:>7.1%}"
            f"{p50:>8}{p90:>8}  {cpu}  {rss}"
        )
    return "\n".join(lines)


def parse_stat_cpu_s(stat: str, ticks_per_s: float) -> float:
    """utime + stime (+ children's) of a /proc/<pid>/stat line, in seconds.

    The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the name: state is fields[0]; utime, stime, cutime, cstime are stat fields 14-17.
    utime, stime, cutime, cstime = (int(fields[i]) for i in range(11, 15))
    return (utime + stime + cutime + cstime) / ticks_per_s
