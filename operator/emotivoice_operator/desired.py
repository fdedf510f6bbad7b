"""What an EmotiVoiceService should look like at an instant: pure, shared by the operator's
reconcile and the offline ``render`` command, so both always agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emotivoice_operator import fallback as fb
from emotivoice_operator import windows as win
from emotivoice_operator.cache_scope import ScopeDecision, decide_scope
from emotivoice_operator.crd.spec import (
    EmotiVoiceServiceSpec,
    SpecError,
    WarmPoolSpec,
    parse_spec,
)
from emotivoice_operator.render import Owner, RenderContext, names, render
from emotivoice_operator.render.warmpath import placeholder_pods, prepull_daemonset
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.tuning.lead import LeadDecision, learn_lead
from emotivoice_operator.warmpath import plan as warm_plan
from emotivoice_operator.warmpath.pulls import Pull, image_lead
from emotivoice_operator.windows.model import AUTO, LeadBounds, parse_duration


@dataclass(frozen=True)
class WarmPathMemory:
    """What the warm path needs from earlier passes (status.prePull, status.capacity): the
    pulls measured, the image lead in force, the occurrences whose path is done (their
    replicas were Ready: nothing of theirs comes back), and the server pods Ready now."""

    pulls: tuple[Pull, ...] = ()
    image_lead_in_force: timedelta | None = None
    done: frozenset[str] = frozenset()
    ready_replicas: int = 0


@dataclass(frozen=True)
class WarmPath:
    stages: list[warm_plan.Stage] = field(default_factory=list)
    image_lead: LeadDecision | None = None
    prepull_for: warm_plan.Stage | None = None
    image: str = ""
    placeholders_create: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    placeholders_keep: frozenset[str] = frozenset()
    # Occurrences whose path finished on this pass (status remembers them).
    done: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DesiredState:
    warm_floor: int
    manifests: list[dict[str, Any]]
    active_windows: list[win.Window]
    next_window: tuple[win.Window, datetime] | None
    # The warm requests honoured now, bounded by the spec (see windows.bound_requests).
    warm_requests: dict[str, win.WarmRequest]
    # The cache scope in force, why, and any warning about it.
    cache: ScopeDecision
    # Most replicas the spec can ever ask for (HPA maxReplicas, every window and request):
    # PerReplica claims of ordinals from here on belong to replicas that never come back.
    max_replicas: int
    windows: list[win.Window] = field(default_factory=list)
    min_replicas: int = 0
    # The lead of leadTime: auto windows and why; None when no window asks for it.
    lead: LeadDecision | None = None
    # spec.fallback: where the Service sends traffic now, a caveat about the fallback for
    # status, and the wake that requests answered by the fallback raised (None: none).
    route: fb.Route | None = None
    fallback_note: str = ""
    wake: fb.Wake | None = None
    # The pool's dates as resolved (inline and the named calendars; those missing counted empty).
    calendar: win.Calendar | None = None
    # The warm path (warmpath/): each window's occurrence in hand with its stages, the image
    # lead in force (None without prePull), the stage the pre-pull DaemonSet serves now (its
    # manifest is among ``manifests``), and the placeholder pods per window: those to create
    # now, and the windows whose placeholders stay.
    warm_path: WarmPath = field(default_factory=lambda: WarmPath())

    @property
    def next_window_text(self) -> str:
        """The next start in its window's own zone, as status and kubectl show it."""
        if not self.next_window:
            return ""
        window, start = self.next_window
        return f"{window.name} {win.format_local(start, window.zone)}"


