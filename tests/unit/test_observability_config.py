"""The alert rules and the dashboard only name metrics the gateway really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from gateway.metrics import GatewayMetrics

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bvoice_[a-z_]+")


def exported_names() -> set[str]:
    metrics = GatewayMetrics()
    metrics.turns.labels("complete").inc()
    metrics.errors.labels("x").inc()
    metrics.early_starts.labels("confirmed").inc()
    metrics.session_states.labels("listening").inc()
    metrics.observe_waterfall({"first_audio_sent": 500.0, "llm_start": 100.0})
    text = generate_latest(metrics.registry).decode()
    return {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("voice_")
    }


def test_every_alert_expression_uses_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = exported_names()
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {"VoiceTurnLatencyHigh", "VoiceErrorRateHigh"}
    for alert in alerts:
        used = set(METRIC.findall(alert["expr"]))
        assert used and used <= names, f"{alert['alert']} uses {used - names}"
    latency = next(a for a in alerts if a["alert"] == "VoiceTurnLatencyHigh")
    assert "0.95" in latency["expr"] and "> 0.8" in latency["expr"]


def test_every_dashboard_query_uses_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "voice-agent-dashboard.json").read_text())
    names = exported_names()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 6
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used and used <= names, f"{expr} uses {used - names}"
