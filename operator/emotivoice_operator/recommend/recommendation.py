"""The recommendation, from a history and a service: the proposed ``warmPool``, its floor and
today's, their scores, and a backtest (proposed on the weeks before the last, scored on the
last). Pure: the CLI reads Prometheus and the cluster and passes what it read.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from emotivoice_operator.crd.spec import parse_spec
from emotivoice_operator.recommend.calendar import with_holidays
from emotivoice_operator.recommend.estimate import Estimate, estimate, holiday_like
from emotivoice_operator.recommend.floor import floor_per_minute, operator_windows
from emotivoice_operator.recommend.history import MINUTES_PER_WEEK, History
from emotivoice_operator.recommend.propose import MAX_WINDOWS, propose, window_specs
from emotivoice_operator.recommend.score import Score, score
from emotivoice_operator.tuning.lead import ceil_minutes, learn_lead
from emotivoice_operator.windows.model import AUTO, LeadBounds, format_duration


@dataclass(frozen=True)
class Options:
    target: float = 0.6
    slot_minutes: int = 15
    holidays: tuple[date, ...] = ()


@dataclass(frozen=True)
class Service:
    """What the recommendation reads of the service: its spec, the cold starts' seconds its
    status recorded (None: no status), the lead in force, and the calendars' dates by name."""

    spec: Mapping[str, Any]
    cold_starts: Sequence[float] | None = None
    learned_lead: timedelta | None = None
    calendars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lead:
    text: str
    basis: str


@dataclass(frozen=True)
class Proposal:
    pool: dict[str, Any]
    estimate: Estimate
    skipped: dict[date, str]
    floor: np.ndarray
    score: Score


@dataclass(frozen=True)
class Recommendation:
    history: History
    lead: Lead
    proposal: Proposal
    today_floor: np.ndarray
    today: Score
    flat_peak: Score
    backtest: Proposal | None
    backtest_today: Score | None
    min_replicas: int
    max_replicas: int

    @property
    def looks_like_holidays(self) -> list[date]:
        return [d for d, why in self.proposal.skipped.items() if why == "looks like a holiday"]


def proposed_lead(service: Service) -> Lead:
    """From the cold starts: their p95 plus the pool's margin, in its bounds, rounded up to
    minutes (the operator's own rule); ``auto`` while fewer than ``minStarts`` are known;
    without a status, the spec's lead (the most common one), else ``auto``."""
    bounds = LeadBounds.from_spec(_typed_pool(service.spec).auto_lead_time)
    samples = list(service.cold_starts or [])
    if service.cold_starts is not None and len(samples) >= bounds.min_starts:
        decision = learn_lead(bounds, samples, None)
        return Lead(
            # A fixed leadTime is whole minutes (its CronJob's schedule); auto learns seconds.
            format_duration(ceil_minutes(decision.lead.total_seconds())),
            f"p95 of {len(samples)} cold starts {decision.p95_seconds:.0f} s + margin "
            f"{format_duration(bounds.margin)}, rounded up to minutes",
        )
    if service.cold_starts is not None:
        return Lead(
            AUTO, f"{len(samples)} of {bounds.min_starts} cold starts known: the operator learns it"
        )
    leads = Counter(
        w.get("leadTime", "10m") for w in (service.spec.get("warmPool") or {}).get("windows", [])
    )
    if leads:
        return Lead(leads.most_common(1)[0][0], "the spec's (no cold starts recorded)")
    return Lead(AUTO, "no cold starts recorded and no lead in the spec")


def _typed_pool(spec: Mapping[str, Any]):
    pool = dict(spec.get("warmPool") or {})
    body = copy.deepcopy(dict(spec))
    body["warmPool"] = {k: v for k, v in pool.items() if k in ("timeZone", "autoLeadTime")}
    body["warmPool"]["windows"] = []
    return parse_spec(body).warm_pool


