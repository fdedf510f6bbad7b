"""One thread runs every model call: loading, warm-up and all requests.

PyTorch keeps per-thread state on the CPU (each native thread that enters a parallel region gets
its own OpenMP worker team, whose idle workers spin) and on CUDA (the current stream and device).
Warm-up only warms the thread it runs on, and a pool of HTTP threads each calling the model
would each build, and keep spinning, a team of their own. So the HTTP threads hand their work to
this one thread, which is also the thread that loaded and warmed the model; it serializes
requests on the model as a side effect.

A request's calls carry a `Ticket`: its deadline and a way to tell that its client hung up. A
call whose client is gone, or whose deadline passed while it waited, never reaches the model
(a client that timed out used to keep the model busy for seconds with audio nobody would read),
and the model seconds it did use are added up on the ticket: that, not the time in the server,
is what the retry hint is built from.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()
# How often an HTTP thread waiting for the model looks whether its client is still there.
CLIENT_CHECK_INTERVAL_S = 0.2


class Abandoned(Exception):
    """The request left before the model ran it: `reason` is 'client_gone' or 'deadline'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _never_gone() -> bool:
    return False


@dataclass
class Ticket:
    """One request's place on the model: until when it may wait, whether its client left,
    and the model seconds its calls took so far."""

    deadline: float  # time.monotonic(); for the wait before its first call only
    client_gone: Callable[[], bool] = _never_gone
    # Model calls this request still needs (one per sentence piece, plus a stream's check):
    # what the retry hint reads to tell when the next slot frees.
    calls_left: int = 1
    service_seconds: float = 0.0
    calls_done: int = 0
    started: bool = False  # a call of it ran: it is being served, no longer waiting

    def check(self) -> None:
        """Raise `Abandoned` if this request should not reach the model any more: its client
        left, or it is still waiting for its first call and the deadline passed (a text of
        many sentences being served is not cut off by it)."""
        if not self.started and time.monotonic() > self.deadline:
            raise Abandoned("deadline")
        if self.client_gone():
            raise Abandoned("client_gone")


class ModelThread:
    """A thread that first runs `startup`, then the calls submitted with `call`, in order."""

    def __init__(self, startup: Callable[[], bool], name: str = "model") -> None:
        self._startup = startup
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.started = threading.Event()  # set when `startup` has returned (or raised)
        # Wall seconds spent in calls (the model's utilization), and how many calls.
        self.busy_seconds = 0.0
        self.calls = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            serve = self._startup()
        finally:
            self.started.set()
        if not serve:
            return
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            future, fn, args, ticket = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if ticket is not None:
                    ticket.check()
            except Abandoned as err:
                self.dropped += 1
                future.set_exception(err)
                continue
            try:
                future.set_result(self._run(fn, args, ticket))
            except BaseException as err:  # delivered to the caller, who decides
                future.set_exception(err)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], ticket: Ticket | None) -> T:
        wall = time.perf_counter()
        try:
            return fn(*args)
        finally:
            wall = time.perf_counter() - wall
            self.busy_seconds += wall
            self.calls += 1
            if ticket is not None:
                ticket.service_seconds += wall
                ticket.calls_done += 1
                ticket.calls_left = max(0, ticket.calls_left - 1)
                ticket.started = True

    def call(self, fn: Callable[..., T], *args: Any, ticket: Ticket | None = None) -> T:
        """Run `fn(*args)` on the model thread and return its result (or raise its error).

        With a `ticket`, raises `Abandoned` instead when the client hangs up or the deadline
        passes before the call starts; a call already running is always finished."""
        if threading.current_thread() is self._thread:
            return self._run(fn, args, ticket)
        if not self._thread.is_alive():
            raise RuntimeError("the model thread is not running")
        future: Future[T] = Future()
        self._jobs.put((future, fn, args, ticket))
        if ticket is None:
            return future.result()
        while True:
            try:
                return future.result(timeout=CLIENT_CHECK_INTERVAL_S)
            except TimeoutError:
                try:
                    ticket.check()
                except Abandoned:
                    if future.cancel():  # still queued: it never runs, its slot frees now
                        self.dropped += 1
                        raise
                    # running already: wait for it to finish

    def stop(self) -> None:
        self._jobs.put(_STOP)
