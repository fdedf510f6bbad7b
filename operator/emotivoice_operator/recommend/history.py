"""A service's history as per-minute arrays on the pool's local week.

Minute ``i`` is the UTC interval ``[start_s + 60 i, start_s + 60 (i + 1))``. A rate queried at
instant ``t`` (over ``[2m]`` at a 1-minute step) describes the minute that ends at ``t``.

Demand is what the pool had to do, in busy seconds per second: the model's busy time (served
demand) plus the requests refused with a 503 (unserved demand) at the observed busy seconds per
served request. The local grid (date, weekday, minute of the day) comes from the zone's UTC
offsets, so slots are wall-clock times on both sides of a DST change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np

from emotivoice_operator.recommend.prometheus import Series

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
# 1970-01-01 is date ordinal 719163 and a Thursday (weekday 3, Monday being 0).
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH_WEEKDAY = 3
REFUSED_CODE = "503"


@dataclass(frozen=True)
class History:
    """``busy``: busy seconds per second; ``served`` and ``refused``: requests per minute (the
    503s are refused); NaN where Prometheus had no sample."""

    start_s: int
    zone: ZoneInfo
    busy: np.ndarray
    served: np.ndarray
    refused: np.ndarray

    @property
    def minutes(self) -> int:
        return len(self.busy)

    @property
    def weeks(self) -> int:
        return self.minutes // MINUTES_PER_WEEK

    @cached_property
    def seconds_per_request(self) -> float:
        """Busy seconds per served request over the whole history (0 when none was served)."""
        ok = ~np.isnan(self.busy) & ~np.isnan(self.served)
        served = float(self.served[ok].sum())
        return float(self.busy[ok].sum() * 60 / served) if served > 0 else 0.0

    @cached_property
    def demand(self) -> np.ndarray:
        """Busy seconds per second the pool was asked for: served plus refused."""
        refused = np.nan_to_num(self.refused)
        return self.busy + refused * self.seconds_per_request / 60

    @cached_property
    def requests(self) -> np.ndarray:
        """Requests per minute, served or refused (0 where unknown): coverage's weights."""
        return np.nan_to_num(self.served) + np.nan_to_num(self.refused)

    @cached_property
    def grid(self) -> LocalGrid:
        return LocalGrid.build(self.start_s, self.minutes, self.zone)

    def instant(self, minute: int) -> datetime:
        return datetime.fromtimestamp(self.start_s + 60 * minute, UTC)

    def window(self, first: int, stop: int) -> History:
        """Minutes ``first`` to ``stop`` (excluded) as a history of their own."""
        return History(
            self.start_s + 60 * first,
            self.zone,
            self.busy[first:stop],
            self.served[first:stop],
            self.refused[first:stop],
        )


@dataclass(frozen=True)
class LocalGrid:
    """Per minute: the local date's ordinal, its weekday (0 = Monday) and the local minute of
    the day, in ``zone``."""

    ordinal: np.ndarray
    weekday: np.ndarray
    minute_of_day: np.ndarray

    @classmethod
    def build(cls, start_s: int, minutes: int, zone: ZoneInfo) -> LocalGrid:
        utc_s = start_s + 60 * np.arange(minutes, dtype=np.int64)
        local_s = utc_s + _offsets(start_s, minutes, zone)
        days = local_s // 86_400
        return cls(
            ordinal=days + _EPOCH_ORDINAL,
            weekday=(days + _EPOCH_WEEKDAY) % 7,
            minute_of_day=(local_s % 86_400) // 60,
        )

    def dates(self) -> list[date]:
        return [date.fromordinal(int(o)) for o in np.unique(self.ordinal)]


def _offsets(start_s: int, minutes: int, zone: ZoneInfo) -> np.ndarray:
    """The zone's UTC offset in seconds at each minute: looked up once an hour, and minute by
    minute only in the hours where it changes."""
    out = np.empty(minutes, dtype=np.int64)

    def offset(minute: int) -> int:
        instant = datetime.fromtimestamp(start_s + 60 * minute, UTC).astimezone(zone)
        return int((instant.utcoffset() or timedelta(0)).total_seconds())

    for hour_start in range(0, minutes, 60):
        hour_end = min(minutes, hour_start + 60)
        first, last = offset(hour_start), offset(hour_end - 1)
        if first == last:
            out[hour_start:hour_end] = first
        else:
            out[hour_start:hour_end] = [offset(m) for m in range(hour_start, hour_end)]
    return out


def per_minute(series: Iterable[Series], start_s: int, minutes: int) -> np.ndarray:
    """The sum of ``series`` (rates per second) per minute, NaN where none has a point: the point
    at ``t`` is the minute ending at ``t``."""
    out = np.full(minutes, np.nan)
    for s in series:
        if not s.points:
            continue
        points = np.asarray(s.points, dtype=float)
        index = np.round((points[:, 0] - 60 - start_s) / 60).astype(np.int64)
        keep = (index >= 0) & (index < minutes) & np.isfinite(points[:, 1])
        index, values = index[keep], points[keep, 1]
        out[index] = np.where(np.isnan(out[index]), values, out[index] + values)
    return out


def build_history(
    busy: list[Series], requests: list[Series], start_s: int, minutes: int, zone: ZoneInfo
) -> History:
    """``busy``: ``sum(rate(busy_seconds[2m]))``; ``requests``: ``sum by (code)(rate(...))``."""
    refused = [s for s in requests if s.labels.get("code") == REFUSED_CODE]
    served = [s for s in requests if s.labels.get("code") != REFUSED_CODE]
    return History(
        start_s=start_s,
        zone=zone,
        busy=per_minute(busy, start_s, minutes),
        served=per_minute(served, start_s, minutes) * 60,
        refused=per_minute(refused, start_s, minutes) * 60,
    )
