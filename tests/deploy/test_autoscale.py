"""The autoscaling manifests (deploy/k8s/overlays/autoscale, deploy/k8s/prometheus-adapter) and
their check (deploy/autoscale.py): metric names exist in the code and the adapter serves them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from deploy import autoscale, check

pytestmark = pytest.mark.deploy

ROOT = check.ROOT
K8S = ROOT / "deploy" / "k8s"


def needs_kubectl() -> None:
    try:
        check.tool("kubectl")
    except check.ToolMissingError as error:
        pytest.skip(str(error))


def docs(path: str) -> list[dict[str, Any]]:
    needs_kubectl()
    return [d for d in yaml.safe_load_all(check.render(K8S / path)) if d]


def test_every_stage_scales_on_the_p95_latency_and_its_own_load() -> None:
    rendered = docs("overlays/autoscale")
    metrics = autoscale.hpa_metrics(rendered)
    for stage in ("stt", "llm", "tts", "gateway"):
        mine = {(kind, name) for hpa, kind, name in metrics if hpa == stage}
        assert ("external", "voice_turn_latency_p95_seconds") in mine, stage
        assert any(kind == "custom" for kind, _ in mine), stage
    hpas = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"}
    # The base's slow scale-down of the gateway survives the overlay's patch.
    assert hpas["gateway"]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 900


def test_the_real_rules_name_only_metrics_the_code_defines() -> None:
    patterns = autoscale.code_metric_patterns(ROOT)
    adapter = docs("prometheus-adapter")
    overlays = {"autoscale": docs("overlays/autoscale")}
    assert autoscale.autoscale_problems(adapter, overlays, patterns) == []


def test_code_metric_patterns_read_literals_and_stage_templates() -> None:
    patterns = autoscale.code_metric_patterns(ROOT)
    assert autoscale.defined("voice_gateway_turn_latency_seconds_bucket", patterns)
    assert autoscale.defined("voice_llm_active_streams", patterns)  # f"voice_{name}_..."
    assert autoscale.defined("voice_tts_load_queue_depth", patterns)
    assert not autoscale.defined("voice_tts_load_queue_length", patterns)


def _rules(adapter: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    broken = copy.deepcopy(adapter)
    doc = next(d for d in broken if d["kind"] == "ConfigMap")
    return broken, doc


def test_a_series_the_code_does_not_define_fails() -> None:
    adapter, doc = _rules(docs("prometheus-adapter"))
    doc["data"]["config.yaml"] = doc["data"]["config.yaml"].replace(
        "voice_llm_load_queue_depth{", "voice_llm_queue_length{"
    )
    problems = autoscale.autoscale_problems(adapter, {}, autoscale.code_metric_patterns(ROOT))
    assert any("voice_llm_queue_length" in p for p in problems)


def test_an_hpa_metric_the_adapter_does_not_serve_fails() -> None:
    overlay = docs("overlays/autoscale")
    hpa = next(d for d in overlay if d["kind"] == "HorizontalPodAutoscaler")
    external = next(m for m in hpa["spec"]["metrics"] if m["type"] == "External")
    external["external"]["metric"]["name"] = "voice_turn_latency_p99_seconds"
    problems = autoscale.autoscale_problems(
        docs("prometheus-adapter"), {"autoscale": overlay}, autoscale.code_metric_patterns(ROOT)
    )
    assert any("voice_turn_latency_p99_seconds" in p for p in problems)


def test_rules_that_are_not_yaml_fail() -> None:
    adapter, doc = _rules(docs("prometheus-adapter"))
    doc["data"]["config.yaml"] = "rules: [unclosed"
    assert autoscale.autoscale_problems(adapter, {}, [])[0].startswith("prometheus-adapter:")
