"""A schedule's warm floor, minute by minute, as the operator holds it.

The windows are the operator's own (``parse_windows``), with the pool's calendar resolved as
the operator resolves it (``resolve_calendar``), and so are their occurrences, lead included
and dated days honoured (``windows.schedule.occurrences``): the floor scored here is the floor
the operator would hold.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.recommend.calendar import shared_calendars
from emotivoice_operator.windows import Window, parse_windows
from emotivoice_operator.windows.calendar import NO_DATES, Calendar, resolve_calendar
from emotivoice_operator.windows.schedule import occurrences


def operator_windows(
    spec: Mapping[str, Any],
    pool: Mapping[str, Any] | None,
    learned_lead: timedelta | None,
    calendars: Mapping[str, Any] | None = None,
) -> tuple[int, int, list[Window], Calendar]:
    """``spec`` with ``warmPool`` replaced by ``pool`` (None: none), parsed as the operator
    parses it, its calendar resolved with ``calendars`` (their ``spec.dates`` by name):
    (replicas.min, replicas.max, windows, calendar). ``SpecError`` names a bad field."""
    body = copy.deepcopy(dict(spec))
    body.pop("warmPool", None)
    if pool is not None:
        body["warmPool"] = copy.deepcopy(dict(pool))
    typed = parse_spec(body)
    if typed.warm_pool is None:
        return typed.replicas.min, typed.replicas.max, [], NO_DATES
    calendar = resolve_calendar(typed.warm_pool, shared_calendars(calendars or {}))
    windows = parse_windows(typed.warm_pool, learned_lead, calendar)
    return typed.replicas.min, typed.replicas.max, windows, calendar


def floor_per_minute(
    min_replicas: int, windows: list[Window], start_s: int, minutes: int
) -> np.ndarray:
    """The floor over minutes ``[start_s + 60 i, ...)``: replicas.min, raised by each window
    from ``start - lead`` to ``end`` of every occurrence that applies (dated days honoured by
    ``occurrences``). A minute counts as warm when its first instant is."""
    floor = np.full(minutes, min_replicas, dtype=np.int64)
    end_s = start_s + 60 * minutes
    for w in windows:
        first = datetime.fromtimestamp(start_s, UTC).astimezone(w.zone).date()
        last = datetime.fromtimestamp(end_s, UTC).astimezone(w.zone).date()
        first -= timedelta(days=w.duration.days + 2)
        for start, end in occurrences(w, first, last + timedelta(days=1)):
            lo = math.ceil(((start - w.lead).timestamp() - start_s) / 60)
            hi = math.ceil((end.timestamp() - start_s) / 60)
            lo, hi = max(lo, 0), min(hi, minutes)
            if lo < hi:
                np.maximum(floor[lo:hi], w.replicas, out=floor[lo:hi])
    return floor
