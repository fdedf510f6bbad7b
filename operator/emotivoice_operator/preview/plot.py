"""The preview as a picture: one matplotlib figure (Agg, no display) of a ``Preview``.

matplotlib is imported only here and only when a plot is asked for: the operator image does
not ship it (the ``preview`` extra does), and ``preview`` without ``--plot`` never needs it.
Each drawn element carries a gid (``window:NAME``, ``dst``, ...) so tests count what the figure
holds instead of comparing pixels, which differ with fonts.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emotivoice_operator.preview.recorded import Recorded
from emotivoice_operator.preview.timeline import Preview
from emotivoice_operator.windows import format_local
from emotivoice_operator.windows.clock import local_to_utc
from emotivoice_operator.windows.model import format_duration

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXTRA = "preview"
GID_FLOOR = "floor"
GID_FLAT = "flat-floor"
GID_WINDOW = "window:"  # + window name, one span per occurrence
GID_LEAD = "lead:"  # + window name, the pre-warm lead before each occurrence
GID_IMAGE_LEAD = "image-lead:"  # + window name, the image pre-pull before the lead
GID_NODE_LEAD = "node-lead:"  # + window name, the placeholders before the lead
GID_DST = "dst"
GID_PREWARM = "prewarm:"  # + CronJob name: its runs
GID_SKIPPED = "prewarm-skipped"
GID_COLD_STARTS = "cold-starts"
GID_MISSES = "misses"
GID_DATE = "date:"  # + YYYY-MM-DD: a day with an entry in warmPool.dates or a calendar
DPI = 100


class PlotUnavailableError(RuntimeError):
    """matplotlib is missing; the message names the extra that installs it."""


def _matplotlib() -> Any:
    try:
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise PlotUnavailableError(
            f"--plot needs matplotlib, which is not installed here: install the {EXTRA!r} extra "
            f"(pip install 'emotivoice-warm-operator[{EXTRA}]'), or leave out --plot for text"
        ) from exc
    return mdates, FigureCanvasAgg, Figure, Patch, MaxNLocator


def figure(preview: Preview, recorded: Recorded | None = None) -> Figure:
    """The floor over the period, each window's occurrences (lead hatched), the pre-warm runs,
    DST changes, the flat-floor alternative, and (given ``recorded``) cold starts and misses."""
    mdates, canvas, figure_cls, patch, max_n = _matplotlib()
    p, zone = preview, preview.zone
    fig = figure_cls(figsize=(12, 5.2), dpi=DPI, layout="constrained")
    canvas(fig)
    ax = fig.add_subplot()
    peak = p.peak_floor
    top = max(peak, 1) + 1.2
    colours = {w.name: f"C{i % 10}" for i, w in enumerate(p.windows)}

    legend: list[Any] = []
    for w in p.windows:
        mine = [o for o in p.occurrences if o.window == w.name]
        for o in mine:
            start, end = max(o.start, p.start), min(o.end, p.end)
            if start < end:
                ax.axvspan(start, end, color=colours[w.name], alpha=0.22, lw=0).set_gid(
                    GID_WINDOW + w.name
                )
                ax.text(
                    start + (end - start) / 2, top - 0.15, w.name, ha="center", va="top",
                    fontsize=7, rotation=90, color=colours[w.name], clip_on=True,
                )  # fmt: skip
            lead_start, lead_end = max(o.warm_from, p.start), min(o.start, p.end)
            if lead_start < lead_end:
                ax.axvspan(
                    lead_start, lead_end, facecolor="none", edgecolor=colours[w.name],
                    hatch="////", lw=0, alpha=0.8,
                ).set_gid(GID_LEAD + w.name)  # fmt: skip
            split = p.lead_of(w.name)
            # The warm path's parts, before the replicas' lead, in a band at the bottom: the
            # nodes held (placeholders), then the image pulled (pre-pull).
            for part, hatch, gid, low in (
                ("node", "xx", GID_NODE_LEAD, 0.0),
                ("image", "....", GID_IMAGE_LEAD, 0.25),
            ):
                ahead = getattr(split, part) if split else None
                begin, stop = (
                    max(o.warm_from - (ahead or timedelta(0)), p.start),
                    min(o.warm_from, p.end),
                )
                if ahead and begin < stop:
                    ax.axvspan(
                        begin, stop, ymin=low, ymax=low + 0.25, facecolor="none",
                        edgecolor=colours[w.name], hatch=hatch, lw=0, alpha=0.9,
                    ).set_gid(gid + w.name)  # fmt: skip
        where = "" if w.zone.key == zone.key else f", {w.zone.key}"
        legend.append(
            patch(
                color=colours[w.name], alpha=0.4,
                label=f"{w.name}: {w.replicas} replica{'s' if w.replicas != 1 else ''}, lead {format_duration(w.lead)}{where} "
                f"({len(mine)}x)",
            )
        )  # fmt: skip
    if any(w.lead for w in p.windows):
        legend.append(
            patch(
                facecolor="none", edgecolor="0.3", hatch="////", label="lead: pre-warm before start"
            )
        )
    if any(lead.image for lead in p.leads):
        legend.append(
            patch(facecolor="none", edgecolor="0.3", hatch="....", label="image pre-pull")
        )
    if any(lead.node for lead in p.leads):
        legend.append(
            patch(facecolor="none", edgecolor="0.3", hatch="xx", label="nodes held (placeholders)")
        )

    for e in p.dates:
        # The dated day, midnight to midnight in the pool's zone, marked under everything else.
        day_start = local_to_utc(datetime.combine(e.day, time()), zone)
        day_end = local_to_utc(datetime.combine(e.day + timedelta(days=1), time()), zone)
        ax.axvspan(
            max(day_start, p.start), min(day_end, p.end), facecolor="none", edgecolor="0.4",
            hatch="..", lw=0, alpha=0.5, zorder=0,
        ).set_gid(GID_DATE + e.day.isoformat())  # fmt: skip
        ax.text(
            max(day_start, p.start) + timedelta(hours=1), 0.15, e.name or e.day.isoformat(),
            fontsize=7, color="0.25", rotation=90, va="bottom", clip_on=True,
        )  # fmt: skip
    if p.dates:
        legend.append(
            patch(facecolor="none", edgecolor="0.4", hatch="..", label="dated day (calendar)")
        )

    xs = [s.start for s in p.segments] + [p.end]
    ys = [s.floor for s in p.segments] + [p.segments[-1].floor]
    ax.fill_between(xs, ys, step="post", color="0.55", alpha=0.25, lw=0)
    (floor_line,) = ax.step(
        xs, ys, where="post", color="0.1", lw=1.8,
        label=f"warm floor: {p.replica_hours:.0f} replica-hours",
    )  # fmt: skip
    floor_line.set_gid(GID_FLOOR)
    flat = ax.axhline(
        peak, color="0.35", ls="--", lw=1,
        label=f"flat floor of {peak}: {p.flat_replica_hours:.0f} replica-hours",
    )  # fmt: skip
    flat.set_gid(GID_FLAT)
    legend[:0] = [floor_line, flat]

    for c in p.cronjobs:
        runs = [t for f in p.firings if f.cronjob == c.name for t in f.instants]
        if runs:
            (line,) = ax.plot(
                runs, [0] * len(runs), ls="none", marker="^", ms=7, clip_on=False,
                color=colours.get(c.window, "0.2"), markeredgecolor="0.1",
            )  # fmt: skip
            line.set_gid(GID_PREWARM + c.name)
    if p.cronjobs:
        legend.append(
            ax.plot([], [], ls="none", marker="^", color="0.6", markeredgecolor="0.1",
                    label="pre-warm CronJob runs")[0]
        )  # fmt: skip
    skipped = [f.floor_rises for f in p.firings if not f.instants]
    if skipped:
        (line,) = ax.plot(
            skipped, [0] * len(skipped), ls="none", marker="x", ms=9, mew=2, color="crimson",
            clip_on=False, label="pre-warm run skipped by DST (floor still rises)",
        )  # fmt: skip
        line.set_gid(GID_SKIPPED)
        legend.append(line)

    for t in p.transitions:
        ax.axvline(t.at, color="purple", ls=":", lw=1.5).set_gid(GID_DST)
        ax.text(
            t.at, top - 0.15, f" DST {t.jump} ({t.zone.key})", rotation=90, va="top", ha="right",
            fontsize=8, color="purple",
        )  # fmt: skip
    if p.transitions:
        legend.append(ax.plot([], [], color="purple", ls=":", label="DST change")[0])

    if recorded is not None:
        legend += _overlay(ax, p, recorded)

    ax.set_xlim(p.start, p.end)
    ax.set_ylim(-0.4, top)
    ax.yaxis.set_major_locator(max_n(integer=True))
    # Lines at local midnight; each day's name centred under it, at noon.
    ax.xaxis.set_major_locator(mdates.DayLocator(tz=zone))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("", tz=zone))
    ax.xaxis.set_minor_locator(mdates.HourLocator(byhour=[12], tz=zone))
    ax.xaxis.set_minor_formatter(mdates.DateFormatter("%a %d %b", tz=zone))
    ax.tick_params(axis="x", which="minor", length=0)
    ax.grid(axis="x", which="major", color="0.75", lw=0.8)
    ax.set_ylabel("warm floor (replicas)")
    ax.set_xlabel(f"local time in {zone.key} (lines at midnight)")
    saved = p.flat_replica_hours - p.replica_hours
    share = f", {saved / p.flat_replica_hours:.0%} less" if p.flat_replica_hours else ""
    ax.set_title(
        f"{p.namespace}/{p.name}: warm floor from {_local(p.start, p)} to {_local(p.end, p)}\n"
        f"{p.replica_hours:.0f} replica-hours against {p.flat_replica_hours:.0f} for a flat "
        f"floor of {peak}{share}",
        fontsize=11,
    )
    ax.legend(
        handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8,
        frameon=False,
    )  # fmt: skip
    return fig


def _overlay(ax: Any, p: Preview, recorded: Recorded) -> list[Any]:
    """Cold starts (seconds to Ready, right axis) and misses (at the floor they missed)."""
    handles: list[Any] = []
    starts = [
        c
        for c in recorded.cold_starts
        if c.at and c.seconds is not None and p.start <= c.at < p.end
    ]
    if starts:
        right = ax.twinx()
        right.set_ylabel("cold start: seconds to Ready")
        inside = [c for c in starts if c.in_window]
        outside = [c for c in starts if not c.in_window]
        for group, filled, label in (
            (inside, True, "cold start inside a window"),
            (outside, False, "cold start outside windows"),
        ):
            if group:
                dots = right.scatter(
                    [c.at for c in group], [c.seconds for c in group], s=28, marker="o",
                    color="darkorange" if filled else "none", edgecolors="darkorange",
                    label=label, zorder=5,
                )  # fmt: skip
                dots.set_gid(GID_COLD_STARTS)
                handles.append(dots)
        right.set_ylim(bottom=0)
    misses = [m for m in recorded.misses if m.at and p.start <= m.at < p.end]
    if misses:
        at = [m.at for m in misses if m.at]
        crosses = ax.scatter(
            at, [p.floor_at(t) for t in at], s=90, marker="X", color="crimson", zorder=6,
            label="miss: floor not Ready at the window's start",
        )  # fmt: skip
        crosses.set_gid(GID_MISSES)
        for m in misses:
            if m.at and m.short is not None:
                ax.annotate(
                    f"-{m.short}", (m.at, p.floor_at(m.at)), xytext=(6, -10),
                    textcoords="offset points", fontsize=8, color="crimson",
                )  # fmt: skip
        handles.append(crosses)
    return handles


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def _local(instant: datetime, p: Preview) -> str:
    return format_local(instant, p.zone).removesuffix(f" {p.zone.key}")
