"""When the timer must bring a service back: the next time edge, from a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from emotivoice_operator.crd.schema import apply_defaults, spec_schema
from emotivoice_operator.crd.spec import WarmPoolSpec
from emotivoice_operator.reconcile.edges import next_edge
from emotivoice_operator.windows import WarmRequest, Window, parse_windows

HORIZON = timedelta(minutes=10)


def window(**fields: Any) -> Window:
    raw = {"timeZone": "UTC", "windows": [{"name": "w", "replicas": 2, **fields}]}
    pool = WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"], raw))
    (w,) = parse_windows(pool)
    return w


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Every day 09:00-12:00 UTC, pre-warmed from 08:50.
DAILY = {"start": "09:00", "end": "12:00", "leadTime": "10m"}


def test_without_windows_or_requests_the_horizon_is_the_edge() -> None:
    now = utc("2024-05-01T07:00:00")
    assert next_edge([], {}, None, now, HORIZON) == now + HORIZON


def test_before_the_lead_the_edge_is_where_the_lead_begins() -> None:
    now = utc("2024-05-01T08:45:00")
    assert next_edge([window(**DAILY)], {}, None, now, HORIZON) == utc("2024-05-01T08:50:00")


def test_inside_the_lead_the_edge_is_the_start() -> None:
    now = utc("2024-05-01T08:55:00")
    assert next_edge([window(**DAILY)], {}, None, now, HORIZON) == utc("2024-05-01T09:00:00")


def test_inside_the_occurrence_the_edge_is_its_end() -> None:
    now = utc("2024-05-01T11:55:00")
    assert next_edge([window(**DAILY)], {}, None, now, HORIZON) == utc("2024-05-01T12:00:00")


def test_far_from_any_edge_the_horizon_comes_first() -> None:
    now = utc("2024-05-01T10:00:00")
    assert next_edge([window(**DAILY)], {}, None, now, HORIZON) == now + HORIZON


def test_a_warm_request_expires_at_its_expiry() -> None:
    now = utc("2024-05-01T14:00:00")
    requests = {"w": WarmRequest(2, utc("2024-05-01T14:03:00"))}
    assert next_edge([window(**DAILY)], requests, None, now, HORIZON) == utc("2024-05-01T14:03:00")


def test_an_open_miss_ends_at_its_until() -> None:
    now = utc("2024-05-01T14:00:00")
    misses = {"recent": [{"open": True, "until": "2024-05-01T14:05:00Z"}, {"until": "x"}]}
    assert next_edge([], {}, misses, now, HORIZON) == utc("2024-05-01T14:05:00")


def test_edges_in_the_past_are_ignored() -> None:
    now = utc("2024-05-01T14:00:00")
    requests = {"w": WarmRequest(2, utc("2024-05-01T13:00:00"))}
    assert next_edge([], requests, None, now, HORIZON) == now + HORIZON


def test_the_timer_wakes_at_the_earliest_due_instant_within_its_period() -> None:
    """A lead learned in seconds begins on time: the timer sleeps until the next due service,
    never longer than its period, never a busy loop on one already due."""
    from emotivoice_operator.controller.timer import MIN_SLEEP, Timer

    now = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    timer = Timer()
    assert timer.sleep_for(30.0, now) == 30.0
    timer.requeue_at(("ns", "a"), now + timedelta(seconds=7.25))
    timer.requeue_at(("ns", "b"), now + timedelta(minutes=5))
    assert timer.sleep_for(30.0, now) == 7.25
    timer.requeue_at(("ns", "a"), now - timedelta(seconds=1))  # due already: triggered this look
    assert timer.sleep_for(30.0, now) == 30.0
    timer.requeue_at(("ns", "c"), now + timedelta(milliseconds=1))
    assert timer.sleep_for(30.0, now) == MIN_SLEEP


def test_an_edge_set_while_the_timer_sleeps_a_period_is_kept_on_time() -> None:
    """A window set a minute ahead while the loop sleeps its 30 s period: the pass's requeue
    wakes the loop, which then sleeps only until the new edge (a bounded run, under a second)."""
    import asyncio

    from emotivoice_operator.controller.timer import Timer

    key = ("ns", "a")
    fired: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        timer = Timer()
        timer.requeue_at(key, datetime.now(UTC) + timedelta(hours=1))
        task = asyncio.create_task(
            timer.run(30.0, lambda: [key], lambda k: fired.append(loop.time()))
        )
        try:
            await asyncio.sleep(0.05)  # the loop sleeps its period now
            began = loop.time()
            timer.requeue_at(key, datetime.now(UTC) + timedelta(seconds=0.3))
            await asyncio.sleep(0.8)
            assert fired, "the edge 0.3 s ahead did not fire within 0.8 s"
            assert 0.25 <= fired[0] - began < 0.7, fired[0] - began
        finally:
            task.cancel()

    asyncio.run(scenario())
