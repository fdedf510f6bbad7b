"""Schedule misses: at each window's start, were the floor's replicas Ready? Pure.

The rule: when an occurrence of a window starts at instant S, the floor in force at S
(``replicas.min`` and every window warm at S, its lead included) must be met by server pods
whose Ready condition turned True at or before S. Fewer is a miss, ``short`` replicas short. The
operator checks each start once, on its first pass at or after S (a timer period late at most),
from the pods' Ready transition times, so a pass that runs late still judges the instant S; a
pod that was Ready at S but deleted before that pass is not seen (API timestamps have whole
seconds: a pod Ready within the second of S counts as ready). A miss stays open until the
floor's replicas are Ready, which gives its ``lateSeconds``, or the occurrence ends short.

Starts are only judged while their occurrence is running, and only those after the operator
first saw the window (``lastChecked`` starts at that instant): a service created, or a window
added, mid-occurrence is not a miss.

``status.misses`` (documented in the CRD's status schema): ``count`` (starts missed, ever),
``met`` (starts met, ever), ``lastChecked`` {window: the last start judged, RFC 3339},
``recent[]`` (the latest ``RECENT`` misses, oldest first: ``window``, ``at`` (the start),
``until`` (its end), ``required``, ``ready`` (at the start), ``short``, ``lateSeconds`` (start ->
the floor's replicas Ready; absent while open or when the occurrence ended short), ``open``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emotivoice_operator import windows as win
from emotivoice_operator.tuning.coldstarts import stamp
from emotivoice_operator.tuning.phases import instant, ready_at

# Misses kept in status; older ones stay in the count only.
RECENT = 10


@dataclass(frozen=True)
class Miss:
    window: str
    at: datetime
    until: datetime
    required: int
    ready: int
    late_seconds: float | None = None
    open: bool = True

    @property
    def short(self) -> int:
        return self.required - self.ready

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "window": self.window,
            "at": stamp(self.at),
            "until": stamp(self.until),
            "required": self.required,
            "ready": self.ready,
            "short": self.short,
            "open": self.open,
        }
        if self.late_seconds is not None:
            out["lateSeconds"] = round(self.late_seconds, 3)
        return out


@dataclass
class MissReport:
    """The new ``status.misses`` and what changed in this pass (for Events and metrics)."""

    status: dict[str, Any]
    missed: list[Miss] = field(default_factory=list)
    met: list[tuple[str, datetime, int]] = field(default_factory=list)
    caught_up: list[Miss] = field(default_factory=list)
    ended_short: list[Miss] = field(default_factory=list)


def ready_times(pods: list[dict[str, Any]]) -> list[datetime]:
    """When each pod that is Ready now turned Ready, earliest first."""
    return sorted(t for t in (ready_at(p) for p in pods) if t is not None)


def ready_by(pods: list[dict[str, Any]], when: datetime) -> int:
    return sum(t <= when for t in ready_times(pods))


def floor_met_at(pods: list[dict[str, Any]], required: int) -> datetime | None:
    """When the pods Ready now first numbered ``required``; None while fewer are Ready."""
    times = ready_times(pods)
    return times[required - 1] if required >= 1 and len(times) >= required else None


def _miss(record: Mapping[str, Any]) -> Miss | None:
    try:
        at, until = instant(record["at"]), instant(record["until"])
        if at is None or until is None:
            return None
        late = record.get("lateSeconds")
        return Miss(
            window=str(record["window"]),
            at=at,
            until=until,
            required=int(record["required"]),
            ready=int(record["ready"]),
            late_seconds=None if late is None else float(late),
            open=bool(record.get("open", False)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def check(
    windows: list[win.Window],
    min_replicas: int,
    pods: list[dict[str, Any]],
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> MissReport:
    """Judge the window starts due at ``now`` and follow the open misses."""
    previous = previous or {}
    marks = {
        name: t
        for name, text in (previous.get("lastChecked") or {}).items()
        if (t := instant(text)) is not None
    }
    misses = [m for r in previous.get("recent") or [] if (m := _miss(r)) is not None]
    report = MissReport(status={})

    # Open misses first: caught up (the floor's replicas are Ready now) or ended short.
    followed: list[Miss] = []
    for m in misses:
        if m.open:
            met_at = floor_met_at(pods, m.required)
            if met_at is not None:
                m = Miss(m.window, m.at, m.until, m.required, m.ready,
                         max(0.0, (met_at - m.at).total_seconds()), open=False)  # fmt: skip
                report.caught_up.append(m)
            elif now >= m.until:
                m = Miss(m.window, m.at, m.until, m.required, m.ready, None, open=False)
                report.ended_short.append(m)
        followed.append(m)

    new_marks: dict[str, str] = {}
    for w in windows:
        mark = marks.get(w.name)
        latest = win.latest_occurrence(w, now)
        if mark is None:
            new_marks[w.name] = stamp(now)  # first sight: judge only starts after this
            continue
        if latest is None or latest[0] <= mark:
            new_marks[w.name] = stamp(mark)
            continue
        start, end = latest
        new_marks[w.name] = stamp(start)
        if now >= end:
            continue  # the operator was away for the whole occurrence: nothing to judge
        required = win.warm_floor(min_replicas, windows, start, {})
        ready = ready_by(pods, start)
        if ready >= required:
            report.met.append((w.name, start, required))
            continue
        miss = Miss(w.name, start, end, required, ready)
        met_at = floor_met_at(pods, required)
        if met_at is not None:  # judged late, and caught up meanwhile
            miss = Miss(w.name, start, end, required, ready,
                        max(0.0, (met_at - start).total_seconds()), open=False)  # fmt: skip
        report.missed.append(miss)
        followed.append(miss)

    report.status = {
        "count": int(previous.get("count") or 0) + len(report.missed),
        "met": int(previous.get("met") or 0) + len(report.met),
        "lastChecked": new_marks,
        "recent": [m.record() for m in followed][-RECENT:],
    }
    return report


def describe_miss(m: Miss, zone_text: str, p95: float | None) -> str:
    """The Warning Event's message: what was short, and what to change."""
    hint = (
        f"cold starts take {p95:.0f} s at p95 (status.coldStarts): raise the window's leadTime "
        "above that, or use leadTime: auto"
        if p95 is not None
        else "check why the pods are not Ready (kubectl describe pods)"
    )
    late = (
        f"; its replicas were Ready {m.late_seconds:.0f} s late"
        if m.late_seconds is not None
        else ""
    )
    return (
        f"window {m.window} opened at {zone_text} with {m.ready} of {m.required} replicas Ready "
        f"({m.short} short){late}: {hint}"
    )
