"""Admission: a bounded number of requests at once, slots released, and a retry hint built from
the model's service time per call (not from the time requests spent in the server)."""

from __future__ import annotations

import threading

import pytest

from emotivoice_server.admission import INITIAL_CALL_S, MAX_HINT_S, Admission, RetryHint
from emotivoice_server.model_thread import Ticket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_capacity_is_one_running_plus_the_queue():
    admission = Admission(max_queue=2)
    assert [admission.try_enter() for _ in range(4)] == [True, True, True, False]
    assert admission.depth == 3 and admission.full
    admission.leave()
    assert not admission.full
    assert admission.try_enter() is True


def test_zero_queue_admits_exactly_one():
    admission = Admission(max_queue=0)
    assert admission.try_enter() is True
    assert admission.try_enter() is False


def test_leave_without_enter_is_a_bug_not_a_silent_miscount():
    with pytest.raises(RuntimeError):
        Admission(max_queue=1).leave()


def served(calls: int, seconds_per_call: float) -> Ticket:
    """A ticket as the model thread leaves it after `calls` calls."""
    ticket = Ticket(deadline=0.0, calls_left=0)
    ticket.calls_done, ticket.service_seconds = calls, calls * seconds_per_call
    return ticket


def fill(admission: Admission, call_s: float, calls_left: int = 1) -> list[Ticket]:
    """Requests whose calls each took `call_s` of model time, then a full queue of requests
    with `calls_left` calls each still to make."""
    for _ in range(20):
        admission.try_enter()
        admission.leave(served(1, call_s))
    waiting = []
    while True:
        ticket = Ticket(deadline=0.0, calls_left=calls_left)
        if not admission.try_enter(ticket):
            return waiting
        waiting.append(ticket)


def test_the_hint_is_one_call_not_the_queue_squared():
    # The old estimate: mean time in the server (queue wait included, ~capacity x service)
    # times the queue length again. With a 30 ms model and 9 admitted that said 3 s.
    admission = Admission(max_queue=8, clock=FakeClock())
    fill(admission, 0.030)
    hint = admission.retry_hint()
    assert hint.seconds == pytest.approx(0.030)
    assert hint.headers == {"Retry-After": "1", "retry-after-ms": "30"}


def test_clients_refused_together_get_places_one_call_apart():
    clock = FakeClock()
    admission = Admission(max_queue=3, clock=clock)
    fill(admission, 0.1)
    waits = [admission.retry_hint().seconds for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    # As time passes the line moves up.
    clock.now += 0.25
    assert admission.retry_hint().seconds == pytest.approx(0.15)


def test_the_line_never_exceeds_one_call_per_admitted_request():
    admission = Admission(max_queue=3, clock=FakeClock())
    fill(admission, 0.1)
    waits = [admission.retry_hint().seconds for _ in range(50)]  # a storm that ignores hints
    assert max(waits) == pytest.approx(0.1 + admission.capacity * 0.1)


def test_long_texts_in_the_queue_lengthen_the_hint_by_their_calls_left():
    admission = Admission(max_queue=3, clock=FakeClock())
    waiting = fill(admission, 0.1, calls_left=5)
    # The first to finish needs 5 calls, with the other 3 requests' calls between them.
    assert admission.retry_hint().seconds == pytest.approx(0.1 * (1 + 4 * 4))
    waiting[0].calls_left = 1
    admission._promised = 0.0
    assert admission.retry_hint().seconds == pytest.approx(0.1)


def test_one_long_text_does_not_make_later_hints_long():
    admission = Admission(max_queue=1, clock=FakeClock())
    admission.try_enter()
    admission.leave(served(30, 0.05))  # a text of 30 sentences: 1.5 s, but 50 ms a call
    assert admission.call_seconds == pytest.approx(0.05)


def test_requests_that_never_reached_the_model_do_not_move_the_estimate():
    admission = Admission(max_queue=1, clock=FakeClock())
    admission.try_enter()
    admission.leave(None)
    admission.try_enter()
    admission.leave(Ticket(deadline=0.0))  # dropped before its first call
    assert admission.call_seconds == INITIAL_CALL_S
    admission.try_enter()
    admission.leave(served(1, 2.0))
    assert admission.call_seconds == 2.0  # the first measurement replaces the guess
    admission.try_enter()
    admission.leave(served(1, 1.0))
    assert 1.0 < admission.call_seconds < 2.0


def test_hint_headers_round_up_and_stay_in_range():
    assert RetryHint(1.2).headers == {"Retry-After": "2", "retry-after-ms": "1200"}
    assert RetryHint(0.0004).headers == {"Retry-After": "1", "retry-after-ms": "1"}
    admission = Admission(max_queue=0, clock=FakeClock())
    fill(admission, 500.0)
    assert admission.retry_hint().seconds == MAX_HINT_S


def test_concurrent_entries_never_exceed_capacity():
    admission = Admission(max_queue=3)
    admitted = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        admitted.append(admission.try_enter())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 4
    assert admission.depth == 4
