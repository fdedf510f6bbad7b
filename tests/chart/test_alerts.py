"""The chart's alerts, unit-tested with the real promtool on the rules `helm template` renders
(files/alerts.yaml through templates/prometheus-rule.yaml: what users install): every alert fires
on the series that should trigger it and stays silent on a healthy one.

The series carry the labels a real scrape gives (docs/reference/alerts.md): the operator's its
own `namespace` and `name` plus its target's `job`, `pod` and `service` (the operator's metrics
Service: it must take no part in a join); the servers' `namespace`, `service` (the
EmotiVoiceService) and `pod`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import REPO, build_binaries
from tests.support.monitoring import render_rules

NS, NAME = "voice", "tts"
OPERATOR_TARGET = "evo-emotivoice-operator-metrics"
OP = f'namespace="{NS}",name="{NAME}",job="{OPERATOR_TARGET}",pod="evo-op-0",service="{OPERATOR_TARGET}"'
SRV = f'namespace="{NS}",service="{NAME}",job="{NAME}",pod="{NAME}-abc"'
ALERTS = {
    "EmotiVoiceWindowMissed",
    "EmotiVoiceColdStartAboveLead",
    "EmotiVoiceFetchFailing",
    "EmotiVoiceRefusedAtMax",
    "EmotiVoicePoolAtZeroReceivingRequests",
}


def _series(labels: str, values: str, name: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def _alert(name: str, at: str, fired: list[dict[str, str]], value: str = "") -> dict[str, Any]:
    """An alert_rule_test: ``fired`` the label sets expected, [] for none; ``value`` how the
    annotations show the alert's value."""
    notes = RULES[name]["annotations"]
    expected = [{"exp_labels": labels, "exp_annotations": _filled(notes, labels, value)}
                for labels in fired]  # fmt: skip
    return {"eval_time": at, "alertname": name, "exp_alerts": expected}


def _filled(notes: dict[str, str], labels: dict[str, str], value: str) -> dict[str, str]:
    """The annotations as Prometheus expands them for ``labels`` and a value shown as
    ``value`` (the templates used: $labels.X, $value alone or through one function)."""
    out = {}
    for key, text in notes.items():
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
        out[key] = re.sub(r"\{\{ \$value( \| \w+)? \}\}", value, text)
        assert "{{" not in out[key], out[key]
    return out


RULES: dict[str, dict[str, Any]] = {}


def _cases() -> list[dict[str, Any]]:
    """Each alert firing on one series and silent on its healthy twin (another service)."""
    windows = {"window": "morning"}
    svc = {"namespace": NS, "name": NAME}
    op_ok = OP.replace(f'name="{NAME}"', 'name="calm"')
    srv_ok = SRV.replace(f'service="{NAME}"', 'service="calm"')
    tests: list[dict[str, Any]] = []

    # A window missed at minute 10: fires within the lookback, silent where only starts met.
    tests.append({
        "interval": "1m",
        "input_series": [
            _series(f'{OP},window="morning"', "0x9 1x50", "emotivoice_window_misses_total"),
            _series(f'{op_ok},window="morning"', "0x60", "emotivoice_window_misses_total"),
        ],
        "alert_rule_test": [
            _alert("EmotiVoiceWindowMissed", "5m", []),
            _alert("EmotiVoiceWindowMissed", "20m",
                   [{**svc, **windows, "severity": "warning"}]),
        ],
    })  # fmt: skip

    # Cold starts of ~100 s each (4 in an hour) against a 60 s lead: fires for that window only;
    # the healthy service's starts (~8 s) are under its 900 s lead.
    buckets = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
    series = []
    for le in (*buckets, "+Inf"):
        slow = "0+0x10 0+1x4 4x60" if le == "+Inf" or float(le) >= 120 else "0x80"
        fast = "0+0x10 0+1x4 4x60" if le == "+Inf" or float(le) >= 10 else "0x80"
        series.append(_series(f'{OP},le="{le}"', slow, "emotivoice_cold_start_seconds_bucket"))
        series.append(_series(f'{op_ok},le="{le}"', fast, "emotivoice_cold_start_seconds_bucket"))
    series += [
        _series(OP, "0+0x10 0+1x4 4x60", "emotivoice_cold_start_seconds_count"),
        _series(op_ok, "0+0x10 0+1x4 4x60", "emotivoice_cold_start_seconds_count"),
        _series(f'{OP},window="morning"', "60x80", "emotivoice_window_lead_seconds"),
        _series(f'{OP},window="evening"', "900x80", "emotivoice_window_lead_seconds"),
        _series(f'{op_ok},window="morning"', "900x80", "emotivoice_window_lead_seconds"),
    ]
    tests.append({
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            _alert("EmotiVoiceColdStartAboveLead", "12m", []),  # fewer than 3 starts yet
            # p95 interpolated in the 90-120 s bucket, shown as Prometheus humanizes it.
            _alert("EmotiVoiceColdStartAboveLead", "45m",
                   [{**svc, **windows, "severity": "warning"}], "1m 58s"),
        ],
    })  # fmt: skip

    # A pod's download failing for 10 minutes; the healthy service's never.
    tests.append({
        "interval": "1m",
        "input_series": [
            _series(OP, "0x5 1x20", "emotivoice_fetch_failing_pods"),
            _series(op_ok, "0x25", "emotivoice_fetch_failing_pods"),
        ],
        "alert_rule_test": [
            _alert("EmotiVoiceFetchFailing", "8m", []),  # not yet for 5m
            _alert("EmotiVoiceFetchFailing", "15m", [{**svc, "severity": "critical"}], "1"),
        ],
    })  # fmt: skip

    # 10 requests/min, 2 of them 503, with 3 of 3 replicas Ready: fires. The healthy service
    # refuses as many with 1 of 3 Ready (the HPA can still grow it), and a third service at
    # its max refuses none.
    def refusing(labels: str) -> list[dict[str, str]]:
        return [
            _series(f'{labels},code="200"', "0+8x30", "emotivoice_speech_requests_total"),
            _series(f'{labels},code="503"', "0+2x30", "emotivoice_speech_requests_total"),
        ]

    srv_full = SRV.replace(f'service="{NAME}"', 'service="full"')
    op_full = OP.replace(f'name="{NAME}"', 'name="full"')
    tests.append({
        "interval": "1m",
        "input_series": [
            *refusing(SRV), *refusing(srv_ok),
            _series(f'{srv_full},code="200"', "0+10x30", "emotivoice_speech_requests_total"),
            _series(OP, "3x30", "emotivoice_ready_replicas"),
            _series(OP, "3x30", "emotivoice_max_replicas"),
            _series(op_ok, "1x30", "emotivoice_ready_replicas"),
            _series(op_ok, "3x30", "emotivoice_max_replicas"),
            _series(op_full, "3x30", "emotivoice_ready_replicas"),
            _series(op_full, "3x30", "emotivoice_max_replicas"),
        ],
        "alert_rule_test": [
            _alert("EmotiVoiceRefusedAtMax", "4m", []),
            _alert("EmotiVoiceRefusedAtMax", "20m", [{**svc, "severity": "warning"}], "20%"),
        ],
    })  # fmt: skip

    # A request woke the pool at minute 10; the healthy service was never woken.
    tests.append({
        "interval": "1m",
        "input_series": [
            _series(OP, "0x9 1x60", "emotivoice_wakes_total"),
            _series(op_ok, "0x70", "emotivoice_wakes_total"),
        ],
        "alert_rule_test": [
            _alert("EmotiVoicePoolAtZeroReceivingRequests", "5m", []),
            _alert("EmotiVoicePoolAtZeroReceivingRequests", "15m", [{**svc, "severity": "info"}]),
        ],
    })  # fmt: skip
    assert {t["alertname"] for case in tests for t in case["alert_rule_test"]} == ALERTS
    return tests


