"""Cold-start accounting: every server pod start loads the model, so every pod that became
Ready is one cold start; its time to ready is what the API already records (pod startTime to
its Ready condition's transition). Pure: the caller passes the pods and the previous figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Samples kept in status for the median; older ones only stay in the count.
RECENT = 20


@dataclass(frozen=True)
class ColdStart:
    pod: str
    seconds: float


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ready_pods(pods: list[dict[str, Any]]) -> list[ColdStart]:
    """Pods that are Ready, with their time from start to Ready, in the order they became ready."""
    timed = []
    for pod in pods:
        status = pod.get("status") or {}
        ready = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "Ready" and c.get("status") == "True"
            ),
            None,
        )
        if not ready or not status.get("startTime") or not ready.get("lastTransitionTime"):
            continue
        ready_at = _instant(ready["lastTransitionTime"])
        seconds = (ready_at - _instant(status["startTime"])).total_seconds()
        timed.append((ready_at, ColdStart(pod["metadata"]["name"], max(0.0, seconds))))
    return [c for _, c in sorted(timed, key=lambda t: (t[0], t[1].pod))]


def account(
    pods: list[dict[str, Any]], previous: dict[str, Any] | None
) -> tuple[dict[str, Any], list[ColdStart]]:
    """The new coldStarts status and the cold starts seen for the first time now."""
    previous = previous or {}
    recent = [ColdStart(r["pod"], float(r["seconds"])) for r in previous.get("recent") or []]
    seen = {c.pod for c in recent}
    new = [c for c in ready_pods(pods) if c.pod not in seen]
    recent = (recent + new)[-RECENT:]
    count = int(previous.get("count") or 0) + len(new)
    status: dict[str, Any] = {
        "count": count,
        "recent": [{"pod": c.pod, "seconds": round(c.seconds, 3)} for c in recent],
    }
    if recent:
        status["lastSeconds"] = round((new or recent)[-1].seconds, 3)
        status["medianSeconds"] = round(statistics.median(c.seconds for c in recent), 3)
    return status, new
