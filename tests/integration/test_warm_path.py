"""The warm path on simulated nodes: capacity placeholders hold two one-GPU nodes ahead of a
window, the window's replicas preempt them (the real kube-scheduler does the preemption) and
schedule there, and the placeholders are gone afterwards; the image pre-pull DaemonSet runs a
pod on exactly the nodes the server pods can land on, and goes once the replicas are Ready.

The passes run in process at instants the test sets (tests/support/in_process.py): the window
lies in 2030, and each pass's clock is placed at the stage under test. Everything else is real:
API server, scheduler (preemption included), DaemonSet and Deployment controllers. KWOK plays
the kubelet (no GPU or container runtime here), so the nodes' GPUs are KWOK capacity and the
pre-pull pods' "pull" is KWOK marking their init container done; no kubelet posts a Pulled
Event, so the learned image lead is left to the real-node test (tests/e2e/test_warm_path.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotivoice_operator.render import names
from emotivoice_operator.settings import DEFAULT_PLACEHOLDER_PRIORITY_CLASS
from tests.support.cluster import Cluster
from tests.support.in_process import InProcess
from tests.support.invalid_specs import valid_resource
from tests.support.operator_process import install_crd, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NAME = "tts-path"
# valid_resource's window: Mondays 09:00-12:00 Asia/Shanghai (UTC+8); 2030-01-07 is a Monday.
START = datetime(2030, 1, 7, 1, 0, tzinfo=UTC)
LEAD, IMAGE_LEAD, NODE_LEAD = timedelta(minutes=10), timedelta(minutes=5), timedelta(minutes=10)
REPLICAS_AT = START - LEAD
ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((ROOT / "charts/emotivoice-operator/values.yaml").read_text("utf-8"))


def _node(name: str, pool: str) -> dict[str, Any]:
    """A simulated node with one GPU, as hack/cluster.sh makes its fake nodes."""
    resources = {
        "cpu": "8",
        "memory": "32Gi",
        "pods": "110",
        "ephemeral-storage": "100Gi",
        "nvidia.com/gpu": "1",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "type": "kwok",
                "nvidia.com/gpu.present": "true",
                "evs.test/pool": pool,
            },
        },
        "spec": {
            "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


@contextlib.contextmanager
def _gpu_nodes(cluster: Cluster, pool: str) -> Iterator[list[str]]:
    nodes = [f"kwok-{pool}-{i}" for i in range(2)]
    cluster.apply([_node(n, pool) for n in nodes])
    try:
        yield nodes
    finally:
        cluster.kubectl("delete", "node", *nodes, "--wait=false", check=False)


def _priority_class(cluster: Cluster) -> None:
    """The chart's placeholder PriorityClass (its value from charts/emotivoice-operator/values.yaml),
    under the name the operator uses without the chart's setting."""
    pc = VALUES["placeholderPriorityClass"]
    cluster.apply(
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": DEFAULT_PLACEHOLDER_PRIORITY_CLASS},
            "value": pc["value"],
            "preemptionPolicy": "Never",
            "globalDefault": False,
        }
    )


def _resource(pool: str) -> dict[str, Any]:
    body = valid_resource(NAME)
    spec = body["spec"]
    spec["model"]["cache"] = {"scope": "Ephemeral"}
    spec["replicas"] = {"min": 0, "max": 2}
    spec["server"] = {
        "gpus": 1,
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "nodeSelector": {"evs.test/pool": pool},
    }
    window = spec["warmPool"]["windows"][0]
    window |= {"leadTime": "10m", "capacity": {"placeholders": True, "nodeLead": "10m"}}
    spec["warmPool"]["prePull"] = {"enabled": True, "lead": "5m"}
    return body


def _pods(cluster: Cluster, namespace: str, component: str) -> list[dict[str, Any]]:
    selector = f"{names.LABEL_INSTANCE}={NAME},{names.LABEL_COMPONENT}={component}"
    return cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]


def _placeholders(status: dict[str, Any]) -> list[dict[str, Any]]:
    return (status.get("capacity") or {}).get("placeholders") or []


