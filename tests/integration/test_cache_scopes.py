"""Cache scopes on a real control plane: replicas spread over nodes on ReadWriteOnce storage.

The storage here is what most clouds' default class amounts to: volumes that live on one node.
Two KWOK nodes with one GPU each (so every replica needs its own node), a StorageClass with no
provisioner and WaitForFirstConsumer binding, and local PersistentVolumes pinned by nodeAffinity
to one node each; the scheduler's volume binding decides as it would on a cloud. KWOK attaches
nothing, so what shows is the scheduling: a pod whose claim's volume sits on a node without a
free GPU stays Pending, which on a real cluster is the Multi-Attach or the volume node affinity
conflict the issue is about.

Windows are placed relative to the real clock, as in test_warm_pool.py: a window that began 30
minutes ago is active now; moving it six hours ahead ends it (the floor drops); moving it back
begins the next one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.cluster import GPU_RESOURCE, KWOK_NODE_ANNOTATION, Cluster
from tests.support.operator_process import OperatorProcess, running_operator, wait_for
from tests.support.workload import server_pods

pytestmark = pytest.mark.cluster

POOL_LABEL = "evs.test/pool"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as op:
        yield op


@dataclass(frozen=True)
class Pool:
    """Two one-GPU nodes and node-local volumes of one StorageClass, for one test's namespace."""

    namespace: str
    nodes: tuple[str, str]
    storage_class: str

    def volume_node(self, cluster: Cluster, pv: str) -> str:
        affinity = cluster.get_json("pv", pv)["spec"]["nodeAffinity"]["required"]
        return affinity["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0]


def _node(name: str, pool: str) -> dict[str, Any]:
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110", GPU_RESOURCE: "1"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "type": "kwok", POOL_LABEL: pool},
        },
        "spec": {
            "taints": [{"key": KWOK_NODE_ANNOTATION, "value": "fake", "effect": "NoSchedule"}]
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def _local_volume(name: str, node: str, storage_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {POOL_LABEL: storage_class}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "local": {"path": f"/mnt/{name}"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


@pytest.fixture
def pool(cluster: Cluster, namespace: str) -> Iterator[Pool]:
    suffix = namespace.removeprefix("evs-test-")
    nodes = (f"evs-gpu-{suffix}-a", f"evs-gpu-{suffix}-b")
    storage_class = f"evs-local-{suffix}"
    cluster.apply([_node(n, namespace) for n in nodes])
    cluster.apply(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": storage_class},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }
    )
    cluster.apply([_local_volume(f"{n}-disk", n, storage_class) for n in nodes])
    wait_for(
        lambda: all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in cluster.get_json("node", n)["status"].get("conditions", [])
            )
            for n in nodes
        ),
        timeout=60,
        what="the two GPU nodes Ready (KWOK)",
    )
    try:
        yield Pool(namespace, nodes, storage_class)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "node", *nodes, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", "-l", f"{POOL_LABEL}={storage_class}", "--wait=false", check=False)  # fmt: skip
        cluster.kubectl("delete", "storageclass", storage_class, "--wait=false", check=False)


def _window(name: str, start: datetime, replicas: int) -> dict[str, Any]:
    end = start + timedelta(hours=2)
    return {
        "name": name,
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
        "leadTime": "1m",
        "replicas": replicas,
    }


def _service(name: str, pool: Pool, active: bool, **cache: Any) -> dict[str, Any]:
    """One GPU per replica, none outside the window, two inside it; on the pool's nodes only."""
    now = datetime.now(UTC)
    start = now - timedelta(minutes=30) if active else now + timedelta(hours=6)
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceService",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "source": {"uri": "s3://models/emotivoice/v1"},
                "cache": {"size": "1Gi", "storageClassName": pool.storage_class, **cache},
            },
            "server": {
                "gpus": 1,
                "nodeSelector": {POOL_LABEL: pool.namespace},
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {}},
            },
            "replicas": {"min": 0, "max": 2},
            "warmPool": {"timeZone": "UTC", "windows": [_window("peak", start, 2)]},
        },
    }


def _running(pods: list[dict[str, Any]]) -> dict[str, str]:
    """Running pods by name -> node."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"]
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def _claims(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Bound claims -> their PersistentVolume."""
    return {
        c["metadata"]["name"]: c["spec"]["volumeName"]
        for c in cluster.get_json("pvc", "-n", namespace)["items"]
        if c["status"].get("phase") == "Bound"
    }


