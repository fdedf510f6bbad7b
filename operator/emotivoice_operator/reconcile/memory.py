"""Status as the operator's memory: what earlier passes, and pre-warm jobs, left there for this one.

The operator keeps no state of its own across restarts: what it must remember, it writes to
the resource's status and reads back at the top of the next pass. This module is that read,
in one place (``Memory.from_status``):

- ``warmRequests``: written by pre-warm jobs, bounded (or removed) by the pass (``request_fixes``);
- ``coldStarts``: the starts counted so far (tuning/coldstarts.py continues it), whose recent
  seconds are what ``leadTime: auto`` learns from;
- ``leadTime``: the learned lead in force, and what the LeadTime Event was last about;
- ``misses``: the starts judged so far (tuning/misses.py continues it);
- ``cost``: what the windows cost so far, and the counters last read (tuning/cost.py);
- ``cache``: the per-replica claims last listed and the ones last deleted;
- ``message``, ``phase`` and conditions: what the user was last told, so an Event is posted
  once per change rather than once per pass.

The tuning modules own their records' layout (each is documented in the CRD's status schema);
this module only hands each one its section. Pure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emotivoice_operator import fallback as fb
from emotivoice_operator import windows as win

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Memory:
    # The status as read (a write compares against it; conditions keep their transition times).
    status: Mapping[str, Any]
    # status.warmRequests that parse, and the names of the entries that do not (removed).
    warm_requests: dict[str, win.WarmRequest]
    malformed_requests: list[str]
    # status.coldStarts as written, and its recent starts' seconds to Ready.
    cold_starts: Mapping[str, Any] | None
    cold_start_seconds: list[float]
    # The same starts' image phases (0 where not recorded): a pre-pull covers those seconds.
    cold_start_image_seconds: list[float]
    # The learned lead status.leadTime holds (None while the initial applies or none is written).
    lead_in_force: timedelta | None
    lead_time: Mapping[str, Any]
    misses: Mapping[str, Any] | None
    cost: Mapping[str, Any] | None
    # status.cache's claims (None: never listed) and deletedClaims.
    claims: list[str] | None
    deleted_claims: list[str] | None
    message: str | None
    phase: str | None
    # status.routing (spec.fallback: where traffic went) and the wake it holds.
    routing: Mapping[str, Any]
    wake: fb.Wake | None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Memory:
        status = status or {}
        requests, malformed = _warm_requests(status)
        recent = _recent(status)
        cache = status.get("cache") or {}
        return cls(
            status=status,
            warm_requests=requests,
            malformed_requests=malformed,
            cold_starts=status.get("coldStarts"),
            cold_start_seconds=[seconds for seconds, _ in recent],
            cold_start_image_seconds=[image for _, image in recent],
            lead_in_force=lead_in_force(status),
            lead_time=status.get("leadTime") or {},
            misses=status.get("misses"),
            cost=status.get("cost"),
            claims=cache.get("claims"),
            deleted_claims=cache.get("deletedClaims"),
            message=status.get("message"),
            phase=status.get("phase"),
            routing=status.get("routing") or {},
            wake=fb.Wake.from_status(status.get("wake")),
        )

    def condition_message(self, type_: str) -> str | None:
        return next(
            (
                c.get("message")
                for c in self.status.get("conditions") or []
                if c.get("type") == type_
            ),
            None,
        )

    def request_fixes(
        self, honoured: Mapping[str, win.WarmRequest]
    ) -> dict[str, dict[str, Any] | None]:
        """The merge patch of ``status.warmRequests`` that leaves only honoured, bounded
        requests: None removes an entry (no such window, unreadable), a value replaces one that
        asked for more than its window allows. Entries already in bounds are not written (a job
        may be writing its own request at this very moment)."""
        fixes: dict[str, dict[str, Any] | None] = dict.fromkeys(self.malformed_requests)
        for window, request in self.warm_requests.items():
            bounded = honoured.get(window)
            if bounded is None:
                fixes[window] = None
            elif bounded != request:
                fixes[window] = bounded.to_status()
        return fixes


def lead_in_force(status: Mapping[str, Any] | None) -> timedelta | None:
    """The learned lead status.leadTime holds (None while the initial applies or none is
    written): what the operator renders with, and what a pre-warm job's request lasts with."""
    lead = (status or {}).get("leadTime") or {}
    if lead.get("mode") != "learned":
        return None
    try:
        return timedelta(seconds=float(lead["seconds"]))
    except (KeyError, TypeError, ValueError):
        return None


def _recent(status: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(seconds to Ready, image phase) of the recent cold starts in status: what leadTime: auto
    learns from."""
    out = []
    for r in (status.get("coldStarts") or {}).get("recent") or []:
        try:
            image = float((r.get("phases") or {}).get("image") or 0.0)
            out.append((float(r["seconds"]), image))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


def _warm_requests(status: Mapping[str, Any]) -> tuple[dict[str, win.WarmRequest], list[str]]:
    """Warm requests as status holds them, and the names of unreadable entries (which the
    pass removes rather than trips over)."""
    out: dict[str, win.WarmRequest] = {}
    malformed: list[str] = []
    for window, req in (status.get("warmRequests") or {}).items():
        try:
            out[window] = win.WarmRequest.from_status(req)
        except ValueError:
            log.warning("removing malformed warm request %r: %r", window, req)
            malformed.append(window)
    return out, malformed
