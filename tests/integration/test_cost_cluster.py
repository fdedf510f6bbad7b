"""The cost of a window (status.cost) on a real API server, with passes at instants the test
chooses (tests/support/in_process.py): its warm replica-seconds must be the Ready server pods
the cluster had, integrated over the window's lead and occurrence, pass by pass; an operator
restart (a fresh Reconciler, which only has the status) states the hour it was away as
unaccounted and keeps the totals; the operator's counters say the same as the status.

What this cannot show: served seconds and lead requests. Those come from the servers' /metrics,
and the pods here run on KWOK's simulated nodes, which no container runtime runs, so the
operator never contacts them (tuning/counters.py); they stay 0 here and are covered by
tests/operator/test_cost.py with the real server's exposition. The pods' Ready times are the
real clock's and the passes' clock is in 2030, so every Ready pod counts from the pass before.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from tests.support.cluster import Cluster
from tests.support.in_process import InProcess
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import install_crd
from tests.support.workload import pod_ready, server_pods

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NAME = "tts-cost"
# valid_resource's window, moved to the weekday three days after today's (real clock, Asia/
# Shanghai): 09:00-12:00 (01:00-04:00Z), 2 replicas over replicas.min 1; with a 10m lead it is
# warm from 00:50Z. The pods' Ready times are the real clock's, so on the window's own weekday
# and hours a real occurrence would hold them and count a second occurrence (it failed on a
# Monday at 01:05Z). 2030-01-07 is a Monday.
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY = (datetime.now(ZoneInfo("Asia/Shanghai")).weekday() + 3) % 7
START = datetime(2030, 1, 7 + WEEKDAY, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=3)
WARM_FROM = START - timedelta(minutes=10)


@pytest.fixture
def cache_volume(cluster: Cluster, namespace: str) -> Iterator[None]:
    """A volume for the service's Shared cache claim (no provisioner here): its pods can be
    scheduled. Cluster-scoped, so deleted afterwards."""
    name = f"{namespace}-{NAME}"
    cluster.apply(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                  "hostPath": {"path": f"/tmp/{name}"},
                  "claimRef": {"namespace": namespace, "name": f"{NAME}-model"}}}
    )  # fmt: skip
    yield
    cluster.kubectl("delete", "pv", name, "--wait=false", check=False)


def test_warm_replica_seconds_are_the_ready_pods_the_cluster_had(
    cluster: Cluster, namespace: str, cache_volume: None
) -> None:
    install_crd(cluster)
    body = valid_resource(NAME)
    body["spec"]["model"]["cache"] = {"scope": "Shared"}  # one claim, cache_volume's
    body["spec"]["warmPool"]["windows"][0]["leadTime"] = "10m"
    body["spec"]["warmPool"]["windows"][0]["days"] = [DAYS[WEEKDAY]]
    cluster.apply(body, namespace=namespace)
    op = InProcess(cluster, namespace, WARM_FROM - timedelta(hours=1))
    op.until(NAME, lambda s: s.get("readyReplicas") == 1, "replicas.min's pod Ready")
    assert op.status(NAME)["cost"]["windows"]["morning"]["warmReplicaSeconds"] == 0

    op.now = WARM_FROM  # the lead begins: the floor rises to 2 while the clock stands still
    op.until(NAME, lambda s: s.get("readyReplicas") == 2, "the window's pods Ready")

    expected = 0.0
    last = op.now
    ready = _ready(cluster, namespace)
    for instant in (WARM_FROM + timedelta(minutes=5), START, START + timedelta(hours=1)):
        op.now = instant
        op.reconcile(NAME)
        expected += ready * (instant - last).total_seconds()
        last, ready = instant, _ready(cluster, namespace)
        assert _morning(op)["warmReplicaSeconds"] == pytest.approx(expected)
    assert expected == 2 * (600 + 3600)

    # The operator restarts an hour later: the new process has only the status.
    op = InProcess(cluster, namespace, START + timedelta(hours=2))
    op.reconcile(NAME)
    morning = _morning(op)
    assert morning["warmReplicaSeconds"] == pytest.approx(expected)
    assert morning["unaccountedSeconds"] == 3600
    last, ready = op.now, _ready(cluster, namespace)

    op.now = END + timedelta(minutes=1)  # the end, a minute late: that minute is nobody's
    op.reconcile(NAME)
    expected += ready * (END - last).total_seconds()
    morning = _morning(op)
    assert morning["warmReplicaSeconds"] == pytest.approx(expected)
    assert morning["occurrences"] == 1
    assert morning["last"]["start"] == START.isoformat().replace("+00:00", "Z")
    assert morning["last"]["warmReplicaSeconds"] == morning["warmReplicaSeconds"]
    # No server was read (simulated pods) and no start was under way in 2030.
    assert (morning["servedReplicaSeconds"], morning["leadRequests"]) == (0, 0)
    assert morning["coldStarts"] == op.status(NAME)["coldStarts"].get("inWindow", 0) == 0
    assert "counters" not in op.status(NAME)["cost"]

    # What the metrics counted across both "processes" is what status says.
    labels = {"namespace": namespace, "name": NAME, "window": "morning"}
    warm = REGISTRY.get_sample_value("emotivoice_window_warm_replica_seconds_total", labels)
    away = REGISTRY.get_sample_value("emotivoice_window_unaccounted_seconds_total", labels)
    assert (warm, away) == (pytest.approx(expected), 3600)

    # Later passes outside the window write nothing for it.
    before = op.status(NAME)["cost"]
    op.now = END + timedelta(hours=2)
    op.reconcile(NAME)
    assert op.status(NAME)["cost"]["accountedAt"] in (
        before["accountedAt"],
        op.now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),  # the pods changed
    )
    assert _morning(op)["warmReplicaSeconds"] == pytest.approx(expected)


def _ready(cluster: Cluster, namespace: str) -> int:
    """The server pods Ready now, as the cluster has them."""
    return sum(
        pod_ready(p) and not p["metadata"].get("deletionTimestamp")
        for p in server_pods(cluster, namespace, NAME)
    )


def _morning(op: InProcess) -> dict[str, float]:
    return op.status(NAME)["cost"]["windows"]["morning"]
