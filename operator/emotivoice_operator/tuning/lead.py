"""The learned lead time (``leadTime: auto``): how early to pre-warm, from the cold starts
observed. Pure: the caller passes the recent starts' seconds and the lead in force (both read
back from status by reconcile/memory.py).

target = the p95 of the recent cold starts (pod created -> Ready) + ``margin``, rounded up to a
tenth of a second, within [``min``, ``max``]. The margin covers what a cold start does not: the
operator's reaction to the window's lead and the Deployment controller creating the pods. The
lead is not rounded to the CronJob's minutes: the operator raises the floor at ``start - lead``
itself (its timer wakes at that instant), and the pre-warm job, which fires in the minute before,
waits out the seconds (prewarm_job.py). A replica that takes 6 s to start is then warm ~7 s
before its window, not the rest of a minute.

Hysteresis, so the lead does not follow every sample's noise: it rises to a higher target at
once (a miss costs more than an idle second), and falls only when the target is at least a
fifth of the current lead below it. Until
``minStarts`` starts are observed, ``initial`` applies, and the basis says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from emotivoice_operator.windows.model import LeadBounds, format_duration

# A lower target must undercut the lead in force by a fifth of it (and at least this) to apply.
# Not minutes: the CronJobs change only when the lead's whole minutes do.
LOWER_STEP = timedelta(seconds=1)


@dataclass(frozen=True)
class LeadDecision:
    lead: timedelta
    # "initial" (too few starts yet) or "learned".
    mode: str
    basis: str
    samples: int
    p95_seconds: float | None = None
    target: timedelta | None = None

    def status(self) -> dict[str, object]:
        """``status.leadTime`` (documented in the CRD's status schema)."""
        out: dict[str, object] = {
            "mode": self.mode,
            "seconds": round(self.lead.total_seconds(), 1),
            "duration": format_duration(self.lead),
            "basis": self.basis,
            "samples": self.samples,
        }
        if self.p95_seconds is not None:
            out["p95Seconds"] = round(self.p95_seconds, 3)
        return out


def ceil_minutes(seconds: float) -> timedelta:
    """Whole minutes, rounded up (at least one): what a fixed ``leadTime`` can say."""
    return timedelta(minutes=max(1, math.ceil(seconds / 60 - 1e-9)))


def _ceil_tenths(seconds: float) -> timedelta:
    return timedelta(seconds=max(1, math.ceil(seconds * 10 - 1e-6)) / 10)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def learn_lead(
    bounds: LeadBounds,
    samples: list[float],
    current: timedelta | None,
    *,
    what: str = "cold starts",
) -> LeadDecision:
    """The lead to use now, given the recent samples' seconds (``what`` they are: cold starts,
    or the image pulls of warmpath/pulls.py) and the lead in force."""
    span = f"bounds {format_duration(bounds.minimum)}-{format_duration(bounds.maximum)}"
    if len(samples) < bounds.min_starts:
        lead = bounds.clamp(bounds.initial)
        return LeadDecision(
            lead, "initial",
            f"initial {format_duration(lead)}: {len(samples)} of {bounds.min_starts} {what} "
            "observed so far", len(samples),
        )  # fmt: skip
    p95 = _p95(samples)
    target = bounds.clamp(_ceil_tenths(p95 + bounds.margin.total_seconds()))
    lead = target
    held = ""
    if current is not None and target < current:
        step = max(LOWER_STEP, _ceil_tenths(current.total_seconds() / 5))
        if current - target < step:
            lead = bounds.clamp(current)
            held = f"; kept {format_duration(lead)} (a lower target must be {format_duration(step)} below it)"
    basis = (
        f"p95 {p95:.1f} s of {len(samples)} {what} + margin {format_duration(bounds.margin)}"
        f" -> {format_duration(target)} ({span}){held}"
    )
    return LeadDecision(lead, "learned", basis, len(samples), p95, target)
