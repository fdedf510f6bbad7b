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
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class Timer:
    def __init__(self) -> None:
        # (namespace, name) -> when the timer must bring the service back (its next time edge).
        self.due: dict[Key, datetime] = {}

    def requeue_at(self, key: Key, when: datetime) -> None:
        self.due[key] = when

    def forget(self, key: Key) -> None:
        self.due.pop(key, None)

    async def run(
        self,
        interval: float,
        services: Callable[[], Iterable[Key]],
        trigger: Callable[[Key], None],
    ) -> None:
        """Every ``interval`` seconds, ``trigger``s each of ``services()`` that is due."""
        while True:
            await asyncio.sleep(interval)
            try:
                now = datetime.now(UTC)
                for key in list(services()):
                    due = self.due.get(key)
                    if due is None or now >= due:
                        trigger(key)
            except Exception:  # the loop must outlive one bad entry: it is every service's timer
                log.exception("the timer loop failed this period; it goes on")
