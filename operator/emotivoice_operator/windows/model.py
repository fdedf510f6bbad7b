"""Windows as the operator uses them: ``parse_windows`` turns the CRD's ``warmPool`` into
validated ``Window`` values, or raises ``SpecError`` naming the field and the fix.
``WarmRequest`` is one entry of ``status.warmRequests``, the request a pre-warm job writes.

The API server already checks the CRD's patterns and CEL rules; this checks them again (objects
may come from disk or older CRD versions) and adds what the API cannot know: that a zone exists,
that durations are sensible, that a cron expression parses, fires, and can be pre-warmed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from emotivoice_operator.crd.spec import AutoLeadTimeSpec, SpecError, WarmPoolSpec, WarmWindowSpec
from emotivoice_operator.windows.calendar import NO_DATES, Calendar, DateEntry, resolve_calendar
from emotivoice_operator.windows.clock import UnknownZoneError, lookup_zone, to_utc
from emotivoice_operator.windows.cron import (
    MINUTES_PER_DAY,
    CronError,
    CronField,
    CronSpec,
    day_of_week,
    parse_cron,
    shift_earlier,
)

# The leadTime that asks for a learned lead (see tuning/lead.py).
AUTO = "auto"
# A lead of a day or more keeps replicas idle for a day; widen the window instead.
MAX_LEAD = timedelta(hours=24)
# A cron window as long as a week is a permanent floor: that is replicas.min's job.
MAX_CRON_DURATION = timedelta(days=7)
_DURATION = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?$")
# autoLeadTime's fields also take seconds: a learned lead is timed to a tenth of a second.
_DURATION_S = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+(?:\.[0-9])?)s)?$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Window:
    """One validated warm window; its times are wall-clock times in ``zone``.

    Start/end form: ``days`` (cron's day-of-week numbers, 0=Sun..6=Sat; None for every day) and
    ``start``; ``duration`` runs
    from start to end (an end at or before the start is the next day). Cron form: ``cron`` gives
    the starts. Either way a window is warm from ``lead`` before each start until the wall clock
    reaches start + ``duration``. ``field`` is where the spec wrote it (``warmPool.windows[0]``):
    every error about the window names it so.
    """

    name: str
    replicas: int
    zone: ZoneInfo
    lead: timedelta
    duration: timedelta
    field: str
    days: frozenset[int] | None = None
    start: time | None = None
    cron: str | None = None
    # leadTime: auto: ``lead`` is the learned lead passed to ``parse_windows`` (or the initial).
    auto_lead: bool = False
    # The pool's dates (windows/calendar.py) and whether this window applies only on dates
    # that name it: ``applies_at`` is the one test every schedule function goes through.
    dates_only: bool = False
    calendar: Calendar = NO_DATES

    def applies_at(self, start: datetime) -> bool:
        """Whether the occurrence starting at the instant ``start`` applies: the calendar's rule
        for its local date in the pool's zone."""
        day = start.astimezone(self.calendar.zone).date()
        return self.calendar.applies(self.name, self.dates_only, day)

    def entry_at(self, start: datetime) -> DateEntry | None:
        """The date entry of the occurrence starting at ``start`` (None: an ordinary day)."""
        return self.calendar.entry(start.astimezone(self.calendar.zone).date())

    def start_schedule(self) -> CronSpec:
        """The window's starts as a cron schedule (start/end windows are one time on some days)."""
        if self.cron is not None:
            return parse_cron(self.cron)
        if self.start is None:
            raise ValueError(f"window {self.name!r} has neither start nor cron")
        every_day = self.days is None or len(self.days) == 7
        dow = CronField(
            frozenset(range(7)) if every_day else self.days or frozenset(), star=every_day
        )
        return CronSpec(
            minute=CronField(frozenset({self.start.minute})),
            hour=CronField(frozenset({self.start.hour})),
            dom=CronField(frozenset(range(1, 32)), star=True),
            month=CronField(frozenset(range(1, 13)), star=True),
            dow=dow,
        )

    @cached_property
    def prewarm_schedule(self) -> CronSpec:
        """The starts moved ``lead`` earlier on the wall clock, or ``SpecError`` naming the
        window's cron field when that is inexpressible.

        Computed once per window (``parse_windows`` validates it, the CronJob renders it).
        """
        try:
            return shift_earlier(
                self.start_schedule(),
                # Whole minutes, rounded up: a lead with seconds fires in the minute before, and
                # the job waits out the rest (prewarm_job.py), so neither comes early.
                math.ceil(self.lead.total_seconds() / 60 - 1e-9),
                format_duration(self.lead),
            )
        except CronError as exc:
            raise SpecError(f"{self.field}.cron", str(exc)) from None


def parse_windows(
    pool: WarmPoolSpec, learned_lead: timedelta | None = None, calendar: Calendar | None = None
) -> list[Window]:
    """``learned_lead``: the lead of ``leadTime: auto`` windows in force (status.leadTime); None
    until one is learned, when ``autoLeadTime.initial`` applies. ``calendar``: the pool's dates
    as resolved (``calendar.resolve_calendar``, with the named calendars); None: its own
    ``warmPool.dates`` only, every named calendar counted as missing."""
    pool_zone = _zone(pool.time_zone, "warmPool.timeZone")
    auto = auto_lead(pool, learned_lead)
    if calendar is None:
        calendar = resolve_calendar(pool)
    windows: list[Window] = []
    for i, spec in enumerate(pool.windows):
        where = f"warmPool.windows[{i}]"
        window = replace(
            _parse_window(spec, pool_zone, where, auto),
            dates_only=spec.dates_only,
            calendar=calendar,
        )
        if spec.dates_only:
            _check_dates_only(pool, spec.name, where)
        if any(w.name == window.name for w in windows):
            raise SpecError(
                f"{where}.name",
                f'"{window.name}" names two windows; each window needs its own name '
                "(it names the window's pre-warm CronJob)",
            )
        window.prewarm_schedule  # noqa: B018 (validates: raises SpecError when inexpressible)
        windows.append(window)
    return windows


def _check_dates_only(pool: WarmPoolSpec, name: str, where: str) -> None:
    """A datesOnly window that no inline date names, in a pool with no calendar, can never
    apply: surely a mistake, so it is refused. With a calendar listed it is accepted, whatever
    the calendar holds today: a shared calendar's dates are not this spec's to judge, and one
    may gain the date later."""
    if pool.calendars or any(name in (d.windows or []) for d in pool.dates or []):
        return
    raise SpecError(
        f"{where}.datesOnly",
        f"window {name!r} applies only on dates that name it, and no entry of warmPool.dates "
        "names it while warmPool.calendars is empty: it would never apply; name it in a "
        "date's windows, list a calendar, or set datesOnly: false",
    )


@dataclass(frozen=True)
class WarmRequest:
    """A warm request: hold at least ``replicas`` until ``expires_at`` (an aware datetime).

    What a window's pre-warm job writes to ``status.warmRequests[WINDOW]`` and the operator
    reads back; ``to_status`` and ``from_status`` are that entry's one spelling.
    """

    replicas: int
    expires_at: datetime

    def to_status(self) -> dict[str, Any]:
        """The entry as status holds it: ``{"replicas": N, "expiresAt": "...Z"}``, UTC, whole
        seconds."""
        expires = to_utc(self.expires_at).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {"replicas": self.replicas, "expiresAt": expires}

    @classmethod
    def from_status(cls, entry: Any) -> WarmRequest:
        """An entry as status holds it; ``ValueError`` for one that cannot be read (not a mapping,
        a field missing or of the wrong type, an expiry without a time zone): anybody allowed to
        patch status may have written it."""
        try:
            expires = datetime.fromisoformat(str(entry["expiresAt"]).replace("Z", "+00:00"))
            replicas = int(entry["replicas"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"unreadable warm request {entry!r}") from exc
        if expires.tzinfo is None:
            raise ValueError("expiresAt has no time zone")
        return cls(replicas, expires)


@dataclass(frozen=True)
class LeadBounds:
    """``warmPool.autoLeadTime``, validated: what ``leadTime: auto`` windows learn within."""

    initial: timedelta
    minimum: timedelta
    maximum: timedelta
    margin: timedelta
    min_starts: int

    @classmethod
    def from_spec(cls, spec: AutoLeadTimeSpec) -> LeadBounds:
        field = "warmPool.autoLeadTime"
        bounds = cls(
            initial=parse_duration(spec.initial, f"{field}.initial", seconds=True),
            minimum=parse_duration(spec.min, f"{field}.min", seconds=True),
            maximum=parse_duration(spec.max, f"{field}.max", seconds=True),
            margin=parse_duration(spec.margin, f"{field}.margin", seconds=True),
            min_starts=spec.min_starts,
        )
        if bounds.minimum > bounds.maximum or bounds.maximum >= MAX_LEAD:
            raise SpecError(
                f"{field}.max",
                f"{spec.max} must be at least min ({spec.min}) and shorter than 24h",
            )
        return bounds

    def clamp(self, lead: timedelta) -> timedelta:
        return max(self.minimum, min(self.maximum, lead))


def auto_lead(pool: WarmPoolSpec, learned_lead: timedelta | None) -> timedelta:
    """The lead of ``leadTime: auto`` windows: the learned one, else the initial, in bounds."""
    bounds = LeadBounds.from_spec(pool.auto_lead_time)
    return bounds.clamp(bounds.initial if learned_lead is None else learned_lead)


def parse_duration(text: str, field: str, *, seconds: bool = False) -> timedelta:
    """``15m``, ``3h``, ``1h30m`` or ``90m``: whole hours and minutes; with ``seconds`` also
    ``45s``, ``1m30s`` or ``0.5s`` (autoLeadTime's fields, which a learned lead in tenths of a
    second must meet: what ``format_duration`` writes parses back)."""
    match = (_DURATION_S if seconds else _DURATION).fullmatch(text)
    if not text or match is None:
        like = "0.5s, 45s, 15m or 1h30m" if seconds else "15m, 3h or 1h30m"
        units = "hours, minutes and seconds (to a tenth)" if seconds else "hours and minutes"
        raise SpecError(field, f'"{text}" is not a duration; write {units} like {like}')
    hours, minutes = (int(g) if g else 0 for g in match.groups()[:2])
    secs = float(match.group(3)) if seconds and match.group(3) else 0.0
    return timedelta(seconds=min((hours * 60 + minutes) * 60 + secs, 60 * 10**9))


def format_duration(duration: timedelta) -> str:
    """The inverse of ``parse_duration``: 1h30m, 15m, 3h; a lead with seconds 1m7s or 7.1s."""
    total = round(duration.total_seconds(), 1)
    whole, tenths = divmod(round(total * 10), 10)
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if secs or tenths:
        text += f"{secs}.{tenths}s" if tenths else f"{secs}s"
    return text or "0m"


def _parse_window(spec: WarmWindowSpec, pool_zone: ZoneInfo, where: str, auto: timedelta) -> Window:
    zone = _zone(spec.time_zone, f"{where}.timeZone") if spec.time_zone else pool_zone
    if spec.replicas < 1:
        raise SpecError(
            f"{where}.replicas", f"{spec.replicas} warms nothing; a window holds 1 or more replicas"
        )
    is_auto = spec.lead_time == AUTO
    lead = auto if is_auto else parse_duration(spec.lead_time, f"{where}.leadTime")
    if lead >= MAX_LEAD:
        raise SpecError(
            f"{where}.leadTime",
            f"{spec.lead_time} is too long: pre-warming must start less than 24h before the "
            "window (replicas warmed a day early sit idle); start the window earlier instead",
        )
    has_times = spec.start is not None or spec.end is not None
    has_cron = spec.cron is not None or spec.duration is not None
    if has_times and has_cron:
        raise SpecError(
            where, "set either start and end (with days) or cron and duration, not both"
        )
    if has_cron:
        return replace(_parse_cron_window(spec, zone, lead, where), auto_lead=is_auto)
    if has_times:
        return replace(_parse_time_window(spec, zone, lead, where), auto_lead=is_auto)
    raise SpecError(
        where, "no schedule: set start and end (HH:MM, optionally days) or cron and duration"
    )


def _parse_time_window(spec: WarmWindowSpec, zone: ZoneInfo, lead: timedelta, where: str) -> Window:
    for name, value in (("start", spec.start), ("end", spec.end)):
        if value is None:
            raise SpecError(
                f"{where}.{name}",
                "missing: a window with start needs end, and the other way round (HH:MM)",
            )
    start = _clock_time(spec.start or "", f"{where}.start")
    end = _clock_time(spec.end or "", f"{where}.end")
    length = (end.hour * 60 + end.minute - start.hour * 60 - start.minute) % MINUTES_PER_DAY
    if length == 0:
        raise SpecError(
            f"{where}.end",
            f"end equals start ({spec.start}): a window cannot be empty or 24 hours; "
            "for an all-day floor raise replicas.min",
        )
    days = None
    if spec.days is not None:
        if not spec.days:
            raise SpecError(
                f"{where}.days",
                "empty: list the days the window starts on, or omit days for every day",
            )
        # The names are the CRD's enum (crd/spec.py's Day): parse_spec has refused any other.
        days = frozenset(day_of_week(d) for d in spec.days)
    return Window(
        name=spec.name,
        replicas=spec.replicas,
        zone=zone,
        lead=lead,
        duration=timedelta(minutes=length),
        field=where,
        days=days,
        start=start,
    )


def _parse_cron_window(spec: WarmWindowSpec, zone: ZoneInfo, lead: timedelta, where: str) -> Window:
    if spec.days is not None:
        raise SpecError(
            f"{where}.days",
            "days applies to start/end windows only; put the days in the cron expression's "
            "day-of-week field",
        )
    if spec.cron is None:
        raise SpecError(
            f"{where}.cron",
            "missing: a window with a duration needs a cron expression for its starts",
        )
    if spec.duration is None:
        raise SpecError(
            f"{where}.duration", "missing: a cron window needs a duration such as 3h or 1h30m"
        )
    try:
        parse_cron(spec.cron)
    except CronError as exc:
        raise SpecError(f"{where}.cron", str(exc)) from None
    duration = parse_duration(spec.duration, f"{where}.duration")
    if not timedelta(0) < duration < MAX_CRON_DURATION:
        raise SpecError(
            f"{where}.duration",
            f"{spec.duration} must be longer than 0 and shorter than 7 days "
            "(a floor that never ends is replicas.min)",
        )
    return Window(
        name=spec.name,
        replicas=spec.replicas,
        zone=zone,
        lead=lead,
        duration=duration,
        field=where,
        cron=spec.cron,
    )


def _clock_time(text: str, field: str) -> time:
    match = _HHMM.fullmatch(text)
    if match is None:
        raise SpecError(field, f'"{text}" is not a 24-hour HH:MM time such as "09:00" or "22:30"')
    return time(int(match[1]), int(match[2]))


def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return lookup_zone(name)
    except UnknownZoneError as exc:
        raise SpecError(field, str(exc)) from None
