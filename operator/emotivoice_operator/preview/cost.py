"""What each window cost, as the operator accounted it in ``status.cost`` (tuning/cost.py), for
``preview --name``: a table per window and a one-line verdict. Pure; the reading tolerates an
absent or partly unreadable status (the preview is advice), like recorded.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emotivoice_operator.windows import Window
from emotivoice_operator.windows.model import format_duration


@dataclass(frozen=True)
class WindowCost:
    window: str
    occurrences: int
    warm_seconds: float
    served_seconds: float
    lead_requests: float
    cold_starts: int
    unaccounted_seconds: float

    @property
    def utilisation(self) -> float | None:
        return self.served_seconds / self.warm_seconds if self.warm_seconds else None


@dataclass(frozen=True)
class ScheduleCost:
    since: str
    windows: tuple[WindowCost, ...]


def read_cost(status: Mapping[str, Any] | None) -> ScheduleCost | None:
    """``status.cost``'s per-window totals; None when the status has none."""
    block = status.get("cost") if isinstance(status, Mapping) else None
    if not isinstance(block, Mapping) or not isinstance(block.get("windows"), Mapping):
        return None
    out = []
    for name, record in sorted(block["windows"].items()):
        if not isinstance(record, Mapping):
            continue
        out.append(
            WindowCost(
                window=str(name),
                occurrences=int(_number(record.get("occurrences"))),
                warm_seconds=_number(record.get("warmReplicaSeconds")),
                served_seconds=_number(record.get("servedReplicaSeconds")),
                lead_requests=_number(record.get("leadRequests")),
                cold_starts=int(_number(record.get("coldStarts"))),
                unaccounted_seconds=_number(record.get("unaccountedSeconds")),
            )
        )
    return ScheduleCost(str(block.get("since") or ""), tuple(out))


def cost_lines(cost: ScheduleCost, windows: list[Window]) -> list[str]:
    """The table and a verdict per window; ``windows`` (the spec's) give the leads."""
    leads = {w.name: w.lead for w in windows}
    since = f" since {cost.since}" if cost.since else ""
    lines = [f"What the windows cost (status.cost{since}):"]
    if not cost.windows:
        return [*lines, "  nothing accounted yet"]
    head = (
        f"  {'window':<16} {'occurrences':>11} {'warm r-h':>9} {'served r-h':>10} "
        f"{'lead requests':>13} {'cold starts':>11}"
    )
    lines.append(head)
    for c in cost.windows:
        served = f"{c.served_seconds / 3600:.1f}"
        if c.utilisation is not None:
            served += f" ({c.utilisation:.0%})"
        lines.append(
            f"  {c.window:<16} {c.occurrences:>11} {c.warm_seconds / 3600:>9.1f} {served:>10} "
            f"{c.lead_requests:>13.0f} {c.cold_starts:>11}"
        )
    lines.append("")
    lines += [f"  {c.window}: {verdict(c, leads.get(c.window))}" for c in cost.windows]
    return lines


def verdict(c: WindowCost, lead: timedelta | None) -> str:
    """One sentence: what the lead bought and how much of the warm time served traffic."""
    if c.occurrences == 0:
        return "no warm span accounted yet (or each lay inside a larger window, which holds it)"
    lead_text = f"lead of {format_duration(lead)}" if lead is not None else "lead"
    parts = [
        f"{lead_text} met {c.lead_requests:.0f} requests that would have waited for a cold start"
        if c.lead_requests
        else f"no request arrived in the {lead_text}: a shorter lead would cost less"
    ]
    if c.utilisation is not None:
        parts.append(f"{c.utilisation:.0%} of warm replica-hours served traffic")
    if c.cold_starts:
        parts.append(f"{c.cold_starts} cold start(s) while open")
    if c.unaccounted_seconds:
        parts.append(f"{c.unaccounted_seconds / 3600:.1f} h unaccounted (the operator was away)")
    return "; ".join(parts)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
