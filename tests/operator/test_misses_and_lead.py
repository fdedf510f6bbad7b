"""The miss rule at window edges, and the learned lead's bounds and hysteresis; fixed clocks.

Three zones: Asia/Shanghai (no DST), America/New_York in the week of its 2026 spring-forward
(Sun 8 Mar 02:00 -> 03:00: a 09:00 start is 14:00Z before and 13:00Z after), and Asia/Kathmandu
(UTC+05:45, a quarter-hour offset).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emotivoice_operator.crd.schema import apply_defaults, spec_schema
from emotivoice_operator.crd.spec import PrePullSpec, SpecError, WarmPoolSpec
from emotivoice_operator.desired import replica_samples
from emotivoice_operator.tuning.lead import learn_lead
from emotivoice_operator.tuning.misses import check, describe_miss
from emotivoice_operator.windows import Window, parse_windows, prewarm_cron
from emotivoice_operator.windows.model import LeadBounds, format_duration, parse_duration


def pool(tz: str, *windows: dict[str, Any], auto: dict[str, Any] | None = None) -> WarmPoolSpec:
    raw: dict[str, Any] = {"timeZone": tz, "windows": list(windows)}
    if auto is not None:
        raw["autoLeadTime"] = auto
    return WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"], raw))


def daily(tz: str, start: str = "09:00", end: str = "12:00", replicas: int = 3) -> list[Window]:
    return parse_windows(
        pool(
            tz,
            {"name": "peak", "start": start, "end": end, "leadTime": "15m", "replicas": replicas},
        )
    )


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def z(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def ready_pod(name: str, at: datetime) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": z(at)}]
        },
    }


def seen_before(start: datetime) -> dict[str, Any]:
    """status.misses as it stands when the operator has watched the window since a day before."""
    return {"lastChecked": {"peak": z(start - timedelta(days=1))}}


# (zone, the UTC instant of that day's 09:00 start)
STARTS = [
    ("Asia/Shanghai", utc("2026-03-09T01:00:00")),
    ("America/New_York", utc("2026-03-09T13:00:00")),  # the Monday after spring-forward (EDT)
    ("America/New_York", utc("2026-03-07T14:00:00")),  # the Saturday before it (EST)
    ("Asia/Kathmandu", utc("2026-03-09T03:15:00")),
]


@pytest.mark.parametrize(("tz", "start"), STARTS)
def test_replicas_ready_at_the_start_instant_meet_the_window(tz: str, start: datetime) -> None:
    pods = [ready_pod(f"p{i}", start - timedelta(minutes=5) * (i != 0)) for i in range(3)]
    report = check(daily(tz), 1, pods, seen_before(start), start + timedelta(seconds=20))
    assert report.missed == [] and report.met == [("peak", start, 3)]
    assert report.status["met"] == 1 and report.status["count"] == 0
    assert report.status["lastChecked"] == {"peak": z(start)}


@pytest.mark.parametrize(("tz", "start"), STARTS)
def test_a_replica_ready_one_second_late_is_a_miss_and_its_lateness_is_kept(
    tz: str, start: datetime
) -> None:
    pods = [ready_pod("a", start - timedelta(minutes=3)), ready_pod("b", start)]
    windows = daily(tz)
    report = check(windows, 1, pods, seen_before(start), start + timedelta(seconds=30))
    [miss] = report.missed
    assert (miss.at, miss.required, miss.ready, miss.short, miss.open) == (start, 3, 2, 1, True)
    assert report.status["count"] == 1 and report.status["recent"][0]["open"]

    # The third replica turns Ready 41 s after the start: the miss closes with its lateness.
    pods.append(ready_pod("c", start + timedelta(seconds=41)))
    later = check(windows, 1, pods, report.status, start + timedelta(minutes=1))
    assert later.missed == [] and later.met == []  # the start is judged once
    [caught] = later.caught_up
    assert caught.late_seconds == 41 and not caught.open
    assert later.status["recent"][0]["lateSeconds"] == 41 and later.status["count"] == 1


def test_the_week_of_a_dst_change_judges_each_day_at_its_own_instant() -> None:
    """A pod Ready at 13:30Z was early for Saturday's 09:00 EST (14:00Z) but is late for
    Monday's 09:00 EDT (13:00Z): a fixed offset would get one of the two wrong."""
    windows = daily("America/New_York", replicas=1)
    saturday, monday = utc("2026-03-07T14:00:00"), utc("2026-03-09T13:00:00")
    early = check(windows, 0, [ready_pod("a", utc("2026-03-07T13:30:00"))],
                  seen_before(saturday), saturday + timedelta(seconds=5))  # fmt: skip
    assert early.met and not early.missed
    late = check(windows, 0, [ready_pod("a", utc("2026-03-09T13:30:00"))],
                 seen_before(monday), monday + timedelta(seconds=5))  # fmt: skip
    assert late.missed and late.missed[0].at == monday


