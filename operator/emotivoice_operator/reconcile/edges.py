"""When a service next needs a pass that no watch event will trigger: its next time edge. Pure.

The timer runs for every service every period, but a pass is needed only when time itself
changes what the service should look like: a window's pre-warm lead begins (the floor rises),
an occurrence starts (a miss is judged, the next window moves on) or ends (the floor falls, an
open miss ends short), a warm request expires. Everything else (a spec edit, a child changed or
deleted, a pod turning Ready, a request written) arrives as a watch event. ``next_edge`` gives
the earliest such instant after ``now``; the timer (controller/timer.py) skips the service until
then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from emotivoice_operator.tuning.phases import instant
from emotivoice_operator.windows.clock import to_utc
from emotivoice_operator.windows.model import WarmRequest, Window
from emotivoice_operator.windows.schedule import latest_occurrence, next_start, occurrence_end


def next_edge(
    windows: Iterable[Window],
    requests: Mapping[str, WarmRequest],
    misses_status: Mapping[str, Any] | None,
    now: datetime,
    horizon: timedelta,
) -> datetime:
    """The earliest instant after ``now`` at which time alone changes the desired state, or
    ``now + horizon`` if that comes first (the pass that catches whatever was missed)."""
    now = to_utc(now)
    edges = [now + horizon]
    for w in windows:
        start = next_start(w, now)
        if start is not None:
            edges += [start, start - w.lead]  # the occurrence starts; its pre-warm lead begins
        end = occurrence_end(w, now)
        if end is not None:
            edges.append(end)
        latest = latest_occurrence(w, now)
        if latest is not None:
            edges.append(latest[1])  # the latest occurrence ends (its miss, if open, ends short)
    edges += [to_utc(r.expires_at) for r in requests.values()]
    for record in (misses_status or {}).get("recent") or []:
        if record.get("open") and (until := instant(record.get("until"))) is not None:
            edges.append(until)
    return min(e for e in edges if e > now) if any(e > now for e in edges) else now + horizon
