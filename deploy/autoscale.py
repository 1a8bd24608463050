"""The autoscaling checks (``make deploy-check``, check "autoscale"): the Prometheus adapter's
rules (deploy/k8s/prometheus-adapter) render and validate, every series they read is a metric
the code defines, and every HPA metric of any overlay is one the adapter serves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Problems = list[str]
CODE_DIRS = ("gateway", "services", "voice")
# What prometheus_client appends to a metric's name in its series.
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")
_LITERAL = re.compile(r"""f?["'](voice_[a-z0-9_{}.]+)["']""")


_WORD = re.compile(r"""["']([a-z0-9_]+)["']""")


@dataclass(frozen=True)
class MetricName:
    """A name the code spells: a literal, or an f-string template such as
    ``voice_{name}_load_{figure}`` whose first placeholder is a stage (one lowercase word) and
    whose others must be string literals of the same file (the figures' dict keys)."""

    pattern: re.Pattern[str]
    words: frozenset[str]

    def matches(self, name: str) -> bool:
        match = self.pattern.fullmatch(name)
        return match is not None and all(g in self.words for g in match.groups()[1:])


def code_metric_patterns(root: Path, dirs: Iterable[str] = CODE_DIRS) -> list[MetricName]:
    """Every ``voice_*`` name the code's Python sources spell."""
    found = set()
    for directory in dirs:
        for path in (root / directory).rglob("*.py"):
            text = path.read_text()
            words = frozenset(_WORD.findall(text))
            for name in _LITERAL.findall(text):
                parts = re.split(r"\{[^}]*\}", name)
                groups = ["([a-z]+)"] + ["([a-z0-9_]+)"] * (len(parts) - 2)
                regex = re.escape(parts[0]) + "".join(
                    g + re.escape(p) for g, p in zip(groups, parts[1:], strict=False)
                )
                found.add(MetricName(re.compile(regex), words if len(parts) > 2 else frozenset()))
    return sorted(found, key=lambda m: m.pattern.pattern)


def defined(series: str, names: list[MetricName]) -> bool:
    return any(n.matches(series.removesuffix(suffix)) for n in names for suffix in SUFFIXES)


def adapter_rules(docs: list[dict[str, Any]]) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and "config.yaml" in doc.get("data", {}):
            return dict(yaml.safe_load(doc["data"]["config.yaml"]))
    raise ValueError("no ConfigMap with config.yaml (the adapter's rules)")


def series_and_exposed(rules: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(series name -> its kind, exposed name -> its kind); kinds: custom or external."""
    series: dict[str, str] = {}
    exposed: dict[str, str] = {}
    for key, kind in (("rules", "custom"), ("externalRules", "external")):
        for rule in rules.get(key, []):
            name = rule["seriesQuery"].split("{", 1)[0].strip()
            series[name] = kind
            exposed[rule["name"]["as"]] = kind
    return series, exposed


def hpa_metrics(docs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(HPA name, kind custom|external, metric name) for every Pods/Object/External metric."""
    found = []
    for doc in docs:
        if doc.get("kind") != "HorizontalPodAutoscaler":
            continue
        for metric in doc["spec"].get("metrics", []):
            source = {"Pods": "pods", "Object": "object", "External": "external"}.get(
                metric["type"]
            )
            if source:
                kind = "external" if source == "external" else "custom"
                found.append((doc["metadata"]["name"], kind, metric[source]["metric"]["name"]))
    return found


def autoscale_problems(
    adapter_docs: list[dict[str, Any]],
    overlays: dict[str, list[dict[str, Any]]],
    patterns: list[MetricName],
) -> Problems:
    problems: Problems = []
    try:
        series, exposed = series_and_exposed(adapter_rules(adapter_docs))
    except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        return [f"prometheus-adapter: {error}"]
    for name in series:
        if not defined(name, patterns):
            problems.append(f"prometheus-adapter: series {name} is not a metric the code defines")
    for label, docs in overlays.items():
        for hpa, kind, name in hpa_metrics(docs):
            if exposed.get(name) != kind:
                problems.append(
                    f"{label}: HPA {hpa} reads {kind} metric {name}, which the adapter's "
                    "rules do not serve"
                )
    return problems


def check_autoscale(root: Path) -> Problems:
    from deploy import check

    adapter_dir = root / "deploy" / "k8s" / "prometheus-adapter"
    try:
        adapter = check.render(adapter_dir)
        rendered = {o.name: check.render(o) for o in check.overlays(root / "deploy" / "k8s")}
    except ValueError as error:
        return [str(error)]
    problems = check.validate_schema({"prometheus-adapter": adapter})
    docs = {
        f"overlay-{name}": [d for d in yaml.safe_load_all(text) if d]
        for name, text in rendered.items()
    }
    adapter_docs = [d for d in yaml.safe_load_all(adapter) if d]
    return problems + autoscale_problems(adapter_docs, docs, code_metric_patterns(root))