def recommend(history: History, service: Service, options: Options) -> Recommendation:
    spec = service.spec
    pool_today = spec.get("warmPool")
    min_r, max_r, today_windows, _ = operator_windows(
        spec, pool_today, service.learned_lead, service.calendars
    )
    today_floor = floor_per_minute(min_r, today_windows, history.start_s, history.minutes)
    lead = proposed_lead(service)
    proposal = _propose(history, service, options, lead, min_r, max_r)
    flat = np.full(history.minutes, int(proposal.floor.max()), dtype=np.int64)
    backtest = backtest_today = None
    if history.weeks >= 2:
        cut = (history.weeks - 1) * MINUTES_PER_WEEK
        train, held = history.window(0, cut), history.window(cut, history.weeks * MINUTES_PER_WEEK)
        backtest = _propose(train, service, options, lead, min_r, max_r, scored_on=held)
        backtest_today = score(today_floor[cut : cut + MINUTES_PER_WEEK], held)
    return Recommendation(
        history,
        lead,
        proposal,
        today_floor,
        score(today_floor, history),
        score(flat, history),
        backtest,
        backtest_today,
        min_r,
        max_r,
    )


def _propose(
    history: History,
    service: Service,
    options: Options,
    lead: Lead,
    min_r: int,
    max_r: int,
    scored_on: History | None = None,
) -> Proposal:
    spec = service.spec
    pool_today = dict(spec.get("warmPool") or {})
    history_dates = set(history.grid.dates())
    skipped = {d: "--holiday" for d in options.holidays if d in history_dates}
    if pool_today:
        _, _, _, calendar = operator_windows(
            spec, pool_today, service.learned_lead, service.calendars
        )
        for e in calendar.entries:
            if e.day in history_dates:
                skipped.setdefault(e.day, f"in {e.source}")
    for d in holiday_like(history, skipped):
        skipped[d] = "looks like a holiday"
    est = estimate(history, skipped, options.target, options.slot_minutes, min_r, max_r)
    carried = [w for w in pool_today.get("windows") or [] if w.get("datesOnly")]
    windows = propose(est.needed, min_r, MAX_WINDOWS - len(carried))
    taken = {w["name"] for w in carried}
    pool = _pool(pool_today, window_specs(windows, options.slot_minutes, lead.text, taken))
    pool["windows"] += copy.deepcopy(carried)
    end = history.instant(history.minutes).astimezone(history.zone).date()
    dates = _dates(pool_today, options.holidays, {w["name"] for w in pool["windows"]}, end)
    if dates:
        pool["dates"] = dates
    target = scored_on or history
    _, _, parsed, _ = operator_windows(spec, pool, service.learned_lead, service.calendars)
    floor = floor_per_minute(min_r, parsed, target.start_s, target.minutes)
    return Proposal(pool, est, dict(sorted(skipped.items())), floor, score(floor, target))


def _pool(today: Mapping[str, Any], windows: list[dict[str, Any]]) -> dict[str, Any]:
    pool: dict[str, Any] = {"timeZone": today.get("timeZone", "UTC")}
    if "autoLeadTime" in today:
        pool["autoLeadTime"] = copy.deepcopy(today["autoLeadTime"])
    if today.get("calendars"):
        pool["calendars"] = list(today["calendars"])
    pool["windows"] = windows
    return pool


def _dates(
    today: Mapping[str, Any], holidays: Sequence[date], names: set[str], after: date
) -> list[dict[str, Any]]:
    """The spec's own dates (their windows kept where the proposal still has them), then the
    ``--holiday`` dates from ``after`` on (the past ones only shaped the estimate)."""
    kept: list[dict[str, Any]] = []
    for entry in today.get("dates") or []:
        entry = dict(entry)
        if entry.get("windows"):
            entry["windows"] = [w for w in entry["windows"] if w in names]
            if not entry["windows"]:
                entry.pop("windows")
        kept.append(entry)
    future = [d for d in holidays if d >= after]
    return with_holidays({"dates": kept}, future).get("dates") or []
