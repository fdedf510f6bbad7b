"""Admission control in front of the model: a bounded number of requests at once, no more.

One request at a time runs on the model (the model thread serializes them); up to `max_queue`
more may wait. The next one is refused at once with 503 and a retry hint, instead of piling up
until clients time out and memory runs out.

The hint is built from the model's service time, not from the request's time in the server.
(Averaging the time in the server, queue wait included, and multiplying it by the queue length
again made the hint grow with the square of the queue: clients were told 3 s when a slot freed in
tens of milliseconds, and the server sat idle while they waited.) What is measured is the model
time of one call (one sentence piece: calls are alike in size, requests are not, and one long
text must not make every later hint long). A slot frees when the admitted request with the fewest
calls left has made them: that one call if it has one left, else that many calls with every
other admitted request's calls between them (the model thread takes calls in turn). The first
client refused is told that; the clients refused after it, while the first still waits, are
told places further back in a virtual line, one call apart, so their retries arrive about as fast
as slots free up instead of all at once. The line is never longer than one call per admitted
request: clients that ignore the hint and retry at once cannot push the honest ones' hints out
indefinitely.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from emotivoice_server.model_thread import Ticket

# Before the first call was measured: a guess (one sentence of the small model takes tens of
# milliseconds, of the full one on a CPU about a second); replaced by the first measurement.
INITIAL_CALL_S = 0.2
# Weight of the newest request's mean call time in the running mean.
SMOOTHING = 0.2
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
    _call_s: float = INITIAL_CALL_S
    _measured: bool = False
    _live: dict[int, Ticket] = field(default_factory=dict)
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
    def call_seconds(self) -> float:
        """The running mean of the model seconds one call (one sentence piece) takes."""
        return self._call_s

    def try_enter(self, ticket: Ticket | None = None) -> bool:
        """Admit one request if there is room; the caller must `leave()` exactly once.
        Its `ticket` (calls left) is what the hint reads."""
        with self._lock:
            if self._in_flight >= self.capacity:
                return False
            self._in_flight += 1
            if ticket is not None:
                self._live[id(ticket)] = ticket
            return True

    def leave(self, ticket: Ticket | None = None) -> None:
        """Release a slot; the model time the request's calls took feeds the hint (none when it
        never reached the model: bad input, dropped while queued)."""
        with self._lock:
            if self._in_flight <= 0:
                raise RuntimeError("Admission.leave() without a matching try_enter()")
            self._in_flight -= 1
            if ticket is None:
                return
            self._live.pop(id(ticket), None)
            if ticket.calls_done and ticket.service_seconds > 0:
                mean = ticket.service_seconds / ticket.calls_done
                if self._measured:
                    self._call_s += SMOOTHING * (mean - self._call_s)
                else:
                    self._call_s, self._measured = mean, True

    def retry_hint(self) -> RetryHint:
        """The wait to tell a refused client (see the module docstring)."""
        with self._lock:
            now = self.clock()
            call = self._call_s
            fewest = min((t.calls_left for t in self._live.values()), default=1)
            active = max(1, len(self._live))
            first = call * (1 + max(0, fewest - 1) * active)
            wait = max(first, self._promised - now + call)
            wait = min(wait, first + self.capacity * call, MAX_HINT_S)
            wait = max(wait, MIN_HINT_S)
            self._promised = now + wait
            return RetryHint(wait)
