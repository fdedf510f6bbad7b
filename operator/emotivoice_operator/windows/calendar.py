"""Dates on which warm windows do not apply, or other windows do: holidays, sale days.

The rule, in one place (``Calendar.applies``): an occurrence of a window (one start) applies iff
its start's local date D, in the pool's zone (``warmPool.timeZone``), has an entry E and the
window's name is in E.windows, or D has no entry and the window is not ``datesOnly``. An entry
with no windows is a holiday: nothing applies that day.

Where entries come from, in precedence order: ``warmPool.dates`` (the service's own), then the
EmotiVoiceCalendars named in ``warmPool.calendars``. Two calendars giving the same date merge:
the union of their windows (a holiday only when neither names a window), their names joined.
A calendar entry may name windows a service does not have (calendars are shared): those names
simply match none of its windows.

Pure: the caller brings the calendars' bodies (the operator from its watch, the pre-warm job from
``status.calendar``, the preview from a file or the cluster). A calendar that is named but
missing counts as empty: windows keep applying, warm being the safe side for listeners.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from emotivoice_operator.crd.spec import DateSpec, SpecError, WarmPoolSpec
from emotivoice_operator.windows.clock import UnknownZoneError, lookup_zone

# The years a date may name: the CRD's pattern (20YY) says the same; the preview shows them all.
MIN_YEAR = 2000
MAX_YEAR = 2099
# status.calendar.upcoming spans yesterday (an overnight occurrence that started then) to this many
# days ahead: more than any pre-warm lead (under 24h) and any pass's staleness.
UPCOMING_DAYS = 14
_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
INLINE = "spec.warmPool.dates"


@dataclass(frozen=True)
class DateEntry:
    """One date's entry: on ``day`` the windows named in ``windows`` apply, and only those."""

    day: date
    name: str
    windows: frozenset[str]
    # Where it comes from: spec.warmPool.dates[2], calendar de-public-holidays (or several).
    source: str

    @property
    def label(self) -> str:
        """``Christmas Day (calendar de-public-holidays)``: for logs, Events and the preview."""
        return f"{self.name or 'unnamed date'} ({self.source})"

    def to_status(self) -> dict[str, Any]:
        """The entry as ``status.calendar.upcoming`` holds it."""
        return {
            "date": self.day.isoformat(),
            "name": self.name,
            "windows": sorted(self.windows),
            "source": self.source,
        }

    @classmethod
    def from_status(cls, entry: Any) -> DateEntry:
        """An entry of ``status.calendar.upcoming``; ``ValueError`` for one that cannot be read
        (status is written by the operator, but anybody allowed to patch status may have)."""
        try:
            day = date.fromisoformat(str(entry["date"]))
            windows = entry.get("windows") or []
            if not isinstance(windows, list):
                raise TypeError("windows is not a list")
            return cls(day, str(entry.get("name") or ""), frozenset(map(str, windows)),
                       str(entry.get("source") or "status.calendar"))  # fmt: skip
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"unreadable calendar entry {entry!r}") from exc


@dataclass(frozen=True)
class CalendarProblem:
    """A calendar named in ``warmPool.calendars[index]`` that counts as empty, and why."""

    index: int
    name: str
    problem: str

    @property
    def field(self) -> str:
        return f"warmPool.calendars[{self.index}]"

    @property
    def message(self) -> str:
        return (
            f"spec.{self.field}: EmotiVoiceCalendar {self.name!r} {self.problem}; its dates are "
            "not applied (the windows apply as on any other day): create or fix it, or correct "
            "the name (kubectl get emotivoicecalendars)"
        )


