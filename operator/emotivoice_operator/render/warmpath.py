"""The warm path's children, rendered from the server workload as render/deployment.py made it,
so they land where its pods land (node selector, affinity, tolerations) and the placeholders ask
for what its pods ask for. Pure.

- The pre-pull DaemonSet: its pod's init container is the server image running a command that
  exits at once (the kubelet pulls the image to run it), its main container the pause image the
  nodes already hold for every pod sandbox, requests near zero and no GPU. It is its own object,
  not the server workload: scaling the server down cannot cancel a pull.
- Capacity placeholders: bare pods (a preempted one is not recreated behind the operator's back)
  of the pause image with the server pod's requests and limits, GPU included, at the chart's
  placeholder PriorityClass (negative, preemptionPolicy Never).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from emotivoice_operator.render import labels, names
from emotivoice_operator.render.context import Owner
from emotivoice_operator.render.security import container_security_context, pod_security_context

# Requests of the pre-pull pod's containers: enough to be scheduled anywhere, nothing to reserve.
PREPULL_RESOURCES = {"requests": {"cpu": "1m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
# The init container's command: the shell every server image variant has; it exits at once.
PREPULL_COMMAND = ["sh", "-c", "exit 0"]
# Pod spec fields that steer scheduling, copied from the server pods.
_PLACEMENT = ("nodeSelector", "affinity", "tolerations")


def _server_pod(workload: Mapping[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def _server_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    return next(c for c in _server_pod(workload)["containers"] if c["name"] == "server")


def _placement(workload: Mapping[str, Any], gpu_node_selector: Mapping[str, str]) -> dict[str, Any]:
    """Where the server pods can land, for pods that request no GPU: the node selector gets
    the GPU node labels when the server asks for GPUs (nothing else keeps a pod without a GPU
    request off CPU nodes); only node affinity is kept (pod (anti-)affinity relates server
    pods to one another, not to nodes)."""
    pod = _server_pod(workload)
    out: dict[str, Any] = {k: copy.deepcopy(pod[k]) for k in _PLACEMENT if k in pod}
    if "affinity" in out:
        node_affinity = out["affinity"].get("nodeAffinity")
        out.pop("affinity")
        if node_affinity:
            out["affinity"] = {"nodeAffinity": node_affinity}
    limits = _server_container(workload).get("resources", {}).get("limits", {})
    if any(k.endswith("/gpu") for k in limits) and gpu_node_selector:
        out["nodeSelector"] = dict(
            sorted({**out.get("nodeSelector", {}), **gpu_node_selector}.items())
        )
    return out


def prepull_daemonset(
    owner: Owner,
    workload: Mapping[str, Any],
    pause_image: str,
    gpu_node_selector: Mapping[str, str],
    window: str,
) -> dict[str, Any]:
    """The DaemonSet NAME-prepull that pulls the server workload's image onto every node its
    pods can land on. ``window`` (annotation) says which occurrence it serves, for people."""
    server = _server_container(workload)
    selector = labels.selector(owner, names.COMPONENT_PREPULL)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": 0,
        "initContainers": [
            {
                "name": "pull",
                "image": server["image"],
                "imagePullPolicy": "IfNotPresent",
                "command": PREPULL_COMMAND,
                "resources": copy.deepcopy(PREPULL_RESOURCES),
                "securityContext": container_security_context(),
            }
        ],
        "containers": [
            {
                "name": "hold",
                "image": pause_image,
                "imagePullPolicy": "IfNotPresent",
                "resources": copy.deepcopy(PREPULL_RESOURCES),
                "securityContext": container_security_context(),
            }
        ],
        **_placement(workload, gpu_node_selector),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": labels.metadata(
            owner,
            names.prepull(owner.name),
            names.COMPONENT_PREPULL,
            annotations={"tts.emotivoice.io/window": window},
        ),
        "spec": {
            "selector": {"matchLabels": selector},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": labels.standard(owner, names.COMPONENT_PREPULL)},
                "spec": pod_spec,
            },
        },
    }


def placeholder_pods(
    owner: Owner,
    workload: Mapping[str, Any],
    pause_image: str,
    priority_class: str,
    window: str,
    count: int,
) -> list[dict[str, Any]]:
    """``count`` placeholder pods for ``window``: the pause image with the server container's
    requests and limits (GPU included) where the server pods can land, at ``priority_class``."""
    server = _server_container(workload)
    pods = []
    for index in range(count):
        meta = labels.metadata(
            owner, names.placeholder(owner.name, window, index), names.COMPONENT_PLACEHOLDER
        )
        meta["labels"][names.LABEL_WINDOW] = window
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "priorityClassName": priority_class,
                    "restartPolicy": "Always",
                    "securityContext": pod_security_context(),
                    # A victim of preemption leaves at once: the replica waits for its room.
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "hold",
                            "image": pause_image,
                            "imagePullPolicy": "IfNotPresent",
                            "resources": copy.deepcopy(server.get("resources", {})),
                            "securityContext": container_security_context(),
                        }
                    ],
                    **_placement(workload, {}),
                },
            }
        )
    return pods
