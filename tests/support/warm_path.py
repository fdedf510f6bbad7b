"""One window's warm path on the real node, measured (the end-to-end test asserts on it, the
window benchmark reports it): the server image removed from containerd, a replica's own cold
start with its pull (the baseline), then a window three minutes ahead with the image pre-pull,
whose replica starts on a node that already holds the image.

The window's replica lead is learned (``leadTime: auto``, in seconds) from the service's own
starts before the window is set: the operator raises the floor ``lead`` before the start, so the
replica spends about its own cold start warm before the window, not the rest of a minute.

Every instant comes from the API (objects' creation, conditions, the kubelet's Events, the
operator's status), so the timeline is what the cluster recorded, not what this process saw.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emotivoice_operator.warmpath.pulls import Pull, parse_pulled
from tests.support import realnode
from tests.support.cluster import Cluster
from tests.support.operator_process import wait_for
from tests.support.services import create_service, evs_manifest
from tests.support.store import ModelStore
from tests.support.timestamps import instant
from tests.support.workload import pod_ready

COLD = "tts-cold"
WARM = "tts-path"
# The window: starts on the first minute at least three minutes ahead; the replica's lead
# learned from LEARN_STARTS starts (p95 + the caller's margin); the image lead 3m (fixed: the first pull on a
# fresh node has nothing to learn from), so the pre-pull is due within a minute of the window
# being set and has 2-3 minutes before the replica comes.
WINDOW_AHEAD_MIN = 3
LEARN_STARTS = 3
AUTO_LEAD = {"initial": "1m", "min": "1s", "minStarts": LEARN_STARTS}
IMAGE_LEAD = "3m"


@dataclass
class Start:
    """One replica's cold start as status.coldStarts recorded it, with its pull."""

    pod: str
    created: str
    ready: str
    seconds: float
    image_phase_s: float
    image_pre_pulled: bool | None
    pull: dict[str, Any] | None
    # containerd's own times (ns precision): the pod's sandbox -> its first container created,
    # where the kubelet pulls the image or finds it present (realnode.container_created).
    sandbox_to_first_container_s: float | None = None
    # The scheduler's Scheduled Event (microseconds; ``created`` has whole seconds): when the
    # replica took its room on the node, which a warm replica holds until the window.
    scheduled: str | None = None
    # status.coldStarts' phases of this start (seconds).
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class WindowRun:
    """The pre-pulled window: its instants (ISO, UTC) and the replica's start."""

    window_start: str
    # When the window was set (this process's clock): the service had learned its lead before.
    window_set: str
    prepull_created: str
    prepull_pulls: list[dict[str, Any]]
    prepull_pulled_at: str | None
    replica: Start
    image_bytes: int
    # status.leadTime when the window was set: the learned replica lead, and from what.
    lead: dict[str, Any] = field(default_factory=dict)
    # The starts the lead was learned from (status.coldStarts.recent: seconds, phases).
    learned_from: list[dict[str, Any]] = field(default_factory=list)
    status_pre_pull: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pods(cluster: Cluster, ns: str, name: str, component: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component={component}"
    return cluster.get_json("pods", "-n", ns, "-l", selector)["items"]


def _pulled_events(cluster: Cluster, ns: str, pod: str) -> list[dict[str, Any]]:
    events = cluster.get_json(
        "events", "-n", ns, "--field-selector", f"involvedObject.name={pod},reason=Pulled"
    )["items"]
    return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def scheduled_at(cluster: Cluster, ns: str, pod: str) -> str | None:
    """The scheduler's Scheduled Event's time for ``pod`` (events.k8s.io: microseconds)."""
    events = cluster.get_json(
        "events", "-n", ns, "--field-selector", f"involvedObject.name={pod},reason=Scheduled"
    )["items"]
    return next((e["eventTime"] for e in events if e.get("eventTime")), None)


def image_pull(cluster: Cluster, ns: str, pod: str, node: str, image: str) -> Pull | None:
    """The kubelet's pull of ``image`` for ``pod``: the Event that pulled it, else one that
    found it present."""
    pulls = [
        p
        for e in _pulled_events(cluster, ns, pod)
        if (p := parse_pulled(e.get("message") or "", pod, node)) and p.image == image
    ]
    return next((p for p in pulls if not p.present), pulls[0] if pulls else None)


def _status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.get_json("evs", name, "-n", ns).get("status") or {}


def _start_count(cluster: Cluster, ns: str, name: str) -> int:
    return int((_status(cluster, ns, name).get("coldStarts") or {}).get("count") or 0)


def _start(cluster: Cluster, ns: str, name: str, image: str, after: int = 0) -> Start:
    """The service's latest cold start, once status has recorded more than ``after``."""

    def recorded() -> dict[str, Any] | None:
        starts = _status(cluster, ns, name).get("coldStarts") or {}
        recent = starts.get("recent") or []
        return recent[-1] if recent and int(starts.get("count") or 0) > after else None

    record = wait_for(recorded, timeout=120, interval=1, what=f"{name}'s cold start recorded")
    (pod,) = [p for p in _pods(cluster, ns, name, "server") if pod_ready(p)]
    node = pod["spec"]["nodeName"]
    pull = image_pull(cluster, ns, pod["metadata"]["name"], node, image)
    created = realnode.container_created(pod["metadata"]["name"], ns)
    first = created.get("fetch-model")
    precise = round(first - created["sandbox"], 3) if first and "sandbox" in created else None
    return Start(
        pod=record["pod"],
        created=pod["metadata"]["creationTimestamp"],
        ready=record["at"],
        seconds=float(record["seconds"]),
        image_phase_s=float(record["phases"].get("image", 0.0)),
        image_pre_pulled=record.get("imagePrePulled"),
        pull=pull.to_status() if pull else None,
        sandbox_to_first_container_s=precise,
        scheduled=scheduled_at(cluster, ns, pod["metadata"]["name"]),
        phases={k: float(v) for k, v in (record.get("phases") or {}).items()},
    )


def _manifest(name: str, store: ModelStore, server: dict[str, Any] | None, **spec: object) -> dict:
    """evs_manifest's service, its spec.server replaced by ``server`` when given (the window
    bench's: the CRD's default warm-up and resources, what users get)."""
    manifest = evs_manifest(name, store, **spec)
    if server is not None:
        manifest["spec"]["server"] = server
    return manifest


def cold_baseline(
    cluster: Cluster,
    ns: str,
    store: ModelStore,
    cache_root: Path,
    image: str,
    server: dict[str, Any] | None = None,
) -> Start:
    """A replica's own cold start with the image removed from the node: the pull in its image
    phase. The service is deleted afterwards (its pods gone). Raises realnode.ImageInUse, before
    anything is made, where a pod of another namespace runs the image (a demo's server)."""
    assert realnode.remove_image(image, besides=ns), f"containerd could not remove {image}"
    create_service(cluster, ns, _manifest(COLD, store, server), cache_root, timeout=600)
    start = _start(cluster, ns, COLD, image)
    cluster.kubectl("delete", "evs", COLD, "-n", ns, "--wait=true", "--timeout=120s", timeout=150)
    _gone(cluster, ns, COLD, [start.pod])  # so the next pull is real
    return start


def _window(start: datetime) -> dict[str, Any]:
    return {
        "name": "peak",
        "cron": f"{start.minute} {start.hour} * * *",
        "duration": "3m",
        "leadTime": "auto",
        "replicas": 1,
    }


def _hand_over_cache(source: Path, target: Path) -> None:
    """The baseline's verified cache volume becomes the window service's: the directory renamed,
    so its files keep their inodes and mtimes and the marker's quick check holds, as for a Shared
    claim's next replica. (A copy has new inodes: its first start re-hashed the whole model,
    2.5 s of the full-size one, and that start set the learned lead's p95.)"""
    source.rename(target)


def _scale(cluster: Cluster, ns: str, name: str, replicas: int) -> None:
    body = json.dumps({"spec": {"replicas": {"min": replicas}}})
    cluster.kubectl("patch", "evs", name, "-n", ns, "--type=merge", "-p", body)


def _gone(cluster: Cluster, ns: str, name: str, pods: list[str]) -> None:
    """The service's server pods gone, and their stopped containers with them (they keep the
    image's content referenced, so a removal of the image would leave it on disk)."""
    wait_for(
        lambda: not _pods(cluster, ns, name, "server"), timeout=180, what=f"{name}'s pods gone"
    )
    for pod in pods:
        realnode.remove_pod_containers(pod, ns)


def _learn_lead(cluster: Cluster, ns: str, name: str) -> None:
    """The service scaled from zero to one replica LEARN_STARTS times, until leadTime: auto has
    learned from those starts, and left at zero. Each start is the one a window's replica will
    have: alone on the node (no pod of the service draining beside it), the image present, the
    Shared cache verified, not downloaded. (A deleted pod's replacement, which the earlier runs
    learned from, starts beside the old pod draining: a start no window's replica has.)"""
    for k in range(LEARN_STARTS):
        if k:
            _scale(cluster, ns, name, 1)
        wait_for(
            lambda k=k: (
                _start_count(cluster, ns, name) > k
                and any(pod_ready(p) for p in _pods(cluster, ns, name, "server"))
            ),
            timeout=300,
            interval=1,
            what=f"{name}'s start {k + 1} of {LEARN_STARTS} recorded",
        )
        pods = [p["metadata"]["name"] for p in _pods(cluster, ns, name, "server")]
        _scale(cluster, ns, name, 0)
        _gone(cluster, ns, name, pods)
    wait_for(
        lambda: (_status(cluster, ns, name).get("leadTime") or {}).get("mode") == "learned",
        timeout=60,
        what=f"{name}'s lead learned",
    )


def prepulled_window(
    cluster: Cluster,
    ns: str,
    store: ModelStore,
    cache_root: Path,
    image: str,
    margin: str = "1s",
    server: dict[str, Any] | None = None,
) -> WindowRun:
    """A window about three minutes ahead with the image pre-pull, the image removed first.

    The service (its window half a day away) first goes from zero to one replica and back until
    its replica lead is learned (``_learn_lead``); its pods' containers and the image are
    removed, and only then is the window moved to three minutes ahead: the DaemonSet pulls while
    nothing warm exists.

    Its cache is the baseline's volume (what a Shared claim holds after its first replica's
    download), so the starts it learns from are the start the window's replica will have: the
    image present, the cache verified, not downloaded."""
    far = datetime.now(UTC) + timedelta(hours=12)
    pool = {
        "timeZone": "UTC",
        "windows": [_window(far)],
        "autoLeadTime": {**AUTO_LEAD, "margin": margin},
        "prePull": {"enabled": True, "lead": IMAGE_LEAD},
    }
    manifest = _manifest(WARM, store, server, replicas={"min": 1, "max": 1}, warmPool=pool)
    _hand_over_cache(cache_root / ns / f"{COLD}-model", cache_root / ns / f"{WARM}-model")
    create_service(cluster, ns, manifest, cache_root, wait=False)
    _learn_lead(cluster, ns, WARM)
    assert realnode.remove_image(image, besides=ns), f"containerd could not remove {image}"
    before = _start_count(cluster, ns, WARM)
    learned = _status(cluster, ns, WARM)
    lead = learned.get("leadTime") or {}
    # The next whole minute at least three minutes ahead (a cron window starts on a minute).
    start = (datetime.now(UTC) + timedelta(minutes=WINDOW_AHEAD_MIN, seconds=59)).replace(
        second=0, microsecond=0
    )
    window_set = datetime.now(UTC)
    patch = {"spec": {"warmPool": {"windows": [_window(start)]}}}
    cluster.kubectl("patch", "evs", WARM, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    ds = wait_for(
        lambda: cluster.get_json("daemonset", f"{WARM}-prepull", "-n", ns),
        timeout=120,
        what="the pre-pull DaemonSet",
    )
    wait_for(
        lambda: any(pod_ready(p) for p in _pods(cluster, ns, WARM, "server")),
        timeout=(start - datetime.now(UTC)).total_seconds() + 240,
        interval=1,
        what="the window's replica Ready",
    )
    replica = _start(cluster, ns, WARM, image, after=before)
    status = _status(cluster, ns, WARM)
    pre = status.get("prePull") or {}
    pulls = [p for p in pre.get("pulls") or [] if not p.get("present")]
    pulled_at = None
    # The pre-pull pods are gone with their DaemonSet; their Events stay (an hour).
    for entry in pre.get("pulls") or []:
        for event in _pulled_events(cluster, ns, entry["pod"]):
            pulled_at = event.get("lastTimestamp") or pulled_at
    return WindowRun(
        window_start=_iso(start),
        window_set=_iso(window_set),
        prepull_created=ds["metadata"]["creationTimestamp"],
        prepull_pulls=pulls,
        prepull_pulled_at=pulled_at,
        replica=replica,
        image_bytes=sum(realnode.image_layer_sizes(image)),
        lead=lead,
        learned_from=[
            {"seconds": r.get("seconds"), "phases": r.get("phases")}
            for r in (learned.get("coldStarts") or {}).get("recent") or []
        ],
        status_pre_pull=pre,
    )


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_between(a: str | None, b: str | None) -> float | None:
    """Seconds from timestamp ``a`` to ``b`` (None when either is missing)."""
    return instant(b) - instant(a) if a and b else None
