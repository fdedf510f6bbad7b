"""Warm windows: parse them, schedule their pre-warm CronJobs, and compute the replica floor.

Pure time logic with the clock passed in: every function takes ``now`` (an aware datetime, read
once by the caller in UTC) and never reads the real clock. Each window resolves its own IANA zone
with ``zoneinfo``. Modules: ``cron`` (five-field expressions, robfig/cron's meaning), ``clock``
(zones, DST-skipped and repeated wall times), ``calendar`` (dates that skip windows or bring
others: the occurrence rule), ``model`` (``parse_windows``, ``WarmRequest``), ``schedule``
(active windows, floor, next window).
"""

from emotivoice_operator.windows.calendar import (
    Calendar,
    DateEntry,
    SharedCalendar,
    resolve_calendar,
    shared_calendar,
)
from emotivoice_operator.windows.clock import format_local
from emotivoice_operator.windows.model import WarmRequest, Window, parse_windows
from emotivoice_operator.windows.schedule import (
    active_windows,
    bound_requests,
    in_occurrence,
    latest_occurrence,
    next_window,
    occurrence_end,
    prewarm_cron,
    skipped_occurrence,
    warm_floor,
    window_hold,
)

__all__ = [
    "Calendar",
    "DateEntry",
    "SharedCalendar",
    "WarmRequest",
    "Window",
    "active_windows",
    "bound_requests",
    "format_local",
    "in_occurrence",
    "latest_occurrence",
    "next_window",
    "occurrence_end",
    "parse_windows",
    "prewarm_cron",
    "resolve_calendar",
    "shared_calendar",
    "skipped_occurrence",
    "warm_floor",
    "window_hold",
]
