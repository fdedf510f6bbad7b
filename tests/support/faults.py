"""The fault suite's machinery: inject a fault into the local cluster, and judge what it did to a
service (recovery time, objects duplicated or lost, the window met or missed).

Why here: the fault tests (tests/faults/) and the soak (bench/soak.py) inject the same faults and
count the same damage; the injections are hack/cluster.sh's and hack/node.sh's own `restart`
(one job a script), and etcd's compaction through its JSON gateway.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emotivoice_operator.cli_render import render_service
from emotivoice_operator.settings import OperatorSettings
from tests.support.cluster import REPO, Cluster, state_dir
from tests.support.workload import pod_ready, server_pods

# The kinds the operator creates for a service (its children), as kubectl names them.
CHILD_KINDS = "statefulset,deployment,service,pvc,hpa,cronjob,serviceaccount,role,rolebinding"
# Where each test's figures go, one JSON object a line (docs/benchmarks.md is written from it).
REPORT_ENV = "EVS_FAULTS_REPORT"


class FaultError(RuntimeError):
    """An injection failed; the message carries the script's output."""


def ports() -> dict[str, str]:
    """hack/cluster.sh's ports.env of the cluster the tests use."""
    text = (state_dir() / "ports.env").read_text()
    return dict(line.split("=", 1) for line in text.split() if "=" in line)


def _script(script: str, *args: str, timeout: float) -> float:
    """Runs hack/SCRIPT with the tests' state directory; returns the seconds it took."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO / "hack" / script), *args],
        env={**os.environ, "EVS_CLUSTER_DIR": str(state_dir())},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise FaultError(f"hack/{script} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def restart_control_plane(component: str, pause: float = 0.0) -> float:
    """Stops etcd or kube-apiserver (or another control-plane part), starts it again after
    ``pause`` seconds, waits until the API answers; returns how long the API was unusable."""
    return _script("cluster.sh", "restart", component, str(pause), timeout=180)


def restart_node_component(component: str, pause: float = 0.0) -> float:
    """The same for the real node's kubelet, containerd, kube-proxy or metrics-server."""
    return _script("node.sh", "restart", component, str(pause), timeout=180)


def reboot_node(boot_id: str) -> float:
    """hack/node.sh reboot: every node component stopped and every container killed, then all
    started again, the containers seeing ``boot_id`` as the kernel's (what is and is not played
    of a reboot: node.sh's reboot_node); returns the seconds it took."""
    return _script("node.sh", "reboot", boot_id, timeout=300)


