"""Progress lines for `kubectl logs`: one line per interval, no carriage returns or bars."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MB = 1_000_000


def format_progress(
    done: int, total: int, fresh: int, elapsed_s: float, files_done: int, files_total: int
) -> str:
    """One progress line; `fresh` is what this run downloaded (the rate ignores resumed bytes)."""
    pct = 100.0 * done / total if total else 100.0
    rate = fresh / elapsed_s if elapsed_s > 0 else 0.0
    left = total - done
    eta = f"{left / rate:.0f} s" if rate > 0 else "?"
    return (
        f"progress: {done / MB:.1f}/{total / MB:.1f} MB ({pct:.0f}%), {rate / MB:.1f} MB/s, "
        f"ETA {eta}, files {files_done}/{files_total}"
    )


class Progress:
    """Thread-safe byte and file counters with a background reporter."""

    def __init__(
        self,
        total: int,
        already: int,
        files_total: int,
        log: Callable[[str], None],
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.files_total = files_total
        self._done = already
        self._fresh = 0
        self._files_done = 0
        self._mu = threading.Lock()
        self._log = log
        self._interval = interval_s
        self._clock = clock
        self._start = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, nbytes: int) -> None:
        with self._mu:
            self._done += nbytes
            self._fresh += nbytes

    def file_done(self) -> None:
        with self._mu:
            self._files_done += 1

    @property
    def fresh_bytes(self) -> int:
        return self._fresh

    def elapsed(self) -> float:
        return self._clock() - self._start

    def line(self) -> str:
        with self._mu:
            return format_progress(
                self._done,
                self.total,
                self._fresh,
                self.elapsed(),
                self._files_done,
                self.files_total,
            )

    def __enter__(self) -> Progress:
        if self._interval > 0:
            self._thread = threading.Thread(target=self._report, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _report(self) -> None:
        while not self._stop.wait(self._interval):
            self._log(self.line())
