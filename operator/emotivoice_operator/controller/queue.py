"""The work queue between triggers and reconciles: coalescing, bounded, fair across namespaces.

Why not one reconcile per trigger: a StatefulSet rollout, a burst of pod events or the
operator's own status write each fire several watch events for one service; reconciling on each
re-does the same work many times. Here a trigger only marks its service due: a service already
waiting is not queued twice, and one being reconciled is queued once more after it ends (the
trigger may have seen something that pass did not). A short settle delay lets a burst gather
before the pass starts.

Why fair: a namespace that creates 1,000 services must not hold back a service in another
namespace for the time of 1,000 reconciles. Namespaces take turns (round robin); within one,
services run in the order they became due. At most ``workers`` reconciles run at once.

Lives on the operator's event loop: every method is called from it (kopf's async handlers), so
the structures need no lock; reconciles themselves run in threads (``run`` is awaited).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

# Retry delays after a failed reconcile: doubling from the first, capped at the last.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# ... capped lower when the pass failed because the API server could not be reached: the fault
# is not the service's, and it ends for every service at once. Measured (tests/faults): after
# an API server restart (down ~20 s) the doubling delay had grown to 8-16 s, and a service
# created during the outage was made 10 s after the API was back (a window's floor could wait
# as long); a trigger from the reconnected watches cannot shorten a delay already running (the
# service is waiting).
RETRY_UNREACHABLE_MAX_SECONDS = 4.0
# HTTP answers of an API server that is there but not serving yet (storage initialising, rate
# limited, a proxy without a backend).
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})


def api_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the API server was unreachable or not serving,
    rather than that it refused this service's request."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes, bounded (it may loop)
        if seen is None:
            return False
        if isinstance(seen, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
            return True
        if isinstance(seen, ApiException) and seen.status in UNAVAILABLE_STATUSES:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class FairQueue:
    def __init__(
        self, run: Callable[[Key], Awaitable[None]], workers: int, settle_seconds: float = 0.2
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._run = run
        self._workers = workers
        self._settle = settle_seconds
        self._ready: OrderedDict[str, deque[Key]] = OrderedDict()  # namespace -> due services
        self._waiting: set[Key] = set()  # settling or ready: one entry per service
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # triggered while running: once more afterwards
        self._failures: dict[Key, int] = {}  # refused passes in a row (the long back-off)
        self._outages: dict[Key, int] = {}  # passes in a row that found the API unreachable
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.passes = 0  # reconciles run (observability and tests)

    def ensure_started(self) -> None:
        """Starts the workers once, as tasks of the current context (they inherit it)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def __len__(self) -> int:
        return sum(len(q) for q in self._ready.values())

    def trigger(self, key: Key, delay: float | None = None) -> None:
        """Marks ``key`` due (after ``delay`` seconds; the settle delay when None)."""
        if key in self._running:
            self._again.add(key)
            return
        if key in self._waiting:
            return
        self._waiting.add(key)
        wait = self._settle if delay is None else delay
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._make_ready, key)
        else:
            self._make_ready(key)

    def forget(self, key: Key) -> None:
        """Drops the retry state of a deleted service (a waiting pass finds it gone and ends)."""
        self._failures.pop(key, None)
        self._outages.pop(key, None)

    def _make_ready(self, key: Key) -> None:
        self._ready.setdefault(key[0], deque()).append(key)
        self._wake.set()

    def _next(self) -> Key | None:
        """The next service in round-robin order of namespaces, or None when none is ready."""
        while self._ready:
            namespace, services = next(iter(self._ready.items()))
            if not services:
                del self._ready[namespace]
                continue
            key = services.popleft()
            if services:
                self._ready.move_to_end(namespace)  # its next service waits for the others' turn
            else:
                del self._ready[namespace]
            return key
        return None

    async def _worker(self) -> None:
        while True:
            key = self._next()
            if key is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._waiting.discard(key)
            self._running.add(key)
            failed = unreachable = False
            try:
                await self._run(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                unreachable = api_unreachable(exc)
                if unreachable:  # one line, not a traceback per service per retry
                    log.warning(
                        "reconcile of %s/%s: API server unreachable (%s); retried", *key, exc
                    )
                else:
                    log.exception("reconcile of %s/%s failed; retried", *key)
            finally:
                self._running.discard(key)
                self.passes += 1
            if failed:
                # An outage does not grow the refusals' back-off: a restarting API server
                # answers 403 for a moment before it is ready (measured), and that one refusal
                # after twenty seconds of outage must not wait 32 s.
                counts = self._outages if unreachable else self._failures
                count = counts[key] = counts.get(key, 0) + 1
                self._again.discard(key)
                cap = RETRY_UNREACHABLE_MAX_SECONDS if unreachable else RETRY_MAX_SECONDS
                delay = min(cap, RETRY_FIRST_SECONDS * 2 ** (count - 1))
                self.trigger(key, delay)
            else:
                self._failures.pop(key, None)
                self._outages.pop(key, None)
                if key in self._again:
                    self._again.discard(key)
                    self.trigger(key)
