"""What a schedule will do over the coming days, computed the way the operator computes it.

Pure, with the clock passed in (``start``): no API, no plotting. Nothing here re-derives window
math: occurrences come from ``windows.schedule.occurrences``, the floor of every stretch from
``windows.warm_floor`` (the operator's own function, evaluated at each edge), and the pre-warm
times from the CronJobs that ``desired_state`` renders (their ``schedule`` and ``timeZone``).

What is added is what Kubernetes does with those CronJobs, which the operator never computes:
robfig/cron matches wall-clock fields of instants walked in real time (see ``windows.clock``), so
a schedule inside a DST gap does not fire that day and one inside a repeated hour fires twice.
The preview shows both, next to the instant the operator's own floor rises (start - leadTime in
real time), which is what keeps the window warm either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from emotivoice_operator import windows as win
from emotivoice_operator.crd.spec import SpecError, parse_spec
from emotivoice_operator.desired import WarmPath, desired_state, pool_calendar
from emotivoice_operator.render import Owner, names
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.warmpath.plan import split_text
from emotivoice_operator.windows.clock import UnknownZoneError, local_to_utc, lookup_zone, to_utc
from emotivoice_operator.windows.cron import parse_cron
from emotivoice_operator.windows.model import format_duration
from emotivoice_operator.windows.schedule import occurrences

# Offline there is no API server to assign a uid (the same placeholder as ``render``).
OFFLINE_UID = "00000000-0000-0000-0000-000000000000"
# A preview longer than a month is a calendar, not a preview; it also bounds every loop below.
MAX_DAYS = 31
# Zones change offset at most a few times a year; a 6-hour step cannot straddle two changes.
_DST_SCAN_STEP = timedelta(hours=6)
# Occurrences that start this many days before the period may still be warm in it.
_SLACK_DAYS = 2


@dataclass(frozen=True)
class FloorSegment:
    """A stretch of constant warm floor, [start, end) in UTC, and the windows warm in it."""

    start: datetime
    end: datetime
    floor: int
    windows: tuple[str, ...]

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a window: warm from ``warm_from`` (start - leadTime) until ``end``."""

    window: str
    replicas: int
    warm_from: datetime
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Firing:
    """One scheduled run of a pre-warm CronJob: the wall time its schedule names, in its zone,
    and the instants Kubernetes runs it at (none in a DST gap, two in a repeated hour)."""

    cronjob: str
    window: str
    zone: ZoneInfo
    wall: datetime
    instants: tuple[datetime, ...]
    # When the operator's own floor rises for the occurrence this run pre-warms.
    floor_rises: datetime

    @property
    def note(self) -> str:
        """What differs from a plain run at the floor's rise, in words; empty when nothing does."""
        if not self.instants:
            return (
                "does not run: the DST change skips this wall time "
                f"(the operator's floor still rises at {_local(self.floor_rises, self.zone)})"
            )
        notes = []
        if len(self.instants) > 1:
            notes.append("runs twice: the DST change repeats this hour")
        if self.instants[0] != self.floor_rises:
            shift = _signed_duration(self.instants[0] - self.floor_rises)
            notes.append(
                f"{shift} from the floor's rise at {_local(self.floor_rises, self.zone)} "
                "(a DST change between pre-warm and start)"
            )
        return "; ".join(notes)


@dataclass(frozen=True)
class Transition:
    """A UTC offset change of ``zone`` at ``at``: clocks jump by ``after - before``."""

    zone: ZoneInfo
    at: datetime
    before: timedelta
    after: timedelta

    @property
    def walls(self) -> tuple[datetime, datetime]:
        """The local wall clock just before and at the change (02:00 and 03:00 in spring)."""
        return (self.at + self.before).replace(tzinfo=None), (self.at + self.after).replace(
            tzinfo=None
        )

    @property
    def jump(self) -> str:
        """``+1h``, ``-1h``, ``+30m`` (Lord Howe)."""
        return _signed_duration(self.after - self.before)


