"""The model thread: start-up first, then every call on that same thread, in order."""

from __future__ import annotations

import threading

import pytest

from emotivoice_server.model_thread import ModelThread


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
