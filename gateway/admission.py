"""Admission and replica choice from the stages' load reports: pure decisions, no I/O.

The prediction (docs/gateway.md, "Admission"): for each stage, the latency-critical step of a
turn (stt's final decode, llm's first token, tts's first audio) takes ``base`` milliseconds when
the stage has a worker to itself, and stretches in proportion to how many sessions share each
worker::

    base      = recent_p90 / max(1, recent_streams / workers)   (the p90 it was measured at,
                                                                 brought back to one per worker)
    predicted = base * max(1, (active + queue + 1) / workers)   (with one more session)

A stage with no recent samples uses a prior (``PRIOR_MS``). The session's predicted p90 from the
end of speech to the first audio is the sum over the stages (each on the replica it would get)
plus a fixed overhead (the gateway, the network, the end-of-turn decision). A new session is
refused when that is over the budget, except that a session is always admitted when none is
open (refusing it helps nobody), and never past the hard cap on sessions.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("stt", "llm", "tts")
# A stage's critical step (ms) on a worker of its own, before it has reported any.
PRIOR_MS = {"stt": 150.0, "llm": 250.0, "tts": 150.0}
MODES = ("off", "refuse", "hold")


@dataclass(frozen=True)
class StageLoad:
    """One replica's load report, as the gateway sees it (voice.v1.LoadReport)."""

    stage: str
    active_streams: int = 0
    queue_depth: int = 0
    workers: int = 1
    recent_p90_ms: float = 0.0
    recent_samples: int = 0
    recent_streams: float = 0.0
    draining: bool = False
    max_streams: int = 0


@dataclass(frozen=True)
class ReplicaView:
    """A replica the gateway could open a stream on: its address, last report, own streams."""

    address: str
    load: StageLoad | None  # None: not reported yet, or the stage does not report
    reachable: bool = True
    # Streams this gateway opened on it and that are still open (counted before any report).
    assigned: int = 0


def base_ms(load: StageLoad) -> float:
    """The critical step's p90 with one session per worker (the prior without samples)."""
    if load.recent_samples <= 0 or load.recent_p90_ms <= 0:
        return PRIOR_MS.get(load.stage, 200.0)
    measured_at = max(1.0, load.recent_streams / max(1, load.workers))
    return load.recent_p90_ms / measured_at


def predicted_stage_ms(load: StageLoad, assigned: int = 0) -> float:
    """The stage's critical-step p90 with one more session on it."""
    active = max(load.active_streams, assigned)
    share = (active + load.queue_depth + 1) / max(1, load.workers)
    return base_ms(load) * max(1.0, share)


def usable(replica: ReplicaView) -> bool:
    """Whether a new session's stream may go to the replica: reachable, not draining, not full."""
    if not replica.reachable:
        return False
    load = replica.load
    if load is None:
        return True
    if load.draining:
        return False
    return not (load.max_streams and max(load.active_streams, replica.assigned) >= load.max_streams)


def choose_replica(replicas: list[ReplicaView]) -> ReplicaView | None:
    """The least-loaded usable replica (lowest predicted time, then fewest streams, then
    address); None when none is usable."""

    def cost(replica: ReplicaView) -> tuple[float, int, str]:
        load = replica.load
        predicted = 0.0 if load is None else predicted_stage_ms(load, replica.assigned)
        streams = replica.assigned if load is None else max(load.active_streams, replica.assigned)
        return predicted, streams, replica.address

    candidates = [replica for replica in replicas if usable(replica)]
    return min(candidates, key=cost) if candidates else None


@dataclass(frozen=True)
class AdmissionPolicy:
    mode: str = "off"
    budget_ms: float = 800.0
    max_sessions: int = 0  # 0: no cap
    overhead_ms: float = 100.0
    retry_after_s: int = 5


@dataclass(frozen=True)
class Decision:
    admit: bool
    # "admitted", "at_capacity" (the hard cap) or "over_budget"
    outcome: str
    predicted_ms: float
    reason: str
    retry_after_s: int = 0


def predict_stages_ms(
    stages: dict[str, list[ReplicaView]], open_sessions: int = 0
) -> dict[str, float]:
    """Each stage's predicted p90 for the new session, on the replica it would get.

    A session admitted a moment ago may not have opened its streams yet: each stage is taken
    to carry at least its share of the gateway's ``open_sessions``."""
    predicted: dict[str, float] = {}
    for stage in STAGES:
        replicas = stages.get(stage, [])
        chosen = choose_replica(replicas)
        if chosen is None or chosen.load is None:
            predicted[stage] = PRIOR_MS[stage]
            continue
        share = -(-open_sessions // max(1, sum(1 for r in replicas if usable(r))))
        predicted[stage] = predicted_stage_ms(chosen.load, max(chosen.assigned, share))
    return predicted


def predict_ms(
    stages: dict[str, list[ReplicaView]], overhead_ms: float, open_sessions: int = 0
) -> float:
    """The new session's predicted p90, end of speech to first audio (module docstring)."""
    return overhead_ms + sum(predict_stages_ms(stages, open_sessions).values())


def decide(
    policy: AdmissionPolicy, open_sessions: int, stages: dict[str, list[ReplicaView]]
) -> Decision:
    """Whether one more session may start now."""
    by_stage = predict_stages_ms(stages, open_sessions)
    predicted = policy.overhead_ms + sum(by_stage.values())
    detail = ", ".join(f"{stage} {ms:.0f}" for stage, ms in by_stage.items())
    if policy.max_sessions and open_sessions >= policy.max_sessions:
        return Decision(
            False,
            "at_capacity",
            predicted,
            f"the gateway is at its limit of {policy.max_sessions} sessions",
            policy.retry_after_s,
        )
    if policy.mode == "off" or open_sessions == 0 or predicted <= policy.budget_ms:
        return Decision(True, "admitted", predicted, "")
    return Decision(
        False,
        "over_budget",
        predicted,
        f"one more session would take the predicted p90 latency to {predicted:.0f} ms, over "
        f"the budget of {policy.budget_ms:.0f} ms ({detail}, overhead {policy.overhead_ms:.0f})",
        policy.retry_after_s,
    )
