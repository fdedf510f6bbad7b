"""A steady, bounded client of a Service, for the tests that count requests through it while
something else happens (the HPA's load, a fault, the soak).

Why here: the HPA test, the fault suite and the soak each need "send at this rate, record every
outcome, never run away"; one client, bounded in count and in time, so a test that forgets to
stop it still ends.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

SPEECH_BODY = json.dumps(
    {"model": "emotivoice", "input": "Hello from the load.", "response_format": "wav"}
).encode()


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent (monotonic), how long it took, and what came back ("200",
    another status code, or the client-side error's repr)."""

    sent: float
    seconds: float
    result: str

    @property
    def ok(self) -> bool:
        return self.result == "200"


def request_once(url: str, path: str, timeout: float) -> str:
    """One request on a new connection (as a load balancer's new connections would): "200", the
    status code, or the error. POST of a short phrase for /v1/audio/speech, else GET."""
    data = SPEECH_BODY if path.endswith("/audio/speech") else None
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as err:
        return str(err.code)
    except urllib.error.URLError as err:
        reason = err.reason
        return "refused" if isinstance(reason, ConnectionRefusedError) else repr(reason)
    except OSError as err:  # reset mid-answer, a timeout
        return repr(err)


@dataclass
class SteadyClient:
    """``workers`` threads, each sending one request every ``period`` seconds (or back to back
    when a request takes longer), until ``stop()``, ``limit_s`` seconds or ``max_requests``
    requests in all, whichever comes first."""

    url: str
    path: str = "/health"
    period: float = 0.1
    workers: int = 1
    limit_s: float = 300.0
    max_requests: int = 20_000
    timeout: float = 10.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SteadyClient:
        deadline = time.monotonic() + self.limit_s
        self._threads = [
            threading.Thread(target=self._run, args=(deadline,), daemon=True)
            for _ in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, deadline: float) -> None:
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.outcomes) >= self.max_requests:
                    return
            sent = time.monotonic()
            result = request_once(self.url, self.path, self.timeout)
            took = time.monotonic() - sent
            with self._lock:
                self.outcomes.append(Outcome(sent, took, result))
            self._stop.wait(max(0.0, self.period - took))

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return self.snapshot()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def __enter__(self) -> SteadyClient:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def failures(outcomes: list[Outcome], since: float = 0.0, until: float = float("inf")) -> Counter:
    """The failed requests sent in [since, until), counted by what came back."""
    return Counter(o.result for o in outcomes if since <= o.sent < until and not o.ok)


def summary(outcomes: list[Outcome]) -> str:
    """ "N requests, F failed (by result)"."""
    failed = failures(outcomes)
    detail = ", ".join(f"{k} x{v}" for k, v in failed.most_common(4))
    return f"{len(outcomes)} requests, {sum(failed.values())} failed" + (
        f" ({detail})" if detail else ""
    )
