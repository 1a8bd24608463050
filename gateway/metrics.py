"""The gateway's Prometheus metrics, served at ``/metrics``.

Latency histograms come from the same turn timeline as the logs, the ``turn_complete`` event
and the spans, so every view of a turn agrees.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets around the product's goal (800 ms) with room for slow machines.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2, 3, 5, 10)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("voice_gateway_sessions", "Open client sessions", registry=r)
        self.session_states = Gauge(
            "voice_gateway_session_state", "Sessions in each state", ["state"], registry=r
        )
        self.turns = Counter(
            "voice_gateway_turns", "Agent turns by how they ended", ["outcome"], registry=r
        )
        self.interruptions = Counter(
            "voice_gateway_interruptions", "Agent turns cut short by the user", registry=r
        )
        self.barge_in = Histogram(
            "voice_gateway_barge_in_seconds",
            "From the barge-in decision to the agent's turn stopped and `interrupted` sent",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.early_starts = Counter(
            "voice_gateway_early_starts",
            "Turns started at the user's pause, by what became of them",
            ["result"],
            registry=r,
        )
        self.errors = Counter(
            "voice_gateway_errors", "Errors sent to clients, by code", ["code"], registry=r
        )
        self.end_to_end = Histogram(
            "voice_gateway_turn_latency_seconds",
            "End of user speech to the first agent audio sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.admissions = Counter(
            "voice_sessions_admitted",
            "New sessions by the admission's outcome: admitted, held, over_budget, at_capacity, "
            "hold_timeout",
            ["outcome"],
            registry=r,
        )
        self.predicted_latency = Gauge(
            "voice_gateway_admission_predicted_seconds",
            "The predicted p90 turn latency of one more session, at the last admission",
            registry=r,
        )
        self.stage = Histogram(
            "voice_gateway_stage_seconds",
            "Each moment of a turn, measured from the end of user speech",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def observe_waterfall(self, waterfall: dict[str, float]) -> None:
        for stage, ms in waterfall.items():
            if stage not in ("audio_received", "total"):
                self.stage.labels(stage).observe(max(ms, 0.0) / 1000)
        if "first_audio_sent" in waterfall:
            self.end_to_end.observe(waterfall["first_audio_sent"] / 1000)
