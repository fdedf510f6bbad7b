"""``RequeueAfter`` for every service: one loop that brings a service back at its next time edge.

A pass returns when time alone next changes what its service should look like
(``Outcome.next_edge``, reconcile/edges.py); the watches tell everything else. Every timer
period this loop triggers each service whose edge is due or that has no finished pass yet.

One loop for all services rather than kopf's per-object timer: that one costs an asyncio task
per service and makes kopf put a finalizer on each (a PATCH on every create, another on every
delete, and a delete that waits for the operator: ~60 s when it runs, forever when it does
not). Resources that still carry that finalizer lose it at their next event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
# The shortest sleep between looks, so that a due instant in the past cannot spin the loop.
MIN_SLEEP = 0.05


class Timer:
    def __init__(self) -> None:
        # (namespace, name) -> when the timer must bring the service back (its next time edge).
        self.due: dict[Key, datetime] = {}
        # When the running loop looks next, and what wakes it sooner (both on the event loop).
        self._next_look: datetime | None = None
        self._sooner: asyncio.Event | None = None

    def requeue_at(self, key: Key, when: datetime) -> None:
        """Called on the event loop after each pass: an edge sooner than the loop's next look
        (a window set a minute ahead while it sleeps a period) wakes it to sleep until then."""
        self.due[key] = when
        if self._sooner is not None and self._next_look is not None and when < self._next_look:
            self._sooner.set()

    def forget(self, key: Key) -> None:
        self.due.pop(key, None)

    def sleep_for(self, interval: float, now: datetime) -> float:
        """Seconds to the next look: the period, or less when a service is due sooner."""
        upcoming = [(due - now).total_seconds() for due in self.due.values() if due > now]
        return max(MIN_SLEEP, min([interval, *upcoming]))

    async def run(
        self,
        interval: float,
        services: Callable[[], Iterable[Key]],
        trigger: Callable[[Key], None],
    ) -> None:
        """``trigger``s each of ``services()`` that is due, every ``interval`` seconds and also at
        the earliest due instant in between: a window's lead learned in seconds begins on time,
        not up to one period late."""
        self._sooner = asyncio.Event()
        while True:
            now = datetime.now(UTC)
            pause = self.sleep_for(interval, now)
            self._next_look = now + timedelta(seconds=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sooner.wait(), timeout=pause)
            self._sooner.clear()
            try:
                now = datetime.now(UTC)
                for key in list(services()):
                    due = self.due.get(key)
                    if due is None or now >= due:
                        trigger(key)
            except Exception:  # the loop must outlive one bad entry: it is every service's timer
                log.exception("the timer loop failed this period; it goes on")
