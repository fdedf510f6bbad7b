"""The work queue: a burst of triggers makes one pass, namespaces take turns, one pass per
service at a time, failures come back after a delay. Real asyncio, no cluster."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from emotivoice_operator.controller import queue as queue_module
from emotivoice_operator.controller.queue import FairQueue, Key


async def settle(q: FairQueue, seconds: float = 0.3) -> None:
    """Waits until the queue has been idle for a moment (bounded)."""
    for _ in range(200):
        await asyncio.sleep(seconds / 10)
        if not len(q) and not q._running and not q._waiting:
            await asyncio.sleep(seconds)
            if not len(q) and not q._running and not q._waiting:
                return
    raise AssertionError("queue never went idle")


def test_a_burst_for_one_service_makes_one_pass() -> None:
    async def main() -> Counter[Key]:
        passes: Counter[Key] = Counter()

        async def run(key: Key) -> None:
            passes[key] += 1

        q = FairQueue(run, workers=2, settle_seconds=0.05)
        q.ensure_started()
        for _ in range(100):
            q.trigger(("ns", "a"))
        await settle(q)
        await q.stop()
        return passes

    assert asyncio.run(main()) == Counter({("ns", "a"): 1})


def test_triggers_during_a_pass_make_exactly_one_more() -> None:
    async def main() -> tuple[int, int]:
        passes = 0
        concurrent = peak = 0

        running = asyncio.Event()  # the first pass has begun
        release = asyncio.Event()  # passes may end

        async def run(key: Key) -> None:
            nonlocal passes, concurrent, peak
            passes += 1
            concurrent += 1
            peak = max(peak, concurrent)
            running.set()
            await release.wait()
            concurrent -= 1

        q = FairQueue(run, workers=4, settle_seconds=0)
        q.ensure_started()
        q.trigger(("ns", "a"))
        await asyncio.wait_for(running.wait(), 5)
        for _ in range(50):  # all while the first pass runs
            q.trigger(("ns", "a"))
        assert passes == 1
        release.set()
        await settle(q)
        await q.stop()
        return passes, peak

    passes, peak = asyncio.run(main())
    assert passes == 2
    assert peak == 1  # never two passes of one service at once


def test_a_quiet_namespace_is_not_starved_by_a_busy_one() -> None:
    async def main() -> list[Key]:
        order: list[Key] = []

        async def run(key: Key) -> None:
            order.append(key)
            await asyncio.sleep(0.001)

        q = FairQueue(run, workers=1, settle_seconds=0)
        for i in range(50):
            q.trigger(("busy", f"s{i}"))
        q.trigger(("quiet", "only"))
        q.ensure_started()
        await settle(q, 0.05)
        await q.stop()
        return order

    order = asyncio.run(main())
    assert len(order) == 51
    # Round robin: the quiet namespace's service runs second, not 51st.
    assert order.index(("quiet", "only")) <= 1


def test_a_failed_pass_is_retried_after_a_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "RETRY_FIRST_SECONDS", 0.05)

    async def main() -> list[float]:
        at: list[float] = []  # when each call began (the loop's clock)

        async def run(key: Key) -> None:
            at.append(asyncio.get_running_loop().time())
            if len(at) < 3:
                raise RuntimeError("the API refused")

        q = FairQueue(run, workers=1, settle_seconds=0)
        q.ensure_started()
        q.trigger(("ns", "a"))
        await settle(q, 0.3)
        await q.stop()
        return at

    at = asyncio.run(main())
    assert len(at) == 3
    # Doubling from the first delay: 0.05 s, then 0.1 s (less a millisecond: asyncio may run a
    # timer up to its clock's resolution early).
    assert at[1] - at[0] >= 0.049 and at[2] - at[1] >= 0.099, at


def test_a_pass_failed_on_an_unreachable_api_retries_at_the_short_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API server down: the delay stops doubling at RETRY_UNREACHABLE_MAX_SECONDS, so the
    pass runs again within that cap of the API's return (a refusal keeps the long back-off)."""
    import urllib3

    monkeypatch.setattr(queue_module, "RETRY_FIRST_SECONDS", 0.02)
    monkeypatch.setattr(queue_module, "RETRY_UNREACHABLE_MAX_SECONDS", 0.04)

    async def main() -> list[float]:
        at: list[float] = []

        async def run(key: Key) -> None:
            at.append(asyncio.get_running_loop().time())
            if len(at) < 6:
                raise urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")  # type: ignore[arg-type]

        q = FairQueue(run, workers=1, settle_seconds=0)
        q.ensure_started()
        q.trigger(("ns", "a"))
        await settle(q, 0.3)
        await q.stop()
        return at

    at = asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert len(at) == 6
    # 0.02, 0.04, then capped at 0.04 (doubling would have made 0.08, 0.16).
    assert all(g < 0.07 for g in gaps[2:]), gaps


def test_a_refusal_after_an_outage_starts_its_own_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five passes find the API unreachable, the sixth is refused (a restarting API server's
    403): the seventh comes after the first delay, not after one doubled five times."""
    import urllib3

    monkeypatch.setattr(queue_module, "RETRY_FIRST_SECONDS", 0.02)
    monkeypatch.setattr(queue_module, "RETRY_UNREACHABLE_MAX_SECONDS", 0.04)

    async def main() -> list[float]:
        at: list[float] = []

        async def run(key: Key) -> None:
            at.append(asyncio.get_running_loop().time())
            if len(at) <= 5:
                raise urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")  # type: ignore[arg-type]
            if len(at) == 6:
                raise RuntimeError("403: not yet authorized")

        q = FairQueue(run, workers=1, settle_seconds=0)
        q.ensure_started()
        q.trigger(("ns", "a"))
        await settle(q, 0.5)
        await q.stop()
        return at

    at = asyncio.run(main())
    assert len(at) == 7
    assert at[6] - at[5] < 0.05, at  # 0.02 (its own first), not 0.02 * 2**5 = 0.64


@pytest.mark.parametrize(
    ("exc", "unreachable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),
        (RuntimeError("wrapped"), False),
    ],
)
def test_api_unreachable_reads_the_cause(exc: BaseException, unreachable: bool) -> None:
    from kubernetes.client.exceptions import ApiException

    assert queue_module.api_unreachable(exc) is unreachable
    try:
        try:
            raise exc
        except BaseException as inner:
            raise RuntimeError("reconcile failed") from inner
    except RuntimeError as outer:
        assert queue_module.api_unreachable(outer) is unreachable
    assert queue_module.api_unreachable(ApiException(status=503)) is True
    assert queue_module.api_unreachable(ApiException(status=409)) is False


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1"):
        FairQueue(lambda key: asyncio.sleep(0), workers=0)
