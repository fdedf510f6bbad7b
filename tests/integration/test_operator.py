"""The operator against a real API server (+ controller manager, scheduler, KWOK nodes).

The operator runs as a subprocess under the Helm chart's RBAC (a ServiceAccount token), exactly
as an installed operator would. Each test works in its own namespace.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from emotivoice_operator.cli_render import load_services, render_service
from emotivoice_operator.settings import OperatorSettings
from tests.support.cluster import REPO, Cluster
from tests.support.invalid_specs import CASES, valid_resource
from tests.support.operator_process import (
    ACCOUNT,
    SYSTEM_NAMESPACE,
    OperatorProcess,
    running_operator,
    wait_for,
)
from tests.support.workload import cache_claims, server_workload

pytestmark = pytest.mark.cluster

EXAMPLES = REPO / "examples"
KINDS = "statefulset,deployment,service,pvc,hpa,cronjob,serviceaccount,role,rolebinding"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


def _apply_file(cluster: Cluster, path: Path, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(path))


def _evs(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", namespace)


def _children(cluster: Cluster, namespace: str, name: str) -> set[tuple[str, str]]:
    items = cluster.get_json(KINDS, "-n", namespace, "-l", f"app.kubernetes.io/instance={name}")[
        "items"
    ]
    return {(i["kind"], i["metadata"]["name"]) for i in items}


def _expected_children(body: dict[str, Any], namespace: str) -> set[tuple[str, str]]:
    manifests, _ = render_service(body, namespace, datetime.now(UTC), OperatorSettings())
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def provide_volumes(cluster: Cluster, namespace: str, body: dict[str, Any]) -> None:
    """A PersistentVolume reserved (claimRef) for each claim the service's pods will mount (the
    test cluster has no provisioner); a claim that appears later binds to its volume then."""
    cache = body["spec"]["model"].get("cache") or {}
    for claim in cache_claims(body):
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {
                "capacity": {"storage": str(cache.get("size", "10Gi"))},
                "accessModes": [cache.get("accessMode", "ReadWriteOnce")],
                "storageClassName": cache.get("storageClassName", ""),
                "hostPath": {"path": f"/tmp/{namespace}/{claim}"},
                "claimRef": {"namespace": namespace, "name": claim},
                "persistentVolumeReclaimPolicy": "Delete",
            },
        }
        cluster.apply(pv)


def printer_table(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """`kubectl get evs` as the server renders it: the CRD's printer columns, by name."""
    api = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        path = f"/apis/tts.emotivoice.io/v1alpha1/namespaces/{namespace}/emotivoiceservices"
        response = api.call_api(
            path, "GET", header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
        )  # fmt: skip
        data = json.loads(response.data)
    finally:
        api.close()
    names = [c["name"] for c in data["columnDefinitions"]]
    return [dict(zip(names, row["cells"], strict=True)) for row in data["rows"]]


SERVICES = {s["metadata"]["name"]: s for s in load_services([EXAMPLES])}


def _bound(cluster: Cluster, namespace: str, name: str) -> None:
    provide_volumes(cluster, namespace, SERVICES[name])


