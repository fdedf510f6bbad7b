"""Warm pools on a real control plane: pre-warm requests, scale to zero and back, no write fights.

Windows here are placed relative to the real clock (the API server and the operator both read
it), in UTC, far enough from their edges that a test never straddles one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import REPO, Cluster
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import (
    OperatorProcess,
    running_operator,
    service_account_kubeconfig,
    wait_for,
)
from tests.support.workload import server_workload

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def _hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def _window(name: str, start: datetime, hours: int, replicas: int) -> dict[str, Any]:
    """A daily UTC window starting at ``start``'s wall time and lasting ``hours``."""
    return {
        "name": name,
        "start": _hhmm(start),
        "end": _hhmm(start + timedelta(hours=hours)),
        "leadTime": "1m",
        "replicas": replicas,
    }


def _service(name: str, minimum: int, windows: list[dict[str, Any]]) -> dict[str, Any]:
    body = valid_resource(name)
    body["spec"]["replicas"] = {"min": minimum, "max": 4}
    body["spec"]["warmPool"] = {"timeZone": "UTC", "windows": windows}
    return body


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", namespace).get("status") or {}


def _replicas(cluster: Cluster, namespace: str, name: str) -> int:
    return server_workload(cluster, namespace, name)["spec"].get("replicas", 1)


def _hpa_min(cluster: Cluster, namespace: str, name: str) -> int | None:
    result = cluster.kubectl("get", "hpa", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout)["spec"]["minReplicas"] if result.returncode == 0 else None


def test_prewarm_job_raises_the_floor_through_the_operator_until_it_expires(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    later = datetime.now(UTC) + timedelta(hours=6)
    cluster.apply(_service("tts-peak", 1, [_window("peak", later, 2, 3)]), namespace=namespace)
    wait_for(lambda: _hpa_min(cluster, namespace, "tts-peak") == 1, what="HPA at replicas.min")
    wait_for(
        lambda: cluster.get_json("cronjob", "tts-peak-warm-peak", "-n", namespace),
        what="the window's CronJob",
    )

    # Run what the CronJob runs, with the job's ServiceAccount (run by hand, outside the window:
    # the request holds for lead time + duration from now).
    env = {
        **os.environ,
        "KUBECONFIG": str(
            service_account_kubeconfig(cluster, namespace, "tts-peak-warm", tmp_path)
        ),
    }
    job = subprocess.run(
        [sys.executable, "-m", "emotivoice_operator.prewarm_job", "--name", "tts-peak", "--window", "peak",
         "--url", "http://tts-peak:8080", "--namespace", namespace, "--no-prime"],
        env=env, capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    request = _status(cluster, namespace, "tts-peak")["warmRequests"]["peak"]
    assert request["replicas"] == 3
    expires = datetime.fromisoformat(request["expiresAt"].replace("Z", "+00:00"))
    assert (
        timedelta(hours=1, minutes=55)
        < expires - datetime.now(UTC)
        <= timedelta(hours=2, minutes=1)
    )
    wait_for(
        lambda: _hpa_min(cluster, namespace, "tts-peak") == 3,
        what="HPA floor raised by the request",
    )
    wait_for(
        lambda: _replicas(cluster, namespace, "tts-peak") >= 3,
        what="Deployment raised to the floor",
    )
    assert _status(cluster, namespace, "tts-peak")["warmFloor"] == 3

    # The job's identity can do nothing else: not even change the spec it reads.
    as_job = [f"--as=system:serviceaccount:{namespace}:tts-peak-warm"]

    def can(*args: str) -> str:
        return cluster.kubectl(
            "auth", "can-i", *args, "-n", namespace, *as_job, check=False
        ).stdout.strip()

    assert can("patch", "emotivoiceservices/tts-peak") == "no"
    assert can("patch", "emotivoiceservices/tts-peak", "--subresource=status") == "yes"
    assert can("get", "emotivoiceservices/other") == "no"
    assert can("patch", "horizontalpodautoscalers") == "no"

    # A request that has expired no longer holds the floor (shortened here as an admin, to
    # avoid waiting two hours): the operator's timer lowers it by itself.
    soon = (
        (datetime.now(UTC) + timedelta(seconds=8))
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )
    cluster.kubectl(
        "patch", "evs", "tts-peak", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"warmRequests": {"peak": {"replicas": 3, "expiresAt": soon}}}}),
    )  # fmt: skip
    wait_for(
        lambda: _hpa_min(cluster, namespace, "tts-peak") == 1,
        timeout=60,
        what="floor back to replicas.min after expiry",
    )


