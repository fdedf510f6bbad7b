"""When each part of a window's warm path runs, for the occurrence in hand. Pure.

A window's replicas are created at ``start - lead`` (the floor rises; windows/schedule.py). The
warm path comes before them: the image pre-pull from ``start - lead - image lead``, the capacity
placeholders from ``start - lead - nodeLead``. Both end once the window's replicas are Ready
(the floor in force is met after ``start - lead``) or, at the latest, when the occurrence ends.
Occurrences come from ``windows.schedule.occurrences``, so a holiday warms no image or node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from emotivoice_operator.windows.clock import to_utc
from emotivoice_operator.windows.model import Window, format_duration
from emotivoice_operator.windows.schedule import occurrences

# How far ahead an occurrence is looked for: a week and a day covers every weekly window; a
# rarer one is found by a later pass (the timer's horizon passes come far more often).
_AHEAD_DAYS = 8


@dataclass(frozen=True)
class Stage:
    """One occurrence of a window with the instants its warm path begins (UTC).

    ``image_at`` is None without pre-pull, ``node_at`` None without placeholders."""

    window: Window
    start: datetime
    end: datetime
    image_at: datetime | None
    node_at: datetime | None

    @property
    def replicas_at(self) -> datetime:
        """When the window's replicas are created: its lead begins."""
        return self.start - self.window.lead

    @property
    def earliest(self) -> datetime:
        return min(t for t in (self.image_at, self.node_at, self.replicas_at) if t is not None)

    def key(self) -> str:
        """The occurrence as status remembers it: window name and start."""
        return (
            f"{self.window.name}@{self.start.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
        )

    def warm(self, now: datetime, floor_met: bool) -> bool:
        """The window's replicas are created and Ready: the warm path has done its job."""
        return to_utc(now) >= self.replicas_at and floor_met

    def image_due(self, now: datetime, floor_met: bool) -> bool:
        """The pre-pull DaemonSet should exist at ``now``."""
        now = to_utc(now)
        return (
            self.image_at is not None
            and self.image_at <= now < self.end
            and not self.warm(now, floor_met)
        )

    def placeholders_created(self, now: datetime) -> bool:
        """Missing placeholders are (re)created: from the node lead until the replicas come.
        After that a preempted placeholder stays gone (its room went to a replica)."""
        now = to_utc(now)
        return self.node_at is not None and self.node_at <= now < self.replicas_at

    def placeholders_kept(self, now: datetime, floor_met: bool) -> bool:
        """Placeholders that exist stay until the replicas are Ready or the occurrence ends."""
        now = to_utc(now)
        return (
            self.node_at is not None
            and self.node_at <= now < self.end
            and not self.warm(now, floor_met)
        )

    def edges(self) -> list[datetime]:
        return [t for t in (self.image_at, self.node_at, self.replicas_at, self.end) if t]

    def split(self) -> str:
        """The lead in words, as the Events show it: node, image, replicas."""
        return split_text(
            self.window.lead,
            self.replicas_at - self.image_at if self.image_at is not None else None,
            self.replicas_at - self.node_at if self.node_at is not None else None,
        )


def split_text(replicas: timedelta, image: timedelta | None, node: timedelta | None) -> str:
    """A lead in its parts, as Events and the preview word it: "node 10m, image 3m, replicas
    7.1s" (a part that is off is left out)."""
    parts = [] if node is None else [f"node {format_duration(node)}"]
    if image is not None:
        parts.append(f"image {format_duration(image)}")
    parts.append(f"replicas {format_duration(replicas)}")
    return ", ".join(parts)


def stages(
    windows: Iterable[Window],
    now: datetime,
    image_lead: timedelta | None,
    node_leads: Mapping[str, timedelta],
) -> list[Stage]:
    """For each window with a warm path, the occurrence whose path is under way at ``now`` (from
    its earliest stage to its end) or else the next one; spec order. ``node_leads``: the
    windows with placeholders, by name; ``image_lead``: None without pre-pull."""
    now = to_utc(now)
    out = []
    for w in windows:
        node_lead = node_leads.get(w.name)
        if image_lead is None and node_lead is None:
            continue
        today = now.astimezone(w.zone).date()
        first = today - timedelta(days=w.duration.days + 2)
        for start, end in occurrences(w, first, today + timedelta(days=_AHEAD_DAYS)):
            replicas_at = start - w.lead
            stage = Stage(
                w,
                start,
                end,
                replicas_at - image_lead if image_lead is not None else None,
                replicas_at - node_lead if node_lead is not None else None,
            )
            if now < end:
                out.append(stage)
                break
    return out
