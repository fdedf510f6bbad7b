"""The recommendation's pure pieces: the local grid across DST, slots, windows (layers, merging,
days, names, the 20-window cap), the date rule, the floor against the operator's own."""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from emotivoice_operator.recommend.calendar import with_holidays
from emotivoice_operator.recommend.estimate import estimate, holiday_like
from emotivoice_operator.recommend.floor import floor_per_minute, operator_windows
from emotivoice_operator.recommend.history import History, LocalGrid
from emotivoice_operator.recommend.propose import (
    days_tag,
    layered,
    propose,
    window_names,
    window_specs,
)
from emotivoice_operator.windows import warm_floor
from tests.support import traffic_history as th

BERLIN = ZoneInfo("Europe/Berlin")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _history(start: datetime, minutes: int, busy) -> History:
    start_s = int(start.timestamp())
    nan = np.full(minutes, np.nan)
    return History(start_s, BERLIN, np.asarray(busy, dtype=float), nan, nan)


def test_grid_repeats_the_fall_back_hour_and_skips_the_spring_forward_one():
    # 2027-10-31: 03:00 CEST -> 02:00 CET (02:00-02:59 twice); 2027-03-28: 02:00 -> 03:00.
    autumn = LocalGrid.build(int(datetime(2027, 10, 30, 22, tzinfo=UTC).timestamp()), 360, BERLIN)
    at_two = (autumn.minute_of_day >= 120) & (autumn.minute_of_day < 180)
    assert at_two.sum() == 120
    assert set(autumn.ordinal[at_two]) == {date(2027, 10, 31).toordinal()}
    spring = LocalGrid.build(int(datetime(2027, 3, 27, 23, tzinfo=UTC).timestamp()), 360, BERLIN)
    assert not ((spring.minute_of_day >= 120) & (spring.minute_of_day < 180)).any()
    assert (spring.weekday == 6).all()  # Sunday, local


def test_slots_are_wall_clock_times_on_both_sides_of_a_dst_change():
    start = datetime(2027, 10, 18, tzinfo=BERLIN)  # two weeks around 2027-10-31
    minutes = 3 * 7 * 1440 + 60
    grid = LocalGrid.build(int(start.timestamp()), minutes, BERLIN)
    busy = np.where((grid.minute_of_day >= 9 * 60) & (grid.minute_of_day < 10 * 60), 2.4, 0.1)
    est = estimate(_history(start, minutes, busy), (), 0.6, 15, 1, 10)
    assert (est.needed[:, 36:40] == 4).all()  # 09:00-10:00 every day, CEST and CET
    assert (est.needed[:, :36] == 1).all() and (est.needed[:, 40:] == 1).all()


def test_layers_nest_and_steps_down_start_new_windows():
    v = np.array([1, 4, 4, 7, 7, 4, 3, 3, 1])
    assert layered(v, 1) == [(3, 5, 7), (1, 6, 4), (6, 8, 3)]


def test_jittered_weekdays_merge_and_equal_windows_share_their_days():
    needed = np.ones((7, 96), dtype=np.int64)
    needed[:5, 32:76] = 4
    needed[:, 76:88] = 3
    needed[2, 50] = 5  # one slot of one day a replica above the rest
    windows = propose(needed, 1)
    specs = {(w.days, w.start, w.end, w.replicas) for w in windows}
    assert ((0, 1, 2, 3, 4), 32, 76, 4) in specs or ((0, 1, 2, 3, 4), 32, 76, 5) in specs
    assert ((0, 1, 2, 3, 4, 5, 6), 76, 88, 3) in specs
    floor = _floor_of(windows, 1)
    assert (floor >= needed).all()


def _floor_of(windows, base):
    floor = np.full((7, 96), base)
    for w in windows:
        for d in w.days:
            floor[d, w.start : w.end] = np.maximum(floor[d, w.start : w.end], w.replicas)
    return floor


def test_at_most_twenty_windows_and_never_below_the_need():
    rng = np.random.default_rng(1)
    needed = rng.integers(1, 6, size=(7, 96))
    windows = propose(needed, 1)
    assert len(windows) <= 20
    assert (_floor_of(windows, 1) >= needed).all()
    assert len(propose(needed, 1, max_windows=5)) <= 5


