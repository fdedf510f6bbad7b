"""What a pod's start looked like: the API's and the kubelet's timestamps, a container's log
line by line with its time, and the cold-start records' phases beside the API's start."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import datetime

from tests.support.cluster import Cluster


def instant(text: str) -> float:
    """An RFC 3339 timestamp (the API's, or a log line's nanosecond one) as epoch seconds."""
    text = text.replace("Z", "+00:00")
    match = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", text)
    if match is None:
        raise ValueError(f"not a timestamp: {text!r}")
    base, frac, zone = match.groups()
    return datetime.fromisoformat(base + zone).timestamp() + float(frac or 0)


def timestamped_log(
    cluster: Cluster, namespace: str, pod: str, container: str
) -> list[tuple[float, str]]:
    """The container's log as (kubelet timestamp, line) pairs."""
    out = cluster.kubectl(
        "logs", pod, "-n", namespace, "-c", container, "--timestamps", check=False
    ).stdout
    lines = []
    for raw in out.splitlines():
        stamp, _, line = raw.partition(" ")
        with contextlib.suppress(ValueError):
            lines.append((instant(stamp), line))
    return lines


def first_line(lines: list[tuple[float, str]], needle: str) -> tuple[float, str] | None:
    return next(((t, line) for t, line in lines if needle in line), None)


def start_phase_gaps(
    cluster: Cluster, namespace: str, service: str
) -> list[tuple[str, float, float]]:
    """(pod, sum of its recorded phases, its created -> Ready by the API) for every recent cold
    start in the service's status whose pod still exists and started once: what the real-node
    check compares (the phases must add up to the start within a second)."""
    status = cluster.get_json("evs", service, "-n", namespace).get("status") or {}
    out = []
    for record in (status.get("coldStarts") or {}).get("recent") or []:
        got = cluster.kubectl(
            "get", "pod", record["pod"], "-n", namespace, "-o", "json", check=False
        )
        if got.returncode != 0 or record.get("restarts"):
            continue
        pod = json.loads(got.stdout)
        ready = next(
            (c for c in pod["status"].get("conditions") or [] if c["type"] == "Ready"), None
        )
        if not ready or ready.get("status") != "True":
            continue
        api = instant(ready["lastTransitionTime"]) - instant(pod["metadata"]["creationTimestamp"])
        out.append(
            (record["pod"], sum(float(v) for v in (record.get("phases") or {}).values()), api)
        )
    return out
