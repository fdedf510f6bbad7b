"""The chart's Grafana dashboard: valid JSON whose every panel queries something, with the
namespace and service variables, every query parsed by the real promtool, and the chart
rendering it into a ConfigMap the Grafana sidecar picks up (only when asked)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.support.cluster import build_binaries
from tests.support.monitoring import DASHBOARD, dashboard, dashboard_queries, render_chart


def test_the_dashboard_parses_and_every_panel_has_targets() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() and t["refId"] for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "service"} <= variables
    exprs = " ".join(e for _, e in dashboard_queries({}))
    for metric in ("emotivoice_warm_floor_replicas", "emotivoice_ready_replicas",
                   "emotivoice_window_active", "emotivoice_cold_start_phase_seconds_sum",
                   "emotivoice_speech_requests_total", "emotivoice_speech_request_seconds_bucket",
                   "emotivoice_queue_depth", "emotivoice_embedding_cache_hits_total",
                   "emotivoice_embedding_cache_misses_total", "emotivoice_cold_starts_total"):  # fmt: skip
        assert metric in exprs, metric


def test_every_query_parses(tmp_path: Path) -> None:
    """Each query, its variables filled in, as a recording rule: promtool parses it."""
    queries = dashboard_queries({"namespace": "voice", "service": "tts"})
    rules = [{"record": f"dashboard:query{i}", "expr": e} for i, (_, e) in enumerate(queries)]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [str(build_binaries("prometheus", "promtool") / "promtool"), "check", "rules", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_renders_it_for_the_sidecar_only_when_enabled() -> None:
    assert not [d for d in render_chart() if d["kind"] == "ConfigMap"]
    docs = render_chart(
        "dashboard.enabled=true",
        "dashboard.namespace=monitoring",
        "dashboard.annotations.grafana_folder=Speech",
    )
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Speech"}
    (text,) = config_map["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD.read_text(encoding="utf-8"))
