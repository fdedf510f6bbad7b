"""What a pass saw: the status's inputs (``Observed``) and what changed since the last status
(``Findings``: new cold starts, window starts judged, the lead). Pure: the caller brings the
server workload as the watches show it, the pods, the status as memory and the answers the pod
prober got; report.py posts the Events and metrics of the findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emotivoice_operator import windows as win
from emotivoice_operator.desired import DesiredState
from emotivoice_operator.reconcile.cost import CostReading
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.status import Observed
from emotivoice_operator.tuning import coldstarts, cost, misses
from emotivoice_operator.tuning.lead import LeadDecision


@dataclass
class Findings:
    """What a pass saw change (for Events and metrics; report.py posts them)."""

    new_starts: list[coldstarts.ColdStart] = field(default_factory=list)
    miss_report: misses.MissReport | None = None
    lead: LeadDecision | None = None
    p95_seconds: float | None = None  # of the cold starts, this pass's included
    cost: cost.CostReport | None = None


def observe(
    body: dict[str, Any],
    desired: DesiredState | None,
    memory: Memory,
    workload: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    ready_bodies: Mapping[str, dict[str, Any]],
    clock: Callable[[], datetime],
    *,
    spec_error: str | None = None,
    apply_error: str | None = None,
    conflict: str | None = None,
    request_fixes: dict[str, dict[str, Any] | None] | None = None,
    claims: tuple[list[str] | None, list[str]] = (None, []),
    routing: dict[str, Any] | None = None,
    wake: dict[str, Any] | None = None,
    clear: tuple[str, ...] = (),
    cost_reading: CostReading | None = None,
    pre_pull: dict[str, Any] | None = None,
    capacity: dict[str, Any] | None = None,
    scheduled: Mapping[str, datetime] | None = None,
) -> tuple[Observed, Findings]:
    """What the watches show now, and what changed since the last status; ``desired`` is None
    when the spec cannot be honoured, ``workload`` None when no server workload of ours exists.
    ``ready_bodies``: the /ready answers of the pods that just turned Ready (tuning/prober.py);
    ``scheduled``: when the scheduler placed them, to the microsecond (reconcile/scheduled.py);
    ``cost_reading``: the counters read for the windows' cost, and whether the operator has
    just started (reconcile/cost.py); None leaves status.cost as it is."""
    findings = Findings(lead=desired.lead if desired else None)
    cold, findings.new_starts = _cold_starts(desired, pods, memory, ready_bodies, scheduled)
    findings.p95_seconds = cold.get("p95Seconds")
    if desired and (desired.windows or memory.misses):
        findings.miss_report = misses.check(
            desired.windows, desired.min_replicas, pods, memory.misses, clock()
        )
    if desired and cost_reading and (desired.windows or memory.cost):
        findings.cost = cost.account(
            desired.windows, pods, memory.cost, clock(),
            counters=cost_reading.counters, cold_starts=findings.new_starts,
            resumed=cost_reading.resumed,
        )  # fmt: skip
    observed = Observed(
        generation=body["metadata"].get("generation", 0),
        warm_floor=desired.warm_floor if desired else 0,
        active_window=",".join(w.name for w in desired.active_windows) if desired else "",
        next_window=desired.next_window_text if desired else "",
        next_window_start=desired.next_window[1] if desired and desired.next_window else None,
        workload=workload,
        pods=pods,
        cold_starts=cold,
        misses=findings.miss_report.status if findings.miss_report else None,
        lead_time=desired.lead.status() if desired and desired.lead else None,
        cost=findings.cost.status if findings.cost else None,
        spec_error=spec_error,
        apply_error=apply_error,
        conflict=conflict,
        warm_request_fixes=request_fixes or {},
        cache=_cache_status(desired, memory, *claims),
        cache_warning=desired.cache.warning if desired else None,
        routing=routing,
        wake=wake,
        clear=clear,
        calendar=_calendar_status(desired, clock()),
        calendars_found=calendars_found(desired),
        pre_pull=pre_pull,
        capacity=capacity,
    )
    return observed, findings


def _cold_starts(
    desired: DesiredState | None,
    pods: list[dict[str, Any]],
    memory: Memory,
    ready_bodies: Mapping[str, dict[str, Any]],
    scheduled: Mapping[str, datetime] | None = None,
) -> tuple[dict[str, Any], list[coldstarts.ColdStart]]:
    """The coldStarts status with the starts new since the last pass, and those starts."""
    windows = desired.windows if desired else []

    def in_window(created: datetime, ready: datetime) -> bool:
        return any(win.in_occurrence(w, t) for w in windows for t in (created, ready))

    wake = desired.wake if desired else None
    woken_since = wake.since - timedelta(seconds=1) if wake else None  # stamps are whole seconds
    pulled = None
    if desired and desired.warm_path.image_lead:
        entries = (memory.status.get("prePull") or {}).get("nodes") or []
        pulled = frozenset(e.get("node") for e in entries if e.get("state") == "Pulled")
    return coldstarts.account(
        pods, memory.cold_starts, ready_bodies, in_window, woken_since, pulled, scheduled=scheduled
    )


def _cache_status(
    desired: DesiredState | None,
    memory: Memory,
    kept: list[str] | None,
    deleted: list[str],
) -> dict[str, Any] | None:
    """status.cache: the scope in force and why, the per-replica claims kept (None: not listed
    this pass, the last list stands), and the claims deleted most recently (kept until the next
    deletion, so users can read what the clean-up rule did)."""
    if desired is None:
        return None
    out: dict[str, Any] = {"scope": desired.cache.scope, "reason": desired.cache.reason}
    claims_now = kept if kept is not None else memory.claims
    if claims_now:
        out["claims"] = claims_now
    if deleted or memory.deleted_claims:
        out["deletedClaims"] = deleted or memory.deleted_claims
    return out


def _calendar_status(desired: DesiredState | None, now: datetime) -> dict[str, Any] | None:
    """status.calendar: the dates in force from the pool's today on (None: no dates in use)."""
    calendar = desired.calendar if desired else None
    if calendar is None or not calendar.in_use:
        return None
    return calendar.status(now.astimezone(calendar.zone).date())


def calendars_found(desired: DesiredState | None) -> tuple[bool, str] | None:
    """The CalendarsFound condition's status and message; None when no calendar is named."""
    calendar = desired.calendar if desired else None
    if calendar is None or not (calendar.found or calendar.problems):
        return None
    if calendar.problems:
        return False, "; ".join(p.message for p in calendar.problems)
    return True, f"calendars found: {', '.join(calendar.found)}"