def desired_state(
    raw_spec: dict[str, Any],
    owner: Owner,
    now: datetime,
    requests: Mapping[str, win.WarmRequest],
    settings: OperatorSettings,
    cold_start_seconds: Sequence[float] = (),
    lead_in_force: timedelta | None = None,
    *,
    cold_start_image_seconds: Sequence[float] = (),
    shared_claim_exists: bool = False,
    traffic: fb.Traffic | None = None,
    calendars: Mapping[str, Mapping[str, Any] | None] | None = None,
    warm_memory: WarmPathMemory | None = None,
) -> DesiredState:
    """Raises ``SpecError`` for a spec that cannot be honoured (naming the field).

    ``requests`` are the warm requests as status holds them (anybody allowed to patch status
    may have written them); only their bounded form reaches the floor. ``cold_start_seconds``
    (the recent starts), their image phases ``cold_start_image_seconds`` (in the same order) and
    ``lead_in_force`` (status.leadTime) feed ``leadTime: auto``.
    ``shared_claim_exists``: the claim NAME-model exists and is ours, which keeps an unset cache
    scope Shared. ``traffic``: what the pass saw for ``spec.fallback`` (its own Ready pods, the
    fallback, the wake so far, whether requests were answered since the last read); without
    it the Service selects the owner's pods and no wake is raised. ``calendars``: the bodies of
    the EmotiVoiceCalendars spec.warmPool.calendars names, by name (absent or None: it does not
    exist, and counts as empty). ``warm_memory``: what the warm path (prePull, capacity
    placeholders) remembers and the server pods Ready now.
    """
    spec = parse_spec(raw_spec)
    cache = decide_scope(spec, owner.name, shared_claim_exists)
    lead: LeadDecision | None = None
    windows: list[win.Window] = []
    calendar: win.Calendar | None = None
    if spec.warm_pool:
        calendar = pool_calendar(spec.warm_pool, calendars or {})
        samples = replica_samples(spec.warm_pool, cold_start_seconds, cold_start_image_seconds)
        windows, lead = _windows(spec.warm_pool, samples, lead_in_force, calendar)
    honoured = win.bound_requests(windows, spec.replicas.max, requests, now)
    floor = win.warm_floor(spec.replicas.min, windows, now, honoured)
    route, note, wake = _fallback(spec, owner.name, traffic or fb.Traffic(), floor, now)
    if wake is not None and wake.active(now):
        floor = max(floor, 1)
    ctx = RenderContext(
        owner,
        floor,
        settings.server_image,
        settings.extra_tolerations,
        settings.prewarm_image,
        default_server_cpu_image=settings.server_cpu_image,
        cache_scope=cache.scope,
        windows=tuple(windows),
        serving_pool=route.pool if route else "",
    )
    manifests = render(spec, ctx)
    path = _warm_path(spec, owner, manifests, windows, floor, now, settings, warm_memory)
    if path.prepull_for is not None and spec.warm_pool and spec.warm_pool.pre_pull:
        manifests.append(
            prepull_daemonset(
                owner, _server_workload(owner, manifests), settings.pause_image,
                spec.warm_pool.pre_pull.gpu_node_selector, path.prepull_for.key(),
            )
        )  # fmt: skip
    return DesiredState(
        warm_floor=floor,
        manifests=manifests,
        active_windows=win.active_windows(windows, now),
        next_window=win.next_window(windows, now),
        warm_requests=honoured,
        cache=cache,
        # The CRD keeps windows (and so bounded requests) <= replicas.max; the floor guards it.
        max_replicas=max(spec.replicas.max, floor),
        windows=windows,
        min_replicas=spec.replicas.min,
        lead=lead,
        route=route,
        fallback_note=note,
        wake=wake,
        calendar=calendar,
        warm_path=path,
    )


def _warm_path(
    spec: EmotiVoiceServiceSpec,
    owner: Owner,
    manifests: list[dict[str, Any]],
    windows: list[win.Window],
    floor: int,
    now: datetime,
    settings: OperatorSettings,
    memory: WarmPathMemory | None,
) -> WarmPath:
    """What the warm path asks for at ``now`` (warmpath/plan.py times it)."""
    pool = spec.warm_pool
    if pool is None:
        return WarmPath()
    memory = memory or WarmPathMemory()
    pre = pool.pre_pull if pool.pre_pull and pool.pre_pull.enabled else None
    decision = None
    if pre is not None:
        initial = parse_duration(pre.initial_lead, "warmPool.prePull.initialLead")
        decision = image_lead(pre.lead, initial, memory.pulls, memory.image_lead_in_force)
    node_leads = {}
    for i, w in enumerate(pool.windows):
        if w.capacity and w.capacity.placeholders:
            node_leads[w.name] = parse_duration(
                w.capacity.node_lead, f"warmPool.windows[{i}].capacity.nodeLead"
            )
    stages = warm_plan.stages(windows, now, decision.lead if decision else None, node_leads)
    floor_met = memory.ready_replicas >= floor
    workload = _server_workload(owner, manifests)
    done = {s.key() for s in stages if s.warm(now, floor_met) and s.key() not in memory.done}
    prepull_for = next(
        (s for s in stages if s.key() not in memory.done and s.image_due(now, floor_met)), None
    )
    create: dict[str, list[dict[str, Any]]] = {}
    keep = set()
    for s in stages:
        if s.key() in memory.done or not s.placeholders_kept(now, floor_met):
            continue
        keep.add(s.window.name)
        if s.placeholders_created(now):
            count = max(0, s.window.replicas - spec.replicas.min)
            create[s.window.name] = placeholder_pods(
                owner, workload, settings.pause_image, settings.placeholder_priority_class,
                s.window.name, count,
            )  # fmt: skip
    image = _server_image(workload)
    return WarmPath(stages, decision, prepull_for, image, create, frozenset(keep), frozenset(done))


