"""The dates the recommendation honours: the operator's own calendar (windows/calendar.py holds
the rule, the precedence of ``warmPool.dates`` over shared calendars and their merging), built
from the manifest's dicts and the calendars read from the cluster or the file, plus the
``--holiday`` dates given on the command line (each a date on which no window applies).

A date with an entry is not an ordinary day of its weekday, so the estimate leaves it out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from emotivoice_operator.windows.calendar import SharedCalendar, shared_calendar

HOLIDAY_NAME = "holiday"


def with_holidays(pool: Mapping[str, Any] | None, holidays: Iterable[date]) -> dict[str, Any]:
    """``pool`` (a ``warmPool`` dict) with an entry naming no window for each of ``holidays``
    that has no entry of its own (the spec's entry for a date wins, as it does in the operator).
    """
    out = copy.deepcopy(dict(pool or {}))
    dated = {str(e.get("date")) for e in out.get("dates") or []}
    extra = [
        {"date": d.isoformat(), "name": HOLIDAY_NAME}
        for d in sorted(set(holidays))
        if d.isoformat() not in dated
    ]
    if extra:
        out["dates"] = sorted([*(out.get("dates") or []), *extra], key=lambda e: str(e["date"]))
    return out


def shared_calendars(dates_by_name: Mapping[str, Any]) -> dict[str, SharedCalendar]:
    """EmotiVoiceCalendars as the operator reads them, from their ``spec.dates`` by name (a
    calendar that cannot be read counts as empty, and says why, exactly as in the operator)."""
    return {
        name: shared_calendar(name, {"spec": {"dates": dates}})
        for name, dates in dates_by_name.items()
    }
