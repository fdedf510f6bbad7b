"""Admission control in front of the model: a bounded number of requests at once, no more.

One request at a time runs on the model (the model thread serializes them); up to `max_queue`
more may wait. The next one is refused at once with 503 and a Retry-After computed from recent
request durations, instead of piling up until clients time out and memory runs out.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field


@dataclass
class Admission:
    """Counts admitted requests (running or waiting for the model thread)."""

    max_queue: int
    _in_flight: int = 0
    _mean_seconds: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity(self) -> int:
        return self.max_queue + 1

    @property
    def depth(self) -> int:
        return self._in_flight

    def try_enter(self) -> bool:
        """Admit one request if there is room; the caller must `leave()` exactly once."""
        with self._lock:
            if self._in_flight >= self.capacity:
                return False
            self._in_flight += 1
            return True

    def leave(self, seconds: float | None = None) -> None:
        """Release a slot; `seconds` (the request's duration) feeds the Retry-After estimate."""
        with self._lock:
            if self._in_flight <= 0:
                raise RuntimeError("Admission.leave() without a matching try_enter()")
            self._in_flight -= 1
            if seconds is not None:
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds

    def retry_after(self) -> int:
        """Whole seconds until a slot is likely free: the queue ahead times a mean request."""
        with self._lock:
            return max(1, math.ceil(self._mean_seconds * max(1, self._in_flight)))