def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", namespace).get("status") or {}


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def test_a_window_spreads_replicas_over_nodes_and_brings_each_back_to_its_claim(
    cluster: Cluster, operator: OperatorProcess, pool: Pool
) -> None:
    ns = pool.namespace
    cluster.apply(_service("tts-spread", pool, active=True), namespace=ns)

    running = wait_for(
        lambda: len(r := _running(server_pods(cluster, ns, "tts-spread"))) == 2 and r,
        timeout=120,
        what="both replicas Running under the default scope",
    )
    assert sorted(running.values()) == sorted(pool.nodes), running  # one per GPU node
    first = wait_for(
        lambda: len(c := _claims(cluster, ns)) == 2 and c, timeout=60, what="two claims Bound"
    )
    assert set(first) == {"model-cache-tts-spread-0", "model-cache-tts-spread-1"}
    for k in (0, 1):  # each replica runs where its own volume is
        assert (
            pool.volume_node(cluster, first[f"model-cache-tts-spread-{k}"])
            == running[f"tts-spread-{k}"]
        )
    status = wait_for(
        lambda: (s := _status(cluster, ns, "tts-spread")).get("readyReplicas") == 2 and s,
        timeout=60,
        what="two ready replicas in status",
    )
    assert status["cache"]["scope"] == "PerReplica"
    assert status["cache"]["claims"] == ["model-cache-tts-spread-0", "model-cache-tts-spread-1"]
    assert _condition(status, "CacheReachable")["status"] == "True"

    # The window ends: the floor drops to 0, the replicas leave, their claims stay.
    cluster.apply(_service("tts-spread", pool, active=False), namespace=ns)
    wait_for(lambda: not server_pods(cluster, ns, "tts-spread"), timeout=90, what="replicas gone")
    assert _claims(cluster, ns) == first

    # The next window begins: each replica comes back on the node of the claim it had.
    cluster.apply(_service("tts-spread", pool, active=True), namespace=ns)
    again = wait_for(
        lambda: len(r := _running(server_pods(cluster, ns, "tts-spread"))) == 2 and r,
        timeout=120,
        what="both replicas back",
    )
    assert again == running
    assert _claims(cluster, ns) == first
    for pod in server_pods(cluster, ns, "tts-spread"):
        (claim,) = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claim == f"model-cache-{pod['metadata']['name']}"


def test_todays_single_read_write_once_claim_leaves_the_second_replica_pending(
    cluster: Cluster, operator: OperatorProcess, pool: Pool
) -> None:
    """The regression test of issue 17: the one claim of the Shared scope on RWO storage."""
    ns = pool.namespace
    cluster.apply(_service("tts-one", pool, active=True, scope="Shared"), namespace=ns)
    running = wait_for(
        lambda: len(r := _running(server_pods(cluster, ns, "tts-one"))) == 1 and r,
        timeout=120,
        what="the first replica Running",
    )
    (node,) = running.values()
    (volume,) = _claims(cluster, ns).values()
    assert pool.volume_node(cluster, volume) == node

    def stuck() -> dict[str, Any] | None:
        """The PodScheduled condition of the pending replica once the scheduler says why: its
        claim's volume is on the node whose one GPU the first replica holds."""
        for pod in server_pods(cluster, ns, "tts-one"):
            for c in pod["status"].get("conditions", []):
                message = c.get("message", "")
                if (
                    c["type"] == "PodScheduled"
                    and c["status"] == "False"
                    and "node affinity" in message
                    and "volume" in message.lower()
                    and GPU_RESOURCE in message
                ):
                    return c
        return None

    try:
        wait_for(stuck, timeout=60, what="the second replica unschedulable on the volume's node")
    except AssertionError as err:
        pods = [(p["metadata"]["name"], p["status"]) for p in server_pods(cluster, ns, "tts-one")]
        raise AssertionError(f"{err}; pods: {pods}") from None
    time.sleep(5)  # and it stays so: nothing will ever free the volume for it
    assert len(_running(server_pods(cluster, ns, "tts-one"))) == 1
    status = wait_for(
        lambda: (
            (s := _status(cluster, ns, "tts-one")).get("phase") == "Progressing"
            and "cannot be scheduled" in s.get("message", "")
            and s
        ),
        timeout=60,
        what="status naming the unschedulable replica",
    )
    warning = _condition(status, "CacheReachable")
    assert warning["status"] == "False" and warning["reason"] == "SharedReadWriteOnce"
    assert "PerReplica" in warning["message"]
    events = cluster.get_json("events", "-n", ns, "--field-selector", "involvedObject.name=tts-one")
    assert any(e["reason"] == "CacheUnreachable" for e in events["items"])


