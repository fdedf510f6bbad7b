"""The splitting rule: slow streams are split for idle connections, fast ones and busy CPUs not."""

from __future__ import annotations

from emotivoice_fetch.schedule import (
    SAMPLE_S,
    SPLIT_ALIGN,
    TRIAL_BYTES,
    TRIAL_JOIN_S,
    TRIAL_KEEP,
    TRIAL_S,
    Scheduler,
    Segment,
)

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


def stream_for(sched: Scheduler[str], seg: Segment[str], seconds: float, rate_mb_s: float) -> None:
    sched.claim(seg, MB)
    sched.advance(seg, int(seconds * rate_mb_s * MB))
    sched.claim(seg, MB)


def watched(sched: Scheduler[str], clock: Clock, rate_mb_s: float, *streams: Segment[str]) -> None:
    """The first split worth making starts a watch of the streams' rates instead; after
    SAMPLE_S at `rate_mb_s` each, the trial may begin."""
    assert sched.split(clock.now) is None, "watching first"
    clock.now += SAMPLE_S
    for seg in streams:
        stream_for(sched, seg, SAMPLE_S, rate_mb_s)


def hand_out(sched: Scheduler[str], seg: Segment[str], now: float) -> None:
    with sched._cond:  # as next() does with a split's back part
        seg.started = now
        sched._active.append(seg)


def trial(keeps: float, pieces: int = 1) -> tuple[Scheduler[str], Clock, Segment[str]]:
    """One stream at 50 MB/s; `pieces` idle connections split it at once (the trial); then for
    TRIAL_S the pieces run at 50 MB/s each and the stream at `keeps` of its rate."""
    sched, clock = one_stream(rate_mb_s=50)
    front = sched._active[0]
    watched(sched, clock, 50, front)
    taken = []
    for _ in range(pieces):
        back = sched.split(clock.now)
        assert back is not None
        hand_out(sched, back, clock.now)
        taken.append(back)
    clock.now += TRIAL_S
    stream_for(sched, front, TRIAL_S, 50 * keeps)
    for seg in taken:
        stream_for(sched, seg, TRIAL_S, 50)
    return sched, clock, front


def test_the_first_splits_are_small_trial_pieces_off_the_back() -> None:
    sched, clock = one_stream(rate_mb_s=50)
    front = sched._active[0]
    watched(sched, clock, 50, front)
    back = sched.split(clock.now)
    assert back is not None
    hand_out(sched, back, clock.now)
    assert back.pos == front.end and back.end == 400 * MB
    assert back.end - back.pos == TRIAL_BYTES, "a failed trial costs this much read-back"
    assert back.pos % SPLIT_ALIGN == 0
    assert back.pos >= front.claimed, "a split never cuts into the read in flight"
    assert back.inherited_rate is not None
    second = sched.split(clock.now)  # another idle connection at the same moment joins it
    assert second is not None and second.end == back.pos
    assert second.end - second.pos == TRIAL_BYTES
    clock.now += TRIAL_JOIN_S
    assert sched.split(clock.now) is None, "no split while the trial runs"


def test_splits_that_raise_the_combined_rate_go_on_in_aligned_halves() -> None:
    sched, clock, front = trial(keeps=1.0)  # a per-connection limit: the new one takes nothing
    back = sched.split(clock.now)
    assert sched.splits_pay is True
    assert back is not None
    assert back.pos == front.end and back.pos % SPLIT_ALIGN == 0
    half = (back.end - front.claimed) / 2
    assert abs((back.end - back.pos) - half) <= SPLIT_ALIGN, "the back half of what is left"


def test_splits_that_only_share_the_rate_stop() -> None:
    """The CPU (or a shared link) is the limit: the new connections take the old stream's
    rate. No more splits, even of a stream that stays slow."""
    sched, clock, front = trial(keeps=0.4, pieces=3)
    assert sched.split(clock.now) is None
    assert sched.splits_pay is False
    clock.now += 5
    stream_for(sched, front, 5, 10)
    assert sched.split(clock.now) is None


def test_the_streams_must_keep_most_of_their_rate() -> None:
    for keeps, pays in [(0.9, True), (TRIAL_KEEP + 0.01, True), (TRIAL_KEEP - 0.05, False)]:
        sched, clock, _ = trial(keeps=keeps, pieces=3)
        sched.split(clock.now)
        assert sched.splits_pay is pays, keeps


def test_the_trial_compares_with_the_rates_watched_right_before_it() -> None:
    """A slow first second (connecting, the first request) does not make sharing look like a
    gain: two connections at 50 each, after one at 100, is sharing."""
    sched, seg, clock = started(400 * MB)
    clock.now = 1.0
    stream_for(sched, seg, 1.0, 10)
    watched(sched, clock, 100, seg)
    piece = sched.split(clock.now)
    assert piece is not None
    hand_out(sched, piece, clock.now)
    clock.now += TRIAL_S
    stream_for(sched, seg, TRIAL_S, 50)
    stream_for(sched, piece, TRIAL_S, 50)
    sched.split(clock.now)
    assert sched.splits_pay is False


def test_a_file_that_completes_during_the_trial_is_no_slowdown() -> None:
    clock = Clock()
    sched = Scheduler([("big", 0, 400 * MB), ("small", 0, 110 * MB)], min_split=8 * MB, clock=clock)
    big, small = sched.next(), sched.next()
    assert big is not None and small is not None
    clock.now = 1.0
    stream_for(sched, big, 1.0, 50)
    stream_for(sched, small, 1.0, 50)
    watched(sched, clock, 50, big)
    stream_for(sched, small, SAMPLE_S, 200)  # fast, and nearly done: too little left to split
    piece = sched.split(clock.now)
    assert piece is not None and piece.file == "big"
    hand_out(sched, piece, clock.now)
    sched.advance(small, 10 * MB)  # its last bytes, and it is done at once
    clock.now += 0.01
    sched.finish(small)
    clock.now += TRIAL_S - 0.01
    stream_for(sched, big, TRIAL_S, 45)
    stream_for(sched, piece, TRIAL_S, 35)
    sched.split(clock.now)
    # Big keeps 45 of its 50 MB/s. Had the small file counted, 250 MB/s before would have
    # become under 75 during the trial: a failed trial.
    assert sched.splits_pay is True


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
