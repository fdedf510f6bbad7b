"""The preview's pure logic against the operator's own functions, in three zones (two with a DST
change in the previewed week): every instant below is fixed, never the real clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emotivoice_operator import windows as win
from emotivoice_operator.crd.spec import SpecError, parse_spec
from emotivoice_operator.preview.recorded import read_recorded
from emotivoice_operator.preview.text import render_text
from emotivoice_operator.preview.timeline import Preview, build_preview, wall_instants
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.windows.cron import parse_cron
from tests.support.preview_cases import CASES, Case, service, utc

SETTINGS = OperatorSettings()


def _preview(case: Case, days: int = 7) -> Preview:
    return build_preview(case.body, case.start, days, SETTINGS)


def _windows(body: dict[str, Any]) -> tuple[int, list[win.Window]]:
    spec = parse_spec(body["spec"])
    return spec.replicas.min, win.parse_windows(spec.warm_pool) if spec.warm_pool else []


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_floor_is_the_operators_floor_at_every_instant(case: Case) -> None:
    """Every 5 minutes, and a second either side of every edge, the preview's floor is what
    windows.warm_floor (the operator's reconcile) computes at that instant."""
    p = _preview(case)
    minimum, windows = _windows(case.body)
    t = p.start
    probes = []
    while t < p.end:
        probes.append(t)
        t += timedelta(minutes=5)
    for s in p.segments:
        probes += [s.start, s.end - timedelta(seconds=1)]
    for t in probes:
        assert p.floor_at(t) == win.warm_floor(minimum, windows, t, {}), t
    assert p.segments[0].start == p.start and p.segments[-1].end == p.end
    assert all(a.end == b.start for a, b in zip(p.segments, p.segments[1:], strict=False))


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_week_is_seven_local_days_and_its_occurrences(case: Case) -> None:
    p = _preview(case)
    assert (p.end - p.start) == timedelta(hours=case.hours)
    assert p.end.astimezone(p.zone).time() == p.start.astimezone(p.zone).time()
    assert len(p.occurrences) == case.occurrences
    assert len(p.transitions) == case.transitions


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_prewarm_runs_are_the_rendered_cronjobs_minutes(case: Case) -> None:
    """Walking every UTC minute of the week, as robfig/cron does: a CronJob runs at a minute
    exactly when its rendered schedule matches that minute's wall clock in its timeZone."""
    p = _preview(case)
    for c in p.cronjobs:
        schedule = parse_cron(c.schedule)
        runs = {t for f in p.firings if f.cronjob == c.name for t in f.instants}
        t, matched = p.start, set()
        while t < p.end:
            if schedule.matches(t.astimezone(c.zone).replace(tzinfo=None)):
                matched.add(t)
            t += timedelta(minutes=1)
        assert runs == matched, c.name
        assert any(f.cronjob == c.name for f in p.firings), f"{c.name} not scheduled at all"


def test_shanghai_costs_what_the_schedule_says() -> None:
    """min 1 all week; mornings 3 from 08:45 to 12:00 on 5 weekdays; evenings 2 from 18:50
    (the CRD's default lead, 10m) to 23:30 every day."""
    p = _preview(CASES["shanghai"])
    assert p.replica_hours == pytest.approx(168 + 2 * 3.25 * 5 + 1 * (4 + 40 / 60) * 7)
    assert (p.peak_floor, p.flat_replica_hours) == (3, 3 * 168)
    assert not p.overlaps and not p.transitions
    assert all(len(f.instants) == 1 and f.instants[0] == f.floor_rises for f in p.firings)
    assert [f.note for f in p.firings] == [""] * 12


def test_new_york_spring_forward_skips_the_prewarm_but_not_the_floor() -> None:
    p = _preview(CASES["new-york"])
    (change,) = p.transitions
    assert change.at == utc("2024-03-10T07:00")
    assert change.walls == (datetime(2024, 3, 10, 2), datetime(2024, 3, 10, 3))
    assert change.jump == "+1h"
    skipped = [f for f in p.firings if not f.instants]
    assert {(f.window, f.wall) for f in skipped} == {
        ("night", datetime(2024, 3, 10, 2, 30)),
        ("early", datetime(2024, 3, 10, 2, 30)),
    }
    rises = {f.window: f.floor_rises for f in skipped}
    # 02:30 does not exist: the window starts at 03:00 EDT. early starts 03:30 EDT, 1h earlier.
    assert rises == {"night": utc("2024-03-10T07:00"), "early": utc("2024-03-10T06:30")}
    assert p.floor_at(utc("2024-03-10T06:29")) == 1
    assert p.floor_at(utc("2024-03-10T06:30")) == 3
    assert all("does not run" in f.note for f in skipped)
    (overlap,) = p.overlaps
    assert (overlap.first, overlap.second) == ("early", "night")
    assert (overlap.start, overlap.end) == (utc("2024-03-10T07:00"), utc("2024-03-10T08:00"))
    assert p.floor_at(overlap.start) == 3


def test_berlin_fall_back_runs_the_prewarm_twice() -> None:
    p = _preview(CASES["berlin"])
    (change,) = p.transitions
    assert change.at == utc("2024-10-27T01:00") and change.jump == "-1h"
    (twice,) = [f for f in p.firings if len(f.instants) > 1]
    assert twice.wall == datetime(2024, 10, 27, 2, 30)
    assert twice.instants == (utc("2024-10-27T00:30"), utc("2024-10-27T01:30"))
    assert "runs twice" in twice.note
    # The operator's window starts once, at the first 02:30, and ends at 03:30 CET: 2 real hours.
    (sunday,) = [o for o in p.occurrences if o.start == utc("2024-10-27T00:30")]
    assert sunday.end - sunday.start == timedelta(hours=2)


def test_a_lead_across_the_change_is_shown_against_the_floor() -> None:
    """A 03:30 window with a 2h lead on the spring-forward day: the CronJob's 01:30 (wall clock)
    is 2h of wall time but 1h of real time before the start; the floor rises 2 real hours early."""
    body = service(
        "tts-lead",
        "America/New_York",
        [{"name": "w", "start": "03:30", "end": "05:00", "leadTime": "2h", "replicas": 2}],
    )
    p = build_preview(body, utc("2024-03-10T05:00"), 1, SETTINGS)
    (run,) = p.firings
    assert run.instants == (utc("2024-03-10T06:30"),)  # 01:30 EST
    assert run.floor_rises == utc("2024-03-10T05:30")  # 03:30 EDT - 2h
    assert run.note.startswith("+1h from the floor's rise at Sun 2024-03-10 00:30")


def test_no_warm_pool_is_a_flat_floor() -> None:
    body = service("tts-flat", "UTC", [], minimum=2)
    del body["spec"]["warmPool"]
    p = build_preview(body, utc("2025-01-01T00:00"), 2, SETTINGS)
    assert [(s.floor, s.windows) for s in p.segments] == [(2, ())]
    assert p.replica_hours == p.flat_replica_hours == 96
    assert not p.cronjobs and not p.firings
    zero = service("tts-zero", "UTC", [], minimum=0)
    del zero["spec"]["warmPool"]
    assert "saves 0.0." in render_text(build_preview(zero, utc("2025-01-01T00:00"), 1, SETTINGS))


def test_bad_input_is_refused_naming_the_field() -> None:
    body = service(
        "tts-bad", "Asia/Shanghia", [{"name": "w", "start": "09:00", "end": "10:00", "replicas": 1}]
    )
    with pytest.raises(SpecError, match=r"spec\.warmPool\.timeZone.*Asia/Shanghai"):
        build_preview(body, utc("2025-01-01T00:00"), 7, SETTINGS)
    with pytest.raises(ValueError, match="1 to 31 days"):
        build_preview(CASES["shanghai"].body, utc("2025-01-01T00:00"), 0, SETTINGS)
    with pytest.raises(ValueError, match="no time zone"):
        build_preview(CASES["shanghai"].body, datetime(2025, 1, 1), 7, SETTINGS)


def test_wall_instants_in_a_gap_and_a_repeated_hour() -> None:
    ny = CASES["new-york"]
    zone = build_preview(ny.body, ny.start, 1, SETTINGS).zone
    assert wall_instants(datetime(2024, 3, 10, 2, 30), zone) == ()
    assert wall_instants(datetime(2024, 11, 3, 1, 30), zone) == (
        utc("2024-11-03T05:30"),
        utc("2024-11-03T06:30"),
    )
    assert wall_instants(datetime(2024, 7, 1, 9), zone) == (utc("2024-07-01T13:00"),)


def test_text_names_the_runs_changes_and_cost() -> None:
    ny = render_text(_preview(CASES["new-york"]))
    assert "Sun 2024-03-10 02:00 -> 03:00 America/New_York: clocks move +1h" in ny
    assert ny.count("(skipped)") == 2
    assert "early and night: Sun 2024-03-10 03:00 -> 04:00 (floor 3" in ny
    berlin = render_text(_preview(CASES["berlin"]))
    assert "runs twice" in berlin
    assert "Sun 2024-10-27 03:00 -> 02:00 Europe/Berlin: clocks move -1h" in berlin
    shanghai = render_text(_preview(CASES["shanghai"]))
    assert "none in Asia/Shanghai during the period" in shanghai
    assert "233.2 replica-hours" in shanghai and "costs 504.0" in shanghai
    assert "Mon 2025-03-03 08:45 -> 12:00" in shanghai


# --- what status recorded ----------------------------------------------------------------


def test_recorded_reads_cold_starts_and_misses() -> None:
    recorded = read_recorded(
        {
            "coldStarts": {
                "count": 2,
                "recent": [
                    {"pod": "a", "at": "2025-03-03T01:00:00Z", "seconds": 31.5, "inWindow": True},
                    {"pod": "b", "seconds": 8},  # an older operator: no time
                ],
            },
            "misses": {
                "recent": [{"window": "morning", "at": "2025-03-03T01:00:00Z", "short": 2,
                            "lateSeconds": 95}]
            },
        }
    )  # fmt: skip
    a, b = recorded.cold_starts
    assert (a.pod, a.at, a.seconds, a.in_window) == ("a", utc("2025-03-03T01:00"), 31.5, True)
    assert (b.pod, b.at, b.seconds, b.in_window) == ("b", None, 8.0, None)
    (miss,) = recorded.misses
    assert (miss.window, miss.at, miss.short, miss.late_seconds) == (
        "morning",
        utc("2025-03-03T01:00"),
        2,
        95.0,
    )


@pytest.mark.parametrize(
    "status",
    [
        None,
        {},
        {"coldStarts": None, "misses": "many"},
        {"coldStarts": {"recent": "x"}},
        {"coldStarts": {"recent": ["x", 3, None]}, "misses": {"recent": [[]]}},
    ],
)
def test_recorded_tolerates_absent_or_odd_status(status: Any) -> None:
    recorded = read_recorded(status)
    assert recorded.cold_starts == () and recorded.misses == ()


def test_recorded_drops_values_it_cannot_read() -> None:
    recorded = read_recorded(
        {
            "coldStarts": {"recent": [{"pod": "a", "at": "yesterday", "seconds": "fast",
                                       "inWindow": "yes"}]},
            "misses": {"recent": [{"window": "w", "at": "2025-03-03T01:00:00", "short": True}]},
        }
    )  # fmt: skip
    (start,) = recorded.cold_starts
    assert (start.at, start.seconds, start.in_window) == (None, None, None)
    (miss,) = recorded.misses
    assert (miss.at, miss.short) == (None, None)  # no offset: not an instant


def test_text_places_recorded_events_in_the_period() -> None:
    p = _preview(CASES["shanghai"])
    recorded = read_recorded(
        {
            "coldStarts": {"recent": [
                {"pod": "tts-gpu-1", "at": "2025-03-04T00:50:00Z", "seconds": 42, "inWindow": True},
                {"pod": "tts-gpu-2", "at": "2025-02-01T00:00:00Z", "seconds": 9},
                {"pod": "tts-gpu-3", "seconds": 7},
            ]},
            "misses": {"recent": [{"window": "morning", "at": "2025-03-04T01:00:00Z", "short": 1,
                                   "lateSeconds": 20}]},
        }
    )  # fmt: skip
    text = render_text(p, recorded)
    assert "3 recent cold starts (1 inside windows), 1 recent miss" in text
    assert "Tue 2025-03-04 08:50  cold start  tts-gpu-1: 42.0 s to Ready, in a window" in text
    assert "Tue 2025-03-04 09:00  miss        morning: 1 short, Ready 20 s late" in text
    assert "1 without a time" in text and "1 outside the period" in text


def test_start_is_read_once_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview never reads the clock: the same start gives the same preview."""
    case = CASES["new-york"]
    first = build_preview(case.body, case.start, 7, SETTINGS)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # pragma: no cover - must not be called
            raise AssertionError("the preview read the clock")

    monkeypatch.setattr("emotivoice_operator.preview.timeline.datetime", Frozen)
    assert build_preview(case.body, case.start, 7, SETTINGS) == first
    assert first.start.tzinfo is UTC


def test_a_fallback_answers_the_hours_at_zero_and_the_preview_says_so() -> None:
    """A pool at zero outside one daily window (09:00-18:00, lead 10m): its fallback answers the
    other 14 h 50 min of each day, and the text marks those spans."""
    body = service("tts-gpu", "Asia/Shanghai", [{"name": "day", "start": "09:00", "end": "18:00",
                                                 "replicas": 1}], minimum=0)  # fmt: skip
    body["spec"]["fallback"] = {"service": "tts-cpu"}
    p = build_preview(body, datetime(2025, 3, 3, 0, 0, tzinfo=UTC), 2, SETTINGS)
    assert p.fallback == "tts-cpu" and p.wake_hold == "15m"
    at_zero = sum(s.hours for s in p.segments if s.floor == 0)
    assert p.fallback_hours == pytest.approx(at_zero) and 2 * 14 < at_zero < 2 * 15
    text = render_text(p)
    assert "(the fallback tts-cpu answers)" in text and "wakes tts-gpu" in text
    body["spec"]["fallback"]["wakeOnRequest"] = False
    assert "requests do not wake" in render_text(build_preview(body, p.start, 2, SETTINGS))
    body["spec"].pop("fallback")
    plain = build_preview(body, p.start, 2, SETTINGS)
    assert plain.fallback_hours == 0 and "fallback" not in render_text(plain)
