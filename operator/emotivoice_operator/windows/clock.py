"""Time zones and wall clocks: IANA names, local times that a DST change skips or repeats.

Every wall-clock time here resolves to one instant, the same way for window starts and ends:
- a time that exists once is that instant;
- a time repeated by a fall-back change is its first occurrence (a window starts once);
- a time skipped by a spring-forward change is the first instant after the gap (02:30 on the
  day New York jumps from 02:00 to 03:00 is 03:00 EDT), so a window whose start falls in the
  gap still happens that day, as ISC cron runs jobs of a skipped hour right after the jump.

Kubernetes' CronJob controller does not do that: robfig/cron v3 (``SpecSchedule.Next``) walks
the clock an hour at a time, so a schedule inside the gap matches no instant and that day's run
is skipped (robfig/cron pull request 541, unmerged), and a schedule inside a repeated hour fires
in both passes. The operator does not depend on it: it computes active windows itself and raises
the floor from ``start - leadTime``; the pre-warm job only adds primed caches.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from emotivoice_operator.crd.spec import DAY_NAMES

# Files in a tz directory that are not zone names: the host's own zone, and tzcode's template.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class UnknownZoneError(ValueError):
    """A time zone name that is not in the IANA tz database (the message suggests one that is)."""


@cache
def zone_names() -> frozenset[str]:
    """Every IANA zone name this process knows (system tz files and the tzdata package)."""
    return frozenset(available_timezones() - _NOT_ZONES)


def lookup_zone(name: str) -> ZoneInfo:
    """The zone called ``name`` exactly (names are case-sensitive, as in Kubernetes)."""
    if name in zone_names():
        return ZoneInfo(name)
    by_lower = {n.lower(): n for n in zone_names()}
    guess = by_lower.get(name.lower()) or next(
        iter(difflib.get_close_matches(name, sorted(zone_names()), n=1)), None
    )
    hint = f'did you mean "{guess}"? ' if guess else ""
    raise UnknownZoneError(
        f'unknown time zone "{name}": {hint}use an IANA tz database name such as '
        '"Asia/Shanghai", "America/Port-au-Prince" or "Etc/GMT+8" (which is UTC-8)'
    )


def to_utc(instant: datetime) -> datetime:
    """``instant`` in UTC; a naive datetime is refused rather than guessed."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone; pass an aware datetime (UTC)")
    return instant.astimezone(UTC)


def local_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant at which a clock in ``zone`` shows the naive ``wall`` time (see module doc)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: the two folds give instants on either side of the transition; the transition
    # itself is the first instant whose wall clock is past ``wall``. Bisect to the second.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((int(first.timestamp()), int(other.timestamp())))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def format_local(instant: datetime, zone: ZoneInfo) -> str:
    """Short local form for status and ``kubectl get`` columns: ``Mon 2024-03-11 09:00 Asia/Shanghai``.

    In a repeated fall-back hour the UTC offset is added (``01:30-05:00``), since the wall time
    alone names two instants.
    """
    local = to_utc(instant).astimezone(zone)
    text = f"{DAY_NAMES[local.weekday()]} {local:%Y-%m-%d %H:%M}"
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        offset = local.strftime("%z")
        text += f"{offset[:3]}:{offset[3:]}"
    return f"{text} {zone.key}"