def _promtool_test(tmp_path: Path, spec: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [str(build_binaries("prometheus", "promtool") / "promtool"), "test", "rules", "test.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rendered_rules_pass_promtool_check(tmp_path: Path) -> None:
    spec = render_rules()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [str(build_binaries("prometheus", "promtool") / "promtool"), "check", "rules",
         str(tmp_path / "rules.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["alert"] for g in spec["groups"] for r in g["rules"]} == ALERTS


def test_every_alert_fires_on_its_trigger_and_stays_silent_when_healthy(tmp_path: Path) -> None:
    spec = render_rules()
    RULES.update({r["alert"]: r for g in spec["groups"] for r in g["rules"]})
    _promtool_test(tmp_path, spec, _cases())


def test_every_alert_names_the_service_and_links_its_runbook() -> None:
    spec = render_rules("metrics.prometheusRule.runbookBaseUrl=https://docs.example/t.md")
    anchors = _troubleshooting_anchors()
    for rule in (r for g in spec["groups"] for r in g["rules"]):
        notes = rule["annotations"]
        for key in ("summary", "description"):
            assert "$labels.namespace" in notes[key] and "$labels.name" in notes[key], rule["alert"]
        url = notes["runbook_url"]
        assert url.startswith("https://docs.example/t.md#"), url
        anchor = url.partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in troubleshooting.md"
        assert f"docs/troubleshooting.md#{anchor}" in notes["description"]
    bare = render_rules()
    assert not any("runbook_url" in r["annotations"] for g in bare["groups"] for r in g["rules"])


def test_thresholds_and_switches_come_from_the_values() -> None:
    spec = render_rules(
        "metrics.prometheusRule.alerts.refusedAtMax.refusedShare=0.2",
        "metrics.prometheusRule.alerts.fetchFailing.for=30m",
        "metrics.prometheusRule.alerts.poolAtZeroReceivingRequests.enabled=false",
        "metrics.prometheusRule.alerts.windowMissed.severity=critical",
    )
    rules = {r["alert"]: r for g in spec["groups"] for r in g["rules"]}
    assert "EmotiVoicePoolAtZeroReceivingRequests" not in rules
    assert ") > 0.2\n" in rules["EmotiVoiceRefusedAtMax"]["expr"]
    assert rules["EmotiVoiceFetchFailing"]["for"] == "30m"
    assert rules["EmotiVoiceWindowMissed"]["labels"]["severity"] == "critical"


def _troubleshooting_anchors() -> set[str]:
    from tests.docs.test_links import _anchors

    return _anchors(REPO / "docs" / "troubleshooting.md")
