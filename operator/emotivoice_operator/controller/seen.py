"""When the operator's own watch first showed each server pod, and when it showed the pod turn
Ready: the two ends of a cold start, finer than the API's whole-second stamps.

Why: a start is timed from the pod's creation to its Ready, both whole seconds (truncated), so
each start carries up to a second of error at either end. That is noise next to a model's
minute-long start, but a replica that starts in 4 s is learned (``leadTime: auto``) a quarter
wrong. The watch delivers each change within milliseconds, so the instant it arrives is a close
upper bound of the truth; ``tuning/phases.refined`` takes it only when it falls near its stamp
(an operator that started after the pod was created sees it late: the stamp stays).

The instants ride on the indexed copy of the pod under ``phases.SEEN_FIELD`` (a key of our own
beside metadata and status, never written back). They are kept in memory only: after an
operator restart the stamps are used.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emotivoice_operator.tuning.phases import SEEN_FIELD, ready_at

# Pods remembered at most (oldest first out): far above one operator's server pods.
CAPACITY = 20_000


@dataclass
class _Seen:
    first: float
    ready: float | None
    was_ready: bool


class SeenClock:
    """Per pod uid: the first event's arrival, and the arrival of the event that showed it turn
    Ready (None when it was Ready already at the first event this operator saw)."""

    def __init__(self, clock: Callable[[], float] = time.time, capacity: int = CAPACITY) -> None:
        self._clock = clock
        self._capacity = capacity
        self._pods: OrderedDict[str, _Seen] = OrderedDict()

    def stamp(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` with its seen instants (epoch seconds) under ``SEEN_FIELD``."""
        uid = str((body.get("metadata") or {}).get("uid") or "")
        ready = ready_at(dict(body)) is not None
        now = self._clock()
        seen = self._pods.get(uid)
        if seen is None:
            seen = _Seen(first=now, ready=None, was_ready=ready)
            self._pods[uid] = seen
            while len(self._pods) > self._capacity:
                self._pods.popitem(last=False)
        elif ready and not seen.was_ready:
            seen.ready, seen.was_ready = now, True
        elif not ready:
            seen.ready, seen.was_ready = None, False
        out = dict(body)
        out[SEEN_FIELD] = {"first": seen.first, "ready": seen.ready}
        return out