@dataclass(frozen=True)
class SharedCalendar:
    """An EmotiVoiceCalendar as a service sees it: its entries, or why it has none."""

    name: str
    entries: tuple[DateEntry, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class Calendar:
    """The dates in force for one pool: every entry by local date in ``zone``, with where it
    came from, and the named calendars found or not (for status)."""

    zone: ZoneInfo
    entries: tuple[DateEntry, ...] = ()
    found: tuple[str, ...] = ()
    problems: tuple[CalendarProblem, ...] = ()

    @cached_property
    def by_day(self) -> dict[date, DateEntry]:
        return {e.day: e for e in self.entries}

    def entry(self, day: date) -> DateEntry | None:
        return self.by_day.get(day)

    def applies(self, window: str, dates_only: bool, day: date) -> bool:
        """The rule (module doc): whether an occurrence of ``window`` starting on local date
        ``day`` applies."""
        entry = self.by_day.get(day)
        if entry is None:
            return not dates_only
        return window in entry.windows

    def naming(self, window: str) -> list[date]:
        """The dates whose entry names ``window``, in order (a datesOnly window's only days)."""
        return sorted(e.day for e in self.entries if window in e.windows)

    def between(self, first: date, last: date) -> list[DateEntry]:
        """The entries on local dates first..last, in date order."""
        return sorted((e for e in self.entries if first <= e.day <= last), key=lambda e: e.day)

    @property
    def in_use(self) -> bool:
        """Whether the pool has any date source at all (status.calendar is written only then)."""
        return bool(self.entries or self.found or self.problems)

    def status(self, today: date) -> dict[str, Any]:
        """``status.calendar``: the calendars found and missing, and the entries from yesterday to
        ``UPCOMING_DAYS`` ahead, which the pre-warm jobs read (their Role cannot read calendars)."""
        upcoming = self.between(today - timedelta(days=1), today + timedelta(days=UPCOMING_DAYS))
        return {
            "calendars": list(self.found),
            "missing": [p.name for p in self.problems],
            "upcoming": [e.to_status() for e in upcoming],
        }


NO_DATES = Calendar(ZoneInfo("UTC"))


def parse_date(text: str, field: str) -> date:
    """``YYYY-MM-DD``, a real date from ``MIN_YEAR`` to ``MAX_YEAR``, or ``SpecError``."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise SpecError(field, f'"{text}" is not a date; write YYYY-MM-DD, e.g. "2027-12-24"')
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise SpecError(field, f'"{text}" is not a date of the calendar ({exc})') from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise SpecError(field, f'"{text}" is outside {MIN_YEAR}-{MAX_YEAR}; give a date in them')
    return day


def parse_dates(
    specs: Sequence[DateSpec], field: str, source: str | None = None
) -> list[DateEntry]:
    """Validated entries of a ``dates`` list written at ``field`` (``warmPool.dates``, or
    ``dates`` of a calendar); ``source`` labels them (default: each its own field)."""
    seen: dict[date, int] = {}
    out: list[DateEntry] = []
    for i, spec in enumerate(specs):
        where = f"{field}[{i}]"
        day = parse_date(spec.date, f"{where}.date")
        if day in seen:
            raise SpecError(
                f"{where}.date",
                f"{spec.date} is also {field}[{seen[day]}]; one entry per date (list every "
                "window of that day in one entry)",
            )
        seen[day] = i
        out.append(
            DateEntry(
                day, spec.name or "", frozenset(spec.windows or ()), source or f"spec.{where}"
            )
        )
    return out


def shared_calendar(name: str, body: Mapping[str, Any] | None) -> SharedCalendar:
    """An EmotiVoiceCalendar's body (None: it does not exist) as a service uses it. One that
    cannot be read counts as empty, with the problem saying which field (the API server checks
    the same schema; this guards objects from older CRDs or a disabled check)."""
    if body is None:
        return SharedCalendar(name, problem="does not exist")
    raw = (body.get("spec") or {}).get("dates") or []
    try:
        if not isinstance(raw, list):
            raise SpecError("dates", "is not a list of date entries")
        specs = []
        for i, item in enumerate(raw):
            try:
                specs.append(DateSpec.model_validate(item))
            except ValueError as exc:
                raise SpecError(f"dates[{i}]", str(exc).splitlines()[0]) from None
        entries = parse_dates(specs, "dates", f"calendar {name}")
    except SpecError as exc:
        return SharedCalendar(name, problem=f"is invalid ({exc})")
    return SharedCalendar(name, tuple(entries))


def resolve_calendar(
    pool: WarmPoolSpec, shared: Mapping[str, SharedCalendar] | None = None
) -> Calendar:
    """The dates in force for ``pool``: its own ``dates`` (validated: a window they name must
    exist) over the merged calendars ``shared`` holds by name; a named calendar absent from
    ``shared`` counts as missing."""
    try:
        zone = lookup_zone(pool.time_zone)
    except UnknownZoneError as exc:
        raise SpecError("warmPool.timeZone", str(exc)) from None
    inline = parse_dates(pool.dates or [], "warmPool.dates")
    names = {w.name for w in pool.windows}
    for i, spec in enumerate(pool.dates or []):
        for j, window in enumerate(spec.windows or []):
            if window not in names:
                raise SpecError(
                    f"warmPool.dates[{i}].windows[{j}]",
                    f'"{window}" is not a window of warmPool.windows '
                    f"(known: {', '.join(sorted(names)) or 'none'}); name one of them",
                )
    shared = shared or {}
    found: list[str] = []
    problems: list[CalendarProblem] = []
    merged: dict[date, DateEntry] = {}
    for i, name in enumerate(pool.calendars or []):
        calendar = shared.get(name) or SharedCalendar(name, problem="does not exist")
        if calendar.problem:
            problems.append(CalendarProblem(i, name, calendar.problem))
            continue
        found.append(name)
        for entry in calendar.entries:
            merged[entry.day] = _merge(merged.get(entry.day), entry)
    merged.update((e.day, e) for e in inline)
    return Calendar(zone, tuple(merged[d] for d in sorted(merged)), tuple(found), tuple(problems))


def calendar_from_status(pool: WarmPoolSpec, status: Mapping[str, Any] | None) -> Calendar:
    """The pool's dates as a pre-warm job can know them: ``warmPool.dates`` from the spec (the
    newest word) over the calendars' entries the operator resolved into ``status.calendar``.
    Unreadable status entries are skipped."""
    written = (status or {}).get("calendar") or {}
    entries: list[DateEntry] = []
    for raw in written.get("upcoming") or []:
        try:
            entry = DateEntry.from_status(raw)
        except ValueError:
            continue
        if not entry.source.startswith(INLINE):
            entries.append(entry)
    shared = {"status.calendar": SharedCalendar("status.calendar", tuple(entries))}
    view = pool.model_copy(update={"calendars": ["status.calendar"]})
    resolved = resolve_calendar(view, shared)
    found = tuple(str(n) for n in written.get("calendars") or [])
    return Calendar(resolved.zone, resolved.entries, found)


def _merge(old: DateEntry | None, new: DateEntry) -> DateEntry:
    """Two calendars' entries for one date: the union of their windows, names and sources."""
    if old is None:
        return new
    names = [n for n in dict.fromkeys((old.name, new.name)) if n]
    calendars = dict.fromkeys([*_calendar_names(old.source), *_calendar_names(new.source)])
    return DateEntry(
        old.day, " / ".join(names), old.windows | new.windows, f"calendars {', '.join(calendars)}"
    )


def _calendar_names(source: str) -> list[str]:
    return source.removeprefix("calendars ").removeprefix("calendar ").split(", ")
