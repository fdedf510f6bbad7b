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

Neither signal sees a CPU that another process takes: a store on the same machine (the
benchmark's loopback server), or a node whose other work leaves this process its share and no
more. There every stream is slow because the CPU is, this process's share stays under
`CPU_BUSY`, and splitting made things worse: on the 2-core benchmark 8 to 10 splits per run
moved most of the biggest file ahead of its hash, to be read back (+0.25 CPU s and 1.7 s wall,
the median of 4 rounds, against the same runs without splits). So the first splits are a trial, after the streams'
rates were watched for `SAMPLE_S` once a split looked worth it:
every connection that runs dry within `TRIAL_JOIN_S` takes a small piece (`TRIAL_BYTES`) off the
back of a slow stream, and for `TRIAL_S` (or until those pieces are done) the streams that
were running must keep `TRIAL_KEEP` of their rate beside them, as they do where the store
limits each connection (a new connection brings its own rate and takes nothing from the
others), else no stream is split again in this run. Where the connections only share a rate
(the CPU, a link), the new ones take it from the old: 8 connections where there were 3 leave
each well under half. A failed trial costs a few pieces of read-back, not halves of the files.
(Only the old streams are judged: a short piece's own rate is mostly its request's latency.)

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
TRIAL_BYTES = 16 * 1024 * 1024  # a trial piece: what a failed trial costs in read-back, each
TRIAL_S = 0.35  # how long the trial runs before its verdict (or until its pieces are done)
TRIAL_JOIN_S = 2 * POLL_S  # idle connections that look within this long join the trial
TRIAL_KEEP = 0.8  # of their rate that the streams must keep beside the pieces for splits to go on


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
    finished: float | None = None  # when its connection let it go

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
        self._trial: _Trial[F] | None = None
        # Before the trial: when a split was first worth it, and what each stream had by then,
        # so that the trial compares with the streams' rates right before it, not since their
        # starts (which include connecting and the first request).
        self._watch: tuple[float, dict[Segment[F], int]] | None = None
        # None: not known yet (no trial ended); then whether splitting raised the rate.
        self.splits_pay: bool | None = None

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
            seg.finished = self._clock()
            self._active.remove(seg)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def split(self, now: float) -> Segment[F] | None:
        """Cut the slowest-to-finish stream in two (caller holds the lock, or single-threaded
        tests); None when no stream is worth splitting."""
        trial = self._trial
        if self.splits_pay is None and trial is not None:
            if trial.over(now):
                self.splits_pay = trial.paid(now)
            elif now - trial.start >= TRIAL_JOIN_S:
                return None  # the trial runs: wait for its verdict
        if self.splits_pay is False or self._cpu_busy() >= CPU_BUSY:
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
        if self.splits_pay is None and self._trial is None:
            if self._watch is None:
                self._watch = (now, {s: s.received for s in self._active})
            if now - self._watch[0] < SAMPLE_S:
                return None
        _, seg, rate = best
        mid = seg.claimed + (seg.end - seg.claimed) // 2
        mid = max(mid - mid % SPLIT_ALIGN, seg.claimed + self._min_split)
        if self.splits_pay is None:  # on trial: a small piece off the back
            piece = seg.end - max(TRIAL_BYTES, self._min_split)
            mid = max(mid, piece - piece % SPLIT_ALIGN)
        back = Segment(seg.file, mid, seg.end, mid, inherited_rate=rate)
        seg.end = mid
        if self.splits_pay is None:
            if self._trial is None:
                assert self._watch is not None
                self._trial = _Trial(now, self._active, self._watch)
            self._trial.pieces.append(back)
        return back


class _Trial(Generic[F]):
    """The first splits, on probation: did the streams' combined rate rise as much as that many
    more independent connections would make it (half of it, for noise), or did they only share
    the rate there was?"""

    def __init__(
        self, now: float, active: list[Segment[F]], watch: tuple[float, dict[Segment[F], int]]
    ) -> None:
        self.start = now
        # The streams running when the trial began: what each had received by then, and its
        # rate up to then (since the watch began, or else since it started).
        since, had = watch
        self.before = [
            (
                seg,
                seg.received,
                (seg.received - had[seg]) / (now - since)
                if seg in had and now > since
                else seg.rate(now) or 0.0,
            )
            for seg in active
        ]
        self.pieces: list[Segment[F]] = []

    def over(self, now: float) -> bool:
        return now - self.start >= TRIAL_S or all(p.finished is not None for p in self.pieces)

    def paid(self, now: float) -> bool:
        """Whether the streams that ran throughout the trial kept their rate beside the pieces.
        A file that completed meanwhile is left out on both sides, not taken for a slowdown."""
        window = now - self.start
        ran = [(seg, got, rate) for seg, got, rate in self.before if seg.finished is None]
        if window <= 0 or not ran:
            return True
        before = sum(rate for _, _, rate in ran)
        during = sum(seg.received - got for seg, got, _ in ran) / window
        return during >= TRIAL_KEEP * before