@dataclass(frozen=True)
class Overlap:
    """Two windows warm at once; the floor is the larger of their replicas, not the sum."""

    first: str
    second: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class LeadSplit:
    """A window's lead in its parts (the warm path, warmpath/plan.py): capacity placeholders
    from ``node`` before the replicas' lead, the image pre-pull from ``image`` before it, the
    replicas from ``replicas`` before the start. None: that part is off."""

    window: str
    replicas: timedelta
    image: timedelta | None = None
    node: timedelta | None = None
    # How the image lead was chosen (prePull.lead: fixed, or auto's initial until pulls are seen).
    image_basis: str = ""

    @property
    def total(self) -> timedelta:
        return self.replicas + max(self.image or timedelta(0), self.node or timedelta(0))

    def text(self) -> str:
        return split_text(self.replicas, self.image, self.node)


@dataclass(frozen=True)
class CronJobSchedule:
    name: str
    window: str
    schedule: str
    zone: ZoneInfo


@dataclass(frozen=True)
class Preview:
    name: str
    namespace: str
    # The pool's zone: the timeline is shown in it.
    zone: ZoneInfo
    start: datetime
    end: datetime
    min_replicas: int
    max_replicas: int
    windows: tuple[win.Window, ...]
    segments: tuple[FloorSegment, ...]
    occurrences: tuple[Occurrence, ...]
    cronjobs: tuple[CronJobSchedule, ...]
    firings: tuple[Firing, ...]
    transitions: tuple[Transition, ...]
    overlaps: tuple[Overlap, ...]
    # spec.fallback: the service that answers while the floor is 0, and the wake's hold ("" and
    # None without one, or with wakeOnRequest off).
    fallback: str = ""
    wake_hold: str | None = None
    # The pool's date entries on the period's local dates, and the named calendars that count
    # as empty (missing, or not given to the preview), each with its message.
    dates: tuple[win.DateEntry, ...] = ()
    calendar_problems: tuple[str, ...] = ()
    # Each window's lead split into node, image and replica parts (windows without a warm path
    # have only the replicas' part).
    leads: tuple[LeadSplit, ...] = ()

    def lead_of(self, window: str) -> LeadSplit | None:
        return next((lead for lead in self.leads if lead.window == window), None)

    @property
    def fallback_hours(self) -> float:
        """Hours of the period at floor 0, when the fallback's pods answer (until a request
        wakes the pool)."""
        return sum(s.hours for s in self.segments if s.floor == 0) if self.fallback else 0.0

    @property
    def replica_hours(self) -> float:
        """What the schedule's floor costs over the period (the HPA may add more under load)."""
        return sum(s.floor * s.hours for s in self.segments)

    @property
    def peak_floor(self) -> int:
        return max(s.floor for s in self.segments)

    @property
    def flat_replica_hours(self) -> float:
        """The cost of holding the period's peak floor all the time, the schedule's alternative."""
        return self.peak_floor * (self.end - self.start).total_seconds() / 3600

    def floor_at(self, instant: datetime) -> int:
        instant = to_utc(instant)
        for segment in self.segments:
            if segment.start <= instant < segment.end:
                return segment.floor
        raise ValueError(f"{instant.isoformat()} is outside the preview")


def pool_zone(raw_spec: Mapping[str, Any]) -> ZoneInfo:
    """The zone a preview is shown in: warmPool.timeZone (UTC without a warm pool)."""
    spec = parse_spec(dict(raw_spec))
    if not spec.warm_pool:
        return ZoneInfo("UTC")
    try:
        return lookup_zone(spec.warm_pool.time_zone)
    except UnknownZoneError as exc:
        raise SpecError("warmPool.timeZone", str(exc)) from None


