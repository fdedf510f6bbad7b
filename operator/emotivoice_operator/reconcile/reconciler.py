"""One reconcile pass for one EmotiVoiceService: render, apply, prune, hold the floor, report.

Called by the controller (controller/handlers.py, from its work queue) with what the watches
show (``Snapshot``), so there is one way the cluster converges and an idle service costs no API
request at all: the resource, its children and its pods come from the watches' indexes; the API
is read only for a rendered child no index shows (it may be someone else's object of that name),
and written only where something differs (children.py). The answers to the operator's own writes
stand in for the watch's copy until it shows them (controller/expectations.py), so a pass right
after a write does not write again.

A pass reads the status back as its memory (memory.py), asks the pods that just turned Ready
for their phases (tuning/prober.py), reads what spec.fallback needs (traffic.py: which pool
serves, and where a request can wake the service, the serving pods' request counters) and,
while a window is warm, what its cost needs (cost.py: the serving pods' counters),
gathers what it saw (observe.py), posts the Events and
metrics through one ``Reporter`` (report.py) and writes the status (status.py). Like
controller-runtime's ``Result{RequeueAfter}``, it returns when time alone next changes the
service (``Outcome.next_edge``, edges.py); it never queues anything itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from emotivoice_operator import fallback as fb
from emotivoice_operator.controller.cache import Snapshot
from emotivoice_operator.controller.expectations import Expectations
from emotivoice_operator.crd import GROUP, PLURAL, VERSION
from emotivoice_operator.crd.spec import SpecError
from emotivoice_operator.desired import DesiredState, desired_state
from emotivoice_operator.reconcile.children import Children, rendered_workload_kind
from emotivoice_operator.reconcile.cost import CostReader
from emotivoice_operator.reconcile.edges import next_edge
from emotivoice_operator.reconcile.memory import Memory
from emotivoice_operator.reconcile.observe import Findings, observe
from emotivoice_operator.reconcile.ownership import conflict_message, is_ours
from emotivoice_operator.reconcile.report import EventPoster, Reporter
from emotivoice_operator.reconcile.scheduled import ScheduledReader
from emotivoice_operator.reconcile.status import (
    Observed,
    compute_status,
    fetch_failing,
    with_transition_times,
)
from emotivoice_operator.reconcile.traffic import TrafficReader, status_fields
from emotivoice_operator.reconcile.warmpath import (
    WarmPathIO,
    WarmPathOutcome,
    memory_of,
    ready_server_pods,
)
from emotivoice_operator.render import Owner, names
from emotivoice_operator.settings import OperatorSettings
from emotivoice_operator.tuning import coldstarts, prober

SERVICE_KIND = "EmotiVoiceService"
# Timer periods between passes of a service with no time edge sooner: the pass that catches
# whatever no watch event told (it reads the watches, so it costs no API request either).
HORIZON_PERIODS = 20


@dataclass(frozen=True)
class Outcome:
    """What a pass leaves behind: the status in force and when the timer must come back."""

    status: dict[str, Any]
    next_edge: datetime


@dataclass
class Reconciler:
    api: client.ApiClient
    settings: OperatorSettings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    expectations: Expectations = field(default_factory=Expectations)

    def __post_init__(self) -> None:
        self.children = Children(self.api, self.settings, self.expectations)
        self.custom = client.CustomObjectsApi(self.api)
        self.traffic = TrafficReader(self.settings.ask_servers)
        self.cost = CostReader(self.settings.ask_servers)
        self.warm_path = WarmPathIO(self.api)
        self.scheduled = ScheduledReader(self.api)

    def reconcile(self, snap: Snapshot, post: EventPoster) -> Outcome | None:
        """One pass over ``snap``; None when the service is gone or being deleted."""
        if snap.body is None:
            return None
        meta = snap.body["metadata"]
        key = (meta["namespace"], meta["name"])
        body = self.expectations.newest(key, SERVICE_KIND, meta["name"], snap.body)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return self._reconcile(body, snap, post)

    def _reconcile(self, body: dict[str, Any], snap: Snapshot, post: EventPoster) -> Outcome:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        memory = Memory.from_status(body.get("status"))
        report = Reporter(owner, post, memory)
        now = self.clock()
        horizon = timedelta(seconds=self.settings.timer_interval * HORIZON_PERIODS)
        cache = names.model_cache(owner.name)
        shared = self.children.current(owner, "PersistentVolumeClaim", cache, snap)
        key = (owner.namespace, owner.name)
        traffic, polling = self.traffic.read(key, body.get("spec") or {}, snap, memory, now)
        try:
            desired = desired_state(
                body.get("spec") or {}, owner, now, memory.warm_requests, self.settings,
                cold_start_seconds=memory.cold_start_seconds,
                cold_start_image_seconds=memory.cold_start_image_seconds,
                lead_in_force=memory.lead_in_force,
                shared_claim_exists=shared is not None and is_ours(shared, owner.uid, owner.name),
                traffic=traffic, calendars=snap.calendars,
                warm_memory=memory_of(memory.status, ready_server_pods(snap.pods)),
            )  # fmt: skip
        except SpecError as exc:
            report.invalid_spec(str(exc))
            observed, findings = self._observe(body, owner, None, snap, memory, spec_error=str(exc))
            report.findings(None, findings)
            status = self._write_status(body, memory, observed, report)
            report.pool(None, status, fetch_failing(observed.pods))
            return Outcome(status, now + horizon)

        reading = self.cost.read(key, desired.windows, snap.pods, memory.cost, now)
        floor = desired.warm_floor
        report.warm_floor(floor)
        manifests = desired.manifests
        apply_error = conflict = None
        kept_claims: list[str] | None = None
        deleted_claims: list[str] = []
        warm = WarmPathOutcome()
        try:
            lives = self.children.lives(owner, manifests, snap)
            taken = [
                (m["kind"], m["metadata"]["name"])
                for m, live in zip(manifests, lives, strict=True)
                if live is not None and not is_ours(live, owner.uid, owner.name)
            ]
            if taken:
                # Nothing is applied while a name is taken: a RoleBinding would bind our Role
                # to their ServiceAccount, an HPA would scale their Deployment.
                conflict = conflict_message(taken, owner.name)
                report.name_conflict(conflict)
            else:
                self.children.apply_all(owner, manifests, lives, snap, report)
                kind = rendered_workload_kind(manifests)
                self.children.hold_floor(owner, floor, kind, snap, report)
                kept_claims, deleted_claims = self.children.clean_claims(
                    owner, desired, snap, report
                )
                warm = self.warm_path.run(
                    owner.namespace, desired, snap.warm_pods, memory.status, report.post
                )
                report.warm_path(desired, warm.pre_pull, warm.capacity)
        except ApiException as exc:
            apply_error = f"the API refused a child: {_api_reason(exc)}"
            report.apply_failed(apply_error)
        if not (conflict or apply_error):
            report.routing(desired.route, traffic.own_ready)
            report.wake(
                desired.wake, (body.get("spec") or {}).get("fallback", {}).get("wakeHold", "")
            )
        observed, findings = self._observe(
            body,
            owner,
            desired,
            snap,
            memory,
            apply_error=apply_error,
            conflict=conflict,
            request_fixes=memory.request_fixes(desired.warm_requests),
            claims=(kept_claims, deleted_claims),
            cost_reading=reading,
            pre_pull=warm.pre_pull,
            capacity=warm.capacity,
            **status_fields(desired, memory, now, applied=not (conflict or apply_error)),
        )
        report.findings(desired, findings)
        status = self._write_status(body, memory, observed, report)
        report.pool(desired, status, fetch_failing(observed.pods))
        report.cache_unreachable(desired.cache.warning)
        found = observed.calendars_found
        report.calendar_missing(found[1] if found and not found[0] else None)
        report.phase(status)
        if conflict or apply_error:
            # Someone else's object carries none of our labels, so no watch tells when it goes;
            # a refused apply may pass next time: both are looked at again every timer period.
            return Outcome(status, now)
        edge = next_edge(desired.windows, desired.warm_requests, status.get("misses"), now, horizon)
        for stage in desired.warm_path.stages:
            # The warm path's own instants: the pre-pull and the placeholders begin.
            edge = min([edge, *(t for t in stage.edges() if t > now)])
        if desired.wake is not None:
            edge = min(edge, desired.wake.expires_at)
        if polling:
            # Requests to a pool at zero reach the fallback: read its counters again soon.
            edge = min(edge, now + timedelta(seconds=fb.POLL_SECONDS))
        if reading.next_read is not None:
            # A warm window's cost: the serving pods' counters are read again then.
            edge = min(edge, reading.next_read)
        return Outcome(status, edge)

    def _observe(
        self,
        body: dict[str, Any],
        owner: Owner,
        desired: DesiredState | None,
        snap: Snapshot,
        memory: Memory,
        **outcome: Any,
    ) -> tuple[Observed, Findings]:
        """What the watches show now (observe.py), with the outside calls of a pass with new
        starts: a server pod that just turned Ready is asked for its start-up phases
        (tuning/prober.py), which only that pod can tell, and the scheduler's Events say when
        the new pods were placed, finer than their conditions (scheduled.py)."""
        workload = self.children.server_workload(owner, desired, snap)
        pending = coldstarts.pending_starts(snap.pods, memory.cold_starts)
        ready_bodies: dict[str, dict[str, Any]] = {}
        if self.settings.ask_servers:
            ready_bodies = prober.answers(pending)
        scheduled = self.scheduled.read(owner.namespace, pending) if pending else {}
        return observe(
            body, desired, memory, workload, snap.pods, ready_bodies, self.clock,
            scheduled=scheduled, **outcome,
        )  # fmt: skip

    def _write_status(
        self, body: dict[str, Any], memory: Memory, observed: Observed, report: Reporter
    ) -> dict[str, Any]:
        old = memory.status
        status = compute_status(observed)
        now = self.clock().isoformat(timespec="seconds").replace("+00:00", "Z")
        status["conditions"] = with_transition_times(
            status["conditions"], old.get("conditions"), now
        )
        if all(old.get(k) == v for k, v in status.items()):
            return status
        meta = body["metadata"]
        report.status_written()
        answer = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], {"status": status}
        )
        self.expectations.expect((meta["namespace"], meta["name"]), answer)
        return status


def _api_reason(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"
