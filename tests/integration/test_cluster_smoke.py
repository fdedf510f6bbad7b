"""Smoke tests of the test cluster itself: what the operator's integration suite relies on.

Against the local control plane (hack/cluster.sh: real etcd, kube-apiserver, controller manager
and scheduler; KWOK plays the kubelet of fake nodes) or any cluster given by KUBECONFIG whose nodes
carry the KWOK taint and a node with nvidia.com/gpu capacity.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.cluster import GPU_RESOURCE, KWOK_TOLERATION, Cluster, ClusterError

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def deployment(name: str, replicas: int, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/evs/smoke:1"}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container], "tolerations": [KWOK_TOLERATION]},
            },
        },
    }


def pods(cluster: Cluster, namespace: str, app: str) -> list[dict[str, Any]]:
    return cluster.get_json("pods", "-n", namespace, "-l", f"app={app}")["items"]


def test_deployment_becomes_ready_on_fake_nodes(cluster: Cluster, namespace: str) -> None:
    fake_nodes = cluster.fake_nodes()
    cluster.apply(deployment("web", 2), namespace)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/web", "--timeout=120s"
    )
    ready = pods(cluster, namespace, "web")
    assert len(ready) == 2
    for pod in ready:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in fake_nodes
        # Owned through a ReplicaSet: the controller manager's deployment controller made it.
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"


def test_gpu_requests_schedule_on_gpu_node_and_overcommit_stays_pending(
    cluster: Cluster, namespace: str
) -> None:
    gpu_nodes = cluster.fake_nodes(GPU_RESOURCE)
    one_gpu = {"limits": {GPU_RESOURCE: "1"}}
    too_many = {"limits": {GPU_RESOURCE: "64"}}
    cluster.apply([deployment("gpu", 1, one_gpu), deployment("greedy", 1, too_many)], namespace)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/gpu", "--timeout=120s"
    )
    (gpu_pod,) = pods(cluster, namespace, "gpu")
    assert gpu_pod["spec"]["nodeName"] in gpu_nodes
    deadline = time.monotonic() + 60
    reason = None
    while time.monotonic() < deadline and reason != "Unschedulable":
        greedy = pods(cluster, namespace, "greedy")
        conditions = greedy[0]["status"].get("conditions", []) if greedy else []
        reason = next((c.get("reason") for c in conditions if c["type"] == "PodScheduled"), None)
        time.sleep(0.5)
    assert reason == "Unschedulable"


def test_deleting_owner_garbage_collects_owned_configmap(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner_uid = cluster.get_json("configmap", "owner", "-n", namespace)["metadata"]["uid"]
    owned = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "data": {"k": "v"},
    }
    cluster.apply(owned, namespace)
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=delete", "configmap/owned", "--timeout=60s", timeout=90
    )
    gone = cluster.kubectl("get", "configmap", "owned", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def cronjob(time_zone: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "30 6 * * 1-5",
            "timeZone": time_zone,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "registry.invalid/x:1"}],
                        }
                    }
                }
            },
        },
    }


def test_cronjob_with_time_zone_is_accepted_and_bad_zone_rejected(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(cronjob("Europe/Berlin"), namespace)
    stored = cluster.get_json("cronjob", "nightly", "-n", namespace)
    assert stored["spec"]["timeZone"] == "Europe/Berlin"
    with pytest.raises(ClusterError, match="timeZone"):
        cluster.apply(cronjob("Mars/Olympus_Mons"), namespace)
