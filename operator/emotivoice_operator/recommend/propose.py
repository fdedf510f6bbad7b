"""Windows from the replicas needed per slot: the smallest floor that holds the need, in few
windows.

Each group of weekdays shares one vector of needed replicas per slot (at first one group per
weekday, those with equal vectors together). A vector becomes nested windows: each rise above
replicas.min opens a window at that level, held until the need drops below it (the operator
holds the largest of overlapping windows, so the floor equals the vector). Then, cheapest first,
merges that only raise the floor: a few neighbouring runs of slots raised to their highest, or
two groups of days joined under the higher of their vectors. A merge is made while the windows
are more than the cap allows, or while it costs under ``SMALL_MERGE_SHARE`` of the schedule's
replica-slots above the minimum per window it saves (a 15-minute dip is not worth a window).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from emotivoice_operator.crd.spec import DAY_NAMES

MAX_WINDOWS = 20
SMALL_MERGE_SHARE = 0.02
# Runs of slots raised together in one merge (neighbours), at most.
MERGE_SPAN = 3
NAME_MAX = 20
WEEKDAYS = DAY_NAMES  # Monday first


@dataclass(frozen=True)
class ProposedWindow:
    """Slots ``[start, end)`` of the local day, on ``days`` (0 = Monday)."""

    days: tuple[int, ...]
    start: int
    end: int
    replicas: int


def layered(vector: np.ndarray, base: int) -> list[tuple[int, int, int]]:
    """(start, end, level) windows whose largest at each slot is ``vector`` (``base`` where
    none): a window opens at each step up (or down to a level still above the one below), and
    holds until the vector drops below its level; a higher level nests inside a lower one."""
    out: list[tuple[int, int, int]] = []
    stack: list[tuple[int, int]] = [(base, 0)]  # (level, start)
    for i, x in enumerate([*vector.tolist(), base]):
        x = max(int(x), base)
        while stack[-1][0] > x:
            level, start = stack.pop()
            out.append((start, i, level))
        if x > stack[-1][0]:
            stack.append((x, i))
    return out


def _runs(vector: np.ndarray) -> list[tuple[int, int]]:
    edges = [0, *(np.flatnonzero(np.diff(vector)) + 1).tolist(), len(vector)]
    return list(itertools.pairwise(edges))


def _windows_in(vector: np.ndarray, base: int) -> int:
    """``len(layered(vector, base))``, counted over the runs rather than the slots."""
    values = vector[np.r_[True, vector[1:] != vector[:-1]]].tolist()
    count, stack = 0, [base]
    for x in [*values, base]:
        x = max(int(x), base)
        while stack[-1] > x:
            stack.pop()
        if x > stack[-1]:
            stack.append(x)
            count += 1
    return count


Groups = list[tuple[tuple[int, ...], np.ndarray]]


def _best_within(days: tuple[int, ...], vector: np.ndarray, base: int):
    """The cheapest raise of a few neighbouring runs of one group that saves a window:
    (replica-slots per window saved, the raised vector), or None."""
    count = _windows_in(vector, base)
    runs = _runs(vector)
    best = None
    for i in range(len(runs)):
        for j in range(i + 1, min(len(runs), i + MERGE_SPAN) + 1):
            lo, hi = runs[i][0], runs[j - 1][1]
            top = int(vector[lo:hi].max())
            if top <= base:
                continue
            raised = vector.copy()
            raised[lo:hi] = top
            saved = count - _windows_in(raised, base)
            if saved > 0:
                ratio = int((raised - vector).sum()) * len(days) / saved
                if best is None or ratio < best[0]:
                    best = (ratio, raised)
    return best


def _best_merge(groups: Groups, base: int, memo: dict) -> tuple[float, Groups] | None:
    """The merge that raises the floor least per window saved: (replica-slots per window, the
    groups after it); None when no merge saves a window. ``memo`` keeps each group's own best
    between calls (most groups are unchanged by a merge)."""
    counts = [_windows_in(v, base) for _, v in groups]
    best: tuple[float, Groups] | None = None
    for g, (days, vector) in enumerate(groups):
        key = (days, vector.tobytes())
        if key not in memo:
            memo[key] = _best_within(days, vector, base)
        found = memo[key]
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], [*groups[:g], (days, found[1]), *groups[g + 1 :]])
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            (days_a, va), (days_b, vb) = groups[a], groups[b]
            top = np.maximum(va, vb)
            saved = counts[a] + counts[b] - _windows_in(top, base)
            if saved > 0:
                cost = int((top - va).sum()) * len(days_a) + int((top - vb).sum()) * len(days_b)
                if best is None or cost / saved < best[0]:
                    rest = [x for k, x in enumerate(groups) if k not in (a, b)]
                    best = (cost / saved, [*rest, (tuple(sorted(days_a + days_b)), top)])
    return best


def _join_equal(groups: Groups) -> Groups:
    out: Groups = []
    for days, vector in groups:
        for k, (other_days, other) in enumerate(out):
            if np.array_equal(vector, other):
                out[k] = (tuple(sorted(other_days + days)), other)
                break
        else:
            out.append((days, vector))
    return out


def _count(groups: Groups, base: int) -> int:
    return sum(_windows_in(v, base) for _, v in groups)


def propose(needed: np.ndarray, base: int, max_windows: int = MAX_WINDOWS) -> list[ProposedWindow]:
    """``needed[d, s]``: replicas for weekday ``d`` and slot ``s``; ``base``: replicas.min."""
    groups = _join_equal([((d,), needed[d].astype(np.int64)) for d in range(7)])
    area = max(1, int((needed - base).clip(min=0).sum()))
    memo: dict = {}
    while True:
        best = _best_merge(groups, base, memo)
        if best is None:
            break
        if _count(groups, base) <= max_windows and best[0] > SMALL_MERGE_SHARE * area:
            break
        groups = _join_equal(best[1])
    if _count(groups, base) > max_windows:
        raise ValueError(f"cannot fit the need into {max_windows} windows")
    # The same start, end and replicas in several groups: one window on all their days.
    days_of: dict[tuple[int, int, int], tuple[int, ...]] = {}
    for days, vector in groups:
        for start, end, level in layered(vector, base):
            key = (start, end, level)
            days_of[key] = tuple(sorted(days_of.get(key, ()) + days))
    out = [ProposedWindow(days, *key) for key, days in days_of.items()]
    return sorted(out, key=lambda w: (w.days[0], w.start, -w.replicas, len(w.days)))


def days_tag(days: tuple[int, ...]) -> str:
    """``daily``, ``weekdays``, ``weekend``, ``mon``, ``mon-thu`` or ``d135`` (ISO numbers)."""
    names = [WEEKDAYS[d].lower() for d in days]
    if len(days) == 7:
        return "daily"
    if days == (0, 1, 2, 3, 4):
        return "weekdays"
    if days == (5, 6):
        return "weekend"
    if len(days) == 1:
        return names[0]
    if days == tuple(range(days[0], days[-1] + 1)):
        return f"{names[0]}-{names[-1]}"
    return "d" + "".join(str(d + 1) for d in days)


def window_names(windows: list[ProposedWindow], slot_minutes: int, taken=()) -> list[str]:
    """A DNS label of at most 20 characters per window, unique (``weekdays-0800``, on a clash
    ``weekdays-0800-r7``, then a counter)."""
    used = set(taken)
    out = []
    for w in windows:
        minutes = w.start * slot_minutes
        base = f"{days_tag(w.days)}-{minutes // 60:02d}{minutes % 60:02d}"
        name = base
        if name in used:
            name = f"{base}-r{w.replicas}"
        n = 2
        while name in used:
            name = f"{base}-{n}"
            n += 1
        name = name[:NAME_MAX].strip("-")
        used.add(name)
        out.append(name)
    return out


def hhmm(slot: int, slot_minutes: int) -> str:
    minutes = (slot * slot_minutes) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def window_specs(
    windows: list[ProposedWindow], slot_minutes: int, lead: str, taken=()
) -> list[dict]:
    """The windows as ``warmPool.windows`` entries (a whole-day window as cron and duration:
    start and end cannot be equal)."""
    out = []
    for w, name in zip(windows, window_names(windows, slot_minutes, taken), strict=True):
        spec: dict = {"name": name}
        length = (w.end - w.start) * slot_minutes
        if length >= 24 * 60:
            dow = ",".join(str((d + 1) % 7) for d in w.days)
            spec["cron"] = f"0 0 * * {'*' if len(w.days) == 7 else dow}"
            spec["duration"] = "24h"
        else:
            if len(w.days) < 7:
                spec["days"] = [WEEKDAYS[d] for d in w.days]
            spec["start"] = hhmm(w.start, slot_minutes)
            spec["end"] = hhmm(w.end, slot_minutes)
        spec["leadTime"] = lead
        spec["replicas"] = w.replicas
        out.append(spec)
    return out