def test_scale_to_zero_outside_windows_and_back_inside(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    now = datetime.now(UTC)
    outside = _window("later", now + timedelta(hours=6), 2, 2)
    cluster.apply(_service("tts-zero", 0, [outside]), namespace=namespace)
    wait_for(
        lambda: _status(cluster, namespace, "tts-zero").get("phase") == "ScaledToZero",
        timeout=90,
        what="ScaledToZero",
    )
    assert _replicas(cluster, namespace, "tts-zero") == 0
    assert _hpa_min(cluster, namespace, "tts-zero") is None  # an HPA cannot hold 0

    inside = _window("now", now - timedelta(minutes=30), 2, 2)
    cluster.apply(_service("tts-zero", 0, [outside, inside]), namespace=namespace)
    wait_for(
        lambda: _hpa_min(cluster, namespace, "tts-zero") == 2,
        what="HPA created with the window's floor",
    )
    wait_for(
        lambda: _replicas(cluster, namespace, "tts-zero") == 2, what="Deployment back to 2 replicas"
    )
    status = wait_for(
        lambda: (s := _status(cluster, namespace, "tts-zero")).get("activeWindow") == "now" and s,
        what="active window in status",
    )
    assert status["warmFloor"] == 2
    # Pods on the simulated nodes start and become ready: cold starts are accounted.
    for k in range(2):  # a claim per replica (the default cache scope)
        cluster.apply(
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-zero-{k}"},
             "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": f"/tmp/zero-{k}"},
                      "claimRef": {"namespace": namespace, "name": f"model-cache-tts-zero-{k}"}}}
        )  # fmt: skip
    cold = wait_for(
        lambda: (c := _status(cluster, namespace, "tts-zero").get("coldStarts", {})).get("count", 0) >= 2 and c,
        timeout=120, what="two cold starts counted",
    )  # fmt: skip
    assert cold["medianSeconds"] >= 0 and len(cold["recent"]) >= 2
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=tts-zero"
    )
    assert sum(e["reason"] == "ColdStart" for e in events["items"]) >= 2

    cluster.apply(_service("tts-zero", 0, [outside]), namespace=namespace)
    wait_for(
        lambda: _replicas(cluster, namespace, "tts-zero") == 0,
        what="back to zero when the window is gone",
    )
    wait_for(lambda: _hpa_min(cluster, namespace, "tts-zero") is None, what="HPA removed at zero")


def test_an_idle_operator_writes_nothing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Passes over a settled service write nothing: no object's resourceVersion moves.

    The passes are made to happen: the timer brings a settled service back only at its horizon
    (20 periods, a minute here), so a window of a few periods would most likely hold none. An
    annotation on a child is an event its watch turns into a pass of this service (a field no
    one renders: nothing to apply); the operator's own metrics count the passes."""
    cluster.apply(
        _service("tts-idle", 1, [_window("later", datetime.now(UTC) + timedelta(hours=6), 2, 2)]),
        namespace=namespace,
    )
    wait_for(lambda: _hpa_min(cluster, namespace, "tts-idle") == 1, what="HPA")
    wait_for(lambda: _status(cluster, namespace, "tts-idle").get("phase"), what="status written")

    def versions() -> dict[str, Any]:
        """Per object, the operator's own writes (managedFields entries of its field managers);
        for the EmotiVoiceService, its whole resourceVersion (only the operator writes it here).
        Other controllers (the HPA's status, the Deployment's) may write; the operator may not."""
        items = cluster.get_json(
            "evs,hpa,statefulset,deployment,cronjob,service,pvc,role,rolebinding,serviceaccount",
            "-n",
            namespace,
        )["items"]
        out: dict[str, Any] = {}
        for i in items:
            meta = i["metadata"]
            ours = sorted(
                (m["manager"], m["operation"], m.get("subresource", ""), m["time"])
                for m in meta.get("managedFields", [])
                if m["manager"].startswith("emotivoice-operator")
            )
            rv = meta["resourceVersion"] if i["kind"] == "EmotiVoiceService" else None
            out[f"{i['kind']}/{meta['name']}"] = (ours, rv)
        return out

    # Settle first: the pods' arrival and the first status writes are real changes.
    before = versions()
    for _ in range(10):
        time.sleep(operator.timer_interval * 2)
        now = versions()
        if now == before:
            break
        before = now
    # A pass each timer period for five periods (a write that comes only some time after the
    # last one shows too), each required to have run.
    passes = operator.passes()
    for i, child in enumerate(("service", "hpa", "service", "hpa", "service")):
        seen = operator.passes()
        cluster.kubectl(
            "annotate", child, "tts-idle", "-n", namespace, f"evs-test/poke={i}", "--overwrite"
        )
        wait_for(lambda seen=seen: operator.passes() > seen, timeout=30, what="a pass")
        time.sleep(operator.timer_interval)  # spreads the passes; they are awaited above
    assert operator.passes() - passes >= 5
    assert versions() == before
