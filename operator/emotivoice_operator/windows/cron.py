"""Five-field cron expressions with the meaning the Kubernetes CronJob controller gives them.

Kubernetes parses ``CronJob.spec.schedule`` with robfig/cron v3 (``ParseStandard``), so a window's
cron expression means here exactly what it will mean there:

- fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or Jan..Dec, day-of-week 0-6 or
  Sun..Sat (names case-insensitive);
- a field is a comma list of ``*``, ``?``, ``N`` or ``N-M``, each with an optional ``/step``;
  ``N/step`` means ``N-max/step``;
- day-of-month and day-of-week: when either field is a bare ``*`` or ``?`` (a step above 1 makes
  it a plain list) a day must match both; otherwise it must match either (classic cron's OR).

One addition: ``7`` is accepted as Sunday, as most crons do. robfig/cron rejects it, but
expressions we hand to Kubernetes come from ``CronSpec.render``, which writes 0-6 only.

``shift_earlier`` moves a schedule earlier by a lead time, exactly or not at all: a schedule that
cannot be shifted into one expression raises ``CronError`` naming the obstacle and the fix.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from itertools import pairwise

MINUTES_PER_DAY = 24 * 60


class CronError(ValueError):
    """A cron expression that cannot be parsed or shifted; the message says what to write."""


@dataclass(frozen=True)
class _Kind:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    # Largest number accepted in the text (day-of-week takes 7 for Sunday, then folds it to 0).
    written_high: int | None = None


_MONTHS = {n.lower(): i for i, n in enumerate(calendar.month_abbr) if n}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


def day_of_week(name: str) -> int:
    """cron's number of a day name (``Sun`` is 0, ``Mon`` 1, ...; any case): the one numbering
    windows keep days in."""
    return _DAYS[name.lower()]


MINUTE = _Kind("minute", 0, 59)
HOUR = _Kind("hour", 0, 23)
DOM = _Kind("day-of-month", 1, 31)
MONTH = _Kind("month", 1, 12, _MONTHS)
DOW = _Kind("day-of-week", 0, 6, _DAYS, written_high=7)
_KINDS = (MINUTE, HOUR, DOM, MONTH, DOW)
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class CronField:
    """The values one field allows; ``star`` records a bare ``*``/``?`` (it decides AND vs OR)."""

    values: frozenset[int]
    star: bool = False

    @classmethod
    def every(cls, kind: _Kind) -> CronField:
        return cls(frozenset(range(kind.low, kind.high + 1)), star=True)

    def is_full(self, kind: _Kind) -> bool:
        return len(self.values) == kind.high - kind.low + 1


@dataclass(frozen=True)
class CronSpec:
    minute: CronField
    hour: CronField
    dom: CronField
    month: CronField
    dow: CronField

    def matches_date(self, day: date) -> bool:
        if day.month not in self.month.values:
            return False
        dom_ok = day.day in self.dom.values
        dow_ok = day.isoweekday() % 7 in self.dow.values
        if self.dom.star or self.dow.star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, wall: datetime) -> bool:
        """Whether the schedule fires at this wall-clock minute (seconds are ignored)."""
        return (
            wall.minute in self.minute.values
            and wall.hour in self.hour.values
            and self.matches_date(wall.date())
        )

    def times(self) -> list[tuple[int, int]]:
        """The (hour, minute) pairs of one firing day, in order."""
        return [(h, m) for h in sorted(self.hour.values) for m in sorted(self.minute.values)]

    def fires_every_day(self) -> bool:
        if not self.month.is_full(MONTH):
            return False
        dom_full, dow_full = self.dom.is_full(DOM), self.dow.is_full(DOW)
        if self.dom.star or self.dow.star:
            return dom_full and dow_full
        return dom_full or dow_full

    def render(self) -> str:
        """Five fields robfig/cron parses to this same schedule (numbers only, Sunday is 0)."""
        return " ".join(
            _render_field(f, k)
            for f, k in zip(
                (self.minute, self.hour, self.dom, self.month, self.dow), _KINDS, strict=True
            )
        )


@lru_cache(maxsize=256)
def parse_cron(expression: str) -> CronSpec:
    """Parses a five-field expression; raises ``CronError`` with the offending field named."""
    texts = expression.split()
    if len(texts) != 5:
        raise CronError(
            f"{expression!r} has {len(texts)} fields; write five: "
            "minute hour day-of-month month day-of-week, e.g. '0 9 * * Mon-Fri'"
        )
    spec = CronSpec(*(_parse_field(t, k) for t, k in zip(texts, _KINDS, strict=True)))
    _check_fires_at_all(spec, expression)
    return spec


def shift_earlier(spec: CronSpec, minutes: int, lead: str) -> CronSpec:
    """The schedule firing ``minutes`` of wall-clock time before every firing of ``spec``.

    Exact or ``CronError``: start times move as a set (it must stay a minute list x hour list),
    and when they cross midnight the day fields move back a day, which only day-of-week can say
    (the day before "the 1st" is the 28th to the 31st, and the day before "in March" is not a
    month). ``lead`` is the lead time as written, for the messages.
    """
    if not 0 <= minutes < MINUTES_PER_DAY:
        raise ValueError(f"lead of {minutes} minutes is outside one day")
    if minutes == 0:
        return spec
    by_day_offset: dict[int, set[int]] = {}
    for h, m in spec.times():
        offset, at = divmod(h * 60 + m - minutes, MINUTES_PER_DAY)
        by_day_offset.setdefault(offset, set()).add(at)
    dom, month, dow = spec.dom, spec.month, spec.dow
    if spec.fires_every_day():
        starts = set().union(*by_day_offset.values())
    elif len(by_day_offset) > 1:
        crossing, staying = sorted(by_day_offset[-1]), sorted(by_day_offset[0])
        raise CronError(
            f"leadTime {lead} moves the start {_hhmm(crossing[0] + minutes - MINUTES_PER_DAY)} "
            f"to the previous day but {_hhmm(staying[0] + minutes)} stays on its day, and this "
            "expression fires on some days only, so no single expression can pre-warm both; "
            f"move the starts less than {lead} after midnight into a window of their own"
        )
    else:
        ((offset, starts),) = by_day_offset.items()
        if offset != 0:
            if not (dom.star and month.is_full(MONTH)):
                first = _hhmm(min(starts) + minutes - MINUTES_PER_DAY)
                raise CronError(
                    f"leadTime {lead} moves the start {first} to the previous day, and the "
                    "day-of-month/month fields cannot move back a day (the day before the 1st "
                    "is the 28th to the 31st); pick days with the day-of-week field only, or a "
                    f"start at least {lead} after midnight"
                )
            dow = CronField(frozenset((d + offset) % 7 for d in dow.values))
    hours = frozenset(t // 60 for t in starts)
    mins = frozenset(t % 60 for t in starts)
    if len(hours) * len(mins) != len(starts):
        shown = [_hhmm(t) for t in sorted(starts)]
        listed = ", ".join(shown[:6]) + (f", ... ({len(shown)} in all)" if len(shown) > 6 else "")
        raise CronError(
            f"leadTime {lead} turns the starts into {listed}, which no minute list x hour list "
            "can say; split the window so that each part's starts, moved by the lead, share "
            "their minutes (e.g. one window per start time)"
        )
    return CronSpec(
        CronField(mins, star=len(mins) == 60),
        CronField(hours, star=len(hours) == 24),
        dom,
        month,
        dow,
    )


def _parse_field(text: str, kind: _Kind) -> CronField:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = _number(step_text, kind, text, "step") if slash else 1
        if step == 0:
            raise CronError(f"{kind.name} field {text!r}: a step must be 1 or more")
        if base in ("*", "?"):
            low, high = kind.low, kind.high
            star = star or step == 1
        else:
            low_text, dash, high_text = base.partition("-")
            low = _value(low_text, kind, text)
            if dash:
                high = _value(high_text, kind, text)
            elif slash:  # robfig/cron: "N/step" means "N-max/step"
                high = max(low, kind.high)
            else:
                high = low
            if low > high:
                raise CronError(
                    f"{kind.name} field {text!r}: the range {base!r} runs backwards; "
                    f"list both ends instead, e.g. '{high_text}-{kind.high},{kind.low}-{low_text}'"
                )
        values.update(range(low, high + 1, step))
    if kind is DOW:
        values = {v % 7 for v in values}
    return CronField(frozenset(values), star)


def _value(text: str, kind: _Kind, field_text: str) -> int:
    named = kind.names.get(text.lower())
    if named is not None:
        return named
    number = _number(text, kind, field_text, "value")
    high = kind.written_high if kind.written_high is not None else kind.high
    if not kind.low <= number <= high:
        raise CronError(f"{kind.name} field {field_text!r}: {number} is outside {kind.low}-{high}")
    return number


def _number(text: str, kind: _Kind, field_text: str, what: str) -> int:
    if not _NUMBER.fullmatch(text):
        names = f" or a name ({', '.join(n.title() for n in kind.names)})" if kind.names else ""
        raise CronError(f"{kind.name} field {field_text!r}: {what} {text!r} is not a number{names}")
    return int(text)


def _check_fires_at_all(spec: CronSpec, expression: str) -> None:
    """Rejects day-of-month/month pairs no calendar has (e.g. '0 0 30 2 *'), as Kubernetes would
    only find out at run time (robfig/cron gives up after five years)."""
    if not spec.dow.star:
        return
    longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in spec.month.values}
    if not any(d <= longest[m] for m in spec.month.values for d in spec.dom.values):
        raise CronError(
            f"{expression!r} never fires: none of its months has day-of-month "
            f"{_render_field(spec.dom, DOM)}"
        )


def _render_field(f: CronField, kind: _Kind) -> str:
    if f.star:
        return "*"
    values = sorted(f.values)
    if len(values) > 2:
        step = values[1] - values[0]
        if step > 1 and all(b - a == step for a, b in pairwise(values)):
            return f"{values[0]}-{values[-1]}/{step}"
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(a) if a == b else f"{a},{b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)


def _hhmm(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"
