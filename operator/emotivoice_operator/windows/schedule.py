"""When windows are warm: pure functions of a ``now`` the caller reads once (UTC).

A window occurrence starting on local date D at local time T is warm over the instants
``[start - lead, end)`` where ``start`` resolves D T and ``end`` resolves the wall time
D T + duration (see ``clock`` for how skipped and repeated wall times resolve). The lead is real
elapsed time before the start instant; the pre-warm CronJob's schedule is the same shift on the
wall clock, so the two differ only when a DST change falls between pre-warm and start.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta

from emotivoice_operator.windows.calendar import DateEntry
from emotivoice_operator.windows.clock import local_to_utc, to_utc
from emotivoice_operator.windows.model import WarmRequest, Window

# Every parsed cron expression fires at least once in 8 years (the rarest: 29 February).
_SEARCH_DAYS = 8 * 366 + 2
# Slack for DST shifts between a wall-clock end and its instant, in whole days.
_SLACK_DAYS = 2
# The most a wall-clock pre-warm differs from start - lead in real time (a DST change between).
DST_SLACK = timedelta(hours=1)


def prewarm_cron(w: Window) -> str:
    """Five-field schedule, in ``w.zone`` wall-clock time (the CronJob sets
    ``timeZone: w.zone.key``), firing ``w.lead`` before every window start; ``SpecError``
    naming ``w.field`` when no five-field schedule can."""
    return w.prewarm_schedule.render()


def window_hold(w: Window) -> timedelta:
    """How long a warm request made at the pre-warm instant lasts: lead + duration.

    It ends at the window's end except when a DST change falls inside the window (the wall-clock
    duration is then an hour longer or shorter in real time); the operator's own active-window
    floor covers that hour.
    """
    return w.lead + w.duration


def occurrences(w: Window, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
    """(start, end) instants in UTC of the occurrences starting on local dates first..last,
    in start order (two starts skipped by the same DST gap both resolve to its end), less those
    the pool's dates skip (``Window.applies_at``): every schedule function below, and misses
    and the preview, see only the occurrences that apply."""
    for start, end in scheduled(w, first, last):
        if w.applies_at(start):
            yield start, end


def scheduled(w: Window, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
    """Every occurrence the window's times give, whether the pool's dates skip it or not."""
    schedule = w.start_schedule()
    times = schedule.times()
    for day in _days(w, first, last):
        if schedule.matches_date(day):
            for hour, minute in times:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                yield local_to_utc(wall, w.zone), local_to_utc(wall + w.duration, w.zone)


def _days(w: Window, first: date, last: date) -> Iterator[date]:
    """The local dates (in the window's zone) that may hold an applying start: every day, or for
    a datesOnly window only the days around the dates that name it (the window's zone may differ
    from the pool's by a day either way), so searching years ahead stays cheap."""
    if w.dates_only:
        near = sorted(
            {d + timedelta(days=k) for d in w.calendar.naming(w.name) for k in (-1, 0, 1)}
        )
        yield from (d for d in near if first <= d <= last)
        return
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def skipped_occurrence(
    w: Window, now: datetime, early: timedelta = timedelta(0)
) -> tuple[datetime, DateEntry | None] | None:
    """The occurrence warm at ``now`` (lead included) that the pool's dates skip, as its start
    and the entry that skips it (None: a datesOnly window on an ordinary day); None when no
    skipped occurrence is warm at ``now``, or an applying one is.

    What a pre-warm job fired for a skipped occurrence finds: it writes no request. A job fires
    on the wall clock, which differs from the real-time lead by a DST change between pre-warm
    and start: it passes ``early=DST_SLACK`` so a run that much early still counts as this
    occurrence's.
    """
    now = to_utc(now)
    if occurrence_end(w, now) is not None:
        return None
    today = now.astimezone(w.zone).date()
    first = today - timedelta(days=w.duration.days + _SLACK_DAYS)
    for start, end in scheduled(w, first, today + timedelta(days=_SLACK_DAYS)):
        if start - w.lead - early > now:
            break
        if now < end and not w.applies_at(start):
            return start, w.entry_at(start)
    return None


def occurrence_end(w: Window, now: datetime) -> datetime | None:
    """When the occurrence warm at ``now`` ends (UTC), the latest if several overlap; None
    when the window is not warm at ``now``.

    The pre-warm job's request expires here: a job that fires late, or twice in a repeated
    fall-back hour, still ends with the window rather than an hour later.
    """
    now = to_utc(now)
    today = now.astimezone(w.zone).date()
    first = today - timedelta(days=w.duration.days + _SLACK_DAYS)
    last = today + timedelta(days=_SLACK_DAYS)
    latest: datetime | None = None
    for start, end in occurrences(w, first, last):
        if start - w.lead > now:
            break  # starts only get later from here
        if now < end and (latest is None or end > latest):
            latest = end
    return latest


def latest_occurrence(w: Window, now: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence that started last at or before ``now`` (start, end in UTC), over or not;
    None when none started in the last ``duration`` + 2 days (the miss rule needs no older one).
    """
    now = to_utc(now)
    today = now.astimezone(w.zone).date()
    first = today - timedelta(days=w.duration.days + _SLACK_DAYS)
    latest: tuple[datetime, datetime] | None = None
    for start, end in occurrences(w, first, today + timedelta(days=1)):
        if start > now:
            break
        latest = (start, end)
    return latest


def in_occurrence(w: Window, instant: datetime) -> bool:
    """``instant`` lies inside one of the window's occurrences proper (start to end, no lead)."""
    instant = to_utc(instant)
    today = instant.astimezone(w.zone).date()
    first = today - timedelta(days=w.duration.days + _SLACK_DAYS)
    for start, end in occurrences(w, first, today + timedelta(days=1)):
        if start > instant:
            return False
        if instant < end:
            return True
    return False


def is_active(w: Window, now: datetime) -> bool:
    return occurrence_end(w, now) is not None


def active_windows(windows: list[Window], now: datetime) -> list[Window]:
    """The windows warm at ``now`` (pre-warm lead included), in their spec order."""
    return [w for w in windows if is_active(w, now)]


def bound_requests(
    windows: list[Window],
    max_replicas: int,
    requests: Mapping[str, WarmRequest],
    now: datetime,
) -> dict[str, WarmRequest]:
    """The warm requests the operator honours at ``now``, each at most what its job may ask.

    ``status.warmRequests`` is what the pre-warm ServiceAccount can write, so it is input from
    outside, not a fact: a request for a window the spec does not have, or made during an
    occurrence the pool's dates skip (a holiday), is dropped; replicas are
    capped at the window's replicas and at ``max_replicas``; the expiry is capped at the end of
    the window's occurrence warm at ``now`` or, outside it, at ``now`` + lead + duration (what
    a job run by hand asks for). The reconciler writes capped requests back, so a request for
    2099 ends no later than a real one would have.
    """
    now = to_utc(now)
    by_name = {w.name: w for w in windows}
    out: dict[str, WarmRequest] = {}
    for name, request in requests.items():
        window = by_name.get(name)
        if window is None or skipped_occurrence(window, now) is not None:
            continue
        end = occurrence_end(window, now) or now + window_hold(window)
        out[name] = WarmRequest(
            max(0, min(request.replicas, window.replicas, max_replicas)),
            min(to_utc(request.expires_at), end),
        )
    return out


def warm_floor(
    min_replicas: int,
    windows: list[Window],
    now: datetime,
    requests: Mapping[str, WarmRequest],
) -> int:
    """The replica floor: the largest of ``min_replicas``, every active window's replicas and
    every warm request that has not expired (it expires at ``expires_at``)."""
    now = to_utc(now)
    floor = max([min_replicas, *(w.replicas for w in active_windows(windows, now))])
    for request in requests.values():
        if now < to_utc(request.expires_at):
            floor = max(floor, request.replicas)
    return floor


def next_start(w: Window, now: datetime) -> datetime | None:
    """The window's first start strictly after ``now``, in UTC."""
    now = to_utc(now)
    today = now.astimezone(w.zone).date()
    for start, _ in occurrences(w, today - timedelta(days=1), today + timedelta(days=_SEARCH_DAYS)):
        if start > now:
            return start
    return None


def next_window(windows: list[Window], now: datetime) -> tuple[Window, datetime] | None:
    """The window that starts next, strictly after ``now``, and its start (UTC); on a tie the
    first in spec order. Show it with ``format_local(start, window.zone)``."""
    best: tuple[Window, datetime] | None = None
    for w in windows:
        start = next_start(w, now)
        if start is not None and (best is None or start < best[1]):
            best = (w, start)
    return best
