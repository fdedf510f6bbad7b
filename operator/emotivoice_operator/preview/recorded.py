"""What the operator recorded about a resource's starts and windows, read from its status.

One small function, ``read_recorded``, is the only place that knows the status field names, so a
change of spelling is a change here. It tolerates their absence (an operator older than these
fields) and drops entries it cannot read rather than fail: the preview is advice, and a status
written by someone else may hold anything the CRD lets through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emotivoice_operator.preview.cost import ScheduleCost, read_cost
from emotivoice_operator.windows.clock import to_utc


@dataclass(frozen=True)
class ColdStart:
    pod: str
    # None when the status does not say (older operators recorded pod and seconds only).
    at: datetime | None
    seconds: float | None
    in_window: bool | None


@dataclass(frozen=True)
class Miss:
    """A window whose floor was not Ready when it opened: ``short`` replicas for ``late_seconds``."""

    window: str
    at: datetime | None
    short: int | None
    late_seconds: float | None


@dataclass(frozen=True)
class Recorded:
    cold_starts: tuple[ColdStart, ...] = ()
    misses: tuple[Miss, ...] = ()
    # status.cost: what each window cost (preview/cost.py); None when not recorded.
    cost: ScheduleCost | None = None


def read_recorded(status: Mapping[str, Any] | None) -> Recorded:
    """``status.coldStarts.recent[]`` ({pod, at, seconds, inWindow}) and ``status.misses.recent[]``
    ({window, at, short, lateSeconds}), whichever exist."""
    status = status if isinstance(status, Mapping) else {}
    starts = [
        ColdStart(
            pod=str(e.get("pod", "")),
            at=_instant(e.get("at")),
            seconds=_number(e.get("seconds")),
            in_window=e.get("inWindow") if isinstance(e.get("inWindow"), bool) else None,
        )
        for e in _recent(status, "coldStarts")
    ]
    misses = [
        Miss(
            window=str(e.get("window", "")),
            at=_instant(e.get("at")),
            short=int(n) if (n := _number(e.get("short"))) is not None else None,
            late_seconds=_number(e.get("lateSeconds")),
        )
        for e in _recent(status, "misses")
    ]
    return Recorded(tuple(starts), tuple(misses), read_cost(status))


def _recent(status: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    block = status.get(key)
    recent = block.get("recent") if isinstance(block, Mapping) else None
    return [e for e in recent if isinstance(e, Mapping)] if isinstance(recent, list) else []


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return to_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
