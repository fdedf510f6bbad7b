"""The preview as text for a terminal: pure, from a ``Preview`` (and what status recorded)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from emotivoice_operator.preview.recorded import Recorded
from emotivoice_operator.preview.timeline import Preview
from emotivoice_operator.windows import Window, format_local
from emotivoice_operator.windows.model import format_duration
from emotivoice_operator.windows.schedule import DST_SLACK, skipped_occurrence


def render_text(preview: Preview, recorded: Recorded | None = None) -> str:
    p, zone = preview, preview.zone
    lines = [
        f"{p.name} ({p.namespace}): {_days(p)} from {format_local(p.start, zone)} "
        f"to {_local(p.end, zone)}",
        f"replicas.min {p.min_replicas}, replicas.max {p.max_replicas}; "
        + (
            "windows: " + ", ".join(_window_text(w, zone) for w in p.windows)
            if p.windows
            else "no warm windows: the floor is replicas.min throughout"
        ),
        "",
    ]
    if any(lead.image is not None or lead.node is not None for lead in p.leads):
        lines.append("Lead by window (the warm path: nodes, then the image, then the replicas):")
        for lead in p.leads:
            basis = f"  (image lead: {lead.image_basis})" if lead.image_basis else ""
            lines.append(
                f"  {lead.window}: {lead.text()}; from {format_duration(lead.total)} before "
                f"each start{basis}"
            )
        lines.append("")
    lines += [*_date_lines(p), f"Warm floor ({zone.key}):"]
    for s in p.segments:
        names = f"  {' + '.join(s.windows)}" if s.windows else ""
        if p.fallback and s.floor == 0:
            names += f"  (the fallback {p.fallback} answers)"
        lines.append(f"  {_span(s.start, s.end, zone):<44} {s.floor:>3}{names}")
    if p.cronjobs:
        lines += ["", "Pre-warm CronJobs, as Kubernetes runs them:"]
        for c in p.cronjobs:
            lines.append(f'  {c.name}: schedule "{c.schedule}", timeZone {c.zone.key}')
        for f in p.firings:
            when = _local(f.instants[0], f.zone) if f.instants else _wall(f.wall) + " (skipped)"
            in_zone = "" if f.zone.key == zone.key else f" {f.zone.key}"
            note = f"  {f.note}" if f.note else ""
            note += _skip_note(p, f.window, f.instants[0] if f.instants else None)
            lines.append(f"  {when}{in_zone}  {f.cronjob}{note}")
    lines += ["", "DST changes:"]
    zones = sorted({zone.key, *(w.zone.key for w in p.windows)})
    if not p.transitions:
        lines.append(f"  none in {', '.join(zones)} during the period")
    for t in p.transitions:
        before, after = t.walls
        lines.append(
            f"  {_wall(before)} -> {after:%H:%M} {t.zone.key}: clocks move {t.jump} "
            f"(UTC{_offset(t.before)} -> UTC{_offset(t.after)})"
        )
    lines += ["", "Overlapping windows:"]
    if not p.overlaps:
        lines.append("  none")
    for o in p.overlaps:
        lines.append(
            f"  {o.first} and {o.second}: {_span(o.start, o.end, zone)} "
            f"(floor {p.floor_at(o.start)}: the larger window's replicas, not the sum)"
        )
    saved = p.flat_replica_hours - p.replica_hours
    share = f" ({saved / p.flat_replica_hours:.0%})" if p.flat_replica_hours else ""
    lines += [
        "",
        f"Cost: {p.replica_hours:.1f} replica-hours of warm floor over {_days(p)}; a flat floor "
        f"of {p.peak_floor} (the period's peak) costs {p.flat_replica_hours:.1f}, "
        f"so the schedule saves {saved:.1f}{share}. Load above the floor is the HPA's, not counted.",
    ]
    if p.fallback:
        wake = (
            f"; a request it answers wakes {p.name} (floor 1 until {p.wake_hold} after the "
            "last such request)"
            if p.wake_hold
            else f"; requests do not wake {p.name} (wakeOnRequest: false)"
        )
        lines += [
            "",
            f"Fallback: {p.fallback} answers {p.name}'s requests while its floor is 0: "
            f"{p.fallback_hours:.1f} h of the period{wake}.",
        ]
    if recorded is not None:
        lines += ["", *_recorded_lines(p, recorded)]
    return "\n".join(lines) + "\n"


def _skip_note(p: Preview, window: str, instant: datetime | None) -> str:
    """What the job run at ``instant`` finds when the pool's dates skip its occurrence (it exits
    without a request; prewarm_job.py), as the run's note; empty otherwise."""
    w = next((w for w in p.windows if w.name == window), None)
    if w is None or instant is None:
        return ""
    skipped = skipped_occurrence(w, instant, early=DST_SLACK)
    if skipped is None:
        return ""
    entry = skipped[1]
    return f"  skips: {entry.label if entry else 'datesOnly, no date names it'} (no request)"


