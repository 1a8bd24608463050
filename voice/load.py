"""A stage's load report: what it carries now and how fast its latency-critical step has been.

Each stage keeps one :class:`LoadTracker`. The servicer records the duration of the step on a
turn's critical path (stt: the final decode of an utterance; llm: the first token of a reply;
tts: the first audio of a turn) with :meth:`LoadTracker.record`, and marks work waiting for an
answer with :meth:`LoadTracker.waiting`. The tracker keeps the samples of a recent window
(``WINDOW_S`` seconds, at most ``WINDOW_SAMPLES``), an exponentially weighted mean, and the mean
open streams while the window's samples were taken, so a reader can tell a slow stage from a
busy one.

:func:`serve_load` registers the ``voice.v1.LoadService`` (``GetLoad``) on a stage's gRPC server
and :func:`export_gauges` the same figures as Prometheus gauges (``voice_<stage>_load_*``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import grpc

from voice.v1 import load_pb2, load_pb2_grpc

WINDOW_S = 60.0
WINDOW_SAMPLES = 50
# Weight of a new sample in the exponentially weighted mean.
EWMA_ALPHA = 0.3


def p90(values: list[float]) -> float:
    """The 90th percentile by the nearest-rank method (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-9 * len(ordered) // 10))  # ceil(0.9 n)
    return ordered[rank - 1]


class LoadTracker:
    def __init__(
        self,
        stage: str,
        *,
        workers: int = 1,
        max_streams: int = 0,
        active_streams: Callable[[], int] = lambda: 0,
        queued: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stage = stage
        self.workers = max(1, workers)
        self.max_streams = max_streams
        self.draining = False
        self._active_streams = active_streams
        self._queued = queued
        self._clock = clock
        # (time, duration ms, open streams when recorded)
        self._samples: deque[tuple[float, float, int]] = deque(maxlen=WINDOW_SAMPLES)
        self._ewma = 0.0
        self._waiting = 0

    def record(self, duration_ms: float) -> None:
        """One run of the stage's latency-critical step took ``duration_ms``."""
        duration_ms = max(0.0, float(duration_ms))
        self._samples.append((self._clock(), duration_ms, self._active_streams()))
        self._ewma = (
            duration_ms
            if len(self._samples) == 1 and self._ewma == 0.0
            else EWMA_ALPHA * duration_ms + (1 - EWMA_ALPHA) * self._ewma
        )

    def begin(self) -> PendingWork:
        """Latency-critical work starts; its ``answered()`` records how long it took."""
        return PendingWork(self)

    @property
    def queue_depth(self) -> int:
        if self._queued is not None:
            return max(0, self._queued())
        return max(0, self._waiting - self.workers)

    def _recent(self) -> list[tuple[float, float, int]]:
        horizon = self._clock() - WINDOW_S
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()
        return list(self._samples)

    def report(self) -> load_pb2.LoadReport:
        recent = self._recent()
        durations = [ms for _, ms, _ in recent]
        return load_pb2.LoadReport(
            stage=self.stage,
            active_streams=self._active_streams(),
            queue_depth=self.queue_depth,
            workers=self.workers,
            recent_ewma_ms=self._ewma if recent else 0.0,
            recent_p90_ms=p90(durations),
            recent_samples=len(recent),
            recent_streams=sum(n for _, _, n in recent) / len(recent) if recent else 0.0,
            draining=self.draining,
            max_streams=self.max_streams,
        )


class LoadServicer(load_pb2_grpc.LoadServiceServicer):
    def __init__(self, tracker: LoadTracker) -> None:
        self._tracker = tracker

    async def GetLoad(  # noqa: N802 - gRPC method name
        self, request: load_pb2.GetLoadRequest, context: grpc.aio.ServicerContext
    ) -> load_pb2.GetLoadResponse:
        return load_pb2.GetLoadResponse(report=self._tracker.report())


SERVICE_NAME = load_pb2.DESCRIPTOR.services_by_name["LoadService"].full_name


def serve_load(server: grpc.aio.Server, tracker: LoadTracker) -> None:
    load_pb2_grpc.add_LoadServiceServicer_to_server(LoadServicer(tracker), server)


def export_gauges(tracker: LoadTracker) -> None:
    """The report's figures as ``voice_<stage>_load_*`` gauges on the default registry."""
    from prometheus_client import Gauge

    name = tracker.stage
    figures: dict[str, tuple[str, Callable[[load_pb2.LoadReport], float]]] = {
        "queue_depth": ("Latency-critical work waiting for a worker", lambda r: r.queue_depth),
        "workers": ("Latency-critical work run at once", lambda r: r.workers),
        "recent_ewma_ms": (
            "Critical step, weighted mean of recent runs (ms)",
            lambda r: r.recent_ewma_ms,
        ),
        "recent_p90_ms": (
            "Critical step, p90 of the recent window (ms)",
            lambda r: r.recent_p90_ms,
        ),
        "recent_samples": ("Runs in the recent window", lambda r: r.recent_samples),
        "draining": ("1 while shutting down gracefully", lambda r: float(r.draining)),
    }
    for figure, (help_text, read) in figures.items():
        gauge = Gauge(f"voice_{name}_load_{figure}", f"{name}: {help_text}")
        gauge.set_function(lambda read=read: float(read(tracker.report())))  # type: ignore[misc]


class PendingWork:
    """One piece of latency-critical work from its start to its first answer (see ``begin``)."""

    def __init__(self, tracker: LoadTracker) -> None:
        self._tracker = tracker
        self._started = time.perf_counter()
        self._open = True
        tracker._waiting += 1

    def answered(self) -> None:
        """The first answer came: the time since the start is recorded (once)."""
        if self._open:
            self._tracker.record((time.perf_counter() - self._started) * 1000)
            self.abandon()

    def on_done(self, _task: object) -> None:
        """A done-callback for the work's task: an unanswered end abandons it."""
        self.abandon()

    def abandon(self) -> None:
        """It ended without an answer (cancelled, failed): nothing is recorded."""
        if self._open:
            self._open = False
            self._tracker._waiting -= 1
