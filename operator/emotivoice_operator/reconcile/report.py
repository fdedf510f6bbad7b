"""What the operator tells: every Event a pass posts, and the metrics it sets, in one place.

Each Event reason is a constant here (``REASON_*``; ``REASONS`` lists them all), so the reasons a
user can see are read in one module. A pass builds one ``Reporter`` for its service; the pass,
the children's I/O (children.py) and the pass's findings (observe.py) go through it. Warnings
that repeat the status message (an invalid spec, a name taken, a refused apply, an unreachable
cache) and phase changes are posted once per change: ``Memory`` holds what the user was last
told. The pass's duration is the controller's to measure (controller/handlers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from emotivoice_operator import fallback as fb
from emotivoice_operator import metrics
from emotivoice_operator import windows as win
from emotivoice_operator.desired import DesiredState
from emotivoice_operator.reconcile.apply import ApplyResult
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.observe import Findings
from emotivoice_operator.reconcile.status import CALENDARS_CONDITION
from emotivoice_operator.render import Owner
from emotivoice_operator.tuning import coldstarts, cost, misses

# (type, reason, message) -> posts a Kubernetes Event on the EmotiVoiceService.
EventPoster = Callable[[str, str, str], None]

NORMAL = "Normal"
WARNING = "Warning"

# Warnings, each posted when the status message (or condition) it repeats changes.
REASON_INVALID_SPEC = "InvalidSpec"
REASON_NAME_CONFLICT = "NameConflict"
REASON_APPLY_FAILED = "ApplyFailed"
REASON_CACHE_UNREACHABLE = "CacheUnreachable"
# A calendar named in spec.warmPool.calendars is missing or invalid (its dates count as empty).
REASON_CALENDAR_MISSING = "CalendarMissing"
# Children: what one pass created (one Event), updated (one each), deleted (one each).
REASON_CREATED = "Created"
REASON_UPDATED = "Updated"
REASON_DELETED = "Deleted"
REASON_WARM_FLOOR = "WarmFloor"
# Tuning: a cold start counted, a window's start judged, the learned lead changed.
REASON_COLD_START = "ColdStart"
REASON_WINDOW_MISSED = "WindowMissed"
REASON_WINDOW_CAUGHT_UP = "WindowCaughtUp"
REASON_WINDOW_ENDED_SHORT = "WindowEndedShort"
REASON_LEAD_TIME = "LeadTime"
# spec.fallback: the Service moved to another pool's pods; requests the fallback answered
# raised a floor of 0 to 1.
REASON_ROUTED = "Routed"
REASON_WOKEN = "Woken"
# The warm path (reconcile/warmpath.py): the image pre-pull for a window began, one node's pull
# was measured, a node cannot pull, the pre-pull was removed; capacity placeholders were
# created, one was preempted by a replica (or is gone), a window's placeholders were removed.
REASON_IMAGE_PRE_PULL = "ImagePrePull"
REASON_IMAGE_PULLED = "ImagePulled"
REASON_IMAGE_PRE_PULL_FAILED = "ImagePrePullFailed"
REASON_IMAGE_PRE_PULL_DONE = "ImagePrePullDone"
REASON_PLACEHOLDERS_CREATED = "PlaceholdersCreated"
REASON_PLACEHOLDER_PREEMPTED = "PlaceholderPreempted"
REASON_PLACEHOLDERS_REMOVED = "PlaceholdersRemoved"
# The service entered a phase (status.phase), one reason each: "Phase" + the phase.
REASON_PHASE_READY = "PhaseReady"
REASON_PHASE_PROGRESSING = "PhaseProgressing"
REASON_PHASE_SCALED_TO_ZERO = "PhaseScaledToZero"
REASON_PHASE_DEGRADED = "PhaseDegraded"
REASON_PHASE_FAILED = "PhaseFailed"
PHASE_REASONS = {
    "Ready": REASON_PHASE_READY,
    "Progressing": REASON_PHASE_PROGRESSING,
    "ScaledToZero": REASON_PHASE_SCALED_TO_ZERO,
    "Degraded": REASON_PHASE_DEGRADED,
    "Failed": REASON_PHASE_FAILED,
}
# Every reason the operator posts.
REASONS = tuple(value for name, value in sorted(globals().items()) if name.startswith("REASON_"))


class Reporter:
    """One pass's Events and metrics for one service."""

    def __init__(self, owner: Owner, post: EventPoster, memory: Memory) -> None:
        self.owner = owner
        self.post = post
        self.memory = memory

    # The status message, repeated as a Warning once per change.
    def invalid_spec(self, message: str) -> None:
        if self.memory.message != message:
            self.post(WARNING, REASON_INVALID_SPEC, message)

    def name_conflict(self, message: str) -> None:
        if self.memory.message != message:
            self.post(WARNING, REASON_NAME_CONFLICT, message)

    def apply_failed(self, message: str) -> None:
        if self.memory.message != message:
            self.post(WARNING, REASON_APPLY_FAILED, message)

    def cache_unreachable(self, warning: str | None) -> None:
        if warning and self.memory.condition_message("CacheReachable") != warning:
            self.post(WARNING, REASON_CACHE_UNREACHABLE, warning)

    def calendar_missing(self, problem: str | None) -> None:
        if problem and self.memory.condition_message(CALENDARS_CONDITION) != problem:
            self.post(WARNING, REASON_CALENDAR_MISSING, problem)

    def phase(self, status: dict[str, Any]) -> None:
        if status.get("phase") != self.memory.phase:
            self.post(NORMAL, PHASE_REASONS[status["phase"]], status["message"])

    # Children.
    def warm_floor(self, floor: int) -> None:
        metrics.WARM_FLOOR.labels(self.owner.namespace, self.owner.name).set(floor)

    def pool(
        self, desired: DesiredState | None, status: dict[str, Any], fetch_failing: int
    ) -> None:
        """The gauges the chart's alerts and dashboard join (docs/reference/alerts.md): Ready
        replicas, the pool's max, pods whose download failed, and per window whether it is warm
        and the lead in force. Windows no longer in the spec lose their label sets; the counters
        of the windows that are get theirs at 0, so the first miss is an increase."""
        ns, name = self.owner.namespace, self.owner.name
        metrics.READY_REPLICAS.labels(ns, name).set(status.get("readyReplicas") or 0)
        metrics.FETCH_FAILING_PODS.labels(ns, name).set(fetch_failing)
        if desired is None:
            return
        metrics.MAX_REPLICAS.labels(ns, name).set(desired.max_replicas)
        active = {w.name for w in desired.active_windows}
        for window in desired.windows:
            metrics.WINDOW_ACTIVE.labels(ns, name, window.name).set(window.name in active)
            metrics.WINDOW_LEAD_SECONDS.labels(ns, name, window.name).set(
                window.lead.total_seconds()
            )
            metrics.WINDOW_MISSES.labels(ns, name, window.name)
            metrics.WINDOW_STARTS_MET.labels(ns, name, window.name)
        metrics.forget_windows(ns, name, {w.name for w in desired.windows})
        if desired.route is not None:
            metrics.WAKES.labels(ns, name)

    def warm_path(
        self,
        desired: DesiredState,
        pre_pull: Mapping[str, Any] | None,
        capacity: Mapping[str, Any] | None,
    ) -> None:
        """The warm path's gauges (reconcile/warmpath.py posts its Events itself)."""
        ns, name = self.owner.namespace, self.owner.name
        lead = desired.warm_path.image_lead
        if lead is not None:
            metrics.IMAGE_LEAD_SECONDS.labels(ns, name).set(lead.lead.total_seconds())
        if pre_pull is not None:
            pulled = [e for e in pre_pull.get("nodes") or [] if e.get("state") == "Pulled"]
            metrics.PREPULLED_NODES.labels(ns, name).set(len(pulled))
        if capacity is not None:
            metrics.PLACEHOLDERS.labels(ns, name).set(len(capacity.get("placeholders") or []))

    def applied(self, results: Iterable[ApplyResult]) -> None:
        created = []
        for result in results:
            metrics.CHILD_APPLIES.labels(result.kind, result.action).inc()
            if result.action == "created":
                created.append(f"{result.kind} {result.name}")
            elif result.action == "updated":
                message = f"{result.kind} {result.name}: applied {', '.join(result.drift[:4])}"
                if result.held:
                    message += (
                        f"; {', '.join(result.held[:4])} still differ: another writer holds "
                        "those fields, left as they are (reported once)"
                    )
                self.post(NORMAL, REASON_UPDATED, message)
        if created:
            # One Event for what one pass created (a new service: seven children), not one each:
            # Events are a third of the API writes while a thousand services converge.
            self.post(NORMAL, REASON_CREATED, f"created {', '.join(created)}")

    def pruned(self, result: ApplyResult) -> None:
        self.post(
            NORMAL, REASON_DELETED, f"deleted {result.kind} {result.name}: no longer in the spec"
        )

    def claim_deleted(self, claim: str, why: str) -> None:
        self.post(
            NORMAL,
            REASON_DELETED,
            f"deleted PersistentVolumeClaim {claim}: {why}, no replica comes back to it",
        )

    def floor_raised(self, workload: str, replicas: int, floor: int) -> None:
        self.post(
            NORMAL,
            REASON_WARM_FLOOR,
            f"scaled {workload} from {replicas} to the warm floor {floor}",
        )

    def status_written(self) -> None:
        metrics.STATUS_WRITES.inc()

    # What the pass observed (observe.Findings): cold starts, window starts, the lead.
    # spec.fallback.
    def routing(self, route: fb.Route | None, own_ready: int) -> None:
        ns, name = self.owner.namespace, self.owner.name
        if route is None:
            return
        metrics.ROUTED_TO_FALLBACK.labels(ns, name, route.pool).set(route.reason == fb.FALLBACK)
        before = self.memory.routing.get("pool")
        if before == route.pool:
            return
        if before:
            metrics.ROUTED_TO_FALLBACK.labels(ns, name, before).set(0)
        if route.reason == fb.FALLBACK:
            why = f"no pod of {name} is Ready"
        else:
            why = f"{own_ready} pod(s) of {name} Ready"
        self.post(
            NORMAL,
            REASON_ROUTED,
            f"the Service {name} now sends traffic to {route.pool}'s pods: {why}",
        )

    def wake(self, wake: fb.Wake | None, hold: str) -> None:
        before = self.memory.wake
        if wake is None or (before is not None and before.since == wake.since):
            return
        metrics.WAKES.labels(self.owner.namespace, self.owner.name).inc()
        self.post(
            NORMAL,
            REASON_WOKEN,
            f"a request answered by the fallback woke {self.owner.name}: floor 1 until "
            f"{fb.stamp(wake.expires_at)} ({hold} after the last such request)",
        )

    def findings(self, desired: DesiredState | None, findings: Findings) -> None:
        ns, name = self.owner.namespace, self.owner.name
        for start in findings.new_starts:
            self.post(NORMAL, REASON_COLD_START, coldstarts.describe(start))
            metrics.COLD_START_SECONDS.labels(ns, name).observe(start.seconds)
            if start.split is not None:
                for phase, seconds in start.split.phases.items():
                    metrics.COLD_START_PHASE_SECONDS.labels(ns, name, phase).observe(seconds)
                metrics.COLD_STARTS.labels(
                    ns, name, start.split.cache, "in" if start.in_window else "out"
                ).inc()
        miss_report = findings.miss_report
        if miss_report is not None and desired is not None:
            zones = {w.name: w.zone for w in desired.windows}
            for miss in miss_report.missed:
                metrics.WINDOW_MISSES.labels(ns, name, miss.window).inc()
                where = win.format_local(miss.at, zones[miss.window])
                self.post(
                    WARNING,
                    REASON_WINDOW_MISSED,
                    misses.describe_miss(miss, where, findings.p95_seconds),
                )
            for window, _, _ in miss_report.met:
                metrics.WINDOW_STARTS_MET.labels(ns, name, window).inc()
            for miss in miss_report.caught_up:
                if miss not in miss_report.missed:
                    self.post(
                        NORMAL,
                        REASON_WINDOW_CAUGHT_UP,
                        f"window {miss.window}: its {miss.required} replicas were Ready "
                        f"{miss.late_seconds:.0f} s after it opened",
                    )
            for miss in miss_report.ended_short:
                self.post(
                    WARNING,
                    REASON_WINDOW_ENDED_SHORT,
                    f"window {miss.window} ended with fewer than its {miss.required} replicas Ready",
                )
        if findings.cost is not None:
            self.cost(findings.cost.added)
        lead = findings.lead
        if lead is not None and desired is not None:
            now_lead = lead.status()
            metrics.LEAD_TIME_SECONDS.labels(ns, name).set(now_lead["seconds"])
            before = self.memory.lead_time
            if (
                before.get("seconds") != now_lead["seconds"]
                or before.get("mode") != now_lead["mode"]
            ):
                self.post(
                    NORMAL,
                    REASON_LEAD_TIME,
                    f"leadTime auto is {now_lead['duration']} ({lead.basis}): the pre-warm "
                    f"CronJobs of {', '.join(w.name for w in desired.windows if w.auto_lead)} "
                    "fire that early",
                )

    def cost(self, added: Mapping[str, cost.Amounts]) -> None:
        """The windows' cost counters: what this pass added to status.cost."""
        ns, name = self.owner.namespace, self.owner.name
        for window, amounts in added.items():
            for counter, amount in (
                (metrics.WINDOW_WARM_REPLICA_SECONDS, amounts.warm),
                (metrics.WINDOW_SERVED_REPLICA_SECONDS, amounts.served),
                (metrics.WINDOW_LEAD_REQUESTS, amounts.lead_requests),
                (metrics.WINDOW_COLD_STARTS, amounts.cold_starts),
                (metrics.WINDOW_UNACCOUNTED_SECONDS, amounts.unaccounted),
            ):
                if amount > 0:
                    counter.labels(ns, name, window).inc(amount)