def test_a_start_in_the_spring_forward_gap_is_judged_at_the_gaps_end() -> None:
    """02:30 does not exist in New York on 8 Mar 2026; that day's window starts at 03:00 EDT."""
    windows = daily("America/New_York", start="02:30", end="04:00", replicas=1)
    gap_end = utc("2026-03-08T07:00:00")
    report = check(windows, 0, [], seen_before(gap_end), gap_end + timedelta(seconds=1))
    assert [m.at for m in report.missed] == [gap_end]


def test_nothing_is_judged_before_the_start_or_before_the_operator_saw_the_window() -> None:
    windows = daily("Asia/Shanghai")
    start = utc("2026-03-09T01:00:00")
    before = check(windows, 1, [], seen_before(start), start - timedelta(seconds=1))
    assert before.missed == [] and before.met == []
    assert before.status["lastChecked"] == {"peak": z(start - timedelta(days=1))}
    # First sight mid-occurrence (the service was just created): no miss, the mark is now.
    first = check(windows, 1, [], None, start + timedelta(minutes=10))
    assert first.missed == [] and first.status["lastChecked"] == {
        "peak": z(start + timedelta(minutes=10))
    }
    # An operator away for the whole occurrence has nothing to say about it.
    away = check(windows, 1, [], seen_before(start), start + timedelta(hours=4))
    assert away.missed == [] and away.status["lastChecked"] == {"peak": z(start)}


def test_a_miss_never_caught_up_closes_short_at_the_windows_end() -> None:
    windows = daily("Asia/Kathmandu")
    start = utc("2026-03-09T03:15:00")
    missed = check(windows, 1, [], seen_before(start), start + timedelta(seconds=10))
    ended = check(windows, 1, [], missed.status, start + timedelta(hours=3))
    [short] = ended.ended_short
    assert not short.open and short.late_seconds is None
    assert "lateSeconds" not in ended.status["recent"][0]


def test_the_floor_at_the_start_counts_replicas_min_and_overlapping_windows() -> None:
    windows = parse_windows(
        pool(
            "Asia/Shanghai",
            {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "15m", "replicas": 2},
            {"name": "big", "start": "09:10", "end": "10:00", "leadTime": "20m", "replicas": 4},
        )
    )
    start = utc("2026-03-09T01:00:00")
    marks = {"lastChecked": {"peak": z(start - timedelta(days=1)), "big": z(start)}}
    report = check(windows, 1, [], marks, start + timedelta(seconds=1))
    assert [(m.window, m.required) for m in report.missed] == [("peak", 4)]  # big is in its lead


def test_the_miss_event_says_what_to_change() -> None:
    windows = daily("Asia/Shanghai")
    start = utc("2026-03-09T01:00:00")
    [miss] = check(windows, 1, [], seen_before(start), start).missed
    text = describe_miss(miss, "Mon 2026-03-09 09:00 Asia/Shanghai", 84.2)
    assert text.startswith("window peak opened at Mon 2026-03-09 09:00 Asia/Shanghai with 0 of 3")
    assert "84 s at p95" in text and "leadTime: auto" in text


# --- the learned lead -------------------------------------------------------------------------

BOUNDS = LeadBounds(
    initial=timedelta(minutes=10), minimum=timedelta(minutes=2), maximum=timedelta(minutes=30),
    margin=timedelta(minutes=1), min_starts=5,
)  # fmt: skip


def test_until_enough_starts_the_initial_lead_applies_and_says_so() -> None:
    decision = learn_lead(BOUNDS, [300.0] * 4, None)
    assert decision.lead == timedelta(minutes=10) and decision.mode == "initial"
    assert "4 of 5 cold starts" in decision.basis
    assert decision.status()["mode"] == "initial" and decision.status()["seconds"] == 600


def test_the_learned_lead_is_p95_plus_margin_to_a_tenth_of_a_second_within_bounds() -> None:
    samples = [20.0] * 18 + [100.0, 130.0]  # p95 (nearest rank) = 100 s
    decision = learn_lead(BOUNDS, samples, None)
    assert decision.mode == "learned" and decision.p95_seconds == 100
    assert decision.lead == timedelta(seconds=160)  # 100 s + 60 s, not rounded up to 3m
    assert decision.status()["duration"] == "2m40s" and decision.status()["seconds"] == 160
    # A fast start with a margin in seconds: 5.93 s + 1 s, rounded up to 7.0 s.
    fast = replace(BOUNDS, minimum=timedelta(seconds=1), margin=timedelta(seconds=1), min_starts=3)
    assert learn_lead(fast, [5.2, 5.93, 5.5], None).lead == timedelta(seconds=7)
    assert learn_lead(fast, [5.2, 5.96, 5.5], None).status()["duration"] == "7s"
    assert learn_lead(fast, [5.2, 6.01, 5.5], None).status()["seconds"] == 7.1
    assert learn_lead(BOUNDS, [1.0] * 5, None).lead == BOUNDS.minimum
    assert learn_lead(BOUNDS, [5000.0] * 5, None).lead == BOUNDS.maximum


