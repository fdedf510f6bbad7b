"""The learned lead time (``leadTime: auto``): how early to pre-warm, from the cold starts
observed. Pure: the caller passes the recent starts' seconds and the lead in force (both read
back from status by reconcile/memory.py).

target = the p95 of the recent cold starts (pod created -> Ready) + ``margin``, rounded up to
whole minutes (a CronJob schedule has minutes), within [``min``, ``max``]. The margin covers
what a cold start does not: the operator's reaction to the window's lead (up to one timer
period) and the Deployment controller creating the pods.

Hysteresis, so the CronJobs are not rewritten on every new sample: the lead rises to a higher
target at once (a miss costs more than an idle minute), and falls only when the target is at
least ``LOWER_STEP`` (or a fifth of the current lead, whichever is more) below it. Until
``minStarts`` starts are observed, ``initial`` applies, and the basis says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from emotivoice_operator.windows.model import LeadBounds, format_duration

# A lower target must undercut the lead in force by this much (or a fifth of it) to apply.
LOWER_STEP = timedelta(minutes=2)


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
            "seconds": int(self.lead.total_seconds()),
            "duration": format_duration(self.lead),
            "basis": self.basis,
            "samples": self.samples,
        }
        if self.p95_seconds is not None:
            out["p95Seconds"] = round(self.p95_seconds, 3)
        return out


def _ceil_minutes(seconds: float) -> timedelta:
    return timedelta(minutes=max(1, math.ceil(seconds / 60 - 1e-9)))


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
    target = bounds.clamp(_ceil_minutes(p95 + bounds.margin.total_seconds()))
    lead = target
    held = ""
    if current is not None and target < current:
        step = max(LOWER_STEP, _ceil_minutes(current.total_seconds() / 5))
        if current - target < step:
            lead = bounds.clamp(current)
            held = f"; kept {format_duration(lead)} (a lower target must be {format_duration(step)} below it)"
    basis = (
        f"p95 {p95:.1f} s of {len(samples)} {what} + margin {format_duration(bounds.margin)}"
        f" -> {format_duration(target)} ({span}){held}"
    )
    return LeadDecision(lead, "learned", basis, len(samples), p95, target)
