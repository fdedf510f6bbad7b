"""The gauges the chart's alerts and dashboard join: set from one pass's facts, and removed
with the service or window they describe (a gauge must not report something that is gone)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY

from emotivoice_operator import metrics
from emotivoice_operator.desired import desired_state
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.report import Reporter
from emotivoice_operator.reconcile.status import fetch_failing
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings

OWNER = Owner(name="tts-metrics", namespace="ns-metrics", uid="u-1")
NOW = datetime(2026, 3, 2, 8, 50, tzinfo=UTC)  # a Monday, 10 minutes before "morning"


def _spec(*windows: dict[str, Any], fallback: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"source": {"uri": "s3://models/m/", "endpoint": "http://s3:9000",
                             "credentialsSecret": {"name": "c"}}},
        "replicas": {"min": 0, "max": 4},
        "warmPool": {"timeZone": "UTC", "windows": list(windows)},
    }  # fmt: skip
    if fallback:
        spec["fallback"] = {"service": "other"}
    return spec


MORNING = {"name": "morning", "start": "09:00", "end": "12:00", "leadTime": "15m", "replicas": 2}
EVENING = {"name": "evening", "start": "18:00", "end": "20:00", "leadTime": "30m", "replicas": 1}


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(
        name, {"namespace": OWNER.namespace, "name": OWNER.name, **labels}
    )


def _pass(spec: dict[str, Any], ready: int = 1, fetch: int = 0) -> None:
    desired = desired_state(spec, OWNER, NOW, {}, OperatorSettings())
    Reporter(OWNER, lambda *_: None, Memory.from_status({})).pool(
        desired, {"readyReplicas": ready}, fetch
    )


def test_a_pass_sets_ready_max_and_each_windows_lead_and_whether_it_is_warm() -> None:
    _pass(_spec(MORNING, EVENING), ready=2, fetch=1)
    assert _value("emotivoice_ready_replicas") == 2
    assert _value("emotivoice_max_replicas") == 4
    assert _value("emotivoice_fetch_failing_pods") == 1
    # 08:50 is inside morning's 15-minute lead: warm; evening is not.
    assert _value("emotivoice_window_active", window="morning") == 1
    assert _value("emotivoice_window_active", window="evening") == 0
    assert _value("emotivoice_window_lead_seconds", window="morning") == 900
    assert _value("emotivoice_window_lead_seconds", window="evening") == 1800
    # The miss counters exist at 0 before any miss: increase() sees the first one.
    assert _value("emotivoice_window_misses_total", window="evening") == 0
    metrics.forget_service(OWNER.namespace, OWNER.name)


def test_a_window_removed_from_the_spec_loses_its_series() -> None:
    _pass(_spec(MORNING, EVENING))
    _pass(_spec(MORNING))
    assert _value("emotivoice_window_active", window="morning") == 1
    for name in ("emotivoice_window_active", "emotivoice_window_lead_seconds",
                 "emotivoice_window_misses_total", "emotivoice_window_starts_met_total"):  # fmt: skip
        assert _value(name, window="evening") is None, name
    metrics.forget_service(OWNER.namespace, OWNER.name)


def test_a_deleted_service_loses_every_series_and_others_keep_theirs() -> None:
    _pass(_spec(MORNING, fallback=True))
    metrics.WARM_FLOOR.labels(OWNER.namespace, OWNER.name).set(2)
    metrics.COLD_START_SECONDS.labels(OWNER.namespace, OWNER.name).observe(12)
    metrics.READY_REPLICAS.labels(OWNER.namespace, "kept").set(3)
    assert _value("emotivoice_wakes_total") == 0
    metrics.forget_service(OWNER.namespace, OWNER.name)
    for name in ("emotivoice_ready_replicas", "emotivoice_warm_floor_replicas",
                 "emotivoice_cold_start_seconds_count", "emotivoice_wakes_total"):  # fmt: skip
        assert _value(name) is None, name
    assert _value("emotivoice_window_lead_seconds", window="morning") is None
    kept = {"namespace": OWNER.namespace, "name": "kept"}
    assert REGISTRY.get_sample_value("emotivoice_ready_replicas", kept) == 3
    metrics.forget_service(OWNER.namespace, "kept")


def _pod(init: dict[str, Any] | None, ready: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "initContainerStatuses": [{"name": "fetch-model", **init}] if init else [],
    }
    return {"metadata": {"name": "p"}, "status": status}


def test_fetch_failing_counts_pods_whose_last_download_try_failed() -> None:
    failed = {"state": {"terminated": {"exitCode": 3}}}
    backing_off = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"exitCode": 3}}}  # fmt: skip
    retrying = {"state": {"running": {}}, "lastState": {"terminated": {"exitCode": 5}}}
    downloading = {"state": {"running": {}}}
    done = {"state": {"terminated": {"exitCode": 0}}}
    pods = [_pod(failed), _pod(backing_off), _pod(retrying), _pod(downloading), _pod(done),
            _pod(None), _pod(done, ready=True)]  # fmt: skip
    assert fetch_failing(pods) == 3
    assert fetch_failing([]) == 0