def _date_lines(p: Preview) -> list[str]:
    """A line per dated day of the period (its name, what applies, where it comes from), and
    the named calendars counted empty; nothing when the pool has no dates."""
    if not p.dates and not p.calendar_problems:
        return []
    lines = [f"Dates ({p.zone.key}, warmPool.dates and calendars):"]
    names = {w.name for w in p.windows}
    for e in p.dates:
        mine = sorted(e.windows & names)
        applies = f"only {', '.join(mine)} applies" if mine else "no window applies"
        lines.append(f"  {e.day:%a %Y-%m-%d}  {e.name or 'unnamed'}: {applies}  ({e.source})")
    if not p.dates:
        lines.append("  none in the period")
    lines += [f"  {problem}" for problem in p.calendar_problems]
    return [*lines, ""]


def _recorded_lines(p: Preview, recorded: Recorded) -> list[str]:
    starts, misses = recorded.cold_starts, recorded.misses
    in_window = sum(1 for c in starts if c.in_window)
    lines = [
        f"Recorded by the operator (status): {_count(len(starts), 'recent cold start')} "
        f"({in_window} inside windows), {_count(len(misses), 'recent miss', 'es')}"
    ]
    events: list[tuple[datetime, str]] = []
    for c in starts:
        if c.at is not None and p.start <= c.at < p.end:
            seconds = f"{c.seconds:.1f} s to Ready" if c.seconds is not None else "time unknown"
            where = {True: ", in a window", False: ", outside windows", None: ""}[c.in_window]
            events.append((c.at, f"cold start  {c.pod}: {seconds}{where}"))
    for m in misses:
        if m.at is not None and p.start <= m.at < p.end:
            short = f"{m.short} short" if m.short is not None else "short"
            late = f", Ready {m.late_seconds:.0f} s late" if m.late_seconds is not None else ""
            events.append((m.at, f"miss        {m.window}: {short}{late}"))
    lines += [f"  {_local(at, p.zone)}  {text}" for at, text in sorted(events)]
    untimed = sum(1 for e in (*starts, *misses) if e.at is None)
    outside = len(starts) + len(misses) - untimed - len(events)
    if untimed:
        lines.append(f"  {untimed} without a time (recorded by an older operator): not placed")
    if outside:
        lines.append(f"  {outside} outside the period: choose it with --start and --days")
    return lines


def _window_text(w: Window, zone: ZoneInfo) -> str:
    where = "" if w.zone.key == zone.key else f", {w.zone.key}"
    return f"{w.name} ({w.replicas}, lead {format_duration(w.lead)}{where})"


def _days(p: Preview) -> str:
    return _count(round((p.end - p.start) / timedelta(days=1)), "day")


def _count(n: int, noun: str, plural: str = "s") -> str:
    return f"{n} {noun}" + (plural if n != 1 else "")


def _local(instant: datetime, zone: ZoneInfo) -> str:
    """``Mon 2025-03-03 09:00`` (with the offset in a repeated hour), no zone name."""
    return format_local(instant, zone).removesuffix(f" {zone.key}")


def _wall(wall: datetime) -> str:
    return wall.strftime("%a %Y-%m-%d %H:%M")


def _span(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """``Mon 2025-03-03 08:45 -> 12:00``: the end's date only when it differs."""
    first, last = _local(start, zone), _local(end, zone)
    same_day = start.astimezone(zone).date() == end.astimezone(zone).date()
    return f"{first} -> {last.split(' ', 2)[2] if same_day else last}"


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"
