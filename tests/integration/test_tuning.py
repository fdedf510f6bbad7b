"""Tuning warm pools on a real control plane: schedule misses, cold starts by phase, and the
learned lead moving a pre-warm CronJob.

KWOK marks a scheduled pod Ready at once, so what holds a start back here is the one thing a
simulated node still waits for: a volume. A service whose cache claim has no PersistentVolume
keeps its pods Pending (the scheduler refuses unbound claims) until the test creates one: a
startup that exceeds the lead, whenever the test decides.

The passes run in process at a clock the test sets (tests/support/in_process.py, as
test_reconcile_clock does): the pass that judges a window's start runs at that start, not when
the real clock and an operator's timer get there (waiting for them flaked: under load the
judging pass once came only with the horizon, 20 timer periods later). The pods' times stay the
API server's; a window whose judgement reads them is placed on the real clock (a whole minute
just before the test began, so pods Ready now are late by real seconds), the others on a date
years away at a time of day twelve hours off (no real CronJob fires during a test).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.cluster import Cluster
from tests.support.in_process import InProcess
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import install_crd, wait_for
from tests.support.timestamps import instant
from tests.support.workload import server_pods

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


@pytest.fixture
def volumes(cluster: Cluster) -> Iterator[list[str]]:
    """PersistentVolumes the test creates (cluster-scoped: deleted afterwards by name)."""
    names: list[str] = []
    yield names
    for name in names:
        cluster.kubectl("delete", "pv", name, "--wait=false", check=False)


def bind_cache(cluster: Cluster, volumes: list[str], namespace: str, service: str) -> None:
    """A volume for the service's cache claim: its pods can now be scheduled."""
    name = f"{namespace}-{service}"
    volumes.append(name)
    cluster.apply(
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
         "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                  "hostPath": {"path": f"/tmp/{name}"},
                  "claimRef": {"namespace": namespace, "name": f"{service}-model"}}}
    )  # fmt: skip


def service(
    name: str, windows: list[dict[str, Any]], minimum: int = 0, **pool: Any
) -> dict[str, Any]:
    body = valid_resource(name)
    # One claim NAME-model (bind_cache's volume is for it): the default scope, PerReplica, would
    # ask for a claim per replica.
    body["spec"]["model"].setdefault("cache", {})["scope"] = "Shared"
    body["spec"]["replicas"] = {"min": minimum, "max": 4}
    body["spec"]["warmPool"] = {"timeZone": "UTC", "windows": windows, **pool}
    return body


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def window(start: datetime, lead: str) -> dict[str, Any]:
    """A daily UTC window "peak" of an hour from ``start``'s time of day, 2 replicas."""
    return {"name": "peak", "start": hhmm(start), "end": hhmm(start + timedelta(hours=1)),
            "leadTime": lead, "replicas": 2}  # fmt: skip


def far_start() -> datetime:
    """A whole minute on a date years away, at a time of day twelve hours from now."""
    t = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
    return t.replace(year=2030, month=1, day=7)


def pods_waiting(cluster: Cluster, namespace: str, service: str, seconds: float) -> bool:
    """Both server pods exist and were created at least ``seconds`` ago (API time)."""
    created = [
        datetime.fromisoformat(p["metadata"]["creationTimestamp"])
        for p in server_pods(cluster, namespace, service)
    ]
    return len(created) == 2 and all(
        datetime.now(UTC) - c >= timedelta(seconds=seconds) for c in created
    )


