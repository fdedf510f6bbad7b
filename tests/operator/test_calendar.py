"""Calendars: the occurrence rule (windows/calendar.py) through the schedule functions every
other piece uses, with a fixed clock. Dates: 2027-11-26 is a Friday (Black Friday), 2027-12-24
a Friday, 2027-12-25 a Saturday; Berlin springs forward on 2027-03-28, 02:00 -> 03:00 (UTC+1 in
winter)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from emotivoice_operator.crd.schema import CALENDAR_CRD, apply_defaults, spec_schema
from emotivoice_operator.crd.spec import SpecError, WarmPoolSpec
from emotivoice_operator.desired import desired_state
from emotivoice_operator.prewarm_job import SkippedOccurrence, warm_request
from emotivoice_operator.reconcile.observe import calendars_found
from emotivoice_operator.render import Owner
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.windows import (
    WarmRequest,
    bound_requests,
    next_window,
    parse_windows,
    warm_floor,
)
from emotivoice_operator.windows.calendar import (
    UPCOMING_DAYS,
    calendar_from_status,
    resolve_calendar,
    shared_calendar,
)
from emotivoice_operator.windows.schedule import latest_occurrence, occurrences
from tests.support.invalid_specs import valid_resource

BERLIN = "Europe/Berlin"
PEAK = {"name": "weekday-peak", "days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        "start": "08:00", "end": "18:00", "replicas": 3}  # fmt: skip
SALE = {"name": "sale", "start": "08:00", "end": "23:00", "replicas": 8, "datesOnly": True}
EVENING = {"name": "evening", "start": "20:00", "end": "02:00", "replicas": 2}


def pool(*windows: dict[str, Any], tz: str = BERLIN, **extra: Any) -> WarmPoolSpec:
    """A warmPool as the API server hands it over (the CRD's defaults applied)."""
    raw = {"timeZone": tz, "windows": list(windows), **extra}
    return WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"], raw))


def calendar_body(name: str, *dates: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "tts.emotivoice.io/v1alpha1", "kind": "EmotiVoiceCalendar",
            "metadata": {"name": name}, "spec": {"dates": list(dates)}}  # fmt: skip


def windows_of(p: WarmPoolSpec, **bodies: dict[str, Any] | None):
    shared = {n: shared_calendar(n, bodies.get(n)) for n in p.calendars or []}
    return parse_windows(p, None, resolve_calendar(p, shared))


def berlin(text: str) -> datetime:
    """A Berlin wall time as a UTC instant (winter dates: UTC+1)."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(BERLIN)).astimezone(UTC)


def floor(p: WarmPoolSpec, at: datetime, minimum: int = 1, **bodies: Any) -> int:
    return warm_floor(minimum, windows_of(p, **bodies), at, {})


# --- the rule ----------------------------------------------------------------------------------


def test_a_holiday_keeps_the_floor_at_replicas_min_through_the_window() -> None:
    p = pool(PEAK, dates=[{"date": "2027-12-24", "name": "Christmas Eve"}])
    assert floor(p, berlin("2027-12-24T10:00")) == 1
    assert floor(p, berlin("2027-12-23T10:00")) == 3  # the day before: an ordinary Thursday
    assert floor(p, berlin("2027-12-27T10:00")) == 3  # Monday after
    # The next window skips the holiday (and the weekend): Monday 27th, 08:00.
    found = next_window(windows_of(p), berlin("2027-12-23T19:00"))
    assert found is not None and found[1] == berlin("2027-12-27T08:00")


def test_a_sale_day_brings_its_datesonly_window_and_only_the_windows_it_names() -> None:
    p = pool(
        SALE, PEAK, dates=[{"date": "2027-11-26", "name": "Black Friday", "windows": ["sale"]}]
    )
    assert floor(p, berlin("2027-11-26T09:00")) == 8
    assert floor(p, berlin("2027-11-26T22:00")) == 8  # sale runs to 23:00, the peak would not
    # weekday-peak does not apply that Friday: the entry names sale only (from 07:50, the lead).
    assert [w.name for w in windows_of(p) if list(occurrences(w, date(2027, 11, 26),
            date(2027, 11, 26)))] == ["sale"]  # fmt: skip
    # On other days the sale never applies; the peak does.
    assert floor(p, berlin("2027-11-25T09:00")) == 3
    assert floor(p, berlin("2027-11-25T20:00")) == 1
    # The sale's next start, searched from months before, is its one date.
    sale = next(w for w in windows_of(p) if w.name == "sale")
    found = next_window([sale], berlin("2027-06-01T00:00"))
    assert found is not None and found[1] == berlin("2027-11-26T08:00")


def test_an_overnight_window_belongs_to_the_date_it_starts_on() -> None:
    p = pool(EVENING, dates=[{"date": "2027-12-25", "name": "Christmas Day"}])
    # Started on the 24th: it runs on into the holiday's first hours.
    assert floor(p, berlin("2027-12-25T01:00"), minimum=0) == 2
    # The 25th's own evening occurrence is skipped, and with it the night into the 26th.
    assert floor(p, berlin("2027-12-25T21:00"), minimum=0) == 0
    assert floor(p, berlin("2027-12-26T01:00"), minimum=0) == 0
    assert floor(p, berlin("2027-12-26T21:00"), minimum=0) == 2


def test_on_a_dst_day_the_start_in_the_gap_is_judged_by_its_local_date() -> None:
    # 02:30 does not exist on 2027-03-28 in Berlin: the start resolves to 03:00 CEST that day.
    early = {"name": "early", "start": "02:30", "end": "05:00", "replicas": 4}
    holiday = pool(early, dates=[{"date": "2027-03-28", "name": "Test"}])
    sale = pool({**early, "datesOnly": True},
                dates=[{"date": "2027-03-28", "name": "DST sale", "windows": ["early"]}])  # fmt: skip
    at = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert floor(holiday, at, minimum=0) == 0
    assert floor(sale, at, minimum=0) == 4
    (w,) = windows_of(sale)
    assert latest_occurrence(w, at) == (
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
        datetime(2027, 3, 28, 3, 0, tzinfo=UTC),
    )


def test_the_date_is_the_pools_even_for_a_window_in_another_zone() -> None:
    # 20:00 in New York on the 24th is 02:00 on the 25th in Berlin: the holiday's date.
    ny = {"name": "ny", "start": "20:00", "end": "23:00", "replicas": 2,
          "timeZone": "America/New_York"}  # fmt: skip
    p = pool(ny, dates=[{"date": "2027-12-25", "name": "Christmas Day"}])
    assert floor(p, datetime(2027, 12, 25, 2, 0, tzinfo=UTC), minimum=0) == 0  # 21:00 NY, 24th
    assert floor(p, datetime(2027, 12, 24, 2, 0, tzinfo=UTC), minimum=0) == 2  # 21:00 NY, 23rd


def test_inline_dates_take_precedence_over_calendars_and_calendars_merge() -> None:
    holidays = calendar_body("holidays", {"date": "2027-12-24", "name": "Heiligabend"})
    sales = calendar_body("sales", {"date": "2027-12-24", "name": "Last-minute sale",
                                    "windows": ["sale", "other-services-window"]})  # fmt: skip
    p = pool(SALE, PEAK, calendars=["holidays", "sales"])
    cal = resolve_calendar(p, {n: shared_calendar(n, b) for n, b in
                               (("holidays", holidays), ("sales", sales))})  # fmt: skip
    entry = cal.entry(date(2027, 12, 24))
    assert entry is not None
    assert entry.windows == {"sale", "other-services-window"}  # the union
    assert entry.name == "Heiligabend / Last-minute sale"
    assert entry.source == "calendars holidays, sales"
    assert floor(p, berlin("2027-12-24T10:00"), holidays=holidays, sales=sales) == 8
    # Two calendars that only say "holiday": still a holiday.
    p2 = pool(PEAK, calendars=["holidays", "more"])
    more = calendar_body("more", {"date": "2027-12-24", "name": "Christmas Eve"})
    assert floor(p2, berlin("2027-12-24T10:00"), holidays=holidays, more=more) == 1
    # The service's own entry for the date wins over both calendars.
    own = pool(SALE, PEAK, calendars=["holidays", "sales"],
               dates=[{"date": "2027-12-24", "windows": ["weekday-peak"]}])  # fmt: skip
    assert floor(own, berlin("2027-12-24T20:00"), holidays=holidays, sales=sales) == 1
    assert floor(own, berlin("2027-12-24T10:00"), holidays=holidays, sales=sales) == 3


def test_a_calendar_entry_naming_only_other_services_windows_is_a_day_off_here() -> None:
    other = calendar_body("shared", {"date": "2027-12-23", "windows": ["not-ours"]})
    p = pool(PEAK, calendars=["shared"])
    assert floor(p, berlin("2027-12-23T10:00"), shared=other) == 1


def test_a_missing_calendar_counts_as_empty_and_says_so_naming_the_field() -> None:
    p = pool(PEAK, calendars=["de-public-holidays", "gone"])
    de = calendar_body("de-public-holidays", {"date": "2027-12-24", "name": "Heiligabend"})
    assert floor(p, berlin("2027-12-23T10:00"), **{"de-public-holidays": de}) == 3
    assert floor(p, berlin("2027-12-24T10:00"), **{"de-public-holidays": de}) == 1
    body = valid_resource()
    body["spec"]["warmPool"] = {"timeZone": BERLIN, "windows": [PEAK],
                                "calendars": ["de-public-holidays", "gone"]}  # fmt: skip
    desired = desired_state(
        body["spec"], Owner("tts", "default", "uid"), berlin("2027-12-23T10:00"), {},
        OperatorSettings(server_image="x"), calendars={"de-public-holidays": de},
    )  # fmt: skip
    assert desired.warm_floor == 3
    found = calendars_found(desired)
    assert found is not None and found[0] is False
    assert "spec.warmPool.calendars[1]" in found[1] and "'gone'" in found[1]
    assert "kubectl get emotivoicecalendars" in found[1]
    assert desired.calendar is not None
    status = desired.calendar.status(date(2027, 12, 23))
    assert status["calendars"] == ["de-public-holidays"] and status["missing"] == ["gone"]
    assert status["upcoming"] == [{"date": "2027-12-24", "name": "Heiligabend", "windows": [],
                                   "source": "calendar de-public-holidays"}]  # fmt: skip


def test_an_invalid_calendar_counts_as_empty_naming_its_field() -> None:
    bad = calendar_body("bad", {"date": "2027-02-30"})
    shared = shared_calendar("bad", bad)
    assert shared.entries == () and "dates[0].date" in shared.problem
    assert floor(pool(PEAK, calendars=["bad"]), berlin("2027-12-23T10:00"), bad=bad) == 3


def test_upcoming_spans_yesterday_to_two_weeks_ahead() -> None:
    days = [date(2027, 12, 1) + timedelta(days=k) for k in range(-3, 20)]
    p = pool(PEAK, dates=[{"date": d.isoformat()} for d in days])
    upcoming = resolve_calendar(p).status(date(2027, 12, 1))["upcoming"]
    assert upcoming[0]["date"] == "2027-11-30"
    assert upcoming[-1]["date"] == (date(2027, 12, 1) + timedelta(days=UPCOMING_DAYS)).isoformat()
    assert upcoming[0]["source"] == "spec.warmPool.dates[2]"


# --- warm requests and the pre-warm job ------------------------------------------------------


def test_bound_requests_drop_a_request_made_for_a_skipped_occurrence() -> None:
    p = pool(PEAK, dates=[{"date": "2027-12-24", "name": "Christmas Eve"}])
    request = {"weekday-peak": WarmRequest(3, berlin("2027-12-24T18:00"))}
    assert bound_requests(windows_of(p), 5, request, berlin("2027-12-24T07:55")) == {}
    ordinary = {"weekday-peak": WarmRequest(3, berlin("2027-12-23T18:00"))}
    kept = bound_requests(windows_of(p), 5, ordinary, berlin("2027-12-23T07:55"))
    assert kept == ordinary


def _service(status: dict[str, Any] | None = None, **pool_extra: Any) -> dict[str, Any]:
    body = valid_resource()
    body["spec"]["warmPool"] = {"timeZone": BERLIN, "windows": [PEAK, SALE], **pool_extra}
    if status is not None:
        body["status"] = status
    return body


def test_the_job_skips_a_date_the_operator_resolved_from_a_calendar() -> None:
    status = {"calendar": {"calendars": ["de-public-holidays"], "missing": [], "upcoming": [
        {"date": "2027-12-24", "name": "Christmas Eve", "windows": [],
         "source": "calendar de-public-holidays"},
        {"date": "2027-11-26", "name": "Black Friday", "windows": ["sale"],
         "source": "calendar sales"},
    ]}}  # fmt: skip
    body = _service(status, calendars=["de-public-holidays", "sales"])
    # The CronJob fires at 07:50 (leadTime 10m before 08:00).
    with pytest.raises(SkippedOccurrence) as skipped:
        warm_request(body, "weekday-peak", berlin("2027-12-24T07:50"))
    assert str(skipped.value) == (
        "window weekday-peak skipped on 2027-12-24: Christmas Eve (calendar de-public-holidays)"
    )
    assert warm_request(body, "sale", berlin("2027-11-26T07:50")).replicas == 8
    with pytest.raises(SkippedOccurrence, match="datesOnly"):
        warm_request(body, "sale", berlin("2027-11-25T07:50"))
    # An ordinary day: the request as before, ending with the window.
    request = warm_request(body, "weekday-peak", berlin("2027-12-23T07:50"))
    assert request == WarmRequest(3, berlin("2027-12-23T18:00"))


def test_the_jobs_spec_dates_override_what_status_says_of_calendars() -> None:
    status = {"calendar": {"upcoming": [
        {"date": "2027-12-24", "name": "Christmas Eve", "windows": [], "source": "calendar de"},
        {"date": "2027-12-23", "name": "stale inline", "windows": [],
         "source": "spec.warmPool.dates[0]"},
        {"date": "not a date"},
    ]}}  # fmt: skip
    body = _service(status, calendars=["de"],
                    dates=[{"date": "2027-12-24", "windows": ["weekday-peak"]},
                           {"date": "2027-11-26", "windows": ["sale"]}])  # fmt: skip
    assert warm_request(body, "weekday-peak", berlin("2027-12-24T07:50")).replicas == 3
    # An inline entry status still shows but the spec no longer has does not skip anything.
    assert warm_request(body, "weekday-peak", berlin("2027-12-23T07:50")).replicas == 3
    p = WarmPoolSpec.model_validate(apply_defaults(spec_schema()["properties"]["warmPool"],
                                                   body["spec"]["warmPool"]))  # fmt: skip
    assert [e.day for e in calendar_from_status(p, status).entries] == [
        date(2027, 11, 26),
        date(2027, 12, 24),
    ]


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ({"dates": [{"date": "2027-02-30"}]}, "warmPool.dates[0].date", "not a date of the"),
        ({"dates": [{"date": "27-12-24"}]}, "warmPool.dates[0].date", "YYYY-MM-DD"),
        ({"dates": [{"date": "2100-01-01"}]}, "warmPool.dates[0].date", "2000-2099"),
        ({"dates": [{"date": "2027-12-24"}, {"date": "2027-12-24"}]},
         "warmPool.dates[1].date", "also warmPool.dates[0]"),
        ({"dates": [{"date": "2027-12-24", "windows": ["weekday-peak", "nope"]}]},
         "warmPool.dates[0].windows[1]", "not a window"),
        ({}, "warmPool.windows[1].datesOnly", "never apply"),
    ],
)  # fmt: skip
def test_bad_dates_are_refused_naming_the_field(
    extra: dict[str, Any], field: str, says: str
) -> None:
    p = pool(PEAK, SALE, **extra)
    with pytest.raises(SpecError) as refused:
        windows_of(p)
    assert refused.value.field == field
    assert says in refused.value.problem


def test_a_datesonly_window_with_a_calendar_listed_is_accepted() -> None:
    windows = windows_of(pool(PEAK, SALE, calendars=["sales"]))
    assert [w.dates_only for w in windows] == [False, True]


def test_the_calendar_crd_shares_the_services_date_entry_schema() -> None:
    service = spec_schema()["properties"]["warmPool"]["properties"]["dates"]
    version = CALENDAR_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    calendar = version["properties"]["spec"]["properties"]["dates"]
    assert calendar["items"] == service["items"]
    assert calendar["maxItems"] == service["maxItems"] == 366
    assert CALENDAR_CRD["spec"]["scope"] == "Cluster"
    assert CALENDAR_CRD["spec"]["names"]["shortNames"] == ["evcal"]
    assert yaml.safe_dump(calendar["items"])  # a plain structure


# --- preview ----------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "holiday-calendar.yaml"


def test_preview_lists_the_dates_and_its_floor_honours_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the example, with its calendar from --calendar: the holidays and the sale day are
    listed with what applies, the floor stays at replicas.min on them, the sale's 8 hold on its
    date, and the plot marks each dated day."""
    from emotivoice_operator.main import main
    from emotivoice_operator.preview import plot

    png = tmp_path / "p.png"
    args = ["preview", "-f", str(EXAMPLE), "--calendar", str(EXAMPLE), "--start",
            "2027-12-23T00:00", "--days", "4"]  # fmt: skip
    assert main([*args, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Fri 2027-12-24  Heiligabend: no window applies  (spec.warmPool.dates[1])" in out
    assert (
        "Sat 2027-12-25  1. Weihnachtstag: no window applies  (calendar de-public-holidays)" in out
    )
    assert "Thu 2027-12-23 18:00 -> Mon 2027-12-27 00:00   1" in out
    assert "skips: Heiligabend (spec.warmPool.dates[1]) (no request)" in out
    assert png.stat().st_size > 0

    from emotivoice_operator.cli_preview import load_calendars
    from emotivoice_operator.cli_render import load_services
    from emotivoice_operator.preview.timeline import build_preview

    (body,) = load_services([EXAMPLE])
    p = build_preview(body, berlin("2027-11-25T00:00"), 3, OperatorSettings(),
                      calendars=load_calendars([EXAMPLE]))  # fmt: skip
    assert p.floor_at(berlin("2027-11-26T20:00")) == 8
    assert p.floor_at(berlin("2027-11-25T20:00")) == 1
    assert [e.name for e in p.dates] == ["Black Friday"]
    fig = plot.figure(p)
    assert [
        a.get_gid() for a in fig.findobj() if (a.get_gid() or "").startswith(plot.GID_DATE)
    ] == [plot.GID_DATE + "2027-11-26"]


def test_preview_without_the_calendar_counts_it_empty_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emotivoice_operator.main import main

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))  # no cluster to read it from
    assert main(["preview", "-f", str(EXAMPLE), "--start", "2027-12-24T00:00", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert (
        "spec.warmPool.calendars[0]: EmotiVoiceCalendar 'de-public-holidays' does not exist" in out
    )
    assert "Sat 2027-12-25" not in out.split("Warm floor")[0]
