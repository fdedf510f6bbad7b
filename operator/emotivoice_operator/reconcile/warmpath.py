"""A pass's I/O for the warm path (warmpath/): the placeholder pods it creates and removes, the
kubelet's ``Pulled`` Events it reads, and status.prePull / status.capacity it writes.

The pre-pull DaemonSet itself goes through the one apply path with the other children (desired
renders it only while due, so the prune removes it). Placeholders are bare pods, created here:
a preempted placeholder must not be recreated behind the operator's back once the window's
replicas are on their way (a ReplicaSet would), so only this module makes them, and only
between the node lead and the replicas' lead (warmpath/plan.py).

What must survive an operator restart is in status: the pulls measured (the image lead learns
from them), the occurrences whose path is done (nothing of theirs comes back) and each
placeholder last seen (a placeholder gone without the operator deleting it was preempted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator.desired import DesiredState, WarmPathMemory
from emotivoice_operator.reconcile.report import (
    NORMAL,
    REASON_IMAGE_PRE_PULL,
    REASON_IMAGE_PRE_PULL_DONE,
    REASON_IMAGE_PRE_PULL_FAILED,
    REASON_IMAGE_PULLED,
    REASON_PLACEHOLDER_PREEMPTED,
    REASON_PLACEHOLDERS_CREATED,
    REASON_PLACEHOLDERS_REMOVED,
    WARNING,
    EventPoster,
)
from emotivoice_operator.render import names
from emotivoice_operator.tuning.coldstarts import stamp
from emotivoice_operator.warmpath import nodes as wn
from emotivoice_operator.warmpath.pulls import RECENT_PULLS, Pull, parse_pulled

# Occurrences status remembers as done (oldest dropped first): more than a week of windows.
DONE_KEPT = 40


def memory_of(status: Mapping[str, Any], ready_replicas: int) -> WarmPathMemory:
    """What desired_state needs from status.prePull and status.capacity."""
    pre = status.get("prePull") or {}
    cap = status.get("capacity") or {}
    lead = pre.get("lead") or {}
    in_force = None
    if lead.get("mode") == "learned" and isinstance(lead.get("seconds"), int):
        in_force = timedelta(seconds=lead["seconds"])
    pulls = []
    for entry in pre.get("pulls") or []:
        try:
            pulls.append(Pull.from_status(entry))
        except (TypeError, ValueError):
            continue
    done = frozenset([*(pre.get("done") or []), *(cap.get("done") or [])])
    return WarmPathMemory(tuple(pulls), in_force, done, ready_replicas)


@dataclass
class WarmPathOutcome:
    """status.prePull and status.capacity to write (None: leave as they are)."""

    pre_pull: dict[str, Any] | None = None
    capacity: dict[str, Any] | None = None


def _component(pod: Mapping[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(names.LABEL_COMPONENT, "")


class WarmPathIO:
    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def run(
        self,
        namespace: str,
        desired: DesiredState,
        warm_pods: list[dict[str, Any]],
        status: Mapping[str, Any],
        post: EventPoster,
    ) -> WarmPathOutcome:
        out = WarmPathOutcome()
        path = desired.warm_path
        prepull_pods = [p for p in warm_pods if _component(p) == names.COMPONENT_PREPULL]
        holders = [p for p in warm_pods if _component(p) == names.COMPONENT_PLACEHOLDER]
        if path.image_lead is not None or status.get("prePull"):
            out.pre_pull = self._pre_pull(namespace, desired, prepull_pods, status, post)
        if path.placeholders_keep or holders or status.get("capacity"):
            out.capacity = self._capacity(namespace, desired, holders, status, post)
        return out

    # The image pre-pull.
    def _pre_pull(
        self,
        namespace: str,
        desired: DesiredState,
        pods: list[dict[str, Any]],
        status: Mapping[str, Any],
        post: EventPoster,
    ) -> dict[str, Any]:
        path = desired.warm_path
        prev = dict(status.get("prePull") or {})
        done = _kept([*(prev.get("done") or []), *sorted(path.done)])
        pulls = [Pull.from_status(e) for e in prev.get("pulls") or []]
        if path.image_lead is None:
            return {**prev, "done": done}
        stage = path.prepull_for
        out: dict[str, Any] = {**prev, "lead": path.image_lead.status(), "done": done}
        if stage is None:
            if prev.get("occurrence") and not prev.get("finished"):
                out["finished"] = True
                pulled = [e["node"] for e in prev.get("nodes") or [] if e.get("state") == wn.PULLED]
                post(
                    NORMAL, REASON_IMAGE_PRE_PULL_DONE,
                    f"pre-pull for {prev.get('window')} removed: the server image is on "
                    f"{len(pulled)} node(s) ({', '.join(pulled) or 'none'})",
                )  # fmt: skip
            return out
        states = wn.node_states(pods)
        if prev.get("occurrence") != stage.key():
            post(
                NORMAL, REASON_IMAGE_PRE_PULL,
                f"pulling {path.image} onto the pool's nodes for window {stage.window.name} "
                f"(starts {stamp(stage.start)}); lead {stage.split()}",
            )  # fmt: skip
            prev_states: dict[str, str] = {}
        else:
            prev_states = {e["node"]: e["state"] for e in prev.get("nodes") or []}
        # The kubelet posts Pulled before the container runs, so a pod past its pull whose
        # Event is not found once (a runtime that posts none: KWOK) is not looked for again.
        measured = {p.pod for p in pulls} | set(prev.get("unmeasured") or [])
        waiting = {
            p["metadata"]["name"]: (p.get("spec") or {}).get("nodeName", "")
            for p in pods
            if wn.pull_state(p) == wn.PULLED and p["metadata"]["name"] not in measured
        }
        new_pulls = self._read_pulls(namespace, path.image, waiting) if waiting else []
        pulls = [*pulls, *new_pulls][-RECENT_PULLS:]
        found = {p.pod for p in new_pulls}
        unmeasured = [
            n for n in prev.get("unmeasured") or [] if n in {p["metadata"]["name"] for p in pods}
        ]
        unmeasured += sorted(n for n in waiting if n not in found)
        for pull in new_pulls:
            post(
                NORMAL, REASON_IMAGE_PULLED,
                f"{path.image} on node {pull.text()} for window {stage.window.name}",
            )  # fmt: skip
        for node, state in states.items():
            if state == wn.FAILED and prev_states.get(node) != wn.FAILED:
                post(
                    WARNING, REASON_IMAGE_PRE_PULL_FAILED,
                    f"node {node} cannot pull {path.image} (see the pod of DaemonSet "
                    f"{names.prepull(desired_name(desired))}): the window's replicas there pull it "
                    "themselves",
                )  # fmt: skip
        out |= {
            "window": stage.window.name,
            "occurrence": stage.key(),
            "start": stamp(stage.start),
            "image": path.image,
            "nodes": [{"node": n, "state": s} for n, s in states.items()],
            "pulls": [p.to_status() for p in pulls],
            "unmeasured": unmeasured,
            "finished": False,
        }
        return out

    def _read_pulls(self, namespace: str, image: str, pods: Mapping[str, str]) -> list[Pull]:
        """The Pulled Events of the pre-pull pods ``pods`` (name -> node) for ``image``: one
        list of the namespace's Pulled Events, only while a finished pull is unmeasured."""
        try:
            listed = self.core.list_namespaced_event(
                namespace, field_selector="reason=Pulled,involvedObject.kind=Pod"
            )
        except ApiException:
            return []
        found: dict[str, Pull] = {}
        for event in listed.items:
            obj = event.involved_object
            if obj.name not in pods or obj.field_path not in (None, "spec.initContainers{pull}"):
                continue
            pull = parse_pulled(event.message or "", obj.name, pods[obj.name])
            if pull is not None and pull.image == image:
                found[obj.name] = pull
        return [found[n] for n in sorted(found)]

    # Capacity placeholders.
    def _capacity(
        self,
        namespace: str,
        desired: DesiredState,
        holders: list[dict[str, Any]],
        status: Mapping[str, Any],
        post: EventPoster,
    ) -> dict[str, Any]:
        path = desired.warm_path
        prev = dict(status.get("capacity") or {})
        last_seen = {e["pod"]: e for e in prev.get("placeholders") or [] if "pod" in e}
        seen = {p["metadata"]["name"]: p for p in holders}
        removed: set[str] = set()
        for name, pod in seen.items():
            window = pod["metadata"]["labels"].get(names.LABEL_WINDOW, "")
            if window in path.placeholders_keep:
                continue
            if pod["metadata"].get("deletionTimestamp"):
                removed.add(name)
                continue
            self._delete(namespace, name)
            removed.add(name)
        windows_removed = sorted(
            {seen[n]["metadata"]["labels"].get(names.LABEL_WINDOW, "") for n in removed}
        )
        for window in windows_removed:
            post(
                NORMAL, REASON_PLACEHOLDERS_REMOVED,
                f"capacity placeholders of window {window} removed: its replicas are Ready or "
                "its occurrence ended",
            )  # fmt: skip
        created: dict[str, str] = {}
        for window, manifests in path.placeholders_create.items():
            for manifest in manifests:
                name = manifest["metadata"]["name"]
                if name in seen:
                    continue
                if self._create(namespace, manifest):
                    created[name] = window
        if created:
            post(
                NORMAL, REASON_PLACEHOLDERS_CREATED,
                f"{len(created)} capacity placeholder(s) hold room for the windows' replicas: "
                f"{', '.join(created)}",
            )  # fmt: skip
        entries = []
        for name, pod in sorted(seen.items()):
            if name in removed:
                continue
            state = wn.placeholder_state(pod)
            before = last_seen.get(name, {}).get("state", "")
            if state == wn.PREEMPTED and before != wn.PREEMPTED:
                node = (pod.get("spec") or {}).get("nodeName", "")
                post(
                    NORMAL, REASON_PLACEHOLDER_PREEMPTED,
                    f"placeholder {name} on node {node} was preempted by the scheduler: its room "
                    "goes to a replica",
                )  # fmt: skip
            window = pod["metadata"]["labels"].get(names.LABEL_WINDOW, "")
            entries.append({"pod": name, "window": window, "state": state})
        for name, entry in sorted(last_seen.items()):
            if name in seen or name in created:
                continue
            if entry.get("state") != wn.PREEMPTED and entry.get("state", "").startswith(wn.HOLDING):
                post(
                    NORMAL, REASON_PLACEHOLDER_PREEMPTED,
                    f"placeholder {name} ({entry['state'].lower()}) is gone without the operator "
                    "deleting it: preempted by the scheduler (or deleted by someone)",
                )  # fmt: skip
        for name, window in created.items():
            entries.append({"pod": name, "window": window, "state": wn.PENDING})
        done = _kept([*(prev.get("done") or []), *sorted(path.done)])
        return {"placeholders": sorted(entries, key=lambda e: e["pod"]), "done": done}

    def _create(self, namespace: str, manifest: dict[str, Any]) -> bool:
        try:
            self.core.create_namespaced_pod(namespace, manifest, field_manager=names.FIELD_MANAGER)
        except ApiException as exc:
            if exc.status == 409:
                return False  # made by an earlier pass; the watch has not shown it yet
            raise
        return True

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise


def ready_server_pods(pods: list[dict[str, Any]]) -> int:
    """Server pods Ready now and not leaving: whether the window's floor is met."""
    return sum(
        1
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )


def desired_name(desired: DesiredState) -> str:
    workload = next(m for m in desired.manifests if m["kind"] in ("Deployment", "StatefulSet"))
    return str(workload["metadata"]["name"])


def _kept(keys: list[str]) -> list[str]:
    """Keys in first-seen order, without repeats, the last ``DONE_KEPT``."""
    return list(dict.fromkeys(keys))[-DONE_KEPT:]
