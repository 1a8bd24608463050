"""Scaling and admission policies for the simulation (sim.py).

- ``FixedRoundRobin``: a fixed replica count per stage, everyone admitted.
- ``CpuAutoscaler``: HPA-like on CPU: desired = ceil(replicas x utilisation / target), scale-up
  at once (the pod is ready after the simulator's start-up delay), scale-down only to the
  highest desire seen over the stabilisation window (cool-down); everyone admitted.
- ``LatencyAutoscaler``: sizes each stage for its offered load (turn rate x service time) at a
  target utilisation (refused conversations included), adds a replica while the recent p95 is
  over budget or conversations were refused since the last look, and refuses a new
  conversation when the predicted p95 with it (M/M/c per stage) would exceed the budget.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from tools.capacity.sim import Simulator


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass
class FixedRoundRobin:
    replicas: dict[str, int]
    control_s: float = 15.0

    def desired(self, sim: Simulator, stage: str) -> int:
        return self.replicas[stage]

    def admit(self, sim: Simulator) -> bool:
        return True


def hpa_desired(replicas: int, utilisation: float, target: float, tolerance: float = 0.1) -> int:
    """Kubernetes' HPA rule: ceil(replicas x current / target), unchanged within tolerance."""
    ratio = utilisation / target
    if abs(ratio - 1) <= tolerance:
        return replicas
    return max(1, math.ceil(replicas * ratio))


@dataclass
class CpuAutoscaler:
    target: float = 0.6
    min_replicas: int = 1
    max_replicas: int = 20
    cooldown_s: float = 300.0
    control_s: float = 15.0
    _history: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _last_busy: dict[str, float] = field(default_factory=dict)

    def desired(self, sim: Simulator, stage: str) -> int:
        pool = sim.pools[stage]
        busy = sum(r.busy_s for r in pool.replicas)
        # CPU used over the last interval / what the ready replicas could give.
        ready = sum(r.workers for r in pool.replicas if r.ready) or 1
        used = max(0.0, busy - self._last_busy.get(stage, 0.0))
        self._last_busy[stage] = busy
        utilisation = min(used / (ready * self.control_s), 2.0)
        live = len([r for r in pool.replicas if not r.draining])
        want = hpa_desired(live, utilisation, self.target)
        return self._stabilised(stage, sim.now, want)

    def _stabilised(self, stage: str, now: float, want: int) -> int:
        want = max(self.min_replicas, min(self.max_replicas, want))
        history = self._history.setdefault(stage, deque())
        history.append((now, want))
        while history and history[0][0] < now - self.cooldown_s:
            history.popleft()
        # Up at once; down only to the highest recommendation within the cool-down window.
        return max(w for _, w in history)

    def admit(self, sim: Simulator) -> bool:
        return True


def erlang_c(servers: int, offered: float) -> float:
    """Probability that a job waits in an M/M/c queue (offered = arrival rate x service)."""
    if offered >= servers:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered / k
        total += term
    last = term * offered / servers / (1 - offered / servers)
    return last / (total + last)


def wait_quantile_s(servers: int, rate: float, service_s: float, quantile: float) -> float:
    """The quantile of the wait in an M/M/c queue: P(W > t) = C exp(-(c mu - lambda) t)."""
    offered = rate * service_s
    if offered >= servers:
        return math.inf
    waits = erlang_c(servers, offered)
    tail = 1 - quantile
    if waits <= tail:
        return 0.0
    return math.log(waits / tail) / (servers / service_s - rate)


def predicted_p95_s(
    fixed_s: float,
    stages: list[tuple[int, float, float]],
    count_service: bool = True,
    quantile: float = 0.95,
) -> float:
    """p95 of a turn from (workers, turn rate, service mean) per stage, each stage an M/M/c
    queue, the stages' quantiles summed (a conservative bound). With ``count_service`` a
    stage's time is wait + service (the service's own quantile, exponential); without, its
    wait only (the fixed part already holds the service before the first audio)."""
    total = fixed_s
    for workers, rate, service_s in stages:
        total += wait_quantile_s(workers, rate, service_s, quantile)
        if count_service:
            total += -math.log(1 - quantile) * service_s
    return total


@dataclass
class LatencyAutoscaler:
    budget_s: float = 0.8
    target: float = 0.6
    min_replicas: int = 1
    max_replicas: int = 20
    window_s: float = 60.0
    cooldown_s: float = 300.0
    control_s: float = 15.0
    admission: bool = True
    _cpu: CpuAutoscaler = field(default_factory=CpuAutoscaler)
    _refused_seen: dict[str, int] = field(default_factory=dict)

    def desired(self, sim: Simulator, stage: str) -> int:
        spec = sim.pools[stage].spec
        # Size for the offered load, refused conversations included (else refusing would
        # keep the pool small for ever): arrivals x turns each, or the active ones.
        rate = max(sim.turn_rate(), sim.arrival_rate(self.window_s) * sim.workload.turns_mean)
        offered = rate * spec.service_mean_s / spec.workers  # busy replicas needed
        want = math.ceil(offered / self.target) if offered else self.min_replicas
        p95 = percentile(sim.recent_latencies(self.window_s), 95)
        live = len([r for r in sim.pools[stage].replicas if not r.draining])
        if p95 is not None and p95 > self.budget_s and sim.utilisation(stage) > self.target:
            want = max(want, live + 1)
        # Refusing conversations is the signal that capacity is short: one more replica.
        if sim.refused > self._refused_seen.get(stage, 0):
            want = max(want, live + 1)
        self._refused_seen[stage] = sim.refused
        self._cpu.min_replicas, self._cpu.max_replicas = self.min_replicas, self.max_replicas
        self._cpu.cooldown_s = self.cooldown_s
        return self._cpu._stabilised(stage, sim.now, want)

    def admit(self, sim: Simulator) -> bool:
        if not self.admission or sim.active_conversations == 0:
            return True  # refusing the only conversation helps nobody (as the gateway does)
        cycle = sim.workload.gap_mean_s + sum(p.spec.service_mean_s for p in sim.pools.values())
        rate = (sim.active_conversations + 1) / cycle
        stages = []
        for pool in sim.pools.values():
            workers = sum(r.workers for r in pool.ready())
            if not workers:
                return False
            stages.append((workers, rate, pool.spec.service_mean_s))
        fixed = sim.workload.fixed_latency_s
        count = sim.workload.count_service
        return predicted_p95_s(fixed, stages, count) <= self.budget_s