def test_the_lead_rises_at_once_and_falls_only_by_a_real_step() -> None:
    five_minutes = timedelta(minutes=5)
    # A target higher applies at once, to the second.
    assert learn_lead(BOUNDS, [290.0] * 5, five_minutes).lead == timedelta(seconds=350)
    # 40 s lower does not (the step is a fifth of 5m: 1m).
    held = learn_lead(BOUNDS, [200.0] * 5, five_minutes)
    assert held.lead == five_minutes and held.target == timedelta(seconds=260)
    assert "kept 5m" in held.basis
    # 2m10s lower does.
    assert learn_lead(BOUNDS, [110.0] * 5, five_minutes).lead == timedelta(seconds=170)
    # From 30m the step is a fifth (6m): 25m is held, 24m applies.
    thirty = timedelta(minutes=30)
    assert learn_lead(BOUNDS, [25 * 60 - 60.0] * 5, thirty).lead == thirty
    assert learn_lead(BOUNDS, [24 * 60 - 60.0] * 5, thirty).lead == timedelta(minutes=24)


def test_auto_windows_take_the_learned_lead_and_their_cronjob_follows() -> None:
    spec = pool("Asia/Shanghai", {"name": "peak", "start": "09:00", "end": "12:00",
                                  "leadTime": "auto", "replicas": 2},
                {"name": "fixed", "start": "18:00", "end": "19:00", "leadTime": "15m", "replicas": 2},
                auto={"min": "2m", "max": "30m"})  # fmt: skip
    peak, fixed = parse_windows(spec)
    assert peak.auto_lead and peak.lead == timedelta(minutes=10)  # initial
    assert prewarm_cron(peak) == "50 8 * * *"
    peak, fixed = parse_windows(spec, timedelta(minutes=3))
    assert prewarm_cron(peak) == "57 8 * * *" and fixed.lead == timedelta(minutes=15)
    (peak, _) = parse_windows(spec, timedelta(hours=2))  # a stale learned lead is bounded
    assert peak.lead == timedelta(minutes=30)


def test_bounds_that_cannot_hold_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"spec\.warmPool\.autoLeadTime\.max"):
        parse_windows(pool("UTC", {"name": "w", "start": "09:00", "end": "10:00",
                                   "leadTime": "auto", "replicas": 1},
                           auto={"min": "20m", "max": "10m"}))  # fmt: skip


def test_auto_lead_bounds_take_seconds_and_fixed_durations_do_not() -> None:
    spec = pool("UTC", {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "auto",
                        "replicas": 2}, auto={"min": "5s", "margin": "1m30s"})  # fmt: skip
    bounds = LeadBounds.from_spec(spec.auto_lead_time)
    assert (bounds.minimum, bounds.margin) == (timedelta(seconds=5), timedelta(seconds=90))
    fixed = pool("UTC", {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "90s",
                         "replicas": 2})  # fmt: skip
    with pytest.raises(SpecError, match="write hours and minutes") as err:
        parse_windows(fixed)
    assert err.value.field == "warmPool.windows[0].leadTime"


@pytest.mark.parametrize("text", ["0.5s", "7.1s", "1m7.5s", "45s", "1h30m"])
def test_auto_lead_fields_take_tenths_of_a_second_and_the_learned_lead_parses_back(
    text: str,
) -> None:
    """The learned lead is shown in tenths (format_duration: 7.1s); a margin may be written so."""
    parsed = parse_duration(text, "margin", seconds=True)
    assert format_duration(parsed) == text
    assert parse_duration(format_duration(parsed), "margin", seconds=True) == parsed


@pytest.mark.parametrize("text", ["0.55s", ".5s", "1.s", "0.5m", "5"])
def test_durations_finer_than_a_tenth_or_fractional_minutes_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="to a tenth") as err:
        parse_duration(text, "warmPool.autoLeadTime.margin", seconds=True)
    assert err.value.field == "warmPool.autoLeadTime.margin"


def test_with_prepull_the_replicas_lead_learns_as_if_each_image_had_been_present() -> None:
    """The pre-pull covers the image: a 40 s pull in a 46 s start counts as the 0.2 s image
    phase of a start that found the image present: 6.2 s."""
    window = {"name": "peak", "start": "09:00", "end": "12:00", "leadTime": "auto", "replicas": 2}
    plain = pool("UTC", window)
    pre_pull = PrePullSpec(enabled=True, lead="auto", initial_lead="5m", gpu_node_selector={})
    pulled = plain.model_copy(update={"pre_pull": pre_pull})
    seconds, image = [46.0, 7.0, 6.5], [40.0, 0.8, 0.2]
    assert replica_samples(plain, seconds, image) == seconds
    assert replica_samples(pulled, seconds, image) == pytest.approx([6.2, 6.4, 6.5])
    # No start found the image present yet: the smallest phase is a pull, which each keeps.
    assert replica_samples(pulled, [46.0, 50.0], [40.0, 44.0]) == [46.0, 46.0]
    # Records without phases count whole (the lists must line up to be subtracted).
    assert replica_samples(pulled, seconds, []) == seconds