def _retained_claim(cluster: Cluster, namespace: str, name: str, access_mode: str) -> str:
    """The claim NAME-model as an operator before cache scopes left it with retainOnDelete
    (no owner, our labels, applied by our field manager); returns its uid."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"{name}-model",
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "emotivoice",
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/component": "model-cache",
                "app.kubernetes.io/managed-by": "emotivoice-operator",
                "app.kubernetes.io/part-of": "emotivoice",
            },
        },
        "spec": {"accessModes": [access_mode], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=emotivoice-operator", "-f", "-",
        input=json.dumps(claim),
    )  # fmt: skip
    return cluster.get_json("pvc", f"{name}-model", "-n", namespace)["metadata"]["uid"]


def _plain_service(name: str, cache: dict[str, Any], minimum: int) -> dict[str, Any]:
    """A service outside the two-node pool (no window, no GPU): max 3, cache 1Gi plus ``cache``."""
    return {
        "apiVersion": "tts.emotivoice.io/v1alpha1",
        "kind": "EmotiVoiceService",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "source": {"uri": "s3://models/emotivoice/v1"},
                "cache": {"size": "1Gi", **cache},
            },
            "replicas": {"min": minimum, "max": 3},
        },
    }


def test_a_service_with_the_old_single_claim_keeps_it_until_told_otherwise(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    uid = _retained_claim(cluster, namespace, "tts-old", "ReadWriteMany")
    body = _plain_service("tts-old", {"accessMode": "ReadWriteMany"}, minimum=1)
    cluster.apply(body, namespace=namespace)
    status = wait_for(
        lambda: (s := _status(cluster, namespace, "tts-old")).get("cache") and s,
        timeout=60,
        what="status.cache",
    )
    assert status["cache"]["scope"] == "Shared"
    assert "tts-old-model" in status["cache"]["reason"]
    deployment = cluster.get_json("deployment", "tts-old", "-n", namespace)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "tts-old-model"},
    } in volumes
    assert cluster.kubectl("get", "statefulset", "tts-old", "-n", namespace, check=False).returncode
    assert cluster.get_json("pvc", "tts-old-model", "-n", namespace)["metadata"]["uid"] == uid

    # Asked for per-replica claims, it moves: a StatefulSet, the Deployment pruned; the old
    # claim stays (the user deletes it) and no longer keeps the scope Shared.
    body["spec"]["model"]["cache"]["scope"] = "PerReplica"
    cluster.apply(body, namespace=namespace)
    wait_for(
        lambda: cluster.get_json("statefulset", "tts-old", "-n", namespace),
        timeout=60,
        what="the StatefulSet",
    )
    wait_for(
        lambda: cluster.kubectl("get", "deployment", "tts-old", "-n", namespace, check=False).returncode,
        timeout=60,
        what="the Deployment pruned",
    )  # fmt: skip
    hpa = cluster.get_json("hpa", "tts-old", "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    wait_for(
        lambda: _status(cluster, namespace, "tts-old")["cache"]["scope"] == "PerReplica",
        what="status.cache.scope PerReplica",
    )
    assert cluster.get_json("pvc", "tts-old-model", "-n", namespace)["metadata"]["uid"] == uid


def test_a_kept_one_pod_claim_for_several_replicas_is_refused_naming_the_field(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """The schema cannot see that an unset scope stays Shared; the operator can, and says so."""
    _retained_claim(cluster, namespace, "tts-rwop", "ReadWriteOncePod")
    body = _plain_service("tts-rwop", {"accessMode": "ReadWriteOncePod"}, minimum=1)
    cluster.apply(body, namespace=namespace)
    status = wait_for(
        lambda: (s := _status(cluster, namespace, "tts-rwop")).get("phase") == "Failed" and s,
        timeout=60,
        what="phase Failed",
    )
    valid = _condition(status, "SpecValid")
    assert valid["status"] == "False" and "spec.model.cache.accessMode" in valid["message"]
    assert cluster.kubectl("get", "deployment", "tts-rwop", "-n", namespace, check=False).returncode


def test_claims_of_replicas_that_cannot_come_back_are_deleted(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    # No volumes here: the claims stay Pending, and so do the pods; what counts is that the
    # StatefulSet controller made a claim per ordinal.
    body = _plain_service("tts-shrink", {}, minimum=3)
    cluster.apply(body, namespace=namespace)
    names = [f"model-cache-tts-shrink-{k}" for k in range(3)]

    def claims() -> set[str]:
        items = cluster.get_json("pvc", "-n", namespace)["items"]
        return {c["metadata"]["name"] for c in items if not c["metadata"].get("deletionTimestamp")}

    wait_for(lambda: claims() == set(names), timeout=60, what="a claim per ordinal")

    body["spec"]["replicas"] = {"min": 1, "max": 1}
    cluster.apply(body, namespace=namespace)
    # The HPA brings the StatefulSet down to maxReplicas; then no replica can come back to
    # ordinals 1 and 2, and their claims go.
    wait_for(lambda: claims() == {names[0]}, timeout=120, what="claims 1 and 2 deleted")
    status = wait_for(
        lambda: (s := _status(cluster, namespace, "tts-shrink"))["cache"].get("deletedClaims") and s,
        what="status.cache.deletedClaims",
    )  # fmt: skip
    assert sorted(status["cache"]["deletedClaims"]) == names[1:]
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=tts-shrink"
    )["items"]
    deleted = [e["message"] for e in events if e["reason"] == "Deleted"]
    assert any("model-cache-tts-shrink-2" in m and "replicas.max 1" in m for m in deleted), deleted