@pytest.mark.parametrize(
    ("days", "tag"),
    [((0, 1, 2, 3, 4, 5, 6), "daily"), ((0, 1, 2, 3, 4), "weekdays"), ((5, 6), "weekend"),
     ((2,), "wed"), ((0, 1, 2, 3), "mon-thu"), ((0, 2, 4), "d135")],
)  # fmt: skip
def test_day_tags(days, tag):
    assert days_tag(days) == tag


def test_names_are_unique_dns_labels_of_twenty_characters_at_most():
    needed = np.ones((7, 96), dtype=np.int64)
    needed[[0, 2, 4, 5], 0:8] = 3
    needed[[0, 2, 4, 5], 0:4] = 5
    needed[[1, 3], 40:44] = 2
    specs = window_specs(propose(needed, 1), 15, "10m", taken={"d1356-0000"})
    names = [s["name"] for s in specs]
    assert len(set(names)) == len(names) and "d1356-0000" not in names
    assert all(DNS_LABEL.match(n) and len(n) <= 20 for n in names)
    assert window_names([], 15) == []


def test_a_whole_day_window_is_written_as_cron():
    needed = np.ones((7, 96), dtype=np.int64)
    needed[5] = 2
    (spec,) = window_specs(propose(needed, 1), 15, "10m")
    assert spec["cron"] == "0 0 * * 6" and spec["duration"] == "24h"


def test_the_calendar_is_the_operators_with_the_holidays_added():
    """Dates from the spec, a shared calendar and --holiday, through the operator's own rule:
    a sale day runs only its datesOnly window, a holiday runs none, the spec's entry wins over
    a --holiday for the same date."""
    spec = th.manifest()["spec"]
    pool = copy.deepcopy(spec["warmPool"])
    pool["windows"].append(
        {"name": "sale", "start": "08:00", "end": "20:00", "replicas": 5, "datesOnly": True}
    )
    pool["dates"] = [{"date": "2027-11-26", "name": "sale", "windows": ["sale"]}]
    pool["calendars"] = ["de"]
    pool = with_holidays(pool, [date(2027, 11, 26), date(2027, 12, 1)])
    assert [e["date"] for e in pool["dates"]] == ["2027-11-26", "2027-12-01"]
    _, _, windows, calendar = operator_windows(
        spec, pool, None, {"de": [{"date": "2027-10-03", "name": "unity"}]}
    )
    by_name = {w.name: w for w in windows}
    assert calendar.applies("sale", True, date(2027, 11, 26))
    assert not calendar.applies(windows[0].name, False, date(2027, 11, 26))
    for holiday in (date(2027, 10, 3), date(2027, 12, 1)):
        assert not any(calendar.applies(n, w.dates_only, holiday) for n, w in by_name.items())
    assert calendar.applies(windows[0].name, False, date(2027, 11, 25))


def test_the_floor_is_the_operators_floor():
    spec = th.manifest()["spec"]
    min_r, _, windows, _ = operator_windows(spec, spec["warmPool"], None)
    start = datetime(2027, 10, 25, tzinfo=UTC)
    minutes = 14 * 1440  # across the DST change
    floor = floor_per_minute(min_r, windows, int(start.timestamp()), minutes)
    for i in range(0, minutes, 7):
        at = start + timedelta(minutes=i)
        assert floor[i] == warm_floor(min_r, windows, at, {}), at


def test_a_day_far_below_its_weekday_looks_like_a_holiday():
    start = datetime(2027, 10, 4, tzinfo=BERLIN)
    minutes = 4 * 7 * 1440
    grid = LocalGrid.build(int(start.timestamp()), minutes, BERLIN)
    busy = np.where(grid.weekday < 5, 2.0, 0.5)
    busy[grid.ordinal == date(2027, 10, 13).toordinal()] = 0.4
    history = _history(start, minutes, busy)
    assert holiday_like(history, ()) == [date(2027, 10, 13)]
    assert holiday_like(history, [date(2027, 10, 13)]) == []
