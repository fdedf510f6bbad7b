"""Which connection downloads which bytes: one stream per file, split only where it pays.

Each file starts as a single stream over its missing bytes (largest file first), so on a fast
link every file arrives in order and is hashed as it streams, with one GET per file. A
connection left without a file of its own splits the stream with the longest expected
remaining time, taking the back half of its unclaimed bytes, but only when that pays: the
stream is expected to need more than `split_after_s` at its measured rate, that rate is below
`FAST_STREAM` (a connection that fast is not what limits a fetch that hashes every byte on a
few cores), and the process has CPU to spare (under `CPU_BUSY` of its CPUs, see cpu.py). A
stream that is slow because there is no CPU left would not get faster on two connections; its
back half would only have to be read back from disk to be hashed. So a store
that limits each connection (50 MB/s, say) gets many parallel ranged GETs, and a fast store
next to a small CPU gets one GET per file; nothing needs tuning for either.

Thread-safe; the clock is injected so that the splitting rule is tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

F = TypeVar("F")

SAMPLE_S = 0.25  # a stream's rate is trusted after this long
POLL_S = 0.05  # how often an idle connection looks again for something to split
SPLIT_AFTER_S = 0.5
SPLIT_ALIGN = 1024 * 1024
CPU_BUSY = 0.65
FAST_STREAM = 200_000_000  # bytes/s


@dataclass(eq=False)
class Segment(Generic[F]):
    """Bytes [pos, end) of one file, streamed by one connection. `end` shrinks when the segment
    is split; `claimed` is the end of the read in flight, which a split never cuts into."""

    file: F
    pos: int
    end: int
    claimed: int
    started: float | None = None
    received: int = 0
    inherited_rate: float | None = None

    def rate(self, now: float) -> float | None:
        """Bytes per second: measured once the stream has run a while, else its parent's."""
        if self.started is not None and now - self.started >= SAMPLE_S and self.received > 0:
            return self.received / (now - self.started)
        return self.inherited_rate


class Scheduler(Generic[F]):
    """Hands segments to connections; splits slow streams for connections that ran dry."""

    def __init__(
        self,
        ranges: Iterable[tuple[F, int, int]],
        min_split: int,
        split_after_s: float = SPLIT_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
        cpu_busy: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._cpu_busy = cpu_busy
        self._queue: deque[Segment[F]] = deque(
            Segment(file, start, end, start) for file, start, end in ranges
        )
        self._active: list[Segment[F]] = []
        self._min_split = min_split
        self._split_after_s = split_after_s
        self._clock = clock
        self._cond = threading.Condition()
        self._stopped = False

    def next(self) -> Segment[F] | None:
        """The next segment to stream, waiting for one to split if need be; None when done."""
        with self._cond:
            while not self._stopped:
                now = self._clock()
                seg = self._queue.popleft() if self._queue else self.split(now)
                if seg is not None:
                    seg.started = now
                    self._active.append(seg)
                    return seg
                if not self._active:
                    return None
                self._cond.wait(POLL_S)
            return None

    def claim(self, seg: Segment[F], want: int) -> int:
        """How many bytes the connection may read next (0: the segment is complete)."""
        with self._cond:
            n = max(0, min(want, seg.end - seg.pos))
            seg.claimed = seg.pos + n
            return n

    def advance(self, seg: Segment[F], n: int) -> None:
        with self._cond:
            seg.pos += n
            seg.received += n

    def finish(self, seg: Segment[F]) -> None:
        with self._cond:
            self._active.remove(seg)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def split(self, now: float) -> Segment[F] | None:
        """Cut the slowest-to-finish stream in two (caller holds the lock, or single-threaded
        tests); None when no stream is worth splitting."""
        if self._cpu_busy() >= CPU_BUSY:
            return None
        best: tuple[float, Segment[F], float] | None = None
        for seg in self._active:
            rate = seg.rate(now)
            left = seg.end - seg.claimed
            if rate is None or not 0 < rate < FAST_STREAM or left < 2 * self._min_split:
                continue
            eta = left / rate
            if eta > self._split_after_s and (best is None or eta > best[0]):
                best = (eta, seg, rate)
        if best is None:
            return None
        _, seg, rate = best
        mid = seg.claimed + (seg.end - seg.claimed) // 2
        mid = max(mid - mid % SPLIT_ALIGN, seg.claimed + self._min_split)
        back = Segment(seg.file, mid, seg.end, mid, inherited_rate=rate)
        seg.end = mid
        return back