def test_every_example_creates_its_children_and_fills_the_columns(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    services = load_services([EXAMPLES])
    for path in sorted(EXAMPLES.glob("*.yaml")):
        _apply_file(cluster, path, namespace)
    for body in services:
        name = body["metadata"]["name"]
        _bound(cluster, namespace, name)
        expected = _expected_children(body, namespace)
        wait_for(
            lambda n=name, e=expected: _children(cluster, namespace, n) >= e,
            timeout=90,
            what=f"children of {name}",
        )

    def columns_filled() -> list[dict[str, Any]] | None:
        rows = printer_table(cluster, namespace)
        done = len(rows) == len(services) and all(
            r["Phase"] and r["Floor"] is not None for r in rows
        )
        return rows if done else None

    rows = {r["Name"]: r for r in wait_for(columns_filled, timeout=120, what="printer columns")}
    assert rows["tts-minimal"]["Min"] == 1 and rows["tts-minimal"]["Max"] == 3
    assert rows["tts-gpu"]["Max"] == 6
    assert rows["tts-office-hours"]["Min"] == 0
    # The GPU pool at zero by night stands on its CPU fallback: whichever the hour, its Service
    # selects one of the two, and status and the Serving column say which.
    night = wait_for(
        lambda: (_evs(cluster, namespace, "tts-night").get("status") or {}).get("routing"),
        timeout=120, what="tts-night's routing",
    )  # fmt: skip
    selected = cluster.get_json("service", "tts-night", "-n", namespace)["spec"]["selector"]
    assert selected["app.kubernetes.io/instance"] == night["pool"]
    assert night["pool"] in {"tts-night", "tts-night-cpu"}
    minimal = wait_for(
        lambda: (
            (s := _evs(cluster, namespace, "tts-minimal")["status"]).get("phase") == "Ready" and s
        ),
        timeout=120,
        what="tts-minimal Ready",
    )
    assert minimal["readyReplicas"] == 1 and minimal["warmFloor"] == 1
    conditions = {c["type"]: c["status"] for c in minimal["conditions"]}
    assert conditions == {
        "SpecValid": "True",
        "ModelCached": "True",
        "Ready": "True",
        "WarmWindowActive": "False",
        "CacheReachable": "True",
    }
    # The example leaves the scope out: per-replica claims, the first one in use.
    assert minimal["cache"]["scope"] == "PerReplica"
    assert minimal["cache"]["claims"] == ["model-cache-tts-minimal-0"]
    assert rows["tts-minimal"]["Cache"] == "PerReplica"
    assert (
        minimal["observedGeneration"]
        == _evs(cluster, namespace, "tts-minimal")["metadata"]["generation"]
    )
    gpu = wait_for(
        lambda: (s := _evs(cluster, namespace, "tts-gpu")["status"]).get("phase") == "Ready" and s,
        timeout=120,
        what="tts-gpu Ready on the GPU node",
    )
    assert gpu["nextWindow"].endswith("Asia/Shanghai")
    pods = cluster.get_json("pods", "-n", namespace, "-l", "app.kubernetes.io/instance=tts-gpu")[
        "items"
    ]
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-gpu-0"}
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=tts-minimal"
    )
    reasons = {e["reason"] for e in events["items"]}
    assert "Created" in reasons and "PhaseReady" in reasons, reasons


def test_api_server_rejects_invalid_specs_with_the_crds_messages(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    accepted = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(valid_resource()),
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr
    for case in CASES:
        result = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(case.resource()),
            check=False,
        )
        assert result.returncode != 0, f"{case.id} was accepted"
        assert case.field in result.stderr, f"{case.id}: {result.stderr}"


def test_spec_updates_reach_the_children(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    _apply_file(cluster, EXAMPLES / "gpu-peak-windows.yaml", namespace)
    _bound(cluster, namespace, "tts-gpu")
    wait_for(
        lambda: cluster.get_json("cronjob", "tts-gpu-warm-morning", "-n", namespace), what="cronjob"
    )
    patch = {
        "spec": {
            "server": {"image": "emotivoice/server:0.2.0"},
            "replicas": {"min": 2, "max": 5},
            "warmPool": {
                "timeZone": "Asia/Shanghai",
                "windows": [
                    {
                        "name": "morning",
                        "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
                        "start": "08:30",
                        "end": "12:00",
                        "leadTime": "30m",
                        "replicas": 3,
                    },
                ],
            },
        }
    }
    cluster.kubectl(
        "patch", "evs", "tts-gpu", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )

    def propagated() -> bool:
        dep = cluster.get_json("deployment", "tts-gpu", "-n", namespace)
        hpa = cluster.get_json("hpa", "tts-gpu", "-n", namespace)
        cron = cluster.get_json("cronjob", "tts-gpu-warm-morning", "-n", namespace)
        images = {
            c["image"]
            for c in dep["spec"]["template"]["spec"]["containers"]
            + dep["spec"]["template"]["spec"]["initContainers"]
        }
        return (
            images == {"emotivoice/server:0.2.0"}
            and hpa["spec"]["minReplicas"] >= 2
            and hpa["spec"]["maxReplicas"] == 5
            and cron["spec"]["schedule"] == "0 8 * * 1-5"
        )

    wait_for(propagated, timeout=60, what="image, replicas and window in the children")
    # The evening window was removed: its CronJob is pruned.
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "cronjob", "tts-gpu-warm-evening", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        timeout=60,
        what="the removed window's CronJob to be deleted",
    )


