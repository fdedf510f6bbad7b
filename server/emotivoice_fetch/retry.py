"""Retries with exponential backoff and jitter for transient store errors."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from emotivoice_fetch.errors import ExitCode, FetchError, TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: `attempts` tries, sleeping base * 2**n (capped) with jitter.

    The defaults ride out a store restart of about half a minute, the usual length of a MinIO
    pod being rescheduled, before the fetch gives up with a clear message.
    """

    attempts: int = 10
    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Sleep before retry number `attempt` (1-based): full jitter over the capped backoff."""
        ceiling = min(self.cap_s, self.base_s * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def with_retries(
    call: Callable[[], T],
    what: str,
    policy: RetryPolicy,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying TransientError; FetchError and anything else propagate at once."""
    attempt = 0
    while True:
        try:
            return call()
        except TransientError as exc:
            attempt += 1
            if attempt >= policy.attempts:
                raise FetchError(
                    ExitCode.SOURCE_UNREACHABLE,
                    f"{what} failed {attempt} times, last: {exc}: is the object store up and "
                    "the endpoint URL right?",
                ) from None
            delay = policy.delay(attempt)
            log(f"retrying {what} in {delay:.1f} s after: {exc}")
            sleep(delay)
