"""A schedule's warm floor, minute by minute, as the operator holds it.

The windows are the operator's own (``parse_windows``) and so are their occurrences, lead
included (``windows.schedule.occurrences``); the date rule (``calendar``) is applied here on
top, to each occurrence's local start date, so this module does not depend on how the operator's
window code learns about calendars. The fields the rule reads (``dates``, ``calendars``,
``datesOnly``) are taken out before the spec is parsed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.recommend.calendar import DateRule
from emotivoice_operator.windows import Window, parse_windows
from emotivoice_operator.windows.schedule import occurrences

# Fields of the calendar feature, read by ``calendar`` rather than by the operator's parser.
_POOL_DATE_FIELDS = ("dates", "calendars")
_WINDOW_DATE_FIELDS = ("datesOnly",)


def operator_windows(
    spec: Mapping[str, Any], pool: Mapping[str, Any] | None, learned_lead: timedelta | None
) -> tuple[int, int, list[Window]]:
    """``spec`` with ``warmPool`` replaced by ``pool`` (None: none), parsed as the operator
    parses it: (replicas.min, replicas.max, windows). ``SpecError`` names a bad field."""
    body = copy.deepcopy(dict(spec))
    body.pop("warmPool", None)
    if pool is not None:
        stripped = {k: v for k, v in pool.items() if k not in _POOL_DATE_FIELDS}
        stripped["windows"] = [
            {k: v for k, v in w.items() if k not in _WINDOW_DATE_FIELDS}
            for w in pool.get("windows") or []
        ]
        body["warmPool"] = copy.deepcopy(stripped)
    typed = parse_spec(body)
    windows = parse_windows(typed.warm_pool, learned_lead) if typed.warm_pool else []
    return typed.replicas.min, typed.replicas.max, windows


def floor_per_minute(
    min_replicas: int, windows: list[Window], rule: DateRule, start_s: int, minutes: int
) -> np.ndarray:
    """The floor over minutes ``[start_s + 60 i, ...)``: replicas.min, raised by each window
    from ``start - lead`` to ``end`` of every occurrence whose local start date it applies on.
    A minute counts as warm when its first instant is."""
    floor = np.full(minutes, min_replicas, dtype=np.int64)
    end_s = start_s + 60 * minutes
    for w in windows:
        first = datetime.fromtimestamp(start_s, UTC).astimezone(w.zone).date()
        last = datetime.fromtimestamp(end_s, UTC).astimezone(w.zone).date()
        first -= timedelta(days=w.duration.days + 2)
        for start, end in occurrences(w, first, last + timedelta(days=1)):
            if not rule.applies(w.name, start.astimezone(w.zone).date()):
                continue
            lo = math.ceil(((start - w.lead).timestamp() - start_s) / 60)
            hi = math.ceil((end.timestamp() - start_s) / 60)
            lo, hi = max(lo, 0), min(hi, minutes)
            if lo < hi:
                np.maximum(floor[lo:hi], w.replicas, out=floor[lo:hi])
    return floor
