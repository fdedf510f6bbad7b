"""Which local dates a window applies on: ``warmPool.dates``, the calendars the pool names, and
the ``--holiday`` dates given on the command line.

The rule (the CRD's): a date with an entry runs only the windows the entry names (none when it
names none); a date without one runs every window except those marked ``datesOnly``. A date
with an entry is not an ordinary day of the week, so the estimate leaves it out.

Read from plain dicts, so this module needs nothing but the spec's own shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class DateEntry:
    day: date
    name: str
    # None: no window applies that day; else the windows that do.
    windows: frozenset[str] | None
    source: str

    def as_spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"date": self.day.isoformat(), "name": self.name}
        if self.windows:
            out["windows"] = sorted(self.windows)
        return out


@dataclass(frozen=True)
class DateRule:
    entries: Mapping[date, DateEntry] = field(default_factory=dict)
    dates_only: frozenset[str] = frozenset()

    def applies(self, window: str, day: date) -> bool:
        entry = self.entries.get(day)
        if entry is None:
            return window not in self.dates_only
        return entry.windows is not None and window in entry.windows


def read_entries(raw: Iterable[Any], source: str) -> list[DateEntry]:
    """``[{date, name, windows?}]`` as the spec and an EmotiVoiceCalendar's ``spec.dates``
    hold them; ``ValueError`` naming ``source`` for a date that is not YYYY-MM-DD."""
    out = []
    for i, item in enumerate(raw or []):
        text = str((item or {}).get("date", ""))
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{source}[{i}].date: {text!r} is not a YYYY-MM-DD date") from None
        windows = item.get("windows")
        out.append(
            DateEntry(
                day,
                str(item.get("name") or ""),
                frozenset(windows) if windows else None,
                source,
            )
        )
    return out


def date_rule(
    pool: Mapping[str, Any] | None,
    calendars: Mapping[str, Iterable[Any]] | None = None,
    holidays: Iterable[date] = (),
) -> DateRule:
    """The rule of a ``warmPool`` dict: its calendars' dates (``calendars``: name -> their
    ``spec.dates``), then its own ``dates`` (which win), then ``holidays`` (no window)."""
    pool = pool or {}
    entries: dict[date, DateEntry] = {}
    for name in pool.get("calendars") or []:
        for entry in read_entries((calendars or {}).get(name, []), f"calendar {name}"):
            entries[entry.day] = entry
    for entry in read_entries(pool.get("dates") or [], "warmPool.dates"):
        entries[entry.day] = entry
    for day in holidays:
        entries.setdefault(day, DateEntry(day, "holiday", None, "--holiday"))
    dates_only = frozenset(
        w.get("name", "") for w in pool.get("windows") or [] if w.get("datesOnly")
    )
    return DateRule(entries, dates_only)
