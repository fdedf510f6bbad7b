"""Admission control in front of the model: a bounded number of requests at once, no more.

One request at a time runs on the model (the model thread serializes them); up to `max_queue`
more may wait. The next one is refused at once with 503 and a retry hint, instead of piling up
until clients time out and memory runs out.

The hint is built from the model's service time: the seconds the model thread spent on each
finished request, not the request's time in the server. (Averaging the time in the server, queue
wait included, and multiplying it by the queue length again made the hint grow with the square
of the queue: clients were told 3 s when a slot freed in tens of milliseconds, and the server sat
idle while they waited.) A slot frees about once per service time, so the first client refused
is told one service time; the clients refused after it, while the first still waits, are told a
place further back in a virtual line, one service time apart, so their retries arrive about as
fast as slots free up instead of all at once. The line is never longer than one turnover of the
queue (capacity x service time): clients that ignore the hint and retry at once cannot push the
honest ones' hints out indefinitely.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# Before the first request finished: a guess (the small model takes tens of milliseconds, the
# full one on a CPU about a second); replaced by the first measured service time.
INITIAL_SERVICE_S = 0.5
# Weight of the newest request in the running mean of service times.
SERVICE_SMOOTHING = 0.2
MIN_HINT_S = 0.001
# The official `openai` client honours hints up to 120 s; past 60 s a client is better off
# told the truth by a timeout than sleeping on a guess.
MAX_HINT_S = 60.0


@dataclass(frozen=True)
class RetryHint:
    """When a refused client should come back, as both headers clients read."""

    seconds: float

    @property
    def headers(self) -> dict[str, str]:
        """`retry-after-ms` (the `openai` client reads it first) and the standard whole-second
        `Retry-After`, rounded up so a client that reads only that never comes back early."""
        return {
            "Retry-After": str(max(1, math.ceil(self.seconds))),
            "retry-after-ms": str(max(1, math.ceil(self.seconds * 1000))),
        }


@dataclass
class Admission:
    """Counts admitted requests (running or waiting for the model thread)."""

    max_queue: int
    clock: Callable[[], float] = time.monotonic
    _in_flight: int = 0
    _service_s: float = INITIAL_SERVICE_S
    _measured: bool = False
    # The monotonic time up to which retries have already been handed out (the virtual line).
    _promised: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity(self) -> int:
        return self.max_queue + 1

    @property
    def depth(self) -> int:
        return self._in_flight

    @property
    def full(self) -> bool:
        """A lock-free look, for refusing early; `try_enter` is what decides."""
        return self._in_flight >= self.capacity

    @property
    def service_seconds(self) -> float:
        """The running mean of the model seconds one request takes."""
        return self._service_s

    def try_enter(self) -> bool:
        """Admit one request if there is room; the caller must `leave()` exactly once."""
        with self._lock:
            if self._in_flight >= self.capacity:
                return False
            self._in_flight += 1
            return True

    def leave(self, service_seconds: float | None = None) -> None:
        """Release a slot. `service_seconds`: the model time the request used (None when it
        never reached the model: bad input, dropped while queued), which feeds the hint."""
        with self._lock:
            if self._in_flight <= 0:
                raise RuntimeError("Admission.leave() without a matching try_enter()")
            self._in_flight -= 1
            if service_seconds is not None and service_seconds > 0:
                if self._measured:
                    self._service_s += SERVICE_SMOOTHING * (service_seconds - self._service_s)
                else:
                    self._service_s, self._measured = service_seconds, True

    def retry_hint(self) -> RetryHint:
        """The wait to tell a refused client: its place in the virtual line (module docstring)."""
        with self._lock:
            now = self.clock()
            service = self._service_s
            longest = max(service, self.capacity * service)
            wait = min(max(self._promised, now) - now + service, longest)
            wait = min(max(wait, MIN_HINT_S), MAX_HINT_S)
            self._promised = now + wait
            return RetryHint(wait)
