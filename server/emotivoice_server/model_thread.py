"""One thread runs every model call: loading, warm-up and all requests.

PyTorch keeps per-thread state on the CPU (each native thread that enters a parallel region gets
its own OpenMP worker team, whose idle workers spin) and on CUDA (the current stream and device).
Warm-up only warms the thread it runs on, and a pool of HTTP threads each calling the model
would each build, and keep spinning, a team of their own. So the HTTP threads hand their work to
this one thread, which is also the thread that loaded and warmed the model; it serializes
requests on the model as a side effect.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_STOP = object()


class ModelThread:
    """A thread that first runs `startup`, then the calls submitted with `call`, in order."""

    def __init__(self, startup: Callable[[], bool], name: str = "model") -> None:
        self._startup = startup
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.started = threading.Event()  # set when `startup` has returned (or raised)

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
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # delivered to the caller, who decides
                future.set_exception(err)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the model thread and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        if not self._thread.is_alive():
            raise RuntimeError("the model thread is not running")
        future: Future[T] = Future()
        self._jobs.put((future, fn, args))
        return future.result()

    def stop(self) -> None:
        self._jobs.put(_STOP)