def test_placeholders_hold_gpu_nodes_and_the_replicas_preempt_them(
    cluster: Cluster, namespace: str
) -> None:
    install_crd(cluster)
    _priority_class(cluster)
    with _gpu_nodes(cluster, namespace[-20:].strip("-")) as nodes:
        pool = namespace[-20:].strip("-")
        cluster.apply(_resource(pool), namespace=namespace)
        op = InProcess(cluster, namespace, START - timedelta(hours=1))

        # An hour ahead: nothing of the warm path exists yet.
        op.reconcile(NAME)
        assert _pods(cluster, namespace, names.COMPONENT_PLACEHOLDER) == []
        assert op.reasons(NAME, "PlaceholdersCreated") == []

        # From the node lead: a placeholder on each GPU node, holding its one GPU.
        op.now = REPLICAS_AT - NODE_LEAD + timedelta(seconds=30)
        held = op.until(
            NAME,
            lambda s: (
                sorted(p["state"] for p in _placeholders(s))
                == sorted(f"Holding {n}" for n in nodes)
            ),
            "two placeholders holding the two GPU nodes",
        )
        assert held
        assert len(op.reasons(NAME, "PlaceholdersCreated")) == 1
        for pod in _pods(cluster, namespace, names.COMPONENT_PLACEHOLDER):
            assert pod["spec"]["priority"] == VALUES["placeholderPriorityClass"]["value"]
            assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"

        # From the image lead: the pre-pull DaemonSet has a pod on each of those nodes, and
        # none elsewhere (the cluster's other GPU node lacks the pool's label).
        op.now = REPLICAS_AT - IMAGE_LEAD + timedelta(seconds=30)
        pulled = op.until(
            NAME,
            lambda s: (
                {e["node"]: e["state"] for e in (s.get("prePull") or {}).get("nodes") or []}
                == dict.fromkeys(nodes, "Pulled")
            ),
            "the image pre-pulled on both GPU nodes",
        )
        assert pulled
        assert op.reasons(NAME, "ImagePrePull")
        ds = cluster.get_json("daemonset", names.prepull(NAME), "-n", namespace)
        assert ds["spec"]["template"]["spec"]["nodeSelector"] == {
            "evs.test/pool": pool,
            "nvidia.com/gpu.present": "true",
        }

        # The replicas' lead: the floor rises to 2; both GPUs are held, so the scheduler
        # preempts the placeholders and the replicas land where they were.
        op.now = REPLICAS_AT + timedelta(seconds=30)
        op.until(NAME, lambda s: s.get("readyReplicas") == 2, "the window's two replicas Ready")
        servers = _pods(cluster, namespace, names.COMPONENT_SERVER)
        assert sorted(p["spec"]["nodeName"] for p in servers) == sorted(nodes)
        # The scheduler's own Events on its victims (one victim may get one per attempt).
        preempted = {
            e["involvedObject"]["name"]
            for e in cluster.get_json("events", "-n", namespace)["items"]
            if e["reason"] == "Preempted"
            and e["involvedObject"]["name"].startswith(f"{NAME}-hold-")
        }
        assert preempted == {f"{NAME}-hold-morning-0", f"{NAME}-hold-morning-1"}, preempted
        assert op.reasons(NAME, "PlaceholderPreempted")

        # Afterwards: no placeholder and no pre-pull left, and none comes back this occurrence.
        op.now = START - timedelta(minutes=1)
        op.until(
            NAME,
            lambda s: (
                not _placeholders(s)
                and (s.get("prePull") or {}).get("finished")
                and not _pods(cluster, namespace, names.COMPONENT_PLACEHOLDER)
            ),
            "the placeholders and the pre-pull gone",
        )
        wait_for(
            lambda: (
                cluster.kubectl(
                    "get", "daemonset", names.prepull(NAME), "-n", namespace, check=False
                ).returncode
                != 0
            ),
            timeout=30,
            interval=1,
            what="the pre-pull DaemonSet deleted",
        )
        assert op.reasons(NAME, "ImagePrePullDone")
        op.reconcile(NAME)
        assert _pods(cluster, namespace, names.COMPONENT_PLACEHOLDER) == []
