"""Cold-start accounting: every server pod start loads the model, so every start that ended in
Ready is one cold start. Its time runs from the pod's creation to its Ready condition (or, for a
server container restarted in place, from the previous container's exit), split into phases by
``phases.split``. Pure: the caller passes the pods, what their servers said on ``/ready``, and
the previous figures.

``status.coldStarts`` (documented in the CRD's status schema):

- ``count``, ``inWindow``, ``outsideWindows``: starts ever counted, and of those, the ones
  under way while a window's occurrence was open (created or Ready between its start and end,
  lead excluded: the window's users may have waited for it) or not;
- ``recent[]``: the latest ``RECENT`` starts, oldest first: ``pod``, ``at`` (Ready, RFC 3339),
  ``seconds`` (to Ready), ``cache`` (warm/waited/downloaded/unknown), ``downloadedBytes``,
  ``inWindow``, ``restarts`` (the server container's restart count), ``source`` (server: the
  server's own phases; pod: the pod's states only; simulated: no container runtime ran it, as
  on KWOK's nodes, so its times are not a measurement), ``phases`` {phase: seconds}, ``fetch``
  {list, download, verify, convert: seconds};
- ``lastSeconds``, ``medianSeconds``, ``p95Seconds``: over ``recent``;
- ``phases`` {phase: {p50, p95}}: per phase over the recent starts that had it;
- ``cacheHitRate``: share of the recent starts with a known cache outcome that found a verified
  cache (warm or waited), 0..1; absent while none is known.

A start is new when its pod (by uid: a StatefulSet replica comes back under the same name; by
name for records older than the uid) at its current restart count is not in ``recent``; once
``recent`` is full, a start that turned Ready before its oldest entry was counted already.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emotivoice_operator.tuning.phases import (
    PHASES,
    StartSplit,
    instant,
    ready_at,
    server_restarts,
    split,
)

# Samples kept in status for the percentiles; older ones only stay in the counts.
RECENT = 20
# Cache outcomes that count as a hit: the start found a verified cache it did not fill.
HITS = frozenset({"warm", "waited"})


@dataclass(frozen=True)
class ColdStart:
    pod: str
    seconds: float
    split: StartSplit | None = None
    in_window: bool = False
    uid: str = ""
    # Created while a wake held the floor (spec.fallback): a start a request caused.
    woken: bool = False
    # Its node held the server image from the operator's pre-pull (warmpath/); None: no
    # pre-pull in use, nothing to say.
    image_pre_pulled: bool | None = None


@dataclass(frozen=True)
class PendingStart:
    """A pod whose current Ready is a start not yet counted (ask its server, then account)."""

    pod: dict[str, Any]
    since_restart: bool

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (a value that was observed, never an interpolation)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def pending_starts(
    pods: list[dict[str, Any]], previous: Mapping[str, Any] | None
) -> list[PendingStart]:
    """The Ready pods whose current start is not counted yet, in the order they became Ready."""
    recent = list((previous or {}).get("recent") or [])
    # Older entries carry no restart count: such a pod is taken as counted at any count. Entries
    # with a uid match that pod only; older ones (no uid) match by name.
    seen: dict[str, float] = {}
    for r in recent:
        key = f"uid:{r['uid']}" if r.get("uid") else f"name:{r['pod']}"
        seen[key] = max(seen.get(key, -1), float(r.get("restarts", math.inf)))
    stamps = [instant(r.get("at")) for r in recent]
    floor = min(stamps) if len(recent) >= RECENT and all(stamps) else None  # type: ignore[type-var]
    found: list[tuple[datetime, str, PendingStart]] = []
    for pod in pods:
        ready = ready_at(pod)
        if ready is None:
            continue
        name = pod["metadata"]["name"]
        key = next(
            (k for k in (f"uid:{pod['metadata'].get('uid')}", f"name:{name}") if k in seen), None
        )
        restarts = server_restarts(pod)
        if key is not None and restarts <= seen[key]:
            continue
        if floor is not None and ready < floor:
            continue
        found.append((ready, name, PendingStart(pod, since_restart=key is not None)))
    return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1]))]


def _record(start: ColdStart) -> dict[str, Any]:
    s = start.split
    out: dict[str, Any] = {"pod": start.pod, "seconds": round(start.seconds, 3)}
    if start.uid:
        out["uid"] = start.uid
    if s is None:
        return out
    out |= {
        "at": stamp(s.ready_at),
        "cache": s.cache,
        "inWindow": start.in_window,
        "restarts": s.restarts,
        "source": s.source,
        "phases": dict(s.phases),
    }
    if start.woken:
        out["woken"] = True
    if start.image_pre_pulled is not None:
        out["imagePrePulled"] = start.image_pre_pulled
    if s.downloaded_bytes:
        out["downloadedBytes"] = s.downloaded_bytes
    if s.fetch_phases:
        out["fetch"] = dict(s.fetch_phases)
    return out


def account(
    pods: list[dict[str, Any]],
    previous: Mapping[str, Any] | None,
    ready_bodies: Mapping[str, dict[str, Any]] | None = None,
    in_window: Callable[[datetime, datetime], bool] | None = None,
    woken_since: datetime | None = None,
    pre_pulled_nodes: frozenset[str] | None = None,
    *,
    scheduled: Mapping[str, datetime] | None = None,
) -> tuple[dict[str, Any], list[ColdStart]]:
    """The new coldStarts status and the cold starts seen for the first time now.

    ``ready_bodies``: the ``/ready`` answers the caller got, by pod name; ``in_window``: whether
    a start from the first instant to the second was under way in a window's occurrence;
    ``woken_since``: the start of the wake in force (spec.fallback), so that starts created
    since are marked ``woken``. ``pre_pulled_nodes``: the nodes the operator's pre-pull put the
    server image on (status.prePull), so a start on one is marked ``imagePrePulled``; None: no
    pre-pull in use. ``scheduled``: the ``eventTime`` of the scheduler's Scheduled Events, by
    pod uid or, for an Event that names none, by pod name (reconcile/scheduled.py).
    """
    previous = previous or {}
    ready_bodies = ready_bodies or {}
    scheduled = scheduled or {}
    new: list[ColdStart] = []
    for pending in pending_starts(pods, previous):
        uid = pending.pod["metadata"].get("uid") or ""
        parts = split(
            pending.pod,
            ready_bodies.get(pending.name),
            since_restart=pending.since_restart,
            scheduled_at=scheduled.get(uid) or scheduled.get(pending.name),
        )
        if parts is None:
            continue
        inside = bool(in_window and in_window(parts.created, parts.ready_at))
        woken = woken_since is not None and parts.created >= woken_since
        pre_pulled = (
            None
            if pre_pulled_nodes is None
            else (pending.pod.get("spec") or {}).get("nodeName") in pre_pulled_nodes
        )
        new.append(
            ColdStart(pending.name, max(0.0, parts.seconds), parts, inside, uid, woken, pre_pulled)
        )
    recent = [*(previous.get("recent") or []), *(_record(c) for c in new)][-RECENT:]
    inside = sum(c.in_window for c in new)
    status: dict[str, Any] = {
        "count": int(previous.get("count") or 0) + len(new),
        "inWindow": int(previous.get("inWindow") or 0) + inside,
        "outsideWindows": int(previous.get("outsideWindows") or 0) + len(new) - inside,
        "recent": recent,
    }
    if recent:
        status |= summary(recent)
        status["lastSeconds"] = round(float(recent[-1]["seconds"]), 3)
    return status, new


def summary(recent: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, p95, per-phase p50/p95 and the cache hit rate of recent start records."""
    seconds = [float(r["seconds"]) for r in recent]
    out: dict[str, Any] = {
        "medianSeconds": round(statistics.median(seconds), 3),
        "p95Seconds": round(percentile(seconds, 0.95), 3),
    }
    per_phase: dict[str, dict[str, float]] = {}
    for phase in PHASES:
        values = [float(r["phases"][phase]) for r in recent if phase in (r.get("phases") or {})]
        if values:
            per_phase[phase] = {
                "p50": round(percentile(values, 0.5), 3),
                "p95": round(percentile(values, 0.95), 3),
            }
    if per_phase:
        out["phases"] = per_phase
    known = [r["cache"] for r in recent if r.get("cache") not in (None, "unknown")]
    if known:
        out["cacheHitRate"] = round(sum(c in HITS for c in known) / len(known), 3)
    return out


def describe(start: ColdStart) -> str:
    """One line for the start's Event, as ``kubectl describe`` shows it."""
    s = start.split
    if s is None:
        return (
            f"pod {start.pod} loaded the model and was ready {start.seconds:.1f} s after it started"
        )
    origin = "its server container restarted" if s.after_restart else "it was created"
    if s.source == "simulated":
        return (
            f"pod {start.pod} on a simulated node (no container runtime ran it) was Ready "
            f"{start.seconds:.1f} s after {origin}: not a measured cold start"
        )
    cache = {
        "warm": "verified cache",
        "waited": "cache filled by another pod",
        "downloaded": f"downloaded {_size(s.downloaded_bytes)}",
        "unknown": "cache unknown",
    }[s.cache]
    phases = (
        ", ".join(f"{p} {v:.1f} s" for p, v in s.phases.items() if v >= 0.05)
        or "no phase over 0.1 s"
    )
    where = "inside a window" if start.in_window else "outside windows"
    if start.woken:
        where += ", woken by a request"
    if start.image_pre_pulled:
        where += ", image pre-pulled"
    return (
        f"pod {start.pod} ready {start.seconds:.1f} s after {origin} ({cache}, {where}): {phases}"
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