def test_a_window_that_cannot_be_met_is_a_miss_and_one_that_is_met_is_not(
    cluster: Cluster, namespace: str, volumes: list[str]
) -> None:
    install_crd(cluster)
    # tts-late: its window opened at the whole minute at least 2 s before now, on the real clock.
    late_start = (datetime.now(UTC) - timedelta(seconds=2)).replace(second=0, microsecond=0)
    # tts-met: its window opens years away; its pods, Ready now, are Ready well before it.
    met_start = far_start()
    passes = InProcess(cluster, namespace, met_start)
    bind_cache(cluster, volumes, namespace, "tts-met")
    cluster.apply(service("tts-met", [window(met_start, "5m")]), namespace=namespace)
    cluster.apply(service("tts-late", [window(late_start, "5m")]), namespace=namespace)  # no volume

    # Two minutes before each start, in its 5-minute lead: both floors rise to 2 at once.
    passes.now = met_start - timedelta(minutes=2)
    passes.until("tts-met", lambda s: s.get("readyReplicas") == 2,
                 what="the met service's 2 replicas Ready before its window")  # fmt: skip
    passes.now = late_start - timedelta(minutes=2)
    passes.reconcile("tts-late")
    late = passes.status("tts-late")
    assert late.get("readyReplicas", 0) == 0 and late["warmFloor"] == 2

    # Each window opens (a second later, the pass that judges it): the late service is 2 short.
    passes.now = late_start + timedelta(seconds=1)
    passes.reconcile("tts-late")
    misses = passes.status("tts-late")["misses"]
    assert misses["count"] == 1
    [miss] = misses["recent"]
    assert (miss["window"], miss["required"], miss["ready"], miss["short"], miss["open"]) == (
        "peak", 2, 0, 2, True,
    )  # fmt: skip
    assert miss["at"] == late_start.isoformat().replace("+00:00", "Z")
    [(kind, message)] = passes.reasons("tts-late", "WindowMissed")
    assert kind == "Warning" and "with 0 of 2 replicas Ready (2 short)" in message

    passes.now = met_start + timedelta(seconds=1)
    passes.reconcile("tts-met")
    met = passes.status("tts-met")["misses"]
    assert (met["met"], met["count"], met["recent"]) == (1, 0, [])
    assert passes.reasons("tts-met", "WindowMissed") == []

    # The volume arrives after the late pods waited a few seconds for it (scheduling time, in
    # whole API seconds): they start, and the miss closes with how late they were.
    wait_for(lambda: pods_waiting(cluster, namespace, "tts-late", 3), timeout=30,
             what="the late pods pending for 3 s")  # fmt: skip
    bind_cache(cluster, volumes, namespace, "tts-late")
    passes.now = late_start + timedelta(seconds=1)
    closed = passes.until(
        "tts-late",
        lambda s: (r := (s.get("misses") or {}).get("recent")) and not r[0]["open"] and r[0],
        what="the miss caught up",
    )
    assert closed["lateSeconds"] >= 1  # real seconds from the start to the pods' Ready
    assert passes.reasons("tts-late", "WindowCaughtUp")
    # The late pods' starts were inside the window: counted apart, with their phases.
    cold = passes.until(
        "tts-late",
        lambda s: (c := s.get("coldStarts") or {}).get("count", 0) >= 2 and c,
        what="the late pods' cold starts",
    )
    assert cold["inWindow"] >= 2
    first = cold["recent"][0]
    # KWOK ran no container (no containerID): the start is marked simulated, its phases kept.
    assert first["source"] == "simulated" and set(first["phases"]) <= {
        "scheduling",
        "image",
        "fetch",
        "server",
    }
    # Waiting for the volume is scheduling time, and the phases add up to the start.
    assert first["phases"]["scheduling"] >= 1
    # It ends at the scheduler's Scheduled Event (eventTime in microseconds), not at the
    # PodScheduled condition's whole second, held within created -> Ready (KWOK marks the pod
    # Ready within the scheduling's second, and Ready has whole seconds).
    pod = cluster.get_json("pod", first["pod"], "-n", namespace)
    selector = f"reason=Scheduled,involvedObject.uid={pod['metadata']['uid']}"
    [scheduled] = cluster.get_json("events", "-n", namespace, "--field-selector", selector)["items"]
    assert scheduled["eventTime"] and not scheduled["firstTimestamp"]
    waited = instant(scheduled["eventTime"]) - instant(pod["metadata"]["creationTimestamp"])
    assert first["phases"]["scheduling"] == pytest.approx(min(waited, first["seconds"]), abs=0.001)
    assert sum(first["phases"].values()) == pytest.approx(first["seconds"], abs=0.01)
    assert passes.status("tts-met")["coldStarts"]["outsideWindows"] >= 2


def test_lead_time_auto_moves_the_cronjob_once_enough_starts_are_seen(
    cluster: Cluster, namespace: str, volumes: list[str]
) -> None:
    install_crd(cluster)
    start = far_start()
    passes = InProcess(cluster, namespace, start - timedelta(hours=6))
    body = service("tts-auto", [window(start, "auto")], minimum=2,
                   autoLeadTime={"initial": "20m", "min": "3m", "max": "30m", "minStarts": 2})  # fmt: skip

    def schedule() -> str:
        return cluster.get_json("cronjob", "tts-auto-warm-peak", "-n", namespace)["spec"][
            "schedule"
        ]

    def cron_at(lead: int) -> str:
        t = start - timedelta(minutes=lead)
        return f"{t.minute} {t.hour} * * *"

    cluster.apply(body, namespace=namespace)
    passes.reconcile("tts-auto")
    initial = passes.status("tts-auto")["leadTime"]
    assert initial["mode"] == "initial" and initial["seconds"] == 1200
    assert "0 of 2 cold starts" in initial["basis"]  # no volume yet: no pod has started
    assert schedule() == cron_at(20)

    bind_cache(cluster, volumes, namespace, "tts-auto")
    # Two KWOK starts take about a second: p95 + 1m margin rounds to 2m, below the 3m bound.
    learned = passes.until(
        "tts-auto",
        lambda s: (lt := s.get("leadTime") or {}).get("mode") == "learned" and lt,
        what="the learned lead",
    )
    assert learned["seconds"] == 180 and learned["duration"] == "3m"
    passes.until("tts-auto", lambda s: schedule() == cron_at(3), what="the CronJob at 3m")
    [moved] = [m for _, m in passes.reasons("tts-auto", "LeadTime") if "is 3m" in m]
    assert "pre-warm CronJobs of peak fire that early" in moved