def _etcd(path: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{ports()['ETCD_PORT']}{path}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def etcd_revision() -> int:
    """etcd's current revision (the newest resourceVersion of the cluster)."""
    key = base64.b64encode(b"/").decode()
    return int(_etcd("/v3/kv/range", {"key": key, "limit": 1})["header"]["revision"])


def compact_etcd() -> int:
    """Compacts etcd's history up to now: a watch resumed from any earlier resourceVersion gets
    410 Gone (the API server restarted after it has no watch cache to serve it from either)."""
    revision = etcd_revision()
    _etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


def watch_status_from(cluster: Cluster, namespace: str, resource_version: str) -> str:
    """What a watch resumed from ``resource_version`` gets: "410" when it expired, else "ok"."""
    result = cluster.kubectl(
        "get", "--raw",
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1&resourceVersion={resource_version}"
        "&timeoutSeconds=1",
        check=False, timeout=20,
    )  # fmt: skip
    text = result.stdout + result.stderr
    return "410" if '"code":410' in text.replace(" ", "") or "too old" in text else "ok"


# ---- the damage --------------------------------------------------------------------------------


def expected_children(body: dict[str, Any], namespace: str) -> Counter[tuple[str, str]]:
    """The children the operator's own renderer makes for ``body`` now (kind, name)."""
    manifests, _ = render_service(body, namespace, datetime.now(UTC), OperatorSettings())
    return Counter((m["kind"], m["metadata"]["name"]) for m in manifests)


def children(cluster: Cluster, namespace: str, name: str) -> Counter[tuple[str, str]]:
    """The service's children as they are (kind, name), counted: a count above 1 is a duplicate
    (two objects of one kind for one role, under generated names)."""
    items = cluster.get_json(
        CHILD_KINDS, "-n", namespace, "-l", f"app.kubernetes.io/instance={name}"
    )
    counts: Counter[tuple[str, str]] = Counter()
    for item in items["items"]:
        if item["metadata"].get("deletionTimestamp"):
            continue
        counts[(item["kind"], item["metadata"]["name"])] += 1
    return counts


@dataclass(frozen=True)
class Census:
    duplicated: int  # objects beyond the one each expected child should be
    lost: int  # expected children that do not exist
    unexpected: int  # children the renderer would not make now (left over)

    @property
    def clean(self) -> bool:
        return self.duplicated == 0 and self.lost == 0 and self.unexpected == 0


def census(cluster: Cluster, namespace: str, body: dict[str, Any]) -> Census:
    name = body["metadata"]["name"]
    want = expected_children(body, namespace)
    have = children(cluster, namespace, name)
    dup = sum(max(0, n - 1) for n in have.values())
    lost = sum(1 for key in want if key not in have)
    unexpected = sum(1 for key in have if key not in want)
    return Census(duplicated=dup, lost=lost, unexpected=unexpected)


def ready_pods(cluster: Cluster, namespace: str, name: str) -> int:
    return sum(
        1
        for p in server_pods(cluster, namespace, name)
        if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
    )


def phase(cluster: Cluster, namespace: str, name: str) -> str:
    return (cluster.get_json("evs", name, "-n", namespace).get("status") or {}).get("phase", "")


def window_missed_events(cluster: Cluster, namespace: str, name: str) -> list[str]:
    """The messages of the WindowMissed Events the operator wrote for ``name``."""
    events = cluster.get_json(
        "events", "-n", namespace, "--field-selector",
        f"involvedObject.name={name},reason=WindowMissed",
    )["items"]  # fmt: skip
    return [e.get("message", "") for e in events]


def window_at_next_minute(
    min_ahead_s: float, name: str = "peak", replicas: int = 3, duration: str = "2m"
) -> tuple[dict[str, Any], datetime]:
    """A daily cron window starting at the first whole minute at least ``min_ahead_s`` ahead
    (UTC), with a one-minute lead: (the window, its start)."""
    start = (datetime.now(UTC) + timedelta(seconds=min_ahead_s + 59)).replace(
        second=0, microsecond=0
    )
    window = {
        "name": name,
        "cron": f"{start.minute} {start.hour} * * *",
        "duration": duration,
        "leadTime": "1m",
        "replicas": replicas,
    }
    return window, start


# ---- the figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultFigures:
    """One fault's figures, as docs/benchmarks.md and the README's reliability table show them.
    ``failed_requests`` is None where no Service could be measured (simulated nodes)."""

    fault: str
    environment: str  # "simulated nodes" or "real node"
    recovery_s: float  # from the fault's end until every service converged again
    converging_recovery_s: float  # the service created at the fault: until it was Ready
    failed_requests: int | None
    requests: int | None
    duplicated: int
    lost: int
    window_met: bool
    window_late_s: float  # when the window's replicas were all Ready, against its start
    window_missed_events: int
    # From the fault's end until the operator had raised the window's floor (on the HPA): its
    # own part of the recovery; the rest is the controllers' and the kubelet's.
    floor_s: float | None = None
    # Operator HA: from the active replica's kill until the standby resumed (kopf's log).
    takeover_s: float | None = None

    def line(self) -> str:
        requests = (
            "not measured (no data plane)"
            if self.failed_requests is None
            else f"{self.failed_requests} of {self.requests} failed"
        )
        return (
            f"FAULT {self.fault} [{self.environment}]: recovered in {self.recovery_s:.1f} s "
            f"(new service Ready {self.converging_recovery_s:.1f} s after); requests {requests}; "
            f"duplicated {self.duplicated}, lost {self.lost}; window "
            f"{'met' if self.window_met else 'MISSED'} ({self.window_late_s:+.0f} s from its "
            f"start, {self.window_missed_events} WindowMissed Events)"
            + (
                ""
                if self.floor_s is None
                else f"; the operator raised the floor +{self.floor_s:.1f} s"
            )
            + (
                ""
                if self.takeover_s is None
                else f"; the standby took over +{self.takeover_s:.1f} s"
            )
        )


def record(figures: FaultFigures) -> None:
    """Prints the figures and appends them to $EVS_FAULTS_REPORT when set."""
    print("\n" + figures.line())
    path = os.environ.get(REPORT_ENV)
    if path:
        with Path(path).open("a") as out:
            out.write(json.dumps(asdict(figures)) + "\n")


# ---- the real node's faults ----------------------------------------------------------------------

FAULT_TABLE = "evs-fault"


def cut_from_api(pod_ip: str) -> None:
    """Drops every packet from ``pod_ip`` to the API server's port (an nftables table of its own,
    on the node's bridge: the pod's side of its veth), as a partition would: established
    connections stall, new ones time out. ``reconnect`` removes it."""
    port = ports()["API_PORT"]
    rules = (
        f"table inet {FAULT_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority -5; policy accept;\n"
        f"    ip saddr {pod_ip} tcp dport {port} drop\n"
        "  }\n"
        "}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True, timeout=10)


def reconnect() -> None:
    """Removes ``cut_from_api``'s table (nothing when it is not there)."""
    subprocess.run(
        ["nft", "delete", "table", "inet", FAULT_TABLE],
        capture_output=True,
        check=False,
        timeout=10,
    )


def kill_container(container_id: str) -> None:
    """SIGKILLs a container's task on the real node, through containerd (``ctr tasks kill -s
    KILL``, as node.sh's reboot does): its init process dies without a chance to say goodbye,
    as in a crash or an OOM kill, and the kubelet starts the container again in the same pod.
    ``container_id``: the pod status' ``containerID`` (``containerd://ID``)."""
    runtime, _, cid = container_id.partition("://")
    if runtime != "containerd" or not cid:
        raise FaultError(f"not a containerd container: {container_id!r}")
    sock = state_dir() / "node" / "run" / "containerd.sock"
    result = subprocess.run(
        ["ctr", "-a", str(sock), "-n", "k8s.io", "tasks", "kill", "-s", "KILL", cid],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise FaultError(f"ctr tasks kill {cid} failed: {result.stderr.strip()}")