def build_preview(
    body: Mapping[str, Any],
    start: datetime,
    days: int,
    settings: OperatorSettings,
    namespace: str = "default",
    calendars: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Preview:
    """The preview of one EmotiVoiceService manifest over ``days`` from ``start``; ``calendars``:
    the EmotiVoiceCalendars it names, by name (absent: counted empty, as the operator would).

    Raises ``SpecError`` (naming the field) for a spec the operator would refuse, since the
    operator renders nothing for it either.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days is {days}: preview 1 to {MAX_DAYS} days")
    start = to_utc(start)
    raw_spec = dict(body.get("spec") or {})
    zone = pool_zone(raw_spec)
    # Local days: a week across a DST change is 167 or 169 hours, midnight to midnight.
    local_start = start.astimezone(zone).replace(tzinfo=None)
    end = local_to_utc(local_start + timedelta(days=days), zone)
    meta = body.get("metadata") or {}
    owner = Owner(meta.get("name", "unnamed"), meta.get("namespace", namespace), OFFLINE_UID)
    desired = desired_state(raw_spec, owner, start, {}, settings, calendars=calendars)
    spec = parse_spec(raw_spec)
    windows: tuple[win.Window, ...] = ()
    dates: tuple[win.DateEntry, ...] = ()
    problems: tuple[str, ...] = ()
    if spec.warm_pool:
        calendar = pool_calendar(spec.warm_pool, calendars or {})
        windows = tuple(win.parse_windows(spec.warm_pool, None, calendar))
        last_day = (end - timedelta(microseconds=1)).astimezone(calendar.zone).date()
        dates = tuple(calendar.between(start.astimezone(calendar.zone).date(), last_day))
        problems = tuple(p.message for p in calendar.problems)
    found = tuple(
        o
        for w in windows
        for o in _occurrences(w, start, end)
        if o.warm_from < end and o.end > start
    )
    cronjobs = _cronjobs(desired.manifests, owner.name, windows)
    return Preview(
        name=owner.name,
        namespace=owner.namespace,
        zone=zone,
        start=start,
        end=end,
        min_replicas=spec.replicas.min,
        max_replicas=spec.replicas.max,
        windows=windows,
        segments=floor_segments(spec.replicas.min, windows, found, start, end),
        occurrences=tuple(sorted(found, key=lambda o: (o.warm_from, o.window))),
        cronjobs=cronjobs,
        firings=tuple(
            sorted(
                (f for c in cronjobs for f in firings(c, _by_name(windows, c.window), start, end)),
                key=lambda f: (f.instants[0] if f.instants else f.floor_rises, f.cronjob),
            )
        ),
        transitions=dst_transitions(_zones(windows, cronjobs, zone), start, end),
        fallback=spec.fallback.service if spec.fallback else "",
        wake_hold=spec.fallback.wake_hold
        if spec.fallback and spec.fallback.wake_on_request
        else None,
        overlaps=overlaps(found),
        dates=dates,
        calendar_problems=problems,
        leads=_lead_splits(windows, desired.warm_path),
    )


def _lead_splits(windows: tuple[win.Window, ...], path: WarmPath) -> tuple[LeadSplit, ...]:
    """Each window's lead parts, as the operator's warm path times them."""
    stages = {s.window.name: s for s in path.stages}
    basis = path.image_lead.basis if path.image_lead else ""
    out = []
    for w in windows:
        stage = stages.get(w.name)
        if stage is None:
            out.append(LeadSplit(w.name, w.lead))
            continue
        image = stage.replicas_at - stage.image_at if stage.image_at else None
        node = stage.replicas_at - stage.node_at if stage.node_at else None
        out.append(LeadSplit(w.name, w.lead, image, node, basis if image else ""))
    return tuple(out)


def _occurrences(w: win.Window, start: datetime, end: datetime) -> list[Occurrence]:
    first = start.astimezone(w.zone).date() - timedelta(days=w.duration.days + _SLACK_DAYS)
    last = end.astimezone(w.zone).date() + timedelta(days=_SLACK_DAYS)
    return [
        Occurrence(w.name, w.replicas, s - w.lead, s, e) for s, e in occurrences(w, first, last)
    ]


def floor_segments(
    min_replicas: int,
    windows: tuple[win.Window, ...],
    found: tuple[Occurrence, ...],
    start: datetime,
    end: datetime,
) -> tuple[FloorSegment, ...]:
    """The floor can change only where an occurrence's warm span starts or ends; at each such
    edge it is what the operator's ``warm_floor`` says (no warm requests: the jobs' requests
    never raise it above the window's own replicas)."""
    edges = sorted(
        {start, end} | {t for o in found for t in (o.warm_from, o.end) if start < t < end}
    )
    out: list[FloorSegment] = []
    for a, b in pairwise(edges):
        floor = win.warm_floor(min_replicas, list(windows), a, {})
        active = tuple(w.name for w in win.active_windows(list(windows), a))
        if out and (out[-1].floor, out[-1].windows) == (floor, active):
            out[-1] = FloorSegment(out[-1].start, b, floor, active)
        else:
            out.append(FloorSegment(a, b, floor, active))
    return tuple(out)


def _cronjobs(
    manifests: list[dict[str, Any]], owner: str, windows: tuple[win.Window, ...]
) -> tuple[CronJobSchedule, ...]:
    """The pre-warm CronJobs exactly as rendered, tied back to their windows by name."""
    window_of = {names.prewarm_cronjob(owner, w.name): w.name for w in windows}
    return tuple(
        CronJobSchedule(
            name=m["metadata"]["name"],
            window=window_of[m["metadata"]["name"]],
            schedule=m["spec"]["schedule"],
            zone=lookup_zone(m["spec"]["timeZone"]),
        )
        for m in manifests
        if m["kind"] == "CronJob"
    )


def firings(
    cronjob: CronJobSchedule, window: win.Window, start: datetime, end: datetime
) -> list[Firing]:
    """The CronJob's runs in [start, end), as Kubernetes runs them (see the module doc)."""
    schedule = parse_cron(cronjob.schedule)
    zone = cronjob.zone
    out: list[Firing] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        if schedule.matches_date(day):
            for hour, minute in schedule.times():
                wall = datetime(day.year, day.month, day.day, hour, minute)
                instants = wall_instants(wall, zone)
                nominal = instants[0] if instants else local_to_utc(wall, zone)
                if start <= nominal < end:
                    # The window start this run pre-warms: the same shift on the wall clock.
                    rises = local_to_utc(wall + window.lead, window.zone) - window.lead
                    out.append(Firing(cronjob.name, window.name, zone, wall, instants, rises))
        day += timedelta(days=1)
    return out


def wall_instants(wall: datetime, zone: ZoneInfo) -> tuple[datetime, ...]:
    """Every instant at which a clock in ``zone`` shows the naive ``wall`` time: one, none (a
    spring-forward gap) or two (a fall-back hour)."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return tuple(sorted(found))


def dst_transitions(
    zones: list[ZoneInfo], start: datetime, end: datetime
) -> tuple[Transition, ...]:
    """Offset changes of each zone in [start, end), to the second."""
    out: list[Transition] = []
    for zone in zones:
        t = start
        while t < end:
            nxt = min(t + _DST_SCAN_STEP, end)
            before, after = t.astimezone(zone).utcoffset(), nxt.astimezone(zone).utcoffset()
            if before != after and before is not None and after is not None:
                out.append(Transition(zone, _bisect_change(zone, t, nxt), before, after))
            t = nxt
    return tuple(sorted(out, key=lambda tr: (tr.at, tr.zone.key)))


def _bisect_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first second in (low, high] with ``high``'s offset."""
    target = high.astimezone(zone).utcoffset()
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def overlaps(found: tuple[Occurrence, ...]) -> tuple[Overlap, ...]:
    """Pairs of different windows whose warm spans (lead included) intersect."""
    out: list[Overlap] = []
    ordered = sorted(found, key=lambda o: o.warm_from)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b.warm_from >= a.end:
                break
            if a.window != b.window:
                first, second = sorted((a.window, b.window))
                out.append(Overlap(first, second, b.warm_from, min(a.end, b.end)))
    return tuple(sorted(out, key=lambda o: (o.start, o.first, o.second)))


def _zones(
    windows: tuple[win.Window, ...], cronjobs: tuple[CronJobSchedule, ...], pool: ZoneInfo
) -> list[ZoneInfo]:
    keys: dict[str, ZoneInfo] = {pool.key: pool}
    for zone in [w.zone for w in windows] + [c.zone for c in cronjobs]:
        keys.setdefault(zone.key, zone)
    return [keys[k] for k in sorted(keys)]


def _by_name(windows: tuple[win.Window, ...], name: str) -> win.Window:
    return next(w for w in windows if w.name == name)


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return win.format_local(instant, zone).removesuffix(f" {zone.key}")


def _signed_duration(delta: timedelta) -> str:
    """-7.1s, +1h30m: a learned lead has seconds."""
    return ("-" if delta < timedelta(0) else "+") + format_duration(abs(delta))
