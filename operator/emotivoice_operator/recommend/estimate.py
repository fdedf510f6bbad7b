"""Replicas needed per slot of the local week, and the days that look like holidays.

Per training week and slot, the demand is the slot's highest minute of demand (busy seconds
per second, served plus refused) the median of the ``SMOOTH_MINUTES`` around it (one noisy minute
is what the headroom above the target utilisation is for); across weeks, a robust high quantile
of those (nearest rank ``QUANTILE``: the third highest of four weeks, the highest of three), so
one odd week neither sets nor sinks the floor. Replicas needed = ceil(demand / target utilisation), a replica giving
at most one busy second per second. Dates with a calendar entry, ``--holiday`` dates and the
days that look like holidays are left out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

import numpy as np

from emotivoice_operator.recommend.history import MINUTES_PER_DAY, MINUTES_PER_WEEK, History

QUANTILE = 0.75
SMOOTH_MINUTES = 5
# A day whose demand is below this share of the same weekday's median looks like a holiday.
HOLIDAY_SHARE = 0.5
# ...judged only against at least this many other days of the same weekday,
HOLIDAY_MIN_PEERS = 2
# ...and only for days with samples in at least this share of their minutes.
FULL_DAY_SHARE = 0.9
_EPS = 1e-9


@dataclass(frozen=True)
class Estimate:
    """``demand[d, s]`` (busy seconds per second) and ``needed[d, s]`` (replicas, within
    replicas.min and .max) for weekday ``d`` (0 = Monday) and slot ``s`` of the local day."""

    slot_minutes: int
    demand: np.ndarray
    needed: np.ndarray
    # The most replicas the demand asked for, before replicas.max capped it.
    uncapped_peak: int

    @property
    def slots_per_day(self) -> int:
        return MINUTES_PER_DAY // self.slot_minutes


def needed_replicas(demand: np.ndarray | float, target: float) -> np.ndarray:
    return np.ceil(np.asarray(demand, dtype=float) / target - _EPS).astype(np.int64)


def estimate(
    history: History,
    excluded: Collection[date],
    target: float,
    slot_minutes: int,
    min_replicas: int,
    max_replicas: int,
) -> Estimate:
    grid = history.grid
    spd = MINUTES_PER_DAY // slot_minutes
    demand = smoothed(history.demand, SMOOTH_MINUTES)
    skip = np.isin(grid.ordinal, [d.toordinal() for d in excluded])
    ok = ~np.isnan(demand) & ~skip
    week = np.arange(history.minutes) // MINUTES_PER_WEEK
    key = grid.weekday * spd + grid.minute_of_day // slot_minutes
    weeks = max(1, int(week[-1]) + 1) if history.minutes else 1
    per_week = np.full((weeks, 7 * spd), np.nan)
    np.fmax.at(per_week, (week[ok], key[ok]), demand[ok])
    with np.errstate(all="ignore"):
        seen = ~np.isnan(per_week)
        counts = seen.sum(axis=0)
        ordered = np.sort(np.where(seen, per_week, np.inf), axis=0)
        rank = np.maximum(np.ceil(QUANTILE * counts - _EPS).astype(np.int64) - 1, 0)
        level = ordered[rank, np.arange(7 * spd)]
    level = np.where(counts > 0, level, np.nan)
    level = _fill_gaps(level)
    needed = needed_replicas(level, target)
    uncapped = int(needed.max()) if needed.size else 0
    needed = np.clip(needed, min_replicas, max_replicas)
    return Estimate(slot_minutes, level.reshape(7, spd), needed.reshape(7, spd), uncapped)


def smoothed(values: np.ndarray, width: int) -> np.ndarray:
    """The centred median over ``width`` minutes (odd) of the known values: a lone spike goes, a
    step stays where it was (a mean would smear it into the slot before)."""
    half = width // 2
    padded = np.concatenate([np.full(half, np.nan), values, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        out = np.nanmedian(windows, axis=1)
    return np.where(np.isnan(values), np.nan, out)


def _fill_gaps(level: np.ndarray) -> np.ndarray:
    """Slots no week saw (an hour a DST change skipped, a gap in the data): the slot before's
    level, or 0."""
    out = level.copy()
    for i in range(len(out)):
        if math.isnan(out[i]):
            out[i] = out[i - 1] if i and not math.isnan(out[i - 1]) else 0.0
    return out


def holiday_like(history: History, excluded: Collection[date]) -> list[date]:
    """Whole local days whose demand is under ``HOLIDAY_SHARE`` of the median of the same
    weekday's other days (dates in ``excluded`` neither judged nor used as peers)."""
    grid = history.grid
    demand = np.nan_to_num(history.demand)
    have = ~np.isnan(history.demand)
    ordinals, inverse = np.unique(grid.ordinal, return_inverse=True)
    totals = np.bincount(inverse, weights=demand)
    samples = np.bincount(inverse, weights=have.astype(float))
    days = [date.fromordinal(int(o)) for o in ordinals]
    skip = {d.toordinal() for d in excluded}
    full = [
        i
        for i, d in enumerate(days)
        if samples[i] >= FULL_DAY_SHARE * MINUTES_PER_DAY and d.toordinal() not in skip
    ]
    out = []
    for i in full:
        peers = [totals[j] for j in full if j != i and days[j].weekday() == days[i].weekday()]
        if len(peers) < HOLIDAY_MIN_PEERS:
            continue
        usual = float(np.median(peers))
        if usual > 0 and totals[i] < HOLIDAY_SHARE * usual:
            out.append(days[i])
    return out
