"""The Reconciler's clock at a window edge, in process, against a real API server.

Why: every other test of windows on a cluster places them relative to the real clock, far from
their edges, so none shows that a pass reads the time only from ``Reconciler.clock``; a pass
that called ``datetime.now()`` somewhere would still pass them. Here one Reconciler runs with a
fixed clock one minute before a window's pre-warm lead begins and then one minute after, on
a date years away: what it writes to the API server (the HPA's floor, status.warmFloor and
activeWindow, nextWindow, the condition's transition time, the next time edge) can only come
from that clock. Run in process (no operator subprocess, no kopf) so the test chooses the
instant; the snapshot is built from the API with the labels the operator's watches select,
as its indexes would hold it (tests/support/in_process.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import config

from emotivoice_operator.reconcile.reconciler import Outcome, Reconciler
from emotivoice_operator.settings import OperatorSettings
from tests.support.cluster import KWOK_TOLERATION, Cluster
from tests.support.in_process import snapshot
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import install_crd
from tests.support.workload import server_workload

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

NAME = "tts-clock"
# valid_resource's window: Mondays 09:00-12:00 in Asia/Shanghai (UTC+8, no DST), 2 replicas
# over replicas.min 1; with a 10m lead it is warm from 08:50 local, 00:50 UTC.
# 2030-01-07 is a Monday.
WARM_FROM = datetime(2030, 1, 7, 0, 50, tzinfo=UTC)
BEFORE = WARM_FROM - timedelta(minutes=1)
INSIDE = WARM_FROM + timedelta(minutes=1)
NEXT_WINDOW = "morning Mon 2030-01-07 09:00 Asia/Shanghai"


def _hpa_min(cluster: Cluster, namespace: str) -> int:
    return cluster.get_json("hpa", NAME, "-n", namespace)["spec"]["minReplicas"]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_a_pass_reads_the_time_from_its_clock_at_a_window_edge(
    cluster: Cluster, namespace: str
) -> None:
    install_crd(cluster)
    body = valid_resource(NAME)
    body["spec"]["warmPool"]["windows"][0]["leadTime"] = "10m"
    cluster.apply(body, namespace=namespace)
    api = config.new_client_from_config(str(cluster.kubeconfig))
    settings = OperatorSettings(
        server_image="emotivoice/server:test",
        extra_tolerations=(KWOK_TOLERATION,),
        ask_servers=False,  # no server answers here; the pods' states are enough
    )
    reading = [BEFORE]  # what the clock says; moved on between the two passes
    reconciler = Reconciler(api, settings, clock=lambda: reading[0])
    events: list[tuple[str, str, str]] = []

    def post(type_: str, reason: str, message: str) -> None:
        events.append((type_, reason, message))

    # One minute before the lead begins: replicas.min holds, the window is next.
    outcome = reconciler.reconcile(snapshot(cluster, namespace, NAME), post)
    assert isinstance(outcome, Outcome)
    assert outcome.next_edge == WARM_FROM  # the timer would come back exactly at the edge
    status = cluster.get_json("evs", NAME, "-n", namespace)["status"]
    assert (status["warmFloor"], status["activeWindow"]) == (1, "")
    assert status["nextWindow"] == NEXT_WINDOW
    assert status["nextWindowStart"] == "2030-01-07T01:00:00Z"
    assert _condition(status, "WarmWindowActive")["status"] == "False"
    assert _condition(status, "WarmWindowActive")["lastTransitionTime"] == "2030-01-07T00:49:00Z"
    assert _hpa_min(cluster, namespace) == 1
    assert any(reason == "Created" for _, reason, _ in events)

    # One minute after: the window's replicas are the floor, and the workload is raised to it
    # at once (the watches' copy shows it at 1).
    reading[0] = INSIDE
    events.clear()
    outcome = reconciler.reconcile(snapshot(cluster, namespace, NAME), post)
    assert isinstance(outcome, Outcome)
    assert outcome.next_edge == datetime(2030, 1, 7, 1, 0, tzinfo=UTC)  # the start itself
    status = cluster.get_json("evs", NAME, "-n", namespace)["status"]
    assert (status["warmFloor"], status["activeWindow"]) == (2, "morning")
    assert status["nextWindow"] == NEXT_WINDOW  # still ahead: the lead began, not the window
    active = _condition(status, "WarmWindowActive")
    assert (active["status"], active["lastTransitionTime"]) == ("True", "2030-01-07T00:51:00Z")
    assert _hpa_min(cluster, namespace) == 2
    assert server_workload(cluster, namespace, NAME)["spec"]["replicas"] == 2
    floor_events = [m for _, reason, m in events if reason == "WarmFloor"]
    assert floor_events == [f"scaled {NAME} from 1 to the warm floor 2"], json.dumps(events)
