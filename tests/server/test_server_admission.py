"""Admission: a bounded number of requests at once, slots released, and a retry hint built from
the model's service time (not from the time requests spent in the server)."""

from __future__ import annotations

import threading

import pytest

from emotivoice_server.admission import INITIAL_SERVICE_S, MAX_HINT_S, Admission, RetryHint


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_capacity_is_one_running_plus_the_queue():
    admission = Admission(max_queue=2)
    assert [admission.try_enter() for _ in range(4)] == [True, True, True, False]
    assert admission.depth == 3 and admission.full
    admission.leave(0.5)
    assert not admission.full
    assert admission.try_enter() is True


def test_zero_queue_admits_exactly_one():
    admission = Admission(max_queue=0)
    assert admission.try_enter() is True
    assert admission.try_enter() is False


def test_leave_without_enter_is_a_bug_not_a_silent_miscount():
    with pytest.raises(RuntimeError):
        Admission(max_queue=1).leave()


def fill(admission: Admission, service_s: float) -> None:
    """Requests that each used `service_s` of model time, then a full queue."""
    for _ in range(20):
        admission.try_enter()
        admission.leave(service_s)
    while admission.try_enter():
        pass


def test_the_hint_is_one_service_time_not_the_queue_squared():
    # The old estimate: mean time in the server (queue wait included, ~capacity x service)
    # times the queue length again. With a 30 ms model and 9 admitted that said 3 s.
    admission = Admission(max_queue=8, clock=FakeClock())
    fill(admission, 0.030)
    hint = admission.retry_hint()
    assert hint.seconds == pytest.approx(0.030)
    assert hint.headers == {"Retry-After": "1", "retry-after-ms": "30"}


def test_clients_refused_together_get_places_one_service_time_apart():
    clock = FakeClock()
    admission = Admission(max_queue=3, clock=clock)
    fill(admission, 0.1)
    waits = [admission.retry_hint().seconds for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])
    # As time passes the line moves up.
    clock.now += 0.25
    assert admission.retry_hint().seconds == pytest.approx(0.15)


def test_the_line_never_exceeds_one_queue_turnover():
    admission = Admission(max_queue=3, clock=FakeClock())
    fill(admission, 0.1)
    waits = [admission.retry_hint().seconds for _ in range(50)]  # a storm that ignores hints
    assert max(waits) == pytest.approx(admission.capacity * 0.1)


def test_requests_that_never_reached_the_model_do_not_move_the_estimate():
    admission = Admission(max_queue=1, clock=FakeClock())
    admission.try_enter()
    admission.leave(None)
    assert admission.service_seconds == INITIAL_SERVICE_S
    admission.try_enter()
    admission.leave(2.0)
    assert admission.service_seconds == 2.0  # the first measurement replaces the guess
    admission.try_enter()
    admission.leave(1.0)
    assert 1.0 < admission.service_seconds < 2.0


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
