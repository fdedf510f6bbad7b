"""The model thread: start-up first, then every call on that same thread, in order; calls
whose request left (deadline, client gone) never reach the model."""

from __future__ import annotations

import threading
import time

import pytest

from emotivoice_server.model_thread import Abandoned, ModelThread, Ticket


def test_calls_run_on_the_thread_that_ran_startup():
    seen: dict[str, threading.Thread] = {}

    def startup() -> bool:
        seen["startup"] = threading.current_thread()
        return True

    worker = ModelThread(startup)
    worker.start()
    assert worker.started.wait(5)
    results = []

    def caller(i: int) -> None:
        results.append(worker.call(lambda: (i, threading.current_thread())))

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(5)
    assert sorted(i for i, _ in results) == list(range(8))
    assert {thread for _, thread in results} == {seen["startup"]}
    worker.stop()
    worker.join(5)


def test_errors_reach_the_caller_and_the_thread_keeps_serving():
    worker = ModelThread(lambda: True)
    worker.start()

    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        worker.call(boom)
    assert worker.call(lambda: 42) == 42
    worker.stop()


def test_a_failed_startup_leaves_no_thread_to_call():
    worker = ModelThread(lambda: False)
    worker.start()
    assert worker.started.wait(5)
    worker.join(5)
    with pytest.raises(RuntimeError, match="not running"):
        worker.call(lambda: 1)


def _busy_worker() -> tuple[ModelThread, threading.Event, threading.Thread]:
    """A model thread held busy by a first call until the returned event is set."""
    worker = ModelThread(lambda: True)
    worker.start()
    assert worker.started.wait(5)
    release = threading.Event()
    holder = threading.Thread(target=worker.call, args=(release.wait, 10))
    holder.start()
    return worker, release, holder


def test_a_call_past_its_deadline_never_reaches_the_model():
    worker, release, holder = _busy_worker()
    ran = []
    ticket = Ticket(deadline=time.monotonic() + 0.05)
    outcome: list[BaseException] = []

    def queued() -> None:
        try:
            worker.call(ran.append, 1, ticket=ticket)
        except Abandoned as err:
            outcome.append(err)

    caller = threading.Thread(target=queued)
    caller.start()
    caller.join(5)  # gives up by itself once the deadline passed, while the model is still busy
    assert not caller.is_alive()
    assert [e.reason for e in outcome] == ["deadline"]  # type: ignore[attr-defined]
    release.set()
    holder.join(5)
    assert worker.call(lambda: 7) == 7
    assert ran == []
    assert worker.dropped == 1
    worker.stop()


def test_a_call_whose_client_left_is_dropped_and_service_time_is_counted():
    worker, release, holder = _busy_worker()
    gone = threading.Event()
    asked = threading.Event()  # the caller looked whether its client is there

    def client_gone() -> bool:
        asked.set()
        return gone.is_set()

    ticket = Ticket(deadline=time.monotonic() + 60, client_gone=client_gone)
    result: list[object] = []

    def queued() -> None:
        try:
            result.append(worker.call(lambda: "ran", ticket=ticket))
        except Abandoned as err:
            result.append(err.reason)

    caller = threading.Thread(target=queued)
    caller.start()
    # The caller asks only while its call waits in the queue (the busy model thread has not
    # reached it): the client leaves while the call is queued, not before.
    assert asked.wait(5)
    gone.set()
    caller.join(5)
    assert result == ["client_gone"]
    assert worker.dropped == 1  # taken out of the queue, before the model ran it
    release.set()
    holder.join(5)
    kept = Ticket(deadline=time.monotonic() + 60)
    assert worker.call(time.sleep, 0.05, ticket=kept) is None
    assert worker.call(time.sleep, 0.05, ticket=kept) is None
    assert 0.1 <= kept.service_seconds < 1.0  # the model time of both calls, nothing else
    worker.stop()