def test_children_edited_or_deleted_by_hand_come_back(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    _apply_file(cluster, EXAMPLES / "minimal-minio.yaml", namespace)
    _bound(cluster, namespace, "tts-minimal")
    wait_for(lambda: cluster.get_json("service", "tts-minimal", "-n", namespace), what="service")
    wait_for(
        lambda: cluster.get_json("statefulset", "tts-minimal", "-n", namespace), what="statefulset"
    )
    cluster.kubectl("delete", "service", "tts-minimal", "-n", namespace)
    cluster.kubectl(
        "patch", "statefulset", "tts-minimal", "-n", namespace, "--type=json",
        "-p", json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/path", "value": "/health"}]),
    )  # fmt: skip
    wait_for(
        lambda: cluster.get_json("service", "tts-minimal", "-n", namespace),
        timeout=60,
        what="service restored",
    )

    def probe_restored() -> bool:
        dep = cluster.get_json("statefulset", "tts-minimal", "-n", namespace)
        return (
            dep["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
            == "/ready"
        )

    wait_for(probe_restored, timeout=60, what="readiness probe restored")


def test_delete_cascades_and_retained_cache_survives(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    _apply_file(cluster, EXAMPLES / "minimal-minio.yaml", namespace)
    _apply_file(cluster, EXAMPLES / "gpu-peak-windows.yaml", namespace)
    # tts-minimal: the default scope (a claim per replica, deleted with the service);
    # tts-gpu: Shared with retainOnDelete (its one claim stays).
    for name, claim in (("tts-minimal", "model-cache-tts-minimal-0"), ("tts-gpu", "tts-gpu-model")):
        wait_for(
            lambda n=name: server_workload(cluster, namespace, n),
            what=f"{name} workload",
        )
        wait_for(
            lambda c=claim: cluster.get_json("pvc", c, "-n", namespace),
            what=f"{name} pvc",
        )
    # No finalizer of ours holds a delete (kopf's per-object timers put one on each and held
    # every delete ~60 s; the operator's one timer loop needs none).
    for name in ("tts-minimal", "tts-gpu"):
        assert not cluster.get_json("evs", name, "-n", namespace)["metadata"].get("finalizers")
    started = time.monotonic()
    cluster.kubectl(
        "delete", "evs", "tts-minimal", "tts-gpu", "-n", namespace, "--wait=true", timeout=150
    )
    assert time.monotonic() - started < 30

    def collected() -> bool:
        left = {
            n
            for _, n in _children(cluster, namespace, "tts-minimal")
            | _children(cluster, namespace, "tts-gpu")
        }
        return left == {"tts-gpu-model"}

    wait_for(collected, timeout=90, what="garbage collection of every child but the retained PVC")


def test_status_says_what_is_missing(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """No volume is provided, so the pod cannot be scheduled: status says so, not just Progressing.
    Without valid_resource's window, whose floor of 2 holds on Mondays 00:50-04:00Z (real clock)."""
    body = valid_resource("tts-waiting")
    del body["spec"]["warmPool"]
    cluster.apply(body, namespace=namespace)
    status = wait_for(
        lambda: (
            (s := _evs(cluster, namespace, "tts-waiting").get("status", {})).get("phase")
            == "Progressing"
            and "cannot be scheduled" in s.get("message", "")
            and s
        ),
        timeout=90,
        what="a Progressing status naming the unschedulable pod",
    )
    assert "0 of 1 replicas ready" in status["message"]


def test_a_spec_the_operator_cannot_honour_is_reported_not_crashed_on(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    body = valid_resource("tts-mars")
    body["spec"]["warmPool"]["timeZone"] = "Mars/Olympus_Mons"  # well-formed, but no such zone
    cluster.apply(body, namespace=namespace)
    status = wait_for(
        lambda: (
            (s := _evs(cluster, namespace, "tts-mars").get("status", {})).get("phase") == "Failed"
            and s
        ),
        timeout=60,
        what="phase Failed",
    )
    assert "warmPool" in status["message"] and "Mars/Olympus_Mons" in status["message"]
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=tts-mars"
    )
    assert any(e["reason"] == "InvalidSpec" and e["type"] == "Warning" for e in events["items"])
    operator.assert_alive()


def test_operator_cannot_read_secrets(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    as_operator = [f"--as=system:serviceaccount:{SYSTEM_NAMESPACE}:{ACCOUNT}"]
    assert (
        cluster.kubectl(
            "auth", "can-i", "get", "secrets", "-n", namespace, *as_operator, check=False
        ).stdout.strip()
        == "no"
    )
    # Deployments it may delete (a cache scope change replaces one with a StatefulSet; the
    # admission policy keeps that to Deployments an EmotiVoiceService owns), Services never.
    assert (
        cluster.kubectl(
            "auth", "can-i", "delete", "services", "-n", namespace, *as_operator, check=False
        ).stdout.strip()
        == "no"
    )
    assert (
        cluster.kubectl(
            "auth", "can-i", "patch", "deployments", "-n", namespace, *as_operator, check=False
        ).stdout.strip()
        == "yes"
    )


def test_killed_mid_reconcile_converges_after_restart(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    services = {s["metadata"]["name"]: s for s in load_services([EXAMPLES])}
    _apply_file(cluster, EXAMPLES / "gpu-peak-windows.yaml", namespace)
    # Kill it as soon as it has started creating children: some exist, some do not yet.
    wait_for(
        lambda: _children(cluster, namespace, "tts-gpu"),
        timeout=60,
        interval=0.05,
        what="the first child",
    )
    operator.stop(kill=True)
    operator.start()
    _bound(cluster, namespace, "tts-gpu")
    expected = _expected_children(services["tts-gpu"], namespace)
    wait_for(
        lambda: _children(cluster, namespace, "tts-gpu") >= expected,
        timeout=90,
        what="all children after restart",
    )
    wait_for(
        lambda: _evs(cluster, namespace, "tts-gpu").get("status", {}).get("phase") == "Ready",
        timeout=120,
        what="Ready after restart",
    )
    operator.assert_alive()


@pytest.mark.parametrize(
    ("scope", "child"),
    [("Shared", ("pvc", "tts-immutable-model")), ("PerReplica", ("statefulset", "tts-immutable"))],
)
def test_child_creation_failure_is_an_event(
    cluster: Cluster, operator: OperatorProcess, namespace: str, scope: str, child: tuple[str, str]
) -> None:
    """A claim's access mode cannot change in place (a PVC's spec, a StatefulSet's claim
    templates): the refusal is reported, the operator lives on."""
    body = valid_resource("tts-immutable")
    body["spec"]["model"]["cache"] = {"scope": scope}
    cluster.apply(body, namespace=namespace)
    wait_for(lambda: cluster.get_json(*child, "-n", namespace), what=child[0])
    body["spec"]["model"]["cache"] = {"scope": scope, "accessMode": "ReadWriteMany"}
    cluster.apply(body, namespace=namespace)
    status = wait_for(
        lambda: (
            (s := _evs(cluster, namespace, "tts-immutable").get("status", {})).get("phase")
            == "Degraded"
            and s
        ),
        timeout=60,
        what="phase Degraded",
    )
    message = status["message"]
    assert (
        "PersistentVolumeClaim" in message or "immutable" in message or "StatefulSet" in message
    ), message
    # ... and it is a Warning Event on the resource, saying what the API refused.
    refused = wait_for(
        lambda: [
            e
            for e in cluster.get_json(
                "events", "-n", namespace, "--field-selector", "involvedObject.name=tts-immutable"
            )["items"]
            if e["reason"] == "ApplyFailed" and e["type"] == "Warning"
        ],
        timeout=60,
        what="an ApplyFailed Warning Event",
    )
    assert any(e["message"] in message or message in e["message"] for e in refused), (
        [e["message"] for e in refused],
        message,
    )
    operator.assert_alive()
