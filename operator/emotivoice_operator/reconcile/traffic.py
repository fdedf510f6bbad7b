"""spec.fallback in a pass: what the pass saw (``Traffic``), read with the one outside call the
wake needs, and the routing and wake it writes to status.

The decisions are emotivoice_operator.fallback's (pure); this module gathers their inputs from
the watches and, only where a request can wake the service, from the serving pods' request
counters (tuning/counters.py), and keeps those counters between passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emotivoice_operator import fallback as fb
from emotivoice_operator.controller.cache import Snapshot
from emotivoice_operator.desired import DesiredState
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.tuning import counters

Key = tuple[str, str]  # (namespace, service name)


@dataclass
class TrafficReader:
    """The request counters last read for each service with a fallback, by pod uid."""

    ask_servers: bool = True
    last: dict[Key, dict[str, float]] = field(default_factory=dict)

    def read(
        self, key: Key, spec: dict[str, Any], snap: Snapshot, memory: Memory, now: datetime
    ) -> tuple[fb.Traffic, bool]:
        """What spec.fallback needs from this pass, and whether the counters are being read
        (then the timer comes back within ``fallback.POLL_SECONDS``).

        The counters are read only where a request can wake the service: its traffic goes to
        the fallback while its floor is 0, or it is woken (then those of the pool serving it).
        No other pool is ever read, and nothing is read without spec.fallback."""
        wanted = spec.get("fallback") or {}
        if not wanted.get("service"):
            self.last.pop(key, None)
            return fb.Traffic(), False
        own = counters.ready_pods(snap.pods)
        woken = memory.wake is not None and memory.wake.active(now)
        at_zero = not own and int(memory.status.get("warmFloor") or 0) == 0
        polling = bool(
            wanted.get("wakeOnRequest", True)
            and self.ask_servers
            and snap.fallback is not None
            and (at_zero or woken)
        )
        seen = False
        if polling:
            serving = own or counters.ready_pods(snap.fallback_pods)
            before = self.last.get(key, {})
            now_counts = counters.read(serving)
            seen = fb.counters_rose(before, now_counts)
            # Pods that did not answer keep their last count; pods gone are forgotten.
            alive = {p["metadata"].get("uid") for p in serving}
            self.last[key] = {u: c for u, c in {**before, **now_counts}.items() if u in alive}
        else:
            self.last.pop(key, None)
        return fb.Traffic(len(own), snap.fallback, memory.wake, seen), polling


def status_fields(
    desired: DesiredState, memory: Memory, now: datetime, applied: bool
) -> dict[str, Any]:
    """status.routing and status.wake for ``Observed``: the route in force once applied (its
    ``since`` kept while the pool stays), the wake, and the keys to remove when gone."""
    out: dict[str, Any] = {}
    clear = []
    route = desired.route
    if route is not None and applied:
        same = memory.routing.get("pool") == route.pool and memory.routing.get("since")
        out["routing"] = route.to_status(now) | ({"since": memory.routing["since"]} if same else {})
        if desired.fallback_note:
            out["routing"]["note"] = desired.fallback_note
    elif route is None and memory.routing:
        clear.append("routing")
    if desired.wake is not None:
        out["wake"] = desired.wake.to_status()
    elif memory.status.get("wake"):
        clear.append("wake")
    out["clear"] = tuple(clear)
    return out
