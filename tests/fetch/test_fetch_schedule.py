"""The splitting rule: slow streams are split for idle connections, fast ones and busy CPUs not."""

from __future__ import annotations

from emotivoice_fetch.schedule import SPLIT_ALIGN, Scheduler, Segment

MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def started(size: int, busy: float = 0.0) -> tuple[Scheduler[str], Segment[str], Clock]:
    """A scheduler over one file of `size` bytes whose stream has just been handed out."""
    clock = Clock()
    sched = Scheduler([("f", 0, size)], min_split=8 * MB, clock=clock, cpu_busy=lambda: busy)
    seg = sched.next()
    assert seg is not None
    return sched, seg, clock


def one_stream(rate_mb_s: float, busy: float = 0.0) -> tuple[Scheduler[str], Clock]:
    sched, seg, clock = started(400 * MB, busy)
    clock.now = 1.0
    sched.claim(seg, MB)
    sched.advance(seg, int(rate_mb_s * MB))
    sched.claim(seg, MB)  # the next read is in flight
    return sched, clock


def test_a_slow_stream_is_split_in_two_aligned_halves() -> None:
    sched, clock = one_stream(rate_mb_s=50)
    back = sched.split(clock.now)
    assert back is not None
    front = sched._active[0]
    assert back.pos == front.end and back.end == 400 * MB
    assert back.pos % SPLIT_ALIGN == 0
    assert back.pos >= front.claimed, "a split never cuts into the read in flight"
    assert back.inherited_rate is not None


def test_a_fast_stream_is_left_alone() -> None:
    sched, clock = one_stream(rate_mb_s=1000)
    assert sched.split(clock.now) is None


def test_no_split_while_the_cpus_are_busy() -> None:
    sched, clock = one_stream(rate_mb_s=50, busy=0.9)
    assert sched.split(clock.now) is None


def test_no_split_below_two_minimal_parts() -> None:
    sched, seg, clock = started(12 * MB)
    clock.now = 1.0
    sched.advance(seg, 1)
    assert sched.split(clock.now) is None


def test_no_rate_no_split_and_done_when_all_finished() -> None:
    sched, seg, clock = started(400 * MB)
    assert sched.split(clock.now) is None, "nothing measured yet"
    sched.finish(seg)
    assert sched.next() is None
