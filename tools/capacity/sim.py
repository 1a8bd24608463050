"""A discrete-event simulation of conversations through the stages (stt -> llm -> tts).

Each stage is a pool of replicas, each with ``workers`` servers and one FIFO queue; a turn's job
goes to the stage's ready replicas in round robin. A conversation arrives (Poisson, rate over
time from ``rate_at``), has a number of turns, and after each answered turn waits a gap (the
user listening and speaking) before the next. A turn's end-to-end latency is a fixed part that
uses no contended CPU (endpointing, network) plus, per stage, its wait and service time.

A policy (policies.py) is asked every ``control_s`` how many replicas each stage should have,
and at each arrival whether to admit the conversation. Pure Python and numpy; deterministic for
a seed.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StageSpec:
    name: str
    service_mean_s: float
    service_cv: float = 0.5  # lognormal; cv == 1 with exponential=True gives M/M/c
    workers: int = 1
    exponential: bool = False


@dataclass(frozen=True)
class Workload:
    turns_mean: float = 8.0  # turns per conversation (geometric, at least 1)
    gap_mean_s: float = 8.0  # from an answer to the next turn's end of speech (exponential)
    # The part of a turn's latency the stages' queues do not explain: with count_service, the
    # stages' service times are added to it (a job's latency is its whole time in the stages);
    # without, only their waits (the uncontended latency already holds the service that
    # comes before the first audio: the measured p50 of one session).
    fixed_latency_s: float = 0.3
    count_service: bool = True


@dataclass
class Replica:
    workers: int
    ready: bool = True
    draining: bool = False
    busy: int = 0
    queue: deque[tuple[float, int]] = field(default_factory=deque)
    busy_s: float = 0.0  # work time completed (utilisation)


@dataclass
class StagePool:
    spec: StageSpec
    replicas: list[Replica]
    next_rr: int = 0

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.draining]

    def count(self) -> int:
        """Replicas that cost money: ready, starting or draining."""
        return len(self.replicas)


class Policy(Protocol):
    control_s: float

    def desired(self, sim: Simulator, stage: str) -> int: ...

    def admit(self, sim: Simulator) -> bool: ...


@dataclass
class TurnDone:
    time_s: float
    latency_s: float


class Simulator:
    def __init__(
        self,
        stages: list[StageSpec],
        workload: Workload,
        rate_at: Callable[[float], float],
        rate_max: float,
        policy: Policy,
        initial_replicas: dict[str, int],
        startup_s: float = 60.0,
        seed: int = 0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.workload = workload
        self.rate_at = rate_at
        self.rate_max = rate_max
        self.policy = policy
        self.startup_s = startup_s
        self.order = [s.name for s in stages]
        self.pools = {
            s.name: StagePool(s, [Replica(s.workers) for _ in range(initial_replicas[s.name])])
            for s in stages
        }
        self.now = 0.0
        self._events: list[tuple[float, int, str, tuple[object, ...]]] = []
        self._seq = itertools.count()
        self._turn_start: dict[int, float] = {}
        self._waited: dict[int, float] = {}
        self._turns_left: dict[int, int] = {}
        self._conv_of: dict[int, int] = {}
        self._ids = itertools.count()
        self.active_conversations = 0
        self.arrival_times: deque[float] = deque()
        self.arrived = 0
        self.refused = 0
        self.done: list[TurnDone] = []
        self.replica_seconds = dict.fromkeys(self.order, 0.0)
        self.timeline: list[dict[str, float]] = []  # one row per control tick

    # --- events ---------------------------------------------------------------------------

    def _at(self, time_s: float, kind: str, *args: object) -> None:
        heapq.heappush(self._events, (time_s, next(self._seq), kind, args))

    def run(self, until_s: float) -> None:
        self._next_arrival()
        self._at(0.0, "control")
        last = 0.0
        while self._events and self._events[0][0] <= until_s:
            time_s, _, kind, args = heapq.heappop(self._events)
            for name, pool in self.pools.items():
                self.replica_seconds[name] += pool.count() * (time_s - last)
            last = self.now = time_s
            getattr(self, "_on_" + kind)(*args)

    def _next_arrival(self) -> None:
        # Thinning: candidates at rate_max, each kept with probability rate_at(t) / rate_max.
        t = self.now
        while True:
            t += float(self.rng.exponential(1 / self.rate_max))
            if self.rng.random() * self.rate_max <= self.rate_at(t):
                self._at(t, "arrival")
                return

    def _on_arrival(self) -> None:
        self._next_arrival()
        self.arrived += 1
        self.arrival_times.append(self.now)
        if not self.policy.admit(self):
            self.refused += 1
            return
        conv = next(self._ids)
        self.active_conversations += 1
        self._turns_left[conv] = int(self.rng.geometric(1 / self.workload.turns_mean))
        self._at(self.now, "turn", conv)

    def _on_turn(self, conv: int) -> None:
        job = next(self._ids)
        self._conv_of[job] = conv
        self._turn_start[job] = self.now
        self._waited[job] = 0.0
        self._submit(self.order[0], job)

    def _submit(self, stage: str, job: int) -> None:
        pool = self.pools[stage]
        ready = pool.ready() or [r for r in pool.replicas if r.ready] or pool.replicas
        replica = ready[pool.next_rr % len(ready)]
        pool.next_rr += 1
        if replica.busy < replica.workers and replica.ready:
            self._start(stage, replica, job)
        else:
            replica.queue.append((self.now, job))

    def _start(self, stage: str, replica: Replica, job: int) -> None:
        replica.busy += 1
        service = self._service(self.pools[stage].spec)
        replica.busy_s += service
        self._at(self.now + service, "finish", stage, replica, job)

    def _service(self, spec: StageSpec) -> float:
        if spec.exponential:
            return float(self.rng.exponential(spec.service_mean_s))
        sigma2 = math.log(1 + spec.service_cv**2)
        mu = math.log(spec.service_mean_s) - sigma2 / 2
        return float(self.rng.lognormal(mu, math.sqrt(sigma2)))

    def _on_finish(self, stage: str, replica: Replica, job: int) -> None:
        replica.busy -= 1
        if replica.queue:
            queued_at, waiting = replica.queue.popleft()
            self._waited[waiting] += self.now - queued_at
            self._start(stage, replica, waiting)
        elif replica.draining and replica.busy == 0:
            self.pools[stage].replicas.remove(replica)
        index = self.order.index(stage)
        if index + 1 < len(self.order):
            self._submit(self.order[index + 1], job)
            return
        in_stages = self.now - self._turn_start.pop(job)
        waited = self._waited.pop(job)
        latency = self.workload.fixed_latency_s + (
            in_stages if self.workload.count_service else waited
        )
        self.done.append(TurnDone(self.now, latency))
        conv = self._conv_of.pop(job)
        self._turns_left[conv] -= 1
        if self._turns_left[conv] > 0:
            gap = float(self.rng.exponential(self.workload.gap_mean_s))
            self._at(self.now + gap, "turn", conv)
        else:
            del self._turns_left[conv]
            self.active_conversations -= 1

    def _on_ready(self, replica: Replica) -> None:
        replica.ready = True
        stage = next(n for n, p in self.pools.items() if replica in p.replicas)
        while replica.queue and replica.busy < replica.workers:
            queued_at, job = replica.queue.popleft()
            self._waited[job] += self.now - queued_at
            self._start(stage, replica, job)

    def _on_control(self) -> None:
        row: dict[str, float] = {"t_s": self.now, "rate": self.rate_at(self.now)}
        for name, pool in self.pools.items():
            self._scale(name, pool, self.policy.desired(self, name))
            row[name] = pool.count()
        self.timeline.append(row)
        self._at(self.now + self.policy.control_s, "control")

    def _scale(self, name: str, pool: StagePool, want: int) -> None:
        live = [r for r in pool.replicas if not r.draining]
        for _ in range(want - len(live)):
            replica = Replica(pool.spec.workers, ready=False)
            pool.replicas.append(replica)
            self._at(self.now + self.startup_s, "ready", replica)
        for replica in sorted(live, key=lambda r: (r.ready, -r.busy - len(r.queue)))[
            : max(0, len(live) - max(want, 1))
        ]:
            replica.draining = True
            if replica.busy == 0 and not replica.queue:
                pool.replicas.remove(replica)

    # --- what policies look at ------------------------------------------------------------

    def utilisation(self, stage: str) -> float:
        """Busy share of the stage's ready workers right now (instantaneous, 0..1+queue)."""
        ready = [r for r in self.pools[stage].replicas if r.ready]
        capacity = sum(r.workers for r in ready)
        if not capacity:
            return 1.0
        return sum(r.busy + len(r.queue) for r in ready) / capacity

    def recent_latencies(self, window_s: float) -> list[float]:
        cut = self.now - window_s
        out = []
        for turn in reversed(self.done):
            if turn.time_s < cut:
                break
            out.append(turn.latency_s)
        return out

    def arrival_rate(self, window_s: float) -> float:
        """Conversations offered per second over the last window, refused ones included."""
        while self.arrival_times and self.arrival_times[0] < self.now - window_s:
            self.arrival_times.popleft()
        return len(self.arrival_times) / window_s

    def turn_rate(self) -> float:
        """Turns per second the active conversations make (closed loop: one per gap + answer)."""
        cycle = self.workload.gap_mean_s + sum(p.spec.service_mean_s for p in self.pools.values())
        return self.active_conversations / cycle


def mm1_sojourn_p(p: float, service_mean_s: float, rho: float) -> float:
    """The p-quantile of the time in an M/M/1 system (wait + service): exponential with rate
    (1 - rho) / service_mean."""
    return -math.log(1 - p) * service_mean_s / (1 - rho)
