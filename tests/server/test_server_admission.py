"""Admission: a bounded number of requests at once, slots released, Retry-After from history."""

from __future__ import annotations

import threading

import pytest

from emotivoice_server.admission import Admission


def test_capacity_is_one_running_plus_the_queue():
    admission = Admission(max_queue=2)
    assert [admission.try_enter() for _ in range(4)] == [True, True, True, False]
    assert admission.depth == 3
    admission.leave(0.5)
    assert admission.try_enter() is True


def test_zero_queue_admits_exactly_one():
    admission = Admission(max_queue=0)
    assert admission.try_enter() is True
    assert admission.try_enter() is False


def test_leave_without_enter_is_a_bug_not_a_silent_miscount():
    with pytest.raises(RuntimeError):
        Admission(max_queue=1).leave()


def test_retry_after_grows_with_the_queue_and_request_time():
    admission = Admission(max_queue=10)
    for _ in range(20):
        admission.try_enter()
        admission.leave(4.0)
    assert admission.retry_after() == 4
    for _ in range(3):
        admission.try_enter()
    assert admission.retry_after() >= 11


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
