"""What the warm path's pods show, per node (pre-pull) and per pod (placeholders). Pure.

A pre-pull pod's init container is the server image running a command that exits at once:
once it has terminated with exit code 0 the kubelet has the image on that node (``Pulled``);
waiting on an image error it is ``Failed``; otherwise the pull is under way (``Pulling``).
A placeholder is ``Pending`` until scheduled, then holds room on its node; the scheduler marks
a victim of preemption with the condition ``DisruptionTarget`` (reason
``PreemptionByScheduler``) before deleting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PULLED, PULLING, FAILED = "Pulled", "Pulling", "Failed"
PENDING, HOLDING, PREEMPTED = "Pending", "Holding", "Preempted"
# Waiting reasons of a container whose image cannot be had (the kubelet's, pkg/kubelet/images).
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
PREEMPTION_REASON = "PreemptionByScheduler"


def pull_state(pod: Mapping[str, Any]) -> str:
    """Pulled, Pulling or Failed for one pre-pull pod."""
    statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
    for status in statuses:
        state = status.get("state") or {}
        if (state.get("terminated") or {}).get("exitCode") == 0 or status.get("ready"):
            return PULLED
        if (state.get("waiting") or {}).get("reason") in IMAGE_ERRORS:
            return FAILED
    # Past the init container (it ran before, the pod restarted): the image is there.
    if any((s.get("state") or {}).get("running") for s in _main_statuses(pod)):
        return PULLED
    return PULLING


def _main_statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return (pod.get("status") or {}).get("containerStatuses") or []


def node_states(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Node name -> Pulled/Pulling/Failed, for the pre-pull pods bound to a node (sorted)."""
    out = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            out[node] = pull_state(pod)
    return dict(sorted(out.items()))


def preempted(pod: Mapping[str, Any]) -> bool:
    """The scheduler chose this pod as a victim of preemption."""
    return any(
        c.get("type") == "DisruptionTarget" and c.get("reason") == PREEMPTION_REASON
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def placeholder_state(pod: Mapping[str, Any]) -> str:
    """Pending, Holding NODE, or Preempted for one placeholder pod."""
    if preempted(pod):
        return PREEMPTED
    node = (pod.get("spec") or {}).get("nodeName")
    return f"{HOLDING} {node}" if node else PENDING
