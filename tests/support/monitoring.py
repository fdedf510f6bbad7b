"""The chart's alerts and dashboard as the tests read them: the rules `helm template` renders,
the dashboard's queries with its variables filled in, and the metric names an expression uses
(tests/chart/test_alerts.py, test_dashboard.py; tests/e2e/test_prometheus.py)."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import yaml

from tests.support.cluster import REPO, build_binaries

CHART = REPO / "charts" / "emotivoice-operator"
DASHBOARD = CHART / "files" / "dashboard.json"
# helm's default cluster version (1.20) is older than the chart allows.
KUBE_VERSION = "1.34.4"
# Every metric of ours is named emotivoice_*; no label name or value here is.
_METRIC = re.compile(r"\bemotivoice_[a-z0-9_]+\b")
# Grafana's own interval variables, as a short range would fill them.
GRAFANA_RANGES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def render_chart(*values: str) -> list[dict[str, Any]]:
    helm = build_binaries("helm") / "helm"
    sets = [arg for v in values for arg in ("--set", v)]
    out = subprocess.run(
        [str(helm), "template", "evo", str(CHART), "--kube-version", KUBE_VERSION, *sets],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def render_rules(*values: str) -> dict[str, Any]:
    """The PrometheusRule's spec (its ``groups``) as the chart renders it."""
    docs = render_chart("metrics.prometheusRule.enabled=true", *values)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    return rule["spec"]


def alert_rules(*values: str) -> list[dict[str, Any]]:
    return [r for g in render_rules(*values)["groups"] for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries(variables: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title, expression) of every target, ``$name`` variables and Grafana's interval
    variables replaced (the longest names first, so $service never eats $service_x)."""
    values = {**GRAFANA_RANGES, **{f"${k}": v for k, v in variables.items()}}
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(values, key=len, reverse=True):
                expr = expr.replace(name, values[name])
            out.append((panel["title"], expr))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (histogram series by their own names: _bucket)."""
    return set(_METRIC.findall(expr))