def _server_workload(owner: Owner, manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        m for m in manifests
        if m["metadata"]["name"] == names.server(owner.name)
        and m["kind"] in ("Deployment", "StatefulSet")
    )  # fmt: skip


def _server_image(workload: Mapping[str, Any]) -> str:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return str(next(c["image"] for c in containers if c["name"] == "server"))


def pool_calendar(
    pool: WarmPoolSpec, bodies: Mapping[str, Mapping[str, Any] | None]
) -> win.Calendar:
    """The pool's dates: its own over the calendars it names, read from ``bodies`` by name."""
    named = pool.calendars or []
    return win.resolve_calendar(pool, {n: win.shared_calendar(n, bodies.get(n)) for n in named})


def _fallback(
    spec: EmotiVoiceServiceSpec, name: str, traffic: fb.Traffic, floor: int, now: datetime
) -> tuple[fb.Route | None, str, fb.Wake | None]:
    """spec.fallback's route, note and wake (all None/"" without a fallback)."""
    if spec.fallback is None:
        return None, "", None
    note = fb.check(name, spec, traffic.fallback)
    route = fb.route(name, spec, traffic.own_ready, traffic.fallback is not None)
    wake = None
    if spec.fallback.wake_on_request:
        hold = parse_duration(spec.fallback.wake_hold, "fallback.wakeHold")
        wake = fb.next_wake(traffic.wake, traffic.requests_seen, floor, now, hold)
    return route, note, wake


def replica_samples(
    pool: WarmPoolSpec, seconds: Sequence[float], image_seconds: Sequence[float]
) -> list[float]:
    """What ``leadTime: auto`` learns from: each recent start's seconds; with ``prePull`` on, as
    if its image had been on the node: its image phase replaced by the smallest one seen (a
    start that found the image present: only the sandbox and the containers' creation).

    The pre-pull brings the image before the replicas (its own lead, learned from the kubelet's
    pulls), so the replicas' lead need not cover a pull again. Until some start has found the
    image present, the smallest image phase is a pull and the lead stays on the safe side."""
    if not (pool.pre_pull and pool.pre_pull.enabled) or len(image_seconds) != len(seconds):
        return list(seconds)
    if not seconds:
        return []
    present = min(image_seconds)
    return [max(0.0, s - i + present) for s, i in zip(seconds, image_seconds, strict=True)]


def _windows(
    pool: WarmPoolSpec,
    samples: list[float],
    in_force: timedelta | None,
    calendar: win.Calendar,
) -> tuple[list[win.Window], LeadDecision | None]:
    """The windows with the lead ``leadTime: auto`` ones learn now.

    A learned lead that a cron window's pre-warm schedule cannot express (see
    ``windows.cron.shift_earlier``) is not taken: the lead in force, or the initial, stays, and
    the basis says why, rather than the service failing over a number it did not choose.
    """
    if not any(w.lead_time == AUTO for w in pool.windows):
        return win.parse_windows(pool, None, calendar), None
    decision = learn_lead(LeadBounds.from_spec(pool.auto_lead_time), samples, in_force)
    try:
        return win.parse_windows(pool, decision.lead, calendar), decision
    except SpecError as exc:
        for fallback in (in_force, None):
            if fallback == decision.lead:
                continue
            try:
                windows = win.parse_windows(pool, fallback, calendar)
            except SpecError:
                continue
            kept = next(w.lead for w in windows if w.auto_lead)
            return windows, LeadDecision(
                kept, decision.mode, f"{decision.basis}; not applied ({exc.problem})",
                decision.samples, decision.p95_seconds, decision.target,
            )  # fmt: skip
        raise
