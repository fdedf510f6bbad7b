"""Warm-window math with a fake clock: every instant below is a fixed UTC time, never the real
clock. DST dates used (2024): New York 10 Mar 02:00->03:00 and 3 Nov 02:00->01:00; Berlin
31 Mar 02:00->03:00 and 27 Oct 03:00->02:00; Sydney 6 Oct 02:00->03:00 and 7 Apr 03:00->02:00;
Lord Howe 6 Oct 02:00->02:30 (a half-hour change)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from emotivoice_operator.crd.schema import apply_defaults, spec_schema
from emotivoice_operator.crd.spec import SpecError, WarmPoolSpec
from emotivoice_operator.windows import (
    WarmRequest,
    Window,
    active_windows,
    bound_requests,
    format_local,
    next_window,
    occurrence_end,
    parse_windows,
    prewarm_cron,
    warm_floor,
    window_hold,
)
from emotivoice_operator.windows.clock import local_to_utc, zone_names
from emotivoice_operator.windows.cron import parse_cron


def pool(*windows: dict[str, Any], tz: str = "UTC") -> WarmPoolSpec:
    """A warmPool as the API server hands it over (leadTime defaulted like the CRD does)."""
    raw = {"timeZone": tz, "windows": [{"leadTime": "10m", "replicas": 2, **w} for w in windows]}
    return WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"], raw))


def one(tz: str = "UTC", **window: Any) -> Window:
    (w,) = parse_windows(pool({"name": "w", **window}, tz=tz))
    return w


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]

# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            {"start": "09:00", "end": "12:00", "days": WEEKDAYS, "leadTime": "15m"},
            dict(
                start=time(9),
                duration=timedelta(hours=3),
                days=frozenset(range(1, 6)),  # cron's numbers: Mon=1 .. Fri=5
                lead=timedelta(minutes=15),
            ),
        ),
        ({"start": "22:00", "end": "02:00"}, dict(duration=timedelta(hours=4), days=None)),
        (
            {"start": "22:00", "end": "06:00", "days": ["Sun"]},
            dict(duration=timedelta(hours=8), days=frozenset({0})),  # Sunday is cron's 0
        ),
        (
            {"start": "09:00", "end": "09:01", "leadTime": "1h30m"},
            dict(duration=timedelta(minutes=1), lead=timedelta(minutes=90)),
        ),
        (
            {"cron": "0 9 * * Mon-Fri", "duration": "90m", "leadTime": "0m"},
            dict(duration=timedelta(minutes=90), lead=timedelta(0), start=None),
        ),
        (
            {"cron": "0 9 * * *", "duration": "3h"},
            dict(duration=timedelta(hours=3), cron="0 9 * * *"),
        ),
    ],
)
def test_parse_valid(window: dict[str, Any], expected: dict[str, Any]) -> None:
    w = one(**window)
    for field, value in expected.items():
        assert getattr(w, field) == value, field


@pytest.mark.parametrize(
    ("windows", "field", "problem"),
    [
        ([{"start": "9:00", "end": "12:00"}], "warmPool.windows[0].start", "not a 24-hour HH:MM"),
        ([{"start": "09:00", "end": "24:00"}], "warmPool.windows[0].end", "not a 24-hour HH:MM"),
        ([{"start": "09:00"}], "warmPool.windows[0].end", "missing"),
        (
            [{"start": "09:00", "end": "09:00"}],
            "warmPool.windows[0].end",
            "cannot be empty or 24 hours",
        ),
        ([{"start": "09:00", "end": "10:00", "days": []}], "warmPool.windows[0].days", "empty"),
        (
            [{"cron": "0 9 * * *", "duration": "1h", "days": ["Mon"]}],
            "warmPool.windows[0].days",
            "day-of-week field",
        ),
        (
            [{"cron": "0 9 * * *", "duration": "1h", "start": "09:00", "end": "10:00"}],
            "warmPool.windows[0]",
            "not both",
        ),
        ([{}], "warmPool.windows[0]", "no schedule"),
        ([{"cron": "0 9 * * *"}], "warmPool.windows[0].duration", "missing"),
        (
            [{"cron": "0 9 * * *", "duration": "0m"}],
            "warmPool.windows[0].duration",
            "longer than 0",
        ),
        (
            [{"cron": "0 9 * * *", "duration": "168h"}],
            "warmPool.windows[0].duration",
            "shorter than 7 days",
        ),
        (
            [{"cron": "0 9 * * *", "duration": "1d"}],
            "warmPool.windows[0].duration",
            "not a duration",
        ),
        (
            [{"start": "09:00", "end": "10:00", "leadTime": "24h"}],
            "warmPool.windows[0].leadTime",
            "less than 24h",
        ),
        (
            [{"start": "09:00", "end": "10:00", "leadTime": "7d"}],
            "warmPool.windows[0].leadTime",
            "not a duration",
        ),
        (
            [{"start": "09:00", "end": "10:00", "leadTime": ""}],
            "warmPool.windows[0].leadTime",
            "not a duration",
        ),
        (
            [{"start": "09:00", "end": "10:00", "replicas": 0}],
            "warmPool.windows[0].replicas",
            "1 or more",
        ),
        (
            [{"start": "09:00", "end": "10:00"}, {"start": "11:00", "end": "12:00", "name": "w0"}],
            "warmPool.windows[1].name",
            "names two windows",
        ),
    ],
)
def test_parse_rejects(windows: list[dict[str, Any]], field: str, problem: str) -> None:
    named = [{"name": f"w{i}", **w} for i, w in enumerate(windows)]
    with pytest.raises(SpecError) as err:
        parse_windows(pool(*named))
    assert err.value.field == field
    assert problem in err.value.problem


# --- zones ---------------------------------------------------------------------------------


def test_every_iana_zone_is_accepted_and_fits_the_crd_pattern() -> None:
    """Every zone name this process knows, digits, '+' and '-' included, parses, and the CRD's
    own pattern for timeZone admits it (else the API server would refuse it first)."""
    props = spec_schema()["properties"]["warmPool"]["properties"]
    pattern = re.compile(props["timeZone"]["pattern"])
    names = sorted(zone_names())
    assert {"Etc/GMT+8", "Etc/GMT-14", "America/Port-au-Prince", "UTC"} <= set(names)
    for name in names:
        assert pattern.fullmatch(name), name
        assert len(name) <= props["timeZone"]["maxLength"], name
        assert one(tz=name, start="09:00", end="10:00").zone.key == name


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Asia/Shangai", 'did you mean "Asia/Shanghai"'),
        ("asia/shanghai", 'did you mean "Asia/Shanghai"'),
        ("Etc/GMT+15", "Etc/GMT+8"),
        ("Local", "unknown time zone"),
        ("localtime", "unknown time zone"),
        ("Mars/Olympus_Mons", "IANA"),
    ],
)
def test_unknown_zone_is_rejected_by_name(name: str, hint: str) -> None:
    with pytest.raises(SpecError) as err:
        one(tz=name, start="09:00", end="10:00")
    assert err.value.field == "warmPool.timeZone"
    assert f'"{name}"' in err.value.problem and hint in err.value.problem


def test_window_zone_overrides_pool_zone_and_is_checked_on_its_own_field() -> None:
    w = one(tz="Asia/Shanghai", start="09:00", end="10:00", timeZone="Etc/GMT+8")
    assert w.zone.key == "Etc/GMT+8"
    with pytest.raises(SpecError) as err:
        one(start="09:00", end="10:00", timeZone="Europe/Berln")
    assert err.value.field == "warmPool.windows[0].timeZone"
    assert "Europe/Berlin" in err.value.problem


# --- cron expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 9 * *", "has 4 fields"),
        ("60 9 * * *", "minute field '60': 60 is outside 0-59"),
        ("0 24 * * *", "hour field '24'"),
        ("0 9 0 * *", "day-of-month field '0'"),
        ("0 9 * 13 *", "month field '13'"),
        ("0 9 * * 8", "day-of-week field '8'"),
        ("0 9 * * Funday", "'Funday' is not a number or a name (Sun, Mon"),
        ("x 9 * * *", "'x' is not a number"),
        ("0 17-9 * * *", "runs backwards"),
        ("*/0 9 * * *", "step must be 1 or more"),
        ("1,,2 9 * * *", "'' is not a number"),
        ("0 9 1-2-3 * *", "is not a number"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
    ],
)
def test_cron_syntax_errors_name_the_field(expression: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        one(cron=expression, duration="1h")
    assert err.value.field == "warmPool.windows[0].cron"
    assert problem in err.value.problem


@pytest.mark.parametrize(
    ("expression", "fires", "does_not_fire"),
    [
        # day-of-month and day-of-week both restricted: either matches (13th, or any Friday)
        ("0 0 13 * 5", ["2024-09-13", "2024-09-20", "2024-10-13"], ["2024-09-14"]),
        # one of them '*': both must match
        ("0 0 * * Fri", ["2024-09-13", "2024-09-20"], ["2024-10-13"]),
        ("0 0 13 * *", ["2024-10-13"], ["2024-09-20"]),
        # '*/2' is a list, not '*' (robfig/cron): OR with day-of-week
        ("0 0 */2 * Sat", ["2024-09-01", "2024-09-14"], ["2024-09-02"]),
        ("0 0 ? * 7", ["2024-09-15"], ["2024-09-14"]),  # 7 is Sunday too
        ("0 0 * Jan-Mar,dec *", ["2024-01-31", "2024-12-01"], ["2024-04-01"]),
        ("0 0 25/3 * *", ["2024-09-25", "2024-09-28", "2024-10-31"], ["2024-09-26", "2024-10-01"]),
    ],
)
def test_cron_day_matching_follows_robfig(
    expression: str, fires: list[str], does_not_fire: list[str]
) -> None:
    spec = parse_cron(expression)
    for d in fires:
        assert spec.matches_date(date.fromisoformat(d)), d
    for d in does_not_fire:
        assert not spec.matches_date(date.fromisoformat(d)), d


# --- pre-warm schedules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "schedule"),
    [
        ({"days": WEEKDAYS, "start": "09:00", "end": "12:00", "leadTime": "15m"}, "45 8 * * 1-5"),
        ({"days": ["Mon"], "start": "00:10", "end": "06:00", "leadTime": "30m"}, "40 23 * * 0"),
        (
            {"days": ["Sun", "Mon"], "start": "00:00", "end": "01:00", "leadTime": "1m"},
            "59 23 * * 0,6",
        ),
        ({"days": ["Sun"], "start": "00:05", "end": "01:00", "leadTime": "1h"}, "5 23 * * 6"),
        ({"days": ["Mon"], "start": "23:58", "end": "01:00", "leadTime": "23h59m"}, "59 23 * * 0"),
        ({"start": "00:00", "end": "06:00", "leadTime": "10m"}, "50 23 * * *"),
        ({"start": "22:00", "end": "02:00", "leadTime": "0m"}, "0 22 * * *"),
        ({"days": [*WEEKDAYS, "Sat", "Sun"], "start": "00:00", "end": "01:00"}, "50 23 * * *"),
        ({"cron": "0 9 * * 1-5", "duration": "3h", "leadTime": "15m"}, "45 8 * * 1-5"),
        ({"cron": "0 0 * * Mon", "duration": "3h", "leadTime": "30m"}, "30 23 * * 0"),
        ({"cron": "0 0 * * Sun,Mon", "duration": "3h", "leadTime": "30m"}, "30 23 * * 0,6"),
        ({"cron": "0 0,12 * * *", "duration": "1h", "leadTime": "30m"}, "30 11,23 * * *"),
        ({"cron": "*/15 * * * *", "duration": "1h", "leadTime": "10m"}, "5-50/15 * * * *"),
        (
            {"cron": "*/15 9-17 * * Mon-Fri", "duration": "1h", "leadTime": "1h"},
            "0-45/15 8-16 * * 1-5",
        ),
        ({"cron": "30 9 1 * *", "duration": "1h", "leadTime": "15m"}, "15 9 1 * *"),
        ({"cron": "0 9 * Jan-Mar Mon", "duration": "1h", "leadTime": "1h"}, "0 8 * 1-3 1"),
        ({"cron": "0 12 1,15 * Fri", "duration": "1h", "leadTime": "30m"}, "30 11 1,15 * 5"),
        ({"cron": "0 9 */2 * *", "duration": "1h", "leadTime": "10m"}, "50 8 1-31/2 * *"),
        ({"cron": "0 0 * * 7", "duration": "1h", "leadTime": "0m"}, "0 0 * * 0"),
    ],
)
def test_prewarm_cron(window: dict[str, Any], schedule: str) -> None:
    assert prewarm_cron(one(tz="Asia/Shanghai", **window)) == schedule


@pytest.mark.parametrize(
    ("cron", "lead", "problem"),
    [
        ("0 0 1 * *", "10m", "day-of-month/month fields cannot move back a day"),
        ("0 0 * Jan *", "10m", "day-of-month/month fields cannot move back a day"),
        ("10 0 1,15 * Mon", "30m", "day-of-month/month fields cannot move back a day"),
        ("0 0,12 * * Mon", "30m", "moves the start 00:00 to the previous day but 12:00 stays"),
        ("*/15 * * * Mon-Fri", "10m", "into a window of their own"),
        ("0,30 9 * * *", "15m", "turns the starts into 08:45, 09:15, which no minute list"),
        ("*/15 9-17 * * *", "15m", "08:45, 09:00, 09:15, 09:30, 09:45, 10:00, ... (36 in all)"),
    ],
)
def test_inexpressible_prewarm_is_rejected_not_approximated(
    cron: str, lead: str, problem: str
) -> None:
    with pytest.raises(SpecError) as err:
        one(cron=cron, duration="1h", leadTime=lead)
    assert err.value.field == "warmPool.windows[0].cron"
    assert problem in err.value.problem
    hand_built = Window(
        name="x",
        replicas=1,
        zone=ZoneInfo("UTC"),
        lead=timedelta(minutes=int(lead[:-1])),
        duration=timedelta(hours=1),
        field="warmPool.windows[3]",
        cron=cron,
    )
    with pytest.raises(SpecError, match=re.escape(problem)) as err:
        prewarm_cron(hand_built)
    # A window's errors name it one way: where the spec wrote it.
    assert err.value.field == "warmPool.windows[3].cron"


@pytest.mark.parametrize(
    "window",
    [
        {"days": ["Mon", "Wed"], "start": "00:10", "end": "06:00", "leadTime": "30m"},
        {"start": "00:00", "end": "06:00", "leadTime": "23h"},
        {"cron": "0 0 * * Sun,Mon", "duration": "1h", "leadTime": "30m"},
        {"cron": "*/20 * * * *", "duration": "1h", "leadTime": "7m"},
        {"cron": "0 0,12 * * *", "duration": "1h", "leadTime": "30m"},
        {"cron": "0 9 */2 * Sat", "duration": "1h", "leadTime": "10m"},
        {"cron": "5 0-1 * * 1-5", "duration": "1h", "leadTime": "2h5m"},
    ],
)
def test_prewarm_fires_exactly_lead_before_each_start(window: dict[str, Any]) -> None:
    """Exhaustive over 40 days of wall-clock minutes, across month and week boundaries: the
    pre-warm schedule fires at t exactly when the window starts at t + lead."""
    w = one(**window)
    starts, prewarm = w.start_schedule(), parse_cron(prewarm_cron(w))
    t = datetime(2024, 2, 20)
    while t < datetime(2024, 3, 31):
        assert prewarm.matches(t) == starts.matches(t + w.lead), t
        t += timedelta(minutes=1)


# --- active windows and the floor ----------------------------------------------------------

NIGHT = {"start": "22:00", "end": "02:00", "leadTime": "0m"}
WEEKEND_NIGHT = {"days": ["Sun"], "start": "22:00", "end": "06:00", "leadTime": "0m"}
MONDAY_EARLY = {"days": ["Mon"], "start": "00:10", "end": "01:00", "leadTime": "30m"}
SHANGHAI_MORNING = {"days": WEEKDAYS, "start": "09:00", "end": "12:00", "leadTime": "15m"}
DAILY_0230 = {"start": "02:30", "end": "04:00", "leadTime": "0m"}
DAILY_0130 = {"start": "01:30", "end": "02:30", "leadTime": "0m"}


@pytest.mark.parametrize(
    ("tz", "window", "now", "active"),
    [
        # day wrap: 22:00-02:00 is one window
        ("UTC", NIGHT, "2024-03-06T21:59", False),
        ("UTC", NIGHT, "2024-03-06T22:00", True),
        ("UTC", NIGHT, "2024-03-07T01:59", True),
        ("UTC", NIGHT, "2024-03-07T02:00", False),
        # week wrap: Sun 22:00 - Mon 06:00 (2024-03-10 is a Sunday)
        ("UTC", WEEKEND_NIGHT, "2024-03-09T23:00", False),
        ("UTC", WEEKEND_NIGHT, "2024-03-10T22:00", True),
        ("UTC", WEEKEND_NIGHT, "2024-03-11T05:59", True),
        ("UTC", WEEKEND_NIGHT, "2024-03-11T06:00", False),
        ("UTC", WEEKEND_NIGHT, "2024-03-11T22:30", False),
        # the lead reaches back over midnight into Sunday
        ("UTC", MONDAY_EARLY, "2024-03-10T23:39", False),
        ("UTC", MONDAY_EARLY, "2024-03-10T23:40", True),
        ("UTC", MONDAY_EARLY, "2024-03-11T00:59", True),
        ("UTC", MONDAY_EARLY, "2024-03-11T01:00", False),
        # Asia/Shanghai is UTC+8: Mon 09:00 is Mon 01:00Z, pre-warm from 00:45Z
        ("Asia/Shanghai", SHANGHAI_MORNING, "2024-03-11T00:44", False),
        ("Asia/Shanghai", SHANGHAI_MORNING, "2024-03-11T00:45", True),
        ("Asia/Shanghai", SHANGHAI_MORNING, "2024-03-11T03:59", True),
        ("Asia/Shanghai", SHANGHAI_MORNING, "2024-03-09T01:00", False),  # Saturday
        # zones with digits and signs, and either side of the date line
        ("Etc/GMT+8", SHANGHAI_MORNING, "2024-03-11T17:00", True),  # Mon 09:00 at UTC-8
        (
            "Etc/GMT-14",
            SHANGHAI_MORNING,
            "2024-03-10T19:00",
            True,
        ),  # Mon 09:00 at UTC+14, Sunday in UTC
        ("Pacific/Kiritimati", SHANGHAI_MORNING, "2024-03-10T19:00", True),
        ("Pacific/Pago_Pago", SHANGHAI_MORNING, "2024-03-11T20:00", True),  # UTC-11
        ("America/Port-au-Prince", SHANGHAI_MORNING, "2024-03-11T13:00", True),  # EDT, UTC-4
        # spring forward, New York: 02:30 does not exist; the window starts at 03:00 EDT (07:00Z)
        ("America/New_York", DAILY_0230, "2024-03-10T06:59", False),
        ("America/New_York", DAILY_0230, "2024-03-10T07:00", True),
        ("America/New_York", DAILY_0230, "2024-03-10T07:59", True),
        ("America/New_York", DAILY_0230, "2024-03-10T08:00", False),  # 04:00 EDT
        # fall back, New York: 01:30 EDT (05:30Z) to 02:30 EST (07:30Z), through the repeat
        ("America/New_York", DAILY_0130, "2024-11-03T05:29", False),
        ("America/New_York", DAILY_0130, "2024-11-03T05:30", True),
        ("America/New_York", DAILY_0130, "2024-11-03T06:45", True),  # 01:45 EST, second pass
        ("America/New_York", DAILY_0130, "2024-11-03T07:29", True),
        ("America/New_York", DAILY_0130, "2024-11-03T07:30", False),
        # a window across the spring change ends on the wall clock (06:00 EDT = 10:00Z)
        ("America/New_York", {**NIGHT, "end": "06:00"}, "2024-03-10T09:59", True),
        ("America/New_York", {**NIGHT, "end": "06:00"}, "2024-03-10T10:00", False),
        # spring forward, Berlin: 02:30 -> 03:00 CEST (01:00Z)
        ("Europe/Berlin", DAILY_0230, "2024-03-31T00:59", False),
        ("Europe/Berlin", DAILY_0230, "2024-03-31T01:00", True),
        # fall back, Berlin: 02:30 CEST (00:30Z) to 04:00 CET (03:00Z)
        ("Europe/Berlin", DAILY_0230, "2024-10-27T00:29", False),
        ("Europe/Berlin", DAILY_0230, "2024-10-27T00:30", True),
        ("Europe/Berlin", DAILY_0230, "2024-10-27T02:59", True),
        ("Europe/Berlin", DAILY_0230, "2024-10-27T03:00", False),
        # southern hemisphere: Sydney springs forward in October, falls back in April
        ("Australia/Sydney", DAILY_0230, "2024-10-05T15:59", False),
        ("Australia/Sydney", DAILY_0230, "2024-10-05T16:00", True),  # 03:00 AEDT
        ("Australia/Sydney", DAILY_0230, "2024-04-06T15:30", True),  # 02:30 AEDT, first pass
        ("Australia/Sydney", DAILY_0230, "2024-04-06T17:59", True),  # 03:59 AEST
        ("Australia/Sydney", DAILY_0230, "2024-04-06T18:00", False),
    ],
)
def test_active_windows(tz: str, window: dict[str, Any], now: str, active: bool) -> None:
    w = one(tz=tz, **window)
    assert active_windows([w], utc(now)) == ([w] if active else [])


OVERLAP = [
    {"name": "morning", "start": "09:00", "end": "12:00", "leadTime": "0m", "replicas": 3},
    {"name": "lunch", "start": "11:00", "end": "14:00", "leadTime": "30m", "replicas": 5},
]


@pytest.mark.parametrize(
    ("min_replicas", "now", "requests", "floor"),
    [
        (1, "2024-03-06T08:59", {}, 1),
        (0, "2024-03-06T08:59", {}, 0),
        (1, "2024-03-06T09:00", {}, 3),
        (1, "2024-03-06T10:30", {}, 5),  # lunch pre-warms from 10:30: the larger floor wins
        (1, "2024-03-06T13:59", {}, 5),
        (1, "2024-03-06T14:00", {}, 1),
        (4, "2024-03-06T09:30", {}, 4),  # replicas.min above the window
        # An unexpired request; it expires at expiresAt; one lower than the window.
        (1, "2024-03-06T09:30", {"job": WarmRequest(7, utc("2024-03-06T10:00"))}, 7),
        (1, "2024-03-06T10:00", {"job": WarmRequest(7, utc("2024-03-06T10:00"))}, 3),
        (1, "2024-03-06T10:01", {"job": WarmRequest(7, utc("2024-03-06T10:00"))}, 3),
        (1, "2024-03-06T09:30", {"job": WarmRequest(2, utc("2024-03-06T23:00"))}, 3),
        (
            0,
            "2024-03-06T20:00",
            {
                "a": WarmRequest(2, utc("2024-03-06T21:00")),
                "b": WarmRequest(6, utc("2024-03-06T19:00")),
            },
            2,
        ),
        (
            0,
            "2024-03-06T20:00",
            {"a": WarmRequest(2, datetime(2024, 3, 7, 4, 1, tzinfo=ZoneInfo("Asia/Shanghai")))},
            2,
        ),
    ],
)
def test_warm_floor(
    min_replicas: int, now: str, requests: dict[str, WarmRequest], floor: int
) -> None:
    windows = parse_windows(pool(*OVERLAP))
    assert warm_floor(min_replicas, windows, utc(now), requests) == floor


def test_overlapping_windows_are_both_active() -> None:
    windows = parse_windows(pool(*OVERLAP))
    assert [w.name for w in active_windows(windows, utc("2024-03-06T11:30"))] == [
        "morning",
        "lunch",
    ]


def test_naive_datetimes_are_refused() -> None:
    windows = parse_windows(pool(*OVERLAP))
    with pytest.raises(ValueError, match="no time zone"):
        active_windows(windows, datetime(2024, 3, 6, 10))
    with pytest.raises(ValueError, match="no time zone"):
        warm_floor(
            1, windows, utc("2024-03-06T10:00"), {"a": WarmRequest(2, datetime(2024, 3, 6, 11))}
        )


def test_window_hold_covers_lead_and_duration() -> None:
    assert window_hold(one(**SHANGHAI_MORNING)) == timedelta(hours=3, minutes=15)
    assert window_hold(one(**{**NIGHT, "leadTime": "20m"})) == timedelta(hours=4, minutes=20)
    assert window_hold(one(cron="0 9 * * *", duration="1h30m", leadTime="1h")) == timedelta(
        hours=2, minutes=30
    )


@pytest.mark.parametrize(
    ("tz", "window", "now", "end"),
    [
        ("UTC", NIGHT, "2024-03-06T21:59", None),
        ("UTC", NIGHT, "2024-03-06T22:00", "2024-03-07T02:00"),
        ("UTC", MONDAY_EARLY, "2024-03-10T23:40", "2024-03-11T01:00"),  # at the pre-warm instant
        ("UTC", MONDAY_EARLY, "2024-03-11T01:00", None),
        # a job firing again in the repeated hour (01:30 EST) still ends with the window
        ("America/New_York", DAILY_0130, "2024-11-03T06:30", "2024-11-03T07:30"),
        # overlapping occurrences of one cron window: the latest end
        (
            "UTC",
            {"cron": "0 * * * *", "duration": "3h", "leadTime": "0m"},
            "2024-03-06T10:30",
            "2024-03-06T13:00",
        ),
    ],
)
def test_occurrence_end(tz: str, window: dict[str, Any], now: str, end: str | None) -> None:
    assert occurrence_end(one(tz=tz, **window), utc(now)) == (utc(end) if end else None)


# --- next window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "window", "now", "start", "shown"),
    [
        # Friday noon in Shanghai: the next weekday morning is Monday, across the week boundary
        (
            "Asia/Shanghai",
            SHANGHAI_MORNING,
            "2024-03-08T04:00",
            "2024-03-11T01:00",
            "Mon 2024-03-11 09:00 Asia/Shanghai",
        ),
        # strictly after: at a start, the next one is the following day's
        (
            "Asia/Shanghai",
            SHANGHAI_MORNING,
            "2024-03-11T01:00",
            "2024-03-12T01:00",
            "Tue 2024-03-12 09:00 Asia/Shanghai",
        ),
        ("UTC", WEEKEND_NIGHT, "2024-03-11T05:00", "2024-03-17T22:00", "Sun 2024-03-17 22:00 UTC"),
        (
            "America/New_York",
            DAILY_0230,
            "2024-03-10T05:00",
            "2024-03-10T07:00",
            "Sun 2024-03-10 03:00 America/New_York",
        ),
        # fall back: 01:30 happens twice on 3 Nov but the window starts once; next is 4 Nov
        (
            "America/New_York",
            DAILY_0130,
            "2024-11-03T05:31",
            "2024-11-04T06:30",
            "Mon 2024-11-04 01:30 America/New_York",
        ),
        (
            "Europe/Berlin",
            DAILY_0230,
            "2024-10-27T00:31",
            "2024-10-28T01:30",
            "Mon 2024-10-28 02:30 Europe/Berlin",
        ),
        (
            "Australia/Sydney",
            DAILY_0230,
            "2024-04-06T15:31",
            "2024-04-07T16:30",
            "Mon 2024-04-08 02:30 Australia/Sydney",
        ),
        (
            "Australia/Lord_Howe",
            {**DAILY_0230, "start": "02:10"},
            "2024-10-05T12:00",
            "2024-10-05T15:30",
            "Sun 2024-10-06 02:30 Australia/Lord_Howe",
        ),
        (
            "Etc/GMT+8",
            SHANGHAI_MORNING,
            "2024-03-09T00:00",
            "2024-03-11T17:00",
            "Mon 2024-03-11 09:00 Etc/GMT+8",
        ),
        (
            "UTC",
            {"cron": "0 9 29 2 *", "duration": "1h"},
            "2024-03-01T00:00",
            "2028-02-29T09:00",
            "Tue 2028-02-29 09:00 UTC",
        ),
    ],
)
def test_next_window(tz: str, window: dict[str, Any], now: str, start: str, shown: str) -> None:
    w = one(tz=tz, **window)
    assert next_window([w], utc(now)) == (w, utc(start))
    assert format_local(utc(start), w.zone) == shown


def test_next_window_picks_the_earliest_of_several() -> None:
    windows = parse_windows(
        pool(
            {"name": "weekly", "days": ["Mon"], "start": "09:00", "end": "10:00"},
            {
                "name": "daily",
                "start": "18:00",
                "end": "19:00",
                "timeZone": "America/Port-au-Prince",
            },
        )
    )
    assert next_window([], utc("2024-03-08T04:00")) is None
    found = next_window(windows, utc("2024-03-08T04:00"))
    assert found is not None
    assert found[0].name == "daily"
    assert format_local(found[1], found[0].zone) == "Fri 2024-03-08 18:00 America/Port-au-Prince"


def test_format_local_marks_a_repeated_hour_with_its_offset() -> None:
    ny = ZoneInfo("America/New_York")
    assert (
        format_local(utc("2024-11-03T05:30"), ny) == "Sun 2024-11-03 01:30-04:00 America/New_York"
    )
    assert (
        format_local(utc("2024-11-03T06:30"), ny) == "Sun 2024-11-03 01:30-05:00 America/New_York"
    )
    assert format_local(utc("2024-11-03T07:30"), ny) == "Sun 2024-11-03 02:30 America/New_York"


@pytest.mark.parametrize(
    ("tz", "wall", "instant"),
    [
        ("America/New_York", "2024-03-10T02:00", "2024-03-10T07:00"),  # gap: first instant after
        ("America/New_York", "2024-03-10T02:59", "2024-03-10T07:00"),
        ("America/New_York", "2024-03-10T03:00", "2024-03-10T07:00"),
        ("America/New_York", "2024-11-03T01:00", "2024-11-03T05:00"),  # repeated: first pass
        ("Europe/Berlin", "2024-03-31T02:15", "2024-03-31T01:00"),
        ("Australia/Lord_Howe", "2024-10-06T02:29", "2024-10-05T15:30"),
        ("America/Sao_Paulo", "2018-11-04T00:00", "2018-11-04T03:00"),  # midnight itself skipped
    ],
)
def test_local_to_utc_resolves_skipped_and_repeated_times(tz: str, wall: str, instant: str) -> None:
    assert local_to_utc(datetime.fromisoformat(wall), ZoneInfo(tz)) == utc(instant)


# -- issue 16: status.warmRequests is input from outside, bounded before it counts -------------


def test_requests_for_windows_the_spec_lacks_are_dropped() -> None:
    windows = parse_windows(pool(*OVERLAP))
    honoured = bound_requests(
        windows,
        6,
        {"nonexistent-window": WarmRequest(500, utc("2099-01-01T00:00"))},
        utc("2024-03-06T09:30"),
    )
    assert honoured == {}
    assert warm_floor(1, windows, utc("2024-03-06T09:30"), honoured) == 3  # the window alone


def test_requests_are_capped_at_the_windows_replicas_and_at_max() -> None:
    windows = parse_windows(pool(*OVERLAP))
    now = utc("2024-03-06T09:30")
    far = utc("2099-01-01T00:00")
    assert (
        bound_requests(windows, 6, {"morning": WarmRequest(500, far)}, now)["morning"].replicas == 3
    )
    assert (
        bound_requests(windows, 2, {"morning": WarmRequest(500, far)}, now)["morning"].replicas == 2
    )
    assert (
        bound_requests(windows, 6, {"morning": WarmRequest(1, far)}, now)["morning"].replicas == 1
    )


def test_request_expiry_is_capped_at_the_windows_end() -> None:
    windows = parse_windows(pool(*OVERLAP))
    far = utc("2099-01-01T00:00")
    # Inside morning (09:00-12:00): no later than its end.
    inside = bound_requests(windows, 6, {"morning": WarmRequest(3, far)}, utc("2024-03-06T09:30"))
    assert inside["morning"].expires_at == utc("2024-03-06T12:00")
    # Outside every window: what a job run by hand asks for, lead + duration from now.
    outside = bound_requests(windows, 6, {"lunch": WarmRequest(5, far)}, utc("2024-03-06T20:00"))
    assert outside["lunch"].expires_at == utc("2024-03-06T20:00") + timedelta(hours=3, minutes=30)
    # An honest request is left as it is.
    honest = {"morning": WarmRequest(3, utc("2024-03-06T12:00"))}
    assert bound_requests(windows, 6, honest, utc("2024-03-06T09:30")) == honest


def test_the_floor_from_a_runaway_request_never_exceeds_max() -> None:
    windows = parse_windows(pool(*OVERLAP))
    now = utc("2024-03-06T20:00")
    requests = {
        "morning": WarmRequest(500, utc("2099-01-01T00:00")),
        "x": WarmRequest(500, utc("2099-01-01T00:00")),
    }
    assert warm_floor(0, windows, now, bound_requests(windows, 3, requests, now)) == 3


def test_a_warm_request_round_trips_through_its_status_spelling() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    entry = WarmRequest(3, datetime(2024, 3, 6, 17, 30, 15, 999999, tzinfo=shanghai)).to_status()
    assert entry == {"replicas": 3, "expiresAt": "2024-03-06T09:30:15Z"}  # UTC, whole seconds
    assert WarmRequest.from_status(entry) == WarmRequest(3, utc("2024-03-06T09:30:15"))
    assert WarmRequest.from_status(entry).to_status() == entry
    # An offset instead of Z (a request written by hand) names the same instant.
    by_hand = {"replicas": 3, "expiresAt": "2024-03-06T17:30:15+08:00"}
    assert WarmRequest.from_status(by_hand) == WarmRequest.from_status(entry)


@pytest.mark.parametrize(
    "entry",
    [
        {"replicas": 3, "expiresAt": "2024-03-06T09:30:00"},  # no time zone: not guessed
        {"expiresAt": "2024-03-06T09:30:00Z"},  # no replicas
        {"replicas": 3},  # no expiry
        {"replicas": None, "expiresAt": "2024-03-06T09:30:00Z"},
        {"replicas": "many", "expiresAt": "2024-03-06T09:30:00Z"},
        {"replicas": 3, "expiresAt": "tomorrow"},
        None,
        "3 until noon",
    ],
)
def test_an_unreadable_warm_request_is_refused(entry: Any) -> None:
    with pytest.raises(ValueError):
        WarmRequest.from_status(entry)
